"""Durable file writes and cheap integrity checks, shared by checkpoints, the feature cache and saved models.

A file is written *atomically*: to a temporary name in the same folder,
flushed and ``fsync``-ed, then renamed over its final name with
``os.replace``, and the folder is ``fsync``-ed so the rename itself survives a
power loss. A reader therefore sees the old file or the new one, never half of
one. :func:`safetensors_problem` tells, from the header and the file size
alone (no tensor is read), whether a ``.safetensors`` file is complete,
:func:`pickle_problem` whether a file is a pickle that must not be loaded, and
:func:`sha256_file` gives the digest that proves a file unchanged since it was written.
Everything tlzoo creates follows the user's umask (:func:`follow_umask`).

A folder saved atomically is staged in a hidden sibling named after its owner
(:func:`staging_prefix`); :func:`clean_leftovers` removes the ones a killed
save left behind, and only those: their owner process is gone, or (owner
unknown, or on another host) nothing in them changed for
:data:`STALE_SECONDS`.
"""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import os
import re
import shutil
import socket
import stat
import struct
import time
import uuid
from pathlib import Path

logger = logging.getLogger(__name__)

#: A leftover whose owner cannot be asked is removed once nothing in it changed for this long.
STALE_SECONDS = 600.0
#: ``.<name>.tmp-<pid>@<host>-<random>`` (staging) and ``.<name>.old-<pid>@<host>-<random>`` (set aside).
LEFTOVER = re.compile(r"^\.(?P<name>.+)\.(?P<kind>tmp|old)-(?:(?P<pid>\d+)@(?P<host>[^/]+)-)?[A-Za-z0-9_]+$")
#: A safetensors header larger than this is not a header (safetensors itself stops at 100 MB).
MAX_SAFETENSORS_HEADER = 100_000_000


def fsync_dir(folder: str | os.PathLike[str]) -> None:
    """Make the entries of *folder* (new names, renames, deletions) durable; a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_file(path: str | os.PathLike[str]) -> None:
    """Flush a file written by someone else (a library's ``save``) to the disk."""
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def sha256_file(path: str | os.PathLike[str]) -> str:
    """The SHA-256 of a file's content, as hex (what ``sha256sum`` prints), read in one sequential pass."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def write_atomic(path: str | os.PathLike[str], data: bytes | str) -> None:
    """Write *data* to *path* so that a crash leaves either the old file or the whole new one."""
    target = Path(path)
    tmp = target.with_name(f"{staging_prefix(target)}{uuid.uuid4().hex[:8]}")
    payload = data.encode("utf-8") if isinstance(data, str) else data
    try:
        with open(tmp, "wb") as handle:  # created with the umask's permissions
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(target.parent)
    clean_leftovers(target)


def current_umask() -> int:
    """The process's umask, read without changing it where the system tells it (Linux)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def follow_umask(folder: str | os.PathLike[str]) -> None:
    """Give *folder*, its sub-folders and files the permissions the umask gives new ones.

    Temporary folders (``tempfile.mkdtemp``: 0700) and some writers (0600) are
    more private than the user asked for; a saved model is shared and mounted
    like any other folder the user makes.
    """
    mask = current_umask()
    dir_mode, file_mode = 0o777 & ~mask, 0o666 & ~mask
    root = Path(folder)
    os.chmod(root, dir_mode)
    for base, dirs, files in os.walk(root):
        for name in dirs:
            os.chmod(os.path.join(base, name), dir_mode)
        for name in files:
            path = os.path.join(base, name)
            mode = os.lstat(path).st_mode
            if stat.S_ISREG(mode):
                os.chmod(path, file_mode | (0o111 & ~mask) if mode & 0o111 else file_mode)


def finish_folder(folder: str | os.PathLike[str]) -> None:
    """Ready a staged *folder* to be renamed into place: the umask's permissions, every file flushed to the disk."""
    follow_umask(folder)
    for base, dirs, files in os.walk(folder):
        for name in files:
            fsync_file(os.path.join(base, name))
        for name in dirs:
            fsync_dir(os.path.join(base, name))
    fsync_dir(folder)


def safetensors_problem(path: str | os.PathLike[str]) -> str | None:
    """What makes *path* an incomplete or invalid safetensors file, or ``None`` when its header and size agree.

    Reads the 8-byte header length and the JSON header only: a truncated
    file, a file of another format (a pickle named ``.safetensors``) or a
    garbage header is found without reading any tensor.
    """
    problem = _header_problem(path)
    if problem is not None and problem != "the file is missing":
        return pickle_problem(path) or problem
    return problem


def _header_problem(path: str | os.PathLike[str]) -> str | None:
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as handle:
            prefix = handle.read(8)
            if len(prefix) < 8:
                return f"it is {size} bytes long, too short for a safetensors file"
            (length,) = struct.unpack("<Q", prefix)
            if length > min(MAX_SAFETENSORS_HEADER, size - 8):
                return "it is not a safetensors file (no valid header)"
            header = json.loads(handle.read(length))
    except FileNotFoundError:
        return "the file is missing"
    except (OSError, ValueError) as exc:
        return f"its safetensors header cannot be read ({type(exc).__name__}: {exc})"
    if not isinstance(header, dict):
        return "its safetensors header is not a JSON object"
    end = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            begin, stop = (int(v) for v in info["data_offsets"])
        except (KeyError, TypeError, ValueError):
            return f"its safetensors header has no valid data_offsets for {name!r}"
        if not 0 <= begin <= stop:
            return f"its safetensors header has invalid data_offsets for {name!r}"
        end = max(end, stop)
    expected = 8 + length + end
    if size != expected:
        return f"it is {size} bytes long but its header describes {expected} bytes (the file is truncated or damaged)"
    return None


#: The first bytes of a pickle (protocol 2+), a zip archive (torch.save's format) and torch's legacy format.
PICKLE_MAGIC = (b"\x80", b"PK\x03\x04")


def pickle_problem(path: str | os.PathLike[str]) -> str | None:
    """``"it is a pickle ..."`` when *path* starts like a pickle or a ``torch.save`` archive, else ``None``."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(4)
    except OSError:
        return None
    if head.startswith(PICKLE_MAGIC):
        return "it is a pickle (torch.save) file, which tlzoo never loads: unpickling can run any code"
    return None


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname()) or "host"


def owner_tag() -> str:
    """``<pid>@<host>``: who owns a staging folder, for :func:`clean_leftovers`."""
    return f"{os.getpid()}@{_host()}"


def staging_prefix(target: Path, kind: str = "tmp") -> str:
    """The name prefix of *target*'s staging (``tmp``) or set-aside (``old``) sibling: ``.<name>.<kind>-<owner>-``."""
    return f".{target.name}.{kind}-{owner_tag()}-"


def _owner_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _last_change(folder: Path) -> float:
    """The newest modification time of *folder* and everything in it (a file being written keeps it fresh)."""
    newest = folder.lstat().st_mtime
    for base, _, files in os.walk(folder):
        for name in files:
            try:
                newest = max(newest, os.lstat(os.path.join(base, name)).st_mtime)
            except FileNotFoundError:
                continue
    return newest


def is_leftover(path: Path, *, now: float | None = None) -> bool:
    """Whether the staging or set-aside folder *path* belongs to no save still running."""
    match = LEFTOVER.match(path.name)
    if match is None:
        return False
    if match["pid"] is not None and match["host"] == _host():
        return not _owner_alive(int(match["pid"]))
    try:
        return (now or time.time()) - _last_change(path) >= STALE_SECONDS
    except FileNotFoundError:
        return False


def clean_leftovers(target: Path) -> None:
    """Remove what killed writes to *target* left beside it; a set-aside previous folder comes back if *target* is gone.

    A kill between setting the previous folder aside and renaming the new one
    into place leaves no *target*: the previous folder is renamed back.
    """
    for path in sorted(target.parent.glob(f".{glob.escape(target.name)}.*-*")):
        match = LEFTOVER.match(path.name)
        if match is None or match["name"] != target.name or not is_leftover(path):
            continue
        if not path.is_dir():
            logger.debug("Removing %s, left by an interrupted write.", path)
            path.unlink(missing_ok=True)
            continue
        if match["kind"] == "old" and not target.exists():
            os.rename(path, target)
            logger.warning("Restored %s from %s, where an interrupted save had set it aside.", target, path.name)
            continue
        logger.info("Removing %s, left by an interrupted save.", path)
        shutil.rmtree(path, ignore_errors=True)
