"""Forward maps of single-hidden-layer sign networks, stacked over votes: pure functions.

Weights of ``V`` votes are stacked: ``W1 (V, d, H)``, ``b1 (V, H)``, ``w2 (V, H)``, ``b2 (V,)``.
A hidden unit is ``h = (sign(x . W1[:, k] + b1[k]) + 1) / 2``: 1 above its threshold, 0 below
and exactly 1/2 on it (as ``torch.sign(0) == 0``).  A vote's logit is ``z = h . w2 + b2``; the
0-1 output predicts ``[z > 0]`` and the cross-entropy output ``sigmoid(z)``.

Prediction answers for a row do not depend on the rows batched with it (:func:`hidden_signs`):
a float32 matrix product rounds differently for different batch shapes, and attacks such as
HopSkipJump stop within rounding of a threshold, where that would flip a vote.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["hidden_signs", "hidden_units", "logits_from_signs", "project", "stack_units", "unit_norms", "vote_logits"]


def hidden_units(pre: torch.Tensor) -> torch.Tensor:
    """Sign activations in {0, 1/2, 1} of pre-activations ``pre`` (any shape)."""
    return (torch.sign(pre) + 1) / 2


def project(X: torch.Tensor, W1: torch.Tensor) -> torch.Tensor:
    """Hidden projections ``X @ W1[v]`` of every vote, ``(V, n, H)``, without bias.

    Each vote is multiplied on its own so that a vote's numbers do not depend on which
    other votes share the batch (reproducibility across groupings).
    """
    return torch.stack([X @ W1[v] for v in range(W1.shape[0])])


def stack_units(W1: torch.Tensor) -> torch.Tensor:
    """The hidden units of every vote as the rows of one contiguous ``(V * H, d)`` matrix, vote
    by vote: the layout :func:`vote_logits` takes (one matrix product for all votes, and a
    unit's weights contiguous for :func:`hidden_signs`)."""
    V, d, H = W1.shape
    return W1.permute(0, 2, 1).reshape(V * H, d).contiguous()


def unit_norms(units: torch.Tensor) -> torch.Tensor:
    """L2 norms of the rows of ``units`` (the rounding bound of :func:`hidden_signs`)."""
    return torch.linalg.vector_norm(units, dim=1)


_SLICE = 512  # features per partial product on larger batches: the rounding band grows with it
_FULL_ROWS = 32  # batches up to this many rows take one product (reading the weights dominates)


def hidden_signs(X: torch.Tensor, units: torch.Tensor, b1: torch.Tensor, norms: torch.Tensor) -> torch.Tensor:
    """``sign(X @ units.T + b1)`` ``(n, V * H)`` as a function of each row alone (``norms``:
    :func:`unit_norms` of ``units``; CPU tensors).

    The product runs in float32 (float64 if torch allows reduced-precision float32 products),
    whose rounding depends on the batch shape.  On batches of more than ``_FULL_ROWS`` rows it
    is summed as partial products over slices of ``_SLICE`` features, added in order.  Whatever
    order the library sums a slice in, the result is within ``gamma_k * (|x| |w| + |b|)`` of
    the exact value, ``k`` = slice length + number of slices + 1 (the classic dot-product
    bound, with Cauchy-Schwarz).  Outside twice that band the float32 sign is the exact one.
    Entries inside it (about 0.3 % on CIFAR-10) are recomputed in float64 in a fixed order
    (:func:`scd._dots.fixed_order_pre`; the float32 products are exact in float64): their sign
    is the exact one unless the exact value is within float64 rounding of the threshold
    (below ``d * 2**-53 * |x| |w|``, about 1e-11 on CIFAR-10), and it is the same whatever
    the batch.
    """
    dtype = torch.float32 if torch.get_float32_matmul_precision() == "highest" else torch.float64
    Xc, Wc = X.to(dtype), units.to(dtype)
    d = X.shape[1]
    width = d if len(X) <= _FULL_ROWS else _SLICE
    pre = Xc[:, :width] @ Wc[:, :width].T
    for a in range(width, d, width):
        pre += Xc[:, a : a + width] @ Wc[:, a : a + width].T
    pre += b1.to(dtype)
    k = min(d, width) + -(-d // width) + 1
    unit = torch.finfo(dtype).eps / 2
    band = torch.outer(torch.linalg.vector_norm(Xc, dim=1), norms.to(dtype))
    band += b1.abs().to(dtype)
    band *= 2 * k * unit / (1 - k * unit)
    signs = torch.sign(pre)
    rows, cols = torch.nonzero(pre.abs() <= band, as_tuple=True)
    if len(rows):
        from ._dots import fixed_order_pre

        exact = fixed_order_pre(X.numpy(), units.numpy(), b1.numpy(), rows.numpy(), cols.numpy())
        signs[rows, cols] = torch.from_numpy(np.sign(exact)).to(dtype)
    return signs


def vote_logits(
    X: torch.Tensor,
    units: torch.Tensor,
    norms: torch.Tensor,
    b1: torch.Tensor,
    w2: torch.Tensor,
    b2: torch.Tensor,
) -> torch.Tensor:
    """Float64 logits ``(n, V)`` of every vote for inputs ``X (n, d)`` (CPU tensors).

    All votes share one matrix product with ``units`` (from :func:`stack_units`, ``norms`` its
    :func:`unit_norms`; the fast path for prediction and attacks).  The hidden signs are those
    of :func:`hidden_signs`; the output sums of ``{0, 1/2, 1} * w2`` run in float64, which is
    exact while the output weights lie within a factor of about 2**25 of each other, so a
    vote's logit depends on its row alone.
    """
    return logits_from_signs(hidden_signs(X, units, b1.reshape(-1), norms), w2, b2)


def logits_from_signs(signs: torch.Tensor, w2: torch.Tensor, b2: torch.Tensor) -> torch.Tensor:
    """Float64 vote logits ``(n, V)`` from the hidden signs ``(n, V * H)`` of :func:`hidden_signs`
    (the output layer of :func:`vote_logits`, shared with the line queries of :mod:`scd.lines`)."""
    V, H = w2.shape
    h = (signs.to(torch.float64) + 1) / 2
    return (h.reshape(-1, V, H) * w2.to(torch.float64)).sum(dim=-1) + b2.to(torch.float64)
