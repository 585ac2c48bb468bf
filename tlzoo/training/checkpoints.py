"""Checkpoints of the training loop: written so a crash never leaves one that looks complete.

A checkpoint is a folder ``<output_dir>/checkpoints/<phase>-epoch-<NNNN>/``
holding accelerate's ``save_state`` files (model, optimizer, scheduler, random
states), the best weights so far when early stopping tracks them, and
``tlzoo_trainer_state.json``: the loop's state, the training history and a
manifest of every other file with its size and SHA-256. The state file is the
commit record. It is written last, atomically, after every other file has
been flushed to the disk; until it exists the folder is not a checkpoint.

Listing checkpoints checks each cheaply (the state parses, every file of the
manifest has its size, every ``.safetensors`` header agrees with its file
size); the one a run resumes from is also checked against its digests (one
read of its files), so a file changed in place, at the same size, is found
too. ``resume_from=True`` skips a damaged checkpoint with a warning naming it
and resumes from the latest complete one; an explicitly named damaged
checkpoint is a :class:`~tlzoo.errors.TrainingError`.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tlzoo.durable import follow_umask, fsync_dir, fsync_file, safetensors_problem, sha256_file, write_atomic
from tlzoo.errors import TrainingError

if TYPE_CHECKING:
    from tlzoo.training.loop import LoopSettings

logger = logging.getLogger(__name__)

STATE_FILE = "tlzoo_trainer_state.json"
BEST_WEIGHTS = "best_weights.safetensors"
#: The folder names :func:`checkpoint_name` makes.
NAME_PATTERN = re.compile(r"^.+-epoch-\d{4,}$")
#: The keys every trainer state has.
STATE_KEYS = ("phase", "epoch", "order", "best", "best_epoch", "bad_epochs", "history")


def checkpoint_name(phase: str, epoch: int) -> str:
    """The folder name of *phase*'s checkpoint after *epoch*."""
    return f"{phase}-epoch-{epoch:04d}"


def save_checkpoint(accelerator: Any, settings: LoopSettings, state: dict[str, Any],
                    best: dict[str, Any] | None) -> None:
    """Write the checkpoint of ``state["phase"]`` after ``state["epoch"]``; drop the ones beyond the limit.

    An older folder of the same name stops counting as a checkpoint (it is
    removed) before any new file is written into its place.
    """
    if settings.checkpoint_dir is None:
        return
    path = settings.checkpoint_dir / checkpoint_name(state["phase"], state["epoch"])
    if accelerator.is_main_process and path.exists():
        shutil.rmtree(path)
        fsync_dir(settings.checkpoint_dir)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(path))
    accelerator.wait_for_everyone()  # every process's files are in the folder
    if accelerator.is_main_process:
        if best is not None:
            from safetensors.torch import save_file

            save_file({k: v.contiguous() for k, v in best.items()}, str(path / BEST_WEIGHTS))
        follow_umask(path)
        files = {}
        for file in sorted(path.iterdir()):
            if file.is_file() and file.name != STATE_FILE and not file.name.startswith("."):
                fsync_file(file)
                files[file.name] = {"bytes": file.stat().st_size, "sha256": sha256_file(file)}
        fsync_dir(path)
        complete, _ = scan_checkpoints(settings.checkpoint_dir, warn=False)
        sequence = 1 + max((_sequence(p)[0] for p in complete), default=0)
        full = {**state, "order": state["order"] * 100000 + state["epoch"], "sequence": sequence,
                "history": settings.history, "files": files}
        write_atomic(path / STATE_FILE, json.dumps(full, indent=2, default=float))
        fsync_dir(settings.checkpoint_dir)
        _prune(settings.checkpoint_dir, settings.save_total_limit)
    accelerator.wait_for_everyone()


def _prune(checkpoint_dir: Path, keep: int) -> None:
    """Remove all but the *keep* newest complete checkpoints, and folders of checkpoints that never completed."""
    complete, damaged = scan_checkpoints(checkpoint_dir, warn=False)
    for stale in complete[: max(0, len(complete) - keep)]:
        shutil.rmtree(stale, ignore_errors=True)
    for broken, problem in damaged:
        logger.info("Removing the incomplete checkpoint %s (%s).", broken, problem)
        shutil.rmtree(broken, ignore_errors=True)


def _sequence(path: Path) -> tuple[int, int]:
    """Sort key of a complete checkpoint: when it was written (``sequence``), then its phase and epoch."""
    state = json.loads((path / STATE_FILE).read_text(encoding="utf-8"))
    return int(state.get("sequence", 0)), int(state["order"])


def read_state(path: str | Path) -> dict[str, Any]:
    """The trainer state of the checkpoint *path*, with ``"path"``; a :class:`TrainingError` if it is damaged.

    Every file is checked against the digest the state recorded for it.
    """
    path = Path(path)
    problem = checkpoint_problem(path, verify=True)
    if problem is not None:
        raise TrainingError(
            f"The checkpoint {path} cannot be resumed from: {problem}. Resume from an earlier checkpoint, or with "
            f"resume_from=True (--resume) to take the latest complete one in {path.parent}."
        )
    state = json.loads((path / STATE_FILE).read_text(encoding="utf-8"))
    state["path"] = str(path)
    return state


def checkpoint_problem(path: Path, *, verify: bool = False) -> str | None:
    """What makes the checkpoint folder *path* unusable, or ``None`` when it is complete.

    :param verify: also read every file and compare it with the SHA-256 the
        trainer state recorded (checkpoints written before digests were
        recorded are checked by size only).
    """
    state_file = path / STATE_FILE
    if not state_file.is_file():
        return f"it has no {STATE_FILE} (its save did not finish)"
    try:
        state = json.loads(state_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return f"{state_file} cannot be read ({type(exc).__name__}: {exc}; the write was torn)"
    if not isinstance(state, dict) or any(key not in state for key in STATE_KEYS):
        return f"{state_file} is not a complete trainer state"
    if not isinstance(state["epoch"], int) or not isinstance(state["history"], list):
        return f"{state_file} is not a valid trainer state"
    manifest = state.get("files")
    manifest = manifest if isinstance(manifest, dict) else {}
    for name, record in manifest.items():
        file = path / name
        size = record.get("bytes") if isinstance(record, dict) else record  # older states: the size alone
        if not file.is_file():
            return f"{file} is missing"
        if file.stat().st_size != size:
            return f"{file} is truncated or damaged ({file.stat().st_size} bytes, {size} were written)"
    for file in sorted(path.glob("*.safetensors")):
        problem = safetensors_problem(file)
        if problem is not None:
            return f"{file}: {problem}"
    if verify:
        for name, record in manifest.items():
            if isinstance(record, dict) and "sha256" in record and sha256_file(path / name) != record["sha256"]:
                return f"{path / name} was changed after it was written (its SHA-256 differs from the one recorded)"
    return None


def scan_checkpoints(checkpoint_dir: Path, *, warn: bool = True) -> tuple[list[Path], list[tuple[Path, str]]]:
    """The complete checkpoints in *checkpoint_dir*, oldest first, and the damaged ones with their problem.

    A folder is a candidate when it has a trainer state or a checkpoint's
    name; ``warn=True`` logs a warning naming each damaged one.
    """
    complete: list[Path] = []
    damaged: list[tuple[Path, str]] = []
    if not checkpoint_dir.is_dir():
        return complete, damaged
    for path in sorted(checkpoint_dir.iterdir()):
        if not path.is_dir() or path.name.startswith(".") or not (
            (path / STATE_FILE).is_file() or NAME_PATTERN.match(path.name)
        ):
            continue
        problem = checkpoint_problem(path)
        if problem is None:
            complete.append(path)
        else:
            damaged.append((path, problem))
            if warn:
                logger.warning("Skipping the checkpoint %s: %s.", path, problem)
    return sorted(complete, key=_sequence), damaged


def find_checkpoint(resume_from: str | Path | bool, checkpoint_dir: Path | None) -> Path | None:
    """The checkpoint folder *resume_from* names (``True``: the latest complete one), checked to be complete."""
    if resume_from is True:
        if checkpoint_dir is None or not checkpoint_dir.is_dir():
            raise TrainingError("resume_from=True needs output_dir with checkpoints from an earlier run.")
        complete, damaged = scan_checkpoints(checkpoint_dir)
        while complete:  # the newest whose files match their digests
            problem = checkpoint_problem(complete[-1], verify=True)
            if problem is None:
                break
            logger.warning("Skipping the checkpoint %s: %s.", complete[-1], problem)
            damaged.append((complete.pop(), problem))
        if not complete:
            if damaged:
                details = "; ".join(f"{p.name}: {why}" for p, why in damaged)
                raise TrainingError(
                    f"No complete checkpoint to resume from in {checkpoint_dir} ({details}). Start the training "
                    "again without resume_from (--resume)."
                )
            raise TrainingError(f"No checkpoint to resume from in {checkpoint_dir}.")
        if damaged:
            logger.warning("Resuming from %s, the latest complete checkpoint.", complete[-1])
        return complete[-1]
    if not resume_from:
        return None
    path = Path(resume_from)
    if not (path / STATE_FILE).is_file() and not NAME_PATTERN.match(path.name):
        raise TrainingError(f"{path} is not a tlzoo checkpoint (no {STATE_FILE}).")
    read_state(path)  # a TrainingError naming the problem when it is damaged
    return path
