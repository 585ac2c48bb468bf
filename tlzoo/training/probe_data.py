"""The probe's inputs, checked and standardised: step one of :func:`tlzoo.training.probe.fit_probe`.

Features may be a numpy array, a numpy memmap (the feature cache) or a torch
tensor; they are read in chunks of rows, never modified, and never copied whole
unless they fit the memory budget. The column moments are float64 whatever the
features' dtype, so the standardisation folded into the saved head is exact.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from tlzoo.errors import ConfigurationError, DataError

TASKS = ("single_label_classification", "multi_label_classification", "regression")
#: Features whose standard deviation is at most this times max(1, |mean|) are constant (scale 1).
CONSTANT_FEATURE_TOLERANCE = 1e-7


class StandardisedFeatures:
    """Standardised rows ``(x - mean) / scale`` of a (possibly memory-mapped) matrix, in chunks.

    In memory, the standardised matrix is built once; streamed, every pass reads the
    source again and standardises chunk by chunk, so it costs no more memory than a chunk.
    """

    def __init__(self, x: Any, mean: np.ndarray, scale: np.ndarray, *, dtype: torch.dtype, device: str,
                 chunk_rows: int, in_memory: bool) -> None:
        self.source, self.rows, self.dtype, self.device, self.chunk_rows = x, len(x), dtype, device, chunk_rows
        self.mean = torch.as_tensor(mean, dtype=dtype, device=device)
        self.scale = torch.as_tensor(scale, dtype=dtype, device=device)
        self.matrix = self._standardise(0, self.rows) if in_memory else None

    @property
    def dim(self) -> int:
        """The number of features."""
        return self.mean.numel()

    def _standardise(self, start: int, stop: int) -> torch.Tensor:
        rows = as_tensor(self.source[start:stop], self.dtype, self.device)
        return rows.sub_(self.mean).div_(self.scale)

    def chunks(self) -> Iterator[tuple[int, int, torch.Tensor]]:
        """Yield ``(start, stop, standardised rows[start:stop])`` over all the rows."""
        for start in range(0, self.rows, self.chunk_rows):
            stop = min(start + self.chunk_rows, self.rows)
            yield start, stop, self.matrix[start:stop] if self.matrix is not None else self._standardise(start, stop)


def as_tensor(rows: Any, dtype: torch.dtype, device: str) -> torch.Tensor:
    """A fresh *dtype* tensor on *device* holding *rows* (numpy, memmap slice or tensor)."""
    if isinstance(rows, torch.Tensor):
        return rows.detach().to(device=device, dtype=dtype, copy=True)
    return torch.from_numpy(np.array(rows, dtype=np.float64 if dtype == torch.float64 else np.float32)).to(device)


def column_moments(x: Any, name: str, chunk_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Column mean and scale (the standard deviation; 1 for constant columns) in float64.

    Computed chunk by chunk around the first chunk's mean (so large offsets cost no
    precision). :raises DataError: on a matrix that is not 2-D and non-empty, or on
    NaN/inf values (naming the first one's row and feature).
    """
    if x.ndim != 2 or len(x) == 0:
        raise DataError(f"{name} must be a non-empty [rows, features] matrix, got shape {tuple(x.shape)}.")
    shift = total = squares = None
    for start in range(0, len(x), chunk_rows):
        chunk = x[start:start + chunk_rows]
        rows = np.asarray(chunk.cpu() if isinstance(chunk, torch.Tensor) else chunk, dtype=np.float64)
        bad = ~np.isfinite(rows)
        if bad.any():
            row, col = np.argwhere(bad)[0]
            raise DataError(f"{name} has {int(bad.sum())} non-finite values (NaN or inf) in rows {start}.."
                            f"{start + len(rows) - 1}, the first at row {start + row}, feature {col}; "
                            "the features must be finite.")
        if shift is None:
            shift, total, squares = rows.mean(0), np.zeros(x.shape[1]), np.zeros(x.shape[1])
        centred = rows - shift
        total += centred.sum(0)
        squares += (centred * centred).sum(0)
    mean = total / len(x)
    std = np.sqrt(np.maximum(squares / len(x) - mean * mean, 0.0))
    mean += shift
    scale = np.where(std > CONSTANT_FEATURE_TOLERANCE * np.maximum(1.0, np.abs(mean)), std, 1.0)
    return mean, scale


def check_targets(y: Any, task: str, num_labels: int, rows: int, name: str) -> torch.Tensor:
    """Labels as int64 class ids [N] (single-label) or a float64 matrix [N, num_labels].

    :raises DataError: on a wrong length, shape, class id, non-finite value, or
        multi-label targets outside [0, 1].
    """
    y = np.asarray(y.cpu() if isinstance(y, torch.Tensor) else y)
    if len(y) != rows:
        raise DataError(f"{name} has {len(y)} rows but the features have {rows}.")
    if task == "single_label_classification":
        if y.ndim != 1 or not np.all(np.equal(np.mod(y, 1), 0)):
            raise DataError(f"{name} must be integer class ids of shape [N], got {y.dtype} {y.shape}.")
        if y.min() < 0 or y.max() >= num_labels:
            raise DataError(f"{name} has class ids {int(y.min())}..{int(y.max())}; expected 0..{num_labels - 1}.")
        return torch.from_numpy(y.astype(np.int64))
    y = y.astype(np.float64).reshape(rows, -1)
    if y.shape[1] != num_labels:
        raise DataError(f"{name} has {y.shape[1]} columns; expected num_labels={num_labels}.")
    if not np.isfinite(y).all():
        raise DataError(f"{name} has NaN or inf values; the targets must be finite.")
    if task == "multi_label_classification" and (y.min() < 0 or y.max() > 1):
        raise DataError(f"{name} must be 0/1 (or in [0, 1]) for multi-label classification.")
    return torch.from_numpy(y)


def example_weights(sample_weight: Any, class_weights: Any, task: str, y: torch.Tensor,
                    num_labels: int) -> torch.Tensor:
    """Each train example's weight in the loss (float64 [N]): sample weight times class weight.

    :raises DataError: on weights of the wrong length, negative or non-finite, or all zero.
    :raises ConfigurationError: on class weights outside single-label classification.
    """
    rows = len(y)
    weight = torch.ones(rows, dtype=torch.float64)
    if sample_weight is not None:
        weight = torch.as_tensor(np.asarray(sample_weight, dtype=np.float64)).reshape(-1).clone()
        if len(weight) != rows or not torch.isfinite(weight).all() or (weight < 0).any():
            raise DataError(f"sample_weight must be {rows} finite, non-negative numbers.")
    if class_weights is not None:
        if task != "single_label_classification":
            raise ConfigurationError("class_weights apply to single-label classification only; use sample_weight.")
        if len(class_weights) != num_labels:
            raise ConfigurationError(f"class_weights has {len(class_weights)} values; expected {num_labels}.")
        weight = weight * torch.as_tensor(class_weights, dtype=torch.float64)[y]
    if weight.sum() <= 0:
        raise DataError("the sample weights (times class weights) of train are all zero.")
    return weight
