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
  class's relaxed log-odds (:class:`OneVsRestLogits`), whose argmax tends to the model's label.
- :class:`SurrogateGradients` answers ``predict``/``predict_proba`` from the real model and
  ``logits``/``loss_gradient``/``logits_gradient`` from the surrogate (the smooth relaxation,
  a trained substitute from :mod:`attacks.substitute`, or any torch module).  Wrapped in an
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

__all__ = ["OneVsRestLogits", "SmoothSCD", "SurrogateGradients", "is_sign_network", "smooth_scd"]

_PROBABILITY_FLOOR = 1e-12  # keeps log(p) finite where every vote agrees


class SmoothSCD(torch.nn.Module):
    """A differentiable relaxation of a fitted SCD ensemble (see :func:`smooth_scd`).

    Forward: ``x (n, d) -> logits (n, 2)`` with ``softmax(logits)[:, 1]`` the smoothed
    fraction of positive votes (hard voting) or the mean vote sigmoid (soft voting).
    """

    def __init__(self, W1: np.ndarray, b1: np.ndarray, w2: np.ndarray, b2: np.ndarray, *, soft_voting: bool,
                 hidden_temperature: float, vote_temperature: float):
        super().__init__()
        V, d, H = W1.shape
        self.register_buffer("W1", torch.from_numpy(np.ascontiguousarray(W1.transpose(1, 0, 2).reshape(d, V * H))))
        self.register_buffer("b1", torch.from_numpy(np.ascontiguousarray(b1)))
        self.register_buffer("w2", torch.from_numpy(np.ascontiguousarray(w2)))
        self.register_buffer("b2", torch.from_numpy(np.ascontiguousarray(b2)))
        self.soft_voting = soft_voting
        self.hidden_temperature = float(hidden_temperature)
        self.vote_temperature = float(vote_temperature)

    def vote_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Smoothed vote logits ``(n, V)``: hidden units ``(tanh(pre / T_h) + 1) / 2``."""
        V, H = self.b1.shape
        pre = (x @ self.W1).reshape(-1, V, H) + self.b1
        hidden = (torch.tanh(pre / self.hidden_temperature) + 1) / 2
        return (hidden * self.w2).sum(dim=-1) + self.b2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.vote_logits(x)
        scale = 1.0 if self.soft_voting else self.vote_temperature
        p = torch.sigmoid(z / scale).mean(dim=1).clamp(_PROBABILITY_FLOOR, 1 - _PROBABILITY_FLOOR)
        return torch.stack([torch.log1p(-p), torch.log(p)], dim=1)


class OneVsRestLogits(torch.nn.Module):
    """The logits of a one-vs-rest model from differentiable binary ``modules`` (one per class,
    each mapping ``(n, d)`` rows to two logits ``[log(1 - p), log(p)]``, ``p`` the probability
    of its class): ``(n, n_classes)``, column ``i`` class ``i``'s log-odds ``log(p / (1 - p))``.
    Its argmax is the class of highest ``p``, the one-vs-rest label."""

    def __init__(self, modules: list[torch.nn.Module]):
        super().__init__()
        self.classes = torch.nn.ModuleList(modules)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = [m(x) for m in self.classes]
        return torch.stack([z[:, 1] - z[:, 0] for z in logits], dim=1)


def is_sign_network(model: Any) -> bool:
    """Whether ``model`` is an SCD ensemble, or a one-vs-rest model of them (what
    :func:`smooth_scd` relaxes)."""
    return hasattr(model, "W1_") or (isinstance(model, OneVsRest) and all(hasattr(e, "W1_")
                                                                          for e in model.estimators_))


def smooth_scd(model: Any, hidden_temperature: float = 0.1,
               vote_temperature: float = 0.1) -> SmoothSCD | OneVsRestLogits:
    """The smooth relaxation of a fitted SCD estimator (any of the four variants), in eval mode;
    of a one-vs-rest model of them, the :class:`OneVsRestLogits` of its classes' relaxations.

    ``hidden_temperature`` is in units of the hidden pre-activation ``x . w + b`` (unit-norm
    ``w``: about 0.3 for CIFAR-10 images); ``vote_temperature`` in units of a vote's logit
    (ignored for soft-voting ensembles, whose votes already output ``sigmoid(z)``).  Smaller
    is closer to the real ensemble but gives gradients on fewer inputs.
    """
    if isinstance(model, OneVsRest) and hasattr(model, "estimators_"):
        modules = [smooth_scd(e, hidden_temperature, vote_temperature) for e in model.estimators_]
        return _with_temperatures(OneVsRestLogits(modules).eval(), modules[0])
    for name in ("W1_", "b1_", "w2_", "b2_", "classes_"):
        if not hasattr(model, name):
            raise TypeError(f"smooth_scd needs a fitted SCD estimator; {type(model).__name__} has no {name}.")
    for name, value in (("hidden_temperature", hidden_temperature), ("vote_temperature", vote_temperature)):
        if not (isinstance(value, (int, float)) and np.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a finite number > 0, got {value!r}.")
    soft = model.voting_ == "soft"
    module = SmoothSCD(np.asarray(model.W1_, np.float32), np.asarray(model.b1_, np.float32),
                       np.asarray(model.w2_, np.float32), np.asarray(model.b2_, np.float32), soft_voting=soft,
                       hidden_temperature=hidden_temperature, vote_temperature=vote_temperature)
    return module.eval()


def _with_temperatures(module: OneVsRestLogits, first: SmoothSCD) -> OneVsRestLogits:
    """``module`` carrying the temperatures of its classes' relaxations (all equal), for reports."""
    module.hidden_temperature, module.vote_temperature = first.hidden_temperature, first.vote_temperature
    return module


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
