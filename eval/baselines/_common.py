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

__all__ = ["_TorchDifferentiable", "_VotingBaseline", "label_indices", "member_seeds"]


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


class _TorchDifferentiable:
    """``logits``, ``loss_gradient`` and ``logits_gradient`` of a baseline whose forward pass is a
    torch module: the class defines ``torch_module(member)`` (logits ``(n, 2)``) and ``_valid(X)``
    (validated rows in the module's input dtype); gradients come from
    :class:`~attacks.autograd.TorchGradients` on ``device_`` (CPU if the class has none)."""

    def torch_module(self, member: int | None = None) -> Any:
        """Abstract: the differentiable module of member ``member`` or of the whole ensemble."""
        raise NotImplementedError

    def _valid(self, X) -> np.ndarray:
        """Abstract: ``X`` validated against the fitted feature count, in the module's input dtype."""
        raise NotImplementedError

    def _gradients(self, member) -> Any:
        from attacks.autograd import TorchGradients

        return TorchGradients(self.torch_module(member), device=getattr(self, "device_", "cpu"))

    def logits(self, X, member: int | None = None) -> np.ndarray:
        """Output of :meth:`torch_module` for ``X``: ``(n_samples, 2)``."""
        gradients = self._gradients(member)
        return gradients.logits(self._valid(X))

    def loss_gradient(self, X, y, member: int | None = None) -> np.ndarray:
        """Gradient of the cross-entropy of :meth:`torch_module`'s output w.r.t. ``X``.

        ``y``: labels from ``classes_`` of shape ``(n_samples,)``, or one-hot ``(n_samples, 2)``.
        Row ``i`` of the result ``(n_samples, n_features)`` is the gradient of sample ``i``'s
        own loss (losses are summed, not averaged).
        """
        gradients = self._gradients(member)
        X = self._valid(X)
        return gradients.loss_gradient(X, label_indices(self.classes_, y, len(X)))

    def logits_gradient(self, X, weights, member: int | None = None) -> np.ndarray:
        """Gradient w.r.t. each row of ``sum_c weights[i, c] * logits[i, c]`` (:meth:`logits`),
        ``(n_samples, n_features)``: the margin gradient EAD and C&W need."""
        gradients = self._gradients(member)
        X = self._valid(X)
        w = np.asarray(weights, np.float64)
        if w.shape != (len(X), 2):
            raise ValueError(f"weights must have shape ({len(X)}, 2), got {tuple(w.shape)}.")
        return gradients.logits_gradient(X, w)


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
