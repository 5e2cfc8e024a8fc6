"""Which test points an evaluation attacks, and which seed a substitute: chosen in one place.

Points are chosen among those every model classifies correctly (an attack on a point the
model already gets wrong measures accuracy, not robustness): the first ``n`` for ``scd
attack``, ``n`` drawn with the run's seed for ``scd eval``.  A substitute's seed set is drawn
from the remaining test points.  :func:`check_classes_match` refuses a dataset loaded with
other classes than the model predicts.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

__all__ = ["check_classes_match", "choose_points", "correctly_classified", "seed_set"]


def check_classes_match(model: Any, ds: Any) -> None:
    """``ValueError`` unless the dataset ``ds`` has as many classes as ``model`` predicts (labels
    ``0 .. k-1`` on both sides): a model trained with ``--classes 0 1 2`` is read with them."""
    k = len(model.classes_)
    if len(ds.classes) != k:
        raise ValueError(f"the model predicts {k} classes, but {ds.name} was loaded with {len(ds.classes)} "
                         f"({', '.join(map(str, ds.classes))}); pass the --classes it was trained with.")


def correctly_classified(model: Any, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Boolean mask of the rows ``model`` labels ``y``."""
    return np.asarray(model.predict(x)) == y


def choose_points(models: Sequence[Any], x: np.ndarray, y: np.ndarray, n: int, *, seed: int | None = None,
                  indices: Sequence[int] | None = None, target: Any = None) -> np.ndarray:
    """Indices of the rows to attack.

    ``indices`` are taken as given (checked against ``len(x)``).  Otherwise the pool is the rows
    every model classifies correctly (and, for a targeted attack, whose label is not
    ``target``): the first ``n`` of it when ``seed`` is None, else ``n`` drawn with ``seed``
    (sorted).
    """
    if indices is not None:
        idx = np.asarray(indices, np.int64)
        if idx.ndim != 1 or len(idx) == 0 or idx.min() < 0 or idx.max() >= len(x):
            raise ValueError(f"indices must be in [0, {len(x)}), got {list(indices)[:5]}...")
        return idx
    correct = np.ones(len(x), bool)
    for model in models:
        correct &= correctly_classified(model, x, y)
    pool = np.flatnonzero(correct)
    if target is not None:
        pool = pool[y[pool] != target]
    if len(pool) < n:
        raise ValueError(f"only {len(pool)} test points are classified correctly by every model; asked for {n}.")
    if seed is None:
        return pool[:n]
    return np.sort(np.random.default_rng([int(seed), 11]).choice(pool, n, replace=False))


def seed_set(n_test: int, attacked: np.ndarray, size: int, seed: int) -> np.ndarray:
    """``size`` test indices (sorted), not among the ``attacked`` ones, drawn with ``seed``."""
    rest = np.setdiff1d(np.arange(n_test), attacked)
    if len(rest) < 2:
        raise ValueError("no test points are left for the substitute's seed set.")
    return np.sort(np.random.default_rng([int(seed), 7]).permutation(rest)[:size])
