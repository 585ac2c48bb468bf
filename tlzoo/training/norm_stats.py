"""Batch-norm statistics that describe the user's data: measured, and recalibrated when they do not (AdaBN).

A batch-norm layer normalises with the running mean and variance it stored
while the source model was trained. When those describe the target data (a
pretrained backbone on related inputs), the features a probe sees are the ones
the backbone was built for. When they do not -- a backbone whose weights were
never trained (running statistics still 0 and 1), or inputs far from the
source's -- every layer passes on activations of the wrong scale and offset,
the probe fits badly conditioned features, and fine-tuning from that probe
with the statistics frozen trains a network that is not normalised at all.

Li et al. (2016, "Revisiting batch normalization for practical domain
adaptation", AdaBN) replace the stored statistics by the target data's. tlzoo
does so only when it measures a mismatch: :func:`statistics_mismatch` runs one
batch of training examples through the backbone in eval mode and compares,
layer by layer, the batch's per-channel mean and variance at each batch-norm
input with the stored ones; :func:`recalibrate` then recomputes every layer's
statistics as the exact average over the training examples (no gradient, the
weights untouched), before the probe, so the probe, the feature cache and
LP-FT's frozen statistics all agree with each other.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

logger = logging.getLogger(__name__)

#: Recalibrate when the median layer's statistics are off by more than this: its inputs' variance a factor
#: ``e**MISMATCH`` (about 1.65) from the stored one, or their mean half a stored standard deviation away.
#: Measured on a tiny ResNet and handwritten digits: 0.88 with untrained weights, 0.79 after recalibrating it
#: on colour swatches instead, 0.08 after recalibrating it on other digits (a batch of 32 is that noisy).
MISMATCH = 0.5


def batch_norm_layers(module: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """The batch-norm layers of *module* that keep running statistics."""
    return [m for m in module.modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats and m.running_var is not None]


def _device(module: nn.Module) -> torch.device:
    first = next(module.parameters(), None)
    return first.device if first is not None else torch.device("cpu")


@torch.no_grad()
def statistics_mismatch(extractor: Any, values: Sequence[Any]) -> float:
    """How far the stored statistics are from those of *values* (a batch of training examples).

    For each batch-norm layer, in eval mode: the mean over channels of
    ``|log(batch variance / stored variance)|`` and of
    ``|batch mean - stored mean| / stored standard deviation``, the larger of the
    two; the median over layers. 0 means the stored statistics are the batch's.
    """
    layers = batch_norm_layers(extractor)
    if not layers or not values:
        return 0.0
    per_layer: list[float] = []

    def hook(layer: nn.modules.batchnorm._BatchNorm, inputs: tuple[torch.Tensor, ...], _: Any) -> None:
        x = inputs[0].float()
        dims = [d for d in range(x.ndim) if d != 1]
        mean, var = x.mean(dims), x.var(dims, unbiased=False)
        stored_var = layer.running_var.float() + layer.eps
        scale = (var + layer.eps).div(stored_var).log().abs().mean()
        offset = (mean - layer.running_mean.float()).abs().div(stored_var.sqrt()).mean()
        per_layer.append(float(torch.maximum(scale, offset)))

    handles = [layer.register_forward_hook(hook) for layer in layers]
    was_training = extractor.training
    extractor.eval()
    try:
        batch = {k: v.to(_device(extractor)) for k, v in extractor.preprocess(list(values)).items()}
        extractor(**batch)
    finally:
        for handle in handles:
            handle.remove()
        extractor.train(was_training)
    finite = sorted(v for v in per_layer if math.isfinite(v))
    return finite[len(finite) // 2] if finite else math.inf


@torch.no_grad()
def recalibrate(extractor: Any, values: Sequence[Any], *, batch_size: int = 32) -> int:
    """Recompute every batch-norm layer's running statistics over *values*; return the number of layers.

    Each layer's statistics become the average over the batches of *values*
    (``momentum=None``: a cumulative average, not an exponential one); only the
    batch-norm layers run in training mode (dropout stays off) and no weight
    changes. Deterministic for the same examples in the same order.
    """
    layers = batch_norm_layers(extractor)
    if not layers or not values:
        return 0
    momenta = [layer.momentum for layer in layers]
    was_training = extractor.training
    extractor.eval()
    for layer in layers:
        layer.reset_running_stats()
        layer.momentum = None
        layer.train()
    try:
        device = _device(extractor)
        for start in range(0, len(values), batch_size):
            chunk = list(values[start:start + batch_size])
            if len(chunk) < 2 and start:  # a batch of one has no variance to add
                break
            extractor(**{k: v.to(device) for k, v in extractor.preprocess(chunk).items()})
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
        extractor.train(was_training)
    return len(layers)
