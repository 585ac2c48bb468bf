"""The persistent feature cache: a frozen backbone runs once per example, ever.

Features live under ``$TLZOO_CACHE/features/<extractor key>/`` (default
``~/.cache/tlzoo``), where the extractor key covers the source model id and
revision, the preprocessing config, the pooling and the weights. Inside, each
write adds a shard: ``<id>.npy`` (float32 ``[n, feature_size]``) and
``<id>.keys.npy`` (the examples' 16-byte content digests, ``uint8 [n, 16]``). Shards are written
to a temporary name and renamed, so readers never see half a shard, and they
are memory-mapped when read, so data larger than RAM keeps memory bounded.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Sequence
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

DIGEST_BYTES = 16


def cache_root() -> Path:
    """Where tlzoo keeps its caches: ``$TLZOO_CACHE`` or ``~/.cache/tlzoo``."""
    env = os.environ.get("TLZOO_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "tlzoo"


class FeatureTable:
    """Rows of cached features for a list of examples, read from memory-mapped shards."""

    def __init__(self, shards: list[np.ndarray], shard_ids: np.ndarray, rows: np.ndarray) -> None:
        self._shards = shards
        self._shard_ids = shard_ids
        self._rows = rows

    def __len__(self) -> int:
        return len(self._rows)

    @property
    def feature_size(self) -> int:
        """Width of one feature row."""
        return int(self._shards[0].shape[1]) if self._shards else 0

    def __getitem__(self, index: int | Sequence[int] | np.ndarray) -> np.ndarray:
        if isinstance(index, int | np.integer):
            return np.asarray(self._shards[self._shard_ids[index]][self._rows[index]])
        index = np.asarray(index)
        out = np.empty((len(index), self.feature_size), dtype=np.float32)
        shard_ids = self._shard_ids[index]
        for shard in np.unique(shard_ids):
            where = np.nonzero(shard_ids == shard)[0]
            rows = self._rows[index[where]]
            order = np.argsort(rows)  # read each shard in file order
            out[where[order]] = self._shards[shard][rows[order]]
        return out


class FeatureCache:
    """Cached features of one feature extractor (one cache key)."""

    def __init__(self, key: str, root: str | os.PathLike[str] | None = None) -> None:
        self.key = key
        self.path = Path(root or cache_root()) / "features" / key
        self._index: dict[bytes, tuple[int, int]] = {}
        self._shards: list[np.ndarray] = []
        self._loaded: set[str] = set()

    def refresh(self) -> None:
        """Read shards written since the last look (by this or other processes)."""
        if not self.path.is_dir():
            return
        for keys_file in sorted(self.path.glob("*.keys.npy")):
            shard_name = keys_file.name[: -len(".keys.npy")]
            if shard_name in self._loaded:
                continue
            keys = np.load(keys_file, allow_pickle=False)  # uint8 [n, 16]: bytes keep their trailing zeros
            data = np.load(self.path / f"{shard_name}.npy", mmap_mode="r", allow_pickle=False)
            shard = len(self._shards)
            self._shards.append(data)
            for row, key in enumerate(keys):
                self._index.setdefault(key.tobytes(), (shard, row))
            self._loaded.add(shard_name)

    def missing(self, digests: Sequence[bytes]) -> list[int]:
        """Positions of *digests* whose features are not cached yet (first occurrence only)."""
        self.refresh()
        seen: set[bytes] = set()
        out = []
        for i, digest in enumerate(digests):
            if digest not in self._index and digest not in seen:
                seen.add(digest)
                out.append(i)
        return out

    def add(self, digests: Sequence[bytes], features: np.ndarray) -> None:
        """Write one shard of features (atomically: data first, keys last)."""
        if len(digests) != len(features):
            raise ValueError(f"{len(digests)} digests for {len(features)} feature rows")
        if not len(digests):
            return
        self.path.mkdir(parents=True, exist_ok=True)
        name = uuid.uuid4().hex
        tmp = self.path / f".{name}.tmp.npy"
        np.save(tmp, np.ascontiguousarray(features, dtype=np.float32), allow_pickle=False)
        os.replace(tmp, self.path / f"{name}.npy")
        tmp_keys = self.path / f".{name}.keys.tmp.npy"
        keys = np.frombuffer(b"".join(digests), dtype=np.uint8).reshape(len(digests), DIGEST_BYTES)
        np.save(tmp_keys, keys, allow_pickle=False)
        os.replace(tmp_keys, self.path / f"{name}.keys.npy")
        logger.debug("Cached %d feature rows in %s", len(digests), self.path / f"{name}.npy")

    def table(self, digests: Sequence[bytes]) -> FeatureTable:
        """A :class:`FeatureTable` of the cached features of *digests*, in order."""
        self.refresh()
        try:
            pairs = np.array([self._index[d] for d in digests], dtype=np.int64).reshape(-1, 2)
        except KeyError as exc:
            raise KeyError(f"features of example {exc.args[0].hex()} are not in the cache {self.path}") from None
        return FeatureTable(self._shards, pairs[:, 0], pairs[:, 1])

    def __len__(self) -> int:
        self.refresh()
        return len(self._index)
