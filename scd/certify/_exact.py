"""Exact minimum distortion by branch and bound over hidden-unit sign patterns.

A node fixes, for some hidden units, whether the perturbed input must lie strictly on their
original side ("keep"), strictly across ("cross"), or exactly on the hyperplane ("tie", where
the unit outputs 1/2); the three cover every input.  Its lower bound is the larger of two relaxations: the
convex problem of the fixed rows (:func:`scd.certify._leaf.solve_leaf`) and the radius sweep
of :func:`scd.certify._bounds.certified_radius` with the fixed units held to their sides
(which must still flip enough votes).  The minimiser of the fixed rows, pushed strictly inside
its cell and rounded to float32, is evaluated with the model's exact rule: if it changes the
prediction, it is an upper bound and the node is solved; otherwise the search branches on a
unit.  Units whose crossing distance exceeds the best upper bound cannot move within it and
are never branched on.  When the search ends, or its time runs out, the lower bound is the
smallest bound of any node left open or solved: sound whatever was pruned.
"""

from __future__ import annotations

import heapq
import time
from dataclasses import dataclass, field

import numpy as np

from ._bounds import Problem, certified_radius, changeable, logit_ranges
from ._halfspace import norm_of
from ._leaf import solve_leaf

__all__ = ["Search", "branch_and_bound", "evaluate", "greedy_upper"]

_F32_ULP = 2.0 ** -24


@dataclass
class Search:
    """The state of a search: bounds, the best adversarial point, and counters."""

    lower: float = 0.0
    upper: float = np.inf
    x_adv: np.ndarray | None = None
    nodes: int = 0
    complete: bool = False
    upper_method: str = ""
    open_bounds: list = field(default_factory=list)


def _margins(p: Problem) -> np.ndarray:
    """How far past a hyperplane a point is pushed so that float32 rounding of the input (up
    to half an ulp per coordinate) cannot move it back: ``(K, H)``."""
    reach = np.maximum(np.abs(p.lo), np.abs(p.hi)).max(initial=1.0)
    return 2 * np.abs(p.model.W).sum(axis=2) * reach * _F32_ULP + 2 * p.tau


def evaluate(p: Problem, delta: np.ndarray) -> tuple[np.ndarray, float, bool]:
    """``delta`` as a float32 input in the box: ``(x, distance, adversarial)`` with the
    model's exact rule."""
    x = np.clip((p.x0 + delta).astype(np.float32), p.lo.astype(np.float32), p.hi.astype(np.float32))
    x64 = x.astype(np.float64)
    adversarial = int(p.model.predict(x64[None])[0]) != p.label
    return x, float(norm_of(x64 - p.x0, p.norm)), adversarial


def _side(p: Problem) -> np.ndarray:
    return np.where(p.pre > 0, 1.0, 0.0)


def _ranges(p: Problem, fixed: dict, free: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit-state ranges of a node: fixed units at their state, free undecided units
    ``[0, 1]`` once swept in; and which units the sweep moves."""
    side = _side(p)
    lo_h, hi_h = p.h0.copy(), p.h0.copy()
    moving = free.copy()
    for (k, j), state in fixed.items():
        h = {"keep": side[k, j], "cross": 1.0 - side[k, j], "tie": 0.5}[state]
        lo_h[k, j] = hi_h[k, j] = h
        moving[k, j] = False
    return lo_h, hi_h, moving


def _rows(p: Problem, fixed: dict, mu: np.ndarray):
    """The fixed units as rows ``A delta >= c`` (closure, loosened by the rounding bound) and
    the margins that push the point strictly inside."""
    A, c, m = [], [], []
    for (k, j), state in fixed.items():
        if state in ("cross", "tie"):
            A.append(p.toward[k, j])
            c.append(p.gap[k, j] - p.tau[k, j])
            m.append(p.tau[k, j] + mu[k, j])
        if state in ("keep", "tie"):
            A.append(-p.toward[k, j])
            c.append(-p.gap[k, j] - p.tau[k, j])
            m.append(p.tau[k, j] + mu[k, j])
    d = len(p.x0)
    return (np.array(A).reshape(-1, d), np.array(c), np.array(m))


def _favourable(p: Problem) -> np.ndarray:
    """Units whose crossing moves their vote towards the other class."""
    change = p.model.v * ((1.0 - _side(p)) - _side(p))
    return change < 0 if p.label == 1 else change > 0


def greedy_upper(p: Problem, search: Search, deadline: float) -> None:
    """A first upper bound from the structure: cross single favourable units, cheapest first,
    then the cheapest favourable units together (adding one at a time), keeping every point
    that changes the prediction and the closest of them."""
    mu = _margins(p)
    cost = np.where(_favourable(p), p.dist, np.inf)
    H = p.dist.shape[1]
    units = [divmod(int(f), H) for f in np.argsort(cost, axis=None) if np.isfinite(cost.reshape(-1)[f])]

    def attempt(fixed):
        A, c, m = _rows(p, fixed, mu)
        leaf = solve_leaf(A, c, p.l, p.u, p.norm, search.upper, m)
        if leaf.delta is None:
            return False
        x, dist, adv = evaluate(p, leaf.delta)
        if adv and dist < search.upper:
            search.upper, search.x_adv, search.upper_method = dist, x, "structure"
        return adv

    for unit in units:
        if time.perf_counter() > deadline or p.dist[unit] >= search.upper:
            break
        attempt({unit: "cross"})
    fixed: dict = {}
    for unit in units:
        if time.perf_counter() > deadline or p.dist[unit] >= search.upper:
            return
        fixed[unit] = "cross"
        if attempt(fixed):
            return


def branch_and_bound(p: Problem, search: Search, deadline: float, rtol: float = 1e-9) -> None:
    """Best-first branch and bound; updates ``search`` in place (see the module docstring)."""
    mu = _margins(p)
    fav = _favourable(p)
    heap: list[tuple[float, int, dict]] = [(0.0, 0, {})]
    pushed = 1
    solved_min = np.inf
    while heap:
        if time.perf_counter() > deadline:
            break
        bound, _, fixed = heapq.heappop(heap)
        if bound >= search.upper * (1 - rtol):
            continue
        search.nodes += 1
        free = p.dist < search.upper
        lo_h, hi_h, moving = _ranges(p, fixed, free)
        sweep = certified_radius(p, lo_h, hi_h, moving)
        bound = max(bound, sweep)
        if bound >= search.upper * (1 - rtol):
            continue
        A, c, m = _rows(p, fixed, mu)
        leaf = solve_leaf(A, c, p.l, p.u, p.norm, search.upper, m)
        bound = max(bound, leaf.lower)
        if bound >= search.upper * (1 - rtol):
            continue
        states = None
        if leaf.delta is not None:
            x, dist, adv = evaluate(p, leaf.delta)
            if adv:
                solved_min = min(solved_min, bound)
                if dist < search.upper:
                    search.upper, search.x_adv, search.upper_method = dist, x, "branch-and-bound"
                continue
            states = p.model.pre(x.astype(np.float64)) > 0
        unit = _branch_unit(p, fixed, moving, fav, states)
        if unit is None:
            # every movable unit is fixed: a point inside the cell decides it; without one
            # (solver failure) the node stays open
            if leaf.delta is None or any(s == "tie" for s in fixed.values()):
                search.open_bounds.append(bound)
            continue
        cross_first = bool(fav[unit]) and (states is None or states[unit] == (_side(p)[unit] > 0))
        order = ("cross", "keep") if cross_first else ("keep", "cross")
        for state in (order[0], order[1], "tie"):
            heapq.heappush(heap, (bound, pushed, {**fixed, unit: state}))
            pushed += 1
    search.complete = not heap
    opened = [b for b, _, _ in heap] + search.open_bounds
    search.lower = float(min([search.upper, solved_min, *opened]))


def _branch_unit(p, fixed, moving, fav, states):
    """The next unit to fix: one whose state at the current point works against the attack,
    else the cheapest favourable unit, else the cheapest other movable unit."""
    cand = moving & np.isfinite(p.dist)
    if not cand.any():
        return None
    side = _side(p) > 0
    if states is not None:
        wrong = cand & ~fav & (states != side)
        if wrong.any():
            return _cheapest(p.dist, wrong)
    if (cand & fav).any():
        return _cheapest(p.dist, cand & fav)
    return _cheapest(p.dist, cand)


def _cheapest(dist, mask):
    flat = int(np.argmin(np.where(mask, dist, np.inf)))
    return divmod(flat, dist.shape[1])
