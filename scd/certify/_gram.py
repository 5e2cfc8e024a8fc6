"""A certified lower bound from the geometry of the units that must cross together (hard voting).

The radius sweep lets every vote flip on its own.  One perturbation must flip enough votes at
once, and in each vote enough units to move its logit across zero.  If ``S`` is a set of units
that all cross, with unit directions ``a_u`` (unit L2 norm) and L2 distances ``c_u`` to their
hyperplanes, then ``a_u . delta >= c_u`` for all ``u`` in ``S`` gives, with ``y = c``,

    ||delta||_2 >= (c . c) / ||A_S^T c||_2 >= ||c||_2 / sqrt(lambda_max(A_S A_S^T)).

By Cauchy interlacing, ``lambda_max`` of any subset's Gram matrix is at most that of all the
units that could cross.  ``||c||^2`` is at least the sum, over the votes that must flip, of the
cheapest set of units that moves each vote's logit across zero (a covering knapsack, bounded
below by its LP relaxation with each unit's weight capped at what the vote needs).  On
networks whose units point in nearly orthogonal directions (CIFAR SCD01: largest Gram
eigenvalue 1.4 to 2 over hundreds of units) this grows like the square root of the number of
units that must cross, where the sweep sees only the largest one.  ``docs/certify.md`` has the
proof; it bounds L2 directly, L1 through ``||delta||_1 >= ||delta||_2`` and L∞ through
``||delta||_inf >= ||delta||_2 / sqrt(d)``.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import eigh

from ._bounds import Problem

__all__ = ["gram_bound"]


def gram_bound(p: Problem, radius: float, upper: float = np.inf, steps: int = 8, rtol: float = 0.03) -> float:
    """A certified lower bound on the distortion that changes a hard vote's prediction, or 0
    for soft voting.  ``radius``: the sweep's certified radius (where the search starts);
    ``upper``: the distance of a known adversarial input, if any.

    For any ``U``, ``min(U, bound(U))`` is a lower bound, where ``bound(U)`` uses only the
    units that can cross within ``U``: a perturbation shorter than ``U`` crosses no other.
    ``bound`` does not grow with ``U``, so the best ``U`` is where the two meet; it is found
    by growing ``U`` from ``radius`` by factors of two, then bisecting until the bracket is
    within ``rtol`` (at most ``steps`` evaluations, each one sound)."""
    if p.model.soft or not np.isfinite(radius) or radius <= 0:
        return 0.0
    norms = np.linalg.norm(p.toward, axis=2, keepdims=True)
    directions = p.toward / np.where(norms > 0, norms, 1.0)  # unit L2 norm
    c = np.maximum(p.gap - p.tau, 0.0) / np.where(norms[..., 0] > 0, norms[..., 0], 1.0)
    best, below, above = 0.0, radius, None  # bound(below) >= below; bound(above) < above
    U = radius
    for _ in range(steps):
        value = _bound_within(p, directions, c, U)
        best = max(best, min(U, value))
        if value >= U:
            below = U
            if U >= upper:
                break
        else:
            above = U
        U = min(2 * U, upper) if above is None else np.sqrt(below * above)
        if above is not None and above <= below * (1 + rtol):
            break
    return float(best)


def _bound_within(p: Problem, directions: np.ndarray, c: np.ndarray, upper: float) -> float:
    """The bound over the units that can cross within ``upper``; ``upper`` itself when fewer
    votes than needed can flip with those units alone.  ``directions (K, H, d)``: the units'
    crossing directions scaled to unit L2 norm; ``c (K, H)``: their L2 distances (no box)."""
    need, counting, required = _requirements(p)
    if need <= 0:
        return 0.0
    usable = _usable_units(p, upper, counting)
    costs = np.sort(_vote_costs(p, c, counting, required, usable))
    if not np.isfinite(costs[need - 1]):
        return float(upper)
    total = float(costs[:need].sum()) * (1 - 1e-9)
    if total <= 0.0:
        return 0.0
    bound = np.sqrt(total / _largest_eigenvalue(directions[usable]))
    if p.norm == "inf":
        bound /= np.sqrt(len(p.x0))
    return float(bound * (1 - 1e-9))


def _requirements(p: Problem) -> tuple[int, np.ndarray, np.ndarray]:
    """How many votes must flip, which votes count for the prediction, and per vote the logit
    change that flips it (undecided units, free to swing, already subtracted)."""
    z = p.model.logits(p.h0)
    K = len(z)
    slack = p.z_slack
    swing = (np.abs(p.model.v) * p.undecided).sum(axis=1) / 2
    if p.label == 1:
        counts = z - slack > 0
        need = int(counts.sum()) - K // 2
        margin = z - slack
    else:
        counts = ~(z + slack > 0)
        need = K // 2 + 1 - int((~counts).sum())
        margin = -(z + slack)
    return need, counts, np.maximum(margin - swing, 0.0)


def _usable_units(p: Problem, upper: float, counting: np.ndarray) -> np.ndarray:
    """``(K, H)``: decided units of counting votes whose crossing helps the attack and that
    can cross within ``upper`` (and within the box)."""
    change = p.model.v * (1.0 - 2.0 * p.side)
    favourable = change < 0 if p.label == 1 else change > 0
    reachable = np.isfinite(p.dist) & (p.dist <= upper)
    return favourable & reachable & ~p.undecided & counting[:, None]


def _vote_costs(p: Problem, c: np.ndarray, counting: np.ndarray, required: np.ndarray,
                usable: np.ndarray) -> np.ndarray:
    """Per vote, a lower bound on ``sum c_u^2`` over the unit sets that flip it: 0 for a
    counting vote that needs nothing, inf for votes that cannot flip or do not count."""
    costs = np.where(counting & (required <= 0), 0.0, np.inf)
    for k in np.flatnonzero(counting & (required > 0)):
        units = np.flatnonzero(usable[k])
        weight = np.minimum(np.abs(p.model.v[k, units]), required[k])  # no unit gives more than needed
        if weight.sum() < required[k]:
            continue
        square = c[k, units] ** 2
        order = np.argsort(square / weight, kind="stable")
        cum = np.cumsum(weight[order])
        last = min(int(np.searchsorted(cum, required[k])), len(cum) - 1)  # the unit that completes the cover
        before = cum[last - 1] if last > 0 else 0.0
        fraction = min(1.0, (required[k] - before) / weight[order[last]])
        costs[k] = square[order[:last]].sum() + fraction * square[order[last]]
    return costs


def _largest_eigenvalue(rows: np.ndarray) -> float:
    """An upper bound on the largest eigenvalue of the Gram matrix of ``rows (n, d)``: the
    symmetric eigensolver is backward stable, so a relative ``1e-9`` and the Frobenius norm
    times ``n 2^-40`` more cover its error and that of the products."""
    n = len(rows)
    if n == 0:
        return 1.0
    gram = rows @ rows.T
    top = float(eigh(gram, eigvals_only=True, subset_by_index=[n - 1, n - 1])[0])
    return max(top, 1.0) * (1 + 1e-9) + n * 2.0 ** -40 * float(np.linalg.norm(gram))
