"""The transferability estimators against reference implementations, on fixed numbers.

LogME is checked against a plain per-column transcription of the authors'
fixed-point iteration that builds ``A = alpha I + beta F^T F`` and solves with
it (no SVD trick); k-NN against scikit-learn's ``KNeighborsClassifier`` on the
same folds; the linear probe against scikit-learn's own cross-validation.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from tlzoo.ranking import estimators as est
from tlzoo.ranking.combine import combined_scores, order_rows


# --- fixed data -------------------------------------------------------------------------
def _blobs(n_per_class: int = 12, classes: int = 3, dims: int = 6, spread: float = 1.0, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, (classes, dims))
    y = np.repeat(np.arange(classes), n_per_class)
    x = centres[y] + rng.normal(0, spread, (len(y), dims))
    order = rng.permutation(len(y))
    return x[order], y[order]


# --- the reference LogME ------------------------------------------------------------------
def reference_logme_column(f: np.ndarray, y: np.ndarray) -> float:
    """The authors' fixed-point evidence maximisation for one target column, written out plainly.

    From alpha = beta = 1: m = beta A^-1 F^T y with A = alpha I + beta F^T F,
    gamma = D - alpha tr(A^-1), alpha <- gamma / (|m|^2 + 1e-5),
    beta <- (N - gamma) / (|y - F m|^2 + 1e-5); at most 11 rounds, stopping
    when alpha/beta moves by at most 0.1 %; the evidence uses the last alpha,
    beta and the |m|^2, |y - F m|^2 of the round that produced them.
    """
    n, d = f.shape
    ftf, fty = f.T @ f, f.T @ y
    alpha, beta = 1.0, 1.0
    for _ in range(11):
        t = alpha / beta
        a = alpha * np.eye(d) + beta * ftf
        a_inv = np.linalg.inv(a)
        m = beta * a_inv @ fty
        gamma = d - alpha * np.trace(a_inv)
        m2 = float(m @ m)
        res2 = float(((y - f @ m) ** 2).sum())
        alpha = gamma / (m2 + 1e-5)
        beta = (n - gamma) / (res2 + 1e-5)
        if abs(alpha / beta - t) / t <= 1e-3:
            break
    _, log_det = np.linalg.slogdet(alpha * np.eye(d) + beta * ftf)
    evidence = (d / 2 * np.log(alpha) + n / 2 * np.log(beta) - log_det / 2 - beta / 2 * res2 - alpha / 2 * m2
                - n / 2 * np.log(2 * np.pi))
    return evidence / n


def reference_logme(f: np.ndarray, targets: np.ndarray) -> float:
    targets = targets.reshape(len(targets), -1)
    return float(np.mean([reference_logme_column(f, targets[:, j]) for j in range(targets.shape[1])]))


def _one_hot(y: np.ndarray) -> np.ndarray:
    return (y[:, None] == np.unique(y)[None, :]).astype(float)


@pytest.mark.parametrize("n_per_class,dims", [(20, 6), (3, 16), (40, 24)])
def test_logme_classification_matches_the_reference(n_per_class: int, dims: int) -> None:
    x, y = _blobs(n_per_class, classes=3, dims=dims, spread=1.5, seed=dims)
    # (3, 16): fewer examples (9) than dimensions, so F^T F is rank-deficient
    assert est.logme(x, y, "single_label_classification") == pytest.approx(reference_logme(x, _one_hot(y)), abs=1e-6)


def test_logme_regression_and_multi_label_match_the_reference() -> None:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(50, 8))
    w = rng.normal(size=(8, 2))
    targets = x @ w + rng.normal(0, 0.5, (50, 2))
    assert est.logme(x, targets, "regression") == pytest.approx(reference_logme(x, targets), abs=1e-6)
    assert est.logme(x, targets[:, 0], "regression") == pytest.approx(reference_logme(x, targets[:, 0]), abs=1e-6)
    multi_hot = (x @ rng.normal(size=(8, 4)) > 0.3).astype(int)
    assert est.logme(x, multi_hot, "multi_label_classification") == pytest.approx(
        reference_logme(x, multi_hot.astype(float)), abs=1e-6)


def test_logme_recorded_value() -> None:
    """A recorded number, so a change to the arithmetic both implementations share shows too.

    -0.866276 is also what the authors' published fixed-point code (thuml/LogME,
    ``LogME._fit_fixed_point``) gives on this full-rank input.
    """
    x = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, 0.5], [0.5, 2.0], [1.5, 1.5]])
    y = np.array([0, 1, 0, 0, 1, 1])
    value = est.logme(x, y)
    assert value == pytest.approx(reference_logme(x, _one_hot(y)), abs=1e-9)
    assert value == pytest.approx(-0.8662761, abs=1e-6)


def test_logme_of_features_that_explain_nothing() -> None:
    """All-zero features (a collapsed backbone): the evidence of noise alone, not NaN."""
    x, y = _blobs(5, classes=3, dims=4)
    zero = est.logme(np.zeros_like(x), y)
    onehot = _one_hot(y)
    n = len(y)
    expected = np.mean([0.5 * np.log(n / (c @ c + 1e-5)) - (c @ c) * n / (c @ c + 1e-5) / (2 * n)
                        - 0.5 * np.log(2 * np.pi) for c in onehot.T])
    assert zero == pytest.approx(expected, abs=1e-9)
    assert est.logme(x, y) > zero


def test_logme_prefers_features_that_explain_the_labels() -> None:
    x, y = _blobs(20, classes=3, dims=8, spread=1.0)
    noise = np.random.default_rng(1).normal(size=x.shape)
    assert est.logme(x, y) > est.logme(noise, y)
    assert est.logme(np.hstack([x, noise]), y) > est.logme(noise, y)


def test_logme_does_not_reward_more_dimensions_than_examples() -> None:
    """With fewer examples than dimensions, the zero eigenvalues of F^T F count in log det A.

    Leaving them out (as the fixed-point reference code does) scores 64-d noise
    above 8-d features that separate the classes (about +2.5 against -0.1 here).
    """
    rng = np.random.default_rng(0)
    x, y = _blobs(10, classes=3, dims=8, spread=1.5, seed=0)  # 30 examples
    wide_noise = rng.normal(size=(30, 64))
    assert est.logme(x, y) > est.logme(wide_noise, y)
    assert est.logme(wide_noise, y) == pytest.approx(reference_logme(wide_noise, _one_hot(y)), abs=1e-6)


# --- k-NN ---------------------------------------------------------------------------------
def _sklearn_knn_predictions(x, y, splits, k, regression=False):
    from sklearn.model_selection import cross_val_predict
    from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor

    model = (KNeighborsRegressor if regression else KNeighborsClassifier)(n_neighbors=k, metric="euclidean")
    return cross_val_predict(model, est.l2_normalise(x), y, cv=splits)


@pytest.mark.parametrize("n_per_class,k", [(15, 5), (15, 20), (4, 20), (2, 3)])
def test_knn_matches_sklearn_on_the_same_folds(n_per_class: int, k: int) -> None:
    from sklearn.metrics import accuracy_score

    x, y = _blobs(n_per_class, classes=3, dims=5, spread=2.5, seed=n_per_class)
    splits = est.cv_folds(y, "single_label_classification", folds=5, seed=3)
    k_used = est.knn_k(y, "single_label_classification", splits, k)
    expected = accuracy_score(y, _sklearn_knn_predictions(x, y, splits, k_used))
    assert est.knn_score(x, y, k=k, folds=5, seed=3) == pytest.approx(expected, abs=1e-12)


def test_knn_cross_val_score_on_equal_folds() -> None:
    """With folds of equal size, the pooled out-of-fold accuracy is sklearn's cross_val_score mean."""
    from sklearn.model_selection import cross_val_score
    from sklearn.neighbors import KNeighborsClassifier

    x, y = _blobs(10, classes=3, dims=4, spread=2.0, seed=5)  # 30 examples, 5 folds of 6
    splits = est.cv_folds(y, "single_label_classification", folds=5, seed=0)
    assert {len(test) for _, test in splits} == {6}
    scores = cross_val_score(KNeighborsClassifier(n_neighbors=7), est.l2_normalise(x), y, cv=splits)
    assert est.knn_score(x, y, k=7) == pytest.approx(scores.mean(), abs=1e-12)


def test_knn_regression_and_multi_label_match_sklearn() -> None:
    from sklearn.metrics import f1_score, r2_score

    rng = np.random.default_rng(4)
    x = rng.normal(size=(40, 6))
    values = x[:, 0] * 2 + rng.normal(0, 0.3, 40)
    splits = est.cv_folds(values, "regression", folds=5, seed=0)
    expected = r2_score(values, _sklearn_knn_predictions(x, values, splits, 5, regression=True))
    assert est.knn_score(x, values, "regression", k=5) == pytest.approx(expected, abs=1e-12)

    multi_hot = (x[:, :3] > 0).astype(int)
    splits = est.cv_folds(multi_hot, "multi_label_classification", folds=5, seed=0)
    expected = f1_score(multi_hot, _sklearn_knn_predictions(x, multi_hot, splits, 5), average="micro")
    assert est.knn_score(x, multi_hot, "multi_label_classification", k=5) == pytest.approx(expected, abs=1e-12)


def test_knn_ignores_feature_scale() -> None:
    x, y = _blobs(10, seed=2)
    assert est.knn_score(x * 1000.0, y) == est.knn_score(x, y)


# --- folds with few examples -----------------------------------------------------------
def test_folds_are_capped_by_the_smallest_class() -> None:
    y = np.array([0] * 10 + [1] * 3 + [2] * 10)
    splits = est.cv_folds(y, "single_label_classification", folds=5)
    assert len(splits) == 3  # the smallest class has 3 examples
    for train, test in splits:
        assert set(y[test]) == {0, 1, 2}  # every class in every held-out part
        assert len(set(train) | set(test)) == len(y)
    # k is capped by the smallest class count in a training part (2 of the 3)
    assert est.knn_k(y, "single_label_classification", splits, 20) == 2


def test_a_class_with_one_example_means_leave_one_out() -> None:
    y = np.array([0, 0, 0, 1, 1, 1, 2])
    splits = est.cv_folds(y, "single_label_classification", folds=5)
    assert len(splits) == len(y) and all(len(test) == 1 for _, test in splits)
    x = np.eye(3)[y] + np.random.default_rng(0).normal(0, 0.05, (len(y), 3))
    # everything is right except the lone example of class 2, which no training part holds
    assert est.knn_score(x, y) == pytest.approx(6 / 7)
    assert est.linear_probe_score(x, y) == pytest.approx(6 / 7)
    assert math.isfinite(est.logme(x, y))


def test_two_examples_are_enough_and_one_is_not() -> None:
    x = np.array([[0.0, 1.0], [1.0, 0.0]])
    assert est.knn_score(x, [0, 1]) == 0.0  # leave-one-out: the other example is of the other class
    with pytest.raises(ValueError, match="at least 2 examples"):
        est.logme(x[:1], [0])


def test_bad_inputs_are_named() -> None:
    with pytest.raises(ValueError, match="task must be one of"):
        est.knn_score(np.zeros((4, 2)), [0, 1, 0, 1], "ranking")
    with pytest.raises(ValueError, match="3 labels for 4"):
        est.logme(np.zeros((4, 2)), [0, 1, 0])
    with pytest.raises(ValueError, match="NaN"):
        est.linear_probe_score(np.full((4, 2), np.nan), [0, 1, 0, 1])
    with pytest.raises(ValueError, match="k must be a positive"):
        est.knn_score(np.zeros((4, 2)), [0, 1, 0, 1], k=0)


# --- linear probe ---------------------------------------------------------------------------
def _reference_probe_accuracy(x: np.ndarray, y: np.ndarray, l2: float, folds: int, seed: int) -> float:
    """scikit-learn's multinomial LogisticRegression on the probe's folds, at the same L2, fitted tightly.

    fit_probe's objective is the mean loss + l2/2 |W|^2 on features standardised over all rows:
    scikit-learn's C is then 1 / (l2 * rows of the training part).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from tlzoo.training.probe import fold_ids

    z = StandardScaler().fit_transform(x)
    groups, _ = fold_ids("single_label_classification", y, folds, seed)
    correct = 0
    for fold in range(int(groups.max()) + 1):
        train, test = groups != fold, groups == fold
        model = LogisticRegression(C=1.0 / (l2 * train.sum()), tol=1e-10, max_iter=10_000).fit(z[train], y[train])
        correct += int((model.predict(z[test]) == y[test]).sum())
    return correct / len(y)


@pytest.mark.parametrize(("spread", "l2", "seed"), [(3.0, 0.1, 0), (4.0, 0.01, 1), (5.0, 1.0, 2)])
def test_linear_probe_matches_sklearn_logistic_regression(spread: float, l2: float, seed: int) -> None:
    x, y = _blobs(10, classes=3, dims=5, spread=spread, seed=11 + seed)
    expected = _reference_probe_accuracy(x, y, l2, 5, seed)
    assert 0.4 < expected < 1.0  # overlapping classes: a score that tells probes apart
    assert est.linear_probe_score(x, y, l2=l2, seed=seed) == pytest.approx(expected, abs=1e-12)


def test_linear_probe_default_l2_and_folds_solved_as_one_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    """One fit_probe call scores all the folds (at LINEAR_PROBE_L2); no fit per fold."""
    from tlzoo.training import probe

    calls = []
    real = probe.fit_probe
    monkeypatch.setattr(probe, "fit_probe", lambda *a, **k: calls.append(k) or real(*a, **k))
    x, y = _blobs(10, classes=3, dims=5, spread=3.0, seed=11)
    assert est.linear_probe_score(x, y) == pytest.approx(_reference_probe_accuracy(x, y, est.LINEAR_PROBE_L2, 5, 0))
    assert len(calls) == 1 and calls[0]["l2_grid"] == [est.LINEAR_PROBE_L2] and calls[0]["cv_folds"] == 5


def test_linear_probe_regression_matches_sklearn_cross_validation() -> None:
    from sklearn.linear_model import Ridge
    from sklearn.metrics import r2_score
    from sklearn.model_selection import cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, _ = _blobs(10, classes=3, dims=5, spread=3.0, seed=11)
    rng = np.random.default_rng(2)
    values = x[:, 1] - x[:, 2] + rng.normal(0, 0.5, len(x))
    splits = est.cv_folds(values, "regression", folds=5, seed=0)
    ridge = make_pipeline(StandardScaler(), Ridge(alpha=1.0))
    expected = r2_score(values, cross_val_predict(ridge, x, values, cv=splits))
    assert est.linear_probe_score(x, values, "regression") == pytest.approx(expected, abs=1e-12)


def test_linear_probe_multi_label() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(40, 5))
    multi_hot = (x[:, :3] > 0).astype(int)
    assert est.linear_probe_score(x, multi_hot, "multi_label_classification") > 0.8
    assert est.linear_probe_score(rng.normal(size=(40, 5)), multi_hot, "multi_label_classification") < 0.7
    # three rows: too few for 2 folds, so each is held out in turn. Rows 0 and 2 are alike and each is
    # predicted from the other; without row 1, both labels are constant and row 1 gets their rates: [1, 0]
    tiny = np.array([[1, 0], [0, 1], [1, 0]])
    assert est.linear_probe_score(np.eye(3)[[0, 1, 0]] * 3, tiny, "multi_label_classification") == pytest.approx(
        est._cv_score("multi_label_classification", tiny, np.array([[1, 0], [1, 0], [1, 0]])))


def test_linear_probe_few_examples_per_class() -> None:
    # a lone example is wrong; a single class left after it is always predicted right
    x = np.arange(5.0)[:, None] * np.ones((1, 2))
    assert est.linear_probe_score(x, [0, 0, 0, 0, 1]) == pytest.approx(4 / 5)
    assert est.linear_probe_score(x[:2], [0, 1]) == 0.0  # two lone examples: nothing to learn from
    with pytest.raises(ValueError, match="l2 must be a positive number"):
        est.linear_probe_score(x, [0, 0, 1, 1, 1], l2=0.0)


# --- combined score ---------------------------------------------------------------------------
def test_combined_score_is_the_mean_rank_position() -> None:
    rows = [
        {"knn": 0.9, "logme": -0.5, "linear_probe": 0.95},  # best everywhere
        {"knn": 0.6, "logme": -0.9, "linear_probe": 0.70},  # middle on knn, worst on logme
        {"knn": 0.4, "logme": -0.7, "linear_probe": 0.70},  # worst on knn, tied on the probe
        {"knn": None, "logme": None, "linear_probe": None},  # failed
    ]
    scores = combined_scores(rows)
    assert scores[0] == pytest.approx(1.0)
    assert scores[1] == pytest.approx((0.5 + 0.0 + 0.25) / 3)
    assert scores[2] == pytest.approx((0.0 + 0.5 + 0.25) / 3)
    assert scores[3] is None
    assert combined_scores([{"knn": 0.3, "logme": float("nan")}]) == [1.0]  # NaN: missing
    # minus infinity is the worst value, not a missing one
    assert combined_scores([{"logme": -math.inf}, {"logme": -3.0}]) == [0.0, 1.0]


def test_order_rows_breaks_ties_by_knn_then_input_order() -> None:
    def row(source: str, knn: float | None, logme: float | None) -> dict:
        return {"source": source, "knn": knn, "logme": logme, "linear_probe": None, "error": None}

    rows = [row("b", 0.5, -1.0), row("a", 0.9, -2.0), row("failed", None, None), row("c", 0.9, -2.0)]
    ordered = order_rows(rows)
    assert [r["score"] for r in ordered] == [0.5, 0.5, 0.5, None]  # b wins on LogME, a and c on k-NN
    assert [r["source"] for r in ordered] == ["a", "c", "b", "failed"]  # k-NN decides, then the input order
    assert [r["rank"] for r in ordered] == [1, 2, 3, None]


def test_estimator_metrics_by_task() -> None:
    assert est.estimator_metric("knn", "single_label_classification") == "accuracy"
    assert est.estimator_metric("linear_probe", "regression") == "r2"
    assert est.estimator_metric("knn", "multi_label_classification") == "f1_micro"
    assert est.estimator_metric("logme", "regression") == "log_evidence"
    with pytest.raises(ValueError, match="unknown estimator"):
        est.estimator_metric("leep", "regression")
