"""Attack a model you bring as an ONNX file: :class:`ONNXModel` runs it through onnxruntime.

onnxruntime executes the file's graph of standard operators and runs no Python code from it
(unlike a pickle or a TorchScript file), so a file from elsewhere is as safe to load as the
package's own model files.  The wrapper is a scikit-learn-style classifier on flat rows
(``predict``, ``predict_proba``, ``classes_``, ``n_features_in_``), so every label and score
attack takes it as it takes a trained ensemble; onnxruntime has no gradients, so the gradient
attacks need a surrogate (``scd attack --surrogate substitute``).

The input shape comes from the model: its one input must have a batch axis first and fixed
sizes after it, e.g. ``(batch, 1, 28, 28)``; rows are flattened in C order and reshaped back for
the model (:attr:`ONNXModel.input_shape_`).  Its one output holds logits ``(batch, k)`` (or one
logit ``(batch,)``/``(batch, 1)`` for class 1 of a binary problem), or probabilities with
``output="proba"``; the classes are ``0 .. k-1``.  Needs the ``onnx`` extra
(``pip install scd[onnx]``, which brings onnxruntime).
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

from attacks.adapters import softmax

__all__ = ["ONNXModel", "is_onnx_path"]

_DTYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64}


def is_onnx_path(path: str | os.PathLike) -> bool:
    """Whether ``path`` names an ONNX file (by its ``.onnx`` suffix)."""
    return os.fspath(path).lower().endswith(".onnx")


class ONNXModel:
    """A classifier in an ONNX file, run on the CPU by onnxruntime (see the module docstring).

    Parameters
    ----------
    path : str or path-like
        The ``.onnx`` file.
    output : {"logits", "proba"}, default="logits"
        What the model's output holds; :meth:`predict_proba` is its softmax for logits.
    """

    def __init__(self, path: str | os.PathLike, output: str = "logits"):
        if output not in ("logits", "proba"):
            raise ValueError(f"output must be 'logits' or 'proba', got {output!r}.")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"ONNX model {os.fspath(path)!r} not found.")
        try:
            import onnxruntime
        except ImportError:
            raise ImportError("loading an ONNX model needs onnxruntime: pip install 'scd[onnx]'.") from None
        try:
            session = onnxruntime.InferenceSession(os.fspath(path), providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own types for malformed files
            raise ValueError(f"{os.fspath(path)!r} is not a valid ONNX model: {exc}") from None
        inputs, outputs = session.get_inputs(), session.get_outputs()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ValueError(f"{os.fspath(path)!r}: a classifier needs one input and one output, it has "
                             f"{len(inputs)} and {len(outputs)}.")
        shape = list(inputs[0].shape)
        if len(shape) < 2 or not all(isinstance(s, int) and s >= 1 for s in shape[1:]):
            raise ValueError(f"{os.fspath(path)!r}: the input must be (batch, fixed sizes...), got {shape}.")
        if inputs[0].type not in _DTYPES:
            raise ValueError(f"{os.fspath(path)!r}: the input must be float or double, got {inputs[0].type}.")
        self.path = os.fspath(path)
        self.output = output
        self.input_shape_ = tuple(int(s) for s in shape[1:])
        self.n_features_in_ = math.prod(self.input_shape_)
        self._session = session
        self._input = inputs[0].name
        self._dtype = _DTYPES[inputs[0].type]
        width = outputs[0].shape[1] if len(outputs[0].shape) == 2 else 1
        if not isinstance(width, int):  # a symbolic width: ask the model once
            width = self._raw(np.zeros((1, self.n_features_in_), self._dtype)).shape[1]
        self.classes_ = np.arange(max(int(width), 2))

    def _raw(self, X: np.ndarray) -> np.ndarray:
        """The model's output for flat rows ``X`` as ``(n, k)`` float64 (one logit ``z`` as ``[0, z]``)."""
        x = np.ascontiguousarray(X, dtype=self._dtype).reshape(len(X), *self.input_shape_)
        out = np.asarray(self._session.run(None, {self._input: x})[0], np.float64)
        if out.ndim == 1 or (out.ndim == 2 and out.shape[1] == 1):
            out = out.reshape(-1, 1)
            if self.output == "proba":
                return np.concatenate([1 - out, out], axis=1)
            return np.concatenate([np.zeros_like(out), out], axis=1)
        return out

    def _valid(self, X: Any) -> np.ndarray:
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise ValueError(f"X must have shape (n, {self.n_features_in_}) (flat rows of {self.input_shape_}), "
                             f"got {X.shape}.")
        return X

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities ``(n, k)``: the output's softmax (or the output, for ``output="proba"``)."""
        out = self._raw(self._valid(X))
        return out if self.output == "proba" else softmax(out)

    def predict(self, X: Any) -> np.ndarray:
        """The argmax class ``(n,)`` of the output."""
        return self.classes_[np.argmax(self._raw(self._valid(X)), axis=1)]

    def __repr__(self) -> str:
        return f"ONNXModel({self.path!r}, input_shape={self.input_shape_}, classes={len(self.classes_)})"
