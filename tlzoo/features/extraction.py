"""Running a frozen backbone over the target data once, into the feature cache."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch

from tlzoo.data import column_values
from tlzoo.features import FeatureExtractor
from tlzoo.features.cache import FeatureCache, FeatureTable
from tlzoo.plugins.modality import Modality

logger = logging.getLogger(__name__)

SHARD_ROWS = 4096  # rows written per cache shard: bounds the memory extraction holds


def fingerprints(ds: Any, input_column: str, modality: Modality) -> list[bytes]:
    """Content digests of every example of *ds* (the feature-cache keys)."""
    return [modality.fingerprint(value) for value in column_values(ds, input_column)]


@torch.no_grad()
def cached_features(
    extractor: FeatureExtractor,
    modality: Modality,
    splits: dict[str, Any],
    input_column: str,
    accelerator: Any,
    *,
    batch_size: int = 32,
    num_workers: int = 0,
    cache: FeatureCache | None = None,
    progress: bool = True,
) -> tuple[dict[str, FeatureTable], dict[str, int]]:
    """Feature tables of every split, running the backbone only on examples not cached yet.

    Under several processes (``torchrun``, ``accelerate launch``) the missing
    examples are shared out between them: every process first waits for the
    others, so none has written yet, and all take the main process's list of
    what is missing; each writes its own shards, then every process reads the
    whole table. Examples that are still missing then (a shard found damaged
    or removed meanwhile) are shared out the same way, once.

    :returns: the tables by split, and counts ``{"cached": ..., "computed": ...}``: of the
        examples of *splits*, how many were read from the cache and how many were computed by
        this call (by any of the processes; every process gets the same counts).
    """
    cache = cache or FeatureCache(extractor.cache_key(), info=cache_info(extractor))
    digests = {name: fingerprints(ds, input_column, modality) for name, ds in splits.items()}
    flat = [(name, i) for name, ds in splits.items() for i in range(len(ds))]
    all_digests = [digests[name][i] for name, i in flat]
    run = _Extraction(extractor, cache, splits, input_column, flat, all_digests, accelerator, batch_size=batch_size,
                      num_workers=num_workers, progress=progress)
    accelerator.wait_for_everyone()  # no process of this run has written yet: all see the cache alike
    missing = _main_process_value(accelerator, cache.missing(all_digests))
    if missing and accelerator.is_main_process:
        logger.info("Extracting features of %d examples (%d already cached) in %s",
                    len(missing), len(set(all_digests)) - len(missing), cache.path)
    computed = set(missing)
    if missing:
        run(missing[accelerator.process_index :: accelerator.num_processes])
    accelerator.wait_for_everyone()
    # a shard went away (found damaged, or the cache was cleared) since it was counted: compute it again
    again = _every_process_values(accelerator, cache.missing(all_digests))
    if again:
        if accelerator.is_main_process:
            logger.warning("%d cached features went missing from %s while this run read them; computing them again.",
                           len(again), cache.path)
        run(again[accelerator.process_index :: accelerator.num_processes])
        computed.update(again)
        accelerator.wait_for_everyone()
    try:
        tables = {name: cache.table(d) for name, d in digests.items()}
    except KeyError:  # gone once more, in this process only: it computes them alone
        lost = cache.missing(all_digests)
        logger.warning("%d cached features went missing from %s again; computing them in this process.",
                       len(lost), cache.path)
        run(lost)
        computed.update(lost)
        tables = {name: cache.table(d) for name, d in digests.items()}
    return tables, {"cached": len(all_digests) - len(computed), "computed": len(computed)}


def _main_process_value(accelerator: Any, value: list[int]) -> list[int]:
    """The main process's *value* on every process (one process: *value* itself)."""
    if accelerator.num_processes == 1:
        return value
    from accelerate.utils import broadcast_object_list

    box = [value]
    broadcast_object_list(box, from_process=0)
    return list(box[0])


def _every_process_values(accelerator: Any, value: list[int]) -> list[int]:
    """The sorted union of every process's *value* (one process: *value* itself)."""
    if accelerator.num_processes == 1:
        return value
    from accelerate.utils import gather_object

    return sorted(set(gather_object(list(value))))


def cache_info(extractor: FeatureExtractor) -> dict[str, Any]:
    """What a cache key stands for, shown by ``tlzoo cache list``."""
    return {"source": extractor.source, "revision": extractor.revision, "modality": extractor.modality,
            "feature_size": extractor.feature_size, "extractor": type(extractor).__qualname__,
            "pooling": getattr(extractor, "pooling", None)}


class _Extraction:
    """Runs the backbone over examples given by their position in *flat*, writing shards to *cache*."""

    def __init__(self, extractor: FeatureExtractor, cache: FeatureCache, splits: dict[str, Any], input_column: str,
                 flat: list[tuple[str, int]], all_digests: list[bytes], accelerator: Any, *, batch_size: int,
                 num_workers: int, progress: bool) -> None:
        self.extractor, self.cache, self.accelerator = extractor, cache, accelerator
        self.flat, self.all_digests, self.input_column = flat, all_digests, input_column
        self.values_of = {name: ds.select_columns([input_column]) for name, ds in splits.items()}
        self.batch_size, self.num_workers, self.progress = batch_size, num_workers, progress

    def _fetch(self, positions: list[int]) -> dict[str, Any]:
        values = [self.values_of[self.flat[p][0]][self.flat[p][1]][self.input_column] for p in positions]
        return {"inputs": self.extractor.preprocess(values), "positions": positions}

    @torch.no_grad()
    def __call__(self, mine: list[int]) -> None:
        from torch.utils.data import DataLoader

        from tlzoo.progress import progress_bar

        accelerator, extractor = self.accelerator, self.extractor
        extractor.to(accelerator.device).eval()
        loader = DataLoader(mine, batch_size=self.batch_size, collate_fn=self._fetch, num_workers=self.num_workers)
        bar = progress_bar(total=len(mine), desc="features", unit="ex",
                           disable=not (self.progress and accelerator.is_local_main_process))
        rows: list[np.ndarray] = []
        keys: list[bytes] = []
        for batch in loader:
            inputs = {k: v.to(accelerator.device) for k, v in batch["inputs"].items()}
            with accelerator.autocast():
                features = extractor(**inputs)
            rows.append(features.float().cpu().numpy())
            keys.extend(self.all_digests[p] for p in batch["positions"])
            bar.update(len(batch["positions"]))
            if len(keys) >= SHARD_ROWS:
                self.cache.add(keys, np.concatenate(rows))
                rows, keys = [], []
        self.cache.add(keys, np.concatenate(rows) if rows else np.empty((0, extractor.feature_size), np.float32))
        bar.close()
