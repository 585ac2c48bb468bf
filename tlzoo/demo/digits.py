"""Real images that need no download: scikit-learn's handwritten digit scans as a ``datasets.Dataset``.

Used by the tests and benchmarks as a target task where a probe on weak
features falls short and fine-tuning pays.
"""

from __future__ import annotations

from typing import Any


def digit_images(per_class: int = 24, *, classes: int = 5, size: int = 32, seed: int = 0) -> Any:
    """*per_class* scans of each digit ``0 .. classes-1`` (of the 1,797 in ``sklearn.datasets.load_digits``).

    The 8x8 scans are upscaled to ``size`` x ``size`` RGB images; labels are the
    digits as strings. The sample is drawn with *seed*.
    """
    import datasets
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for digit in range(classes):
        for row in rng.permutation(np.flatnonzero(digits.target == digit))[:per_class]:
            pixels = (digits.images[row] * (255 / 16)).astype(np.uint8)
            images.append(Image.fromarray(pixels).resize((size, size), Image.BILINEAR).convert("RGB"))
            labels.append(str(digit))
    return datasets.Dataset.from_dict({"image": images, "label": labels}).cast_column("image", datasets.Image())
