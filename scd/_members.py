"""What every fitted voting ensemble shares, the SCD estimators and the baselines: choosing
members, the outputs, and a ``fit`` that fails without losing the previous model."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
from sklearn.utils.multiclass import check_classification_targets


def member_indices(indices: Any, n_members: int) -> np.ndarray:
    """``indices`` (an int, a range or a sequence) as a non-empty int64 array of distinct
    member positions in ``[0, n_members)``; ``ValueError`` naming the problem otherwise."""
    idx = np.atleast_1d(np.asarray(list(indices) if isinstance(indices, range) else indices))
    if (idx.ndim != 1 or len(idx) == 0 or idx.dtype.kind not in "iu" or idx.min() < 0 or idx.max() >= n_members
            or len(np.unique(idx)) != len(idx)):
        raise ValueError(f"members must be distinct integers in [0, {n_members}), got {indices!r}.")
    return idx.astype(np.int64)


def binary_targets(y: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """``(classes, y01)``: the two sorted labels of ``y`` and ``y`` as 0/1 (1 = ``classes[1]``),
    or scikit-learn's / a binary-only ``ValueError`` naming estimator ``name``."""
    check_classification_targets(y)
    classes = np.unique(y)
    if len(classes) != 2:
        kind = "only one class" if len(classes) < 2 else f"{len(classes)} classes"
        raise ValueError(
            f"Only binary classification is supported. {name} needs exactly 2 classes; y has {kind}."
        )
    return classes, (y == classes[1]).astype(np.int64)


def fit_or_keep(fit):
    """Decorator of an ensemble's ``fit``: when it raises (data refused, Ctrl-C), the estimator
    is left as it was, fitted or not.  Validation resets ``n_features_in_`` before the checks
    that may refuse the data, which would leave an old model that no longer predicts."""

    @functools.wraps(fit)
    def guarded(self, *args, **kwargs):
        fitted = lambda: [k for k in vars(self) if k.endswith("_") and not k.startswith("_")]  # noqa: E731
        before = {k: getattr(self, k) for k in fitted()}
        try:
            return fit(self, *args, **kwargs)
        except BaseException:
            for k in fitted():
                delattr(self, k)
            vars(self).update(before)
            raise

    return guarded


class VoteOutputs:
    """The outputs of a fitted binary voting ensemble, shared by the SCD estimators and the
    baselines.  A class provides ``_positive_fraction(X, member)`` (float64 ``(n_samples,)``:
    the vote for ``classes_[1]`` of the whole ensemble, or of member ``member`` alone; it
    validates ``X`` and checks that the ensemble is fitted) and ``members(indices)``.  Binary
    only: the estimator tags say so."""

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        return tags

    def predict_proba(self, X, member: int | None = None) -> np.ndarray:
        """Class probabilities ``(n_samples, 2)`` in the order of ``classes_``: the fraction of
        votes for ``classes_[1]`` (hard voting) or the mean member probability (soft voting).
        With ``member=i``, the probabilities of member ``i`` alone."""
        p = self._positive_fraction(X, member)
        return np.column_stack([1 - p, p])

    def decision_function(self, X, member: int | None = None) -> np.ndarray:
        """``predict_proba(X)[:, 1] - 0.5``, shape ``(n_samples,)``: positive means
        ``classes_[1]``; 0 (a tie) means ``classes_[0]``."""
        return self._positive_fraction(X, member) - 0.5

    def predict(self, X, member: int | None = None) -> np.ndarray:
        """Labels ``(n_samples,)``: ``classes_[1]`` where its probability exceeds 0.5, so ties
        go to ``classes_[0]``; with ``member=i``, member ``i``'s own label."""
        positive = self._positive_fraction(X, member) > 0.5
        return self.classes_[positive.astype(int)]

    def member(self, index: int) -> Any:
        """A fitted one-member estimator of the same class holding member ``index`` (for
        attacking single members)."""
        return self.members([index])
