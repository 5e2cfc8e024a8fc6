"""Certified lower bounds, exact minimum distortion and structure-aware upper bounds for SCD
ensembles.

For an input ``x`` and the ensemble's prediction on it, the smallest perturbation (in L∞, L2
or L1, inside the input box) that changes the prediction lies in ``[lower, upper]``:

* ``lower`` is certified: no input closer than it changes the prediction, as the model really
  predicts (float32 inputs, exact signs), rounding included;
* ``upper`` is the distance of an input that the model confirms it classifies differently;
* ``exact`` when the two meet.

The pieces: per-unit crossing distances in closed form (:mod:`._halfspace`), the radius sweep
over them (:mod:`._bounds`), the convex problem of one sign pattern (:mod:`._leaf`), and the
branch and bound over patterns (:mod:`._exact`).  ``docs/certify.md`` states the rules and
their proofs.

>>> from scd.certify import certify
>>> result = certify(model, X, norm="inf", time_limit=10)
>>> result.lower, result.upper, result.exact
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ._bounds import Problem, certified_radius
from ._exact import Search, branch_and_bound, greedy_upper
from ._gram import JointCrossing, one_blas_thread
from ._halfspace import NORMS, crossing_distances
from ._model import SignEnsemble

__all__ = ["NORMS", "Bound", "SignEnsemble", "bound_sample", "certify", "check_inputs", "crossing_distances", "parse_norm",
           "structure_search"]


def parse_norm(norm) -> str:
    """``"inf"``, ``"2"`` or ``"1"`` from any spelling (``np.inf``, 2, ``"linf"``, ``"l2"``)."""
    key = str(norm).lower().removeprefix("l")
    key = {"infinity": "inf", "2.0": "2", "1.0": "1"}.get(key, key)
    if key not in NORMS:
        raise ValueError(f"norm must be one of inf, 2, 1; got {norm!r}.")
    return key


@dataclass
class Bound:
    """The interval of one sample: ``lower <= minimum distortion <= upper``.

    ``lower_method``: "misclassified" (the input is already misclassified: 0), "unit sweep"
    (the radius sweep over per-unit crossing distances), "joint crossing" (the units that must
    cross together: :mod:`._gram`), "branch-and-bound" (the search, complete or
    stopped at its time limit); ``upper_method``: "structure" (cheapest units
    first), "branch-and-bound", "misclassified", or "" (nothing found: ``upper`` is inf).
    ``x_adv``: the input at distance ``upper`` (float32), confirmed by ``model.predict``.
    """

    lower: float
    upper: float
    lower_method: str
    upper_method: str
    x_adv: np.ndarray | None = None
    complete: bool = False
    nodes: int = 0
    seconds: float = 0.0

    @property
    def exact(self) -> bool:
        """The bounds meet: ``upper - lower <= 1e-6 * max(1, upper)``, or ``lower`` is inf
        (proven: nothing in the box changes the prediction)."""
        if self.lower == np.inf:
            return True
        return bool(np.isfinite(self.upper) and self.upper - self.lower <= 1e-6 * max(1.0, self.upper))

    def record(self) -> dict:
        """JSON-ready fields (without the example)."""
        finite = lambda v: float(v) if np.isfinite(v) else None
        return {"lower": finite(self.lower), "upper": finite(self.upper), "exact": self.exact,
                "lower_method": self.lower_method, "upper_method": self.upper_method,
                "complete": self.complete, "nodes": self.nodes, "seconds": self.seconds}


def bound_sample(ensemble: SignEnsemble, x: np.ndarray, label: int, norm: str, box: tuple[np.ndarray, np.ndarray],
                 time_limit: float | None, confirm=None) -> Bound:
    """The interval for one input ``x (d,)`` (float32 values) predicted as class index
    ``label``.  ``time_limit=0`` gives the certificate alone (no search); ``None``, no limit.
    ``confirm(x_adv) -> bool`` checks a candidate on the real model."""
    with one_blas_thread():
        return _bound_sample(ensemble, x, label, norm, box, time_limit, confirm)


def _bound_sample(ensemble, x, label, norm, box, time_limit, confirm) -> Bound:
    start = time.perf_counter()
    p = Problem(ensemble, x.astype(np.float64), int(label), box[0], box[1], norm)
    radius = certified_radius(p)
    search = Search(lower=radius)
    joint = JointCrossing(p)
    floor, floor_upper = 0.0, None  # the joint-crossing bound, and the upper bound it was computed with
    if time_limit != 0 and np.isfinite(radius):
        deadline = start + (np.inf if time_limit is None else time_limit)
        greedy_upper(p, search, deadline)
        trusted = _confirm(search, confirm)
        nodes = joint if norm != "inf" else None  # in L∞ it rarely pays for its cost per node
        floor, floor_upper = joint.best(radius, search.upper), search.upper
        branch_and_bound(p, search, deadline, floor=floor, joint=nodes)
        trusted = _confirm(search, confirm) and trusted
        if not trusted:  # the search pruned against a point the model did not confirm
            search = Search(lower=radius)
    lower, method = radius, "unit sweep"
    if time_limit != 0 and search.lower > radius:
        lower, method = search.lower, "branch-and-bound"
    if floor_upper != search.upper:  # a closer point lets fewer units count
        floor = joint.best(radius, search.upper)
    if floor > lower:
        lower, method = floor, "joint crossing"
    if search.complete and not np.isfinite(search.upper):
        lower, method = np.inf, "branch-and-bound"  # nothing in the box changes the prediction
    lower = min(lower, search.upper)
    return Bound(lower, search.upper, method, search.upper_method, search.x_adv, search.complete, search.nodes,
                 time.perf_counter() - start)


def structure_search(ensemble: SignEnsemble, x: np.ndarray, label: int, norm: str,
                     box: tuple[np.ndarray, np.ndarray], time_limit: float) -> tuple[np.ndarray | None, float]:
    """A close input of the other class from the network structure alone (no queries): the
    cheapest votes and units to cross, the convex problem of their sign pattern, then local
    search (:func:`scd.certify._exact.greedy_upper`).  ``(x_adv, distance)`` as float32 in the
    box, judged by the exact rule only, or ``(None, inf)``: the caller confirms it."""
    with one_blas_thread():
        p = Problem(ensemble, np.asarray(x, np.float64), int(label), box[0], box[1], parse_norm(norm))
        search = Search()
        greedy_upper(p, search, time.perf_counter() + time_limit)
    return search.x_adv, search.upper


def _confirm(search: Search, confirm) -> bool:
    """Check the search's best point on the real model; drop it (and return False) if the
    model disagrees with the exact rule."""
    if search.x_adv is not None and confirm is not None and not confirm(search.x_adv):
        search.upper, search.x_adv, search.upper_method = np.inf, None, ""
        return False
    return True


def check_inputs(X, d: int, bounds) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``X`` as float32 ``(n, d)`` inside the box ``bounds``, and the box as float64 ``(d,)``
    arrays; ``ValueError`` naming the problem otherwise.  Every certified bound (the SCD
    ensembles' here, the baselines' in :mod:`eval.bounds`) checks its inputs with it."""
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[1] != d:
        raise ValueError(f"X must have shape (n_samples, {d}); got {X.shape}.")
    if X.dtype.kind not in "fiu" or not np.isfinite(X).all():
        raise ValueError("X must hold finite numbers (no NaN or inf).")
    lo = np.broadcast_to(np.asarray(bounds[0], dtype=np.float64), (d,)).copy()
    hi = np.broadcast_to(np.asarray(bounds[1], dtype=np.float64), (d,)).copy()
    if not (np.isfinite(lo).all() and np.isfinite(hi).all() and (lo <= hi).all()):
        raise ValueError(f"bounds must be finite with lower <= upper; got {bounds!r}.")
    X = X.astype(np.float32)
    if ((X < lo) | (X > hi)).any():
        raise ValueError("every row of X must lie inside bounds; clip the inputs or widen the bounds.")
    return X, lo, hi


def certify(model, X, y=None, *, norm="inf", bounds=(0.0, 1.0), time_limit: float | None = 10.0,
            progress=None) -> list[Bound]:
    """Bounds on the minimum distortion of every row of ``X`` for a fitted SCD ensemble.

    ``y``: true labels; rows the model misclassifies get ``lower = upper = 0``.  ``bounds``:
    the input box (scalars or per-feature arrays); every row must lie inside it.
    ``time_limit``: seconds of search per row after the certificate (0: certificate only).
    ``progress``: a callable given each finished :class:`Bound` (e.g. a tqdm update).
    """
    ensemble = SignEnsemble.from_estimator(model)
    norm = parse_norm(norm)
    X, lo, hi = check_inputs(X, ensemble.n_features, bounds)
    if time_limit is not None and time_limit < 0:
        raise ValueError(f"time_limit must be >= 0 or None; got {time_limit!r}.")
    predicted = model.predict(X)
    labels = (predicted == model.classes_[1]).astype(np.int64)
    truth = None if y is None else np.asarray(y)
    if truth is not None and truth.shape != (len(X),):
        raise ValueError(f"y must have shape ({len(X)},); got {truth.shape}.")

    def confirm_for(label):
        return lambda x: int(model.predict(x[None])[0] == model.classes_[1]) != label

    out = []
    for i, x in enumerate(X):
        if truth is not None and predicted[i] != truth[i]:
            bound = Bound(0.0, 0.0, "misclassified", "misclassified", x.copy(), True)
        else:
            bound = bound_sample(ensemble, x, labels[i], norm, (lo, hi), time_limit, confirm_for(labels[i]))
        out.append(bound)
        if progress is not None:
            progress(bound)
    return out
