"""Benchmark of ``tlzoo.rank``: does it pick the source model fine-tuning would, at a fraction of the cost?

    python bench/rank.py           # full: about four minutes on 2 cores; writes bench/results/rank.json,
                                   #   bench/results/rank.md and its section of docs/benchmarks.md
    python bench/rank.py --quick   # smoke test (CI): tiny sizes, one round, two seeds; writes to a temp dir
    python bench/rank.py --output DIR [--repeats N] [--seeds N] [--threads N]

What it measures, on the graded family of :mod:`tlzoo.testing.families`
(seven tiny BERTs pre-trained on source tasks of varied relatedness to the
target: all four target topics, three, two, one, none, the target words
wrongly grouped, and random weights):

1. **cost**: ``tlzoo.rank`` of all seven candidates / fine-tuning every one of
   them once (``tlzoo.adapt(strategy="lp_ft")``, what a user would otherwise
   run per candidate), wall time, both from a cold feature cache (target <=
   0.10), against two fine-tunings: a short fixed recipe (5 epochs at 3e-4, no
   validation split), and tlzoo's own settings (no arguments);
2. **agreement**: Kendall's tau-b between the ranking's combined score and the
   fine-tuned test accuracy of the candidates (target >= 0.75), and of each
   estimator alone;
3. **top pick**: fine-tuned accuracy of the best candidate minus that of the
   ranking's pick, in accuracy points (target <= 2).

**The truth is a mean over seeds.** One fine-tuning run is a noisy measurement
of a candidate's fine-tuned accuracy: with tlzoo's settings the seed picks the
validation examples early stopping watches (a few per topic at this size), and
with either recipe it picks the head's initial weights and the batch order; the
weak candidates, near chance, move most. So each truth fine-tunes every
candidate ``seeds`` times (``seed=`` round, round + 100, round + 200, ...; 3 in
the full run), each seed from a cold feature cache on the same target data, and
the **mean test accuracy over the seeds** is the fine-tuned accuracy that tau
and the top pick are measured against. The report also gives both against the
first seed alone (what a single fine-tuning run per candidate would say), and
tau between two seeds' accuracies (the truth's own repeatability). The **cost
ratio stays per single fine-tuning of every candidate**: the ranking's time /
the median over the seeds of one seed's time to fine-tune all candidates (a
user choosing by fine-tuning would fine-tune each once), not of all the seeds
together.

The test split is 150 sentences per topic (600 in all): the binomial standard
error of an accuracy near 0.4 is then about 2.0 points (3.5 with the earlier
50 per topic), where the weaker members' fine-tuned accuracies sit a few
points apart; seeds do not average this noise away, as every seed is scored on
the same test split. Evaluating on it is part of each fine-tuning run's time
(the report gives its share), and of the ranking's (the winner's held-out
features, ``warm_cache``).

The three sides (the ranking and the two truths) run in the same round on the
same target data (a new target
sample, seeded by the round, each round), alternating which goes first
(``common.alternate``; a fine-tuning side runs all its seeds in its turn); the
report gives the median over rounds and the spread (min-max), and targets are
checked on the median, like ``bench/run.py``. The
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
import statistics
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
    #: fine-tuning runs of every candidate per truth and round (seeds); their mean accuracy is the truth
    seeds: int


FULL = Mode("full", {"hidden_size": 64, "num_hidden_layers": 4, "num_attention_heads": 4, "intermediate_size": 128},
            pretrain_per_class=60, pretrain_epochs=10, train_per_class=16, test_per_class=150, finetune_epochs=5,
            finetune_learning_rate=3e-4, repeats=3, seeds=3)
QUICK = Mode("quick", {}, pretrain_per_class=20, pretrain_epochs=4, train_per_class=6, test_per_class=6,
             finetune_epochs=1, finetune_learning_rate=3e-4, repeats=1, seeds=2)
#: The seed of the ``k``-th fine-tuning run of round ``index``: ``index + SEED_STRIDE * k`` (the first is the round's).
SEED_STRIDE = 100


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
        """One round of fine-tuning every candidate with *settings* (on top of ``strategy="lp_ft"``), once per seed."""

        def finetune_once() -> dict[str, Any]:
            index = calls[side]
            calls[side] += 1
            data = _target(mode, index)
            seeds = [index + SEED_STRIDE * k for k in range(mode.seeds)]
            seconds, evaluate, by_seed = [], [], []
            for seed in seeds:
                _fresh_cache()  # every seed is one cold fine-tuning of every candidate, like the ranking's cold run
                t0 = time.perf_counter()
                accuracy, evaluating = {}, 0.0
                for member, source in zip(FAMILY, sources, strict=True):
                    result = tlzoo.adapt(source, data, strategy="lp_ft", seed=seed, save_strategy="no",
                                         progress=False, **settings)
                    accuracy[member] = result.metrics["test"]["accuracy"]
                    evaluating += result.timings.get("evaluate", 0.0)
                seconds.append(time.perf_counter() - t0)
                evaluate.append(evaluating)
                by_seed.append(accuracy)
                log(f"  round {index + 1}: fine-tune all {what}, seed {seed}: {seconds[-1]:.2f} s, "
                    f"best {max(accuracy, key=accuracy.get)}")
            return {"seconds": statistics.median(seconds), "seed_seconds": seconds, "seeds": seeds,
                    "evaluate_seconds": statistics.median(evaluate), "accuracy_by_seed": by_seed,
                    "accuracy": {m: statistics.fmean(a[m] for a in by_seed) for m in FAMILY}}

        return finetune_once

    # a short fixed recipe, and tlzoo's own settings (its rate, epochs and validation split)
    finetune_once = finetuner("finetune", "(fixed recipe)", epochs=mode.finetune_epochs,
                              learning_rate=mode.finetune_learning_rate, validation_size=0.0)
    finetune_defaults_once = finetuner("finetune_defaults", "(tlzoo's settings)")

    log(f"{mode.repeats} round(s): rank all {len(FAMILY)} / fine-tune all {len(FAMILY)} "
        f"({mode.seeds} seed(s) per truth)")
    measured = alternate({"rank": rank_once, "finetune": finetune_once, "finetune_defaults": finetune_defaults_once},
                         mode.repeats)
    rounds = []
    for ranked, tuned, defaults in zip(measured["rank"], measured["finetune"], measured["finetune_defaults"],
                                       strict=True):
        figures = _round_figures(ranked, tuned)
        against = _round_figures(ranked, defaults)  # the same ranking against tlzoo's own fine-tuning
        figures["with_tlzoo_settings"] = {key: value for key, value in against.items() if key not in RANK_ONLY}
        rounds.append(figures)
    keys = [key for key in TRUTH_FIGURES if key in rounds[0]]
    summary = {key: summarise([r[key] for r in rounds]).to_dict()
               for key in ("cost_ratio_without_warm_cache", "rank_seconds", *keys)}
    summary["with_tlzoo_settings"] = {key: summarise([r["with_tlzoo_settings"][key] for r in rounds]).to_dict()
                                      for key in keys}
    return {
        "mode": mode.name, "settings": asdict(mode), "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "candidates": list(FAMILY), "machine": machine_info(), "load_average_end": load_average(),
        "family_build_seconds": round(build_seconds, 1), "targets": TARGETS, "summary": summary,
        "met": _met(summary), "met_with_tlzoo_settings": _met(summary["with_tlzoo_settings"]),
        "rounds": rounds, "seconds_total": round(time.perf_counter() - started, 1),
    }


#: The figures of a round that are the ranking's alone (the same against either truth).
RANK_ONLY = ("rank_seconds", "rank_phases", "cost_ratio_without_warm_cache", "top_pick", "scores")
#: The figures summarised over rounds for each truth (the seed-to-seed tau only when there are two seeds or more).
TRUTH_FIGURES = ("cost_ratio", "kendall_tau", "kendall_tau_single_seed", "kendall_tau_between_seeds",
                 "top_pick_gap_points", "top_pick_gap_points_single_seed", "finetune_seconds",
                 "finetune_evaluate_seconds")


def _met(summary: dict[str, Any]) -> dict[str, bool]:
    """The targets, checked on the medians over rounds (tau and the top pick against the mean over seeds)."""
    return {
        "cost_ratio": summary["cost_ratio"]["median"] <= TARGETS["cost_ratio"],
        "kendall_tau": summary["kendall_tau"]["median"] >= TARGETS["kendall_tau"],
        "top_pick_gap_points": summary["top_pick_gap_points"]["median"] <= TARGETS["top_pick_gap_points"],
    }


def _round_figures(ranked: dict[str, Any], tuned: dict[str, Any]) -> dict[str, Any]:
    """The figures of one round against one truth: cost ratio (per single fine-tuning of every candidate),
    Kendall's tau (combined and per estimator) and the top pick's gap, against the mean accuracy over the seeds
    and against the first seed alone, and tau between the seeds."""
    from itertools import combinations

    from tlzoo.testing.families import FAMILY

    accuracy, by_seed = tuned["accuracy"], tuned["accuracy_by_seed"]
    truth, first = [accuracy[m] for m in FAMILY], [by_seed[0][m] for m in FAMILY]
    combined = [ranked["scores"][m] for m in FAMILY]
    figures = {
        "rank_seconds": round(ranked["seconds"], 3),
        "rank_phases": {phase: round(value, 3) for phase, value in ranked["phases"].items()},
        "finetune_seconds": round(tuned["seconds"], 3),
        "finetune_seconds_by_seed": [round(x, 3) for x in tuned["seed_seconds"]],
        "finetune_evaluate_seconds": round(tuned["evaluate_seconds"], 3),
        "seeds": tuned["seeds"],
        "cost_ratio": ranked["seconds"] / tuned["seconds"],
        "cost_ratio_without_warm_cache": (ranked["seconds"] - ranked["phases"]["held_out_features"]) / tuned["seconds"],
        "kendall_tau": _kendall(combined, truth),
        "kendall_tau_single_seed": _kendall(combined, first),
        "kendall_tau_by_estimator": {name: round(_kendall([values[m] for m in FAMILY], truth), 3)
                                     for name, values in ranked["estimators"].items()},
        "top_pick": ranked["best"],
        "best_finetuned": max(FAMILY, key=lambda m: accuracy[m]),
        "best_finetuned_single_seed": max(FAMILY, key=lambda m: by_seed[0][m]),
        "top_pick_gap_points": 100 * (max(truth) - accuracy[ranked["best"]]),
        "top_pick_gap_points_single_seed": 100 * (max(first) - by_seed[0][ranked["best"]]),
        "finetuned_accuracy": {m: round(accuracy[m], 4) for m in FAMILY},
        "finetuned_accuracy_by_seed": [{m: round(a[m], 4) for m in FAMILY} for a in by_seed],
        "scores": {m: ranked["scores"][m] for m in FAMILY},
    }
    if len(by_seed) > 1:  # how well one fine-tuning run agrees with another: the truth's own repeatability
        figures["kendall_tau_between_seeds"] = statistics.fmean(
            _kendall([a[m] for m in FAMILY], [b[m] for m in FAMILY]) for a, b in combinations(by_seed, 2))
    return figures


def _describe(bert: dict[str, int]) -> str:
    """``hidden 64, 4 layers, 4 heads, MLP 128`` (the defaults of ``build_tiny_bert`` where not given)."""
    sizes = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64, **bert}
    return (f"hidden {sizes['hidden_size']}, {sizes['num_hidden_layers']} layers, {sizes['num_attention_heads']} "
            f"heads, MLP {sizes['intermediate_size']}")


def _stat(stats: dict[str, Any], digits: int = 3) -> str:
    return f"{stats['median']:.{digits}g} ({stats['min']:.{digits}g}–{stats['max']:.{digits}g})"


def render(report: dict[str, Any]) -> str:
    """The Markdown section of docs/benchmarks.md."""
    s, mode = report["summary"], report["settings"]
    d = s["with_tlzoo_settings"]
    machine = report["machine"]
    n, seeds = len(report["candidates"]), mode["seeds"]
    mean = f"mean of {seeds} seeds" if seeds > 1 else "one seed"
    lines = [
        "## Ranking source models: `tlzoo.rank` against fine-tuning every candidate",
        "",
        (f"Measured by `python bench/rank.py` ({report['mode']} mode; {machine['cpu']}, "
         f"{machine['usable_cores']} cores, OMP_NUM_THREADS={report['omp_num_threads']}, "
         f"torch threads {machine['torch_threads']}, "
         f"{machine['date']}): the graded family of `tlzoo.testing.families`, "
         f"{n} tiny BERTs ({_describe(mode['bert'])}) pre-trained on source tasks "
         "of varied relatedness to the target (all four target topics, three, two, one, none, the target words wrongly "
         f"grouped, random weights). Target: {mode['train_per_class']} training sentences per topic; truth: each "
         f"candidate fine-tuned with `lp_ft` {_times(seeds)} (seeds round, round + {SEED_STRIDE}, ...), each run "
         f"scored on the same {mode['test_per_class']} test sentences per topic that the ranking never sees, "
         f"the **{'mean test accuracy over the seeds' if seeds > 1 else 'test accuracy'}** being the fine-tuned "
         f"accuracy. {len(report['rounds'])} rounds, each a new target sample, the three sides (ranking, the fixed "
         "recipe, tlzoo's settings) alternating; median (min–max) over rounds. The cost ratio is per **single** "
         f"fine-tuning of every candidate: the ranking's time / one seed's time to fine-tune all {n}"
         f"{' (the median over the seeds)' if seeds > 1 else ''}, what choosing by fine-tuning would cost."),
        "",
        (f"Against a short fixed recipe (`lp_ft`, {mode['finetune_epochs']} epoch"
         f"{'s' if mode['finetune_epochs'] != 1 else ''} at "
         f"{mode['finetune_learning_rate']:g}, no validation split):"),
        "",
        *_truth_table(s, report["met"], seeds, mean, n, warm_cache=True),
        "",
        ("The same rankings against every candidate fine-tuned as `tlzoo.adapt(source, data, strategy=\"lp_ft\", "
         "seed=...)` does with no other settings (its own learning rate and epochs, early stopping on a validation "
         "split it holds out, a new one per seed), in the same rounds:"),
        "",
        *_truth_table(d, report["met_with_tlzoo_settings"], seeds, mean, n, warm_cache=False),
        "",
        (f"Absolute times, for context: ranking {_stat(s['rank_seconds'])} s; one fine-tuning of every candidate "
         f"{_stat(s['finetune_seconds'])} s with the fixed recipe, {_stat(d['finetune_seconds'])} s with tlzoo's "
         f"settings (of which evaluating on the test split {_stat(s['finetune_evaluate_seconds'], 2)} s and "
         f"{_stat(d['finetune_evaluate_seconds'], 2)} s)"
         + (f"; each truth ran it {_times(seeds)} a round." if seeds > 1 else ".")),
        "",
        _phases_sentence(report),
        "",
        (f"Per round, Kendall tau-b of the combined score against each truth ({mean} / the first seed alone), of each "
         "estimator against the fixed recipe's mean, and the picks:"),
        "",
        ("| Round | tau, fixed recipe | tau, tlzoo's settings | tau k-NN | tau LogME | tau linear probe | top pick "
         "| best fine-tuned (fixed / tlzoo's) |"),
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for i, r in enumerate(report["rounds"], 1):
        by, t = r["kendall_tau_by_estimator"], r["with_tlzoo_settings"]
        lines.append(f"| {i} | {r['kendall_tau']:.3f} / {r['kendall_tau_single_seed']:.3f} "
                     f"| {t['kendall_tau']:.3f} / {t['kendall_tau_single_seed']:.3f} "
                     f"| {by['knn']:.3f} | {by['logme']:.3f} | {by['linear_probe']:.3f} "
                     f"| {r['top_pick']} | {r['best_finetuned']} / {t['best_finetuned']} |")
    last = report["rounds"][-1]
    tl = last["with_tlzoo_settings"]
    lines += ["", "Fine-tuned test accuracy (each seed, then the mean) and combined score of the last round:", "",
              "| Candidate | fixed recipe, by seed | mean | tlzoo's settings, by seed | mean | combined score |",
              "| --- | --- | --- | --- | --- | --- |"]
    for member in report["candidates"]:
        fixed = " / ".join(f"{a[member]:.3f}" for a in last["finetuned_accuracy_by_seed"])
        own = " / ".join(f"{a[member]:.3f}" for a in tl["finetuned_accuracy_by_seed"])
        lines.append(f"| {member} | {fixed} | {last['finetuned_accuracy'][member]:.3f} | {own} "
                     f"| {tl['finetuned_accuracy'][member]:.3f} | {last['scores'][member]:.3f} |")
    return "\n".join(lines) + "\n"


def _times(seeds: int) -> str:
    return "once" if seeds == 1 else "twice" if seeds == 2 else f"{seeds} times"


def _truth_table(s: dict[str, Any], met: dict[str, bool], seeds: int, mean: str, n: int, *,
                 warm_cache: bool) -> list[str]:
    """The figures against one truth: the targets on the mean over seeds, the first seed alone for context."""
    verdict = {True: "**met**", False: "**missed**"}
    rows = ["| Figure | Median (min–max) | Target | Result |", "| --- | --- | --- | --- |",
            (f"| Cost: rank all {n} / fine-tune all {n} once (wall time) | {_stat(s['cost_ratio'])} | "
             f"<= {TARGETS['cost_ratio']} | {verdict[met['cost_ratio']]} |")]
    if warm_cache:
        rows.append(f"| (for context) the same without extracting the winner's held-out features for `adapt()` "
                    f"(`warm_cache=False`: the choosing alone) | {_stat(s['cost_ratio_without_warm_cache'])} | | |")
    rows.append(f"| Kendall tau-b, combined score vs fine-tuned accuracy ({mean}) | {_stat(s['kendall_tau'])} | "
                f">= {TARGETS['kendall_tau']} | {verdict[met['kendall_tau']]} |")
    if seeds > 1:
        rows += [f"| (for context) the same against the first seed's fine-tuning alone | "
                 f"{_stat(s['kendall_tau_single_seed'])} | | |",
                 f"| (for context) Kendall tau-b between two seeds' fine-tuned accuracies (mean over the pairs): "
                 f"how well one fine-tuning run reproduces another | {_stat(s['kendall_tau_between_seeds'])} | | |"]
    rows.append(f"| Top pick: best fine-tuned accuracy − the pick's ({mean}), points | "
                f"{_stat(s['top_pick_gap_points'])} | <= {TARGETS['top_pick_gap_points']:g} | "
                f"{verdict[met['top_pick_gap_points']]} |")
    if seeds > 1:
        rows.append(f"| (for context) the same against the first seed alone | "
                    f"{_stat(s['top_pick_gap_points_single_seed'])} | | |")
    return rows


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
            f"{floor:.3f} of one fine-tuning of every candidate (the fixed recipe) in that round on their own: "
            "with models and data this small, fixed costs per candidate dominate both sides.")


def update_page(page: Path, section: str) -> None:
    """Put *section* between its markers in *page*, or append it (with its markers) when they are not there yet."""
    put_section(page, f"{SECTION_BEGIN}\n{section.strip()}\n{SECTION_END}\n", SECTION_BEGIN, SECTION_END)


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, run, write the JSON, the section and (full run) docs/benchmarks.md."""
    parser = argparse.ArgumentParser(description="Benchmark tlzoo.rank against fine-tuning every candidate.")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one round and two seeds, for CI; writes "
                        "to a temp dir")
    parser.add_argument("--output", type=Path, help="folder for rank.json and rank.md (default: bench/results for "
                        "the full run, which also updates docs/benchmarks.md; a temp dir for --quick)")
    parser.add_argument("--repeats", type=int, help="rounds (default: 3 full, 1 quick)")
    parser.add_argument("--seeds", type=int, help="fine-tuning runs of every candidate per truth and round, their "
                        "mean accuracy being the truth (default: 3 full, 2 quick)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    args = parser.parse_args(argv)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    import torch

    torch.set_num_threads(args.threads)
    mode = QUICK if args.quick else FULL
    if args.repeats:
        mode = replace(mode, repeats=args.repeats)
    if args.seeds:
        mode = replace(mode, seeds=args.seeds)
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
