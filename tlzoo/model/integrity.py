"""Checks of a saved model's weight files before anything loads: safetensors only, complete, never a pickle."""

from __future__ import annotations

import json
from pathlib import Path

from tlzoo.durable import safetensors_problem
from tlzoo.errors import ModelLoadError

#: Weight files of formats tlzoo never loads: unpickling one can run any code.
PICKLE_WEIGHTS = ("*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl", "*.pickle")


def check_weight_files(folder: Path, head_file: Path) -> None:
    """Refuse, before anything is loaded, a saved folder whose weights are not complete safetensors files.

    The backbone's ``model.safetensors`` (or the shards its index lists) and
    *head_file* must be safetensors files whose headers agree with their
    sizes. A folder with only pickled weights (``pytorch_model.bin``, ...) is
    refused with the reason; a pickle under a ``.safetensors`` name is
    recognised without being unpickled.

    :raises ModelLoadError: naming the folder and the file.
    """
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        try:
            files = [folder / name for name in sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"]
                                                          .values()))]
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ModelLoadError(f"{index} cannot be read ({exc!r}); save the model again.") from exc
    elif (folder / "model.safetensors").is_file():
        files = [folder / "model.safetensors"]
    else:
        pickles = sorted(p.name for pattern in PICKLE_WEIGHTS for p in folder.glob(pattern))
        if pickles:
            raise ModelLoadError(
                f"Refusing to load {folder}: its backbone weights are {pickles[0]}, a pickle, and loading a pickle "
                "can run any code. tlzoo loads safetensors weights only (model.safetensors): convert the weights "
                "where you trust the file (transformers' save_pretrained writes safetensors), or save the model again."
            )
        raise ModelLoadError(
            f"{folder} has no model.safetensors: the backbone's weights are missing. Copy the whole saved folder "
            "(or save the model again)."
        )
    for file in [*files, head_file]:
        problem = safetensors_problem(file)
        if problem is not None:
            raise ModelLoadError(f"Cannot load {folder}: {file.name}: {problem}. Copy the whole saved folder again "
                                 "(or save the model again).")
