"""Small models with known decision boundaries, shared by the attack tests."""

from __future__ import annotations

import numpy as np


class Linear:
    """``argmax(x @ W + b)`` classifier (numpy) that counts the rows it is asked about.

    Binary problems use one weight vector: class 1 where ``x @ w + b > 0``, so the exact
    distance to the boundary is ``|x @ w + b| / ||w||_p*`` when the box does not bind.
    """

    def __init__(self, W: np.ndarray, b: np.ndarray):
        self.W = np.asarray(W, np.float64)
        self.b = np.asarray(b, np.float64)
        k = 2 if self.W.ndim == 1 else self.W.shape[1]
        self.classes_ = np.arange(k)
        self.n_features_in_ = self.W.shape[0]
        self.rows = 0

    def margin(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, np.float64) @ self.W + self.b

    def predict(self, x: np.ndarray) -> np.ndarray:
        self.rows += len(x)
        z = self.margin(x)
        return (z > 0).astype(np.int64) if z.ndim == 1 else np.argmax(z, axis=1)

    def exact_distance(self, x: np.ndarray, norm: float) -> np.ndarray:
        """Distance to the boundary of a binary model (dual norm of w), ignoring the box."""
        dual = {np.inf: np.abs(self.W).sum(), 1: np.abs(self.W).max()}.get(norm, np.linalg.norm(self.W))
        return np.abs(self.margin(x)) / dual

    def torch_module(self):
        """The same binary model as a one-logit ``torch.nn.Linear`` (scores and gradients)."""
        import torch

        layer = torch.nn.Linear(self.n_features_in_, 1).double()
        with torch.no_grad():
            layer.weight.copy_(torch.from_numpy(self.W[None]))
            layer.bias.fill_(float(self.b))
        return layer.eval()


def binary_linear(d: int = 20, n: int = 8, seed: int = 0) -> tuple[Linear, np.ndarray]:
    """A binary linear model through the centre of [0, 1]^d and ``n`` points at L2 distance
    0.1 to 0.3 from its boundary, on both sides, well inside the box."""
    rng = np.random.default_rng(seed)
    w = rng.normal(size=d)
    b = -0.5 * w.sum()
    x0 = 0.5 + rng.uniform(-0.1, 0.1, size=(n, d))
    on_boundary = x0 - ((x0 @ w + b) / (w @ w))[:, None] * w
    r = rng.uniform(0.1, 0.3, size=n) * rng.choice([-1.0, 1.0], size=n)
    x = on_boundary + r[:, None] * w / np.linalg.norm(w)
    return Linear(w, np.asarray(b)), x.astype(np.float32)


def three_class_linear(d: int = 12, n: int = 6, seed: int = 1) -> tuple[Linear, np.ndarray]:
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(d, 3))
    x = rng.uniform(0.3, 0.7, size=(n, d)).astype(np.float32)
    b = -np.mean(x @ W, axis=0)
    return Linear(W, b), x


class Constant:
    """Always answers class 0: no adversarial example exists."""

    classes_ = np.array([0, 1])

    def __init__(self, d: int):
        self.n_features_in_ = d

    def predict(self, x):
        return np.zeros(len(x), np.int64)


class Flaky:
    """Truthful (always class 0) for its first call, the clean-label check; then says "class 1"
    to everything for ``n_rows`` rows; then truthful again.

    An attack that trusted its own bookkeeping would claim successes; the confirming query
    must reject them.
    """

    classes_ = np.array([0, 1])

    def __init__(self, d: int, n_rows: int):
        self.n_features_in_ = d
        self.left = n_rows
        self.calls = 0

    def predict(self, x):
        out = np.zeros(len(x), np.int64)
        self.calls += 1
        if self.calls > 1:
            k = max(0, min(self.left, len(x)))
            out[:k] = 1
            self.left -= len(x)
        return out
