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

    The missing examples are shared out between processes; each writes its own
    shards, then every process reads the whole table.

    :returns: the tables by split, and counts ``{"cached": ..., "computed": ...}``.
    """
    cache = cache or FeatureCache(extractor.cache_key(), info=cache_info(extractor))
    digests = {name: fingerprints(ds, input_column, modality) for name, ds in splits.items()}
    flat = [(name, i) for name, ds in splits.items() for i in range(len(ds))]
    all_digests = [digests[name][i] for name, i in flat]
    missing = cache.missing(all_digests)
    run = _Extraction(extractor, cache, splits, input_column, flat, all_digests, accelerator, batch_size=batch_size,
                      num_workers=num_workers, progress=progress)
    if missing:
        logger.info("Extracting features of %d examples (%d already cached) in %s",
                    len(missing), len(set(all_digests)) - len(missing), cache.path)
        run(missing[accelerator.process_index :: accelerator.num_processes])
    accelerator.wait_for_everyone()
    try:
        tables = {name: cache.table(d) for name, d in digests.items()}
    except KeyError:
        # a shard went away (found damaged, or the cache was cleared) since it was counted: compute it again here
        again = cache.missing(all_digests)
        logger.warning("%d cached features went missing from %s while this run read them; computing them again.",
                       len(again), cache.path)
        run(again)
        missing = missing + again
        tables = {name: cache.table(d) for name, d in digests.items()}
    return tables, {"cached": len(all_digests) - len(missing), "computed": len(missing)}


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
        from tqdm.auto import tqdm

        accelerator, extractor = self.accelerator, self.extractor
        extractor.to(accelerator.device).eval()
        loader = DataLoader(mine, batch_size=self.batch_size, collate_fn=self._fetch, num_workers=self.num_workers)
        bar = tqdm(total=len(mine), desc="features", unit="ex", dynamic_ncols=True,
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
