"""The convex problem of one sign pattern: ``min ||delta||_p  s.t.  A delta >= c`` in a box.

A sign pattern fixes, for a few hidden units, on which side of their hyperplane the input
must lie; with ``delta`` in ``[l, u]`` (the input box around ``x0``) that is this problem with
one row per unit.  The solvers find multipliers ``y >= 0`` of the rows and a point:

* L∞: a Dinkelbach-style iteration.  The surrogate bound of ``y`` (the single aggregated row
  ``(y A) delta >= y c`` has a closed-form minimum) is a lower bound ``t``; the max-slack LP
  at radius ``t`` (HiGHS) either finds a point, so ``t`` is the optimum, or new multipliers
  with a larger surrogate bound;
* L1: the LP, by HiGHS;

  both LPs of one problem live in one persistent HiGHS model (:class:`LeafLP`): the rows of
  every node stay in it, free when a node does not ask for them, and each solve starts from
  the previous basis (about 4 times more nodes per second than a fresh ``linprog`` on CIFAR);
* L2: the dual QP (one variable per row), by projected Newton steps with an exact line search.

The reported lower bound is recomputed from ``y`` by weak and surrogate duality
(:func:`dual_bound`, :func:`surrogate_bound`), so it holds whatever the solvers' tolerances:
only the point relies on them, and every point is checked on the model before it counts.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import highspy
import numpy as np

from ._halfspace import crossing_distances, dual_bound, norm_of

__all__ = ["Leaf", "LeafLP", "solve_leaf", "surrogate_bound"]

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


class LeafLP:
    """The LP of the L∞ (max slack) or L1 leaves of one problem (``d`` inputs, box ``[l, u]``)
    as one persistent HiGHS model.  A row, once asked for, stays in the model and is left free
    (``-inf <= row``) while a solve does not ask for it, so each solve changes bounds only and
    starts from the last basis.

    L∞: columns ``delta (d)`` and the slack ``s``, rows ``a . delta - s >= c``, maximise ``s``
    with ``delta`` in the solve's box.  L1: columns ``delta+`` in ``[0, u]`` and ``delta-`` in
    ``[0, -l]``, rows ``a . (delta+ - delta-) >= c``, minimise their sum."""

    def __init__(self, norm: str, l: np.ndarray, u: np.ndarray):
        if norm not in ("inf", "1"):
            raise ValueError(f"LeafLP solves the L∞ and L1 leaves; got norm {norm!r}.")
        self.norm, self.d = norm, len(l)
        self.rows: dict[bytes, int] = {}
        self.highs = _highs()
        inf, d, none = highspy.kHighsInf, self.d, np.zeros(0, dtype=np.int32)
        if norm == "inf":
            cost, lower, upper = np.append(np.zeros(d), -1.0), np.append(l, -inf), np.append(u, inf)
        else:
            cost, lower, upper = np.ones(2 * d), np.zeros(2 * d), np.concatenate([u, -l])
        self.highs.addCols(len(cost), cost, lower, upper, 0, none, none, np.zeros(0))

    def solve(self, A: np.ndarray, c: np.ndarray, lo: np.ndarray | None = None,
              hi: np.ndarray | None = None) -> tuple[float, np.ndarray | None, np.ndarray | None]:
        """``(objective, delta, y)`` for the rows ``A delta >= c`` (``y``: their multipliers,
        ``>= 0``; L∞: the largest slack ``s`` with ``delta`` in ``[lo, hi]``, the multipliers
        summing to one; L1: the smallest norm), or ``(-inf or inf, None, None)`` when HiGHS
        finds no optimum."""
        h, d = self.highs, self.d
        index = np.array([self._row(a) for a in A], dtype=np.int32)
        n = len(self.rows)
        lower = np.full(n, -highspy.kHighsInf)
        lower[index] = c
        h.changeRowsBounds(n, np.arange(n, dtype=np.int32), lower, np.full(n, highspy.kHighsInf))
        if self.norm == "inf":
            h.changeColsBounds(d, np.arange(d, dtype=np.int32), lo, hi)
        h.run()
        if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
            return (-np.inf if self.norm == "inf" else np.inf), None, None
        solution = h.getSolution()
        x = np.asarray(solution.col_value)
        y = np.maximum(np.asarray(solution.row_dual)[index], 0.0)
        if self.norm == "inf":
            return float(x[d]), x[:d], y
        return float(x.sum()), x[:d] - x[d:], y

    def _row(self, a: np.ndarray) -> int:
        key = a.tobytes()
        i = self.rows.get(key)
        if i is None:
            i = self.rows[key] = len(self.rows)
            nz = np.flatnonzero(a).astype(np.int32)
            extra = [self.d] if self.norm == "inf" else []
            index = np.concatenate([nz, nz + self.d]) if self.norm == "1" else np.append(nz, extra).astype(np.int32)
            value = np.concatenate([a[nz], -a[nz]]) if self.norm == "1" else np.append(a[nz], -1.0)
            self.highs.addRow(-highspy.kHighsInf, highspy.kHighsInf, len(index), index.astype(np.int32), value)
        return i


def _highs() -> highspy.Highs:
    """A silent HiGHS model.  HiGHS writes its banner to the process's standard output when
    the first model of a process is made, before any option can be set: that one is made with
    file descriptor 1 pointed at ``/dev/null``."""
    if _BANNER:
        highs = highspy.Highs()
    else:
        sys.stdout.flush()
        saved, devnull = os.dup(1), os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, 1)
            highs = highspy.Highs()
        finally:
            os.dup2(saved, 1)
            os.close(saved)
            os.close(devnull)
        _BANNER.append(True)
    highs.setOptionValue("output_flag", False)
    return highs


_BANNER: list = []  # not empty once this process has made its first HiGHS model


def solve_leaf(A: np.ndarray, c: np.ndarray, l: np.ndarray, u: np.ndarray, norm: str,
               cutoff: float = np.inf, margin: np.ndarray | float = 0.0, lp: LeafLP | None = None) -> Leaf:
    """Solve ``min ||delta||_p  s.t.  A delta >= c,  l <= delta <= u`` (``A (m, d)``).

    The point is sought for the rows pushed in by ``margin`` (``A delta >= c + margin``), so
    that it lands strictly inside the pattern's cell; the lower bound is for ``c`` itself.
    ``cutoff``: values above it do not matter to the caller (an upper bound it already has),
    so the search may stop once its bound passes it.  ``lp``: the problem's persistent LP
    (L∞ and L1; a new one when ``None``).
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

    if norm != "2" and lp is None:
        lp = LeafLP(norm, l, u)

    def solve(rows_c):
        if norm == "inf":  # started from the row that is costliest alone
            return _linf(lp, A, rows_c, l, u, cap, int(np.argmax(single)))
        if norm == "1":
            _, delta, y = lp.solve(A, rows_c)
            return y, delta
        return _l2(A, rows_c, l, u, cap)

    def bound(y):
        return -np.inf if y is None else max(dual_bound(A, c, y, l, u, norm), surrogate_bound(A, c, y, l, u, norm))

    y, delta = solve(c + margin)
    lower = max(float(single.max()), bound(y))
    if delta is None and np.any(margin) and lower < cap:
        # the pushed rows can be infeasible where the rows are not (a tie, both sides of one
        # hyperplane): their multipliers then say nothing about the rows themselves
        lower = max(lower, bound(solve(c)[0]))
    if lower > farthest:  # proven infeasible
        lower = np.inf
    return Leaf(lower, delta)


def _linf(lp, A, c, l, u, cutoff, start):
    y = np.zeros(len(A))
    y[start] = 1.0
    t_prev = -1.0
    for _ in range(100):
        t = surrogate_bound(A, c, y, l, u, "inf")
        if not np.isfinite(t) or t > cutoff or t <= t_prev * (1 + 1e-13):
            return y, None
        t_prev = t
        radius = t * (1 + 1e-9) + 1e-12
        slack, delta, y_new = lp.solve(A, c, np.maximum(l, -radius), np.minimum(u, radius))
        if delta is not None and slack >= -1e-9 * (1 + np.abs(c).max()):
            return y, delta
        if y_new is None or not (y_new > 0).any():
            return y, None
        y = y_new
    return y, None


def _line_search(s, c, A, g, l, u, y):
    """Exact maximiser of phi(alpha) = G(y + alpha s) (concave, piecewise quadratic) over the
    steps that keep ``y >= 0``: the root of phi'(alpha) = s.c - sum_i h_i clip(g_i + alpha h_i,
    l_i, u_i), with ``g = A^T y``."""
    neg = s < 0
    alpha_max = float(np.min(-y[neg] / s[neg])) if neg.any() else np.inf
    h = A.T @ s
    target = float(s @ c)
    F0 = float(h @ np.clip(g, l, u))
    if F0 >= target:
        return 0.0
    nz = h != 0
    hn, gn = h[nz], g[nz]
    with np.errstate(divide="ignore"):
        a = (l[nz] - gn) / hn
        b = (u[nz] - gn) / hn
    lo_ev, hi_ev = np.minimum(a, b), np.maximum(a, b)  # free on [lo_ev, hi_ev]
    w = hn * hn
    events = np.concatenate([lo_ev, hi_ev])
    dslope = np.concatenate([w, -w])
    keep = events > 0
    slope0 = float(w[(lo_ev <= 0) & (hi_ev > 0)].sum())
    events, dslope = events[keep], dslope[keep]
    order = np.argsort(events, kind="stable")
    e, ds = events[order], dslope[order]
    # F at each event: F0 + integral of the slope
    slopes = slope0 + np.concatenate([[0.0], np.cumsum(ds)])  # slope on [e_{k-1}, e_k]
    widths = np.diff(np.concatenate([[0.0], e]))
    F_at = F0 + np.cumsum(slopes[:-1] * widths)
    k = int(np.searchsorted(F_at, target))  # first event where F >= target
    start = e[k - 1] if k > 0 else 0.0
    F_start = F_at[k - 1] if k > 0 else F0
    slope = slopes[k]
    alpha = np.inf if slope <= 0 else start + (target - F_start) / slope
    return float(min(alpha, alpha_max))



def _l2(A, c, l, u, cutoff, iters=100):
    """Maximise the dual of ``min ||delta||^2 / 2``: ``G(y) = y.c + sum_i (delta_i^2 / 2 -
    g_i delta_i)`` with ``g = A^T y`` and ``delta = clip(g, l, u)``; concave, piecewise
    quadratic and smooth, with gradient ``c - A delta`` and Hessian ``-A_F A_F^T`` over the
    unclipped coordinates ``F``.  Projected Newton steps with an exact line search (the
    step crosses many of the ``2 d`` breakpoints, where a backtracking search stalls).  ``G``
    grows without end when the rows are infeasible, and stops mattering once it passes
    ``cutoff^2 / 2``."""
    def value(y):
        g = A.T @ y
        delta = np.clip(g, l, u)
        return y @ c + (0.5 * delta * delta - g * delta).sum(), g, delta
    limit = 0.5 * cutoff * cutoff * (1 + 1e-9)
    m = len(A)
    y = np.zeros(m)
    G, g, delta = value(y)
    scale = 1.0 + np.abs(c).max()
    for _ in range(iters):
        grad = c - A @ delta
        active = (y <= 0) & (grad <= 0)
        if np.all(np.abs(grad[~active]) <= 1e-12 * scale):
            break
        free = (g > l) & (g < u)
        idx = ~active
        Af = A[idx][:, free]
        hess = Af @ Af.T
        hess += (1e-12 * (np.trace(hess) + 1.0)) * np.eye(idx.sum())
        step = np.zeros(m)
        try:
            step[idx] = np.linalg.solve(hess, grad[idx])
        except np.linalg.LinAlgError:
            step[idx] = grad[idx]
        if not (step @ grad > 0):
            step = np.where(active, 0.0, grad)
        alpha = _line_search(step, c, A, g, l, u, y)
        if alpha <= 0:
            step = np.where(active, 0.0, grad)  # fall back to the gradient
            alpha = _line_search(step, c, A, g, l, u, y)
            if alpha <= 0:
                break
        if not np.isfinite(alpha):  # G grows without end along the step: the rows are infeasible
            alpha = 1e-6 * (1.0 + np.abs(y).max()) / np.abs(step).max()
            while value(y + alpha * step)[0] <= limit and alpha < 1e300:
                alpha *= 2.0  # the first doubling past the cut-off: y stays as small as it can
            return y + alpha * step, None
        y_new = np.maximum(y + alpha * step, 0.0)
        G_new, g_new, d_new = value(y_new)
        if not G_new > G:
            break
        y, G, g, delta = y_new, G_new, g_new, d_new
        if G > limit:
            return y, None
    feasible = (A @ delta - c >= -1e-9 * (np.abs(A) @ np.abs(delta) + np.abs(c) + 1e-12)).all()
    return y, delta if feasible else None
