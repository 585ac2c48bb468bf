"""adapt() and rank() on two CPU processes (torchrun, gloo) give the single-process results."""

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


def run_rank(tmp_path: Path, mode: str, nproc: int, *sources: Path) -> list[dict[str, Any]]:
    """Every process's record from tests/distributed_rank.py (see there), by process index."""
    out = tmp_path / f"{mode}-{nproc}"
    env = {**os.environ, "PYTHONPATH": str(HERE), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           str(HERE / "distributed_rank.py"), mode, str(out), str(tmp_path / f"cache-{mode}-{nproc}"),
           *map(str, sources)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return [json.loads((tmp_path / f"{mode}-{nproc}.{i}.json").read_text()) for i in range(nproc)]


@pytest.mark.slow
def test_rank_on_two_processes_shares_the_extraction(tmp_path: Path, tiny_models: Any) -> None:
    sources = (tiny_models("vit"), tiny_models("convnext"))
    (one,) = run_rank(tmp_path, "rank", 1, *sources)
    two = run_rank(tmp_path, "rank", 2, *sources)
    assert [p["num_processes"] for p in two] == [2, 2]
    keys = ("rank", "source", "knn", "linear_probe")
    for process in two:  # every process gets the same ranking as one process alone
        assert [{k: r[k] for k in keys} for r in process["rows"]] == [{k: r[k] for k in keys} for r in one["rows"]]
        assert [r["logme"] for r in process["rows"]] == pytest.approx([r["logme"] for r in one["rows"]], rel=1e-4)
        assert [r["feature_cache"] for r in process["rows"]] == [r["feature_cache"] for r in one["rows"]]
    # each candidate's examples shared out: each process ran about half of what one process ran
    assert [a + b for a, b in zip(two[0]["shares"], two[1]["shares"], strict=True)] == one["shares"]
    assert all(abs(a - b) <= 1 for a, b in zip(two[0]["shares"], two[1]["shares"], strict=True))
    assert (tmp_path / "rank-2-ranking" / "ranking.json").is_file()  # written once, by the main process


@pytest.mark.slow
def test_a_late_process_neither_recomputes_nor_miscounts_the_shared_cache(tmp_path: Path, tiny_models: Any) -> None:
    """Process 1 arrives after the main process has written its share: every example is still computed once."""
    from tlzoo.features.cache import scan_cache

    two = run_rank(tmp_path, "cache", 2, tiny_models("vit"))
    examples = 24 + 12
    for process in two:
        assert process["first"] == {"cached": 0, "computed": examples}
        assert process["second"] == {"cached": examples, "computed": 0}
    assert sum(sum(p["shares"]) for p in two) == examples  # nothing run through the backbone twice
    (entry,) = scan_cache(tmp_path / "cache-cache-2")
    assert entry.rows == examples
