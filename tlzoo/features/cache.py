"""The persistent feature cache: a frozen backbone runs once per example, ever.

Features live under ``$TLZOO_CACHE/features/<extractor key>/`` (default
``~/.cache/tlzoo``), where the extractor key covers the source model id and
revision, the preprocessing config, the pooling and the weights;
``info.json`` there names the source model. Inside, each write adds a shard
of three files:

- ``<id>.npy``: float32 ``[n, feature_size]``, the features;
- ``<id>.keys.npy``: the examples' 16-byte content digests, ``uint8 [n, 16]``;
- ``<id>.digest.json``: the size and BLAKE2b digest of both, written last.

Each file is written to a temporary name, flushed to the disk and renamed, so
a reader never sees half a file; the digest file is the shard's commit
record, and files without one are a write in progress (or a write a kill cut
short, removed by later writes once they are old). A shard is checked against
its digest when a process first reads it (one sequential read; a shard this
process wrote or already checked is not read again). A damaged shard --
truncated, overwritten, a garbage header, a file missing -- is dropped with a
warning naming it, and its features are computed again: never a raw error,
never silently wrong features. Shards are memory-mapped when read, so data
larger than RAM keeps memory bounded.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tlzoo.durable import write_atomic

logger = logging.getLogger(__name__)

DIGEST_BYTES = 16
SHARD_FORMAT = 1
DATA_SUFFIX, KEYS_SUFFIX, DIGEST_SUFFIX = ".npy", ".keys.npy", ".digest.json"
INFO_FILE = "info.json"
#: Files of a shard without a digest, and temporary files, older than this are leftovers of a killed write.
STALE_SECONDS = 600.0
_CHUNK = 1 << 20
#: Shard files this process wrote or checked: ``path -> (size, mtime_ns, ctime_ns, inode)``.
_CHECKED: dict[str, tuple[int, int, int, int]] = {}


def cache_root() -> Path:
    """Where tlzoo keeps its caches: ``$TLZOO_CACHE`` or ``~/.cache/tlzoo``."""
    env = os.environ.get("TLZOO_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "tlzoo"


def features_root(root: str | os.PathLike[str] | None = None) -> Path:
    """The folder of every extractor's cached features (``<cache root>/features``)."""
    return Path(root or cache_root()) / "features"


class DamagedShard(Exception):
    """A shard does not match its digest or cannot be read (the message says why)."""


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _identity(path: Path) -> tuple[int, int, int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino


def _blake2b(path: Path) -> str:
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def shard_names(folder: Path) -> list[str]:
    """The committed shards of *folder* (those with a digest file), in name order."""
    if not folder.is_dir():
        return []
    return sorted(p.name[: -len(DIGEST_SUFFIX)] for p in folder.glob(f"*{DIGEST_SUFFIX}") if not p.name.startswith("."))


def shard_files(folder: Path, name: str) -> tuple[Path, Path, Path]:
    """The data, keys and digest files of the shard *name*."""
    return folder / f"{name}{DATA_SUFFIX}", folder / f"{name}{KEYS_SUFFIX}", folder / f"{name}{DIGEST_SUFFIX}"


def write_shard(folder: Path, digests: Sequence[bytes], features: np.ndarray) -> str:
    """Write one shard (data, keys, then the digest that commits them); returns its name."""
    folder.mkdir(parents=True, exist_ok=True)
    name = uuid.uuid4().hex
    data_file, keys_file, digest_file = shard_files(folder, name)
    keys = np.frombuffer(b"".join(digests), dtype=np.uint8).reshape(len(digests), DIGEST_BYTES)
    record: dict[str, Any] = {"format": SHARD_FORMAT, "rows": len(digests), "feature_size": int(features.shape[1])}
    for part, file, array in (("data", data_file, np.ascontiguousarray(features, dtype=np.float32)),
                              ("keys", keys_file, keys)):
        payload = _npy_bytes(array)
        write_atomic(file, payload)
        record[part] = {"bytes": len(payload), "blake2b": hashlib.blake2b(payload, digest_size=16).hexdigest()}
    write_atomic(digest_file, json.dumps(record, indent=1))
    for file in (data_file, keys_file):
        _CHECKED[str(file)] = _identity(file)
    return name


def read_shard(folder: Path, name: str, *, check: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The keys ``uint8 [n, 16]`` and the memory-mapped features of a shard, checked against its digest.

    :raises DamagedShard: naming the file at fault and what is wrong with it.
    """
    data_file, keys_file, digest_file = shard_files(folder, name)
    try:
        record = json.loads(digest_file.read_text(encoding="utf-8"))
        rows, width = int(record["rows"]), int(record["feature_size"])
        expected = {data_file: record["data"], keys_file: record["keys"]}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DamagedShard(f"{digest_file} cannot be read ({type(exc).__name__}: {exc})") from None
    for file, want in expected.items():
        if not file.is_file():
            raise DamagedShard(f"{file} is missing")
        size = file.stat().st_size
        if size != want.get("bytes"):
            raise DamagedShard(f"{file} is {size} bytes long, {want.get('bytes')} were written (truncated or damaged)")
        if check and _CHECKED.get(str(file)) != _identity(file):
            if _blake2b(file) != want.get("blake2b"):
                raise DamagedShard(f"{file} does not match its digest (its content changed after it was written)")
            _CHECKED[str(file)] = _identity(file)
    try:
        keys = np.load(keys_file, allow_pickle=False)
        data = np.load(data_file, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise DamagedShard(f"{data_file} cannot be read ({type(exc).__name__}: {exc})") from None
    if keys.shape != (rows, DIGEST_BYTES) or keys.dtype != np.uint8:
        raise DamagedShard(f"{keys_file} holds {keys.dtype} {keys.shape}, not uint8 ({rows}, {DIGEST_BYTES})")
    if data.shape != (rows, width) or data.dtype != np.float32:
        raise DamagedShard(f"{data_file} holds {data.dtype} {data.shape}, not float32 ({rows}, {width})")
    return keys, data


def drop_shard(folder: Path, name: str) -> None:
    """Remove a shard: its digest first (it stops being a shard), then its data and keys."""
    for file in reversed(shard_files(folder, name)):
        file.unlink(missing_ok=True)
        _CHECKED.pop(str(file), None)


def leftovers(folder: Path, *, older_than: float = STALE_SECONDS) -> list[Path]:
    """Files of *folder* no shard owns (a write cut short, an older format) untouched for *older_than* seconds."""
    if not folder.is_dir():
        return []
    committed = set(shard_names(folder))
    now, out = time.time(), []
    for file in folder.iterdir():
        if not file.is_file() or file.name == INFO_FILE:
            continue
        stem = file.name.split(".")[0] if not file.name.startswith(".") else None
        if stem in committed:
            continue
        try:
            if now - file.stat().st_mtime >= older_than:
                out.append(file)
        except FileNotFoundError:
            continue
    return sorted(out)


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
    """Cached features of one feature extractor (one cache key).

    :param info: what the key stands for (source model, revision, feature
        size, ...), written once to ``info.json`` for ``tlzoo cache list``.
    """

    def __init__(self, key: str, root: str | os.PathLike[str] | None = None, *,
                 info: dict[str, Any] | None = None) -> None:
        self.key = key
        self.path = features_root(root) / key
        self.info = dict(info or {})
        self._index: dict[bytes, tuple[int, int]] = {}
        self._shards: list[np.ndarray] = []
        self._loaded: set[str] = set()
        self._swept = False
        #: Shards found damaged and dropped by this object, ``{data file: why}``.
        self.dropped: dict[str, str] = {}

    def refresh(self) -> None:
        """Read shards written since the last look (by this or other processes); drop damaged ones."""
        for name in shard_names(self.path):
            if name in self._loaded:
                continue
            try:
                keys, data = read_shard(self.path, name)
            except DamagedShard as exc:
                self._drop(name, str(exc))
                continue
            shard = len(self._shards)
            self._shards.append(data)
            for row, key in enumerate(keys):  # uint8 [n, 16]: bytes keep their trailing zeros
                self._index.setdefault(key.tobytes(), (shard, row))
            self._loaded.add(name)

    def _drop(self, name: str, why: str) -> None:
        data_file = shard_files(self.path, name)[0]
        logger.warning("The feature cache shard %s is damaged: %s. Dropping it; its features are computed again.",
                       data_file, why)
        drop_shard(self.path, name)
        self.dropped[str(data_file)] = why

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
        """Write one shard of features (atomically: data, keys, then the digest that commits them)."""
        if len(digests) != len(features):
            raise ValueError(f"{len(digests)} digests for {len(features)} feature rows")
        if not len(digests):
            return
        self.path.mkdir(parents=True, exist_ok=True)
        if not self._swept:
            self._sweep()
        name = write_shard(self.path, digests, features)
        logger.debug("Cached %d feature rows in %s", len(digests), shard_files(self.path, name)[0])

    def _sweep(self) -> None:
        """Write ``info.json`` if missing; remove old leftovers of writes that a kill cut short."""
        self._swept = True
        info_file = self.path / INFO_FILE
        if self.info and not info_file.is_file():
            write_atomic(info_file, json.dumps({**self.info, "created": time.time()}, indent=2, default=str))
        for file in leftovers(self.path):
            logger.debug("Removing %s, left by an unfinished cache write.", file)
            file.unlink(missing_ok=True)

    def table(self, digests: Sequence[bytes]) -> FeatureTable:
        """A :class:`FeatureTable` of the cached features of *digests*, in order.

        :raises KeyError: some of them are not cached (``missing`` tells which).
        """
        self.refresh()
        try:
            pairs = np.array([self._index[d] for d in digests], dtype=np.int64).reshape(-1, 2)
        except KeyError as exc:
            raise KeyError(f"features of example {exc.args[0].hex()} are not in the cache {self.path}") from None
        return FeatureTable(self._shards, pairs[:, 0], pairs[:, 1])

    def __len__(self) -> int:
        self.refresh()
        return len(self._index)


@dataclass
class CachedFeatureSet:
    """One extractor's folder in the cache, as :func:`scan_cache` finds it.

    :ivar problems: ``(file, what is wrong)`` of damaged shards and leftover
        files (with ``verify=True``; without it, only what sizes tell).
    """

    key: str
    path: Path
    info: dict[str, Any]
    shards: list[str]
    rows: int
    size_on_disk: int
    last_modified: float
    problems: list[tuple[Path, str]] = field(default_factory=list)


def scan_cache(root: str | os.PathLike[str] | None = None, *, verify: bool = False) -> list[CachedFeatureSet]:
    """Every extractor's cached features under *root* (default :func:`cache_root`), largest first.

    ``verify=True`` reads every shard and checks it against its digest
    (``check=False`` there otherwise: sizes and headers only). Nothing is
    changed on disk.
    """
    found = []
    base = features_root(root)
    for folder in sorted(p for p in base.iterdir() if p.is_dir()) if base.is_dir() else []:
        try:
            info = json.loads((folder / INFO_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            info = {}
        files = [p for p in folder.rglob("*") if p.is_file()]
        stats = [p.stat() for p in files]
        entry = CachedFeatureSet(
            key=folder.name, path=folder, info=info if isinstance(info, dict) else {}, shards=[], rows=0,
            size_on_disk=sum(s.st_size for s in stats),
            last_modified=max((s.st_mtime for s in stats), default=folder.stat().st_mtime),
        )  # fmt: skip
        for name in shard_names(folder):
            try:
                keys, _ = read_shard(folder, name, check=verify)
            except DamagedShard as exc:
                entry.problems.append((shard_files(folder, name)[0], str(exc)))
                continue
            entry.shards.append(name)
            entry.rows += len(keys)
        entry.problems += [(p, "left by an unfinished write, or written without a digest by an older tlzoo")
                           for p in leftovers(folder)]
        found.append(entry)
    return sorted(found, key=lambda e: -e.size_on_disk)
