"""Certified bounds against the true minimum distortion, found by exhaustive search.

The truth enumerates every face of the hyperplane arrangement of the hidden units (each unit
below, on, or above its hyperplane: {-1, 0, +1}^N), keeps the non-empty faces whose states
give the other class under the model's rule, and solves each face's convex problem exactly:
L∞ and L1 with scipy's HiGHS, L2 by enumerating the active sets of the KKT conditions.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.optimize import linprog

import scd
from scd.certify import SignEnsemble, certify
from scd.certify._bounds import Problem, certified_radius
from scd.certify._gram import JointCrossing, eigenvalue_bound

VARIANTS = [scd.SCD01, scd.SCDCE, scd.SCD01BNN, scd.SCDCEBNN]


def _rule(model, states):
    """Class index of hidden states ``(F, K, H)`` in {0, 1/2, 1}, the documented rule."""
    z = (states * model.w2_.astype(np.float64)).sum(-1) + model.b2_.astype(np.float64)
    if model.voting == "soft" or (model.voting == "auto" and isinstance(model, (scd.SCDCE, scd.SCDCEBNN))):
        frac = (1 / (1 + np.exp(-z))).mean(-1)
    else:
        frac = (z > 0).mean(-1)
    return (frac > 0.5).astype(int)


def _face_rows(W, b, sigma):
    """Face ``sigma`` as ``G x <= g`` rows (strict sides as closures) and equality rows."""
    G, g = [], []
    for w, bb, s in zip(W, b, sigma):
        if s >= 0:  # w.x + b >= 0
            G.append(-w), g.append(bb)
        if s <= 0:  # w.x + b <= 0
            G.append(w), g.append(-bb)
    return np.array(G), np.array(g)


def _nonempty(W, b, sigma, d):
    """Whether the face has a point: max s with strict rows >= s, ties == 0, in [0, 1]^d."""
    A_ub, b_ub, A_eq, b_eq = [], [], [], []
    for w, bb, s in zip(W, b, sigma):
        if s == 0:
            A_eq.append(np.append(w, 0.0)), b_eq.append(-bb)
        else:  # s (w.x + b) >= t
            A_ub.append(np.append(-s * w, 1.0)), b_ub.append(s * bb)
    cost = np.zeros(d + 1)
    cost[-1] = -1
    res = linprog(cost, A_ub=np.array(A_ub) if A_ub else None, b_ub=np.array(b_ub) if b_ub else None,
                  A_eq=np.array(A_eq) if A_eq else None, b_eq=np.array(b_eq) if b_eq else None,
                  bounds=[(0, 1)] * d + [(None, 1)], method="highs")
    return res.status == 0 and (-res.fun > 1e-9 or not A_ub)


def _closure_distance(G, g, x0, norm):
    """min ||x - x0|| over {G x <= g} within [0, 1]^d."""
    d = len(x0)
    if norm in ("inf", "1"):
        if norm == "inf":  # vars x, t
            A = [np.append(row, 0.0) for row in G]
            for i in range(d):
                e = np.zeros(d + 1); e[i], e[-1] = 1, -1; A.append(e)
                e = np.zeros(d + 1); e[i], e[-1] = -1, -1; A.append(e)
            bb = list(g) + [v for i in range(d) for v in (x0[i], -x0[i])]
            cost = np.zeros(d + 1); cost[-1] = 1
            res = linprog(cost, A_ub=np.array(A), b_ub=np.array(bb), bounds=[(0, 1)] * d + [(0, None)], method="highs")
        else:  # vars x, s with s >= |x - x0|
            A = [np.append(row, np.zeros(d)) for row in G]
            for i in range(d):
                e = np.zeros(2 * d); e[i], e[d + i] = 1, -1; A.append(e)
                e = np.zeros(2 * d); e[i], e[d + i] = -1, -1; A.append(e)
            bb = list(g) + [v for i in range(d) for v in (x0[i], -x0[i])]
            cost = np.r_[np.zeros(d), np.ones(d)]
            res = linprog(cost, A_ub=np.array(A), b_ub=np.array(bb), bounds=[(0, 1)] * d + [(0, None)] * d, method="highs")
        return res.fun if res.status == 0 else np.inf
    # L2: the projection of x0 on the polyhedron is the projection on the affine hull of
    # some set of at most d tight rows; try them all and keep the feasible ones
    rows = np.vstack([G, np.eye(d), -np.eye(d)])
    rhs = np.concatenate([g, np.ones(d), np.zeros(d)]) - rows @ x0  # in delta = x - x0
    best = np.inf
    for k in range(0, d + 1):
        for S in itertools.combinations(range(len(rows)), k):
            R = rows[list(S)]
            if k and np.linalg.matrix_rank(R) < k:
                continue
            delta = R.T @ np.linalg.solve(R @ R.T, rhs[list(S)]) if k else np.zeros(d)
            if (rows @ delta <= rhs + 1e-12).all():
                best = min(best, float(np.linalg.norm(delta)))
    return best


def _lower_cheap(W, b, x0, sigma, norm, orig):
    """A trivial lower bound for a face: its farthest changed unit's hyperplane distance."""
    q = {"inf": 1, "1": np.inf, "2": 2}[norm]
    pre = W @ x0 + b
    changed = sigma != orig
    if not changed.any():
        return 0.0
    return float((np.abs(pre[changed]) / np.linalg.norm(W[changed], ord=q, axis=1)).max())


def true_minimum(model, x0, norm):
    K, d, H = model.W1_.shape
    W = model.W1_.astype(np.float64).transpose(0, 2, 1).reshape(K * H, d)
    b = model.b1_.astype(np.float64).reshape(-1)
    label = int(model.predict(x0[None].astype(np.float32))[0] == model.classes_[1])
    x = x0.astype(np.float64)
    orig = np.sign(W @ x + b)
    faces = np.array(list(itertools.product((-1, 0, 1), repeat=K * H)))
    cls = _rule(model, ((faces + 1) / 2).reshape(-1, K, H))
    adv = faces[cls != label]
    cheap = np.array([_lower_cheap(W, b, x, s, norm, orig) for s in adv])
    best = np.inf
    for i in np.argsort(cheap):
        if cheap[i] >= best:
            break
        G, g = _face_rows(W, b, adv[i])
        value = _closure_distance(G, g, x, norm)
        if value < best and _nonempty(W, b, adv[i], d):
            best = value
    return best, label


def _problems(n_models=24):
    """Random sizes with at most 6 hidden units in all (3^6 faces for the truth)."""
    rng = np.random.default_rng(2026)
    configs = []
    for i in range(n_models):
        K = int(rng.integers(1, 6))
        H = int(rng.integers(1, 6 // K + 1))
        configs.append((VARIANTS[i % 4], int(rng.integers(1, 5)), K, H, 1000 + i))
    return configs


@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.__name__)
def test_bounds_against_exhaustive_truth(variant):
    """Per variant: 6 models x 3 inputs x 3 norms = 54 problems (216 in all), d <= 4, K <= 5,
    H <= 6 (at most 6 units in all)."""
    checked = exact_count = 0
    for _, d, K, H, seed in [c for c in _problems() if c[0] is variant]:
        rng = np.random.default_rng(seed)
        X = rng.uniform(size=(40, d)).astype(np.float32)
        y = (X.sum(1) + 0.2 * rng.normal(size=40) > d / 2).astype(int)
        model = variant(n_votes=K, hidden_nodes=H, n_iters=8, random_state=seed).fit(X, y)
        xs = rng.uniform(size=(3, d)).astype(np.float32)
        for norm in ("inf", "2", "1"):
            certificates = certify(model, xs, norm=norm, time_limit=0)
            for x, bound, certificate in zip(xs, certify(model, xs, norm=norm, time_limit=1.0), certificates):
                truth, label = true_minimum(model, x, norm)
                checked += 1
                context = (variant.__name__, norm, d, K, H, bound.record(), certificate.record(), truth)
                assert bound.lower <= truth * (1 + 1e-12) + 1e-12, context
                assert certificate.lower <= truth * (1 + 1e-12) + 1e-12, context
                if np.isfinite(bound.upper):
                    assert int(model.predict(bound.x_adv[None])[0] == model.classes_[1]) != label, context
                    assert np.all((bound.x_adv >= 0) & (bound.x_adv <= 1)), context
                    assert bound.upper >= truth - 1e-9, context
                if bound.exact:
                    exact_count += 1
                    assert bound.lower == truth or abs(bound.upper - truth) <= 1e-6 * max(1.0, truth), context
    assert checked == 54
    assert exact_count >= 0.75 * checked, exact_count  # the search closes most small problems


@pytest.mark.parametrize("norm, expected", [("2", np.sqrt(2) * 0.1), ("1", np.sqrt(2) * 0.1), ("inf", 0.1 / np.sqrt(2))])
def test_joint_crossing_bound_on_orthogonal_units(norm, expected):
    """Three one-unit votes along orthogonal axes, each 0.1 from its hyperplane; two must flip.
    Every vote flips alone at 0.1 (the sweep's radius), but flipping two at once takes
    sqrt(0.02) in L2 (and at least that in L1): the joint bound reaches it; in L∞ the truth
    is 0.1 and the bound, sqrt(0.02 / d), stays below it."""
    d = 4
    W = np.zeros((3, 1, d))
    W[np.arange(3), 0, np.arange(3)] = 1.0
    ensemble = SignEnsemble(W, np.full((3, 1), -0.4), np.ones((3, 1)), np.full(3, -0.5), soft=False)
    p = Problem(ensemble, np.full(d, 0.5), 1, np.zeros(d), np.ones(d), norm)
    radius = certified_radius(p)
    assert radius == pytest.approx(0.1, rel=1e-8)
    bound = JointCrossing(p).best(radius)
    assert bound == pytest.approx(expected, rel=1e-8)
    assert bound <= (0.1 if norm == "inf" else np.sqrt(0.02))


@pytest.mark.parametrize("label", [1, 0])
def test_soft_joint_crossing_bound_on_orthogonal_units(label):
    """Soft voting, three one-unit votes along orthogonal axes, each 0.1 from its hyperplane
    (logit +-0.5): the mean probability crosses one half only when two votes cross, so the
    truth is sqrt(0.02) in L2.  The probability to lose, 3 sigma(0.5) - 1.5, is 1.5 times one
    vote's whole reach, 2 sigma(0.5) - 1 (the slope bound, 1/4 per unit of logit, is above
    it), so the knapsack takes one and a half units: sqrt(0.015), above the sweep's 0.1."""
    d = 4
    W = np.zeros((3, 1, d))
    W[np.arange(3), 0, np.arange(3)] = 1.0
    sign = 1.0 if label == 1 else -1.0
    ensemble = SignEnsemble(sign * W, np.full((3, 1), -0.4 * sign), np.ones((3, 1)), np.full(3, -0.5), soft=True)
    p = Problem(ensemble, np.full(d, 0.5), label, np.zeros(d), np.ones(d), "2")
    assert int(ensemble.decide(ensemble.pre(p.x0))) == label
    radius = certified_radius(p)
    assert radius == pytest.approx(0.1, rel=1e-8)
    bound = JointCrossing(p).best(radius)
    assert bound == pytest.approx(np.sqrt(0.015), rel=1e-6)
    assert bound <= np.sqrt(0.02)


@pytest.mark.parametrize("n", [1, 5, 64, 65, 300])
def test_eigenvalue_bound_is_above_the_largest_eigenvalue(n):
    """The verified bound (Lanczos estimate, proven by a Cholesky factorisation) against
    LAPACK's eigenvalues: never below, at most a few per cent above."""
    rng = np.random.default_rng(n)
    rows = rng.normal(size=(n, 200)) + rng.normal(size=200) * rng.uniform(0, 0.5)  # shared component
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    gram = rows @ rows.T
    top = np.linalg.eigvalsh(gram)[-1]
    bound = eigenvalue_bound(gram)
    assert top <= bound <= 1.06 * max(top, 1.0)
