"""adapt() on two CPU processes (torchrun, gloo) gives the single-process metrics."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent


def run(tmp_path: Path, source: Path, strategy: str, nproc: int) -> dict[str, Any]:
    out = tmp_path / f"{strategy}-{nproc}.json"
    env = {**os.environ, "PYTHONPATH": str(HERE), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           str(HERE / "distributed_adapt.py"), str(source), strategy, str(out),
           str(tmp_path / f"cache-{strategy}-{nproc}")]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["linear_probe", "full"])
def test_two_processes_match_one(tmp_path: Path, tiny_models: Any, strategy: str) -> None:
    source = tiny_models("vit")
    one = run(tmp_path, source, strategy, 1)
    two = run(tmp_path, source, strategy, 2)
    assert one["num_processes"] == 1 and two["num_processes"] == 2
    assert two["num_examples"] == one["num_examples"] == 5  # 20% of 24, none counted twice
    assert two["accuracy"] == one["accuracy"]
    assert two["f1"] == pytest.approx(one["f1"])
    if strategy == "linear_probe":  # same features, same global batches: the same training, to float noise
        assert two["loss"] == pytest.approx(one["loss"], rel=1e-3, abs=1e-4)
