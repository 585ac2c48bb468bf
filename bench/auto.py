"""Benchmark of ``strategy="auto"`` with no settings against the best of a grid of settings.

    python bench/auto.py           # full: every task and the whole grid (about 20-40 minutes on 2 cores);
                                   #   writes bench/results/auto.json and its section of docs/benchmarks.md
    python bench/auto.py --quick   # smoke test (CI): one task, a one-point grid; writes to a temp dir
    python bench/auto.py --output DIR [--tasks a,b] [--threads N]

For each task -- a source model of a known quality and relatedness and a small
labelled target set (few examples per class, as users bring) -- it runs

* ``tlzoo.adapt(source, data)``: ``auto`` with no settings at all, and
* ``tlzoo.adapt(source, data, cross_validate_trials=True)``: the same, with the
  opt-in cross-validated second opinion on a handful of validation examples, and
* the grid a careful practitioner would search: strategies (``linear_probe``
  trained by gradient steps, ``partial``, ``full``, ``lp_ft``) x learning rates x
  epoch counts, every run with explicit settings,

on the same data and split (``seed=0``), alternating which side goes first per
task. It reports ``auto``'s test accuracy / the grid's best test accuracy (the
grid's best is the oracle: it is picked *on test*, which ``auto`` never sees),
and ``auto``'s wall time / the whole grid's. Targets: mean ratio >= 0.97, worst
>= 0.90, time <= 0.10.

Tasks (all built here, offline):

* ``digits-resnet-random``, ``digits-vit-random``: scikit-learn's handwritten
  digit scans (real data), 5 classes, 24 per class, on random-weight tiny
  backbones: features a probe barely separates, where fine-tuning pays;
* ``colours-vit``: noisy colour swatches on a random tiny ViT: easy, a probe is enough;
* ``topics-related``, ``topics-random``: the four-topic sentence task on the
  graded text family (:mod:`tlzoo.testing.families`): a BERT pre-trained on a
  related source task, and the same BERT untrained.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

sys.path.insert(0, str(HERE))

from common import load_average, machine_info, put_section  # first: it sets the benchmarks' environment

SECTION_BEGIN = "<!-- auto benchmark: begin (written by python bench/auto.py) -->"
SECTION_END = "<!-- auto benchmark: end -->"
TARGETS = {"mean_ratio": 0.97, "worst_ratio": 0.90, "time_ratio": 0.10}
STRATEGIES = ("linear_probe", "partial", "full", "lp_ft")
GRID = {"full": {"learning_rates": (1e-4, 1e-3, 1e-2), "epochs": (5, 15)},
        "quick": {"learning_rates": (1e-3,), "epochs": (3,)}}
TASKS = ("digits-resnet-random", "digits-vit-random", "colours-vit", "topics-related", "topics-random")
QUICK_TASKS = ("colours-vit",)


def log(message: str) -> None:
    """Progress on stderr, with the machine's load."""
    sys.stderr.write(f"[auto bench {time.strftime('%H:%M:%S')} load {load_average()[:1]}] {message}\n")
    sys.stderr.flush()


def colour_images(per_class: int, seed: int = 0) -> Any:
    """Noisy 32x32 swatches of three colours."""
    import datasets
    import numpy as np
    from PIL import Image

    colours = {"red": (200, 40, 40), "green": (40, 180, 60), "blue": (40, 60, 200)}
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for i in range(per_class * len(colours)):
        name = list(colours)[i % len(colours)]
        centre = np.array(colours[name]) + rng.normal(0, 30, 3)
        images.append(Image.fromarray(np.clip(rng.normal(0, 40, (32, 32, 3)) + centre, 0, 255).astype(np.uint8)))
        labels.append(name)
    return datasets.Dataset.from_dict({"image": images, "label": labels}).cast_column("image", datasets.Image())


def build_task(name: str, work: Path, quick: bool) -> tuple[str, Any]:
    """``(source folder, target data)`` of task *name*: a few-shot train split and a larger test split.

    The test split (40 examples per class, 8 in quick mode) is drawn apart from
    train, so one lucky example does not decide a ratio.
    """
    from datasets import DatasetDict

    from tlzoo.demo.digits import digit_images
    from tlzoo.testing import build_tiny_resnet, build_tiny_vit

    per_class, test_per_class = (12, 8) if quick else (24, 40)

    def split(make: Any) -> DatasetDict:
        both = make(per_class + test_per_class).train_test_split(test_size=test_per_class / (per_class + test_per_class),
                                                                  seed=0, stratify_by_column="label")
        return DatasetDict(train=both["train"], test=both["test"])

    if name in ("digits-resnet-random", "digits-vit-random"):
        build = build_tiny_resnet if name == "digits-resnet-random" else build_tiny_vit
        return str(build(work / name)), split(lambda n: digit_images(n).class_encode_column("label"))
    if name == "colours-vit":
        return str(build_tiny_vit(work / name)), split(lambda n: colour_images(n).class_encode_column("label"))
    from tlzoo.testing.families import build_text_family, family_target

    member = "all-topics" if name == "topics-related" else "random"
    family = build_text_family(work / name, [member], examples_per_class=20 if quick else 60,
                               epochs=3 if quick else 10)
    return str(family[member]), DatasetDict(train=family_target(8 if quick else 16, seed=1),
                                            test=family_target(test_per_class, seed=2))


def run_task(name: str, work: Path, mode: str, order: int) -> dict[str, Any]:
    """``auto`` and the grid on one task, in alternating order."""
    import tlzoo

    source, data = build_task(name, work, mode == "quick")
    grid = GRID[mode]
    common = {"seed": 0, "save_strategy": "no", "progress": False}

    def fresh_cache() -> None:
        os.environ["TLZOO_CACHE"] = tempfile.mkdtemp(prefix="tlzoo-bench-auto-cache-")

    def auto(**settings: Any) -> dict[str, Any]:
        fresh_cache()
        t0 = time.perf_counter()
        result = tlzoo.adapt(source, data, **common, **settings)
        seconds = time.perf_counter() - t0
        return {"accuracy": result.metrics["test"]["accuracy"], "seconds": seconds,
                "probe_fit_seconds": result.timings.get("probe_fit"), "features_seconds": result.timings.get("features"),
                "strategy": result.recipe["strategy"],
                "trials": [{k: v for k, v in t.items() if k != "validation"} for t in result.recipe["trials"]]}

    def search() -> dict[str, Any]:
        fresh_cache()  # the grid reuses its own cached features across its probe runs, as a user's search would
        t0 = time.perf_counter()
        runs = []
        for strategy in STRATEGIES:
            for lr in grid["learning_rates"]:
                for epochs in grid["epochs"]:
                    result = tlzoo.adapt(source, data, strategy=strategy, learning_rate=lr, epochs=epochs, **common)
                    runs.append({"strategy": strategy, "learning_rate": lr, "epochs": epochs,
                                 "accuracy": result.metrics["test"]["accuracy"]})
        seconds = time.perf_counter() - t0
        return {"best": max(runs, key=lambda r: r["accuracy"]), "runs": runs, "seconds": seconds}

    # auto as it comes, the grid, and auto with its opt-in cross-validated second opinion; the order rotates per task
    sides = [("auto", auto), ("grid", search), ("auto_cv", lambda: auto(cross_validate_trials=True))]
    measured = {}
    for label, fn in sides[order % 3:] + sides[:order % 3]:
        measured[label] = fn()
    a, g, cv = measured["auto"], measured["grid"], measured["auto_cv"]
    best = g["best"]["accuracy"]
    ratio = a["accuracy"] / best if best else 1.0
    log(f"{name}: auto {a['accuracy']:.3f} ({a['strategy']}, {a['seconds']:.1f} s) / grid best "
        f"{best:.3f} ({g['best']['strategy']} lr {g['best']['learning_rate']} "
        f"{g['best']['epochs']} ep; {len(g['runs'])} runs, {g['seconds']:.1f} s): {ratio:.3f}; with "
        f"cross_validate_trials {cv['accuracy']:.3f} ({cv['strategy']}, {cv['seconds']:.1f} s)")
    return {"task": name, "auto": a, "grid": g, "accuracy_ratio": ratio, "time_ratio": a["seconds"] / g["seconds"],
            "auto_cv": cv, "cv_accuracy_ratio": cv["accuracy"] / best if best else 1.0,
            "cv_time_ratio": cv["seconds"] / g["seconds"]}


def report(results: list[dict[str, Any]], info: dict[str, Any], mode: str) -> tuple[dict[str, Any], str]:
    """The summary and its Markdown."""
    ratios = [r["accuracy_ratio"] for r in results]
    grid_seconds = sum(r["grid"]["seconds"] for r in results)
    time_ratio = sum(r["auto"]["seconds"] for r in results) / grid_seconds
    cv_ratios = [r["cv_accuracy_ratio"] for r in results]
    cv = {"mean_ratio": sum(cv_ratios) / len(cv_ratios), "worst_ratio": min(cv_ratios),
          "time_ratio": sum(r["auto_cv"]["seconds"] for r in results) / grid_seconds}
    summary = {"mode": mode, "mean_ratio": sum(ratios) / len(ratios), "worst_ratio": min(ratios),
               "time_ratio": time_ratio, "targets": TARGETS, "machine": info, "cross_validate_trials": cv,
               "tasks": results}
    measured = (f"Measured on {info.get('cpu', 'a CPU')} ({info.get('cores', '?')} cores, one torch thread), "
                f"{info.get('date', '')}, `python bench/auto.py`{' --quick' if mode == 'quick' else ''}. The grid: "
                f"{', '.join(STRATEGIES)} x learning rates {GRID[mode]['learning_rates']} x epochs "
                f"{GRID[mode]['epochs']}, its best picked on test (an oracle).")
    lines = [SECTION_BEGIN, "", "### `auto` with no settings / the best of a grid", "", measured, "",
             "| task | auto: test accuracy (kept) | grid best: accuracy (settings) | ratio | time auto / grid | "
             "with `cross_validate_trials`: accuracy (kept), time / grid |",
             "|---|---|---|---|---|---|"]
    for r in results:
        b = r["grid"]["best"]
        lines.append(f"| {r['task']} | {r['auto']['accuracy']:.3f} ({r['auto']['strategy']}) | {b['accuracy']:.3f} "
                     f"({b['strategy']}, lr {b['learning_rate']:g}, {b['epochs']} epochs) | "
                     f"{r['accuracy_ratio']:.3f} | {r['time_ratio']:.3f} | {r['auto_cv']['accuracy']:.3f} "
                     f"({r['auto_cv']['strategy']}), {r['cv_time_ratio']:.3f} |")
    verdict = (f"Mean ratio {summary['mean_ratio']:.3f} (target >= {TARGETS['mean_ratio']}), worst "
               f"{summary['worst_ratio']:.3f} (>= {TARGETS['worst_ratio']}), time {time_ratio:.3f} of the grid's "
               f"(<= {TARGETS['time_ratio']}).")
    lines += ["", verdict, "", f"With `cross_validate_trials=True` (off by default): mean ratio {cv['mean_ratio']:.3f}, "
              f"worst {cv['worst_ratio']:.3f}, time {cv['time_ratio']:.3f} of the grid's.", "", SECTION_END]
    return summary, "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one task, a one-point grid (the CI smoke)")
    parser.add_argument("--output", type=Path, help="folder for auto.json and auto.md")
    parser.add_argument("--tasks", help="comma-separated task names (default: all)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    mode = "quick" if args.quick else "full"
    tasks = args.tasks.split(",") if args.tasks else list(QUICK_TASKS if args.quick else TASKS)
    out = args.output or (Path(tempfile.mkdtemp(prefix="tlzoo-bench-auto-")) if args.quick else HERE / "results")
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="tlzoo-bench-auto-work-"))
    info = machine_info()
    results = [run_task(name, work, mode, i) for i, name in enumerate(tasks)]
    summary, markdown = report(results, info, mode)
    (out / "auto.json").write_text(json.dumps(summary, indent=2, default=str))
    (out / "auto.md").write_text(markdown + "\n")
    if not args.quick and not args.output:
        put_section(REPO / "docs" / "benchmarks.md", markdown, SECTION_BEGIN, SECTION_END)
    log(f"mean ratio {summary['mean_ratio']:.3f}, worst {summary['worst_ratio']:.3f}, time {summary['time_ratio']:.3f}"
        f"; written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
