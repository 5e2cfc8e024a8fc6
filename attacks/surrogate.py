"""Gradients for models that have none: the smooth relaxation of an SCD ensemble, and the
wrapper that pairs any surrogate's gradients with the real model's answers.

Sign networks, trees and label-only APIs give gradient attacks nothing to follow (every
library silently returns the input unchanged).  Here the gradient source is always explicit:

- :func:`smooth_scd` turns a fitted SCD ensemble into a differentiable ``torch.nn.Module``
  with the *same weights*: each hidden sign becomes ``tanh(pre / hidden_temperature)`` and,
  for hard-voting (0-1) ensembles, each vote's step ``[z > 0]`` becomes
  ``sigmoid(z / vote_temperature)``.  Its two logits are ``[log(1 - p), log(p)]`` with ``p``
  the smoothed positive-vote fraction, so ``softmax`` gives ``[1 - p, p]`` and the relaxation
  tends to the real ensemble as both temperatures go to 0.  This is the white-box *adaptive*
  attack on the defense: the attacker knows every weight.  A one-vs-rest model
  (:class:`scd.OneVsRest` of SCD ensembles) relaxes class by class: its logits are each
  class's relaxed log-odds, whose argmax tends to the model's label.
- :class:`SurrogateGradients` answers ``predict``/``predict_proba`` from the real model and
  ``logits``/``loss_gradient``/``logits_gradient`` from the surrogate (the smooth relaxation,
  a trained substitute from :mod:`attacks.substitute`, or any torch module); :class:`OneVsRestGradients`
  does the same for a one-vs-rest model of differentiable ensembles.  Wrapped in an
  :class:`~attacks.oracle.Oracle`, every label or score the attack asks for (and the final
  confirmation) comes from the real model and is counted; only the direction comes from the
  surrogate.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from scd import OneVsRest

from .autograd import TorchGradients

__all__ = ["OneVsRestGradients", "SmoothSCD", "SurrogateGradients", "is_sign_network", "smooth_scd"]

_PROBABILITY_FLOOR = 1e-12  # keeps log(p) finite where every vote agrees


class SmoothSCD(torch.nn.Module):
    """A differentiable relaxation of a fitted SCD ensemble (see :func:`smooth_scd`).

    Forward: ``x (n, d) -> logits (n, 2)`` with ``softmax(logits)[:, 1]`` the smoothed
    fraction of positive votes (hard voting) or the mean vote sigmoid (soft voting).  With
    ``n_classes=K`` the votes are a one-vs-rest model's, class by class (``V / K`` each), and
    the forward gives ``(n, K)`` logits: each class's smoothed log-odds ``log(p / (1 - p))``.
    """

    def __init__(self, W1: np.ndarray, b1: np.ndarray, w2: np.ndarray, b2: np.ndarray, *, soft_voting: bool,
                 hidden_temperature: float, vote_temperature: float, n_classes: int | None = None):
        super().__init__()
        V, d, H = W1.shape
        self.register_buffer("W1", torch.from_numpy(np.ascontiguousarray(W1.transpose(1, 0, 2).reshape(d, V * H))))
        self.register_buffer("b1", torch.from_numpy(np.ascontiguousarray(b1)))
        self.register_buffer("w2", torch.from_numpy(np.ascontiguousarray(w2)))
        self.register_buffer("b2", torch.from_numpy(np.ascontiguousarray(b2)))
        self.soft_voting = soft_voting
        self.hidden_temperature = float(hidden_temperature)
        self.vote_temperature = float(vote_temperature)
        self.n_classes = n_classes

    def vote_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Smoothed vote logits ``(n, V)``: hidden units ``(tanh(pre / T_h) + 1) / 2``."""
        V, H = self.b1.shape
        pre = (x @ self.W1).reshape(-1, V, H) + self.b1
        hidden = (torch.tanh(pre / self.hidden_temperature) + 1) / 2
        return (hidden * self.w2).sum(dim=-1) + self.b2

    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """The smoothed vote fraction ``(n,)`` of the positive class, or ``(n, K)`` of each class."""
        z = self.vote_logits(x)
        scale = 1.0 if self.soft_voting else self.vote_temperature
        votes = torch.sigmoid(z / scale)
        if self.n_classes is not None:
            votes = votes.reshape(len(x), self.n_classes, -1)
        return votes.mean(dim=-1).clamp(_PROBABILITY_FLOOR, 1 - _PROBABILITY_FLOOR)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.probabilities(x)
        if self.n_classes is not None:
            return torch.log(p) - torch.log1p(-p)
        return torch.stack([torch.log1p(-p), torch.log(p)], dim=1)


class OneVsRestGradients:
    """A one-vs-rest ``model``'s answers with gradients from its classes' own ensembles.

    ``predict``, ``predict_proba``, ``classes_`` and ``n_features_in_`` are the model's.  Its
    logits ``(n, n_classes)`` are each class's log-odds, ``z_c[:, 1] - z_c[:, 0]`` of that
    class's ensemble's two ``logits`` (the MLP, CNN and BNN baselines: the log of their soft
    vote), whose argmax is the class of highest probability; ``logits_gradient`` and
    ``loss_gradient`` (the cross-entropy of those logits) are sums of the classes'
    ``logits_gradient``.
    """

    def __init__(self, model: Any):
        ensembles = getattr(model, "estimators_", None) if isinstance(model, OneVsRest) else None
        if not ensembles or not all(callable(getattr(e, "logits_gradient", None)) and callable(getattr(e, "logits",
                                                                                                        None))
                                    for e in ensembles):
            raise TypeError(f"{type(model).__name__} is not a fitted one-vs-rest model of ensembles with gradients "
                            "(logits and logits_gradient).")
        self.model = model
        self.classes_ = model.classes_
        self.n_features_in_ = model.n_features_in_

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.model.predict(x)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return self.model.predict_proba(x)

    def logits(self, x: np.ndarray) -> np.ndarray:
        """Each class's log-odds ``(n, n_classes)``."""
        z = [np.asarray(e.logits(x), np.float64) for e in self.model.estimators_]
        return np.column_stack([c[:, 1] - c[:, 0] for c in z])

    def logits_gradient(self, x: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Gradient of ``sum_c weights[i, c] * logits[i, c]`` w.r.t. each row ``x[i]``."""
        w = np.asarray(weights, np.float64)
        k = len(self.classes_)
        if w.shape != (len(x), k):
            raise ValueError(f"weights must have shape ({len(x)}, {k}), got {w.shape}.")
        return sum(np.asarray(e.logits_gradient(x, np.column_stack([-w[:, c], w[:, c]])), np.float64)
                   for c, e in enumerate(self.model.estimators_)).astype(np.float32)

    def loss_gradient(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Gradient of each row's cross-entropy of :meth:`logits` for its label ``y[i]`` (a value
        of ``classes_``): the logits' gradient weighted by ``softmax(logits) - onehot(y)``."""
        classes = np.asarray(self.classes_)
        y = np.asarray(y)
        idx = np.clip(np.searchsorted(classes, y), 0, len(classes) - 1)
        if y.shape != (len(x),) or np.any(classes[idx] != y):
            raise ValueError(f"y must be {len(x)} labels among {classes.tolist()}, got shape {y.shape}.")
        z = self.logits(x)
        p = np.exp(z - z.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        p[np.arange(len(x)), idx] -= 1.0
        return self.logits_gradient(x, p)


def is_sign_network(model: Any) -> bool:
    """Whether ``model`` is an SCD ensemble, or a one-vs-rest model of them (what
    :func:`smooth_scd` relaxes)."""
    return hasattr(model, "W1_") or (isinstance(model, OneVsRest) and all(hasattr(e, "W1_")
                                                                          for e in model.estimators_))


def smooth_scd(model: Any, hidden_temperature: float = 0.1, vote_temperature: float = 0.1) -> SmoothSCD:
    """The smooth relaxation of a fitted SCD estimator (any of the four variants), or of a
    one-vs-rest model of them (``n_classes`` logits, one per class), in eval mode.

    ``hidden_temperature`` is in units of the hidden pre-activation ``x . w + b`` (unit-norm
    ``w``: about 0.3 for CIFAR-10 images); ``vote_temperature`` in units of a vote's logit
    (ignored for soft-voting ensembles, whose votes already output ``sigmoid(z)``).  Smaller
    is closer to the real ensemble but gives gradients on fewer inputs.
    """
    ovr = isinstance(model, OneVsRest)
    ensembles = getattr(model, "estimators_", []) if ovr else [model]
    for name in ("W1_", "b1_", "w2_", "b2_", "classes_"):
        if not ensembles or not all(hasattr(e, name) for e in ensembles):
            raise TypeError(f"smooth_scd needs a fitted SCD estimator or a fitted one-vs-rest model of them; "
                            f"{type(model).__name__} is not one.")
    for name, value in (("hidden_temperature", hidden_temperature), ("vote_temperature", vote_temperature)):
        if not (isinstance(value, (int, float)) and np.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a finite number > 0, got {value!r}.")
    weights = [np.concatenate([np.asarray(getattr(e, name), np.float32) for e in ensembles])
               for name in ("W1_", "b1_", "w2_", "b2_")]  # the classes' votes, one after the other
    module = SmoothSCD(*weights, soft_voting=ensembles[0].voting_ == "soft", hidden_temperature=hidden_temperature,
                       vote_temperature=vote_temperature, n_classes=len(ensembles) if ovr else None)
    return module.eval()


class SurrogateGradients:
    """The real ``model``'s answers with a differentiable ``surrogate``'s gradients.

    ``predict``, ``predict_proba``, ``classes_`` and ``n_features_in_`` are the model's;
    ``logits``, ``loss_gradient(x, y)`` and ``logits_gradient(x, weights)`` are the
    surrogate's (a torch module mapping ``(n, d)`` float32 rows to ``(n, n_classes)`` logits,
    columns in the model's class order).  ``source`` names the surrogate in reports.
    """

    def __init__(self, model: Any, surrogate: torch.nn.Module, source: str):
        if not (callable(getattr(model, "predict", None)) and hasattr(model, "classes_")):
            raise TypeError(f"the model must be a fitted classifier with predict and classes_, got "
                            f"{type(model).__name__}.")
        self.model = model
        self.surrogate = surrogate.eval()
        self.source = source
        self.classes_ = model.classes_
        self.n_features_in_ = getattr(model, "n_features_in_", None)
        self._gradients = TorchGradients(self.surrogate)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.model.predict(x)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return self.model.predict_proba(x)

    def logits(self, x: np.ndarray) -> np.ndarray:
        return self._gradients.logits(x).astype(np.float64)

    def logits_gradient(self, x: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Gradient of ``sum_c weights[i, c] * logits[i, c]`` w.r.t. each row ``x[i]``."""
        return self._gradients.logits_gradient(x, weights).astype(np.float32)

    def loss_gradient(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Gradient of each row's cross-entropy for its label ``y[i]`` (a value of ``classes_``, as
        for the baselines' ``loss_gradient``; sum over rows)."""
        classes = np.asarray(self.classes_)
        y = np.asarray(y)
        idx = np.clip(np.searchsorted(classes, y), 0, len(classes) - 1)
        if y.shape != (len(x),) or np.any(classes[idx] != y):
            raise ValueError(f"y must be {len(x)} labels among {classes.tolist()}, got shape {y.shape}.")
        return self._gradients.loss_gradient(x, idx).astype(np.float32)

    def agreement(self, x: np.ndarray) -> float:
        """Fraction of rows where the surrogate's argmax equals the model's label."""
        ours = np.asarray(self.classes_)[np.argmax(self.logits(x), axis=1)]
        return float(np.mean(ours == self.predict(x)))
