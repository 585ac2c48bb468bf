"""L-BFGS for the probe's strongly convex objectives, on any torch device and dtype.

Why not ``torch.optim.LBFGS``: its first use in a process imports ``torch._dynamo``
(1-3 s, more than a whole probe fit on a few thousand examples), it forgets its
curvature memory between calls, and a path of L2 strengths is a sequence of
closely related problems that can share it. Here the memory is an object the
caller keeps: after the L2 strength changes by ``delta``, every stored gradient
difference gains ``delta * s`` (the penalty's Hessian is ``l2 * I`` on the
penalised coordinates), so the next fit starts with a full quasi-Newton step
instead of a steepest-descent one.

For a strongly convex objective every step gives a positive curvature pair, so
a backtracking (Armijo) line search is enough: the unit step is tried first
and accepted almost always, and no step needs more than one gradient.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

#: Curvature pairs kept (scipy's default).
HISTORY = 10
#: Armijo's sufficient-decrease constant.
ARMIJO = 1e-4
#: Backtracking steps before the line search gives up (the loss is then at its rounding floor).
MAX_BACKTRACKS = 12


@dataclass
class Memory:
    """The curvature pairs of L-BFGS: steps ``s``, gradient differences ``y``, and ``1 / (y . s)``."""

    steps: list[torch.Tensor] = field(default_factory=list)
    changes: list[torch.Tensor] = field(default_factory=list)
    rhos: list[float] = field(default_factory=list)

    def add(self, step: torch.Tensor, change: torch.Tensor) -> None:
        """Store one pair (skipped unless its curvature ``y . s`` is positive)."""
        curvature = float((step * change).sum())
        if curvature <= 1e-12 * float((change * change).sum()):
            return
        self.steps.append(step)
        self.changes.append(change)
        self.rhos.append(1.0 / curvature)
        if len(self.steps) > HISTORY:
            del self.steps[0], self.changes[0], self.rhos[0]

    def shift(self, hessian_change: Callable[[torch.Tensor], torch.Tensor]) -> None:
        """Adapt the pairs to an objective whose Hessian gained ``hessian_change(s)`` (a fixed quadratic)."""
        changes, steps = self.changes, self.steps
        self.steps, self.changes, self.rhos = [], [], []
        for step, change in zip(steps, changes):
            self.add(step, change + hessian_change(step))

    def direction(self, grad: torch.Tensor) -> torch.Tensor:
        """The quasi-Newton step ``-H grad`` (two-loop recursion); ``-grad`` without pairs."""
        q = grad.clone()
        alphas = []
        for step, change, rho in zip(reversed(self.steps), reversed(self.changes), reversed(self.rhos)):
            alpha = rho * float((step * q).sum())
            q.sub_(change, alpha=alpha)
            alphas.append(alpha)
        if self.steps:
            q.mul_(1.0 / (self.rhos[-1] * float((self.changes[-1] ** 2).sum())))  # H0 = (s . y) / (y . y)
        for step, change, rho, alpha in zip(self.steps, self.changes, self.rhos, reversed(alphas)):
            q.add_(step, alpha=alpha - rho * float((change * q).sum()))
        return q.neg_()


def minimise(objective: Callable[[torch.Tensor], tuple[float, torch.Tensor]], x: torch.Tensor, memory: Memory, *,
             tolerance: float, max_iter: int) -> tuple[torch.Tensor, bool, int]:
    """Minimise *objective* (``x -> (loss, gradient)``) from *x*, updating *memory*.

    Stops when no gradient entry exceeds *tolerance* (converged); when the line search
    cannot lower the loss, or a step lowers it by less than its rounding error in *x*'s
    dtype (its rounding floor: converged too); or after *max_iter* iterations (not
    converged). Returns ``(x, converged, evaluations)``.
    """
    loss, grad = objective(x)
    evaluations = 1
    resolution = torch.finfo(x.dtype).eps
    for _ in range(max_iter):
        if float(grad.abs().max()) <= tolerance:
            return x, True, evaluations
        direction = memory.direction(grad)
        if not memory.steps:  # steepest descent: a first step of at most unit length in the max-norm
            direction.mul_(min(1.0, 1.0 / float(grad.abs().max())))
        slope = float((grad * direction).sum())
        if slope >= 0:  # not a descent direction (only after rounding trouble): start the memory afresh
            memory.steps.clear(), memory.changes.clear(), memory.rhos.clear()
            continue
        step = 1.0
        for _ in range(MAX_BACKTRACKS):
            candidate = x + step * direction
            new_loss, new_grad = objective(candidate)
            evaluations += 1
            if new_loss <= loss + ARMIJO * step * slope:
                break
            # the minimum of the quadratic through loss, slope and new_loss, kept within [0.1, 0.5] of the step
            curvature = new_loss - loss - slope * step
            step = min(max(-slope * step * step / (2 * curvature), 0.1 * step), 0.5 * step) if curvature > 0 \
                else 0.5 * step
        else:
            return x, True, evaluations
        memory.add(candidate - x, new_grad - grad)
        floor = loss - new_loss <= resolution * abs(loss)
        x, loss, grad = candidate, new_loss, new_grad
        if floor:  # the step gained nothing the loss can resolve: at its rounding floor
            return x, True, evaluations
    return x, float(grad.abs().max()) <= tolerance, evaluations
