"""Smallest box-constrained perturbations that cross hyperplanes: pure numpy functions.

``delta`` moves an input ``x0`` inside the box ``[lo, hi]``; with ``l = lo - x0 <= 0`` and
``u = hi - x0 >= 0`` it lies in ``[l, u]``.  :func:`crossing_distances` solves, for many rows
``a`` at once, ``min ||delta||_p  s.t.  a . delta >= p,  l <= delta <= u`` in closed form
(sort + prefix sums).  :func:`dual_bound` turns any multipliers of the same problem with
several rows, ``A delta >= c``, into a lower bound by weak duality, which is how the LP and QP
solutions of :mod:`scd.certify._leaf` become sound numbers.
"""

from __future__ import annotations

import numpy as np

__all__ = ["NORMS", "crossing_distances", "dual_bound", "norm_of"]

NORMS = ("inf", "2", "1")
_EPS = np.finfo(np.float64).eps


def norm_of(delta: np.ndarray, norm: str) -> np.ndarray:
    """``||delta||_p`` over the last axis."""
    a = np.abs(delta)
    if norm == "inf":
        return a.max(axis=-1, initial=0.0)
    if norm == "1":
        return a.sum(axis=-1)
    return np.sqrt((a * a).sum(axis=-1))


def _rooms(a: np.ndarray, l: np.ndarray, u: np.ndarray) -> np.ndarray:
    """How far each coordinate can move in the direction that increases ``a . delta``."""
    return np.where(a > 0, u, np.where(a < 0, -l, 0.0))


def crossing_distances(a: np.ndarray, p: np.ndarray, l: np.ndarray, u: np.ndarray, norm: str) -> np.ndarray:
    """``min ||delta||_p`` with ``a[r] . delta >= p[r]`` and ``l <= delta <= u``, per row ``r``.

    ``a (n, d)``, ``p (n,)``; ``inf`` where the box does not reach ``p``, 0 where ``p <= 0``.
    Computed in float64 and scaled down by a relative ``1e-9`` so that rounding can only make
    the result smaller than the exact value (the sums have at most ``d`` terms, with a
    relative error below ``d * 2**-52``).
    """
    g = np.abs(a)
    rho = _rooms(a, l, u)
    out = np.zeros(len(a))
    need = p > 0
    if not need.any():
        return out
    g, rho, q = g[need], rho[need], p[need]
    reach = (g * rho).sum(axis=1)
    ok = reach >= q
    res = np.full(len(q), np.inf)
    if ok.any():
        res[ok] = _SOLVERS[norm](g[ok], rho[ok], q[ok])
    out[need] = res
    return np.maximum(out * (1 - 1e-9), 0.0)


def _linf(g, rho, q):
    order = np.argsort(rho, axis=1)
    r = np.take_along_axis(rho, order, axis=1)
    gs = np.take_along_axis(g, order, axis=1)
    full = np.cumsum(gs * r, axis=1)  # coordinates i <= m saturated
    tail = gs.sum(axis=1, keepdims=True) - np.cumsum(gs, axis=1)  # weights of i > m
    f = full + r * tail  # gain at t = r_(m)
    m = np.argmax(f >= q[:, None], axis=1)  # first breakpoint that reaches q
    rows = np.arange(len(q))
    before = np.where(m > 0, full[rows, m - 1], 0.0)
    slope = tail[rows, m] + gs[rows, m]  # sum of g over coordinates i >= m
    return (q - before) / slope


def _l1(g, rho, q):
    order = np.argsort(-g, axis=1)
    gs = np.take_along_axis(g, order, axis=1)
    r = np.take_along_axis(rho, order, axis=1)
    gain = np.cumsum(gs * r, axis=1)
    cost = np.cumsum(r, axis=1)
    k = np.argmax(gain >= q[:, None], axis=1)
    rows = np.arange(len(q))
    prev_gain = np.where(k > 0, gain[rows, k - 1], 0.0)
    prev_cost = np.where(k > 0, cost[rows, k - 1], 0.0)
    return prev_cost + (q - prev_gain) / gs[rows, k]


def _l2(g, rho, q):
    with np.errstate(divide="ignore", invalid="ignore"):
        beta = np.where(g > 0, rho / g, np.inf)  # lambda at which coordinate i saturates
    order = np.argsort(beta, axis=1)
    b = np.take_along_axis(beta, order, axis=1)
    gs = np.take_along_axis(g, order, axis=1)
    r = np.take_along_axis(rho, order, axis=1)
    sat_gain = np.cumsum(gs * r, axis=1)
    sat_sq = np.cumsum(r * r, axis=1)
    free_g2 = (gs * gs).sum(axis=1, keepdims=True) - np.cumsum(gs * gs, axis=1)
    with np.errstate(invalid="ignore"):
        gain_at = sat_gain + np.where(np.isfinite(b), b, 0.0) * free_g2  # g(lambda) at each breakpoint
    gain_at = np.where(np.isfinite(b), gain_at, np.inf)
    m = np.argmax(gain_at >= q[:, None], axis=1)  # the segment ends at breakpoint m
    rows = np.arange(len(q))
    g_sat = np.where(m > 0, sat_gain[rows, m - 1], 0.0)
    sq_sat = np.where(m > 0, sat_sq[rows, m - 1], 0.0)
    g2_free = free_g2[rows, m] + gs[rows, m] ** 2
    lam = (q - g_sat) / g2_free
    return np.sqrt(sq_sat + lam * lam * g2_free)


_SOLVERS = {"inf": _linf, "1": _l1, "2": _l2}


def dual_bound(A: np.ndarray, c: np.ndarray, y: np.ndarray, l: np.ndarray, u: np.ndarray, norm: str) -> float:
    """A lower bound on ``min ||delta||_p  s.t.  A delta >= c,  l <= delta <= u`` from any
    multipliers ``y >= 0`` (weak duality), rounded down; 0 when ``y`` proves nothing.

    With ``g = A^T y``: L∞: ``y.c + min_t [t - sum_i |g_i| min(t, rho_i)]``; L1:
    ``y.c + sum_i min(0, (1 - |g_i|) rho_i)``; L2 (for ``||delta||^2 / 2``):
    ``y.c + sum_i (delta_i^2 / 2 - g_i delta_i)`` at ``delta = clip(g, l, u)``, then
    ``sqrt(2 x)``.  ``rho_i`` is the room in the direction of ``sign(g_i)``.
    """
    y = np.maximum(np.asarray(y, dtype=np.float64), 0.0)
    g = A.T @ y
    rho = _rooms(g, l, u)
    ag = np.abs(g)
    yc = float(y @ c)
    if norm == "inf":
        order = np.argsort(rho)
        r, gs = rho[order], ag[order]
        taken = np.cumsum(gs * r)
        tail = gs.sum() - np.cumsum(gs)
        phi = r - (taken + r * tail)
        inner = min(0.0, float(phi.min(initial=0.0)))
        terms = taken[-1] if len(taken) else 0.0
        scale = abs(yc) + float(r.max(initial=0.0)) + terms
        value = yc + inner
    elif norm == "1":
        parts = np.minimum(0.0, (1 - ag) * rho)
        value = yc + float(parts.sum())
        scale = abs(yc) + float(np.abs(parts).sum()) + float((ag * rho).sum())
    else:
        delta = np.clip(g, l, u)
        parts = 0.5 * delta * delta - g * delta
        value = yc + float(parts.sum())
        scale = abs(yc) + float(np.abs(parts).sum())
    # rounding of the sums above, and of g itself (m products per entry)
    spread = float((np.abs(A).T @ y) @ np.maximum(u, -l))
    err = 4 * (len(g) + len(y) + 4) * _EPS * (scale + spread)
    value -= err + 1e-300
    if norm == "2":
        return float(np.sqrt(max(value, 0.0) * 2) * (1 - 1e-12))
    return max(value, 0.0)
