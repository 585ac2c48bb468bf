"""fit_probe against scikit-learn on synthetic and small real problems where the answer is known.

The references are scikit-learn's solvers on the same standardised features in
float64 (fed float32, ``LogisticRegression`` works in float32 and stops short of
the optimum, which is no reference). Timings are not asserted here: the
benchmark ``bench/probe.py`` measures the probe against scikit-learn side by side.
"""

from __future__ import annotations

import functools
import math
import warnings

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV, Ridge, RidgeCV
from sklearn.metrics import log_loss
from sklearn.model_selection import PredefinedSplit, StratifiedKFold, train_test_split
from sklearn.preprocessing import StandardScaler

from tlzoo.errors import ConfigurationError, DataError
from tlzoo.testing.probe_problems import (
    PROBLEMS,
    few_shot,
    gaussians,
    multi_label_data,
    regression_data,
)
from tlzoo.training import probe
from tlzoo.training.probe import LOGISTIC_L2_GRID, ProbeFit, fit_probe, fold_ids

SINGLE = "single_label_classification"
#: scikit-learn's C grid for the validation references: wider than the probe's at both ends
#: (its C = 1 / (l2 * n) spans about 1e-4..1e2 here), half a decade apart, between the probe's points.
SKLEARN_CS = np.logspace(-4, 3, 15)
WITH_VALIDATION = [name for name in PROBLEMS if name != "few_shot_20x5"]  # 25 validation rows < 2 per class


def validation_split(x: np.ndarray, y: np.ndarray, seed: int = 0) -> tuple[np.ndarray, ...]:
    """(train_x, train_y, val_x, val_y): a stratified 25% validation split."""
    xtr, xva, ytr, yva = train_test_split(x, y, test_size=0.25, random_state=seed, stratify=y)
    return xtr, ytr, xva, yva


def probe_metrics(fit: ProbeFit, x: np.ndarray, y: np.ndarray, classes: int) -> tuple[float, float]:
    """Test (accuracy, log-loss) of the probe on RAW features."""
    with torch.no_grad():
        p = torch.softmax(fit.linear(torch.from_numpy(x)).double(), 1).numpy()
    return float((p.argmax(1) == y).mean()), float(log_loss(y, p, labels=range(classes)))


class Float64Scaler(StandardScaler):
    """StandardScaler that always works in float64, so scikit-learn's solvers do too."""

    def fit(self, x, y=None, sample_weight=None):
        return super().fit(np.asarray(x, dtype=np.float64), y, sample_weight)

    def transform(self, x, copy=None):
        return super().transform(np.asarray(x, dtype=np.float64), copy=copy)


def sklearn_metrics(model: LogisticRegression, scaler: StandardScaler, x: np.ndarray, y: np.ndarray,
                    classes: int) -> tuple[float, float]:
    p = model.predict_proba(scaler.transform(x))
    return float((p.argmax(1) == y).mean()), float(log_loss(y, p, labels=range(classes)))


def within_one_standard_error(accuracies: list[float], losses: list[float], held_out: int) -> int:
    """The probe's rule, written out: of the C whose held-out accuracy is within one standard
    error of the best, the lowest log-loss (ties: the first, the strongest L2)."""
    best = max(accuracies)
    margin = math.sqrt(best * (1 - best) / held_out)
    return min((i for i, a in enumerate(accuracies) if a >= best - margin - 1e-12), key=lambda i: losses[i])


@functools.cache
def problem(name: str) -> tuple[np.ndarray, ...]:
    """PROBLEMS[name], made once (read-only: no test may modify it)."""
    return PROBLEMS[name]()


@functools.cache
def probe_on_validation(name: str) -> tuple[ProbeFit, tuple[np.ndarray, ...]]:
    """The probe selected on a stratified 25% validation split, and the split."""
    x, y, _, _ = problem(name)
    xtr, ytr, xva, yva = validation_split(x, y)
    return fit_probe(xtr, ytr, task=SINGLE, num_labels=int(y.max()) + 1, val_x=xva, val_y=yva), (xtr, ytr, xva, yva)


@functools.cache
def probe_by_cross_validation(name: str) -> ProbeFit:
    x, y, _, _ = problem(name)
    return fit_probe(x, y, task=SINGLE, num_labels=int(y.max()) + 1)


@functools.cache
def sklearn_on_validation(name: str, cs: tuple[float, ...]) -> list[dict[str, float]]:
    """LogisticRegression on the standardised features of the validation split at every C of *cs*,
    strongest first (warm-started, converged to tol 1e-6): C, validation and test accuracy and log-loss."""
    x, y, xt, yt = problem(name)
    xtr, ytr, xva, yva = validation_split(x, y)
    scaler, classes = Float64Scaler().fit(xtr), int(y.max()) + 1
    model = LogisticRegression(max_iter=10000, tol=1e-6, warm_start=True)
    rows = []
    for c in sorted(cs):
        model.set_params(C=c).fit(scaler.transform(xtr), ytr)
        p = model.predict_proba(scaler.transform(xva))
        val_accuracy, val_loss = float((p.argmax(1) == yva).mean()), log_loss(yva, p, labels=range(classes))
        rows.append({"C": c, "val_accuracy": val_accuracy, "val_loss": val_loss,
                     **dict(zip(("accuracy", "loss"), sklearn_metrics(model, scaler, xt, yt, classes)))})
    return rows


def sklearn_best_on_validation(name: str, cs: tuple[float, ...]) -> dict[str, float]:
    """The row of :func:`sklearn_on_validation` that the probe's default rule selects: the lowest
    validation log-loss (ties: the strongest L2)."""
    rows = sklearn_on_validation(name, cs)
    return min(rows, key=lambda r: r["val_loss"])


@functools.cache
def sklearn_cv(name: str) -> tuple[LogisticRegressionCV, StandardScaler]:
    """LogisticRegressionCV as a user would run it: its own 10 C values over 1e-4..1e4 (by accuracy),
    stratified 5-fold."""
    x, y, _, _ = problem(name)
    scaler = Float64Scaler().fit(x)
    model = LogisticRegressionCV(cv=StratifiedKFold(5, shuffle=True, random_state=0), max_iter=10000)
    return model.fit(scaler.transform(x), y), scaler


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=UserWarning)
        warnings.simplefilter("ignore", category=FutureWarning)
        yield


# ----------------------------------------------------------------------------------------------
# Accuracy and log-loss against scikit-learn.


@pytest.mark.parametrize("name", ["separated", "high_dim_512x200", "imbalanced", "digits_projected"])
def test_validation_selection_matches_sklearn_on_the_same_grid(name):
    """Same split, same grid (C = 1 / (l2 * n)), same rule: the same L2, and the same test accuracy
    and log-loss up to the solvers' tolerance (also a check that the path stops no earlier than it may)."""
    fit, (_, ytr, _, _) = probe_on_validation(name)
    _, _, xt, yt = problem(name)
    assert fit.selection == "validation" and fit.converged
    reference = sklearn_best_on_validation(name, tuple(1 / (l2 * len(ytr)) for l2 in LOGISTIC_L2_GRID))
    assert fit.l2 == pytest.approx(1 / (reference["C"] * len(ytr)))
    accuracy, loss = probe_metrics(fit, xt, yt, int(yt.max()) + 1)
    assert accuracy >= reference["accuracy"] - 0.005
    assert loss <= reference["loss"] + 0.005


@pytest.mark.parametrize("name", ["separated", "badly_conditioned", "digits"])
def test_validation_selection_vs_sklearn_on_a_wider_grid(name):
    """scikit-learn may pick C from a wider grid whose points fall between the probe's: little lost."""
    fit, _ = probe_on_validation(name)
    _, _, xt, yt = problem(name)
    reference = sklearn_best_on_validation(name, tuple(SKLEARN_CS))
    accuracy, loss = probe_metrics(fit, xt, yt, int(yt.max()) + 1)
    assert accuracy >= reference["accuracy"] - 0.01
    assert loss <= reference["loss"] + 0.03


@pytest.mark.parametrize("name", list(PROBLEMS))
def test_cross_validation_vs_logistic_regression_cv(name):
    """Without a validation split: the probe's stratified 5-fold CV against LogisticRegressionCV's own."""
    _, _, xt, yt = problem(name)
    fit = probe_by_cross_validation(name)
    assert fit.selection == "cross-validation" and fit.converged
    model, scaler = sklearn_cv(name)
    accuracy, loss = probe_metrics(fit, xt, yt, int(yt.max()) + 1)
    ref_accuracy, ref_loss = sklearn_metrics(model, scaler, xt, yt, int(yt.max()) + 1)
    assert accuracy >= ref_accuracy - 0.01
    assert loss <= ref_loss + 0.03


@pytest.mark.parametrize("name", list(PROBLEMS))
def test_grid_covers_what_logistic_regression_cv_picks(name):
    model, _ = sklearn_cv(name)
    picked = 1 / (model.C_[0] * len(problem(name)[1]) * 0.8)  # on the folds: 4/5 of the rows
    assert min(LOGISTIC_L2_GRID) <= picked <= max(LOGISTIC_L2_GRID)


@pytest.mark.parametrize("name", ["badly_conditioned", "high_dim_512x200", "digits_projected"])
def test_same_optimum_as_sklearn_at_a_fixed_l2(name):
    """At one L2 both solve the same convex problem: the predicted probabilities agree."""
    x, y, xt, yt = problem(name)
    classes = int(y.max()) + 1
    for l2 in (1e-1, 1e-3):
        fit = fit_probe(x, y, task=SINGLE, num_labels=classes, l2=l2)
        assert fit.selection == "fixed" and fit.converged and fit.scores == [] and fit.chosen is None
        scaler = Float64Scaler().fit(x)
        model = LogisticRegression(C=1 / (l2 * len(y)), max_iter=20000, tol=1e-8).fit(scaler.transform(x), y)
        with torch.no_grad():
            p = torch.softmax(fit.linear(torch.from_numpy(xt)).double(), 1).numpy()
        assert np.abs(p - model.predict_proba(scaler.transform(xt))).mean() < 2e-3
        assert probe_metrics(fit, xt, yt, classes)[1] == pytest.approx(sklearn_metrics(model, scaler, xt, yt, classes)[1],
                                                                       abs=2e-3)


def test_far_better_than_a_few_epochs_of_adamw():
    """The old probe (AdamW, lr 3e-3, 30 epochs, batch 64) under-fits badly conditioned features."""
    x, y, xt, yt = problem("badly_conditioned")
    torch.manual_seed(0)
    head = torch.nn.Linear(x.shape[1], 10)
    optimizer = torch.optim.AdamW(head.parameters(), lr=3e-3)
    data = torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
    for _ in range(30):
        for xb, yb in torch.utils.data.DataLoader(data, batch_size=64, shuffle=True):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(head(xb), yb).backward()
            optimizer.step()
    with torch.no_grad():
        p = torch.softmax(head(torch.from_numpy(xt)).double(), 1).numpy()
    old_accuracy, old_loss = float((p.argmax(1) == yt).mean()), log_loss(yt, p, labels=range(10))
    accuracy, loss = probe_metrics(probe_by_cross_validation("badly_conditioned"), xt, yt, 10)
    assert accuracy > 0.99 and 1 - accuracy < (1 - old_accuracy) / 10  # a tenth of the errors, or fewer
    assert loss < old_loss / 10


# ----------------------------------------------------------------------------------------------
# Folding, regression, multi-label.


@pytest.mark.parametrize("name", ["digits", "badly_conditioned", "digits_projected"])
def test_folded_linear_equals_the_standardised_model(name):
    """The float32 head on raw features computes the float64 probe on standardised ones, up to
    float32 rounding of its terms: tight where the features' offsets are of the order of their
    spread, a few ulps of ``|W| @ |x|`` where they are a thousand times larger (digits_projected)."""
    x, _, xt, _ = problem(name)
    fit = probe_by_cross_validation(name)
    raw = torch.from_numpy(xt.astype(np.float64))
    with torch.no_grad():
        expected = fit.standardized((raw - torch.from_numpy(fit.mean)) / torch.from_numpy(fit.scale))
        folded = fit.linear(raw.float()).double()
        terms = raw.abs() @ fit.linear.weight.double().abs().T + fit.linear.bias.double().abs()
    assert fit.linear.weight.dtype == torch.float32
    rounding = math.sqrt(x.shape[1]) * torch.finfo(torch.float32).eps * terms
    assert ((folded - expected).abs() <= rounding).all()
    if name != "digits_projected":
        assert torch.allclose(folded, expected, atol=1e-5 * float(expected.abs().max()), rtol=0)
    assert torch.equal(folded.argmax(1), expected.argmax(1))
    std = x.astype(np.float64).std(0)
    assert np.allclose(fit.mean, x.astype(np.float64).mean(0)) and np.allclose(fit.scale, np.where(std > 0, std, 1.0))


@pytest.mark.parametrize("weighted", [False, True])
def test_ridge_equals_sklearn_ridge(weighted):
    x, y = regression_data(0)
    weight = np.random.default_rng(1).uniform(0.2, 3.0, len(y)) if weighted else np.ones(len(y))
    z = Float64Scaler().fit_transform(x)
    for l2 in (1e-3, 0.3):
        fit = fit_probe(x, y, task="regression", num_labels=3, l2=l2, sample_weight=weight if weighted else None)
        model = Ridge(alpha=l2 * weight.sum()).fit(z, y, sample_weight=weight)
        assert np.allclose(fit.standardized.weight.detach().numpy(), model.coef_, atol=1e-6, rtol=0)
        assert np.allclose(fit.standardized.bias.detach().numpy(), model.intercept_, atol=1e-6, rtol=0)
        with torch.no_grad():
            predicted = fit.linear(torch.from_numpy(x).float()).double().numpy()
        assert np.allclose(predicted, model.predict(z), atol=1e-4 * np.abs(y).max(), rtol=0)


def test_ridge_cross_validation_equals_ridge_cv():
    x, y = regression_data(2, n=400, outputs=1)
    fit = fit_probe(x, y[:, 0], task="regression", num_labels=1, seed=3)
    assert fit.selection == "cross-validation"
    groups, _ = fold_ids("regression", y[:, 0], 5, 3)
    fold_rows = len(y) * 4 / 5
    model = RidgeCV(alphas=[l2 * fold_rows for l2 in probe.RIDGE_L2_GRID], cv=PredefinedSplit(groups),
                    scoring="neg_mean_squared_error").fit(Float64Scaler().fit_transform(x), y[:, 0])
    assert fit.l2 == pytest.approx(model.alpha_ / len(y))  # same total L2 on the refit
    assert np.allclose(fit.standardized.weight.detach().numpy()[0], model.coef_, atol=1e-6, rtol=0)
    best = max(fit.scores, key=lambda r: r["score"])
    assert best["l2"] == pytest.approx(model.alpha_ / fold_rows)


def test_ridge_validation_selects_the_lowest_validation_mse_for_multi_output():
    x, y = regression_data(4, n=600)
    fit = fit_probe(x[:400], y[:400], task="regression", num_labels=3, val_x=x[400:], val_y=y[400:])
    assert fit.selection == "validation" and fit.linear.out_features == 3
    z = Float64Scaler().fit(x[:400])
    spread = y[:400].var(0)
    for row in fit.scores:
        model = Ridge(alpha=row["l2"] * 400).fit(z.transform(x[:400]), y[:400])
        errors = ((model.predict(z.transform(x[400:])) - y[400:]) ** 2).mean(0)
        assert row["mse"] == pytest.approx(errors.mean(), rel=1e-6)
        assert row["score"] == pytest.approx(-(errors / spread).mean(), rel=1e-6)
    assert fit.l2 == max(fit.scores, key=lambda r: r["score"])["l2"] == fit.chosen["l2"]


def test_multi_label_matches_per_label_sklearn():
    x, y = multi_label_data(0, 2600)
    xtr, ytr, xva, yva, xt, yt = x[:1200], y[:1200], x[1200:1600], y[1200:1600], x[1600:], y[1600:]
    fit = fit_probe(xtr, ytr, task="multi_label_classification", num_labels=6, val_x=xva, val_y=yva)
    assert fit.selection == "validation" and fit.converged
    with torch.no_grad():
        predicted = (fit.linear(torch.from_numpy(xt)) > 0).numpy()
    scaler = Float64Scaler().fit(xtr)
    reference = np.stack([LogisticRegressionCV(max_iter=5000).fit(scaler.transform(xtr), ytr[:, k])
                          .predict(scaler.transform(xt)) for k in range(6)], 1) > 0.5

    def micro_f1(p):
        return 2 * (p & (yt > 0.5)).sum() / (p.sum() + (yt > 0.5).sum())

    assert micro_f1(predicted) >= micro_f1(reference) - 0.02
    # the same l2 means the same per-label problems as scikit-learn's, label by label
    fixed = fit_probe(xtr, ytr, task="multi_label_classification", num_labels=6, l2=fit.l2)
    for k in range(6):
        model = LogisticRegression(C=1 / (fit.l2 * len(ytr)), tol=1e-8, max_iter=5000).fit(scaler.transform(xtr), ytr[:, k])
        assert np.allclose(fixed.standardized.weight.detach().numpy()[k], model.coef_[0], atol=2e-3)


def test_multi_label_constant_label_is_not_fitted():
    x, y = multi_label_data(1, 300, labels=3)
    y[:, 1] = 0.0
    fit = fit_probe(x, y, task="multi_label_classification", num_labels=3, l2=1e-2)
    assert torch.all(fit.standardized.weight[1] == 0)
    # no positives among 300 rows: the logit of the smoothed rate (0 + 0.5) / (300 + 1)
    assert float(fit.standardized.bias[1]) == pytest.approx(np.log(0.5 / 301) - np.log1p(-0.5 / 301), rel=1e-6)


# ----------------------------------------------------------------------------------------------
# Streaming, selection, determinism, robustness.


@pytest.mark.parametrize("task", [SINGLE, "multi_label_classification", "regression"])
def test_streaming_equals_in_memory(task, tmp_path):
    if task == SINGLE:
        x, y, _, _ = gaussians(5, 900, 48, 6, 2.0)
    elif task == "multi_label_classification":
        x, y = multi_label_data(5, 900, labels=4, dim=48)
    else:
        x, y = regression_data(5, n=900, dim=48)
        x = x.astype(np.float32)
    path = tmp_path / "features.npy"
    np.save(path, x)
    mapped = np.load(path, mmap_mode="r")
    labels = {SINGLE: 6, "multi_label_classification": 4, "regression": 3}[task]
    # float64: only the order of summation differs (in float32, two L-BFGS runs part at the
    # solver's tolerance, as any two float32 runs on differently chunked data would)
    kwargs = {"task": task, "num_labels": labels, "val_x": x[:300], "val_y": y[:300], "dtype": "float64"}
    in_memory = fit_probe(x[300:], y[300:], **kwargs)
    streamed = fit_probe(mapped[300:], y[300:], max_memory_bytes=1024, chunk_rows=128, **kwargs)
    assert in_memory.l2 == streamed.l2 and in_memory.selection == streamed.selection == "validation"
    assert torch.allclose(in_memory.standardized.weight, streamed.standardized.weight, atol=1e-8)
    assert torch.allclose(in_memory.standardized.bias, streamed.standardized.bias, atol=1e-8)
    assert [r["loss"] for r in in_memory.scores] == pytest.approx([r["loss"] for r in streamed.scores], rel=1e-7)
    assert np.allclose(in_memory.mean, streamed.mean) and np.allclose(in_memory.scale, streamed.scale)


def test_accuracy_selection_follows_the_one_standard_error_rule():
    x, y, _, _ = problem("separated")
    xtr, ytr, xva, yva = validation_split(x, y)
    fit = fit_probe(xtr, ytr, task=SINGLE, num_labels=10, val_x=xva, val_y=yva, select_by="accuracy")
    assert fit.selection == "validation"
    assert [r["l2"] for r in fit.scores] == sorted((r["l2"] for r in fit.scores), reverse=True)
    accuracies, losses = [r["accuracy"] for r in fit.scores], [r["loss"] for r in fit.scores]
    assert accuracies == [r["score"] for r in fit.scores]
    chosen = fit.scores[within_one_standard_error(accuracies, losses, len(yva))]
    assert fit.l2 == chosen["l2"]
    # the recorded validation scores are the returned probe's
    with torch.no_grad():
        logits = fit.linear(torch.from_numpy(xva)).double()
    assert float((logits.argmax(1).numpy() == yva).mean()) == chosen["accuracy"]
    assert float(torch.nn.functional.cross_entropy(logits, torch.from_numpy(yva))) == pytest.approx(chosen["loss"],
                                                                                                    rel=1e-4)


def test_path_stops_once_past_the_best():
    x, y, _, _ = problem("separated")
    xtr, ytr, xva, yva = validation_split(x, y)
    whole = fit_probe(xtr, ytr, task=SINGLE, num_labels=10, val_x=xva, val_y=yva, path_patience=0)
    early, _ = probe_on_validation("separated")
    assert len(whole.scores) == len(LOGISTIC_L2_GRID) > len(early.scores)
    assert early.l2 == whole.l2 and torch.equal(early.linear.weight, whole.linear.weight)


def test_log_loss_selection_is_the_default():
    fit, (_, _, xva, yva) = probe_on_validation("separated")
    assert fit.l2 == min(fit.scores, key=lambda r: r["loss"])["l2"]
    assert all(r["score"] == -r["loss"] for r in fit.scores)
    with torch.no_grad():  # the recorded validation scores are the returned probe's
        logits = fit.linear(torch.from_numpy(xva)).double()
    chosen = next(r for r in fit.scores if r["l2"] == fit.l2)
    assert fit.chosen is chosen
    assert float(torch.nn.functional.cross_entropy(logits, torch.from_numpy(yva))) == pytest.approx(chosen["loss"],
                                                                                                    rel=1e-4)


@pytest.mark.parametrize("val_rows", [None, 10])
def test_cross_validation_without_a_usable_validation_split(val_rows):
    x, y, _, _ = problem("separated")
    if val_rows is None:
        fit = probe_by_cross_validation("separated")
    else:
        fit = fit_probe(x[val_rows:], y[val_rows:], task=SINGLE, num_labels=10, val_x=x[:val_rows], val_y=y[:val_rows])
        assert f"the validation split has {val_rows} examples, under 20" in fit.reason
    assert fit.selection == "cross-validation"
    assert "5-fold cross-validation" in fit.reason
    picked = min(range(len(fit.scores)), key=lambda i: fit.scores[i]["loss"])
    assert fit.chosen is fit.scores[picked]
    assert fit.l2 == pytest.approx(fit.scores[picked]["l2"] * 0.8, rel=0.01)  # refit: the same total L2


def test_fold_ids_are_stratified_and_balanced():
    y = np.repeat(np.arange(4), [3, 10, 25, 7])
    groups, reason = fold_ids(SINGLE, y, 5, seed=0)
    assert reason.startswith("3-fold")  # capped by the smallest class
    for c in range(4):
        counts = np.bincount(groups[y == c], minlength=3)
        assert counts.max() - counts.min() <= 1
    assert np.array_equal(groups, fold_ids(SINGLE, y, 5, seed=0)[0])
    assert not np.array_equal(groups, fold_ids(SINGLE, y, 5, seed=1)[0])


def test_deterministic_for_a_seed():
    x, y, _, _ = problem("few_shot_20x5")
    first, second = probe_by_cross_validation("few_shot_20x5"), fit_probe(x, y, task=SINGLE, num_labels=20, seed=0)
    assert torch.equal(first.linear.weight, second.linear.weight) and torch.equal(first.linear.bias, second.linear.bias)
    assert first.scores == second.scores
    other = fit_probe(x, y, task=SINGLE, num_labels=20, seed=1)
    assert other.scores != first.scores  # the seed shuffles the folds


def test_one_example_per_class_falls_back_to_a_fixed_l2():
    x, y, xt, yt = few_shot(1, 1, 32, 5, 6.0)
    fit = fit_probe(x, y, task=SINGLE, num_labels=5)
    assert fit.selection == "fixed" and fit.l2 == probe.FALLBACK_L2
    assert "too few for 2-fold cross-validation" in fit.reason
    assert probe_metrics(fit, xt, yt, 5)[0] > 0.5
    two = fit_probe(*few_shot(1, 2, 32, 5, 6.0)[:2], task=SINGLE, num_labels=5)
    assert two.selection == "cross-validation" and "2-fold" in two.reason


def test_a_class_absent_from_train():
    x, y, xt, yt = gaussians(2, 400, 16, 4, 4.0)
    keep = y != 2
    fit = fit_probe(x[keep], y[keep], task=SINGLE, num_labels=5)
    assert fit.linear.out_features == 5 and fit.converged
    assert torch.all(fit.standardized.weight[[2, 4]] == 0)
    with torch.no_grad():
        predicted = fit.linear(torch.from_numpy(xt)).argmax(1).numpy()
    assert not np.isin(predicted, [2, 4]).any()
    assert (predicted == yt)[yt != 2].mean() > 0.85  # about 0.90 with 40000 training examples


def test_class_and_sample_weights():
    x, y, xt, yt = problem("imbalanced")
    counts = np.bincount(y)
    balanced = (len(y) / (len(counts) * counts)).tolist()
    by_class = fit_probe(x, y, task=SINGLE, num_labels=5, class_weights=balanced, l2=1e-2)
    by_sample = fit_probe(x, y, task=SINGLE, num_labels=5, sample_weight=np.asarray(balanced)[y] * 3.0, l2=1e-2)
    assert torch.allclose(by_class.standardized.weight, by_sample.standardized.weight, atol=1e-4)  # scale-free
    plain = fit_probe(x, y, task=SINGLE, num_labels=5, l2=1e-2)
    with torch.no_grad():
        rare = yt == 4
        recall = [float((f.linear(torch.from_numpy(xt[rare])).argmax(1).numpy() == 4).mean()) for f in (plain, by_class)]
    assert recall[1] > recall[0]
    scaler = Float64Scaler().fit(x)
    model = LogisticRegression(C=1 / (1e-2 * len(y)), class_weight=dict(enumerate(balanced)), tol=1e-8,
                               max_iter=10000).fit(scaler.transform(x), y)
    # sum of the class weights is len(y) here, so the conventions agree
    assert np.allclose(by_class.standardized.weight.detach().numpy(), model.coef_, atol=2e-3)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_features_are_rejected(bad):
    x, y, _, _ = gaussians(3, 100, 8, 2, 2.0)
    x[17, 3] = bad
    with pytest.raises(DataError, match=r"train_x has 1 non-finite.*row 17, feature 3"):
        fit_probe(x, y, task=SINGLE, num_labels=2)
    with pytest.raises(DataError, match="val_x has 1 non-finite"):
        fit_probe(x[18:], y[18:], task=SINGLE, num_labels=2, val_x=x[:18], val_y=y[:18])


def test_bad_labels_are_rejected():
    x, y, _, _ = gaussians(3, 100, 8, 3, 2.0)
    with pytest.raises(DataError, match=r"class ids 0..2; expected 0..1"):
        fit_probe(x, y, task=SINGLE, num_labels=2)
    with pytest.raises(ConfigurationError, match="task must be one of"):
        fit_probe(x, y, task="single_label", num_labels=3)
    with pytest.raises(ConfigurationError, match="class_weights apply to single-label"):
        fit_probe(x, np.eye(3)[y], task="multi_label_classification", num_labels=3, class_weights=[1, 1, 1])


def test_constant_features_and_torch_input():
    x, y, xt, yt = gaussians(6, 500, 12, 3, 4.0)
    x[:, 5] = 7.0
    fit = fit_probe(torch.from_numpy(x), torch.from_numpy(y), task=SINGLE, num_labels=3)
    assert fit.scale[5] == 1.0 and torch.isfinite(fit.linear.weight).all()
    assert probe_metrics(fit, xt, yt, 3)[0] > 0.8


@pytest.mark.parametrize("name", list(PROBLEMS))
def test_speed_each_l2_costs_a_few_dozen_passes(name):
    """The fit's cost, counted deterministically in passes over the train features (the time
    against scikit-learn's is measured by ``bench/probe.py``): each L2 of the warm-started path
    costs a few dozen L-BFGS evaluations, for the five folds and the refit together."""
    fits = [probe_by_cross_validation(name)] + ([probe_on_validation(name)[0]] if name in WITH_VALIDATION else [])
    for fit in fits:
        assert 0 < fit.evaluations <= 60 * len(fit.scores)
    x, y, _, _ = problem(name)
    ridge = fit_probe(x, y.astype(np.float64), task="regression", num_labels=1)
    assert ridge.evaluations == 0 and ridge.selection == "cross-validation"
