"""The convex problem of one sign pattern: ``min ||delta||_p  s.t.  A delta >= c`` in a box.

A sign pattern fixes, for a few hidden units, on which side of their hyperplane the input
must lie; with ``delta`` in ``[l, u]`` (the input box around ``x0``) that is this problem with
one row per unit.  The solvers find multipliers ``y >= 0`` of the rows and a point:

* L∞: a Dinkelbach-style iteration.  The surrogate bound of ``y`` (the single aggregated row
  ``(y A) delta >= y c`` has a closed-form minimum) is a lower bound ``t``; the max-slack LP
  at radius ``t`` (HiGHS) either finds a point, so ``t`` is the optimum, or new multipliers
  with a larger surrogate bound;
* L1: the LP, by HiGHS;
* L2: the dual QP (one variable per row), by L-BFGS-B.

The reported lower bound is recomputed from ``y`` by weak and surrogate duality
(:func:`dual_bound`, :func:`surrogate_bound`), so it holds whatever the solvers' tolerances:
only the point relies on them, and every point is checked on the model before it counts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linprog

from ._halfspace import crossing_distances, dual_bound, norm_of

__all__ = ["Leaf", "solve_leaf", "surrogate_bound"]

_EPS = np.finfo(np.float64).eps


@dataclass(frozen=True)
class Leaf:
    """``lower``: a sound lower bound on the problem's minimum (``inf`` when proven
    infeasible); ``delta``: the solver's minimiser, or ``None`` (infeasible, or stopped at
    the cut-off)."""

    lower: float
    delta: np.ndarray | None


def surrogate_bound(A: np.ndarray, c: np.ndarray, y: np.ndarray, l: np.ndarray, u: np.ndarray, norm: str) -> float:
    """A lower bound from multipliers ``y >= 0`` by surrogate duality: every feasible ``delta``
    satisfies the single row ``(y A) delta >= y c``, whose minimum norm has a closed form."""
    y = np.maximum(y, 0.0)
    g, q = y @ A, float(y @ c)
    err = 2 * (len(y) + 2) * _EPS * float(y @ (np.abs(A) @ np.maximum(u, -l) + np.abs(c)))
    return float(crossing_distances(g[None], np.array([q - err]), l, u, norm)[0])


def solve_leaf(A: np.ndarray, c: np.ndarray, l: np.ndarray, u: np.ndarray, norm: str,
               cutoff: float = np.inf, margin: np.ndarray | float = 0.0) -> Leaf:
    """Solve ``min ||delta||_p  s.t.  A delta >= c,  l <= delta <= u`` (``A (m, d)``).

    The point is sought for the rows pushed in by ``margin`` (``A delta >= c + margin``), so
    that it lands strictly inside the pattern's cell; the lower bound is for ``c`` itself.
    ``cutoff``: values above it do not matter to the caller (an upper bound it already has),
    so the search may stop once its bound passes it.
    """
    if len(A) == 0:
        return Leaf(0.0, np.zeros_like(l))
    single = crossing_distances(A, c, l, u, norm)
    if not np.isfinite(single).all():
        return Leaf(np.inf, None)
    if single.max() >= cutoff:  # one row alone is already past what the caller needs
        return Leaf(float(single.max()), None)
    farthest = float(norm_of(np.maximum(-l, u), norm))  # no point of the box is farther
    cap = min(cutoff, farthest * (1 + 1e-9) + 1e-12)
    if norm == "inf":  # started from the row that is costliest alone
        y, delta = _linf(A, c + margin, l, u, cap, int(np.argmax(single)))
    else:
        y, delta = _l1(A, c + margin, l, u) if norm == "1" else _l2(A, c + margin, l, u, cap)
    lower = float(single.max())
    if y is not None:
        lower = max(lower, dual_bound(A, c, y, l, u, norm), surrogate_bound(A, c, y, l, u, norm))
    if lower > farthest:  # proven infeasible
        lower = np.inf
    return Leaf(lower, delta)


def _linf(A, c, l, u, cutoff, start):
    y = np.zeros(len(A))
    y[start] = 1.0
    t_prev = -1.0
    for _ in range(100):
        t = surrogate_bound(A, c, y, l, u, "inf")
        if not np.isfinite(t) or t > cutoff or t <= t_prev * (1 + 1e-13):
            return y, None
        t_prev = t
        radius = t * (1 + 1e-9) + 1e-12
        slack, delta, y_new = _max_slack(A, c, np.maximum(l, -radius), np.minimum(u, radius))
        if delta is not None and slack >= -1e-9 * (1 + np.abs(c).max()):
            return y, delta
        if y_new is None or not (y_new > 0).any():
            return y, None
        y = y_new
    return y, None


def _max_slack(A, c, lo, hi):
    """``max s  s.t.  A delta - s >= c,  lo <= delta <= hi``: ``(s, delta, y)`` with ``y`` the
    row multipliers (summing to one)."""
    m, d = A.shape
    cost = np.zeros(d + 1)
    cost[-1] = -1.0
    bounds = np.column_stack([np.append(lo, -np.inf), np.append(hi, np.inf)])
    res = linprog(cost, A_ub=np.hstack([-A, np.ones((m, 1))]), b_ub=-c, bounds=bounds, method="highs")
    if res.status != 0:
        return -np.inf, None, None
    return -res.fun, res.x[:d], -np.asarray(res.ineqlin.marginals)


def _l1(A, c, l, u):
    d = A.shape[1]
    bounds = np.column_stack([np.zeros(2 * d), np.concatenate([u, -l])])
    res = linprog(np.ones(2 * d), A_ub=np.hstack([-A, A]), b_ub=-c, bounds=bounds, method="highs")
    if res.status != 0:
        return None, None
    return -np.asarray(res.ineqlin.marginals), res.x[:d] - res.x[d:]


def _l2(A, c, l, u, cutoff):
    """Maximise the dual of ``min ||delta||^2 / 2``: ``G(y) = y.c + sum_i (delta_i^2 / 2 -
    g_i delta_i)`` with ``g = A^T y`` and ``delta = clip(g, l, u)``; concave and smooth, with
    gradient ``c - A delta`` and Hessian ``-A_F A_F^T`` over the unclipped coordinates ``F``.
    Projected Newton steps with backtracking; ``G`` grows without end when the rows are
    infeasible, and stops mattering once it passes ``cutoff^2 / 2``."""

    def value(y):
        g = A.T @ y
        delta = np.clip(g, l, u)
        return y @ c + (0.5 * delta * delta - g * delta).sum(), g, delta

    limit = 0.5 * cutoff * cutoff * (1 + 1e-9)
    m = len(A)
    y = np.zeros(m)
    G, g, delta = value(y)
    scale = 1.0 + np.abs(c).max()
    for _ in range(200):
        grad = c - A @ delta
        active = (y <= 0) & (grad <= 0)
        if np.all(np.abs(grad[~active]) <= 1e-12 * scale) and (grad <= 1e-12 * scale).all():
            break
        free = (g > l) & (g < u)
        Af = A[:, free]
        step = np.zeros(m)
        idx = ~active
        hess = Af[idx] @ Af[idx].T
        hess += (1e-12 * (np.trace(hess) + 1.0)) * np.eye(idx.sum())
        try:
            step[idx] = np.linalg.solve(hess, grad[idx])
        except np.linalg.LinAlgError:
            step[idx] = grad[idx]
        if not (step @ grad > 0):
            step = np.where(active, 0.0, grad)
        alpha, improved = 1.0, False
        for _ in range(60):
            y_new = np.maximum(y + alpha * step, 0.0)
            G_new, g_new, d_new = value(y_new)
            if G_new > G:
                improved = True
                break
            alpha *= 0.5
        if not improved:
            break
        y, G, g, delta = y_new, G_new, g_new, d_new
        if G > limit:
            return y, None
    feasible = (A @ delta - c >= -1e-9 * (np.abs(A) @ np.abs(delta) + np.abs(c) + 1e-12)).all()
    return y, delta if feasible else None

