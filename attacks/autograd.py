"""Logits and input gradients of a torch module for numpy rows.

The one place a torch model is differentiated for an attack: the oracle's torch adapter, the
surrogates of :mod:`attacks.surrogate` and the CNN baseline's ``loss_gradient``/
``logits_gradient`` all go through :class:`TorchGradients`.  Losses are summed over rows, not
averaged, so row ``i`` of every gradient is the gradient of row ``i``'s own term, whatever the
chunking.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

__all__ = ["TorchGradients"]


class TorchGradients:
    """``logits``, ``loss_gradient`` and ``logits_gradient`` of ``module`` on float32 numpy rows.

    ``module`` maps ``(n, n_features)`` to logits ``(n, C)``, or to one logit ``(n,)``/``(n, 1)``
    for class 1 of a binary problem (read as logits ``[0, z]``).  Rows are sent to ``device``
    (default: where the module's parameters or buffers are) in the module's floating dtype
    (its first floating parameter, else buffer, else float32).  Results are numpy arrays in
    that dtype, on the CPU.  With ``input_shape`` (one input's shape, e.g. ``(C, H, W)``) the
    flat rows are reshaped to ``(n, *input_shape)`` inside the forward pass, so gradients
    stay flat ``(n, d)``.
    """

    def __init__(self, module: torch.nn.Module, *, device: Any = None, input_shape: tuple[int, ...] | None = None):
        tensors = [*module.parameters(), *module.buffers()]
        self.module = module
        self.input_shape = None if input_shape is None or len(input_shape) < 2 else tuple(input_shape)
        self.device = torch.device(device) if device is not None else (
            tensors[0].device if tensors else torch.device("cpu"))
        self.dtype = next((t.dtype for t in tensors if t.is_floating_point()), torch.float32)

    def tensor(self, x: np.ndarray) -> torch.Tensor:
        """``x`` on the module's device and in its dtype (shares memory when it can)."""
        x = np.ascontiguousarray(x)
        return torch.from_numpy(x if x.flags.writeable else x.copy()).to(device=self.device, dtype=self.dtype)

    def forward(self, xt: torch.Tensor) -> torch.Tensor:
        """The module's logits ``(n, C)``; a single logit ``z`` becomes ``[0, z]``."""
        z = self.module(xt if self.input_shape is None else xt.reshape(-1, *self.input_shape))
        if z.ndim == 1 or (z.ndim == 2 and z.shape[1] == 1):
            z = z.reshape(-1, 1)
            z = torch.cat([torch.zeros_like(z), z], dim=1)
        return z

    def logits(self, x: np.ndarray) -> np.ndarray:
        """Logits ``(n, C)`` without gradients."""
        with torch.no_grad():
            return self.forward(self.tensor(x)).cpu().numpy()

    def loss_gradient(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Gradient of each row's cross-entropy for class index ``y[i]`` w.r.t. the row, ``(n, d)``."""
        xt = self.tensor(x).requires_grad_(True)
        labels = torch.as_tensor(np.asarray(y), dtype=torch.long, device=self.device)
        with torch.enable_grad():
            loss = torch.nn.functional.cross_entropy(self.forward(xt), labels, reduction="sum")
            (g,) = torch.autograd.grad(loss, xt)
        return g.detach().cpu().numpy()

    def logits_gradient(self, x: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Gradient w.r.t. each row of ``sum_c weights[i, c] * logits[i, c]``, ``(n, d)`` (a
        vector-Jacobian product: one call for any loss linear in the logits at a point)."""
        xt = self.tensor(x).requires_grad_(True)
        with torch.enable_grad():
            z = self.forward(xt)
            total = (z * torch.as_tensor(np.asarray(weights), device=self.device, dtype=z.dtype)).sum()
            (g,) = torch.autograd.grad(total, xt)
        return g.detach().cpu().numpy()
