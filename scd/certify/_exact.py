"""Exact minimum distortion by branch and bound over hidden-unit sign patterns.

A node fixes, for some hidden units, whether the perturbed input lies on their original side
("keep") or across ("cross"), each including the hyperplane itself.  No child is made for a
unit exactly on its hyperplane (output 1/2): there the logit is the mean of its two sides',
so an input that changes the prediction with the unit tied still changes it with the unit at
its more adversarial side, which is what the child of that side assumes, and the tie lies in
that child's closure (``docs/certify.md`` has the proof).  A node's lower bound is the largest
of its relaxations: the convex problem of the fixed rows (:func:`scd.certify._leaf.solve_leaf`), the radius sweep
of :func:`scd.certify._bounds.certified_radius` with the fixed units held to their sides
(which must still flip enough votes), and the joint-crossing bound.  The minimiser of the fixed rows, pushed strictly inside
its cell and rounded to float32, is evaluated with the model's exact rule: if it changes the
prediction, it is an upper bound and the node is solved; otherwise the search branches on a
unit.  Units whose crossing distance exceeds the best upper bound cannot move within it and
are never branched on.  Every eighth node also dives (:func:`_dive`): it crosses the cheapest
plans of the votes its point has not flipped, for a closer adversarial point to prune
against.  When the search ends, or its time runs out, the lower bound is the smallest bound
of any node left open or solved: sound whatever was pruned.
"""

from __future__ import annotations

import heapq
import time
from dataclasses import dataclass, field

import numpy as np

from ._bounds import Problem, certified_radius
from ._gram import JointCrossing
from ._halfspace import norm_of
from ._leaf import LeafLP, solve_leaf

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


def _margins(p: Problem) -> tuple[np.ndarray, np.ndarray]:
    """How far past a hyperplane a point is pushed, ``(K, H)`` each: first a small push (the
    rounding band, and 1/64 of the float32 bound below), then, where float32 rounding of the
    input moved the point back across a fixed unit's hyperplane, the full bound (half an ulp
    per coordinate cannot move it back).  The small push keeps the point's distance within
    about 1e-7 of the cell's infimum."""
    reach = np.maximum(np.abs(p.lo), np.abs(p.hi)).max(initial=1.0)
    full = 2 * np.abs(p.model.W).sum(axis=2) * reach * _F32_ULP + 2 * p.tau
    return (full - 2 * p.tau) / 64 + 2 * p.tau, full


def _point(p: Problem, fixed: dict, margins: tuple, cutoff: float):
    """The node's leaf and its point: ``(leaf, x, distance, adversarial, signs)`` (``x`` and
    the rest ``None`` without a point; ``signs``: of the pre-activations at ``x``).  Retried
    with the full margin when rounding to float32 put the point outside the node's cell."""
    for mu in margins:
        A, c, m = _rows(p, fixed, mu)
        leaf = solve_leaf(A, c, p.l, p.u, p.norm, cutoff, m, _leaf_lp(p))
        if leaf.delta is None:
            return leaf, None, None, False, None
        x, dist, adv, signs = evaluate(p, leaf.delta)
        if adv or _realised(p, fixed, signs):
            break
    return leaf, x, dist, adv, signs


def _leaf_lp(p: Problem) -> LeafLP | None:
    """The problem's persistent leaf LP (L∞ and L1), made on first use."""
    if p.norm != "2" and p.leaf_lp is None:
        p.leaf_lp = LeafLP(p.norm, p.l, p.u)
    return p.leaf_lp


def _realised(p: Problem, fixed: dict, signs: np.ndarray) -> bool:
    """Whether every fixed unit is strictly on its required side at the point (``signs``:
    signs of the pre-activations there)."""
    return all(signs[u] == _required_sign(p, u, s) for u, s in fixed.items())


def _required_sign(p: Problem, unit: tuple, state: str) -> float:
    """The pre-activation sign that a "keep" or "cross" state asks of ``unit``."""
    return p.sign[unit] if state == "keep" else -p.sign[unit]


def evaluate(p: Problem, delta: np.ndarray) -> tuple[np.ndarray, float, bool, np.ndarray]:
    """``delta`` as a float32 input in the box: ``(x, distance, adversarial, signs)`` with the
    model's exact rule (``signs``: of the pre-activations at ``x``, computed once)."""
    x = np.clip((p.x0 + delta).astype(np.float32), p.lo.astype(np.float32), p.hi.astype(np.float32))
    x64 = x.astype(np.float64)
    pre = p.model.pre(x64)
    return x, float(norm_of(x64 - p.x0, p.norm)), p.model.decide(pre) != p.label, np.sign(pre)


def _ranges(p: Problem, fixed: dict, free: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit-state ranges of a node: fixed units at their state, free undecided units
    ``[0, 1]`` once swept in; and which units the sweep moves."""
    lo_h, hi_h = p.h0.copy(), p.h0.copy()
    moving = free.copy()
    for (k, j), state in fixed.items():
        h = p.side[k, j] if state == "keep" else 1.0 - p.side[k, j]
        lo_h[k, j] = hi_h[k, j] = h
        moving[k, j] = False
    return lo_h, hi_h, moving


def _rows(p: Problem, fixed: dict, mu: np.ndarray):
    """The fixed units as rows ``A delta >= c`` (closure, loosened by the rounding bound) and
    the margins that push the point strictly inside."""
    A, c, m = [], [], []
    for (k, j), state in fixed.items():
        sign = 1.0 if state == "cross" else -1.0
        A.append(sign * p.toward[k, j])
        c.append(sign * p.gap[k, j] - p.tau[k, j])
        m.append(p.tau[k, j] + mu[k, j])
    d = len(p.x0)
    return (np.array(A).reshape(-1, d), np.array(c), np.array(m))


def greedy_upper(p: Problem, search: Search, deadline: float, swaps: int = 6) -> None:
    """Upper bounds from the structure (the "structure" attack).

    Every vote that counts for the prediction gets a *plan*: its cheapest favourable units,
    added until crossing them all moves its logit to the other side.  Votes are taken in the
    order of their plans' cost (the largest crossing distance in the plan), as many as the
    vote needs; the convex problem of all their rows gives a point.  If the point does not
    change the prediction, units of the chosen votes that crossed against the attack are held
    on their side, and failing that one more vote is added.  Once a point is found, local
    search swaps the costliest chosen vote for the next one while that gives a closer point.
    """
    mu = _margins(p)
    fav = p.favourable
    plans, costs = _plans(p, fav)
    if not plans:
        return
    order = sorted(plans, key=costs.get)
    chosen = order[: min(len(order), _votes_needed(p))]
    rest = order[len(chosen):]
    held: set = set()

    def solve(votes):
        fixed = {unit: "cross" for k in votes for unit in plans[k]}
        fixed.update({unit: "keep" for unit in held if unit not in fixed})
        _, x, dist, adv, signs = _point(p, fixed, mu, search.upper)
        return None if x is None else (x, dist, adv, signs)

    found = False
    while time.perf_counter() < deadline:
        result = solve(chosen)
        if result is None:
            if not rest:
                return
            chosen = chosen[:-1] + [rest.pop(0)]  # the costliest vote cannot be had: try the next
            continue
        x, dist, adv, signs = result
        if adv:
            _offer(search, x, dist, "structure")
            found = True
            break
        against = [(k, j) for k in chosen for j in range(p.dist.shape[1])
                   if (k, j) not in held and not fav[k, j] and signs[k, j] != p.sign[k, j]]
        if against:
            held.update(against)
        elif rest:
            chosen = chosen + [rest.pop(0)]
        else:
            return
    for _ in range(swaps if found else 0):
        if not rest or time.perf_counter() > deadline:
            return
        trial = sorted(chosen, key=costs.get)[:-1] + [rest.pop(0)]
        result = solve(trial)
        if result is not None and result[2] and result[1] < search.upper:
            _offer(search, result[0], result[1], "structure")
            chosen = trial


def _offer(search: Search, x: np.ndarray, dist: float, method: str) -> None:
    if dist < search.upper:
        search.upper, search.x_adv, search.upper_method = dist, x, method


def _plans(p: Problem, fav: np.ndarray, states: np.ndarray | None = None) -> tuple[dict, dict]:
    """Per vote for the prediction: the cheapest units of ``fav`` whose crossing moves its
    logit across zero from the unit ``states`` (default: at ``x0``), and the plan's cost (its
    largest crossing distance)."""
    states = p.h0 if states is None else states
    z = p.model.logits(states)
    plans, costs = {}, {}
    for k in range(len(z)):
        counts = z[k] > 0 if p.label == 1 else z[k] <= 0
        if p.model.soft:
            counts = True
        if not counts:
            continue
        units = [j for j in np.argsort(p.dist[k]) if fav[k, j] and np.isfinite(p.dist[k, j])]
        moved, plan = z[k], []
        for j in units:
            moved += p.model.v[k, j] * ((1.0 - p.side[k, j]) - states[k, j])
            plan.append((k, int(j)))
            if (moved <= 0) if p.label == 1 else (moved > 0):
                plans[k], costs[k] = plan, float(p.dist[k, j])
                break
    return plans, costs


def _votes_needed(p: Problem, states: np.ndarray | None = None) -> int:
    """How many votes for the prediction must change under hard voting (a first guess for
    soft voting), from the unit ``states`` (default: at ``x0``)."""
    z = p.model.logits(p.h0 if states is None else states)
    K = len(z)
    positive = int((z > 0).sum())
    need = positive - K // 2 if p.label == 1 else K // 2 + 1 - positive
    return max(1, need)


def branch_and_bound(p: Problem, search: Search, deadline: float, rtol: float = 1e-9, floor: float = 0.0,
                     joint: JointCrossing | None = None, dive_every: int = 8) -> None:
    """Best-first branch and bound; updates ``search`` in place (see the module docstring).
    ``floor``: a lower bound on the minimum known from elsewhere; the search stops once its
    best point is that close.  ``joint``: the joint-crossing bound, a third relaxation of each
    node (L2 and L1)."""
    mu = _margins(p)
    fav = p.favourable
    heap: list[tuple[float, int, dict, tuple | None]] = [(0.0, 0, {}, None)]
    pushed = 1
    solved_min = np.inf
    while heap:
        if time.perf_counter() > deadline or search.upper - floor <= 1e-7 * max(1.0, search.upper):
            break
        bound, _, fixed, inherited = heapq.heappop(heap)
        if bound >= search.upper * (1 - rtol):
            continue
        search.nodes += 1
        free = p.dist < search.upper
        lo_h, hi_h, moving = _ranges(p, fixed, free)
        sweep = certified_radius(p, lo_h, hi_h, moving)
        bound = max(bound, sweep)
        if joint is not None and bound < search.upper * (1 - rtol):
            bound = max(bound, joint.within(search.upper, fixed))
        if bound >= search.upper * (1 - rtol):
            continue
        # a child whose new unit already lies on its side at the parent's point has the
        # parent's minimiser (more rows, the same optimum): no solve
        leaf, x, dist, adv, signs = inherited or _point(p, fixed, mu, search.upper)
        inside = x is not None and _realised(p, fixed, signs)
        states = None if signs is None else signs > 0
        bound = max(bound, leaf.lower)
        if bound >= search.upper * (1 - rtol):
            continue
        if adv:
            solved_min = min(solved_min, bound)
            _offer(search, x, dist, "branch-and-bound")
            continue
        if dive_every and search.nodes % dive_every == 1:
            _dive(p, search, fixed, signs, mu, deadline)
        unit = _branch_unit(p, fixed, moving, fav, states)
        if unit is None:
            # every movable unit is fixed: a point strictly inside the cell decides it; without
            # one (an empty interior, a solver failure, rounding) the node stays open
            if not inside:
                search.open_bounds.append(bound)
            continue
        cross_first = bool(fav[unit]) and (states is None or states[unit] == (p.side[unit] > 0))
        order = ("cross", "keep") if cross_first else ("keep", "cross")
        for state in order:  # no "tie" child: see the module docstring
            same = signs is not None and signs[unit] == _required_sign(p, unit, state)
            heapq.heappush(heap, (bound, pushed, {**fixed, unit: state}, (leaf, x, dist, adv, signs) if same else None))
            pushed += 1
    search.complete = not heap
    opened = [entry[0] for entry in heap] + search.open_bounds
    search.lower = float(min([search.upper, solved_min, *opened]))


def _dive(p: Problem, search: Search, fixed: dict, signs: np.ndarray | None, mu: tuple, deadline: float,
          depth: int = 12) -> None:
    """Look for a closer adversarial point below a node (an incumbent for the search):
    starting from the node's point, cross the cheapest plan of the counting votes that the
    point has not flipped (as :func:`greedy_upper` does from ``x0``), hold the units of those
    votes that crossed against the attack, and solve again, until the point is adversarial,
    the rows cannot be had below the best upper bound, or ``depth`` solves are spent."""
    if signs is None:
        return
    current = dict(fixed)
    for _ in range(depth):
        if time.perf_counter() > deadline:
            return
        states = (signs + 1) / 2  # 1/2 on a hyperplane
        allowed = p.favourable & (signs == p.sign)
        for unit in current:
            allowed[unit] = False
        plans, costs = _plans(p, allowed, states)
        order = sorted(plans, key=costs.get)
        if not order:
            return
        take = order[: _votes_needed(p, states)]
        added = {u: "cross" for k in take for u in plans[k]}
        added.update({(k, j): "keep" for k in take for j in range(p.dist.shape[1])
                      if (k, j) not in added and (k, j) not in current and not p.favourable[k, j]
                      and signs[k, j] != p.sign[k, j]})
        current.update(added)
        leaf, x, dist, adv, signs = _point(p, current, mu, search.upper)
        if x is None or leaf.lower >= search.upper:
            return
        if adv:
            _offer(search, x, dist, "branch-and-bound")
            return


def _branch_unit(p, fixed, moving, fav, states):
    """The next unit to fix: one whose state at the current point works against the attack,
    else the cheapest favourable unit, else the cheapest other movable unit."""
    cand = moving & np.isfinite(p.dist)
    if not cand.any():
        return None
    if states is not None:
        wrong = cand & ~fav & (states != (p.side > 0))
        if wrong.any():
            return _cheapest(p.dist, wrong)
    if (cand & fav).any():
        return _cheapest(p.dist, cand & fav)
    return _cheapest(p.dist, cand)


def _cheapest(dist, mask):
    flat = int(np.argmin(np.where(mask, dist, np.inf)))
    return divmod(flat, dist.shape[1])
