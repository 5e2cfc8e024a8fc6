"""The random-forest baseline: scikit-learn's ``RandomForestClassifier``, one vote per tree.

Trees are trained by ``RandomForestClassifier`` itself, so with ``voting="soft"`` (the
default) ``predict_proba`` equals the forest's own (the mean of the trees' leaf
frequencies, summed in tree order).  ``voting="hard"`` counts one vote per tree instead, the
way the paper counts votes.  A model file stores every tree's node table and leaf values as
arrays; loading checks that each tree is a well-formed binary tree over the saved features
before scikit-learn's compiled code walks it.
"""

from __future__ import annotations

import os
import time
from numbers import Integral

import numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.tree import DecisionTreeClassifier
from sklearn.tree._tree import NODE_DTYPE, TREE_LEAF, Tree
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from scd.ensemble import base_seed, binary_targets, fit_or_keep
from scd.persist import ModelFile, check_array, meta_number, read_model_file, rebuild, register_loader, save_estimator

from ._common import _VotingBaseline

__all__ = ["RandomForestEnsemble", "load"]

_KIND = "baseline-rf"
# parameters shared with every tree (and checked by RandomForestClassifier's own constraints)
_TREE_PARAMS = ("criterion", "max_depth", "min_samples_split", "min_samples_leaf", "max_features")


class RandomForestEnsemble(_VotingBaseline):
    """Random forest of ``n_votes`` trees with the ensemble interface of the SCD estimators.

    Binary classifier: ``fit`` accepts any two labels and raises ``ValueError`` otherwise.

    Parameters
    ----------
    n_votes : int, default=100
        Number of trees (``n_estimators``); each tree is one vote.
    criterion, max_depth, min_samples_split, min_samples_leaf, max_features, bootstrap
        As in :class:`~sklearn.ensemble.RandomForestClassifier` (same defaults).
    voting : {"soft", "hard"}, default="soft"
        "soft": mean tree probability of ``classes_[1]`` (``RandomForestClassifier``);
        "hard": fraction of trees predicting ``classes_[1]``.  A probability of exactly 0.5
        predicts ``classes_[0]``.
    random_state : int, RandomState or None
        Seed of the forest; an int gives the same trees for any ``n_jobs``.
    n_jobs : int or None
        Trees trained in parallel (joblib threads, as in scikit-learn).

    Attributes
    ----------
    estimators_ : list of DecisionTreeClassifier
        The trees, trained on 0/1 targets (1 = ``classes_[1]``).
    classes_ : ndarray of shape (2,)
    n_features_in_ : int
    seed_ : int
        The forest's seed actually used.
    fit_time_ : float
        Seconds spent training.
    """

    _parameter_constraints: dict = {
        "n_votes": [Interval(Integral, 1, None, closed="left")],
        **{name: RandomForestClassifier._parameter_constraints[name] for name in _TREE_PARAMS},
        "bootstrap": ["boolean"],
        "voting": [StrOptions({"soft", "hard"})],
        "random_state": ["random_state"],
        "n_jobs": [Integral, None],
    }
    _dtype = np.float32  # the tree code's input type

    def __init__(
        self,
        *,
        n_votes: int = 100,
        criterion: str = "gini",
        max_depth: int | None = None,
        min_samples_split: int | float = 2,
        min_samples_leaf: int | float = 1,
        max_features: str | int | float | None = "sqrt",
        bootstrap: bool = True,
        voting: str = "soft",
        random_state=None,
        n_jobs: int | None = None,
    ):
        self.n_votes = n_votes
        self.criterion = criterion
        self.max_depth = max_depth
        self.min_samples_split = min_samples_split
        self.min_samples_leaf = min_samples_leaf
        self.max_features = max_features
        self.bootstrap = bootstrap
        self.voting = voting
        self.random_state = random_state
        self.n_jobs = n_jobs

    def _tree_params(self) -> dict:
        return {name: getattr(self, name) for name in _TREE_PARAMS}

    @fit_or_keep
    def fit(self, X, y) -> "RandomForestEnsemble":
        """Train ``n_votes`` trees on ``X (n_samples, n_features)`` and binary ``y``."""
        self._validate_params()
        X, y = validate_data(self, X, y, dtype=np.float32)
        classes, y01 = binary_targets(y, type(self).__name__)
        seed = base_seed(self.random_state)
        forest = RandomForestClassifier(
            n_estimators=self.n_votes, bootstrap=self.bootstrap, random_state=seed, n_jobs=self.n_jobs,
            **self._tree_params(),
        )
        start = time.perf_counter()
        forest.fit(X, y01)
        self.fit_time_ = time.perf_counter() - start
        self.estimators_ = forest.estimators_
        self.classes_ = classes
        self.seed_ = seed
        return self

    def _member_positive(self, X: np.ndarray, index: int) -> np.ndarray:
        # X is already float32 and validated once for all trees, so this goes straight to the
        # tree's node table: each row's leaf, then that leaf's class-1 fraction (what
        # DecisionTreeClassifier.predict_proba computes, without its per-call checks and
        # temporaries, which dominate the many small batches attacks send)
        tree = self.estimators_[index].tree_
        counts = tree.value[:, 0, :2]
        total = counts.sum(axis=1)
        return (counts[:, 1] / np.where(total == 0, 1.0, total))[tree.apply(X)]

    def save(self, path: str | os.PathLike) -> None:
        """Save the fitted forest to ``path``: node tables as arrays plus JSON, no pickle."""
        check_is_fitted(self)
        states = [tree.tree_.__getstate__() for tree in self.estimators_]
        arrays = {
            "nodes": np.concatenate([s["nodes"] for s in states]),
            "values": np.concatenate([s["values"] for s in states]),
            "node_counts": np.array([s["node_count"] for s in states], dtype=np.int64),
            "max_depths": np.array([s["max_depth"] for s in states], dtype=np.int64),
            "tree_seeds": np.array([tree.random_state for tree in self.estimators_], dtype=np.int64),
        }
        save_estimator(path, _KIND, self, arrays, tree_max_features=int(self.estimators_[0].max_features_))


def load(path: str | os.PathLike) -> RandomForestEnsemble:
    """Load a :class:`RandomForestEnsemble` saved with ``save``; checks every tree and never
    unpickles."""
    return _from_file(read_model_file(path, _KIND))


def _from_file(file: ModelFile) -> RandomForestEnsemble:
    """The forest in a model file read by :func:`scd.persist.read_model_file`."""
    where, arrays = file.where, file.arrays
    est = rebuild(file, [RandomForestEnsemble])
    d = est.n_features_in_
    max_features = meta_number(file.header, "tree_max_features", where)
    if d < 1 or not 1 <= max_features <= d:
        raise ValueError(f"{where} is corrupt: {d} features, {max_features} per split")
    T = est.n_votes
    counts = check_array(arrays, "node_counts", (T,), "iu", where)
    depths = check_array(arrays, "max_depths", (T,), "iu", where)
    seeds = check_array(arrays, "tree_seeds", (T,), "iu", where)
    if np.any(counts < 1) or np.any(depths < 0) or np.any(depths >= counts):
        raise ValueError(f"{where} is corrupt: node counts or depths out of range")
    nodes = _node_table(arrays.get("nodes"), sum(int(c) for c in counts), where)  # no overflow
    values = check_array(arrays, "values", (len(nodes), 1, 2), "f", where, finite=True)
    est.estimators_ = []
    start = 0
    for t, count in enumerate(int(c) for c in counts):
        state = {"max_depth": int(depths[t]), "node_count": count,
                 "nodes": np.ascontiguousarray(nodes[start : start + count]),
                 "values": np.ascontiguousarray(values[start : start + count], dtype=np.float64)}
        start += count
        _check_tree(state, d, f"{where} tree {t}")
        est.estimators_.append(_fitted_tree(est, state, d, max_features, int(seeds[t])))
    return est


register_loader(_KIND, _from_file)


def _node_table(nodes, n_nodes: int, where: str) -> np.ndarray:
    """The saved node table in scikit-learn's ``NODE_DTYPE`` (the .npy copy has the same
    fields but drops the struct's trailing padding)."""
    fields = [] if not isinstance(nodes, np.ndarray) or nodes.dtype.names is None else [
        (name, nodes.dtype.fields[name][0]) for name in nodes.dtype.names]
    expected = [(name, NODE_DTYPE.fields[name][0]) for name in NODE_DTYPE.names]
    if fields != expected or nodes.shape != (n_nodes,):
        raise ValueError(f"{where} is corrupt: the node table does not match {n_nodes} nodes of this "
                         "scikit-learn's tree layout")
    table = np.zeros(n_nodes, dtype=NODE_DTYPE)
    for name in NODE_DTYPE.names:
        table[name] = nodes[name]
    return table


def _check_tree(state: dict, n_features: int, where: str) -> None:
    """Refuse node tables the compiled tree code could walk out of bounds or forever: every
    split node must test a real feature and point to two later nodes; leaves point nowhere."""
    nodes = state["nodes"]
    index = np.arange(len(nodes))
    left, right, feature = nodes["left_child"], nodes["right_child"], nodes["feature"]
    leaf = left == TREE_LEAF
    split = ~leaf
    ok = (
        np.all(right[leaf] == TREE_LEAF)
        and np.all((left[split] > index[split]) & (left[split] < len(nodes)))
        and np.all((right[split] > index[split]) & (right[split] < len(nodes)))
        and np.all((feature[split] >= 0) & (feature[split] < n_features))
        and np.all(np.isin(nodes["missing_go_to_left"], (0, 1)))
    )
    if not ok:
        raise ValueError(f"{where} is corrupt: its node table is not a valid binary tree")


def _fitted_tree(est: RandomForestEnsemble, state: dict, n_features: int, max_features: int,
                 seed: int) -> DecisionTreeClassifier:
    """A ``DecisionTreeClassifier`` in the state ``RandomForestClassifier.fit`` leaves it in."""
    tree = DecisionTreeClassifier(**est._tree_params(), random_state=seed)
    tree.tree_ = Tree(n_features, np.array([2], dtype=np.intp), 1)
    tree.tree_.__setstate__(state)
    tree.n_features_in_ = n_features
    tree.n_outputs_ = 1
    tree.classes_ = np.array([0.0, 1.0])
    tree.n_classes_ = np.int64(2)
    tree.max_features_ = max_features
    return tree
