"""What the loop iterates over: batches of raw examples or of cached features."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from tlzoo.features.cache import FeatureTable


def label_tensor(labels: Sequence[Any], task: str, num_labels: int) -> torch.Tensor:
    """Labels as the loss wants them: class ids, multi-hot rows, or floats."""
    if task == "single_label_classification":
        return torch.as_tensor(np.asarray(labels, dtype=np.int64))
    if task == "multi_label_classification":
        out = torch.zeros(len(labels), num_labels)
        for row, ids in enumerate(labels):
            out[row, list(ids)] = 1.0
        return out
    values = torch.as_tensor(np.asarray(labels, dtype=np.float32))
    return values if values.ndim == 2 else values.unsqueeze(-1)


class ExampleBatches(Dataset):
    """Raw examples of a ``datasets.Dataset``, fetched a batch at a time.

    ``__getitems__`` reads a whole batch from Arrow in one call; the collate
    function (:class:`Collate`) preprocesses it, in data-loader workers when
    there are any.
    """

    def __init__(self, ds: Any, input_column: str, label_column: str) -> None:
        self.ds = ds
        self.input_column = input_column
        self.label_column = label_column

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.__getitems__([index])

    def __getitems__(self, indices: Sequence[int]) -> dict[str, Any]:
        rows = self.ds[list(indices)]
        return {"values": rows[self.input_column], "labels": rows[self.label_column], "index": list(indices)}


class FeatureBatches(Dataset):
    """Cached feature rows (memory-mapped) with their labels."""

    def __init__(self, table: FeatureTable, labels: Sequence[Any]) -> None:
        self.table = table
        self.labels = list(labels)

    def __len__(self) -> int:
        return len(self.table)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.__getitems__([index])

    def __getitems__(self, indices: Sequence[int]) -> dict[str, Any]:
        return {
            "features": torch.from_numpy(self.table[np.asarray(indices)]),
            "labels": [self.labels[i] for i in indices],
            "index": list(indices),
        }


class Collate:
    """Turns a fetched batch into tensors: preprocess raw values, encode labels."""

    def __init__(self, preprocess: Callable[[Sequence[Any]], dict[str, torch.Tensor]] | None, task: str, num_labels: int) -> None:
        self.preprocess = preprocess
        self.task = task
        self.num_labels = num_labels

    def __call__(self, fetched: dict[str, Any]) -> dict[str, Any]:
        batch: dict[str, Any] = {"labels": label_tensor(fetched["labels"], self.task, self.num_labels)}
        batch["index"] = torch.as_tensor(fetched["index"])
        if "features" in fetched:
            batch["features"] = fetched["features"]
        else:
            assert self.preprocess is not None
            batch["inputs"] = self.preprocess(fetched["values"])
        return batch
