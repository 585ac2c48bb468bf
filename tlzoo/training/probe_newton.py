"""Logistic probes on few examples: Newton's method in the span of the training rows.

With N train rows of D standardised features, the optimum of every L2-regularised
linear model has its weights in the span of the rows (the representer theorem),
and the same span holds every cross-validation fold's optimum, a fold's rows being
some of them. An orthonormal basis ``Q`` [D, r] of that span (r <= N) therefore
turns the D-feature problem into an r-feature one, ``F = Z Q``, with the same
optima, ``W = W_r Q^T``, and the same predictions. With few examples, ``(r + 1) * C``
parameters per block are few enough for Newton's method: every fit of the L2
path takes a handful of exact steps (one factorisation each, batched over the
folds) where L-BFGS takes dozens of passes, each of whose cost at this size is
per-operation overhead rather than arithmetic. :func:`fit_probe` picks it when
:func:`newton_applies`; the path, the selection and the result are those of
:func:`~tlzoo.training.probe_solvers.fit_logistic_path`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from tlzoo.training.lbfgs import ARMIJO, MAX_BACKTRACKS
from tlzoo.training.probe_data import StandardisedFeatures
from tlzoo.training.probe_solvers import (
    TOLERANCE_GRAD,
    WEIGHT_TOLERANCE,
    LogisticProblem,
    PathResult,
    fit_logistic_path,
)

#: Newton's method is used while a step costs at most this many multiply-adds per block: ``N P^2 + P^3 / 3``
#: to form and factorise a Hessian of ``P = (min(N, D) + 1) * C`` parameters (single-label), ``C`` times that at
#: ``P = min(N, D) + 1`` (multi-label: one system per label). Newton's cost depends on the size alone; L-BFGS's
#: also on how well the features are conditioned. Measured side by side on one CPU core: on all-MiniLM-L6-v2's
#: sentence features (well conditioned), Newton takes 0.7 of L-BFGS's time at 48 sentences of 3 topics (2.1
#: million), about as long at 60-66 (4.1-5.4 million) and twice as long at 72 (7 million); on the features of
#: a random-weight tiny ViT (badly conditioned; 120 digits, 32 features, 5 classes: 4.8 million) it takes a
#: quarter of L-BFGS's time (0.22 s against 0.9 s), and 1.5 times as long on a recalibrated ResNet's (0.21 s
#: against 0.14 s).
NEWTON_MAX_COST = 5e6
#: Newton steps per fit before it is reported as not converged.
NEWTON_MAX_STEPS = 100
#: The softmax's biases are fixed only up to a common shift; this penalty picks the smallest (no effect on outputs).
BIAS_PENALTY = 1e-10


def newton_applies(rows: int, dim: int, num_labels: int, multi: bool = False) -> bool:
    """Whether a probe of *rows* x *dim* features and *num_labels* outputs is small enough for Newton's method."""
    systems, parameters = (num_labels, min(rows, dim) + 1) if multi else (1, (min(rows, dim) + 1) * num_labels)
    return systems * (rows * parameters**2 + parameters**3 / 3) <= NEWTON_MAX_COST


class NewtonProblem(LogisticProblem):
    """:class:`~tlzoo.training.probe_solvers.LogisticProblem` solved by damped Newton steps, all blocks at once.

    The features must be in memory (float64). Each step solves the blocks' Hessian systems
    (a Cholesky factorisation each) and backtracks every block's step on its own until
    Armijo's condition holds; it stops when no gradient entry exceeds the tolerance L-BFGS
    uses. ``evaluations`` counts passes over the features (a step's gradient and Hessian,
    and each trial point of its line search).
    """

    def __init__(self, features: StandardisedFeatures, y: torch.Tensor, weights: torch.Tensor, num_labels: int,
                 multi: bool, max_iter: int) -> None:
        super().__init__(features, y, weights, num_labels, multi, max_iter)
        matrix = features.matrix
        self.design = torch.cat([matrix, torch.ones(len(matrix), 1, dtype=matrix.dtype, device=matrix.device)], 1)
        classes = torch.arange(num_labels, device=matrix.device)
        self.targets = self.y if multi else (self.y[:, None] == classes).to(matrix.dtype)  # [N, C]
        self.all_active = bool(self.active.all())

    def _objective(self, theta: torch.Tensor, penalty: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Every block's objective [B] and its logits [B, N, C]."""
        self.evaluations += 1
        logits = torch.einsum("nj,bcj->bnc", self.design, theta) + self.offset.view(theta.shape[0], 1, -1)
        if self.multi:
            loss = (torch.nn.functional.softplus(logits) - self.targets * logits).sum(-1)
        else:
            loss = torch.logsumexp(logits, -1) - (logits * self.targets).sum(-1)
        return (self.weight.T * loss).sum(-1) + 0.5 * (penalty * theta * theta).sum((1, 2)), logits

    def _gradient(self, logits: torch.Tensor, theta: torch.Tensor,
                  penalty: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(the masked gradient [B, C, J], the outputs' probabilities [B, N, C]) at *theta*."""
        prob = torch.sigmoid(logits) if self.multi else torch.softmax(logits, -1)
        residual = (prob - self.targets) * self.weight.T[..., None]
        grad = (residual.transpose(1, 2) @ self.design + penalty * theta) * self.mask
        return grad, prob

    def _step(self, prob: torch.Tensor, grad: torch.Tensor, penalty: torch.Tensor) -> torch.Tensor:
        """The Newton step [B, C, J]: the blocks' Hessians solved against their gradients."""
        blocks, classes, width = grad.shape
        weight = self.weight.T[..., None]  # [B, N, 1]
        curvature = weight * prob * (1 - prob) if self.multi else weight * prob
        scaled = curvature.transpose(1, 2)[..., None] * self.design  # [B, C, N, J]
        per_output = scaled.transpose(-1, -2) @ self.design  # [B, C, J, J]
        per_output.diagonal(0, -2, -1).add_(penalty + BIAS_PENALTY)
        if self.multi:  # independent labels: one [J, J] system each
            if not self.all_active:
                per_output = torch.where(self.mask[..., None].bool(), per_output, torch.eye(width, dtype=grad.dtype, device=grad.device))
            return _solve(per_output, grad[..., None])[..., 0]
        outer = (prob[..., None] * self.design[:, None, :]).reshape(blocks, -1, classes * width)
        hessian = -(outer * weight).transpose(1, 2) @ outer
        hessian.view(blocks, classes, width, classes, width).diagonal(0, 1, 3).add_(per_output.permute(0, 2, 3, 1))
        if not self.all_active:
            flat = self.mask.expand(blocks, classes, width).reshape(blocks, -1).bool()
            hessian = torch.where(flat[:, :, None] & flat[:, None, :], hessian, torch.diag_embed((~flat).to(grad.dtype)))
        return _solve(hessian, grad.reshape(blocks, -1, 1)).view(blocks, classes, width)

    def fit(self, l2: torch.Tensor, start: torch.Tensor) -> tuple[torch.Tensor, bool]:
        """Minimise every block's objective at *l2* [B] from *start*; the solution, and whether it converged."""
        l2 = l2.to(dtype=start.dtype, device=start.device)
        penalty = torch.ones(start.shape[-1], dtype=start.dtype, device=start.device)
        penalty[-1] = 0.0
        penalty = l2.view(-1, 1, 1) * penalty
        tolerance = min(TOLERANCE_GRAD, WEIGHT_TOLERANCE * float(l2.min()))
        theta = start * self.mask
        value, logits = self._objective(theta, penalty)
        for _ in range(self.max_iter):
            grad, prob = self._gradient(logits, theta, penalty)
            if float(grad.abs().amax()) <= tolerance:
                return theta, True
            step = self._step(prob, grad, penalty)
            decrease = ARMIJO * (grad * step).sum((1, 2))
            size = torch.ones_like(value)
            for _ in range(MAX_BACKTRACKS):
                trial = theta - size.view(-1, 1, 1) * step
                trial_value, trial_logits = self._objective(trial, penalty)
                accepted = trial_value <= value - size * decrease
                if bool(accepted.all()):
                    break
                size = torch.where(accepted, size, size / 2)
            else:  # the loss is at its rounding floor: keep what improved
                keep = (trial_value <= value).view(-1, 1, 1)
                trial, trial_logits = torch.where(keep, trial, theta), torch.where(keep, trial_logits, logits)
                trial_value = torch.minimum(trial_value, value)
            theta, value, logits = trial, trial_value, trial_logits
        grad, _ = self._gradient(logits, theta, penalty)
        return theta, float(grad.abs().amax()) <= tolerance


def _solve(matrices: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    """``matrices^-1 rhs`` for symmetric positive definite *matrices* (least squares where rounding breaks that)."""
    factor, info = torch.linalg.cholesky_ex(matrices)
    if bool((info == 0).all()):
        return torch.cholesky_solve(rhs, factor)
    return torch.linalg.lstsq(matrices, rhs).solution


def fit_logistic_newton_path(train: StandardisedFeatures, y: torch.Tensor, weight: torch.Tensor, val: Any,
                             grid: list[float], groups: np.ndarray | None, **settings: Any) -> PathResult:
    """:func:`~tlzoo.training.probe_solvers.fit_logistic_path` by Newton's method, in the span of the train rows.

    *train* and *val*'s features must be float64 and in memory. *settings*: the path's
    keyword arguments (``num_labels``, ``multi``, ``max_iter``, ``patience``, ``by_loss``).
    """
    matrix = train.matrix
    basis = torch.linalg.qr(matrix.T)[0] if len(matrix) < matrix.shape[1] else None  # [D, r], orthonormal

    def reduced(features: StandardisedFeatures) -> StandardisedFeatures:
        if basis is None:
            return features
        rows = features.matrix @ basis
        zeros = np.zeros(basis.shape[1])
        return StandardisedFeatures(rows, zeros, zeros + 1.0, dtype=rows.dtype, device=str(rows.device),
                                    chunk_rows=max(len(rows), 1), in_memory=True)

    held = None if val is None else (reduced(val[0]), val[1])
    settings["max_iter"] = min(settings["max_iter"], NEWTON_MAX_STEPS)
    result = fit_logistic_path(reduced(train), y, weight, held, grid, groups, problem=NewtonProblem, **settings)
    if basis is not None:
        result.theta = torch.cat([result.theta[:, :-1] @ basis.T, result.theta[:, -1:]], 1)
    return result
