"""The probe's Newton solver (few examples): the same optimum as scikit-learn and as L-BFGS, in fewer passes.

Few-shot problems have fewer rows than features, so the solver works in the span of the
train rows; the tests check that this changes nothing but the cost.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from tlzoo.errors import ConfigurationError
from tlzoo.testing.probe_problems import few_shot, gaussians, multi_label_data
from tlzoo.training.probe import fit_probe
from tlzoo.training.probe_newton import newton_applies

SINGLE, MULTI = "single_label_classification", "multi_label_classification"


def probabilities(fit, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return torch.softmax(fit.linear(torch.from_numpy(x)).double(), 1).numpy()


def standardised(x: np.ndarray) -> tuple[StandardScaler, np.ndarray]:
    scaler = StandardScaler().fit(x.astype(np.float64))
    return scaler, scaler.transform(x.astype(np.float64))


def test_auto_picks_newton_for_few_examples_and_lbfgs_for_many():
    assert newton_applies(24, 384, 3) and newton_applies(40, 8, 3)
    assert not newton_applies(150, 384, 3) and not newton_applies(50, 384, 10)
    few = fit_probe(*few_shot(0, 8, 384, 3, 1.0)[:2], task=SINGLE, num_labels=3)
    many = fit_probe(*gaussians(0, 600, 64, 10, 2.0)[:2], task=SINGLE, num_labels=10)
    assert (few.solver, many.solver) == ("newton", "lbfgs")
    forced = fit_probe(*few_shot(0, 8, 384, 3, 1.0)[:2], task=SINGLE, num_labels=3, dtype="float32")
    assert forced.solver == "lbfgs"  # Newton works in float64 only
    assert fit_probe(*few_shot(0, 8, 384, 3, 1.0)[:2], task="regression", num_labels=1).solver == "ridge"


def test_unknown_solver_is_refused():
    x, y, _, _ = few_shot(0, 4, 16, 3, 1.0)
    with pytest.raises(ConfigurationError, match="solver must be"):
        fit_probe(x, y, task=SINGLE, num_labels=3, solver="sgd")


@pytest.mark.parametrize("rows_per_class, dim", [(8, 384), (15, 6)])  # fewer rows than features, and more
def test_same_optimum_as_sklearn_at_a_fixed_l2(rows_per_class, dim):
    x, y, xt, _ = few_shot(1, rows_per_class, dim, 3, 1.5)
    scaler, z = standardised(x)
    for l2 in (1e-1, 1e-4):
        fit = fit_probe(x, y, task=SINGLE, num_labels=3, l2=l2, solver="newton")
        assert fit.solver == "newton" and fit.converged
        model = LogisticRegression(C=1 / (l2 * len(y)), tol=1e-10, max_iter=100000).fit(z, y)
        expected = model.predict_proba(scaler.transform(xt.astype(np.float64)))
        assert np.abs(probabilities(fit, xt) - expected).max() < 1e-4


def test_weights_in_the_row_span_and_outputs_unchanged_by_it():
    """With fewer rows than features the weights are a combination of the standardised train rows."""
    x, y, _, _ = few_shot(2, 6, 200, 4, 1.0)
    fit = fit_probe(x, y, task=SINGLE, num_labels=4, l2=1e-2)
    rows = torch.from_numpy((x - fit.mean) / fit.scale)
    weights = fit.standardized.weight.detach()
    coefficients = torch.linalg.lstsq(rows.T, weights.T).solution
    assert torch.allclose(rows.T @ coefficients, weights.T, atol=1e-8)


@pytest.mark.parametrize("validation", [False, True])
def test_the_path_and_its_choice_equal_lbfgs(validation):
    """Cross-validation (no validation split) and a validation split: the same scores and the same choice."""
    x, y, xt, yt = few_shot(3, 10, 300, 3, 1.2)
    kwargs = {"val_x": xt[:30], "val_y": yt[:30]} if validation else {}
    newton = fit_probe(x, y, task=SINGLE, num_labels=3, solver="newton", **kwargs)
    lbfgs = fit_probe(x, y, task=SINGLE, num_labels=3, solver="lbfgs", dtype="float64", **kwargs)
    assert newton.selection == lbfgs.selection == ("validation" if validation else "cross-validation")
    assert newton.l2 == pytest.approx(lbfgs.l2) and len(newton.scores) == len(lbfgs.scores)
    for a, b in zip(newton.scores, lbfgs.scores):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-3, abs=1e-5) and a["accuracy"] == b["accuracy"]
    assert np.abs(probabilities(newton, xt) - probabilities(lbfgs, xt)).max() < 1e-3
    assert newton.evaluations * 2 < lbfgs.evaluations  # far fewer passes over the features


def test_sample_and_class_weights_and_an_absent_class():
    x, y, xt, _ = few_shot(4, 8, 120, 4, 1.5)
    keep = y != 2  # class 2 never seen: never predicted, its weights stay zero
    x, y = x[keep], y[keep]
    class_weights = [1.0, 2.0, 1.0, 0.5]
    weight = np.random.default_rng(0).uniform(0.5, 2.0, len(y))
    fit = fit_probe(x, y, task=SINGLE, num_labels=4, l2=1e-2, sample_weight=weight, class_weights=class_weights)
    assert fit.solver == "newton" and fit.converged and torch.all(fit.standardized.weight[2] == 0)
    p = probabilities(fit, xt)
    assert not (p.argmax(1) == 2).any() and p[:, 2].max() < 0.01  # a bias log(0.5 / (rows + 1)) below the rest
    scaler, z = standardised(x)
    total = weight * np.asarray(class_weights)[y]
    model = LogisticRegression(C=1 / (1e-2 * total.sum()), tol=1e-10, max_iter=100000).fit(z, y, sample_weight=total)
    expected = model.predict_proba(scaler.transform(xt.astype(np.float64)))  # classes 0, 1, 3
    seen = p[:, [0, 1, 3]]
    assert np.abs(seen / seen.sum(1, keepdims=True) - expected).max() < 5e-4  # float32 head


def test_multi_label_matches_per_label_sklearn():
    x, y = multi_label_data(0, 40, labels=3, dim=60)
    y[:, 2] = 0.0  # a constant label: not fitted, as with L-BFGS
    fit = fit_probe(x, y, task=MULTI, num_labels=3, l2=1e-2)
    assert fit.solver == "newton" and fit.converged and torch.all(fit.standardized.weight[2] == 0)
    _, z = standardised(x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for k in range(2):
            model = LogisticRegression(C=1 / (1e-2 * len(y)), tol=1e-10, max_iter=100000).fit(z, y[:, k])
            assert np.allclose(fit.standardized.weight.detach().numpy()[k], model.coef_[0], atol=1e-4)
            assert float(fit.standardized.bias[k]) == pytest.approx(model.intercept_[0], abs=1e-4)
    lbfgs = fit_probe(x, y, task=MULTI, num_labels=3, l2=1e-2, solver="lbfgs", dtype="float64")
    assert torch.allclose(fit.standardized.bias, lbfgs.standardized.bias, atol=1e-3)
