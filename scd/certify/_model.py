"""A fitted SCD ensemble as plain float64 arrays, and its exact decision rule.

The certificates reason about the model as it really predicts (:mod:`scd._network`): a
hidden unit is ``h = (sign(w . x + b) + 1) / 2`` in ``{0, 1/2, 1}``, decided by the sign of
the exact pre-activation of the float32 input and weights; a vote's logit is
``z = v . h + c``; hard voting takes the fraction of votes with ``z > 0``, soft voting the
mean of ``sigmoid(z)``, and the ensemble predicts ``classes_[1]`` when that fraction exceeds
one half (ties go to ``classes_[0]``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["SignEnsemble"]

_EPS64 = np.finfo(np.float64).eps


@dataclass(frozen=True)
class SignEnsemble:
    """The weights of ``K`` sign networks of ``H`` units over ``d`` inputs, in float64.

    ``W (K, H, d)`` unit weights, ``b (K, H)`` unit biases, ``v (K, H)`` output weights,
    ``c (K,)`` output biases, ``soft``: soft (mean sigmoid) or hard (vote fraction) voting.
    The float32 weights of the estimator convert to float64 exactly.
    """

    W: np.ndarray
    b: np.ndarray
    v: np.ndarray
    c: np.ndarray
    soft: bool

    @classmethod
    def from_estimator(cls, model) -> SignEnsemble:
        """The ensemble of a fitted SCD estimator (``ValueError`` for any other model)."""
        from .._base import _BaseSCD
        from ..multiclass import OneVsRest

        if isinstance(model, OneVsRest):
            raise ValueError(
                "certified bounds (and the structure attack) are implemented for binary SCD ensembles (SCD01, "
                "SCDCE, SCD01BNN, SCDCEBNN, SCDClassifier), not yet for a one-vs-rest model of "
                f"{len(getattr(model, 'classes_', []))} classes. Its per-class ensembles (estimators_) can be "
                "bounded one at a time (class vs rest), which does not bound its multi-class label."
            )
        if not isinstance(model, _BaseSCD):
            raise ValueError(
                f"certified bounds are implemented for SCD ensembles (SCD01, SCDCE, SCD01BNN, SCDCEBNN, "
                f"SCDClassifier), not for {type(model).__name__}."
            )
        if not hasattr(model, "W1_"):
            raise ValueError(f"{type(model).__name__} is not fitted; fit or load it first.")
        W = np.ascontiguousarray(np.transpose(model.W1_, (0, 2, 1)), dtype=np.float64)
        return cls(W, model.b1_.astype(np.float64), model.w2_.astype(np.float64), model.b2_.astype(np.float64),
                   model.voting_ == "soft")

    @property
    def n_features(self) -> int:
        return self.W.shape[2]

    def pre(self, x: np.ndarray) -> np.ndarray:
        """Pre-activations ``(K, H)`` of one input ``x (d,)`` in float64."""
        return self.W @ x + self.b

    def rounding(self, x: np.ndarray, box: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        """``(K, H)`` bounds on how far a pre-activation computed here, or by the model's
        prediction, can be from the exact value at ``x`` or at any point of ``box``: the
        model decides a sign exactly unless the exact value is within float64 rounding of
        zero, and ``pre`` sums ``d`` float64 products.  Twice the classic ``gamma_{d+1}``
        bound, with the largest magnitude the box allows."""
        lo, hi = box
        reach = np.maximum(np.maximum(np.abs(lo), np.abs(hi)), np.abs(x))
        scale = np.abs(self.W) @ reach + np.abs(self.b)
        k = self.n_features + 2
        return 4 * k * _EPS64 * scale + np.finfo(np.float64).tiny

    def logits(self, h: np.ndarray) -> np.ndarray:
        """Vote logits ``(..., K)`` of hidden states ``h (..., K, H)``."""
        return (h * self.v).sum(axis=-1) + self.c

    def positive(self, z: np.ndarray) -> np.ndarray:
        """Whether the ensemble predicts ``classes_[1]`` from vote logits ``z (..., K)``."""
        if self.soft:
            return sigmoid(z).mean(axis=-1) > 0.5
        return (z > 0).mean(axis=-1) > 0.5

    def decide(self, pre: np.ndarray) -> int:
        """The class index (0/1) the estimator's rule gives pre-activations ``pre (K, H)``."""
        return int(self.positive(self.logits((np.sign(pre) + 1) / 2)))


def sigmoid(z: np.ndarray) -> np.ndarray:
    """The soft vote's probability of ``classes_[1]`` from a vote logit, in float64."""
    return 1.0 / (1.0 + np.exp(-z))
