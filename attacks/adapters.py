"""Model adapters: what the oracle can ask a wrapped model, whatever kind of model it is.

An estimator-like object (``predict``/``predict_proba`` and optionally its own ``logits``,
``loss_gradient`` and ``logits_gradient``), a ``torch.nn.Module`` returning logits, or a plain
callable each become one :class:`ModelAdapter`, a set of functions of float32 rows.  The
adapters do no counting and no input checks: :class:`~attacks.oracle.Oracle` does both.
"""

from __future__ import annotations

import sys
import warnings
from typing import Any, Callable

import numpy as np

__all__ = ["OUTPUTS", "ModelAdapter", "adapt", "is_torch_module", "softmax"]

OUTPUTS = ("proba", "logits", "labels")
"""What a plain callable may return."""


class ModelAdapter:
    """What the oracle can ask a wrapped model: each entry is a function of float32 rows, or None.

    ``labels(x) -> (n,)`` model labels (encoded later), ``proba(x) -> (n, C)``,
    ``logits(x) -> (n, C)``, ``grad(x, y) -> (n, d)`` with ``y`` class indices (model labels
    when ``grad_takes_labels``: an estimator's own ``loss_gradient``), and
    ``vjp(x, w) -> (n, d)``, row ``i`` the gradient of ``sum_c w[i, c] * logits(x)[i, c]``.
    ``device`` is where a torch module's inputs go (None for other models).  ``segments(x0, x1,
    bounds)``, where the model has it (SCD ensembles), answers labels along line segments
    exactly and cheaply (:class:`scd.lines.Segments`).
    """

    def __init__(self, name: str, *, labels=None, proba=None, logits=None, grad=None, vjp=None, device=None,
                 grad_takes_labels: bool = False, segments=None):
        self.name = name
        self.segments = segments
        self.labels = labels
        self.proba = proba
        self.logits = logits
        self.grad = grad
        self.grad_takes_labels = grad_takes_labels
        self.vjp = vjp
        self.device = device


def is_torch_module(model: Any) -> bool:
    torch = sys.modules.get("torch")  # a torch module cannot exist unless torch is imported
    return torch is not None and isinstance(model, torch.nn.Module)


def _method(model: Any, name: str) -> Callable | None:
    fn = getattr(model, name, None)
    return fn if callable(fn) else None


def adapt(model: Any, output: str = "proba", device: Any = None,
          input_shape: tuple[int, ...] | None = None) -> ModelAdapter:
    """The adapter for ``model``; ``TypeError`` for anything that is not a model.

    ``input_shape`` (one input's shape, e.g. ``(C, H, W)``): a torch module or plain callable
    receives the flat rows reshaped to ``(n, *input_shape)``; estimator objects always get flat
    rows (scikit-learn's convention).
    """
    if is_torch_module(model):
        return _from_torch(model, device, input_shape)
    if callable(model) and not (_method(model, "predict") or _method(model, "predict_proba")):
        if input_shape is not None and len(input_shape) > 1:
            return _from_callable(_reshaping(model, tuple(input_shape)), output)
        return _from_callable(model, output)
    if _method(model, "predict") or _method(model, "predict_proba") or _method(model, "logits"):
        return _from_object(model)
    raise TypeError(f"Cannot wrap {type(model).__name__}: expected an estimator with predict_proba/"
                    "predict, a torch.nn.Module or a callable.")


def _from_object(model: Any) -> ModelAdapter:
    """An estimator-like object: ``predict``/``predict_proba`` and, optionally, its own
    ``logits(x)``, ``loss_gradient(x, y)`` (``y`` its labels, scikit-learn style) and
    ``logits_gradient(x, weights)`` (how surrogates and the neural baselines plug in)."""
    predict, proba, logits = _method(model, "predict"), _method(model, "predict_proba"), _method(model, "logits")
    return ModelAdapter(type(model).__name__, labels=predict, proba=proba, logits=logits,
                        grad=_method(model, "loss_gradient"), vjp=_method(model, "logits_gradient"),
                        grad_takes_labels=True, segments=_method(model, "segments"))


def _from_callable(fn: Callable, output: str) -> ModelAdapter:
    """A plain function of ``x`` returning probabilities, logits or labels (``output``)."""
    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {OUTPUTS} for a callable model, got {output!r}.")
    name = getattr(fn, "__name__", type(fn).__name__)
    return ModelAdapter(name, labels=fn if output == "labels" else None, proba=fn if output == "proba" else None,
                        logits=fn if output == "logits" else None)


def _reshaping(fn: Callable, shape: tuple[int, ...]) -> Callable:
    """``fn`` called on rows reshaped to ``(n, *shape)`` (keeps ``fn``'s name for messages)."""
    def shaped(x: np.ndarray) -> Any:
        return fn(x.reshape(len(x), *shape))

    shaped.__name__ = getattr(fn, "__name__", type(fn).__name__)
    return shaped


def _from_torch(module: Any, device: Any, input_shape: tuple[int, ...] | None = None) -> ModelAdapter:
    """A ``torch.nn.Module`` returning logits (see :class:`~attacks.autograd.TorchGradients`)."""
    from .autograd import TorchGradients

    if module.training:
        warnings.warn(f"{type(module).__name__} is in training mode (dropout/batch norm are active); "
                      "call model.eval() before attacking it.", stacklevel=4)
    torch_model = TorchGradients(module, device=device, input_shape=input_shape)
    return ModelAdapter(type(module).__name__, logits=torch_model.logits, grad=torch_model.loss_gradient,
                        vjp=torch_model.logits_gradient, device=torch_model.device)


def softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax of logits."""
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)
