"""What the baselines share beyond :mod:`scd.ensemble`: labels as indices, member seeds, and
the voting shell of the scikit-learn baselines.

``_VotingBaseline`` is the scikit-learn shell around a list of fitted binary members
(``estimators_``): subclasses train the members and say how one member scores a batch
(``_member_positive``); this module turns those scores into soft or hard votes, exactly as
the SCD estimators do (ties go to ``classes_[0]``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import validate_data

from scd.ensemble import VoteOutputs

__all__ = ["_VotingBaseline", "label_indices", "member_seeds"]


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
    member ``i`` as float64 of shape ``(n_samples,)``.  Other per-member arrays are listed in
    ``_per_member`` after ``estimators_``.  :meth:`members` shares the fitted members (they
    are only read).
    """

    _dtype: Any = np.float64
    _per_member: tuple[str, ...] = ("estimators_",)

    def _member_positive(self, X: np.ndarray, index: int) -> np.ndarray:
        """Abstract: member ``index``'s probability of ``classes_[1]`` (each subclass defines it)."""
        raise NotImplementedError

    def _positive_fraction(self, X, member: int | None) -> np.ndarray:
        """Soft: mean member probability of ``classes_[1]``; hard: fraction of members voting
        for it.  Members are added one at a time, in order (as ``RandomForestClassifier`` does)."""
        X = validate_data(self, X, reset=False, dtype=self._dtype)
        members = range(len(self.estimators_)) if member is None else [member]
        total = np.zeros(X.shape[0], dtype=np.float64)
        for i in members:
            p = self._member_positive(X, i)
            total += p if self.voting == "soft" else (p > 0.5)
        return total / len(members)

    def _copy_member(self, member: Any) -> Any:
        return member
