"""Certified intervals for the random-forest baseline (:class:`eval.baselines.RandomForestEnsemble`).

* :func:`forest_milp`: the exact minimum distortion as a mixed-integer linear programme
  (Kantchelian, Tygar and Joseph 2016, "Evasion and hardening of tree ensemble classifiers"),
  solved by HiGHS through :func:`scipy.optimize.milp`, in L∞, L1 and L2.  On its time limit it
  reports HiGHS's dual bound as the lower bound and its incumbent, confirmed on the model, as
  the upper bound.
* :func:`clique_bound`: ART's ``RobustnessVerificationTreeModelsCliqueMethod`` (Chen et al.
  2019), a cheaper lower bound, fed with signed leaf scores (ART's own scikit-learn wrapper
  gives it class probabilities, with which its binary rule verifies everything).

``docs/certify_baselines.md`` states the formulation and why it is sound under floating point.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.optimize import Bounds, LinearConstraint, milp

from scd.certify import Bound

from ._inputs import distance, flips, float32_box, largest_f32_at_most, next_f32_above

__all__ = ["Forest", "clique_bound", "forest_milp"]

# the MILP optimum is trusted to this relative accuracy (HiGHS's gap is set 5 times tighter)
_SOLVER_REL = 5e-7
_U = 2.0**-53


@dataclass(frozen=True)
class _Tree:
    left: np.ndarray  # child indices, -1 at leaves
    right: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray  # float64, as the tree compares: x <= threshold goes left
    value: np.ndarray  # class-1 fraction of every node (the leaves' matter)


@dataclass(frozen=True)
class Forest:
    """The trees of a fitted :class:`~eval.baselines.RandomForestEnsemble` as arrays, and its
    voting: soft (mean class-1 fraction of the leaves ``> 0.5``) or hard (more than half of
    the trees with fraction ``> 0.5``)."""

    trees: tuple[_Tree, ...]
    soft: bool
    n_features: int

    @classmethod
    def from_estimator(cls, model) -> Forest:
        trees = []
        for est in model.estimators_:
            t = est.tree_
            counts = t.value[:, 0, :2]
            total = counts.sum(axis=1)
            value = counts[:, 1] / np.where(total == 0, 1.0, total)  # as RandomForestEnsemble._member_positive
            trees.append(_Tree(t.children_left.astype(np.int64), t.children_right.astype(np.int64),
                               t.feature.astype(np.int64), t.threshold.astype(np.float64), value))
        return cls(tuple(trees), model.voting == "soft", int(model.n_features_in_))

    def leaf_score(self, tree: _Tree, leaves: np.ndarray) -> np.ndarray:
        """What each leaf adds to the vote for ``classes_[1]``: its fraction (soft) or 0/1 (hard)."""
        v = tree.value[leaves]
        return v if self.soft else (v > 0.5).astype(np.float64)

    def slack(self) -> float:
        """A bound on the rounding of the model's float64 vote sum and its division (soft
        voting; hard votes are counted exactly)."""
        T = len(self.trees)
        return (T * T + 4 * T) * 2 * _U if self.soft else 0.0


def _leaf_ranges(tree: _Tree) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Leaves in depth-first order, and for every node the range ``[start, end)`` of its
    subtree's leaves in that order."""
    n = len(tree.left)
    start = np.zeros(n, np.int64)
    end = np.zeros(n, np.int64)
    leaves: list[int] = []
    stack = [(0, False)]
    while stack:
        node, done = stack.pop()
        if done:
            end[node] = len(leaves)
            continue
        start[node] = len(leaves)
        if tree.left[node] < 0:
            leaves.append(node)
            end[node] = len(leaves)
            continue
        stack.append((node, True))
        stack.append((int(tree.right[node]), False))
        stack.append((int(tree.left[node]), False))
    return np.array(leaves, np.int64), start, end


def forest_milp(model, forest: Forest, x: np.ndarray, label: int, norm: str, box: tuple[np.ndarray, np.ndarray],
                time_limit: float | None, start: float = 0.0) -> Bound:
    """The minimum distortion of one float32 input ``x`` that the forest predicts as class
    index ``label``.  ``time_limit=None``: no limit; ``start``: a known lower bound (e.g.
    :func:`clique_bound`), where the search begins.

    The MILP is solved on growing radii ``R``: every predicate that one coordinate alone cannot
    flip within ``R`` is fixed to ``x``'s side, which leaves a far smaller problem.  If its
    optimum is at most ``R``, it is the exact minimum; otherwise (or if it is infeasible) the
    minimum exceeds ``R`` and ``R`` grows (to the optimum found, at most 4 times).
    """
    t0 = time.perf_counter()
    deadline = np.inf if time_limit is None else t0 + time_limit
    milp_ = _ForestMILP(forest, x, label, norm, box)
    lower, upper, x_adv, complete, nodes = 0.0, np.inf, None, False, 0
    radius = max(1.5 * start, milp_.smallest_cost)
    while True:
        left = None if time_limit is None else deadline - time.perf_counter()
        if left is not None and left <= 0:
            break
        res = milp_.solve(-forest.slack() if forest.soft else 0.0, left, radius)
        nodes += int(getattr(res, "mip_node_count", 0) or 0)
        if res.x is not None:
            point = milp_.point(res.x)
            if not flips(model, point, label) and forest.soft:
                # a near-tie the float sum decided the other way: ask for a margin
                left = None if time_limit is None else max(0.0, deadline - time.perf_counter())
                strict = milp_.solve(forest.slack(), left, radius)
                point = None if strict.x is None else milp_.point(strict.x)
            if point is not None and flips(model, point, label):
                found = distance(point.astype(np.float64) - x, norm)
                if found < upper:
                    upper, x_adv = found, point
        whole = radius >= milp_.largest_cost  # nothing was fixed: the full problem
        if res.status == 2:  # no float32 input of the restricted box changes the prediction
            lower = np.inf if whole else max(lower, radius)
            complete = whole
        elif res.status == 0:
            best = milp_.value(res.fun)
            if best <= radius or whole:
                lower, complete = max(lower, milp_.scaled_down(res.fun)), True
            else:
                lower = max(lower, radius)
        else:  # stopped by the time limit: its dual bound, valid inside the radius
            lower = max(lower, min(radius, milp_.dual(res)))
            break
        if complete:
            break
        radius = min(upper, 4 * radius) if np.isfinite(upper) else 4 * radius
    lower = min(lower, upper)
    return Bound(lower, upper, "milp" if complete else "milp (time limit)", "milp" if x_adv is not None else "",
                 x_adv, complete, nodes, time.perf_counter() - t0)


class _ForestMILP:
    """Kantchelian et al.'s MILP for one input: binary predicate variables ``p = [x_f <= a]``
    per distinct (feature, float32 threshold) pair, ordered per feature, continuous leaf
    variables tied to them by the tree structure, and the per-feature distance as a linear
    function of the predicates (the distance to the nearest float32 input of each interval
    between consecutive thresholds is known in advance)."""

    def __init__(self, forest: Forest, x: np.ndarray, label: int, norm: str, box: tuple[np.ndarray, np.ndarray]):
        self.forest, self.x, self.label, self.norm = forest, x.astype(np.float32), label, norm
        lo32, hi32 = float32_box(*box)
        keys = []  # per tree: its split nodes, their features and float32 thresholds
        for tree in forest.trees:
            nodes = np.flatnonzero(tree.left >= 0)
            keys.append((nodes, tree.feature[nodes], largest_f32_at_most(tree.threshold[nodes])))
        feats = np.concatenate([k[1] for k in keys]) if keys else np.zeros(0, np.int64)
        thr = np.concatenate([k[2] for k in keys]) if keys else np.zeros(0, np.float32)
        pairs = np.unique(np.rec.fromarrays([feats, thr.astype(np.float64)]))  # sorted by feature, threshold
        self.p_feature = pairs.f0.astype(np.int64)
        self.p_threshold = pairs.f1.astype(np.float32)
        P = len(pairs)
        self.P = P
        lookup = {(int(f), float(a)): i for i, (f, a) in enumerate(zip(self.p_feature, self.p_threshold))}
        self.node_pred = [np.array([lookup[(int(f), float(a))] for f, a in zip(k[1], k[2])], np.int64) for k in keys]
        self.split_nodes = [k[0] for k in keys]

        # costs: per feature, g(c_j) for the interval j = number of predicates that are false
        g = (lambda c: c * c) if norm == "2" else (lambda c: c)
        coef = np.zeros(P)  # objective (L1, L2) or the L∞ row of each feature
        const = 0.0
        self.features = np.unique(self.p_feature)
        self.feature_rows: list[tuple[int, np.ndarray, np.ndarray, float]] = []
        lb_p, ub_p = np.zeros(P), np.ones(P)
        self.cross_cost = np.zeros(P)
        self.above = np.zeros(P, bool)  # thresholds at or above x's coordinate (x's side: true)
        for f in self.features:
            idx = np.flatnonzero(self.p_feature == f)
            a = self.p_threshold[idx]
            x0 = self.x[f]
            k0 = int(np.searchsorted(a, x0, side="left"))  # a[:k0] < x0 <= a[k0:]
            m = len(a)
            self.above[idx[k0:]] = True
            c = np.zeros(m + 1)
            c[k0 + 1:] = next_f32_above(a[k0:]).astype(np.float64) - np.float64(x0)
            c[:k0] = np.float64(x0) - a[:k0].astype(np.float64)
            gc = g(c)
            row = np.zeros(m)
            row_const = 0.0
            for i in range(m):  # predicate i separates intervals i and i + 1
                if i >= k0:  # above x0: false (x > a_i) costs the step to interval i + 1
                    delta = gc[i + 1] - gc[i]
                    row_const += delta
                    row[i] = -delta
                else:  # below x0: true (x <= a_i) costs the step down to interval i
                    row[i] = gc[i] - gc[i + 1]
            lb_p[idx[a < lo32[f]]] = 0.0
            ub_p[idx[a < lo32[f]]] = 0.0  # every input of the box is above it
            lb_p[idx[a >= hi32[f]]] = 1.0  # every input of the box is at most it
            self.feature_rows.append((int(f), idx, row, row_const))
            # what flipping predicate i alone costs: the nearest point on its other side
            cross = np.where(np.arange(m) >= k0, c[np.arange(m) + 1], c[np.arange(m)])
            self.cross_cost[idx] = cross
            coef[idx] += row
            const += row_const
        self.const = const if norm != "inf" else 0.0
        free = (lb_p == 0) & (ub_p == 1)
        self.smallest_cost = float(self.cross_cost[free].min()) if free.any() else 0.0
        self.largest_cost = float(self.cross_cost[free].max()) if free.any() else 0.0

        # leaves
        self.leaf_offset = []
        self.leaf_lists = []
        self.leaf_ranges = []
        L = P
        for tree in forest.trees:
            leaves, s, e = _leaf_ranges(tree)
            self.leaf_lists.append(leaves)
            self.leaf_ranges.append((s, e))
            self.leaf_offset.append(L)
            L += len(leaves)
        n = L + (1 if norm == "inf" else 0)
        self.n = n
        c_obj = np.zeros(n)
        if norm == "inf":
            c_obj[L] = 1.0
        else:
            c_obj[:P] = coef
        self.c = c_obj
        lb = np.zeros(n)
        ub = np.ones(n)
        lb[:P], ub[:P] = lb_p, ub_p
        if norm == "inf":
            ub[L] = np.inf
        self.bounds = Bounds(lb, ub)
        self.integrality = np.zeros(n)
        self.integrality[:P] = 1
        self._rows(L)

    def _rows(self, L: int) -> None:
        rows, cols, vals, lo, hi = [], [], [], [], []
        r = 0

        def add(cs, vs, low, high):
            nonlocal r
            rows.append(np.full(len(cs), r))
            cols.append(np.asarray(cs, np.int64))
            vals.append(np.asarray(vs, np.float64))
            lo.append(low)
            hi.append(high)
            r += 1

        for f, idx, _, _ in self.feature_rows:  # p ordered: x <= a_i implies x <= a_{i+1}
            for i, j in itertools.pairwise(idx):
                add([i, j], [1.0, -1.0], -np.inf, 0.0)
        score_cols, score_vals = [], []
        for tree, leaves, (s, e), off, nodes, preds in zip(self.forest.trees, self.leaf_lists, self.leaf_ranges,
                                                           self.leaf_offset, self.split_nodes, self.node_pred):
            add(off + np.arange(len(leaves)), np.ones(len(leaves)), 1.0, 1.0)
            for node, q in zip(nodes, preds):
                left, right = int(tree.left[node]), int(tree.right[node])
                lc = off + np.arange(s[left], e[left])
                add(np.append(lc, q), np.append(np.ones(len(lc)), -1.0), -np.inf, 0.0)  # left leaves: p true
                rc = off + np.arange(s[right], e[right])
                add(np.append(rc, q), np.append(np.ones(len(rc)), 1.0), -np.inf, 1.0)  # right leaves: p false
            score_cols.append(off + np.arange(len(leaves)))
            score_vals.append(self.forest.leaf_score(tree, leaves))
        self.score_row = r
        add(np.concatenate(score_cols), np.concatenate(score_vals), -np.inf, np.inf)  # set per solve
        if self.norm == "inf":
            for f, idx, row, row_const in self.feature_rows:  # r >= cost_f
                add(np.append(idx, L), np.append(-row, 1.0), row_const, np.inf)
        self.A = sparse.csr_array((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                                  shape=(r, self.n))
        self.row_lo, self.row_hi = np.array(lo), np.array(hi)

    def solve(self, margin: float, time_limit: float | None, radius: float = np.inf):
        """Solve with the vote for ``classes_[1]`` on the other side of half by ``margin``
        (negative: the relaxation that the lower bound needs), and every predicate that its
        coordinate alone cannot flip within ``radius`` fixed to ``x``'s side."""
        T = len(self.forest.trees)
        lo, hi = self.row_lo.copy(), self.row_hi.copy()
        if self.forest.soft:
            if self.label == 1:
                hi[self.score_row] = T / 2 - margin
            else:
                lo[self.score_row] = T / 2 + margin
        elif self.label == 1:
            hi[self.score_row] = T // 2
        else:
            lo[self.score_row] = T // 2 + 1
        lb, ub = self.bounds.lb.copy(), self.bounds.ub.copy()
        far = np.flatnonzero(self.cross_cost > radius)
        lb[far[self.above[far]]] = np.maximum(lb[far[self.above[far]]], 1.0)
        ub[far[~self.above[far]]] = np.minimum(ub[far[~self.above[far]]], 0.0)
        lb[:self.P] = np.minimum(lb[:self.P], ub[:self.P])
        options = {"disp": False, "mip_rel_gap": _SOLVER_REL / 5, "presolve": True}
        if time_limit is not None:
            options["time_limit"] = max(float(time_limit), 1e-3)
        return milp(self.c, integrality=self.integrality, bounds=Bounds(lb, ub),
                    constraints=LinearConstraint(self.A, lo, hi), options=options)

    def value(self, objective: float) -> float:
        """The distance of an objective value."""
        v = max(0.0, float(objective) + self.const)
        return float(np.sqrt(v)) if self.norm == "2" else v

    def scaled_down(self, objective: float) -> float:
        """A certified lower bound from an objective bound: lowered by the solver's accuracy."""
        v = max(0.0, (float(objective) + self.const) * (1 - _SOLVER_REL))
        return float(np.sqrt(v)) if self.norm == "2" else v

    def dual(self, res) -> float:
        """The lower bound of a solve stopped by its time limit (0 without a dual bound)."""
        dual = getattr(res, "mip_dual_bound", None)
        if dual is None or not np.isfinite(dual):
            return 0.0
        return self.scaled_down(dual)

    def point(self, sol: np.ndarray) -> np.ndarray:
        """The float32 input the predicate values of a solution describe: per feature, the
        nearest float32 value of its interval."""
        x = self.x.copy()
        p = sol[:self.P] > 0.5
        for f, idx, _, _ in self.feature_rows:
            a = self.p_threshold[idx]
            j = int(np.count_nonzero(~p[idx]))  # interval j: a[j-1] < x <= a[j]
            k0 = int(np.searchsorted(a, self.x[f], side="left"))
            if j > k0:
                x[f] = next_f32_above(a[j - 1])
            elif j < k0:
                x[f] = a[j]
        return x


def clique_bound(forest: Forest, x: np.ndarray, label: int, norm: str, *, search_steps: int = 10,
                 max_clique: int = 2, max_level: int = 2, eps_init: float = 0.1) -> float:
    """A lower bound on the minimum distortion by ART's clique method, on one input in
    ``[0, 1]^d`` (ART's requirement).  ART decides a binary forest by the sign of the sum of
    its leaf values, so each leaf gets ``fraction - 1/2`` (soft) or ``+-1/2`` (hard), shifted
    against the prediction by the rounding slack; ART's bisection reports the largest radius
    it verified (0 if none)."""
    from art.metrics import RobustnessVerificationTreeModelsCliqueMethod
    from art.metrics.verification_decisions_trees import Box, Interval, LeafNode, Tree

    T = len(forest.trees)
    shift = (forest.slack() / T + 4 * T * _U) * (1 if label == 1 else -1)
    trees = []
    for t, tree in enumerate(forest.trees):
        leaves = []
        stack = [(0, {})]
        while stack:
            node, box = stack.pop()
            if tree.left[node] < 0:
                score = forest.leaf_score(tree, np.array([node]))[0] - 0.5 - shift
                leaves.append(LeafNode(tree_id=t, class_label=label, node_id=node, box=Box(intervals=dict(box)),
                                       value=float(score)))
                continue
            f, a = int(tree.feature[node]), float(tree.threshold[node])
            old = box.get(f, Interval(-np.inf, np.inf))
            left = dict(box)
            left[f] = Interval(old.lower_bound, min(old.upper_bound, a))
            right = dict(box)
            right[f] = Interval(max(old.lower_bound, a), old.upper_bound)
            stack.append((int(tree.right[node]), right))
            stack.append((int(tree.left[node]), left))
        trees.append(Tree(class_id=None, leaf_nodes=leaves))

    class _Classifier:  # what the verifier reads of an ART tree classifier
        nb_classes = 2

        def get_trees(self):
            return trees

    verifier = RobustnessVerificationTreeModelsCliqueMethod(_Classifier(), verbose=False)
    p = {"inf": np.inf, "2": 2, "1": 1}[norm]
    bound, _ = verifier.verify(x[None].astype(np.float64), np.array([label]), eps_init=eps_init, norm=p,
                               nb_search_steps=search_steps, max_clique=max_clique, max_level=max_level)
    return float(bound)
