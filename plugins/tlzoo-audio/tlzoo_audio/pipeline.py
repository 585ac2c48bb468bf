"""How audio models export to transformers' ``*ForAudioClassification``, for ``pipeline()``.

wav2vec2, HuBERT and WavLM classifiers mean-pool a ``projector`` output, then
apply ``classifier``: the head becomes the ``projector`` (``classifier_proj_size``
= the number of labels) and ``classifier`` the identity. That is exact because
the mean is linear, so it holds for tlzoo's ``mean`` pooling (its ``auto``).

Kept free of torch at import: the ``place`` function imports what it needs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tlzoo.plugins import PipelineFamily


def place_speech(model: Any, weight: Any, bias: Any) -> None:
    """The head as ``projector``, the identity as ``classifier``."""
    import torch

    from tlzoo.model.export import copy_linear

    copy_linear(model.projector, weight, bias)
    n = weight.shape[0]
    copy_linear(model.classifier, torch.eye(n, dtype=weight.dtype), torch.zeros(n, dtype=weight.dtype))


_SPEECH = PipelineFamily(("auto", "mean"), place_speech, {"classifier_proj_size": "num_labels",
                                                          "use_weighted_layer_sum": False})
FAMILIES = {"wav2vec2": _SPEECH, "hubert": _SPEECH, "wavlm": _SPEECH}


def sample_inputs(extractor: Any) -> list[Any]:
    """Three clips of quiet noise (0.25, 0.4 and 0.6 s) at the extractor's sampling rate."""
    rng = np.random.default_rng(0)
    rate = int(getattr(extractor, "sampling_rate", 16000))
    return [(rng.standard_normal(int(rate * s)) * 0.1).astype(np.float32) for s in (0.25, 0.4, 0.6)]
