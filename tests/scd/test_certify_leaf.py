"""The persistent leaf LP (scd.certify._leaf.LeafLP) against scipy's linprog, solved afresh:
the same optima over a sequence of solves that reuse, drop and add rows and change the box,
as the branch and bound asks for them."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import linprog

from scd.certify._leaf import LeafLP, solve_leaf


def _fresh(A, c, lo, hi, norm):
    """The optimum of the same LP by linprog: the largest slack (L∞) or the smallest L1 norm."""
    m, d = A.shape
    if norm == "inf":
        cost = np.append(np.zeros(d), -1.0)
        bounds = np.column_stack([np.append(lo, -np.inf), np.append(hi, np.inf)])
        res = linprog(cost, A_ub=np.hstack([-A, np.ones((m, 1))]), b_ub=-c, bounds=bounds, method="highs")
        return -res.fun if res.status == 0 else -np.inf
    bounds = np.column_stack([np.zeros(2 * d), np.concatenate([hi, -lo])])
    res = linprog(np.ones(2 * d), A_ub=np.hstack([-A, A]), b_ub=-c, bounds=bounds, method="highs")
    return res.fun if res.status == 0 else np.inf


@pytest.mark.parametrize("norm", ["inf", "1"])
def test_persistent_lp_matches_a_fresh_solve(norm):
    rng = np.random.default_rng(7)
    d = 30
    x0 = rng.uniform(size=d)
    l, u = -x0, 1 - x0
    units = rng.normal(size=(12, d))
    gaps = rng.uniform(0.05, 1.0, size=12)
    lp = LeafLP(norm, l, u)
    for _ in range(40):  # rows asked for, dropped and asked for again, in both orientations
        chosen = rng.choice(12, size=int(rng.integers(1, 6)), replace=False)
        sign = rng.choice([-1.0, 1.0], size=len(chosen))
        A, c = sign[:, None] * units[chosen], sign * gaps[chosen] - 0.01
        radius = rng.uniform(0.05, 0.6)
        lo, hi = np.maximum(l, -radius), np.minimum(u, radius)
        value, delta, y = lp.solve(A, c, lo, hi) if norm == "inf" else lp.solve(A, c)
        truth = _fresh(A, c, lo if norm == "inf" else l, hi if norm == "inf" else u, norm)
        if not np.isfinite(truth):
            assert delta is None
            continue
        assert value == pytest.approx(truth, rel=1e-7, abs=1e-9)
        assert (y >= 0).all()
        if norm == "inf":
            assert (delta >= lo - 1e-9).all() and (delta <= hi + 1e-9).all()
            assert (A @ delta - value >= c - 1e-7).all()
            assert y.sum() == pytest.approx(1.0, rel=1e-6)
        else:
            assert (A @ delta >= c - 1e-7).all() and np.abs(delta).sum() == pytest.approx(truth, rel=1e-7, abs=1e-9)


@pytest.mark.parametrize("norm", ["inf", "1"])
def test_leaf_bound_is_sound_and_tight_with_a_shared_lp(norm):
    """solve_leaf with one LP shared across problems of the same box: its certified lower bound
    is never above linprog's optimum of min ||delta|| and meets it (to 1e-6) when a point is
    found."""
    rng = np.random.default_rng(11)
    d = 20
    x0 = rng.uniform(size=d)
    l, u = -x0, 1 - x0
    units = rng.normal(size=(8, d))
    lp = LeafLP(norm, l, u)
    for _ in range(15):
        chosen = rng.choice(8, size=int(rng.integers(1, 5)), replace=False)
        A, c = units[chosen], rng.uniform(0.01, 0.5, size=len(chosen))
        leaf = solve_leaf(A, c, l, u, norm, lp=lp)
        if norm == "1":
            truth = _fresh(A, c, l, u, "1")
        else:  # min t  s.t.  A delta >= c,  |delta| <= t, in the box
            cost = np.append(np.zeros(d), 1.0)
            rows = np.vstack([np.hstack([-A, np.zeros((len(A), 1))]),
                              np.hstack([np.eye(d), -np.ones((d, 1))]), np.hstack([-np.eye(d), -np.ones((d, 1))])])
            res = linprog(cost, A_ub=rows, b_ub=np.concatenate([-c, np.zeros(2 * d)]),
                          bounds=np.column_stack([np.append(l, 0), np.append(u, np.inf)]), method="highs")
            truth = res.fun if res.status == 0 else np.inf
        assert leaf.lower <= truth * (1 + 1e-9) + 1e-12
        if leaf.delta is not None:
            assert leaf.lower == pytest.approx(truth, rel=1e-6, abs=1e-9)
