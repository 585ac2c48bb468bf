"""One measurement of figure 4 (scaling), in a fresh Python process.

Reads the first ``--n`` examples of a dataset saved with ``save_to_disk``
(memory-mapped Arrow, so the data itself costs no anonymous memory), runs a
linear probe with ``tlzoo.adapt`` (the feature cache goes to ``$TLZOO_CACHE``,
which the parent points at an empty folder), and prints one JSON line:

``{"n", "seconds", "timings", "rss_before_adapt_mb", "peak_rss_mb", "rss_anon_end_mb", "rss_file_end_mb", ...}``

The modules ``adapt`` imports lazily are imported before the clock starts
(import time is the same for every size and would hide how the time grows with
the data); the model is loaded inside the timed ``adapt``, as for a user.
With ``--second-run``, a second identical ``adapt`` (a feature-cache hit) is
timed after the memory reading, adding ``second_run_seconds``.

``peak_rss_mb`` is the peak resident set size read right after the run (the
peak of the whole process: interpreter, libraries, model and data included):
``VmHWM`` from ``/proc/self/status`` on Linux, because ``ru_maxrss`` (also
reported, as ``ru_maxrss_mb``) inherits the parent's RSS across fork + exec;

``rss_before_adapt_mb`` is the same peak just before ``adapt`` is called
(libraries imported, data opened), so their difference is what ``adapt``
itself added at its peak.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import threading
import time
from typing import Any

os.environ.setdefault("ACCELERATE_USE_CPU", "true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")


def _ru_maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _peak_mb() -> float:
    """Peak RSS of this process's own memory: ``VmHWM``, falling back to ``ru_maxrss``.

    On Linux ``ru_maxrss`` carries over ``execve``: a child started from a big
    parent (the benchmark process, ~700 MiB) reports the parent's RSS at fork as
    its own peak (measured: 312 MiB reported by a child whose ``VmHWM`` was 9 MiB).
    ``VmHWM`` belongs to the new address space only.
    """
    hwm = _status_mb("VmHWM")
    return hwm if hwm is not None else _ru_maxrss_mb()


def _status_mb(field: str) -> float | None:
    """A ``/proc/self/status`` field (``RssAnon``, ``RssFile``) in MiB, if the kernel has it."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


class _Sampler:
    """Polls ``RssAnon``/``RssFile`` every 20 ms in a thread and keeps their maxima.

    ``VmHWM`` has no anonymous/file split; the split tells memory the process
    allocated from pages of memory-mapped files (the Arrow data, the feature
    cache), which the kernel can drop at any time.
    """

    def __init__(self, interval: float = 0.02) -> None:
        self.peak: dict[str, float | None] = {"RssAnon": _status_mb("RssAnon"), "RssFile": _status_mb("RssFile")}
        self._done = threading.Event()
        self._interval = interval
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._done.wait(self._interval):
            self._sample()

    def _sample(self) -> None:
        for key, old in self.peak.items():
            value = _status_mb(key)
            if value is not None and (old is None or value > old):
                self.peak[key] = value

    def stop(self) -> None:
        """Stop polling (after one last sample)."""
        self._done.set()
        self._thread.join()
        self._sample()


def _preimport() -> None:
    """Import what ``adapt`` imports lazily, so that import time (the same for every size) is not timed."""
    import accelerate  # noqa: F401
    import tqdm.auto  # noqa: F401
    import transformers

    import tlzoo.features.extraction
    import tlzoo.model.adapted
    import tlzoo.training.train
    import tlzoo.workflow  # noqa: F401
    from tlzoo.plugins import get_modality

    get_modality("image")
    for name in ("AutoModel", "AutoConfig", "AutoImageProcessor", "get_scheduler"):
        getattr(transformers, name)


def main(argv: list[str] | None = None) -> int:
    """Run one linear probe on the first *n* examples and print its time and memory as JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--second-run", action="store_true",
                        help="after the measurement, time a second identical run (feature-cache hit)")
    args = parser.parse_args(argv)

    import logging
    import warnings

    warnings.filterwarnings("ignore")
    import datasets
    from transformers.utils import logging as hf_logging

    import tlzoo

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    datasets.disable_progress_bars()
    logging.getLogger("tlzoo").setLevel(logging.ERROR)

    ds = datasets.load_from_disk(args.data).select(range(args.n))
    _preimport()
    before = _peak_mb()
    sampler = _Sampler()
    started = time.perf_counter()
    result = tlzoo.adapt(args.model, ds, strategy="linear_probe", epochs=args.epochs, batch_size=args.batch_size,
                         progress=False, seed=0)
    seconds = time.perf_counter() - started
    sampler.stop()
    record: dict[str, Any] = {
        "n": args.n,
        "seconds": seconds,
        "timings": result.timings,
        "feature_cache": result.recipe.get("feature_cache"),
        "rss_before_adapt_mb": before,
        "peak_rss_mb": _peak_mb(),
        "ru_maxrss_mb": _ru_maxrss_mb(),
        "peak_rss_anon_sampled_mb": sampler.peak["RssAnon"],
        "peak_rss_file_sampled_mb": sampler.peak["RssFile"],
        "rss_anon_end_mb": _status_mb("RssAnon"),
        "rss_file_end_mb": _status_mb("RssFile"),
    }
    del result
    if args.second_run:
        started = time.perf_counter()
        second = tlzoo.adapt(args.model, ds, strategy="linear_probe", epochs=args.epochs, batch_size=args.batch_size,
                             progress=False, seed=0)
        record["second_run_seconds"] = time.perf_counter() - started
        record["second_run_timings"] = second.timings
        record["second_run_feature_cache"] = second.recipe.get("feature_cache")
    sys.stdout.write(json.dumps(record) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
