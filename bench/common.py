"""Shared helpers of the benchmarks: ratio statistics, alternation, machine facts.

Every figure the benchmarks report is a *ratio* of two things measured in the
same run, because the machines are shared and absolute times drift by a factor
of several from one minute to the next. The helpers here keep that discipline:

* :func:`alternate` runs the contenders of a comparison in turn (A, B, A, B, ...)
  so that a slow spell of the machine hits both sides alike;
* :func:`summarise` reduces repeated measurements to median and spread
  (min-max), the only form in which a number leaves the benchmark;
* :func:`machine_info` records what the numbers were measured on, including the
  load average before and after, the best available hint of how shared the
  machine was.
"""

from __future__ import annotations

import datetime as _dt
import os

# Imported before tlzoo, accelerate and transformers by every benchmark: the CPU figures run on the CPU
# even where a GPU exists (figure 7 runs the GPU variant in a subprocess without this flag), offline, quietly.
os.environ.setdefault("ACCELERATE_USE_CPU", "true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("PYTHONWARNINGS", "ignore")
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any


@dataclass
class Stats:
    """Median and spread of repeated measurements of one quantity."""

    median: float
    min: float
    max: float
    samples: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON form (rounded to 4 significant digits)."""
        return {
            "median": _round(self.median),
            "min": _round(self.min),
            "max": _round(self.max),
            "n": len(self.samples),
            "samples": [_round(s) for s in self.samples],
        }


def _round(value: float) -> float:
    return float(f"{value:.4g}")


def summarise(samples: Sequence[float]) -> Stats:
    """Median, min and max of *samples* (at least one)."""
    values = [float(v) for v in samples]
    if not values:
        raise ValueError("summarise() needs at least one sample")
    return Stats(statistics.median(values), min(values), max(values), values)


def ratios(numerators: Sequence[float], denominators: Sequence[float]) -> Stats:
    """Per-repetition ratios ``a_i / b_i`` (paired: measured next to each other), summarised."""
    if len(numerators) != len(denominators):
        raise ValueError(f"{len(numerators)} numerators for {len(denominators)} denominators")
    return summarise([a / b for a, b in zip(numerators, denominators)])


def alternate(contenders: dict[str, Callable[[], Any]], repeats: int,
              log: Callable[[str], None] | None = None) -> dict[str, list[Any]]:
    """Run every contender once per round, in turn, for *repeats* rounds.

    The order is rotated each round (A B C, B C A, ...) so that no contender
    always runs first (after a garbage-collection-free pause) or last.

    :param contenders: name -> a callable that does one measurement and returns it
        (a number, or a dict of numbers).
    :returns: name -> the *repeats* measurements, in round order.
    """
    names = list(contenders)
    out: dict[str, list[Any]] = {name: [] for name in names}
    for rnd in range(repeats):
        order = names[rnd % len(names):] + names[: rnd % len(names)]
        for name in order:
            value = contenders[name]()
            out[name].append(value)
            if log:
                shown = (", ".join(f"{k} {v:.4g}" for k, v in value.items()) if isinstance(value, dict)
                         else f"{value:.4g}")
                log(f"    round {rnd + 1}/{repeats} {name}: {shown}")
    return out


class Timer:
    """``with Timer() as t: ...`` then ``t.seconds`` (wall clock, ``perf_counter``)."""

    def __enter__(self) -> Timer:
        self.started = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.started


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB (``ru_maxrss`` is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def cpu_model() -> str:
    """The CPU model name ``lscpu`` reports (or ``platform.processor()``)."""
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10, check=False).stdout
        for line in text.splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return platform.processor() or "unknown"


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages (how busy the shared machine is)."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return []


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def machine_info() -> dict[str, Any]:
    """What the benchmark ran on: CPU, cores, memory, Python and library versions, date."""
    import torch

    try:
        mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        mem_gib = float("nan")
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": affinity,
        "torch_threads": torch.get_num_threads(),
        "memory_gib": round(mem_gib, 1),
        "gpu": gpu,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": {name: _version(name) for name in
                     ("tlzoo", "torch", "transformers", "accelerate", "datasets", "numpy", "pillow", "tokenizers")},
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "executable": sys.executable,
    }


@dataclass(frozen=True)
class Sizes:
    """Model and data sizes of one benchmark mode."""

    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    image_size: int
    patch_size: int
    audio_seconds: float

    def overrides(self) -> dict[str, Any]:
        """Config overrides for the :mod:`tlzoo.testing` builders."""
        return {
            "hidden_size": self.hidden_size,
            "num_hidden_layers": self.num_hidden_layers,
            "num_attention_heads": self.num_attention_heads,
            "intermediate_size": self.intermediate_size,
        }

    def describe(self) -> str:
        """One line for the report."""
        return (f"hidden {self.hidden_size}, {self.num_hidden_layers} layers, {self.num_attention_heads} heads, "
                f"MLP {self.intermediate_size}; images {self.image_size} px in {self.patch_size} px patches; "
                f"audio clips {self.audio_seconds:g} s at 16 kHz")


def put_section(page: Path, block: str, begin: str, end: str) -> None:
    """Replace the text from *begin* to *end* in the Markdown *page* with *block* (which starts with *begin* and
    ends with *end*), or append *block* when the markers are not there yet; the rest of the page is kept."""
    text = page.read_text() if page.exists() else "# Benchmarks\n"
    block = block.strip() + "\n"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        tail = rest.split(end, 1)[1].lstrip("\n")
        text = head + block + ("\n" + tail if tail else "")
    else:
        text = text.rstrip("\n") + "\n\n" + block
    page.write_text(text)
