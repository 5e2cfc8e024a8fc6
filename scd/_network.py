"""Forward maps of single-hidden-layer sign networks, stacked over votes: pure functions.

Weights of ``V`` votes are stacked: ``W1 (V, d, H)``, ``b1 (V, H)``, ``w2 (V, H)``, ``b2 (V,)``.
A hidden unit is ``h = (sign(x . W1[:, k] + b1[k]) + 1) / 2``: 1 above its threshold, 0 below
and exactly 1/2 on it (as ``torch.sign(0) == 0``).  A vote's logit is ``z = h . w2 + b2``; the
0-1 output predicts ``[z > 0]`` and the cross-entropy output ``sigmoid(z)``.
"""

from __future__ import annotations

import torch

__all__ = ["hidden_units", "project", "stack_votes", "vote_logits"]


def hidden_units(pre: torch.Tensor) -> torch.Tensor:
    """Sign activations in {0, 1/2, 1} of pre-activations ``pre`` (any shape)."""
    return (torch.sign(pre) + 1) / 2


def project(X: torch.Tensor, W1: torch.Tensor) -> torch.Tensor:
    """Hidden projections ``X @ W1[v]`` of every vote, ``(V, n, H)``, without bias.

    Each vote is multiplied on its own so that a vote's numbers do not depend on which
    other votes share the batch (reproducibility across groupings).
    """
    return torch.stack([X @ W1[v] for v in range(W1.shape[0])])


def stack_votes(W1: torch.Tensor) -> torch.Tensor:
    """``[W1_0 ... W1_V]`` as one contiguous ``(d, V * H)`` matrix, the layout :func:`vote_logits` takes."""
    V, d, H = W1.shape
    return W1.permute(1, 0, 2).reshape(d, V * H).contiguous()


def vote_logits(
    X: torch.Tensor,
    W1_stacked: torch.Tensor,
    b1: torch.Tensor,
    w2: torch.Tensor,
    b2: torch.Tensor,
) -> torch.Tensor:
    """Logits ``(n, V)`` of every vote for inputs ``X (n, d)``.

    All votes share one matrix product ``X @ W1_stacked`` (``W1_stacked`` from
    :func:`stack_votes`; the fast path for prediction and attacks).
    """
    V, H = b1.shape
    pre = (X @ W1_stacked).reshape(-1, V, H) + b1
    return (hidden_units(pre) * w2).sum(dim=-1) + b2
