"""How text models export to transformers' ``*ForSequenceClassification``, for ``pipeline()``.

========================  ==========================================================
family (tlzoo pooling)    how the head is placed
========================  ==========================================================
BERT (pooler)             ``classifier`` on the pooler output
DistilBERT (cls)          ``pre_classifier`` rows ``[W; -W]``, ``classifier``
                          ``[I, -I]``: ``relu(z) - relu(-z) = z``
========================  ==========================================================

tlzoo's default text pooling is ``mean``, which no transformers classifier
computes: such models load with ``tlzoo.load()`` and refuse ``pipeline()``.
Kept free of torch at import: the ``place`` functions import what they need.
"""

from __future__ import annotations

from typing import Any

from tlzoo.plugins import PipelineFamily


def place_plain(model: Any, weight: Any, bias: Any) -> None:
    """The head is the model's ``classifier``."""
    from tlzoo.model.export import copy_linear

    copy_linear(model.classifier, weight, bias)


def place_distilbert(model: Any, weight: Any, bias: Any) -> None:
    """``pre_classifier`` = ``[W; -W]`` then ReLU, ``classifier`` = ``[I, -I]``: relu(z) - relu(-z) = z."""
    import torch

    from tlzoo.model.export import copy_linear

    n, dim = weight.shape
    pre_w = torch.zeros(dim, dim, dtype=weight.dtype)
    pre_b = torch.zeros(dim, dtype=weight.dtype)
    pre_w[:n], pre_w[n : 2 * n] = weight, -weight
    pre_b[:n], pre_b[n : 2 * n] = bias, -bias
    out_w = torch.zeros(n, dim, dtype=weight.dtype)
    out_w[:, :n], out_w[:, n : 2 * n] = torch.eye(n), -torch.eye(n)
    copy_linear(model.pre_classifier, pre_w, pre_b)
    copy_linear(model.classifier, out_w, torch.zeros(n, dtype=weight.dtype))


FAMILIES = {
    "bert": PipelineFamily(("pooler",), place_plain),
    "distilbert": PipelineFamily(("cls",), place_distilbert, max_labels=lambda config: config.dim // 2),
}


def sample_inputs(extractor: Any) -> list[Any]:
    """Three made-up texts of different lengths."""
    return ["a short sentence", "another made up example with a few more words in it", "x"]
