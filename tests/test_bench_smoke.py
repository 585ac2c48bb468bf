"""Smoke test of the benchmarks: ``bench/run.py --quick`` runs and reports every figure.

No timing is asserted (the machines are shared and timings move); only that
every figure is present, with numeric ratio fields, and that the Markdown
report was written.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIGURES = ("1_full_finetune", "2_linear_probe", "3_cache_hit", "4_scaling", "5_data_loading", "6_startup", "7_gpu")


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _check_ratio(ratio: object, where: str) -> None:
    assert isinstance(ratio, dict), f"{where}: ratio is {ratio!r}"
    for key in ("median", "min", "max"):
        assert _is_number(ratio.get(key)), f"{where}: ratio.{key} is {ratio.get(key)!r}"
    assert ratio["min"] <= ratio["median"] <= ratio["max"], f"{where}: {ratio}"
    assert ratio["samples"] and all(_is_number(s) for s in ratio["samples"]), f"{where}: {ratio}"


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_quick_benchmark_reports_every_figure(tmp_path: Path) -> None:
    env = {**os.environ, "TLZOO_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "run.py"), "--quick", "--output", str(tmp_path / "out")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-5000:]

    report = json.loads((tmp_path / "out" / "latest.json").read_text())
    assert report["mode"] == "quick"
    for key in ("cpu", "cores", "python", "versions", "date"):
        assert report["machine"].get(key) is not None, key
    for lib in ("torch", "transformers", "accelerate"):
        assert report["machine"]["versions"][lib], lib

    figures = report["figures"]
    assert set(FIGURES) <= set(figures), sorted(figures)
    for name in FIGURES:
        fig = figures[name]
        assert "error" not in fig, f"{name}: {fig.get('error')}"
        assert isinstance(fig["target"], str) and fig["target"], name
        if fig.get("skipped"):  # the GPU figure, without a GPU
            assert name == "7_gpu" and fig["note"], fig
            continue
        _check_ratio(fig["ratio"], name)
        assert isinstance(fig["met"], bool), name
        for case, detail in fig.get("cases", {}).items():
            _check_ratio(detail["ratio"], f"{name}/{case}")

    for model in ("vit", "bert", "wav2vec2"):
        assert model in figures["1_full_finetune"]["cases"], model
        assert model in figures["5_data_loading"]["cases"], model
    _check_ratio(figures["1_full_finetune"]["cases"]["vit"]["ratio_vs_trainer"], "1/vit vs Trainer")
    _check_ratio(figures["2_linear_probe"]["cases"]["vit"]["no_cache_vs_cached"], "2/no cache")
    _check_ratio(figures["4_scaling"]["cases"]["peak_rss_16N_over_N"]["ratio"], "4/rss")

    markdown = (tmp_path / "out" / "benchmarks.md").read_text()
    assert "| # | Figure |" in markdown and "torch" in markdown


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("script", ["auto.py", "probe.py", "script_vs_adapt.py", "rank.py"])
def test_quick_side_by_side_benchmarks_report_their_ratios(script: str, tmp_path: Path) -> None:
    """``bench/auto.py`` (auto vs a grid), ``bench/probe.py`` (the probe vs scikit-learn),
    ``bench/script_vs_adapt.py`` (``tlzoo adapt`` vs a sentence-transformers script) and ``bench/rank.py``
    (``tlzoo.rank`` vs fine-tuning every candidate, over seeds) in quick mode."""
    env = {**os.environ, "TLZOO_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / script), "--quick", "--output", str(tmp_path / "out")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-5000:]
    written = {p.name: p for p in (tmp_path / "out").iterdir()}
    assert written, "the benchmark wrote nothing"
    if script == "auto.py":
        summary = json.loads(written["auto.json"].read_text())
        assert summary["mode"] == "quick" and _is_number(summary["mean_ratio"]) and _is_number(summary["time_ratio"])
        assert [t["task"] for t in summary["tasks"]] == ["colours-vit"]
        assert all(_is_number(v) for v in summary["cross_validate_trials"].values())
        assert "| task |" in written["auto.md"].read_text()
    if script == "script_vs_adapt.py":
        summary = json.loads(written["script_vs_adapt.json"].read_text())
        assert summary["mode"] == "quick" and _is_number(summary["ratio"]["median"])
        assert all(_is_number(r["accuracy"]) for side in ("script", "tlzoo") for r in summary["runs"][side])
        assert summary["fit_vs_extraction"] and all(_is_number(r["ratio"]) for r in summary["fit_vs_extraction"])
        assert "| sentences |" in written["script_vs_adapt.md"].read_text()
    if script == "rank.py":
        summary = json.loads(written["rank.json"].read_text())
        assert summary["mode"] == "quick" and summary["settings"]["seeds"] >= 2
        for truth in (summary["summary"], summary["summary"]["with_tlzoo_settings"]):
            for key in ("cost_ratio", "kendall_tau", "kendall_tau_single_seed", "kendall_tau_between_seeds",
                        "top_pick_gap_points"):
                _check_ratio(truth[key], f"rank/{key}")
        one_round = summary["rounds"][0]
        assert len(one_round["finetuned_accuracy_by_seed"]) == summary["settings"]["seeds"]
        # the cost is per single fine-tuning of every candidate, not of all the seeds together
        assert one_round["finetune_seconds"] <= max(one_round["finetune_seconds_by_seed"])
        assert "| Candidate | fixed recipe, by seed |" in written["rank.md"].read_text()
