"""Reading the user's target data, in any accepted form, into ``datasets`` splits.

:func:`read_data` accepts a ``datasets.Dataset`` or ``DatasetDict``, a pandas
DataFrame, a dict of datasets, a Hub dataset id, a saved dataset folder, a folder
of class sub-folders (files of any installed modality, each read by its plugin),
or CSV/TSV/JSON/Parquet files, and
returns ``{split name: datasets.Dataset}`` with the usual split aliases
(``valid``, ``dev``, ...) renamed. Reading problems are
raised as :class:`~tlzoo.errors.DataError`; checking columns and labels is
:mod:`tlzoo.data.target`'s job.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tlzoo.errors import DataError, UnreadableExampleError
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
        suffixes = {p.suffix.lower() for p in local.rglob("*") if p.is_file() and not p.name.startswith(".")}
        reader = _folder_modality(suffixes, modality)
        # data files, unless the source's own modality reads them (another plugin's .json examples do not count)
        if suffixes & set(FILE_BUILDERS) and (reader is None or (modality is not None and reader.name != modality.name)):
            return dict(_load(str(local)))
        if reader is None:
            raise DataError(
                f"Folder {path!r} holds no files tlzoo can read (found {sorted(suffixes) or 'none'}). Expected one "
                "sub-folder per class with files of an installed modality (`tlzoo plugins` lists their file "
                "types), a saved dataset, or CSV/JSON/Parquet files."
            )
        _check_several_classes(local, reader)
        if reader.folder_builder:
            return dict(_load(reader.folder_builder, data_dir=str(local)))
        return read_class_folders(local, reader)
    check_data_path(path)
    return dict(_load(path))  # a Hub dataset id


def check_data_path(data: Any) -> None:
    """Data given as a path that can only be local and does not exist: a :class:`DataError` now (no Hub lookup)."""
    if not isinstance(data, str | os.PathLike):
        return
    path = os.fspath(data)
    local = Path(path).expanduser()
    if not local.exists() and _looks_local(path):
        raise DataError(f"Target data path {path!r} does not exist{_nearest_existing(local)}. Check the path; a "
                        "Hub dataset id has the form 'name' or 'org/name'.")


#: Sub-folder names that hold splits, not classes, in a folder of class folders.
SPLIT_FOLDERS = ("train", "training", "validation", "valid", "val", "dev", "test", "testing", "eval")


def _check_several_classes(folder: Path, reader: Any) -> None:
    """A folder of class folders with a single class is the one-class error now, not a missing label column later."""
    extensions = {e.lower() for e in reader.file_extensions}
    classes = {p.parent.name for p in folder.rglob("*") if p.suffix.lower() in extensions and p.parent != folder
               and p.parent.name.lower() not in SPLIT_FOLDERS}
    if len(classes) == 1:
        raise DataError(
            f"The train split has only one class ({next(iter(classes))!r}); classification needs at least two "
            f"classes. {folder} holds one sub-folder of examples: add a sub-folder per class, with its examples."
        )


def _looks_local(path: str) -> bool:
    """Whether *path* can only be meant as a local path (it cannot be a Hub dataset id)."""
    local = Path(path).expanduser()
    return (path.startswith((".", "/", "~", "\\")) or path.count("/") > 1 or (os.sep != "/" and os.sep in path)
            or local.suffix.lower() in FILE_BUILDERS or (local.parent != Path(".") and local.parent.is_dir()))


def _nearest_existing(local: Path) -> str:
    for parent in local.parents:
        if parent != Path(".") and parent.is_dir():
            return f" (the folder {str(parent)!r} does)"
    return ""


def _folder_modality(suffixes: set[str], modality: Modality | None) -> Modality | None:
    """The modality whose files a folder holds: the source model's if it reads them, else the first that does."""
    from tlzoo.plugins import modalities

    candidates = [modality] if modality else []
    candidates += sorted(modalities().values(), key=lambda m: -m.priority)
    return next((m for m in candidates if suffixes & set(m.file_extensions)), None)


def read_class_folders(root: Path, modality: Modality) -> dict[str, Any]:
    """Read ``root/<class>/<file>`` (or ``root/<split>/<class>/<file>``) with the modality's ``read_file``.

    Only files with one of the modality's :attr:`~tlzoo.plugins.Modality.file_extensions`
    are read; hidden files are skipped. The splits get an input column named
    after the modality's first :attr:`~tlzoo.plugins.Modality.column_names`
    entry (or its name) and a ``label`` ClassLabel column shared by all splits.
    """
    import datasets

    extensions = set(modality.file_extensions)
    subfolders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    split_dirs = [p for p in subfolders if SPLIT_ALIASES.get(p.name, p.name) in ("train", "validation", "test")]
    layout = {p.name: p for p in split_dirs} if split_dirs else {"train": root}
    files = {split: sorted(f for f in folder.glob("*/*") if f.is_file() and f.suffix.lower() in extensions
                           and not f.name.startswith(".") and not f.parent.name.startswith("."))
             for split, folder in layout.items()}
    names = sorted({f.parent.name for found in files.values() for f in found})
    if not names:
        raise DataError(f"Folder {str(root)!r} has no class sub-folders of {modality.name} files "
                        f"({', '.join(sorted(extensions))}); put each class's files in a sub-folder named after it.")
    column = (modality.column_names or (modality.name,))[0]
    label = datasets.ClassLabel(names=names)
    splits = {}
    for split, found in files.items():
        values = [_read_one(modality, f) for f in found]
        labels = [names.index(f.parent.name) for f in found]
        table = datasets.Dataset.from_dict({column: values, "label": labels})
        splits[split] = table.cast_column("label", label)
    return splits


def _read_one(modality: Modality, file: Path) -> Any:
    """One example read by the modality's ``read_file``; a file it cannot read is an error naming it and the fix."""
    try:
        return modality.read_file(str(file))
    except UnreadableExampleError as exc:
        raise UnreadableExampleError(f"{str(exc).rstrip('.')}. Remove or replace that file, then run again.") from exc
    except (OSError, ValueError) as exc:  # ValueError: UnicodeDecodeError and the like
        raise UnreadableExampleError(f"Cannot read the {modality.name} file {str(file)!r}: {type(exc).__name__}: "
                                     f"{exc}. Remove or replace that file, then run again.") from exc


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
        from tlzoo.hub import unreachable_endpoint

        if unreachable_endpoint() is not None:  # found unreachable before the run: offline already
            raise DataError(f"Cannot load dataset {args[0]!r}: the Hub at {unreachable_endpoint()} cannot be "
                            "reached, and the local cache does not hold it. Pass a local file or folder, or check "
                            "the network connection.") from exc
        raise DataError(f"Cannot reach the Hub to load dataset {args[0]!r}: {exc}. Working offline? Pass a local "
                        "file or folder, and set HF_HUB_OFFLINE=1 so nothing waits on the network.") from exc
