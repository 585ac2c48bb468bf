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
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm

    cache = cache or FeatureCache(extractor.cache_key())
    digests = {name: fingerprints(ds, input_column, modality) for name, ds in splits.items()}
    flat = [(name, i) for name, ds in splits.items() for i in range(len(ds))]
    all_digests = [digests[name][i] for name, i in flat]
    missing = cache.missing(all_digests)
    mine = missing[accelerator.process_index :: accelerator.num_processes]
    if missing:
        logger.info("Extracting features of %d examples (%d already cached) in %s",
                    len(missing), len(set(all_digests)) - len(missing), cache.path)
        extractor.to(accelerator.device).eval()
        values_of = {name: ds.select_columns([input_column]) for name, ds in splits.items()}

        def fetch(positions: list[int]) -> dict[str, Any]:
            values = [values_of[flat[p][0]][flat[p][1]][input_column] for p in positions]
            return {"inputs": extractor.preprocess(values), "positions": positions}

        loader = DataLoader(mine, batch_size=batch_size, collate_fn=fetch, num_workers=num_workers)
        bar = tqdm(total=len(mine), desc="features", unit="ex", dynamic_ncols=True,
                   disable=not (progress and accelerator.is_local_main_process))
        rows: list[np.ndarray] = []
        keys: list[bytes] = []
        for batch in loader:
            inputs = {k: v.to(accelerator.device) for k, v in batch["inputs"].items()}
            with accelerator.autocast():
                features = extractor(**inputs)
            rows.append(features.float().cpu().numpy())
            keys.extend(all_digests[p] for p in batch["positions"])
            bar.update(len(batch["positions"]))
            if len(keys) >= SHARD_ROWS:
                cache.add(keys, np.concatenate(rows))
                rows, keys = [], []
        cache.add(keys, np.concatenate(rows) if rows else np.empty((0, extractor.feature_size), np.float32))
        bar.close()
    accelerator.wait_for_everyone()
    tables = {name: cache.table(d) for name, d in digests.items()}
    return tables, {"cached": len(all_digests) - len(missing), "computed": len(missing)}
