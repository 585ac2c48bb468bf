"""Transferability estimators: how well a source model's frozen features fit the target labels.

Each estimator takes the features of the target's training examples
(``float [n, d]``) and their labels, and returns one number, higher is better:

- :func:`knn_score`: cross-validated k-nearest-neighbour accuracy on
  L2-normalised features (Sorkhei et al., 2025: the most reliable of 23
  transferability metrics over 42,000 experiments);
- :func:`logme`: LogME, the log marginal likelihood of a Bayesian linear model
  on the features, per example and target (You et al., ICML 2021);
- :func:`linear_probe_score`: cross-validated accuracy of the fitted linear
  probe of :func:`tlzoo.training.probe.fit_probe` (what the ``linear_probe``
  strategy trains) at a fixed L2 strength (ridge R² for regression) on
  standardised features.

:func:`tlzoo.ranking.combine.combined_scores` puts them together into the
one score ``tlzoo.rank`` orders candidates by. Labels come in the form the task has:
class ids ``int [n]`` (``single_label_classification``), multi-hot
``{0, 1} [n, c]`` (``multi_label_classification``) or values ``float [n]`` /
``[n, t]`` (``regression``).

**Very few examples per class.** The cross-validated estimators use stratified
folds (k-fold for regression and multi-label), at most ``folds`` of them and
no more than the smallest class has examples, so every class is in every
held-out part; when a class has a single example no stratified split exists:
k-NN falls back to leave-one-out, and the probe cross-validates the other
examples and counts the lone ones as wrong, which is what leave-one-out gives
them too (there is nothing of their class to learn from, which is what a
model trained on the data would face as well). k-NN's ``k`` is capped by the smallest class count in
any training part, so a vote is never swamped by the larger classes. LogME
needs no folds and works from two examples up, but with fewer examples than
feature dimensions its evidence is dominated by the prior and separates models
less. This module needs numpy, scipy and scikit-learn, and torch for the probe.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

__all__ = [
    "ESTIMATORS",
    "LINEAR_PROBE_L2",
    "TASKS",
    "cv_folds",
    "estimator_metric",
    "knn_k",
    "knn_score",
    "l2_normalise",
    "linear_probe_score",
    "load_dependencies",
    "logme",
    "target_matrix",
]

TASKS = ("single_label_classification", "multi_label_classification", "regression")
#: The estimators ``tlzoo.rank`` runs, in the order its table shows them.
ESTIMATORS = ("knn", "logme", "linear_probe")
#: What the cross-validated estimators measure, by task.
_CV_METRIC = {"single_label_classification": "accuracy", "multi_label_classification": "f1_micro",
              "regression": "r2"}

#: LogME's fixed-point iteration, as in the authors' code: at most 11 rounds, stop when
#: alpha/beta moves by less than 0.1 %, and 1e-5 added to the denominators of the updates.
LOGME_MAX_ITER = 11
LOGME_TOLERANCE = 1e-3
LOGME_EPSILON = 1e-5

#: The linear probe's L2 strength, in :func:`tlzoo.training.probe.fit_probe`'s convention (per-example
#: mean loss + ``l2 / 2 * ||W||^2`` on standardised features). Fixed, not selected: strong enough for the
#: few examples per class that ranking usually faces, and quick to fit (L-BFGS converges in a few dozen
#: steps); the probe's score is a relative one, compared between candidates on the same data.
LINEAR_PROBE_L2 = 0.1


def load_dependencies() -> None:
    """Import what the estimators use (scikit-learn, scipy, the probe) now, so the first candidate's time does not."""
    import scipy.stats  # noqa: F401
    import sklearn.linear_model
    import sklearn.metrics
    import sklearn.model_selection
    import sklearn.pipeline
    import sklearn.preprocessing  # noqa: F401

    import tlzoo.training.probe  # noqa: F401


def estimator_metric(name: str, task: str) -> str:
    """What estimator *name* measures on *task*: ``accuracy``, ``f1_micro``, ``r2`` or ``log_evidence``."""
    if name not in ESTIMATORS:
        raise ValueError(f"unknown estimator {name!r}; expected one of {', '.join(ESTIMATORS)}")
    return "log_evidence" if name == "logme" else _CV_METRIC[_check_task(task)]


def _check_task(task: str) -> str:
    if task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    return task


def _as_features(features: Any) -> np.ndarray:
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"features must be a 2-d array [examples, dimensions], got shape {x.shape}")
    if len(x) < 2:
        raise ValueError(f"the estimators need at least 2 examples, got {len(x)}")
    if not np.isfinite(x).all():
        raise ValueError("features hold NaN or infinite values")
    return x


def _as_labels(labels: Any, task: str, n: int) -> np.ndarray:
    y = np.asarray(labels)
    if len(y) != n:
        raise ValueError(f"{len(y)} labels for {n} feature rows")
    if task == "single_label_classification":
        if y.ndim != 1:
            raise ValueError(f"single-label classes must be a 1-d array of class ids, got shape {y.shape}")
        if len(y) and (y.min() < 0 or not np.all(np.equal(np.mod(y, 1), 0))):
            raise ValueError("single-label classes must be class ids 0, 1, 2, ...")
        return y.astype(np.int64)
    if task == "multi_label_classification":
        if y.ndim != 2:
            raise ValueError(f"multi-label targets must be a multi-hot [examples, classes] array, got shape {y.shape}")
        return (y > 0).astype(np.int64)
    y = y.astype(np.float64)
    return y.reshape(n, -1)


def target_matrix(labels: Any, task: str) -> np.ndarray:
    """The regression targets LogME fits: one column per target, ``float64 [n, t]``.

    One-hot class indicators for single-label classification (one column per
    class present; a class without examples would only add a trivially fitted
    all-zero column), the multi-hot matrix for multi-label, the values for
    regression.
    """
    task = _check_task(task)
    y = _as_labels(labels, task, len(labels))
    if task == "single_label_classification":
        classes = np.unique(y)
        return (y[:, None] == classes[None, :]).astype(np.float64)
    return y.astype(np.float64)


# --- folds ------------------------------------------------------------------------------
def cv_folds(labels: Any, task: str, *, folds: int = 5, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """The cross-validation splits every cross-validated estimator uses: ``[(train_idx, test_idx), ...]``.

    Classification: stratified, shuffled folds, ``min(folds, smallest class
    count)`` of them; leave-one-out when that is below 2 (a class with one
    example). Regression and multi-label: shuffled k-fold, ``min(folds, n)``.
    """
    from sklearn.model_selection import KFold, LeaveOneOut, StratifiedKFold

    task = _check_task(task)
    if not isinstance(folds, int) or folds < 2:
        raise ValueError(f"folds must be an integer >= 2, got {folds!r}")
    y = np.asarray(labels)
    n = len(y)
    if n < 2:
        raise ValueError(f"cross-validation needs at least 2 examples, got {n}")
    index = np.zeros(n)
    if task == "single_label_classification":
        smallest = int(np.bincount(np.unique(y, return_inverse=True)[1]).min())
        n_splits = min(folds, smallest)
        if n_splits < 2:
            return [(train, test) for train, test in LeaveOneOut().split(index)]
        return list(StratifiedKFold(n_splits, shuffle=True, random_state=seed).split(index, y))
    return list(KFold(min(folds, n), shuffle=True, random_state=seed).split(index))


def _cv_score(task: str, y: np.ndarray, predicted: np.ndarray) -> float:
    from sklearn.metrics import accuracy_score, f1_score, r2_score

    if task == "single_label_classification":
        return float(accuracy_score(y, predicted))
    if task == "multi_label_classification":
        return float(f1_score(y, predicted, average="micro", zero_division=0))
    return float(r2_score(y, predicted))


# --- k-NN -------------------------------------------------------------------------------
def l2_normalise(features: Any) -> np.ndarray:
    """Rows scaled to unit length (all-zero rows stay zero)."""
    x = np.asarray(features, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def knn_k(labels: Any, task: str, splits: Sequence[tuple[np.ndarray, np.ndarray]], k: int) -> int:
    """The ``k`` :func:`knn_score` uses: *k*, capped by the smallest class count of any training part."""
    cap = min(len(train) for train, _ in splits)
    if task == "single_label_classification":
        y = np.asarray(labels)
        cap = min(cap, min(int(np.unique(y[train], return_counts=True)[1].min()) for train, _ in splits))
    return max(1, min(k, cap))


def knn_score(
    features: Any, labels: Any, task: str = "single_label_classification", *, k: int = 20, folds: int = 5,
    seed: int = 0, chunk_size: int = 1024,
) -> float:
    """Cross-validated k-nearest-neighbour score of the features (Sorkhei et al., 2025).

    Sorkhei, Matsoukas, Fredin Haslum, Konuk and Smith, *k-NN as a Simple and
    Effective Estimator of Transferability* (arXiv:2503.18528, 2025),
    found the k-NN evaluation that self-supervised learning uses to judge
    features (Wu et al., 2018; Caron et al., DINO, 2021) a better predictor
    of transfer performance than any of 23 published transferability metrics.

    Features are **L2-normalised** and neighbours are the most cosine-similar
    training examples, as in that evaluation protocol. Normalising, rather
    than standardising each dimension, keeps the geometry the backbone learned
    (standardising re-weights dimensions, and blows up the near-constant ones
    a randomly initialised or collapsed backbone has, into noise that then
    counts as much as any learned direction), ignores the overall scale that
    differs between models, and needs no statistics estimated from a few
    examples. Each held-out example gets the majority class of its ``k``
    nearest training examples (ties: the smaller class id, like
    scikit-learn); multi-label predicts each label held by more than half the
    neighbours; regression averages the neighbours' values.

    :param k: neighbours, capped by the smallest class count of any training
        part (see the module notes on few examples).
    :param folds: at most this many folds (see :func:`cv_folds`).
    :returns: out-of-fold accuracy (classification), micro-F1 (multi-label) or
        R² (regression), over all examples.
    """
    task = _check_task(task)
    x = l2_normalise(_as_features(features))
    y = _as_labels(labels, task, len(x))
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    splits = cv_folds(y if y.ndim == 1 else np.zeros(len(y)), task, folds=folds, seed=seed)
    k = knn_k(y, task, splits, k)
    n_classes = int(y.max()) + 1 if task == "single_label_classification" else 0
    predicted = np.zeros(y.shape, dtype=np.float64 if task == "regression" else np.int64)
    for train, test in splits:
        for start in range(0, len(test), chunk_size):
            rows = test[start : start + chunk_size]
            similarity = x[rows] @ x[train].T  # unit vectors: the nearest are the most similar
            nearest = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
            votes = y[train][nearest]  # [rows, k] or [rows, k, labels]
            if task == "single_label_classification":
                counts = np.stack([(votes == c).sum(axis=1) for c in range(n_classes)], axis=1)
                predicted[rows] = counts.argmax(axis=1)  # the first maximum: the smaller class id
            elif task == "multi_label_classification":
                predicted[rows] = (votes.mean(axis=1) > 0.5).astype(np.int64)
            else:
                predicted[rows] = votes.mean(axis=1)
    return _cv_score(task, y, predicted)


# --- LogME ------------------------------------------------------------------------------
def _spectrum(f: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """``(sigma, u_T, k)``: the non-zero eigenvalues of ``F^T F``, a map to ``U^T`` and the rank ``k``.

    Like the authors' ``truncated_svd``: with more examples than dimensions,
    the ``d x d`` eigenproblem of ``F^T F`` instead of the SVD of ``F``.
    ``u_T(y)`` computes ``U^T y`` for the left singular vectors of the non-zero
    singular values.
    """
    n, d = f.shape
    if n > d:
        sigma, v = np.linalg.eigh(f.T @ f)
        sigma = np.clip(sigma, 0.0, None)
        keep = sigma > sigma.max() * max(n, d) * np.finfo(np.float64).eps if sigma.max() > 0 else sigma > 0
        sigma, v = sigma[keep], v[:, keep]
        s = np.sqrt(sigma)
        return sigma, (lambda y: (v.T @ (f.T @ y)) / s[:, None]), int(keep.sum())
    u, s, _ = np.linalg.svd(f, full_matrices=False)
    keep = s > s.max() * max(n, d) * np.finfo(np.float64).eps if s.max() > 0 else s > 0
    u, s = u[:, keep], s[keep]
    return s**2, (lambda y: u.T @ y), int(keep.sum())


def logme(features: Any, labels: Any, task: str = "single_label_classification") -> float:
    """LogME: the maximum log evidence of a Bayesian linear model of the targets on the features.

    You, Liu, Wang and Long, *LogME: Practical Assessment of Pre-trained Models
    for Transfer Learning*, ICML 2021 (and the fixed-point form of their
    arXiv:2110.10545; code at github.com/thuml/LogME). Each target column
    ``y`` (one-hot classes, multi-hot labels, or regression values; see
    :func:`target_matrix`) is modelled as ``y = F w + noise`` with prior
    ``w ~ N(0, 1/alpha)`` and noise ``N(0, 1/beta)``; alpha and beta are set
    by the authors' fixed-point evidence maximisation (from ``alpha = beta =
    1``, at most 11 rounds, until alpha/beta moves by less than 0.1 %, 1e-5
    added to the update denominators), computed for every column at once
    from one SVD of ``F`` (the eigenvalues ``sigma`` of ``F^T F`` and
    ``x = U^T y``). The score is the log evidence divided by the number of
    examples, averaged over the target columns, as in the reference code.

    The raw features are used, as in the paper. One deliberate difference
    from the fixed-point reference code: ``log det(alpha I + beta F^T F)``
    counts the ``d - k`` zero eigenvalues of a rank-``k`` ``F^T F`` (they add
    ``(d - k) log alpha``), as the ICML version of the authors' code does with
    its full ``d x d`` decomposition. The fixed-point code leaves them out,
    which changes the score whenever there are fewer examples than feature
    dimensions, the usual case with few labels.

    :returns: the mean per-example log evidence (higher is better; not
        bounded, and comparable only between models scored on the same data).
    """
    task = _check_task(task)
    f = _as_features(features)
    y = target_matrix(_as_labels(labels, task, len(f)), task)
    n, d = f.shape
    sigma, u_transpose, rank = _spectrum(f)
    if rank == 0:
        return _noise_only_evidence(y)
    sigma = sigma[:, None]  # [k, 1], against the [k, t] target projections
    x2 = u_transpose(y) ** 2
    res_x2 = np.clip((y**2).sum(axis=0) - x2.sum(axis=0), 0.0, None)  # the part of y outside F's column space
    columns = y.shape[1]
    alpha, beta = np.ones(columns), np.ones(columns)
    m2, res2 = np.zeros(columns), np.zeros(columns)
    active = np.ones(columns, dtype=bool)
    for _ in range(LOGME_MAX_ITER):
        t = alpha / beta
        gamma = (sigma / (sigma + t)).sum(axis=0)
        new_m2 = (sigma * x2 / (t + sigma) ** 2).sum(axis=0)  # |m|^2 of the posterior mean m
        new_res2 = (x2 / (1 + sigma / t) ** 2).sum(axis=0) + res_x2  # |y - F m|^2
        new_alpha = gamma / (new_m2 + LOGME_EPSILON)
        new_beta = (n - gamma) / (new_res2 + LOGME_EPSILON)
        m2[active], res2[active] = new_m2[active], new_res2[active]
        alpha[active], beta[active] = new_alpha[active], new_beta[active]
        converged = np.abs(new_alpha / new_beta - t) / t <= LOGME_TOLERANCE
        active &= ~converged
        if not active.any():
            break
    log_det = np.log(alpha + beta * sigma).sum(axis=0) + (d - rank) * np.log(alpha)
    evidence = (d / 2 * np.log(alpha) + n / 2 * np.log(beta) - log_det / 2 - beta / 2 * res2 - alpha / 2 * m2
                - n / 2 * math.log(2 * math.pi))
    return float(np.mean(evidence / n))


def _noise_only_evidence(y: np.ndarray) -> float:
    """LogME of all-zero features: the targets explained by noise alone.

    With ``F = 0`` the prior's ``d/2 log alpha`` and the ``d log alpha`` of
    ``log det(alpha I)`` cancel, whatever alpha, and the evidence is that of
    ``y ~ N(0, 1/beta)``, largest at ``beta = n / |y|^2`` (the fixed-point
    update, with its 1e-5). A collapsed backbone thus scores what no features
    at all would (what any features score with an infinitely strong prior),
    instead of NaN.
    """
    n = len(y)
    res2 = (y**2).sum(axis=0)
    beta = n / (res2 + LOGME_EPSILON)
    evidence = n / 2 * np.log(beta) - beta / 2 * res2 - n / 2 * math.log(2 * math.pi)
    return float(np.mean(evidence / n))


# --- linear probe -----------------------------------------------------------------------
def linear_probe_score(
    features: Any, labels: Any, task: str = "single_label_classification", *, folds: int = 5, seed: int = 0,
    l2: float = LINEAR_PROBE_L2, ridge_alpha: float = 1.0, max_iter: int = 1000,
) -> float:
    """Cross-validated score of a linear probe on the standardised features.

    The cheap form of what the ``linear_probe`` strategy trains, fitted by the
    same code (:func:`tlzoo.training.probe.fit_probe`: softmax regression for
    single-label classes, one sigmoid per label for multi-label, by full-batch
    L-BFGS on standardised features), at one fixed L2 strength *l2* (in
    ``fit_probe``'s convention: the per-example mean loss plus
    ``l2 / 2 * ||W||^2``) instead of a selected one: a selection would cost a
    path of fits and make the held-out score optimistic. The folds (stratified
    for single-label, ``min(folds, smallest class)`` of them; shuffled k-fold
    for multi-label) are solved together as blocks of one problem, so five
    folds cost about what one fit does. Standardising suits a regularised
    linear model: its L2 penalty then treats every dimension alike, whatever
    the backbone's scale (the column means and spreads are those of all the
    rows, labels unused). Regression fits scikit-learn's
    ``Ridge(alpha=ridge_alpha)`` in closed form behind a ``StandardScaler``
    fitted on each training part, over the :func:`cv_folds` splits. (Linear
    evaluation of frozen features: Kornblith, Shlens and Le, *Do Better
    ImageNet Models Transfer Better?*, CVPR 2019.)

    A class with a single example cannot be in a training part when it is
    held out: such examples count as wrong (as leave-one-out would score
    them) and the others are cross-validated without them. With fewer than 4
    examples (multi-label), each is held out in turn.

    :param l2: the probe's L2 strength (:data:`LINEAR_PROBE_L2`).
    :param ridge_alpha: the regression probe's ``Ridge`` alpha.
    :returns: out-of-fold accuracy (classification), micro-F1 (multi-label) or R² (regression).
    """
    task = _check_task(task)
    x = _as_features(features)
    y = _as_labels(labels, task, len(x))
    if not (isinstance(l2, int | float) and l2 > 0 and math.isfinite(l2)):
        raise ValueError(f"l2 must be a positive number, got {l2!r}")
    if task == "regression":
        return _ridge_score(x, y, folds=folds, seed=seed, alpha=ridge_alpha)
    if task == "multi_label_classification":
        return _probe_score(x, y, task, folds=folds, seed=seed, l2=l2, max_iter=max_iter)
    lone = np.bincount(y)[y] == 1  # alone in its class: never in the training part when held out
    rest = ~lone
    if not rest.any():
        return 0.0
    if len(np.unique(y[rest])) == 1:  # one class left: the probe predicts it, and is right on all of them
        return float(rest.sum()) / len(y)
    accuracy = _probe_score(x[rest], y[rest], task, folds=folds, seed=seed, l2=l2, max_iter=max_iter)
    return accuracy * float(rest.sum()) / len(y)


def _probe_score(x: np.ndarray, y: np.ndarray, task: str, *, folds: int, seed: int, l2: float,
                 max_iter: int) -> float:
    """Out-of-fold accuracy (or micro-F1) of ``fit_probe`` at *l2*, its folds solved as one problem."""
    from tlzoo.training.probe import fit_probe, fold_ids

    num_labels = int(y.max()) + 1 if task == "single_label_classification" else y.shape[1]
    x32 = x.astype(np.float32)
    if not isinstance(folds, int) or folds < 2:
        raise ValueError(f"folds must be an integer >= 2, got {folds!r}")
    if fold_ids(task, y, folds, seed)[0] is not None:  # the folds fit_probe cross-validates on
        fit = fit_probe(x32, y, task=task, num_labels=num_labels, l2_grid=[l2], cv_folds=folds, seed=seed,
                        max_iter=max_iter)
        assert fit.chosen is not None  # cross-validation scored the one L2
        return float(fit.chosen["micro_f1" if task == "multi_label_classification" else "accuracy"])
    import torch

    # too few rows for 2 folds (multi-label, under 4): hold out each in turn
    predicted = np.zeros_like(y)
    for train, test in cv_folds(np.zeros(len(y)), "regression", folds=folds, seed=seed):
        fit = fit_probe(x32[train], y[train], task=task, num_labels=num_labels, l2=l2, max_iter=max_iter)
        with torch.no_grad():
            logits = fit.linear(torch.from_numpy(np.ascontiguousarray(x32[test]))).numpy()
        predicted[test] = (logits > 0).astype(np.int64)
    return _cv_score(task, y, predicted)


def _ridge_score(x: np.ndarray, y: np.ndarray, *, folds: int, seed: int, alpha: float) -> float:
    """Out-of-fold R² of ``Ridge(alpha)`` behind a ``StandardScaler`` fitted on each training part."""
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    predicted = np.zeros(y.shape)
    for train, test in cv_folds(np.zeros(len(y)), "regression", folds=folds, seed=seed):
        model = make_pipeline(StandardScaler(), Ridge(alpha=alpha))
        model.fit(x[train], y[train] if y.shape[1] > 1 else y[train, 0])
        predicted[test] = model.predict(x[test]).reshape(predicted[test].shape)
    return _cv_score("regression", y, predicted)

