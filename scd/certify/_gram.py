"""A certified lower bound from the geometry of the units that must cross together.

The radius sweep lets every vote flip on its own.  One perturbation must flip enough votes at
once, and in each vote enough units to move its logit across zero.  If ``S`` is a set of units
that all cross, with unit directions ``a_u`` (unit L2 norm) and L2 distances ``c_u`` to their
hyperplanes, then ``a_u . delta >= c_u`` for all ``u`` in ``S`` gives, with ``y = c``,

    ||delta||_2 >= (c . c) / ||A_S^T c||_2 >= ||c||_2 / sqrt(lambda_max(A_S A_S^T)).

By Cauchy interlacing, ``lambda_max`` of any subset's Gram matrix is at most that of all the
units that could cross.  ``||c||^2`` is at least the sum, over the votes that must flip, of the
cheapest set of units that moves each vote's logit across zero (a covering knapsack, bounded
below by its LP relaxation with each unit's weight capped at what the vote needs; under soft
voting one knapsack over all votes covers the probability that must move, see
:func:`_soft_cost`).  On
networks whose units point in nearly orthogonal directions (CIFAR SCD01: largest Gram
eigenvalue 1.4 to 2 over hundreds of units) this grows like the square root of the number of
units that must cross, where the sweep sees only the largest one.  ``docs/certify.md`` has the
proof; it bounds L2 directly, L1 through ``||delta||_1 >= ||delta||_2`` and L∞ through
``||delta||_inf >= ||delta||_2 / sqrt(d)``.
"""

from __future__ import annotations

import functools

import numpy as np
from scipy.linalg import cho_factor, eigh
from scipy.sparse.linalg import ArpackNoConvergence, eigsh
from threadpoolctl import ThreadpoolController

from ._bounds import Problem
from ._model import sigmoid

__all__ = ["JointCrossing", "eigenvalue_bound", "one_blas_thread"]


class JointCrossing:
    """The bound of one problem, for the whole box or for a node of the branch and bound."""

    def __init__(self, p: Problem):
        self.p = p
        norms = np.linalg.norm(p.toward, axis=2)
        safe = np.where(norms > 0, norms, 1.0)
        self.directions = p.toward / safe[..., None]  # unit L2 norm
        self.c = np.maximum(p.gap - p.tau, 0.0) / safe  # L2 distance to the hyperplane, no box
        self.need, self.counting, self.required = _requirements(p)
        self._gram = (np.zeros(0, dtype=np.int64), np.zeros((0, 0)))

    def best(self, radius: float, upper: float = np.inf, steps: int = 8, rtol: float = 0.03) -> float:
        """The best ``min(U, within(U))`` over ``U``.  ``radius``: the sweep's certified
        radius (where the search starts); ``upper``: the distance of a known adversarial
        input, if any.

        ``within`` does not grow with ``U``, so the best ``U`` is where the two meet; it is
        found by growing ``U`` from ``radius`` by factors of two, then bisecting until the
        bracket is within ``rtol`` (at most ``steps`` evaluations, each one sound)."""
        if not np.isfinite(radius) or radius <= 0:
            return 0.0
        best, below, above = 0.0, radius, None  # within(below) >= below; within(above) < above
        U = radius
        for _ in range(steps):
            value = self.within(U)
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

    def within(self, upper: float, fixed: dict | None = None) -> float:
        """A lower bound on the distance of every input of the node ``fixed`` (unit -> "keep",
        "cross"; the whole box by default) that changes the prediction and lies
        closer than ``upper``; ``upper`` itself when there is none (fewer votes than needed
        can flip with the units that can cross within it)."""
        p = self.p
        if self.need <= 0:
            return 0.0
        required = self.required.copy()
        crossing = np.zeros(p.dist.shape, dtype=bool)  # fixed units that reach their hyperplane
        fixed_units = np.zeros_like(crossing)
        for (k, j), state in (fixed or {}).items():
            h = p.side[k, j] if state == "keep" else 1.0 - p.side[k, j]
            moved = p.model.v[k, j] * (h - p.h0[k, j])
            helps = -moved if p.label == 1 else moved
            required[k] += abs(p.model.v[k, j]) / 2 * p.undecided[k, j] - helps
            fixed_units[k, j] = True
            crossing[k, j] = state != "keep" and not p.undecided[k, j]
        reachable = np.isfinite(p.dist) & (p.dist <= upper)
        usable = p.favourable & reachable & ~p.undecided & self.counting[:, None] & ~fixed_units
        if p.model.soft:
            cost = _soft_cost(self.c, required, usable, p.model.v, p.label)
        else:
            costs = np.sort(_vote_costs(self.c, self.counting, required, usable, p.model.v))
            cost = float(costs[: self.need].sum()) if np.isfinite(costs[self.need - 1]) else np.inf
        if not np.isfinite(cost):
            return float(upper)
        total = (cost + float((self.c[crossing] ** 2).sum())) * (1 - 1e-9)
        if total <= 0.0:
            return 0.0
        bound = np.sqrt(total / eigenvalue_bound(self._gram_of(np.flatnonzero(usable | crossing))))
        if p.norm == "inf":
            bound /= np.sqrt(len(p.x0))
        return float(bound * (1 - 1e-9))

    def _gram_of(self, flat: np.ndarray) -> np.ndarray:
        """The Gram matrix of the units ``flat`` (sorted flat indices): a principal submatrix of
        the cached one, which grows to the union when ``flat`` is not inside it."""
        held, gram = self._gram
        if not np.isin(flat, held).all():
            held = np.union1d(held, flat)
            rows = self.directions.reshape(-1, self.directions.shape[-1])[held]
            gram = rows @ rows.T
            self._gram = held, gram
        where = np.searchsorted(held, flat)
        return gram[np.ix_(where, where)]


def _requirements(p: Problem) -> tuple[int, np.ndarray, np.ndarray]:
    """How many votes must flip, which votes count for the prediction, and per vote the logit
    change that flips it (undecided units, free to swing, already subtracted; <= 0: nothing).

    Soft voting: every vote counts, ``need`` is 1 (the sum of probabilities must cross), and
    the "requirement" is the vote's logit moved by the worst case of its undecided units and
    its rounding slack, signed so that the attack lowers it (see :func:`_soft_cost`)."""
    z = p.model.logits(p.h0)
    K = len(z)
    slack = p.z_slack
    swing = (np.abs(p.model.v) * p.undecided).sum(axis=1) / 2
    if p.model.soft:
        return 1, np.ones(K, dtype=bool), (z - slack if p.label == 1 else -(z + slack)) - swing
    if p.label == 1:
        counts = z - slack > 0
        need = int(counts.sum()) - K // 2
        margin = z - slack
    else:
        counts = ~(z + slack > 0)
        need = K // 2 + 1 - int((~counts).sum())
        margin = -(z + slack)
    return need, counts, margin - swing


def _vote_costs(c: np.ndarray, counting: np.ndarray, required: np.ndarray, usable: np.ndarray,
                v: np.ndarray) -> np.ndarray:
    """Per vote, a lower bound on ``sum c_u^2`` over the unit sets that flip it: the LP
    relaxation of the covering knapsack, each unit's weight ``|v_u|`` capped at what the vote
    needs; 0 for a counting vote that needs nothing, inf for votes that cannot flip or do not
    count."""
    costs = np.where(counting & (required <= 0), 0.0, np.inf)
    for k in np.flatnonzero(counting & (required > 0)):
        units = np.flatnonzero(usable[k])
        weight = np.minimum(np.abs(v[k, units]), required[k])  # no unit gives more than needed
        if weight.sum() < required[k]:
            continue
        square = c[k, units] ** 2
        order = np.argsort(square / weight, kind="stable")
        cum = np.cumsum(weight[order])
        last = min(int(np.searchsorted(cum, required[k])), len(cum) - 1)  # the unit completing the cover
        before = cum[last - 1] if last > 0 else 0.0
        fraction = min(1.0, (required[k] - before) / weight[order[last]])
        costs[k] = square[order[:last]].sum() + fraction * square[order[last]]
    return costs


def _soft_cost(c: np.ndarray, start: np.ndarray, usable: np.ndarray, v: np.ndarray, label: int) -> float:
    """Soft voting: a lower bound on ``sum c_u^2`` over the unit sets whose crossing can move
    the mean probability across one half (``inf`` if the usable units cannot).

    In the attack's direction (``s = +1`` for class 1, whose probabilities must fall), vote
    ``k``'s logit starts no better than ``s * start_k`` and moves by at most ``V_k``, the sum
    of ``|v_u|`` of its crossing units, so its probability moves by at most
    ``f_k(V_k) = s (sigma(s start_k) - sigma(s (start_k - V_k)))``.  The votes must move it by
    ``D = sum_k f-side probabilities - K / 2``.  By the mean value theorem ``f_k(V) <=
    slope_k V`` with ``slope_k`` the largest derivative of the sigmoid on the logit's reach,
    and ``f_k(V) <= F_k``, the vote's whole reach; ``min(F_k, slope_k sum |v_u|) <= sum
    min(F_k, slope_k |v_u|)``, so the crossing set covers ``D`` in the knapsack with weights
    ``min(F_k, slope_k |v_u|)``, whose LP relaxation (greedy by ``c_u^2 / weight``) bounds
    its cost."""
    K = len(start)
    reach = np.where(usable, np.abs(v), 0.0).sum(axis=1)
    # the attack lowers t = start (class 1) towards start - reach; mirrored for class 0
    hi, lo = start, start - reach
    p_hi, p_lo = sigmoid(hi), sigmoid(lo)
    if label == 1:
        need = float(p_hi.sum()) - K / 2
    else:  # class 0: sigma(-t) rises as t falls; the sum must pass K / 2
        need = K / 2 - float((1.0 - p_hi).sum())
    need -= 1e-12 * K  # the rounding of the float64 sums
    if need <= 0:
        return 0.0
    nearest = np.clip(0.0, lo, hi)  # where the sigmoid's slope is largest on [lo, hi]
    slope = sigmoid(nearest) * (1.0 - sigmoid(nearest)) * (1 + 1e-9)
    whole = (p_hi - p_lo) * (1 + 1e-9) + 1e-15
    weight = np.minimum(whole[:, None], slope[:, None] * np.abs(v))[usable]
    square = (c ** 2)[usable]
    if weight.sum() < need:
        return np.inf
    order = np.argsort(square / np.maximum(weight, 1e-300), kind="stable")
    cum = np.cumsum(weight[order])
    last = min(int(np.searchsorted(cum, need)), len(cum) - 1)
    before = cum[last - 1] if last > 0 else 0.0
    fraction = min(1.0, (need - before) / weight[order[last]])
    return float(square[order[:last]].sum() + fraction * square[order[last]])


def eigenvalue_bound(gram: np.ndarray) -> float:
    """A verified upper bound ``mu`` on the largest eigenvalue of the symmetric matrix ``gram``
    (at least 1, as for a Gram matrix of unit vectors).

    A Lanczos estimate (ARPACK) proposes ``mu``; a Cholesky factorisation of
    ``mu I - gram - s I`` with ``s = 1e-6 mu`` proves ``mu I - gram`` positive definite
    (Rump 2006: a floating-point Cholesky that succeeds on ``M - s I``, with ``s`` above
    ``gamma_{n+1} trace(M)``, about ``1e-9`` here, proves ``M`` positive definite).  A failed
    proof raises ``mu`` by 5 % and tries again.  ``n 2^-40 ||gram||_F`` more covers the
    rounding of ``gram`` itself.  The factorisation is about ten times cheaper than the
    eigenvalues."""
    n = len(gram)
    if n == 0:
        return 1.0
    with one_blas_thread():
        return _verified_top(gram, n)


def one_blas_thread():
    """A context with one BLAS thread.  The solves here are many small products and
    factorisations: threads buy nothing there, and on a busy two-core machine they cost up
    to sixty times (a threaded Cholesky of one 1500 x 1500 matrix took 0.07 to 4.5 s)."""
    return _pools().limit(limits=1, user_api="blas")


@functools.cache
def _pools() -> ThreadpoolController:
    """The process's thread pools, found once: finding them reads ``/proc/self/maps``, which
    cost more than the eigenvalue bound itself when done per call."""
    return ThreadpoolController()


def _verified_top(gram: np.ndarray, n: int) -> float:
    slack = n * 2.0 ** -40 * float(np.linalg.norm(gram))
    if n <= 64:
        top = float(eigh(gram, eigvals_only=True, subset_by_index=[n - 1, n - 1])[0])
        return max(top, 1.0) * (1 + 1e-9) + slack
    try:
        estimate = float(eigsh(gram, k=1, which="LA", return_eigenvectors=False, tol=1e-4)[0])
    except ArpackNoConvergence:
        estimate = float(np.abs(gram).sum(axis=1).max())  # Gershgorin: always above
    mu = max(estimate, 1.0) * 1.005
    eye = np.eye(n)
    for _ in range(40):
        try:
            cho_factor((mu * (1 - 1e-6)) * eye - gram, check_finite=False)
            return mu + slack
        except np.linalg.LinAlgError:
            mu *= 1.05
    return float(np.abs(gram).sum(axis=1).max()) + slack  # Gershgorin: always above
