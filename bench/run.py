"""tlzoo's benchmarks: one command runs them all.

    python bench/run.py            # full: ~10 min on 2 cores; writes docs/benchmarks.md
                                   #   and bench/results/latest.json
    python bench/run.py --quick    # smoke test (CI): tiny sizes, < 1 min; writes to a temp dir
    python bench/run.py --output DIR [--only 1,3] [--repeats N] [--profile]

Methodology
-----------
The machines this runs on are shared: another process can take a core at any
moment and absolute times move by a factor of several within minutes. So

1. **every figure is a ratio of two things measured in the same run** -- tlzoo
   against a baseline written by hand from transformers/accelerate on the same
   model, data, preprocessing, batch size and optimizer (see ``workloads.py``);
2. **the two sides alternate** (A, B, A, B, ... with the order rotated each
   round, see :func:`common.alternate`), and each ratio is formed from the
   measurements of one round, so a slow spell hits both sides alike;
3. **rounds are repeated** and the report gives the **median ratio and its
   spread (min-max)**; targets are checked on the median;
4. per-step times are taken **after a warm-up** (the first epoch of each run is
   discarded) and exclude one-time setup (loading the model, ``prepare``); for
   figure 1 tlzoo's loop and the hand loop even alternate epoch by epoch within
   one run, and CPU time (``process_time``) is reported beside wall time;
5. **one intra-op thread** (``--threads 1``, the default) on both sides: with
   torch's default of one thread per core, any other busy process on a 2-core
   machine makes the OpenMP threads wait for each other, and the same ViT
   training step measured 1.8-8.1 s with 2 threads against 0.36-0.39 s with 1
   (``docs/benchmarks.md``, findings): the ratios would drown in that noise.
   ``--threads 2`` measures the other setting on a quiet machine;
6. memory is the peak resident set size of a **fresh Python subprocess** per
   measurement, read at its end (``VmHWM``; ``ru_maxrss`` is recorded too, but on
   Linux it inherits the parent's RSS across fork + exec: see ``scaling_child.py``);
7. the feature cache (``TLZOO_CACHE``) is a fresh temporary directory for every
   "first" run; no test asserts on any timing -- CI only runs ``--quick`` to
   check that the benchmarks still run and report every figure.

The figures (targets from the issue that introduced ``bench/``):

1. full fine-tuning, time per optimizer step: tlzoo / hand Accelerate loop (<= 1.05); also / ``transformers.Trainer``
2. linear probe, 10 epochs, ``adapt()`` total / one plain forward pass over the same data (<= 1.3);
   also a probe that recomputes features every epoch (``use_feature_cache=False``) / the cached probe
3. second run, same data and model (feature-cache hit) / first run (<= 0.1)
4. scaling N, 4N, 16N examples: time 16N/N (<= 17, i.e. linear) and peak RSS 16N/N (flat: <= 1.1)
5. data loading: preprocessing throughput / model forward throughput (>= 2), per modality
6. start-up: ``import tlzoo`` and ``tlzoo --help`` wall time (< 0.5 s), also / a bare ``python -c pass``
7. the GPU variant of 1 and 2 (only when ``torch.cuda.is_available()``; otherwise reported as skipped)

Hand-written findings about missed targets live in ``bench/findings.md`` and are
copied into ``docs/benchmarks.md`` each time the full benchmark writes it.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

sys.path.insert(0, str(HERE))

# first, before anything imports accelerate: common sets the benchmarks' environment
from common import Sizes, Stats, Timer, alternate, load_average, machine_info, ratios, summarise

SCHEMA = 1

FIGURES: dict[str, str] = {
    "1": "full_finetune",
    "2": "linear_probe",
    "3": "cache_hit",
    "4": "scaling",
    "5": "data_loading",
    "6": "startup",
    "7": "gpu",
}


@dataclass(frozen=True)
class Mode:
    """Sizes and repetition counts of one benchmark mode."""

    name: str
    sizes: Sizes
    batch_size: int
    ft_models: tuple[str, ...]
    ft_examples: int  # training examples of figure 1 (all in the train split)
    ft_epochs: int  # the first is the warm-up, the rest are timed
    ft_repeats: int
    trainer_models: tuple[str, ...]
    probe_examples: int  # figures 2 and 3 (split 72/8/20 train/validation/test by adapt)
    probe_epochs: int
    probe_repeats: int
    scaling_n: int
    scaling_repeats: int
    loading_models: tuple[str, ...]
    loading_batches: int
    loading_repeats: int
    startup_repeats: int


QUICK = Mode(
    name="quick",
    sizes=Sizes(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                image_size=32, patch_size=8, audio_seconds=0.25),
    batch_size=16, ft_models=("vit", "bert", "wav2vec2"), ft_examples=32, ft_epochs=3, ft_repeats=1,
    trainer_models=("vit", "bert", "wav2vec2"),
    probe_examples=48, probe_epochs=10, probe_repeats=2, scaling_n=16, scaling_repeats=1,
    loading_models=("vit", "bert", "wav2vec2"), loading_batches=2, loading_repeats=2, startup_repeats=2,
)

FULL = Mode(
    name="full",
    sizes=Sizes(hidden_size=192, num_hidden_layers=6, num_attention_heads=3, intermediate_size=768,
                image_size=64, patch_size=16, audio_seconds=0.25),
    batch_size=32, ft_models=("vit", "bert", "wav2vec2"), ft_examples=128, ft_epochs=5, ft_repeats=3,
    trainer_models=("vit",),
    probe_examples=384, probe_epochs=10, probe_repeats=4, scaling_n=192, scaling_repeats=2,
    loading_models=("vit", "bert", "wav2vec2"), loading_batches=6, loading_repeats=3, startup_repeats=7,
)


def log(message: str) -> None:
    """Progress on stderr, with the elapsed time and the machine's load."""
    elapsed = time.perf_counter() - STARTED
    load = load_average()
    sys.stderr.write(f"[{elapsed:6.1f}s load {load[0] if load else '?'}] {message}\n")
    sys.stderr.flush()


STARTED = time.perf_counter()


@dataclass
class Context:
    """What every figure gets: the mode, the built workloads, a scratch folder, options."""

    mode: Mode
    works: dict[str, Any]
    scratch: Path
    profile_dir: Path | None


def figure(title: str, *, ratio: Stats | None, target: str, met: bool | None, **details: Any) -> dict[str, Any]:
    """The JSON record of one figure: its deciding ratio, target, verdict and details."""
    return {"title": title, "ratio": ratio.to_dict() if ratio else None, "target": target, "met": met, **details}


def stats_dict(values: dict[str, Stats]) -> dict[str, dict[str, Any]]:
    """``{name: Stats}`` in JSON form."""
    return {k: v.to_dict() for k, v in values.items()}


def maybe_profile(ctx: Context, name: str, fn: Callable[[], Any]) -> None:
    """With ``--profile``: run *fn* once more under pyinstrument and save the text profile."""
    if ctx.profile_dir is None:
        return
    try:
        from pyinstrument import Profiler
    except ImportError:
        log("  (pyinstrument is not installed; no profile)")
        return
    profiler = Profiler(interval=0.002)
    profiler.start()
    try:
        fn()
    finally:
        profiler.stop()
    ctx.profile_dir.mkdir(parents=True, exist_ok=True)
    path = ctx.profile_dir / f"{name}.txt"
    path.write_text(profiler.output_text(unicode=False, color=False, show_all=False))
    log(f"  profile written to {path}")


# ---------------------------------------------------------------------------
# 1. full fine-tuning: time per optimizer step
# ---------------------------------------------------------------------------


def fig_full_finetune(ctx: Context) -> dict[str, Any]:
    """tlzoo's time per optimizer step / a hand Accelerate loop's (and / Trainer's), per model."""
    from workloads import interleaved_finetune, per_step, trainer_loop

    mode = ctx.mode
    bs, epochs = mode.batch_size, mode.ft_epochs
    steps = math.ceil(mode.ft_examples / bs)
    cases: dict[str, Any] = {}
    for name in mode.ft_models:
        work = ctx.works[name]
        ds = work.data(mode.ft_examples, seed=1)
        log(f"  figure 1, {name}: {mode.ft_examples} examples, batch {bs} ({steps} steps per epoch), "
            f"{epochs} epochs of which {epochs - 1} timed, {mode.ft_repeats} rounds")
        pairs: list[dict[str, float]] = []
        tlzoo_round: list[dict[str, float]] = []
        trainer_round: list[dict[str, float]] = []
        for rnd in range(mode.ft_repeats):
            got = interleaved_finetune(work, ds, epochs=epochs, batch_size=bs)
            pairs += got
            tlzoo_round.append({k: sum(p[f"tlzoo_{k}"] for p in got) / (steps * len(got)) for k in ("wall", "cpu")})
            log(f"    round {rnd + 1}/{mode.ft_repeats} tlzoo / hand per epoch: "
                + ", ".join(f"{p['tlzoo_wall'] / p['hand_wall']:.3f}" for p in got)
                + f" (s/step tlzoo {tlzoo_round[-1]['wall']:.3g})")
            if name in mode.trainer_models:
                trainer_round.append(per_step(trainer_loop(work, ds, epochs=epochs, batch_size=bs), steps))
                log(f"    round {rnd + 1}/{mode.ft_repeats} Trainer s/step {trainer_round[-1]['wall']:.3g}")
        per = {f"{who}_{kind}": [p[f"{who}_{kind}"] / steps for p in pairs]
               for who in ("tlzoo", "hand") for kind in ("wall", "cpu")}
        case: dict[str, Any] = {
            "ratio": ratios(per["tlzoo_wall"], per["hand_wall"]).to_dict(),
            "ratio_cpu": ratios(per["tlzoo_cpu"], per["hand_cpu"]).to_dict(),
            "seconds_per_step": {"tlzoo": summarise(per["tlzoo_wall"]).to_dict(),
                                 "hand_accelerate": summarise(per["hand_wall"]).to_dict()},
            "cpu_seconds_per_step": {"tlzoo": summarise(per["tlzoo_cpu"]).to_dict(),
                                     "hand_accelerate": summarise(per["hand_cpu"]).to_dict()},
            "examples": mode.ft_examples, "steps_per_epoch": steps, "timed_epoch_pairs": len(pairs),
        }
        if trainer_round:
            for kind, key in (("wall", "ratio_vs_trainer"), ("cpu", "ratio_vs_trainer_cpu")):
                case[key] = ratios([r[kind] for r in tlzoo_round], [r[kind] for r in trainer_round]).to_dict()
            case["seconds_per_step"]["trainer"] = summarise([r["wall"] for r in trainer_round]).to_dict()
            case["cpu_seconds_per_step"]["trainer"] = summarise([r["cpu"] for r in trainer_round]).to_dict()
        cases[name] = case
        maybe_profile(ctx, f"1_full_finetune_{name}",
                      lambda work=work, ds=ds: interleaved_finetune(work, ds, epochs=epochs, batch_size=bs))
    worst = max(cases, key=lambda n: cases[n]["ratio"]["median"])
    return figure(
        "Full fine-tuning: time per optimizer step, tlzoo / hand-written Accelerate loop",
        ratio=_stats(cases[worst]["ratio"]), target="<= 1.05",
        met=all(c["ratio"]["median"] <= 1.05 for c in cases.values()),
        deciding_case=worst, cases=cases, batch_size=bs,
        includes="tlzoo's loop and the hand loop run in turn, epoch by epoch (tlzoo 1, hand 1, tlzoo 2, hand 2, ...; "
                 "the first epoch of each is a warm-up), and each ratio compares two neighbouring epochs; an epoch's "
                 "time covers data loading, preprocessing, forward, backward, clipping, AdamW and scheduler steps "
                 "and the loop's per-epoch work, not model loading or prepare(). CPU-time ratios (process_time over "
                 "the same spans) are given too, being much less sensitive to other processes. Trainer runs are "
                 "whole runs alternating with the tlzoo runs (ratio per round)",
    )


def _stats(d: dict[str, Any]) -> Stats:
    """A :class:`Stats` back from its JSON form."""
    return Stats(d["median"], d["min"], d["max"], list(d.get("samples", [])))


# ---------------------------------------------------------------------------
# 2 + 3. linear probe vs one plain forward pass; cache hit vs first run
# ---------------------------------------------------------------------------


def fig_probe(ctx: Context) -> tuple[dict[str, Any], dict[str, Any]]:
    """Figures 2 and 3 from one alternation: first probe, second probe, plain forward, no-cache probe."""
    from workloads import HandCollate, fresh_cache_dir, load_hand, plain_forward, run_adapt, undecoded

    mode = ctx.mode
    work = ctx.works["vit"]
    ds = work.data(mode.probe_examples, seed=2)
    raw = undecoded(work, ds)
    model, processor = load_hand(work)
    collate = HandCollate(work, processor)
    kwargs = {"strategy": "linear_probe", "epochs": mode.probe_epochs, "batch_size": mode.batch_size}
    first_timings: list[dict[str, float]] = []
    second_timings: list[dict[str, float]] = []
    second_cache: list[dict[str, int]] = []
    log(f"  figures 2+3, vit: {mode.probe_examples} examples, {mode.probe_epochs} probe epochs")

    def probe_pair() -> float:
        with fresh_cache_dir() as cache:
            first = run_adapt(work, ds, cache_dir=cache, **kwargs)
            second = run_adapt(work, ds, cache_dir=cache, **kwargs)
        first_timings.append(first.timings)
        second_timings.append(second.timings)
        second_cache.append(dict(second.recipe.get("feature_cache") or {}))
        return first.timings["total"]

    def forward() -> float:
        return plain_forward(model, collate, raw, batch_size=mode.batch_size)

    def no_cache() -> float:
        return run_adapt(work, ds, use_feature_cache=False, **kwargs).timings["total"]

    runs = alternate({"tlzoo_probe": probe_pair, "plain_forward": forward, "tlzoo_probe_no_cache": no_cache},
                     mode.probe_repeats, log)
    first_total = runs["tlzoo_probe"]
    second_total = [t["total"] for t in second_timings]
    phase = {key: summarise([t.get(key, 0.0) for t in first_timings])
             for key in ("data", "load_model", "features", "linear_probe", "evaluate", "total")}
    phase2 = {key: summarise([t.get(key, 0.0) for t in second_timings])
              for key in ("data", "load_model", "features", "linear_probe", "evaluate", "total")}

    def profiled_pair() -> None:
        with fresh_cache_dir() as cache:
            maybe_profile(ctx, "2_linear_probe_first_run", lambda: run_adapt(work, ds, cache_dir=cache, **kwargs))
            maybe_profile(ctx, "3_cache_hit_second_run", lambda: run_adapt(work, ds, cache_dir=cache, **kwargs))

    if ctx.profile_dir is not None:
        profiled_pair()
    r2 = ratios(first_total, runs["plain_forward"])
    fig2 = figure(
        "Linear probe (10 epochs): adapt() total / one plain forward pass over the same data",
        ratio=r2, target="<= 1.3", met=r2.median <= 1.3,
        cases={"vit": {
            "ratio": r2.to_dict(),
            "features_phase_vs_forward": ratios([t["features"] for t in first_timings], runs["plain_forward"]).to_dict(),
            "probe_phase_vs_forward": ratios([t["linear_probe"] for t in first_timings], runs["plain_forward"]).to_dict(),
            "no_cache_vs_cached": ratios(runs["tlzoo_probe_no_cache"], first_total).to_dict(),
            "no_cache_vs_forward": ratios(runs["tlzoo_probe_no_cache"], runs["plain_forward"]).to_dict(),
            "seconds": stats_dict({k: summarise(v) for k, v in runs.items()}),
            "tlzoo_timings": stats_dict(phase),
        }},
        deciding_case="vit", examples=mode.probe_examples, epochs=mode.probe_epochs,
        includes="adapt() from call to return (data checks and split, model loading, feature extraction over "
                 "train/validation/test, 10 head epochs with validation, test evaluation) vs preprocessing + "
                 "backbone forward over the same examples, model already loaded",
    )

    r3 = ratios(second_total, first_total)
    fig3 = figure(
        "Second run on the same data and model (feature-cache hit) / first run",
        ratio=r3, target="<= 0.1", met=r3.median <= 0.1,
        cases={"vit": {"ratio": r3.to_dict(), "first_timings": stats_dict(phase), "second_timings": stats_dict(phase2),
                       "second_run_cache": second_cache[-1] if second_cache else {}}},
        deciding_case="vit", examples=mode.probe_examples, epochs=mode.probe_epochs,
        includes="adapt() total, both runs with the same TLZOO_CACHE (empty before the first)",
    )
    return fig2, fig3


# ---------------------------------------------------------------------------
# 4. scaling
# ---------------------------------------------------------------------------


def fig_scaling(ctx: Context) -> dict[str, Any]:
    """Linear-probe time and peak RSS for N, 4N, 16N examples, each in a fresh subprocess."""
    mode = ctx.mode
    work = ctx.works["vit"]
    n = mode.scaling_n
    sizes = {"N": n, "4N": 4 * n, "16N": 16 * n}
    data_dir = ctx.scratch / "scaling-data"
    log(f"  figure 4: making {16 * n} images")
    work.data(16 * n, seed=3).save_to_disk(str(data_dir))
    gc.collect()
    results: dict[str, list[dict[str, Any]]] = {k: [] for k in sizes}

    def child(label: str, extra_env: dict[str, str] | None = None,
              store: dict[str, list[dict[str, Any]]] = results) -> Callable[[], float]:
        def run() -> float:
            with tempfile.TemporaryDirectory(prefix="tlzoo-bench-cache-") as cache:
                env = {**os.environ, "TLZOO_CACHE": cache, **(extra_env or {})}
                cmd = [sys.executable, str(HERE / "scaling_child.py"), "--model", str(work.folder), "--data",
                       str(data_dir), "--n", str(sizes[label]), "--epochs", str(mode.probe_epochs),
                       "--batch-size", str(mode.batch_size), "--second-run"]
                proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
            if proc.returncode != 0:
                raise RuntimeError(f"scaling child for {label} failed:\n{proc.stderr[-3000:]}")
            record = json.loads(proc.stdout.strip().splitlines()[-1])
            store.setdefault(label, []).append(record)
            return float(record["seconds"])
        return run

    # full mode: N and 16N once more with glibc's mmap threshold pinned (malloc then cannot raise it and keep
    # freed buffers on its heap): how much of any growth is the allocator rather than memory tlzoo holds
    pinned: dict[str, list[dict[str, Any]]] = {}
    pinned_env = {"MALLOC_MMAP_THRESHOLD_": "65536"}
    if mode.name == "quick":
        # side by side, to stay under a minute: the quick numbers only show that the code path works
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(len(sizes)) as pool:
            futures = {label: pool.submit(child(label)) for label in sizes}
            runs = {label: [f.result()] for label, f in futures.items()}
    else:
        runs = alternate({label: child(label) for label in sizes}, mode.scaling_repeats, log)
        for label in ("N", "16N"):
            child(label, pinned_env, pinned)()
    peak = {label: [r["peak_rss_mb"] for r in results[label]] for label in sizes}
    anon = {label: [r["peak_rss_anon_sampled_mb"] for r in results[label]] for label in sizes}
    growth = {label: [r["peak_rss_mb"] - r["rss_before_adapt_mb"] for r in results[label]] for label in sizes}
    second = {label: [r["second_run_seconds"] / r["seconds"] for r in results[label]] for label in sizes}
    t16 = ratios(runs["16N"], runs["N"])
    m16 = ratios(peak["16N"], peak["N"])
    pinned_cases: dict[str, Any] = {}
    if pinned:
        pinned_cases = {
            "peak_rss_16N_over_N_malloc_mmap_threshold_64k": {"ratio": ratios(
                [r["peak_rss_mb"] for r in pinned["16N"]], [r["peak_rss_mb"] for r in pinned["N"]]).to_dict()},
            "peak_rss_anon_16N_over_N_malloc_mmap_threshold_64k": {"ratio": ratios(
                [r["peak_rss_anon_sampled_mb"] for r in pinned["16N"]],
                [r["peak_rss_anon_sampled_mb"] for r in pinned["N"]]).to_dict()},
        }
    return figure(
        "Scaling: linear-probe time and peak memory for N, 4N, 16N examples",
        ratio=t16, target="time 16N/N <= 17 and peak RSS 16N/N <= 1.1",
        met=t16.median <= 17 and m16.median <= 1.1, deciding_case="time_16N_over_N",
        cases={
            "time_16N_over_N": {"ratio": t16.to_dict()},
            "time_4N_over_N": {"ratio": ratios(runs["4N"], runs["N"]).to_dict()},
            "peak_rss_16N_over_N": {"ratio": m16.to_dict()},
            "peak_rss_4N_over_N": {"ratio": ratios(peak["4N"], peak["N"]).to_dict()},
            "peak_rss_anon_16N_over_N": {"ratio": ratios(anon["16N"], anon["N"]).to_dict()},
            **pinned_cases,
        },
        examples=sizes,
        runs=results,
        seconds=stats_dict({k: summarise(v) for k, v in runs.items()}),
        seconds_per_example=stats_dict({k: summarise([s / sizes[k] for s in v]) for k, v in runs.items()}),
        peak_rss_mb=stats_dict({k: summarise(v) for k, v in peak.items()}),
        rss_growth_during_adapt_mb=stats_dict({k: summarise(v) for k, v in growth.items()}),
        peak_rss_anon_sampled_mb=stats_dict({k: summarise(v) for k, v in anon.items()}),
        runs_malloc_mmap_threshold_64k=pinned,
        second_run_over_first=stats_dict({k: summarise(v) for k, v in second.items()}),
        second_run_seconds=stats_dict({k: summarise([r["second_run_seconds"] for r in results[k]]) for k in sizes}),
        timings_16N=stats_dict({k: summarise([r["timings"].get(k, 0.0) for r in results["16N"]])
                                for k in results["16N"][0]["timings"]}),
        second_run_timings_16N=stats_dict({k: summarise([r["second_run_timings"].get(k, 0.0) for r in results["16N"]])
                                           for k in results["16N"][0]["second_run_timings"]}),
        includes="adapt(strategy='linear_probe', 10 epochs) total, timed inside a fresh python process (its lazy "
                 "imports done before the clock starts) reading the dataset from disk (memory-mapped Arrow); "
                 "peak RSS = VmHWM of that process after the run; then a second identical run (feature-cache "
                 "hit) is timed in the same process",
    )


# ---------------------------------------------------------------------------
# 5. data loading
# ---------------------------------------------------------------------------


def fig_data_loading(ctx: Context) -> dict[str, Any]:
    """Preprocessing throughput / forward throughput, per modality, batch by batch in turn."""
    import torch
    from workloads import undecoded

    from tlzoo.plugins import get_modality
    from tlzoo.training.batches import Collate, ExampleBatches

    mode = ctx.mode
    bs, nb = mode.batch_size, mode.loading_batches
    cases: dict[str, Any] = {}
    for name in mode.loading_models:
        work = ctx.works[name]
        ds = undecoded(work, work.data(bs * nb, seed=4))
        extractor = get_modality(work.modality).build_feature_extractor(str(work.folder)).eval()
        batches = ExampleBatches(ds, work.input_column, "label")
        collate = Collate(extractor.preprocess, "single_label_classification", 3)
        pre_s: list[float] = []
        fwd_s: list[float] = []
        log(f"  figure 5, {name}: {nb} batches of {bs}, {mode.loading_repeats} rounds")
        with torch.no_grad():
            extractor(**collate(batches.__getitems__(list(range(bs))))["inputs"])  # warm-up
            for _ in range(mode.loading_repeats):
                pre = fwd = 0.0
                for b in range(nb):
                    with Timer() as t:
                        batch = collate(batches.__getitems__(list(range(b * bs, (b + 1) * bs))))
                    pre += t.seconds
                    with Timer() as t:
                        extractor(**batch["inputs"])
                    fwd += t.seconds
                pre_s.append(pre)
                fwd_s.append(fwd)
        examples = bs * nb
        r = ratios(fwd_s, pre_s)  # (examples/pre) / (examples/fwd)
        cases[name] = {
            "ratio": r.to_dict(),
            "preprocess_examples_per_s": summarise([examples / s for s in pre_s]).to_dict(),
            "forward_examples_per_s": summarise([examples / s for s in fwd_s]).to_dict(),
        }
        del extractor
        gc.collect()
    worst = min(cases, key=lambda n: cases[n]["ratio"]["median"])
    ratio = _stats(cases[worst]["ratio"])
    return figure(
        "Data loading: preprocessing throughput / model forward throughput",
        ratio=ratio, target=">= 2", met=all(c["ratio"]["median"] >= 2 for c in cases.values()),
        deciding_case=worst, cases=cases, batch_size=bs,
        includes="tlzoo's own path (ExampleBatches.__getitems__ + Collate(extractor.preprocess): Arrow read, decode, "
                 "processor) vs extractor forward (eval, no_grad), in the main process, batch by batch in turn",
    )


# ---------------------------------------------------------------------------
# 6. start-up
# ---------------------------------------------------------------------------


def fig_startup(ctx: Context) -> dict[str, Any]:
    """Wall time of ``import tlzoo`` and ``tlzoo --help`` in fresh processes, and / a bare interpreter."""
    script = Path(sys.executable).parent / "tlzoo"
    help_cmd = [str(script), "--help"] if script.exists() else [sys.executable, "-m", "tlzoo", "--help"]
    commands = {
        "python_bare": [sys.executable, "-c", "pass"],
        "import_tlzoo": [sys.executable, "-c", "import tlzoo"],
        "tlzoo_help": help_cmd,
    }
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}

    def timed(cmd: list[str]) -> Callable[[], float]:
        def run() -> float:
            with Timer() as t:
                proc = subprocess.run(cmd, capture_output=True, env=env, check=False)
            if proc.returncode != 0:
                raise RuntimeError(f"{cmd} failed: {proc.stderr.decode()[-2000:]}")
            return t.seconds
        return run

    for cmd in commands.values():  # warm the file-system cache
        timed(cmd)()
    runs = alternate({k: timed(v) for k, v in commands.items()}, ctx.mode.startup_repeats, log)
    seconds = {k: summarise(v) for k, v in runs.items()}
    heavy = _heavy_modules_after_import()
    worst = max(("import_tlzoo", "tlzoo_help"), key=lambda k: seconds[k].median)
    r = ratios(runs[worst], runs["python_bare"])
    return figure(
        "Start-up: `import tlzoo` and `tlzoo --help` wall time",
        ratio=r, target="< 0.5 s (absolute, median)",
        met=all(seconds[k].median < 0.5 for k in ("import_tlzoo", "tlzoo_help")), deciding_case=worst,
        cases={
            "import_tlzoo": {"ratio": ratios(runs["import_tlzoo"], runs["python_bare"]).to_dict(),
                             "seconds": seconds["import_tlzoo"].to_dict()},
            "tlzoo_help": {"ratio": ratios(runs["tlzoo_help"], runs["python_bare"]).to_dict(),
                           "seconds": seconds["tlzoo_help"].to_dict()},
        },
        seconds=stats_dict(seconds), heavy_modules_loaded_by_import=heavy,
        includes="wall time of a fresh process (interpreter start included); ratio = that / `python -c pass`",
    )


def _heavy_modules_after_import() -> list[str]:
    """Which of torch/transformers/datasets/accelerate ``import tlzoo`` pulls in (should be none)."""
    code = ("import sys, tlzoo; heavy = ('torch', 'transformers', 'datasets', 'accelerate', 'numpy', 'evaluate'); "
            "print(','.join(m for m in heavy if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    return [m for m in proc.stdout.strip().split(",") if m]


# ---------------------------------------------------------------------------
# 7. GPU
# ---------------------------------------------------------------------------


def fig_gpu(ctx: Context) -> dict[str, Any]:
    """Figures 1 and 2 on the GPU, in a subprocess that may use it; skipped without CUDA."""
    import torch

    if not torch.cuda.is_available():
        return figure("GPU variant of figures 1 and 2", ratio=None, target="as figures 1 and 2", met=None,
                      skipped=True, note="torch.cuda.is_available() is False on this machine: skipped.")
    env = {k: v for k, v in os.environ.items() if k != "ACCELERATE_USE_CPU"}
    out = ctx.scratch / "gpu.json"
    cmd = [sys.executable, str(HERE / "run.py"), "--gpu-child", str(out), "--mode", ctx.mode.name]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"GPU child failed:\n{proc.stderr[-3000:]}")
    child = json.loads(out.read_text())
    ft, probe = child["1"], child["2"]
    return figure(
        "GPU variant: full fine-tuning per step (tlzoo / hand loop) and linear probe / plain forward",
        ratio=_stats(ft["ratio"]),
        target="<= 1.05 (fine-tuning), <= 1.3 (probe)",
        met=bool(ft["met"]) and bool(probe["met"]), skipped=False, device=child["device"],
        cases={"full_finetune": ft, "linear_probe": probe}, deciding_case="full_finetune",
    )


def gpu_child(path: Path, mode: Mode) -> None:
    """Body of the ``--gpu-child`` subprocess: figures 1 (ViT) and 2 on CUDA."""
    import torch
    from workloads import build_workloads

    gpu_mode = replace(mode, ft_models=("vit",))
    with tempfile.TemporaryDirectory(prefix="tlzoo-bench-gpu-") as tmp:
        ctx = Context(gpu_mode, build_workloads(Path(tmp), mode.sizes, ("vit",)), Path(tmp), None)
        ft = fig_full_finetune(ctx)
        probe, _ = fig_probe(ctx)
    path.write_text(json.dumps({"device": torch.cuda.get_device_name(0), "1": ft, "2": probe}, default=str))


# ---------------------------------------------------------------------------
# driver
# ---------------------------------------------------------------------------


def _quiet_libraries() -> None:
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    for name in ("transformers", "datasets", "accelerate", "tlzoo", "huggingface_hub"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        import datasets
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        datasets.disable_progress_bars()
    except ImportError:
        pass


def _size_trends(figures: dict[str, Any]) -> None:
    """Add figure 4's runs at N, 4N, 16N to figures 2 and 3: how their ratios move with the data size.

    Figure 3 gets second run / first run; figure 2 gets adapt() total / its own
    feature-extraction phase, a stand-in for total / plain forward (figure 2
    measures extraction itself at about the cost of a plain forward pass).
    """
    fig2, fig3, fig4 = (figures.get(k) for k in ("2_linear_probe", "3_cache_hit", "4_scaling"))
    if not fig4 or "error" in fig4:
        return
    for label, n in fig4["examples"].items():
        if fig3 and "error" not in fig3:
            fig3["cases"][f"vit_{n}_examples_fresh_process"] = {"ratio": fig4["second_run_over_first"][label]}
        if fig2 and "error" not in fig2:
            runs = fig4["runs"][label]
            fig2["cases"][f"vit_{n}_examples_total_over_features_phase"] = {"ratio": ratios(
                [r["timings"]["total"] for r in runs], [r["timings"]["features"] for r in runs]).to_dict()}


def run_all(mode: Mode, only: set[str], profile_dir: Path | None) -> dict[str, Any]:
    """Run the selected figures; a figure that raises is recorded with its error."""
    from workloads import build_workloads

    _quiet_libraries()
    report: dict[str, Any] = {"schema": SCHEMA, "mode": mode.name, "machine": machine_info(),
                              "settings": {**asdict(mode), "sizes_description": mode.sizes.describe()},
                              "load_average_start": load_average(), "figures": {}}
    figures: dict[str, Any] = report["figures"]
    with tempfile.TemporaryDirectory(prefix="tlzoo-bench-") as tmp:
        scratch = Path(tmp)
        log(f"building models ({mode.sizes.describe()})")
        names = tuple(dict.fromkeys(("vit", *mode.ft_models, *mode.loading_models)))
        ctx = Context(mode, build_workloads(scratch / "models", mode.sizes, names), scratch, profile_dir)

        def attempt(keys: list[str], fn: Callable[[Context], Any]) -> None:
            if not any(k in only for k in keys):
                return
            started = time.perf_counter()
            log(f"figure {'+'.join(keys)}: {', '.join(FIGURES[k] for k in keys)}")
            gc.collect()
            try:
                result = fn(ctx)
                results = result if isinstance(result, tuple) else (result,)
            except Exception as exc:  # noqa: BLE001 - record it, run the other figures
                traceback.print_exc()
                results = tuple({"title": FIGURES[k], "error": f"{type(exc).__name__}: {exc}", "ratio": None,
                                 "met": None} for k in keys)
            for key, res in zip(keys, results):
                res["seconds_spent"] = round(time.perf_counter() - started, 1)
                res["load_average_after"] = load_average()
                figures[f"{key}_{FIGURES[key]}"] = res
                if res.get("ratio"):
                    log(f"  -> {key} {FIGURES[key]}: median {res['ratio']['median']:.3g} "
                        f"[{res['ratio']['min']:.3g}-{res['ratio']['max']:.3g}] target {res['target']}: "
                        f"{'met' if res['met'] else 'MISSED'}")

        attempt(["6"], fig_startup)
        attempt(["1"], fig_full_finetune)
        attempt(["2", "3"], fig_probe)
        attempt(["4"], fig_scaling)
        attempt(["5"], fig_data_loading)
        attempt(["7"], fig_gpu)
    _size_trends(figures)
    report["load_average_end"] = load_average()
    report["seconds_total"] = round(time.perf_counter() - STARTED, 1)
    return report


def set_threads(threads: int) -> None:
    """Use *threads* intra-op threads here and in every subprocess (set before torch is imported)."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    import torch

    torch.set_num_threads(threads)


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, run the benchmarks, write JSON and Markdown."""
    parser = argparse.ArgumentParser(description="Run tlzoo's benchmarks (ratios of tlzoo to hand-written baselines).")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for CI (< 1 min); writes to a temp dir")
    parser.add_argument("--output", type=Path, help="folder for latest.json and benchmarks.md "
                        "(default: bench/results/ and docs/ for the full run, a temp dir for --quick)")
    parser.add_argument("--only", default="1,2,3,4,5,6,7", help="comma-separated figure numbers (default: all)")
    parser.add_argument("--repeats", type=int, help="override every repetition count")
    parser.add_argument("--models", help="comma-separated models for figures 1 and 5 (default: vit,bert,wav2vec2)")
    parser.add_argument("--profile", action="store_true", help="also write pyinstrument profiles of tlzoo's runs")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads for every measurement, both sides alike (default 1: see the "
                             "methodology in this module's docstring)")
    parser.add_argument("--render", type=Path, metavar="JSON",
                        help="only re-render the Markdown from an existing results JSON (e.g. after editing "
                             "bench/findings.md); written to --output or docs/benchmarks.md")
    parser.add_argument("--gpu-child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=("quick", "full"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.render:
        from report import keep_sections, render

        report = json.loads(args.render.read_text())
        md_path = args.output / "benchmarks.md" if args.output else REPO / "docs" / "benchmarks.md"
        md_path.parent.mkdir(parents=True, exist_ok=True)
        findings = HERE / "findings.md"
        old = md_path.read_text() if md_path.exists() else None
        md_path.write_text(keep_sections(render(report, findings.read_text() if findings.exists()
                                                and report["mode"] == "full" else None), old))
        log(f"wrote {md_path}")
        return 0
    set_threads(args.threads)

    mode = QUICK if args.quick or args.mode == "quick" else FULL
    if args.repeats:
        mode = replace(mode, ft_repeats=args.repeats, probe_repeats=args.repeats, scaling_repeats=args.repeats,
                       loading_repeats=args.repeats, startup_repeats=args.repeats)
    if args.models:
        chosen = tuple(m.strip() for m in args.models.split(",") if m.strip())
        unknown_models = set(chosen) - {"vit", "bert", "wav2vec2"}
        if unknown_models:
            parser.error(f"unknown model(s) {sorted(unknown_models)}; choose from vit, bert, wav2vec2")
        mode = replace(mode, ft_models=chosen, loading_models=chosen)
    if args.gpu_child:
        _quiet_libraries()
        gpu_child(args.gpu_child, mode)
        return 0
    only = {part.strip() for part in args.only.split(",") if part.strip()}
    unknown = only - set(FIGURES)
    if unknown:
        parser.error(f"unknown figure(s) {sorted(unknown)}; choose from {sorted(FIGURES)}")

    if args.output is not None:
        json_path, md_path = args.output / "latest.json", args.output / "benchmarks.md"
    elif args.quick:
        out = Path(tempfile.mkdtemp(prefix="tlzoo-bench-quick-"))
        json_path, md_path = out / "latest.json", out / "benchmarks.md"
    else:
        json_path, md_path = HERE / "results" / "latest.json", REPO / "docs" / "benchmarks.md"
    profile_dir = json_path.parent / "profiles" if args.profile else None

    report = run_all(mode, only, profile_dir)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    from report import keep_sections, render

    findings = HERE / "findings.md"
    md_path.parent.mkdir(parents=True, exist_ok=True)
    old = md_path.read_text() if md_path.exists() else None
    md_path.write_text(keep_sections(render(report, findings.read_text() if findings.exists() and mode.name == "full"
                                            else None), old))
    log(f"wrote {json_path} and {md_path} in {report['seconds_total']} s")
    failed = [k for k, v in report["figures"].items() if "error" in v]
    if failed:
        log(f"figures that failed: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
