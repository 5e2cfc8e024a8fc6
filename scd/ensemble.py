"""What every voting ensemble of this package shares, the SCD estimators and the baselines in
:mod:`eval.baselines`: the outputs and the choice of members (:class:`VoteOutputs`), binary
targets, the base seed, the devices to train on, and a ``fit`` that fails without losing the
previous model."""

from __future__ import annotations

import copy
import functools
from numbers import Integral
from typing import Any

import numpy as np
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted

from ._device import resolve_devices

__all__ = ["VoteOutputs", "base_seed", "binary_targets", "check_member", "fit_or_keep", "fitted_names",
           "member_indices", "resolve_devices"]


def member_indices(indices: Any, n_members: int) -> np.ndarray:
    """``indices`` (an int, a range or a sequence) as a non-empty int64 array of distinct
    member positions in ``[0, n_members)``; ``ValueError`` naming the problem otherwise."""
    idx = np.atleast_1d(np.asarray(list(indices) if isinstance(indices, range) else indices))
    if (idx.ndim != 1 or len(idx) == 0 or idx.dtype.kind not in "iu" or idx.min() < 0 or idx.max() >= n_members
            or len(np.unique(idx)) != len(idx)):
        raise ValueError(f"members must be distinct integers in [0, {n_members}), got {indices!r}.")
    return idx.astype(np.int64)


def check_member(member: Any, n_members: int) -> int | None:
    """``member`` as an int in ``[0, n_members)``, or None for the whole ensemble;
    ``ValueError`` naming the problem otherwise."""
    if member is None:
        return None
    if isinstance(member, bool) or not isinstance(member, Integral) or not 0 <= member < n_members:
        raise ValueError(f"member must be an integer in [0, {n_members}) or None, got {member!r}.")
    return int(member)


def fitted_names(estimator: Any) -> list[str]:
    """The learned attributes of ``estimator``: public names ending in ``_``."""
    return [k for k in vars(estimator) if k.endswith("_") and not k.startswith("_")]


def base_seed(random_state: Any) -> int:
    """The ensemble's base seed: an int ``random_state`` itself, otherwise one drawn from it
    (recorded as ``seed_``, so even ``random_state=None`` can be reproduced)."""
    if isinstance(random_state, Integral):
        return int(random_state)
    return int(check_random_state(random_state).randint(np.iinfo(np.int32).max))


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
        before = {k: getattr(self, k) for k in fitted_names(self)}
        try:
            return fit(self, *args, **kwargs)
        except BaseException:
            for k in fitted_names(self):
                delattr(self, k)
            vars(self).update(before)
            raise

    return guarded


class VoteOutputs:
    """The outputs and members of a fitted binary voting ensemble, shared by the SCD estimators
    and the baselines.  Binary only: the estimator tags say so (and that an ensemble without a
    ``random_state`` is not deterministic).

    A class lists in ``_per_member`` its learned attributes with one entry per member (arrays
    or lists; the first one gives the member count) and provides
    ``_positive_fraction(X, member)``: float64 ``(n_samples,)``, the vote for ``classes_[1]`` of
    the whole ensemble (``member=None``) or of member ``member`` alone (already checked by
    :meth:`_checked_member`); it validates ``X``.
    """

    _per_member: tuple[str, ...] = ()

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        tags.non_deterministic = self.random_state is None  # the seed is drawn at fit time
        return tags

    def _n_members(self) -> int:
        return len(getattr(self, self._per_member[0]))

    def _checked_member(self, member: Any) -> int | None:
        """``member`` checked against this fitted ensemble (see :func:`check_member`)."""
        check_is_fitted(self)
        return check_member(member, self._n_members())

    def _fraction(self, X, member) -> np.ndarray:
        return self._positive_fraction(X, self._checked_member(member))

    def predict_proba(self, X, member: int | None = None) -> np.ndarray:
        """Class probabilities ``(n_samples, 2)`` in the order of ``classes_``: the fraction of
        votes for ``classes_[1]`` (hard voting) or the mean member probability (soft voting).
        With ``member=i``, the probabilities of member ``i`` alone."""
        p = self._fraction(X, member)
        return np.column_stack([1 - p, p])

    def decision_function(self, X, member: int | None = None) -> np.ndarray:
        """``predict_proba(X)[:, 1] - 0.5``, shape ``(n_samples,)``: positive means
        ``classes_[1]``; 0 (a tie) means ``classes_[0]``."""
        return self._fraction(X, member) - 0.5

    def predict(self, X, member: int | None = None) -> np.ndarray:
        """Labels ``(n_samples,)``: ``classes_[1]`` where its probability exceeds 0.5, so ties
        go to ``classes_[0]``; with ``member=i``, member ``i``'s own label."""
        positive = self._fraction(X, member) > 0.5
        return self.classes_[positive.astype(int)]

    def members(self, indices) -> Any:
        """A fitted estimator of the same class holding the members ``indices`` (an int, a range
        or a sequence) in that order, e.g. ``range(k)``: the first ``k`` members, for robustness
        against ensemble size.  Other learned attributes are copied."""
        check_is_fitted(self)
        idx = member_indices(indices, self._n_members())
        sub = type(self)(**{**self.get_params(), "n_votes": len(idx)})
        for name in fitted_names(self):
            value = getattr(self, name)
            if name not in self._per_member:
                value = copy.deepcopy(value)
            elif isinstance(value, np.ndarray):
                value = value[idx].copy()
            else:
                value = [self._copy_member(value[i]) for i in idx]
            setattr(sub, name, value)
        return sub

    def _copy_member(self, member: Any) -> Any:
        """The copy of one entry of a list in ``_per_member`` that :meth:`members` holds."""
        return copy.deepcopy(member)

    def member(self, index: int) -> Any:
        """A fitted one-member estimator of the same class holding member ``index`` (for
        attacking single members)."""
        return self.members([index])
