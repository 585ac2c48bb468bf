"""Benchmark of ``tlzoo.rank``: does it pick the source model fine-tuning would, at a fraction of the cost?

    python bench/rank.py           # full: a few minutes on 2 cores; writes bench/results/rank.json,
                                   #   bench/results/rank.md and its section of docs/benchmarks.md
    python bench/rank.py --quick   # smoke test (CI): tiny sizes, one round; writes to a temp dir
    python bench/rank.py --output DIR [--repeats N] [--threads N]

What it measures, on the graded family of :mod:`tlzoo.testing.families`
(seven tiny BERTs pre-trained on source tasks of varied relatedness to the
target: all four target topics, three, two, one, none, the target words
wrongly grouped, and random weights):

1. **cost**: ``tlzoo.rank`` of all seven candidates / fine-tuning every one of
   them (``tlzoo.adapt(strategy="lp_ft")``, what a user would otherwise run
   per candidate), wall time, both from a cold feature cache (target <= 0.10),
   against two fine-tunings: a short fixed recipe (5 epochs at 3e-4, no
   validation split), and tlzoo's own settings (no arguments);
2. **agreement**: Kendall's tau-b between the ranking's combined score and the
   fine-tuned test accuracy of the candidates (target >= 0.75), and of each
   estimator alone;
3. **top pick**: fine-tuned accuracy of the best candidate minus that of the
   ranking's pick, in accuracy points (target <= 2).

Both sides run in the same round on the same target data (a new target
sample, seeded by the round, each round), alternating which goes first
(``common.alternate``); the report gives the median over rounds and the spread
(min-max), and targets are checked on the median, like ``bench/run.py``. The
family is built once before the rounds (not timed). Fine-tuned accuracy is
measured on a test split of ``test_per_class`` sentences per topic that
``rank()`` never scores (it ranks on the training split only). One intra-op
thread by default, for the reason given in ``bench/run.py``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

sys.path.insert(0, str(HERE))

from common import (  # first: it sets the benchmarks' environment
    alternate,
    load_average,
    machine_info,
    put_section,
    summarise,
)

SECTION_BEGIN = "<!-- rank benchmark: begin (written by python bench/rank.py) -->"
SECTION_END = "<!-- rank benchmark: end -->"
TARGETS = {"cost_ratio": 0.10, "kendall_tau": 0.75, "top_pick_gap_points": 2.0}
#: Where a ranking's time goes (``Ranking.rows[i]["timings"]``, summed over the candidates).
PHASES = ("load", "features", "knn", "logme", "linear_probe", "held_out_features")


@dataclass(frozen=True)
class Mode:
    """Sizes and repetitions of one run."""

    name: str
    bert: dict[str, int]
    pretrain_per_class: int
    pretrain_epochs: int
    train_per_class: int
    test_per_class: int
    finetune_epochs: int
    finetune_learning_rate: float
    repeats: int


FULL = Mode("full", {"hidden_size": 64, "num_hidden_layers": 4, "num_attention_heads": 4, "intermediate_size": 128},
            pretrain_per_class=60, pretrain_epochs=10, train_per_class=16, test_per_class=50, finetune_epochs=5,
            finetune_learning_rate=3e-4, repeats=3)
QUICK = Mode("quick", {}, pretrain_per_class=20, pretrain_epochs=4, train_per_class=6, test_per_class=6,
             finetune_epochs=1, finetune_learning_rate=3e-4, repeats=1)


def log(message: str) -> None:
    """Progress on stderr, with the machine's load."""
    sys.stderr.write(f"[rank bench {time.strftime('%H:%M:%S')} load {load_average()[:1]}] {message}\n")
    sys.stderr.flush()


def _target(mode: Mode, round_index: int) -> Any:
    from datasets import DatasetDict

    from tlzoo.testing.families import family_target

    return DatasetDict(train=family_target(mode.train_per_class, seed=100 + round_index),
                       test=family_target(mode.test_per_class, seed=200 + round_index))


def _fresh_cache() -> None:
    os.environ["TLZOO_CACHE"] = tempfile.mkdtemp(prefix="tlzoo-bench-rank-cache-")


def _kendall(a: list[float], b: list[float]) -> float:
    from scipy.stats import kendalltau

    value = float(kendalltau(a, b).statistic)
    return 0.0 if math.isnan(value) else value  # NaN (a constant side) counts as no agreement


def run(mode: Mode, work: Path) -> dict[str, Any]:
    """Build the family, then alternate ranking and fine-tuning every candidate for ``mode.repeats`` rounds."""
    import tlzoo
    from tlzoo.testing.families import FAMILY, build_text_family

    started = time.perf_counter()
    log(f"building the family of {len(FAMILY)} ({mode.bert or 'default tiny BERT'})")
    family = build_text_family(work / "family", FAMILY, examples_per_class=mode.pretrain_per_class,
                               epochs=mode.pretrain_epochs, **mode.bert)
    sources = [str(family[m]) for m in FAMILY]
    build_seconds = time.perf_counter() - started
    calls = {"rank": 0, "finetune": 0, "finetune_defaults": 0}

    def rank_once() -> dict[str, Any]:
        index = calls["rank"]
        calls["rank"] += 1
        data = _target(mode, index)
        _fresh_cache()
        t0 = time.perf_counter()
        ranking = tlzoo.rank(sources, data, validation_size=0.0, seed=index, progress=False)
        seconds = time.perf_counter() - t0
        rows = {Path(row["source"]).name: row for row in ranking.rows}
        log(f"  round {index + 1}: rank {seconds:.2f} s, pick {Path(ranking.best).name}")
        phases = {phase: sum(row["timings"].get(phase, 0.0) for row in ranking.rows) for phase in PHASES}
        return {"seconds": seconds, "best": Path(ranking.best).name, "phases": phases,
                "scores": {m: rows[m]["score"] for m in FAMILY},
                "estimators": {name: {m: rows[m][name] for m in FAMILY} for name in ("knn", "logme", "linear_probe")}}

    def finetuner(side: str, what: str, **settings: Any) -> Callable[[], dict[str, Any]]:
        """One round of fine-tuning every candidate with *settings* (on top of ``strategy="lp_ft"``)."""

        def finetune_once() -> dict[str, Any]:
            index = calls[side]
            calls[side] += 1
            data = _target(mode, index)
            _fresh_cache()
            t0 = time.perf_counter()
            accuracy = {}
            for member, source in zip(FAMILY, sources, strict=True):
                result = tlzoo.adapt(source, data, strategy="lp_ft", seed=index, save_strategy="no", progress=False,
                                     **settings)
                accuracy[member] = result.metrics["test"]["accuracy"]
            seconds = time.perf_counter() - t0
            log(f"  round {index + 1}: fine-tune all {what} {seconds:.2f} s, best {max(accuracy, key=accuracy.get)}")
            return {"seconds": seconds, "accuracy": accuracy}

        return finetune_once

    # a short fixed recipe, and tlzoo's own settings (its rate, epochs and validation split)
    finetune_once = finetuner("finetune", "(fixed recipe)", epochs=mode.finetune_epochs,
                              learning_rate=mode.finetune_learning_rate, validation_size=0.0)
    finetune_defaults_once = finetuner("finetune_defaults", "(tlzoo's settings)")

    log(f"{mode.repeats} round(s): rank all {len(FAMILY)} / fine-tune all {len(FAMILY)}")
    measured = alternate({"rank": rank_once, "finetune": finetune_once, "finetune_defaults": finetune_defaults_once},
                         mode.repeats)
    rounds = []
    for ranked, tuned, defaults in zip(measured["rank"], measured["finetune"], measured["finetune_defaults"],
                                       strict=True):
        figures = _round_figures(ranked, tuned)
        against = _round_figures(ranked, defaults)  # the same ranking against tlzoo's own fine-tuning
        figures["with_tlzoo_settings"] = {key: against[key] for key in (
            "finetune_seconds", "cost_ratio", "kendall_tau", "top_pick_gap_points", "best_finetuned",
            "finetuned_accuracy")}
        rounds.append(figures)
    summary = {key: summarise([r[key] for r in rounds]).to_dict()
               for key in ("cost_ratio", "cost_ratio_without_warm_cache", "kendall_tau", "top_pick_gap_points",
                           "rank_seconds", "finetune_seconds")}
    summary["with_tlzoo_settings"] = {key: summarise([r["with_tlzoo_settings"][key] for r in rounds]).to_dict()
                                      for key in ("cost_ratio", "kendall_tau", "top_pick_gap_points",
                                                  "finetune_seconds")}
    met = {
        "cost_ratio": summary["cost_ratio"]["median"] <= TARGETS["cost_ratio"],
        "kendall_tau": summary["kendall_tau"]["median"] >= TARGETS["kendall_tau"],
        "top_pick_gap_points": summary["top_pick_gap_points"]["median"] <= TARGETS["top_pick_gap_points"],
    }
    return {
        "mode": mode.name, "settings": asdict(mode), "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "candidates": list(FAMILY), "machine": machine_info(), "load_average_end": load_average(),
        "family_build_seconds": round(build_seconds, 1), "targets": TARGETS, "summary": summary, "met": met,
        "rounds": rounds, "seconds_total": round(time.perf_counter() - started, 1),
    }


def _round_figures(ranked: dict[str, Any], tuned: dict[str, Any]) -> dict[str, Any]:
    """The figures of one round: cost ratio, Kendall's tau (combined and per estimator), the top pick's gap."""
    from tlzoo.testing.families import FAMILY

    accuracy = tuned["accuracy"]
    truth = [accuracy[m] for m in FAMILY]
    return {
        "rank_seconds": round(ranked["seconds"], 3),
        "rank_phases": {phase: round(value, 3) for phase, value in ranked["phases"].items()},
        "finetune_seconds": round(tuned["seconds"], 3),
        "cost_ratio": ranked["seconds"] / tuned["seconds"],
        "cost_ratio_without_warm_cache": (ranked["seconds"] - ranked["phases"]["held_out_features"]) / tuned["seconds"],
        "kendall_tau": _kendall([ranked["scores"][m] for m in FAMILY], truth),
        "kendall_tau_by_estimator": {name: round(_kendall([values[m] for m in FAMILY], truth), 3)
                                     for name, values in ranked["estimators"].items()},
        "top_pick": ranked["best"],
        "best_finetuned": max(FAMILY, key=lambda m: accuracy[m]),
        "top_pick_gap_points": 100 * (max(truth) - accuracy[ranked["best"]]),
        "finetuned_accuracy": {m: round(accuracy[m], 4) for m in FAMILY},
        "scores": {m: ranked["scores"][m] for m in FAMILY},
    }


def _describe(bert: dict[str, int]) -> str:
    """``hidden 64, 4 layers, 4 heads, MLP 128`` (the defaults of ``build_tiny_bert`` where not given)."""
    sizes = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64, **bert}
    return (f"hidden {sizes['hidden_size']}, {sizes['num_hidden_layers']} layers, {sizes['num_attention_heads']} "
            f"heads, MLP {sizes['intermediate_size']}")


def _stat(stats: dict[str, Any], digits: int = 3) -> str:
    return f"{stats['median']:.{digits}g} ({stats['min']:.{digits}g}–{stats['max']:.{digits}g})"


def render(report: dict[str, Any]) -> str:
    """The Markdown section of docs/benchmarks.md."""
    s, met, mode = report["summary"], report["met"], report["settings"]
    d = s["with_tlzoo_settings"]
    machine = report["machine"]
    verdict = {True: "**met**", False: "**missed**"}
    lines = [
        "## Ranking source models: `tlzoo.rank` against fine-tuning every candidate",
        "",
        (f"Measured by `python bench/rank.py` ({report['mode']} mode; {machine['cpu']}, "
         f"{machine['usable_cores']} cores, OMP_NUM_THREADS={report['omp_num_threads']}, "
         f"torch threads {machine['torch_threads']}, "
         f"{machine['date']}): the graded family of `tlzoo.testing.families`, "
         f"{len(report['candidates'])} tiny BERTs ({_describe(mode['bert'])}) pre-trained on source tasks "
         "of varied relatedness to the target (all four target topics, three, two, one, none, the target words wrongly "
         f"grouped, random weights). Target: {mode['train_per_class']} training sentences per topic; truth: each "
         f"candidate fine-tuned (`lp_ft`, {mode['finetune_epochs']} epochs) and scored on "
         f"{mode['test_per_class']} test sentences per topic that the ranking never sees. {len(report['rounds'])} "
         "rounds, each a new target sample, the three sides (ranking, the fixed recipe, tlzoo's settings) alternating; "
         "median (min–max) over rounds."),
        "",
        "| Figure | Median (min–max) | Target | Result |",
        "| --- | --- | --- | --- |",
        (f"| Cost: rank all {len(report['candidates'])} / fine-tune all {len(report['candidates'])} (wall time) | "
         f"{_stat(s['cost_ratio'])} | <= {TARGETS['cost_ratio']} | {verdict[met['cost_ratio']]} |"),
        (f"| (for context) the same without extracting the winner's held-out features for `adapt()` "
         f"(`warm_cache=False`: the choosing alone) | {_stat(s['cost_ratio_without_warm_cache'])} | | |"),
        (f"| Kendall tau-b, combined score vs fine-tuned accuracy | {_stat(s['kendall_tau'])} | "
         f">= {TARGETS['kendall_tau']} | {verdict[met['kendall_tau']]} |"),
        (f"| Top pick: best fine-tuned accuracy − the pick's, points | {_stat(s['top_pick_gap_points'])} | "
         f"<= {TARGETS['top_pick_gap_points']:g} | {verdict[met['top_pick_gap_points']]} |"),
        "",
        ("The same rankings against every candidate fine-tuned as `tlzoo.adapt(source, data, strategy=\"lp_ft\")` "
         "does with no settings (its own learning rate and epochs, early stopping on a validation split it holds "
         "out), in the same rounds:"),
        "",
        "| Figure | Median (min–max) | Target |",
        "| --- | --- | --- |",
        (f"| Cost: rank all / fine-tune all with tlzoo's settings | {_stat(d['cost_ratio'])} | "
         f"<= {TARGETS['cost_ratio']} |"),
        (f"| Kendall tau-b, combined score vs that fine-tuned accuracy | {_stat(d['kendall_tau'])} | "
         f">= {TARGETS['kendall_tau']} |"),
        (f"| Top pick's gap, points | {_stat(d['top_pick_gap_points'])} | "
         f"<= {TARGETS['top_pick_gap_points']:g} |"),
        "",
        (f"Absolute times, for context: ranking {_stat(s['rank_seconds'])} s, fine-tuning every candidate "
         f"{_stat(s['finetune_seconds'])} s (with tlzoo's settings {_stat(d['finetune_seconds'])} s)."),
        "",
        _phases_sentence(report),
        "",
        "| Round | tau (combined) | tau k-NN | tau LogME | tau linear probe | top pick | best fine-tuned |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for i, r in enumerate(report["rounds"], 1):
        by = r["kendall_tau_by_estimator"]
        lines.append(f"| {i} | {r['kendall_tau']:.3f} | {by['knn']:.3f} | {by['logme']:.3f} | {by['linear_probe']:.3f} "
                     f"| {r['top_pick']} | {r['best_finetuned']} |")
    last = report["rounds"][-1]
    lines += ["", "Fine-tuned test accuracy and combined score of the last round:", "",
              "| Candidate | fine-tuned accuracy | combined score |", "| --- | --- | --- |"]
    for member in report["candidates"]:
        lines.append(f"| {member} | {last['finetuned_accuracy'][member]:.3f} | {last['scores'][member]:.3f} |")
    return "\n".join(lines) + "\n"


def _phases_sentence(report: dict[str, Any]) -> str:
    """Where the ranking's time went in the median round, from the rows' ``timings`` summed over the candidates."""
    rounds = sorted(report["rounds"], key=lambda r: r["rank_seconds"])
    middle = rounds[(len(rounds) - 1) // 2]
    median, total = middle["rank_phases"], middle["rank_seconds"]
    names = {"load": "loading the models", "features": "extracting the training features", "knn": "k-NN",
             "logme": "LogME", "linear_probe": "the linear probe",
             "held_out_features": "extracting the winner's held-out features for `adapt()` (`warm_cache`)"}
    parts = ", ".join(f"{names[p]} {median[p]:.2f} s ({median[p] / total:.0%})" for p in PHASES)
    rest = total - sum(median.values())
    floor = (median["load"] + median["features"]) / middle["finetune_seconds"]
    return (f"Where the ranking's time went (the round of the median ranking time, {total:.2f} s, summed over "
            f"the candidates): {parts}; the rest "
            f"(reading and splitting the data, resolving the candidates, combining) {rest:.2f} s. Loading the "
            f"models and extracting their training features, which every fine-tuning run pays too, come to "
            f"{floor:.3f} of fine-tuning every candidate in that round on their own: with models and data this "
            "small, fixed costs per candidate dominate both sides.")


def update_page(page: Path, section: str) -> None:
    """Put *section* between its markers in *page*, or append it (with its markers) when they are not there yet."""
    put_section(page, f"{SECTION_BEGIN}\n{section.strip()}\n{SECTION_END}\n", SECTION_BEGIN, SECTION_END)


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, run, write the JSON, the section and (full run) docs/benchmarks.md."""
    parser = argparse.ArgumentParser(description="Benchmark tlzoo.rank against fine-tuning every candidate.")
    parser.add_argument("--quick", action="store_true", help="tiny sizes and one round, for CI; writes to a temp dir")
    parser.add_argument("--output", type=Path, help="folder for rank.json and rank.md (default: bench/results for "
                        "the full run, which also updates docs/benchmarks.md; a temp dir for --quick)")
    parser.add_argument("--repeats", type=int, help="rounds (default: 3 full, 1 quick)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    args = parser.parse_args(argv)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    import torch

    torch.set_num_threads(args.threads)
    mode = QUICK if args.quick else FULL
    if args.repeats:
        mode = replace(mode, repeats=args.repeats)
    output = args.output or (Path(tempfile.mkdtemp(prefix="tlzoo-bench-rank-")) if args.quick else HERE / "results")
    output.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tlzoo-bench-rank-") as work:
        report = run(mode, Path(work))
    (output / "rank.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    section = render(report)
    (output / "rank.md").write_text(section)
    if mode.name == "full" and args.output is None:
        update_page(REPO / "docs" / "benchmarks.md", section)
    log(f"wrote {output / 'rank.json'} and {output / 'rank.md'} in {report['seconds_total']} s")
    sys.stdout.write(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
