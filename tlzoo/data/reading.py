"""Reading the user's target data, in any accepted form, into ``datasets`` splits.

:func:`read_data` accepts a ``datasets.Dataset`` or ``DatasetDict``, a pandas
DataFrame, a dict of datasets, a Hub dataset id, a saved dataset folder, a folder
of class sub-folders (image or audio files), or CSV/TSV/JSON/Parquet files, and
returns ``{split name: datasets.Dataset}`` with the usual split aliases
(``valid``, ``dev``, ...) renamed. Reading problems are
raised as :class:`~tlzoo.errors.DataError`; checking columns and labels is
:mod:`tlzoo.data.target`'s job.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tlzoo.errors import DataError
from tlzoo.plugins.modality import Modality

SPLIT_ALIASES = {"valid": "validation", "val": "validation", "dev": "validation", "eval": "validation", "testing": "test"}
FILE_BUILDERS = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}


def read_data(data: Any, *, modality: Modality | None = None) -> dict[str, Any]:
    """Turn any accepted form of data into ``{split name: datasets.Dataset}``."""
    import datasets

    if isinstance(data, datasets.DatasetDict):
        splits = dict(data)
    elif isinstance(data, datasets.Dataset):
        splits = {"train": data}
    elif type(data).__name__ == "DataFrame":
        splits = {"train": datasets.Dataset.from_pandas(data, preserve_index=False)}
    elif isinstance(data, dict) and data and all(isinstance(v, datasets.Dataset) for v in data.values()):
        splits = dict(data)
    elif isinstance(data, str | os.PathLike):
        splits = _read_path(os.fspath(data), modality)
    else:
        raise DataError(
            f"Cannot read target data of type {type(data).__name__}. Pass a datasets.Dataset or DatasetDict, "
            "a pandas DataFrame, a Hub dataset id, a folder, or CSV/JSON/Parquet files."
        )
    return {SPLIT_ALIASES.get(name, name): ds for name, ds in splits.items()}


def _read_path(path: str, modality: Modality | None) -> dict[str, Any]:
    import datasets

    local = Path(path).expanduser()
    if local.is_file():
        builder = FILE_BUILDERS.get(local.suffix.lower())
        if builder is None:
            raise DataError(f"Cannot read {path!r}: expected a .csv, .tsv, .json, .jsonl or .parquet file, or a folder.")
        kwargs = {"delimiter": "\t"} if local.suffix.lower() == ".tsv" else {}
        return dict(_load(builder, data_files={"train": str(local)}, **kwargs))
    if local.is_dir():
        if (local / "dataset_dict.json").exists() or (local / "state.json").exists():
            loaded = datasets.load_from_disk(str(local))
            return dict(loaded) if isinstance(loaded, datasets.DatasetDict) else {"train": loaded}
        suffixes = {p.suffix.lower() for p in local.rglob("*") if p.is_file()}
        if suffixes & set(FILE_BUILDERS) and not suffixes & _media_suffixes():
            return dict(_load(str(local)))
        builder = _folder_builder(suffixes, modality, path)
        return dict(_load(builder, data_dir=str(local)))
    if path.startswith((".", "/", "~")):
        raise DataError(f"Target data path {path!r} does not exist.")
    return dict(_load(path))  # a Hub dataset id


def _media_suffixes() -> set[str]:
    from tlzoo.plugins import modalities

    return {ext for m in modalities().values() for ext in m.file_extensions}


def _folder_builder(suffixes: set[str], modality: Modality | None, path: str) -> str:
    from tlzoo.plugins import modalities

    for mod in ([modality] if modality else []) + list(modalities().values()):
        if mod and suffixes & set(mod.file_extensions) and mod.name in ("image", "audio"):
            return f"{mod.name}folder"
    raise DataError(
        f"Folder {path!r} holds no files tlzoo can read (found {sorted(suffixes) or 'none'}). Expected one "
        "sub-folder per class with image or audio files, a saved dataset, or CSV/JSON/Parquet files."
    )


def _load(*args: Any, **kwargs: Any) -> Any:
    import datasets

    what = kwargs.get("data_dir") or next(iter(kwargs.get("data_files", {}).values()), None) or args[0]
    try:
        return datasets.load_dataset(*args, **kwargs)
    except ValueError as exc:
        if "corresponds to no data" in str(exc):  # datasets' words for a file without a single example
            raise DataError(f"The target data {what!r} holds no examples; add labelled examples to it.") from exc
        raise DataError(f"Cannot load target data {what!r}: {exc}") from exc
    except (FileNotFoundError, datasets.exceptions.DatasetNotFoundError) as exc:
        raise DataError(f"Cannot load target data {what!r}: {exc}") from exc
    except datasets.exceptions.DatasetGenerationError as exc:  # the file's reader failed (pandas, pyarrow)
        cause = exc.__cause__ or exc
        raise DataError(f"Cannot read the target data {what!r}: {type(cause).__name__}: {cause}. Check that it is "
                        f"a valid, non-empty file of its format.") from exc
    except ConnectionError as exc:
        raise DataError(f"Cannot reach the Hub to load dataset {args[0]!r}: {exc}") from exc
