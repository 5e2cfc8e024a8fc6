"""What the baselines share: binary targets, member seeds, voting, and safe model files.

``_VotingBaseline`` is the scikit-learn shell around a list of fitted binary members
(``estimators_``): subclasses train the members and say how one member scores a batch
(``_member_positive``); this module turns those scores into soft or hard votes, exactly as
the SCD estimators do (ties go to ``classes_[0]``).  The bundle helpers check what a model
file holds before any of it reaches scikit-learn's compiled code.
"""

from __future__ import annotations

import os
from numbers import Integral
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from scd._members import VoteOutputs, binary_targets, member_indices

__all__ = [
    "_VotingBaseline", "base_seed", "binary_targets", "check_array", "describe", "json_params",
    "check_member", "label_indices", "load_classes", "member_seeds", "meta_number", "rebuild", "savable_classes",
]


def label_indices(classes: np.ndarray, y, n: int) -> np.ndarray:
    """0/1 indices of labels ``y``: values of ``classes`` ``(n,)`` or one-hot ``(n, 2)``
    (what the gradient methods of the neural baselines take)."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape == (n, 2):
        return np.argmax(y, axis=1).astype(np.int64)
    if y.shape != (n,):
        raise ValueError(f"y must have shape ({n},) or ({n}, 2), got {y.shape}.")
    idx = np.clip(np.searchsorted(classes, y), 0, 1)
    if not np.all(classes[idx] == y):
        raise ValueError(f"y holds labels that are not in classes_ {classes.tolist()}.")
    return idx.astype(np.int64)


def check_member(member, n: int) -> None:
    """``ValueError`` unless ``member`` is None or a member index in ``[0, n)``."""
    if member is not None and (not isinstance(member, Integral) or not 0 <= member < n):
        raise ValueError(f"member must be None or an integer in [0, {n}), got {member!r}.")


def base_seed(random_state) -> int:
    """The ensemble's base seed: an int ``random_state`` itself, otherwise one drawn from it."""
    if isinstance(random_state, Integral):
        return int(random_state)
    return int(check_random_state(random_state).randint(np.iinfo(np.int32).max))


def member_seeds(seed: int, n: int) -> np.ndarray:
    """Independent uint32 seeds for members ``0..n-1``, from ``(seed, member)`` alone (so a
    member's seed depends neither on ``n_jobs`` nor on how many members there are)."""
    entropy = seed % 2**64  # SeedSequence wants a non-negative int
    return np.array(
        [np.random.SeedSequence(entropy, spawn_key=(i,)).generate_state(1)[0] for i in range(n)],
        dtype=np.int64,
    )


class _VotingBaseline(VoteOutputs, ClassifierMixin, BaseEstimator):
    """Binary ensemble of fitted members ``estimators_`` combined by soft or hard voting.

    Subclasses set ``_dtype`` (what ``X`` is converted to), train ``estimators_`` in ``fit``
    and implement ``_member_positive(X, i)``: the probability of ``classes_[1]`` given by
    member ``i`` as float64 of shape ``(n_samples,)``.  Per-member arrays listed in
    ``_per_member`` are sliced by :meth:`member`.
    """

    _dtype: Any = np.float64
    _per_member: tuple[str, ...] = ()

    def _member_positive(self, X: np.ndarray, index: int) -> np.ndarray:
        """Abstract: member ``index``'s probability of ``classes_[1]`` (each subclass defines it)."""
        raise NotImplementedError

    def _check_member(self, index) -> int:
        n = len(self.estimators_)
        if isinstance(index, bool) or not isinstance(index, Integral) or not 0 <= index < n:
            raise ValueError(f"member must be an integer in [0, {n}), got {index!r}.")
        return int(index)

    def _positive_fraction(self, X, member: int | None) -> np.ndarray:
        """Soft: mean member probability of ``classes_[1]``; hard: fraction of members voting
        for it.  Members are added one at a time, in order (as ``RandomForestClassifier`` does)."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=self._dtype)
        members = range(len(self.estimators_)) if member is None else [self._check_member(member)]
        total = np.zeros(X.shape[0], dtype=np.float64)
        for i in members:
            p = self._member_positive(X, i)
            total += p if self.voting == "soft" else (p > 0.5)
        return total / len(members)

    def members(self, indices) -> "_VotingBaseline":
        """A fitted estimator of the same class holding the members ``indices`` in that order."""
        check_is_fitted(self)
        idx = member_indices(indices, len(self.estimators_))
        sub = type(self)(**{**self.get_params(), "n_votes": len(idx)})
        for name in ("classes_", "n_features_in_", "seed_", "fit_time_"):
            setattr(sub, name, getattr(self, name))
        sub.estimators_ = [self.estimators_[i] for i in idx]
        for name in self._per_member:
            setattr(sub, name, getattr(self, name)[idx].copy())
        return sub


# ---------------------------------------------------------------------- model files
def json_params(params: dict[str, Any]) -> dict[str, Any]:
    """``get_params()`` as JSON values: tuples become lists; a RandomState becomes None
    (the seed actually used is saved separately)."""
    out = {}
    for key, value in params.items():
        if isinstance(value, (np.integer, np.floating, np.bool_)):
            value = value.item()
        if isinstance(value, tuple):
            value = [v.item() if isinstance(v, np.generic) else v for v in value]
        elif not (value is None or isinstance(value, (bool, int, float, str))):
            value = None
        out[key] = value
    return out


def rebuild(cls: type, meta: dict[str, Any], where: str, tuples: tuple[str, ...] = ()) -> Any:
    """An unfitted ``cls`` with the parameters saved in ``meta``, checked by its own
    constraints; unknown or invalid parameters raise ``ValueError``."""
    params = meta.get("params")
    if not isinstance(params, dict):
        raise ValueError(f"{where} is corrupt: its metadata has no parameters")
    unknown = sorted(set(params) - set(cls().get_params()))
    if unknown:
        raise ValueError(f"{where} names unknown {cls.__name__} parameters {unknown}")
    params = {k: tuple(v) if k in tuples and isinstance(v, list) else v for k, v in params.items()}
    est = cls(**params)
    try:
        est._validate_params()
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where} is corrupt: {exc}") from None
    return est


def meta_number(meta: dict[str, Any], key: str, where: str, kind: type = int) -> Any:
    """``meta[key]`` as ``kind`` (int or float), or a ``ValueError`` naming the file."""
    value = meta.get(key)
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or (kind is int and not isinstance(value, int)):
        raise ValueError(f"{where} is corrupt: metadata {key!r} is {value!r}, expected {kind.__name__}")
    return kind(value)


def check_array(
    arrays: dict[str, np.ndarray], name: str, shape: tuple, kinds: str, where: str, *, finite: bool = False
) -> np.ndarray:
    """``arrays[name]`` after checking it exists, has ``shape`` (``None`` matches any length)
    and a dtype kind in ``kinds`` (e.g. ``"f"``, ``"iu"``); ``ValueError`` otherwise."""
    if name not in arrays:
        raise ValueError(f"{where} is incomplete: array {name!r} is missing")
    array = arrays[name]
    same = array.ndim == len(shape) and all(s is None or s == a for s, a in zip(shape, array.shape))
    if not same or array.dtype.kind not in kinds or array.dtype.fields is not None:
        raise ValueError(f"{where} is corrupt: {name} has shape {array.shape} and dtype {array.dtype}, "
                         f"expected shape {shape} and dtype kind {kinds!r}")
    if finite and not np.all(np.isfinite(array)):
        raise ValueError(f"{where} is corrupt: {name} holds NaN or infinite values")
    return array


def savable_classes(classes: np.ndarray) -> np.ndarray:
    """``classes_`` in a form ``save_bundle`` accepts: object arrays of strings become str
    arrays; other object labels cannot be saved without pickle."""
    if classes.dtype.hasobject:
        if not all(isinstance(c, str) for c in classes):
            raise ValueError("class labels of mixed or object types cannot be saved; use int or str labels.")
        return classes.astype(str)
    return classes


def load_classes(arrays: dict[str, np.ndarray], where: str) -> np.ndarray:
    """The saved ``classes_``: two distinct labels of a numeric, bool or string dtype."""
    classes = check_array(arrays, "classes", (2,), "biufUS", where)
    if classes[0] == classes[1]:
        raise ValueError(f"{where} is corrupt: the two classes are equal")
    return classes


def describe(path: str | os.PathLike) -> str:
    """How error messages name a model file."""
    return repr(os.fspath(path))
