"""Feature matrices where the answer is known, for the probe's tests and benchmark.

Each classification problem is ``(train_x, train_y, test_x, test_y)`` of float32
features and int64 class ids, deterministic for its seed. They are chosen to be
what frozen features look like to a probe: well separated or not, few-shot,
wider than they are long, imbalanced, and badly conditioned (the scales,
offsets and outliers of a random-init transformer's activations).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Problem = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def gaussians(seed: int, n: int, dim: int, classes: int, separation: float, weights: list[float] | None = None,
              n_test: int = 2000) -> Problem:
    """Isotropic gaussian classes whose means are about *separation* apart."""
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(classes, dim)) * separation / np.sqrt(2 * dim)
    p = None if weights is None else np.asarray(weights) / np.sum(weights)

    def draw(count: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.choice(classes, size=count, p=p)
        return (means[y] + rng.normal(size=(count, dim))).astype(np.float32), y

    return (*draw(n), *draw(n_test))


def few_shot(seed: int, shots: int, dim: int, classes: int, separation: float) -> Problem:
    """Exactly *shots* training examples of every class (and 2000 test examples)."""
    x, y, xt, yt = gaussians(seed, shots * classes * 20, dim, classes, separation)
    keep = np.concatenate([np.flatnonzero(y == c)[:shots] for c in range(classes)])
    return x[keep], y[keep], xt, yt


def badly_conditioned(seed: int, n: int, dim: int = 256, classes: int = 10, latent: int = 32,
                      n_test: int = 2000) -> Problem:
    """Like a random-init transformer's features: a low-rank class signal mixed into strongly
    correlated features, scales from 1e-3 to 1e3, large offsets, three huge 'massive activations'."""
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(classes, latent)) * 1.2
    mixing = rng.normal(size=(latent, dim)) + 3.0 * rng.normal(size=(1, dim))  # one shared direction
    scales = 10.0 ** rng.uniform(-3, 3, size=dim)
    offsets = rng.normal(size=dim) * scales * 20
    massive = rng.choice(dim, 3, replace=False)

    def draw(count: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, classes, count)
        x = (means[y] + rng.normal(size=(count, latent))) @ mixing / np.sqrt(latent)
        x += 0.5 * rng.normal(size=(count, dim))
        x[:, massive] *= 300.0
        return (x * scales + offsets).astype(np.float32), y

    return (*draw(n), *draw(n_test))


def digits(seed: int, projection: bool, width: int = 128) -> Problem:
    """scikit-learn's handwritten digits (1000 train, 797 test): raw pixels, or a random
    tanh projection to *width* features of scales 1e-2..1e2 around an offset of 5."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(y))
    x, y = x[order], y[order]
    if projection:
        x = np.tanh(x @ rng.normal(size=(64, width)) / 16) * 10.0 ** rng.uniform(-2, 2, size=width) + 5.0
    x = x.astype(np.float32)
    return x[:1000], y[:1000], x[1000:], y[1000:]


def regression_data(seed: int, n: int = 400, dim: int = 30, outputs: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """(x float64 [n, dim], y [n, outputs]): linear targets of very different sizes plus noise."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, dim)) * 10.0 ** rng.uniform(-2, 2, dim) + rng.normal(size=dim) * 5
    y = (x / x.std(0)) @ rng.normal(size=(dim, outputs)) * [1.0, 10.0, 0.1][:outputs] + rng.normal(size=(n, outputs)) * 2
    return x, y


def multi_label_data(seed: int, n: int, labels: int = 6, dim: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """(x float32 [n, dim], y 0/1 float64 [n, labels]): a logistic model per label."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, dim)) * 10.0 ** rng.uniform(-1, 1, dim)
    scores = (x / x.std(0)) @ rng.normal(size=(dim, labels)) * 0.4 + rng.normal(size=labels)
    return x.astype(np.float32), (scores + rng.logistic(size=(n, labels)) > 0).astype(np.float64)


#: The single-label problems of the tests and the benchmark, by name.
PROBLEMS: dict[str, Callable[[], Problem]] = {
    "separated": lambda: gaussians(0, 600, 64, 10, 3.0),
    "badly_conditioned": lambda: badly_conditioned(0, 600),
    "few_shot_20x5": lambda: few_shot(0, 5, 128, 20, 4.0),
    "high_dim_512x200": lambda: gaussians(0, 200, 512, 5, 4.0),
    "imbalanced": lambda: gaussians(0, 800, 64, 5, 2.5, weights=[0.6, 0.2, 0.1, 0.05, 0.05]),
    "digits": lambda: digits(0, False),
    "digits_projected": lambda: digits(0, True),
}
