"""Render the benchmark JSON (``bench/results/latest.json``) as ``docs/benchmarks.md``."""

from __future__ import annotations

import re
from typing import Any

FIGURE_ORDER = ("1_full_finetune", "2_linear_probe", "3_cache_hit", "4_scaling", "5_data_loading", "6_startup", "7_gpu")

SHORT_TITLES = {
    "1_full_finetune": "Full fine-tuning, time per step: tlzoo / hand Accelerate loop",
    "2_linear_probe": "Linear probe (10 epochs) total / one plain forward pass",
    "3_cache_hit": "Second run (feature-cache hit) / first run",
    "4_scaling": "Scaling: time 16N / N (and peak RSS 16N / N)",
    "5_data_loading": "Preprocessing throughput / forward throughput (worst modality)",
    "6_startup": "Start-up: `import tlzoo`, `tlzoo --help` (slower of the two)",
    "7_gpu": "GPU variant of 1 and 2",
}


def _num(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, int | float):
        return f"{value:.{digits}g}"
    return str(value)


def _stat(stats: dict[str, Any] | None, digits: int = 3) -> str:
    """``median (min–max)``."""
    if not stats:
        return "–"
    return f"{_num(stats['median'], digits)} ({_num(stats['min'], digits)}–{_num(stats['max'], digits)})"


def _verdict(fig: dict[str, Any]) -> str:
    if "error" in fig:
        return "error"
    if fig.get("skipped"):
        return "skipped"
    return "**met**" if fig.get("met") else "**missed**"


def _machine(report: dict[str, Any]) -> list[str]:
    m = report["machine"]
    v = m["versions"]
    rows = [
        ("CPU", f"{m['cpu']}, {m['cores']} cores ({m['usable_cores']} usable), torch threads {m['torch_threads']}"),
        ("Memory", f"{m['memory_gib']} GiB"),
        ("GPU", m.get("gpu") or "none"),
        ("OS", m["platform"]),
        ("Python", m["python"]),
        ("Libraries", ", ".join(f"{k} {val}" for k, val in v.items() if val)),
        ("Date", m["date"]),
        ("Mode", f"{report['mode']} ({report['settings']['sizes_description']})"),
        ("Load average (1/5/15 min)", f"start {report.get('load_average_start')}, end {report.get('load_average_end')}"),
        ("Wall time of the whole run", f"{report.get('seconds_total')} s"),
    ]
    out = ["| | |", "| --- | --- |"]
    out += [f"| {k} | {val} |" for k, val in rows]
    return out


def _summary(figs: dict[str, Any]) -> list[str]:
    out = ["| # | Figure | Median ratio | Spread (min–max) | Target | Result |",
           "| --- | --- | --- | --- | --- | --- |"]
    for key in FIGURE_ORDER:
        fig = figs.get(key)
        if fig is None:
            continue
        ratio = fig.get("ratio")
        if key == "6_startup" and "seconds" in fig:
            worst = fig.get("deciding_case", "tlzoo_help")
            s = fig["seconds"][worst]
            median = f"{_num(s['median'])} s ({_num(ratio['median'])}× bare python)"
            spread = f"{_num(s['min'])}–{_num(s['max'])} s"
        elif ratio:
            median, spread = _num(ratio["median"]), f"{_num(ratio['min'])}–{_num(ratio['max'])}"
        else:
            median, spread = "–", "–"
        if key == "4_scaling" and "cases" in fig:
            mem = fig["cases"]["peak_rss_16N_over_N"]["ratio"]
            median += f"; RSS {_num(mem['median'])}"
            spread += f"; RSS {_num(mem['min'])}–{_num(mem['max'])}"
        case = fig.get("deciding_case")
        title = SHORT_TITLES.get(key, fig.get("title", key))
        if case and key in ("1_full_finetune", "5_data_loading"):
            title += f" (worst: {case})"
        out.append(f"| {key.split('_')[0]} | {title} | {median} | {spread} | {fig.get('target', '')} | {_verdict(fig)} |")
    return out


def _detail(key: str, fig: dict[str, Any]) -> list[str]:
    out = [f"### {key.split('_')[0]}. {fig.get('title', key)}", ""]
    if "error" in fig:
        return out + [f"Failed: `{fig['error']}`", ""]
    if fig.get("skipped"):
        return out + [fig.get("note", "skipped"), ""]
    if fig.get("includes"):
        out += [f"Measured: {fig['includes']}.", ""]
    cases = fig.get("cases", {})
    if key == "1_full_finetune":
        out += ["| Model | tlzoo / hand loop (wall) | tlzoo / hand loop (CPU) | tlzoo / Trainer (wall) | "
                "tlzoo / Trainer (CPU) | s/step tlzoo | s/step hand | s/step Trainer |",
                "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for name, c in cases.items():
            s = c["seconds_per_step"]
            out.append(f"| {name} | {_stat(c['ratio'])} | {_stat(c.get('ratio_cpu'))} | "
                       f"{_stat(c.get('ratio_vs_trainer'))} | {_stat(c.get('ratio_vs_trainer_cpu'))} | "
                       f"{_stat(s['tlzoo'])} | {_stat(s['hand_accelerate'])} | {_stat(s.get('trainer'))} |")
        first = next(iter(cases.values()), {})
        out += ["", f"Batch size {fig.get('batch_size')}, {first.get('examples')} training examples "
                    f"({first.get('steps_per_epoch')} steps per epoch); {first.get('timed_epoch_pairs')} timed "
                    "epoch pairs per model."]
    elif key == "2_linear_probe":
        c = cases.get("vit", {})
        out += ["| Ratio (ViT) | median (min–max) |", "| --- | --- |",
                f"| adapt() total / plain forward | {_stat(c.get('ratio'))} |",
                f"| feature-extraction phase / plain forward | {_stat(c.get('features_phase_vs_forward'))} |",
                f"| whole probe phase (features + 10 epochs) / plain forward | {_stat(c.get('probe_phase_vs_forward'))} |",
                f"| probe recomputing features every epoch / cached probe | {_stat(c.get('no_cache_vs_cached'))} |",
                f"| probe recomputing features every epoch / plain forward | {_stat(c.get('no_cache_vs_forward'))} |",
                *([""] + ["At other data sizes (figure 4's fresh-process runs), adapt() total / its own "
                           "feature-extraction phase (a stand-in for / plain forward, see above): "
                           + "; ".join(f"{k.split('_')[1]} examples {_stat(v['ratio'])}"
                                       for k, v in cases.items() if k.endswith('_over_features_phase')) + "."]
                  if any(k.endswith('_over_features_phase') for k in cases) else []),
                "", "Seconds (median, min–max): "
                + "; ".join(f"{k} {_stat(v)}" for k, v in c.get("seconds", {}).items()) + ".",
                "", "tlzoo's own timings of the first run: "
                + "; ".join(f"{k} {_stat(v)}" for k, v in c.get("tlzoo_timings", {}).items()) + "."]
    elif key == "3_cache_hit":
        c = cases.get("vit", {})
        out += ["| Phase (s) | first run | second run |", "| --- | --- | --- |"]
        for phase, stats in c.get("first_timings", {}).items():
            out.append(f"| {phase} | {_stat(stats)} | {_stat(c.get('second_timings', {}).get(phase))} |")
        out += ["", f"Second run's cache use: {c.get('second_run_cache')}."]
        trend = {k: v for k, v in cases.items() if k != "vit"}
        if trend:
            out += ["", "The same ratio at other data sizes (figure 4's runs, each pair in one fresh process):", "",
                    "| Case | second / first |", "| --- | --- |"]
            out += [f"| {k} | {_stat(v['ratio'])} |" for k, v in trend.items()]
    elif key == "4_scaling":
        out += ["| Size | examples | seconds | ms per example | peak RSS (MiB) | RSS added by adapt (MiB) | "
                "peak anonymous RSS (MiB) | second run (s) | second / first |",
                "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for label, n in fig.get("examples", {}).items():
            per = fig["seconds_per_example"][label]
            per_ms = {k: (v * 1000 if isinstance(v, float) else v) for k, v in per.items() if k in ("median", "min", "max")}
            out.append(f"| {label} | {n} | {_stat(fig['seconds'][label])} | {_stat(per_ms)} | "
                       f"{_stat(fig['peak_rss_mb'][label], 4)} | {_stat(fig['rss_growth_during_adapt_mb'][label])} | "
                       f"{_stat(fig.get('peak_rss_anon_sampled_mb', {}).get(label), 4)} | "
                       f"{_stat(fig.get('second_run_seconds', {}).get(label))} | "
                       f"{_stat(fig.get('second_run_over_first', {}).get(label))} |")
        out += ["", "| Ratio | median (min–max) |", "| --- | --- |"]
        out += [f"| {name.replace('_', ' ')} | {_stat(c['ratio'])} |" for name, c in cases.items()]
        for title, key16 in (("First run", "timings_16N"), ("Second run", "second_run_timings_16N")):
            if fig.get(key16):
                out += ["", f"{title} at 16N, tlzoo's timings (s): "
                        + "; ".join(f"{k} {_stat(v)}" for k, v in fig[key16].items()) + "."]
    elif key == "5_data_loading":
        out += ["| Model | preprocess / forward throughput | preprocess (ex/s) | forward (ex/s) |",
                "| --- | --- | --- | --- |"]
        for name, c in cases.items():
            out.append(f"| {name} | {_stat(c['ratio'])} | {_stat(c['preprocess_examples_per_s'])} | "
                       f"{_stat(c['forward_examples_per_s'])} |")
    elif key == "6_startup":
        out += ["| Command | seconds | / `python -c pass` |", "| --- | --- | --- |"]
        for name, s in fig.get("seconds", {}).items():
            ratio = cases.get(name, {}).get("ratio")
            out.append(f"| {name} | {_stat(s)} | {_stat(ratio)} |")
        out += ["", f"Heavy modules loaded by `import tlzoo`: {fig.get('heavy_modules_loaded_by_import') or 'none'}."]
    elif key == "7_gpu":
        out += [f"Device: {fig.get('device')}.", ""]
        for name, c in cases.items():
            out.append(f"- {name}: {_stat(c.get('ratio'))} (target {c.get('target')}, {_verdict(c)})")
    out.append("")
    return out


def render(report: dict[str, Any], findings: str | None = None) -> str:
    """The Markdown page for *report*; *findings* (hand-written analysis) is appended verbatim."""
    figs = report["figures"]
    lines = [
        "# Benchmarks",
        "",
        "<!-- Generated by `python bench/run.py` from bench/results/latest.json; edit bench/report.py or "
        "bench/findings.md, not this file. -->",
        "",
        "tlzoo against hand-written baselines on the same models, data, preprocessing, batch size and optimizer. "
        "Every figure is a **ratio of two things measured in the same run**, alternated (A, B, A, B, …) and repeated; "
        "the table gives the **median ratio and its spread (min–max)** over the repetitions, and targets are checked "
        "on the median. The machines are shared, so absolute times (given for context only) move with the load; "
        "ratios much less so. How each figure is measured is in the module docstring of `bench/run.py`.",
        "",
        "Run them: `python bench/run.py` (about 10 minutes on 2 cores; rewrites this page and "
        "`bench/results/latest.json`), or `python bench/run.py --quick` (under a minute, tiny models, writes to a "
        "temporary folder; CI runs it as a smoke test with no timing assertions).",
        "",
        "## Machine",
        "",
        *_machine(report),
        "",
        "## Results",
        "",
        *_summary(figs),
        "",
        "## Details",
        "",
    ]
    for key in FIGURE_ORDER:
        if key in figs:
            lines += _detail(key, figs[key])
    if findings:
        lines += ["## Findings", "", findings.strip(), ""]
    return "\n".join(lines) + "\n"


_SECTION = re.compile(r"<!-- (\w+) benchmark: begin.*?<!-- \1 benchmark: end -->", re.DOTALL)


def keep_sections(page: str, old_page: str | None) -> str:
    """*page* with the marked sections other benchmarks wrote into the old page (``bench/auto.py``, ...) kept."""
    if not old_page:
        return page
    kept = [m.group(0) for m in _SECTION.finditer(old_page) if m.group(0) not in page]
    return page if not kept else page.rstrip() + "\n\n" + "\n\n".join(kept) + "\n"
