"""The probe's solvers and its L2 selection: step two of :func:`tlzoo.training.probe.fit_probe`.

* Logistic regression (softmax, or independent sigmoids for multi-label) by
  full-batch L-BFGS along the L2 path, strongest first: each fit starts from the
  previous two solutions' line extended in log(L2), with the L-BFGS memory carried
  over; the cross-validation folds and the fit on all of train are solved together
  as blocks of one problem, so one pass over the features serves them all.
* Ridge regression in closed form from sufficient statistics: one pass over
  the features, one eigendecomposition per fit, then every L2 costs a matrix product.

Every function takes standardised features (:class:`~tlzoo.training.probe_data.StandardisedFeatures`)
and returns ``theta`` [outputs, features + 1] (weights, bias) in standardised units;
the objective's conventions are those of :mod:`tlzoo.training.probe`.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from tlzoo.training.lbfgs import Memory, minimise
from tlzoo.training.probe_data import StandardisedFeatures

#: L-BFGS stops when no gradient entry of the (per-example mean) objective exceeds
#: min(TOLERANCE_GRAD, WEIGHT_TOLERANCE * l2): the objective is l2-strongly convex, so the
#: weights are then within ~WEIGHT_TOLERANCE of the optimum even at the weakest L2.
TOLERANCE_GRAD = 1e-5
WEIGHT_TOLERANCE = 1e-3


@dataclass
class PathResult:
    """What a solver hands back: the chosen theta, its L2, the score rows, and how it went."""

    theta: torch.Tensor
    l2: float
    scores: list[dict[str, float]] = field(default_factory=list)
    converged: bool = True
    evaluations: int = 0
    chosen: dict[str, float] | None = None


# ----------------------------------------------------------------------------------------------
# Selection along the L2 path.


def candidates(scores: list[dict[str, float]], held_out: int | None = None) -> list[int]:
    """Indices of the rows of *scores* that the held-out data cannot tell from the best.

    With *held_out* (the score is an accuracy over that many held-out examples): every
    row within one standard error ``sqrt(a (1 - a) / n)`` of the best accuracy ``a``.
    Without it: the rows of the highest score.
    """
    best = max(row["score"] for row in scores)
    margin = math.sqrt(best * (1 - best) / held_out) if held_out else 0.0
    return [i for i, row in enumerate(scores) if row["score"] >= best - margin - 1e-12]


def choose(scores: list[dict[str, float]], held_out: int | None = None, among: list[int] | None = None) -> int:
    """Index of the chosen row of *scores* (strongest L2 first): of the :func:`candidates`,
    the lowest loss, then the strongest L2.

    So with accuracy selection, an L2 a few held-out examples' accuracy cannot tell from
    the best is judged by its log-loss, a far less noisy score. *among*: only these rows
    may be chosen (the path keeps the fits of these only); if none of them is a
    candidate, the best of them by the same order.
    """
    rows = candidates(scores, held_out)
    if among is not None:
        rows = [i for i in rows if i in among] or list(among)
    return min(rows, key=lambda i: (-scores[i]["score"] if held_out is None else 0.0, scores[i]["loss"],
                                    -scores[i]["l2"]))


def past_best(scores: list[dict[str, float]], chosen: int, patience: int) -> bool:
    """Whether the path can stop: the last *patience* L2s all come after the chosen one and
    each raised the selection loss (0: never stop)."""
    if patience <= 0 or chosen >= len(scores) - patience:
        return False
    losses = [row["loss"] for row in scores[-patience - 1:]]
    return all(later > earlier for earlier, later in itertools.pairwise(losses))


# ----------------------------------------------------------------------------------------------
# Logistic regression by full-batch L-BFGS.


def logit_terms(logits: torch.Tensor, y: torch.Tensor, multi: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-example loss [n, ...] and its gradient with respect to the logits [n, ..., C].

    *y*: class ids [n] or label rates [n, C]; *logits*: [n, C] or [n, B, C] (B blocks).
    """
    if multi:
        y = y.view(len(y), *([1] * (logits.dim() - 2)), -1)
        return (torch.nn.functional.softplus(logits) - y * logits).sum(-1), torch.sigmoid(logits) - y
    top = logits.amax(-1, keepdim=True)
    grad = torch.exp(logits - top)
    total = grad.sum(-1, keepdim=True)
    grad.div_(total)  # the softmax (one exp: faster than logsumexp and exp)
    index = y.view(len(y), *([1] * (logits.dim() - 1))).expand(*logits.shape[:-1], 1)
    picked = logits.gather(-1, index)
    grad.scatter_add_(-1, index, torch.full_like(picked, -1.0))
    return (top + total.log() - picked).squeeze(-1), grad


def linear_outputs(theta: torch.Tensor, features: StandardisedFeatures) -> torch.Tensor:
    """Outputs [N, rows of theta] of *theta* [outputs, D + 1] (weights, bias) on standardised features."""
    return torch.cat([torch.addmm(theta[:, -1], z, theta[:, :-1].T) for _, _, z in features.chunks()])


def classification_scores(logits: torch.Tensor, y: torch.Tensor, multi: bool,
                          by_loss: bool) -> tuple[float, float, float]:
    """(score, mean loss, accuracy or micro-F1) of *logits* for labels *y*, unweighted."""
    logits = logits.double()
    loss, _ = logit_terms(logits, y.to(logits.device, torch.float64 if multi else torch.int64), multi)
    mean_loss = float(loss.mean())
    if not multi:
        accuracy = float((logits.argmax(1).cpu() == y).double().mean())
        return (-mean_loss if by_loss else accuracy), mean_loss, accuracy
    predicted, truth = (logits > 0).cpu(), y > 0.5
    true_pos = float((predicted & truth).sum())
    f1 = 2 * true_pos / max(float(predicted.sum() + truth.sum()), 1.0)
    return -mean_loss, mean_loss, f1


class LogisticProblem:
    """The probe fitted for B weightings of the train rows at once: the CV folds and all of train.

    Block b minimises its own objective over the rows of its weight column (weight zero:
    not in that fit). The blocks share no parameters, so L-BFGS on all of them together
    converges to each block's optimum, and one matrix product with B * C columns per pass
    serves every block. Outputs that a block cannot fit (a class absent from its rows, a
    label constant in them) keep zero weights: their gradient is masked out.
    """

    def __init__(self, features: StandardisedFeatures, y: torch.Tensor, weights: torch.Tensor, num_labels: int,
                 multi: bool, max_iter: int) -> None:
        self.features, self.multi, self.max_iter, self.num_labels = features, multi, max_iter, num_labels
        dtype, device = features.dtype, features.device
        self.weight = (weights / weights.sum(0)).to(dtype=dtype, device=device)  # [N, B], columns sum to 1
        if multi:
            self.y = y.to(dtype=dtype, device=device)
            self.prior = self.weight.T @ self.y  # [B, C]: each label's weighted rate
            self.active = (self.prior > 0) & (self.prior < 1)
        else:
            self.y = y.to(device)
            self.prior = torch.zeros(weights.shape[1], num_labels, dtype=dtype, device=device).index_add_(
                1, self.y, self.weight.T)
            self.active = self.prior > 0
        self.counts = (weights > 0).sum(0).to(dtype=dtype, device=device)  # [B]
        self.mask = self.active[..., None].to(dtype)
        self.offset = torch.where(self.active | multi, 0.0, -1e4).to(dtype).reshape(-1)  # absent classes: no mass
        self.evaluations = 0
        self.memory, self.l2 = Memory(), None

    def start(self) -> torch.Tensor:
        """Theta [B, C, D + 1]: zero weights, biases at the (log-)prior: the optimum at infinite L2."""
        theta = torch.zeros(*self.prior.shape, self.features.dim + 1, dtype=self.prior.dtype, device=self.prior.device)
        rate = torch.where(self.active, self.prior, 0.5)
        theta[..., -1] = torch.log(rate) - torch.log1p(-rate) if self.multi else torch.log(rate)
        return self.full(theta)

    def objective(self, theta: torch.Tensor, l2: torch.Tensor) -> tuple[float, torch.Tensor]:
        """The exact full-batch loss and gradient (every block's, summed), chunk by chunk; *l2* [B]."""
        self.evaluations += 1
        blocks, classes, width = theta.shape
        weights = theta[..., :-1].reshape(blocks * classes, width - 1)
        bias = theta[..., -1].reshape(-1) + self.offset
        grad = torch.zeros_like(theta)
        total = 0.0
        for start, stop, z in self.features.chunks():
            logits = torch.addmm(bias, z, weights.T).view(stop - start, blocks, classes)
            loss, dlogits = logit_terms(logits, self.y[start:stop], self.multi)
            weight = self.weight[start:stop]
            total += float((weight * loss).sum(dtype=torch.float64))
            dlogits = dlogits.mul_(weight[..., None]).view(stop - start, blocks * classes)
            grad[..., :-1] += (dlogits.T @ z).view(blocks, classes, width - 1)
            grad[..., -1] += dlogits.sum(0).view(blocks, classes)
        grad[..., :-1] += l2[:, None, None] * theta[..., :-1]
        grad.mul_(self.mask)
        return total + 0.5 * float(l2 @ (theta[..., :-1] ** 2).sum((1, 2))), grad

    def fit(self, l2: torch.Tensor, start: torch.Tensor) -> tuple[torch.Tensor, bool]:
        """Minimise the objective at *l2* [B] from *start*; the solution, and whether L-BFGS converged.

        Successive calls (a path of L2 strengths) share the L-BFGS memory, shifted by the change of L2.
        """
        l2 = l2.to(dtype=start.dtype, device=start.device)
        if self.l2 is not None:
            delta = (l2 - self.l2).view(-1, 1, 1)
            self.memory.shift(lambda step: delta * torch.cat([step[..., :-1], torch.zeros_like(step[..., -1:])], -1))
        self.l2 = l2
        tolerance = min(TOLERANCE_GRAD, WEIGHT_TOLERANCE * float(l2.min()))
        theta, converged, _ = minimise(lambda theta: self.objective(theta, l2), start, self.memory,
                                       tolerance=tolerance, max_iter=self.max_iter)
        return theta, converged

    def full(self, theta: torch.Tensor) -> torch.Tensor:
        """*theta* with the biases of the outputs a block could not fit set for prediction.

        A label constant in the block's rows gets the logit of its smoothed rate
        ``(positives + 0.5) / (rows + 1)``; a class absent from them a bias ``log(0.5 / (rows + 1))``
        below the block's lowest fitted bias, so it is (almost) never predicted.
        """
        theta = theta.clone()
        if self.multi:
            smoothed = (self.prior * self.counts[:, None] + 0.5) / (self.counts[:, None] + 1.0)
            fixed = torch.log(smoothed) - torch.log1p(-smoothed)
        else:
            fitted = torch.where(self.active, theta[..., -1], torch.inf).amin(1, keepdim=True)
            fixed = (fitted + torch.log(0.5 / (self.counts[:, None] + 1.0))).expand_as(self.prior)
        theta[..., -1] = torch.where(self.active, theta[..., -1], fixed)
        return theta


def fit_logistic_path(train: StandardisedFeatures, y: torch.Tensor, weight: torch.Tensor, val: Any,
                      grid: list[float], groups: np.ndarray | None, *, num_labels: int, multi: bool, max_iter: int,
                      patience: int, by_loss: bool, problem: type[LogisticProblem] = LogisticProblem) -> PathResult:
    """Fit along *grid* (strongest first) and select on *val* ``(features, labels)`` or on the folds.

    *groups*: every train row's fold (cross-validation), else None. Without either, the
    grid must hold one L2 (a fixed fit). Under cross-validation the returned theta is the
    refit on all of train, whose per-example L2 is smaller by the folds' mean share of
    the weight: the same total L2, as scikit-learn's ``C`` (its L2 is the one returned).
    *problem*: the solver (:class:`LogisticProblem`, or :class:`~tlzoo.training.probe_newton.NewtonProblem`).
    """
    folds = 0 if groups is None else int(groups.max()) + 1
    if folds:
        weights = torch.stack([weight * torch.from_numpy(groups != fold) for fold in range(folds)] + [weight], 1)
        relative = torch.ones(folds + 1, dtype=torch.float64)
        relative[-1] = float(weights[:, :-1].sum(0).mean() / weight.sum())
    else:
        weights, relative = weight[:, None], torch.ones(1, dtype=torch.float64)
    held_out = None if by_loss or multi else (len(y) if folds else len(val[1]) if val is not None else None)
    solver = problem(train, y, weights, num_labels, multi, max_iter)
    theta, scores, kept, converged = solver.start(), [], {}, True
    recent: list[tuple[float, torch.Tensor]] = []  # (l2, theta) of the last two fits
    for index, l2 in enumerate(grid):
        start = _extrapolate(recent, l2) if len(recent) == 2 else theta
        theta, ok = solver.fit(l2 * relative, start)
        recent = [*recent, (l2, theta)][-2:]
        converged &= ok
        full = solver.full(theta)
        kept[index] = full[-1], l2 * float(relative[-1])
        if folds:  # each row scored by the fold that did not see it
            logits = linear_outputs(full.reshape(-1, train.dim + 1), train).view(len(y), folds + 1, num_labels)
            scores.append(_score_row(l2, logits[torch.arange(len(y)), torch.from_numpy(groups)], y, multi, by_loss))
        elif val is not None:
            scores.append(_score_row(l2, linear_outputs(full[0], val[0]), val[1], multi, by_loss))
        if not scores:
            break
        chosen = choose(scores, held_out, among=list(kept))
        kept = {i: kept[i] for i in candidates(scores, held_out) if i in kept} | {chosen: kept[chosen]}
        if past_best(scores, chosen, patience):
            break
    index = choose(scores, held_out, among=list(kept)) if scores else 0
    theta, l2 = kept[index]
    return PathResult(theta, l2, scores, converged, solver.evaluations, scores[index] if scores else None)


def _extrapolate(recent: list[tuple[float, torch.Tensor]], l2: float) -> torch.Tensor:
    """A start for the fit at *l2*: the last two solutions' line, extended in log(l2)."""
    (l2_a, a), (l2_b, b) = recent
    return b + math.log(l2 / l2_b) / math.log(l2_b / l2_a) * (b - a)


def _score_row(l2: float, logits: torch.Tensor, labels: torch.Tensor, multi: bool, by_loss: bool) -> dict[str, float]:
    score, loss, extra = classification_scores(logits, labels, multi, by_loss)
    return {"l2": l2, "score": score, "loss": loss, ("micro_f1" if multi else "accuracy"): extra}


# ----------------------------------------------------------------------------------------------
# Ridge regression in closed form from sufficient statistics.


def ridge_statistics(features: StandardisedFeatures, y: torch.Tensor, weight: torch.Tensor, groups: np.ndarray,
                     count: int) -> list[dict[str, torch.Tensor]]:
    """Per group: sums of w, w z, w y, w z z^T, w z y^T and w y^2 (float64), in one pass."""
    dim, outputs = features.dim, y.shape[1]
    zeros = {"w": (), "z": (dim,), "y": (outputs,), "zz": (dim, dim), "zy": (dim, outputs), "yy": (outputs,)}
    stats = [{key: torch.zeros(shape, dtype=torch.float64) for key, shape in zeros.items()} for _ in range(count)]
    for start, stop, z in features.chunks():
        z = z.double().cpu()
        for group in np.unique(groups[start:stop]):
            rows = torch.from_numpy(np.flatnonzero(groups[start:stop] == group))
            zg, yg, wg = z[rows], y[start + rows], weight[start + rows]
            s = stats[group]
            s["w"] += wg.sum()
            s["z"] += wg @ zg
            s["y"] += wg @ yg
            s["zz"] += (zg * wg[:, None]).T @ zg
            s["zy"] += (zg * wg[:, None]).T @ yg
            s["yy"] += wg @ (yg * yg)
    return stats


def _combine(stats: list[dict[str, torch.Tensor]], keep: list[int]) -> dict[str, torch.Tensor]:
    return {key: sum(stats[g][key] for g in keep) for key in stats[0]}


def ridge_path(train: dict[str, torch.Tensor], grid: list[float]) -> list[torch.Tensor]:
    """For each L2: theta [outputs, features + 1] (weights, bias) solving the weighted ridge."""
    mean_z, mean_y = train["z"] / train["w"], train["y"] / train["w"]
    cov = train["zz"] / train["w"] - torch.outer(mean_z, mean_z)
    cross = train["zy"] / train["w"] - torch.outer(mean_z, mean_y)
    values, vectors = torch.linalg.eigh(0.5 * (cov + cov.T))
    projected = vectors.T @ cross
    path = []
    for l2 in grid:
        weights = vectors @ (projected / (values.clamp(min=0.0) + l2)[:, None])  # [features, outputs]
        path.append(torch.cat([weights.T, (mean_y - mean_z @ weights)[:, None]], 1))
    return path


def squared_error(theta: torch.Tensor, s: dict[str, torch.Tensor]) -> torch.Tensor:
    """Per output: sum of w * (y - W z - b)^2 over a group, from its statistics."""
    weights, bias = theta[:, :-1].T, theta[:, -1]
    return (s["yy"] - 2 * (weights * s["zy"]).sum(0) - 2 * bias * s["y"] + (weights * (s["zz"] @ weights)).sum(0)
            + 2 * bias * (s["z"] @ weights) + s["w"] * bias * bias).clamp(min=0)


def fit_ridge_path(train: StandardisedFeatures, y: torch.Tensor, weight: torch.Tensor, val: Any, grid: list[float],
                   groups: np.ndarray | None) -> PathResult:
    """Ridge at every L2 of *grid*, selected on *val* or on the folds of *groups* (as the logistic path).

    Scores are minus the MSE in standardised-target units (each output counts alike);
    losses the MSE in target units.
    """
    spread = y.var(0, correction=0).clamp(min=1e-300)

    def row(l2: float, errors: torch.Tensor, count: int) -> dict[str, float]:
        mse = float(errors.mean() / count)
        return {"l2": l2, "score": -float((errors / spread).mean() / count), "loss": mse, "mse": mse}

    if groups is not None:
        folds = list(range(int(groups.max()) + 1))
        stats = ridge_statistics(train, y, weight, groups, len(folds))
        uniform = bool((weight == weight[0]).all())  # then the unweighted errors follow from the same sums
        plain = stats if uniform else ridge_statistics(train, y, torch.ones_like(weight), groups, len(folds))
        errors = [torch.zeros(y.shape[1], dtype=torch.float64) for _ in grid]
        shares = []
        for fold in folds:
            fitted = _combine(stats, [g for g in folds if g != fold])
            shares.append(float(fitted["w"]))
            for i, theta in enumerate(ridge_path(fitted, grid)):
                errors[i] += squared_error(theta, plain[fold])
        scores = [row(l2, errors[i], len(y)) for i, l2 in enumerate(grid)]
        everything = _combine(stats, folds)
        best = choose(scores)
        chosen = grid[best] * float(np.mean(shares) / everything["w"])  # the same total L2
        return PathResult(ridge_path(everything, [chosen])[0], chosen, scores, chosen=scores[best])
    path = ridge_path(ridge_statistics(train, y, weight, np.zeros(len(y), dtype=np.int64), 1)[0], grid)
    if val is None:
        return PathResult(path[0], grid[0])
    ones = torch.ones(len(val[1]), dtype=torch.float64)
    held = ridge_statistics(val[0], val[1], ones, np.zeros(len(val[1]), dtype=np.int64), 1)[0]
    scores = [row(l2, squared_error(theta, held), len(val[1])) for l2, theta in zip(grid, path)]
    best = choose(scores)
    return PathResult(path[best], grid[best], scores, chosen=scores[best])
