"""Benchmark of ``fit_probe``: as good as scikit-learn's logistic regression on the same features, and faster?

    python bench/probe.py            # full: a few minutes on 2 cores; writes DIR/probe.json (default bench/results)
    python bench/probe.py --quick    # smoke test: small problems, one round; writes to a temp dir
    python bench/probe.py --output DIR [--repeats N] [--threads N]

On every problem of :mod:`tlzoo.testing.probe_problems` (plus a larger one,
2000 x 384 features), in both of the probe's regimes, three contenders fit a
linear head on the same frozen features and are scored on the same test split:

* **tlzoo**: ``fit_probe`` with its defaults;
* **scikit-learn**, as a user would write it: ``StandardScaler`` then, with a
  validation split, ``LogisticRegression`` at each C of ``logspace(-4, 4, 17)``
  kept by validation log-loss (the probe's rule), and without one
  ``LogisticRegressionCV`` (its 10 C values, stratified 5-fold, by accuracy);
* **AdamW head**: the probe this replaces, a ``nn.Linear`` trained by AdamW
  (lr 3e-3, batch 64, 30 epochs) on the raw features.

The report gives test accuracy and log-loss of each, and the time ratios
tlzoo / scikit-learn and tlzoo / AdamW head. Times are medians over
``--repeats`` rounds in which the contenders alternate (``common.alternate``),
one intra-op thread by default; the first call of each contender in the process
(imports, lazy initialisation) runs before the rounds and is not timed.
No test asserts on these timings.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import alternate, load_average, machine_info

SKLEARN_CS = (1e-4, 1e4, 17)


def log(message: str) -> None:
    """Progress on stderr, with the machine's load."""
    sys.stderr.write(f"[probe bench {time.strftime('%H:%M:%S')} load {load_average()[:1]}] {message}\n")
    sys.stderr.flush()


def problems(quick: bool) -> dict[str, Any]:
    """name -> a callable giving ``(train_x, train_y, test_x, test_y)``."""
    from tlzoo.testing import probe_problems as pp

    chosen = dict(pp.PROBLEMS)
    if quick:
        return {name: chosen[name] for name in ("separated", "few_shot_20x5")}
    chosen["badly_conditioned_2000"] = lambda: pp.badly_conditioned(0, 2000)
    chosen["wide_2000x384"] = lambda: pp.gaussians(7, 2000, 384, 10, 2.0)
    return chosen


def _metrics(probabilities: Any, labels: Any, classes: int) -> dict[str, float]:
    import numpy as np
    from sklearn.metrics import log_loss

    return {"accuracy": float((np.argmax(probabilities, 1) == labels).mean()),
            "log_loss": float(log_loss(labels, probabilities, labels=range(classes)))}


def tlzoo_probe(xtr: Any, ytr: Any, xva: Any, yva: Any, xt: Any, yt: Any, classes: int) -> dict[str, float]:
    """``fit_probe`` with its defaults (validation split when given, else cross-validation)."""
    import torch

    from tlzoo.training.probe import fit_probe

    started = time.perf_counter()
    fit = fit_probe(xtr, ytr, task="single_label_classification", num_labels=classes, val_x=xva, val_y=yva)
    seconds = time.perf_counter() - started
    with torch.no_grad():
        p = torch.softmax(fit.linear(torch.from_numpy(xt)).double(), 1).numpy()
    return {"seconds": seconds, "l2": fit.l2, "evaluations": fit.evaluations, **_metrics(p, yt, classes)}


def sklearn_probe(xtr: Any, ytr: Any, xva: Any, yva: Any, xt: Any, yt: Any, classes: int) -> dict[str, float]:
    """StandardScaler + LogisticRegression (C by validation log-loss) or LogisticRegressionCV."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
    from sklearn.metrics import log_loss
    from sklearn.model_selection import StratifiedKFold
    from sklearn.preprocessing import StandardScaler

    started = time.perf_counter()
    scaler = StandardScaler().fit(xtr)
    if xva is None:
        model = LogisticRegressionCV(cv=StratifiedKFold(5, shuffle=True, random_state=0), max_iter=1000)
        model.fit(scaler.transform(xtr), ytr)
    else:
        best = None
        for c in np.logspace(np.log10(SKLEARN_CS[0]), np.log10(SKLEARN_CS[1]), SKLEARN_CS[2]):
            candidate = LogisticRegression(C=c, max_iter=1000).fit(scaler.transform(xtr), ytr)
            loss = log_loss(yva, candidate.predict_proba(scaler.transform(xva)), labels=candidate.classes_)
            if best is None or loss < best[0]:
                best = (loss, candidate)
        model = best[1]
    seconds = time.perf_counter() - started
    p = np.zeros((len(yt), classes))
    p[:, model.classes_] = model.predict_proba(scaler.transform(xt))
    return {"seconds": seconds, **_metrics(p, yt, classes)}


def adamw_head(xtr: Any, ytr: Any, xva: Any, yva: Any, xt: Any, yt: Any, classes: int) -> dict[str, float]:
    """The old default probe: AdamW (lr 3e-3) on raw features, batch 64, 30 epochs."""
    import torch

    generator = torch.Generator().manual_seed(0)
    started = time.perf_counter()
    head = torch.nn.Linear(xtr.shape[1], classes)
    optimizer = torch.optim.AdamW(head.parameters(), lr=3e-3)
    x, y = torch.from_numpy(xtr), torch.from_numpy(ytr)
    for _ in range(30):
        for rows in torch.randperm(len(y), generator=generator).split(64):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(head(x[rows]), y[rows]).backward()
            optimizer.step()
    seconds = time.perf_counter() - started
    with torch.no_grad():
        p = torch.softmax(head(torch.from_numpy(xt)).double(), 1).numpy()
    return {"seconds": seconds, **_metrics(p, yt, classes)}


CONTENDERS = {"tlzoo": tlzoo_probe, "sklearn": sklearn_probe, "adamw_head": adamw_head}


def run(quick: bool, repeats: int) -> list[dict[str, Any]]:
    """One record per (problem, regime): each contender's median time and its test scores."""
    import numpy as np
    from sklearn.model_selection import train_test_split

    from tlzoo.testing.probe_problems import gaussians

    x, y, xt, yt = gaussians(1, 200, 8, 3, 3.0, n_test=50)
    for fit in CONTENDERS.values():  # untimed first calls: imports, lazy initialisation
        fit(x, y, None, None, xt, yt, 3)
        fit(x[:150], y[:150], x[150:], y[150:], xt, yt, 3)
    records = []
    for name, make in problems(quick).items():
        x, y, xt, yt = make()
        classes = int(y.max()) + 1
        regimes = {"cross-validation": (x, y, None, None)}
        if np.bincount(y).min() >= 8:  # a 25% validation split keeps 2 per class
            xtr, xva, ytr, yva = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)
            regimes["validation"] = (xtr, ytr, xva, yva)
        for regime, (a, b, c, d) in regimes.items():
            log(f"{name} ({regime}): {len(b)} x {a.shape[1]} train, {classes} classes")
            runs = alternate({key: functools.partial(fit, a, b, c, d, xt, yt, classes)
                              for key, fit in CONTENDERS.items()}, repeats, log)
            record: dict[str, Any] = {"problem": name, "regime": regime, "train_rows": len(b),
                                      "features": int(a.shape[1]), "classes": classes}
            for key, results in runs.items():
                record[key] = {**results[0], "seconds": statistics.median(r["seconds"] for r in results)}
            record["time_ratio_vs_sklearn"] = record["tlzoo"]["seconds"] / record["sklearn"]["seconds"]
            record["time_ratio_vs_adamw_head"] = record["tlzoo"]["seconds"] / record["adamw_head"]["seconds"]
            records.append(record)
    return records


def markdown(records: list[dict[str, Any]]) -> str:
    """The side-by-side table."""
    header = ("| problem | regime | rows x features | tlzoo acc / log-loss | scikit-learn acc / log-loss "
              "| AdamW head acc / log-loss | tlzoo s | scikit-learn s | AdamW head s | tlzoo / sklearn time |")
    lines = [header, "| --- " * 10 + "|"]
    for r in records:
        scores = " | ".join(f"{r[k]['accuracy']:.4f} / {r[k]['log_loss']:.4f}" for k in CONTENDERS)
        times = " | ".join(f"{r[k]['seconds']:.3f}" for k in CONTENDERS)
        lines.append(f"| {r['problem']} | {r['regime']} | {r['train_rows']} x {r['features']} | {scores} | {times} "
                     f"| {r['time_ratio_vs_sklearn']:.2f} |")
    ratios = [r["time_ratio_vs_sklearn"] for r in records]
    lines.append("")
    lines.append(f"Median time ratio tlzoo / scikit-learn: {statistics.median(ratios):.2f} "
                 f"(min {min(ratios):.2f}, max {max(ratios):.2f}).")
    worst_acc = min(r["tlzoo"]["accuracy"] - r["sklearn"]["accuracy"] for r in records)
    worst_loss = max(r["tlzoo"]["log_loss"] - r["sklearn"]["log_loss"] for r in records)
    lines.append(f"Worst tlzoo - scikit-learn: accuracy {worst_acc:+.4f}, log-loss {worst_loss:+.4f}.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print the table, write ``probe.json``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small problems, one round (a smoke test)")
    parser.add_argument("--output", type=Path, help="folder for probe.json (default: bench/results; --quick: temp)")
    parser.add_argument("--repeats", type=int, help="rounds per comparison (default 3; --quick 1)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import torch

    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    output = args.output or (Path(tempfile.mkdtemp(prefix="tlzoo-bench-probe-")) if args.quick else HERE / "results")
    load_start = load_average()
    records = run(args.quick, args.repeats or (1 if args.quick else 3))
    result = {"machine": machine_info(), "load_average_start": load_start, "load_average_end": load_average(),
              "mode": "quick" if args.quick else "full", "records": records}
    output.mkdir(parents=True, exist_ok=True)
    (output / "probe.json").write_text(json.dumps(result, indent=2, default=float))
    print(markdown(records), flush=True)
    log(f"wrote {output / 'probe.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
