"""Choosing members of a fitted ensemble: shared by the SCD estimators and the baselines."""

from __future__ import annotations

from typing import Any

import numpy as np


def member_indices(indices: Any, n_members: int) -> np.ndarray:
    """``indices`` (an int, a range or a sequence) as a non-empty int64 array of distinct
    member positions in ``[0, n_members)``; ``ValueError`` naming the problem otherwise."""
    idx = np.atleast_1d(np.asarray(list(indices) if isinstance(indices, range) else indices))
    if (idx.ndim != 1 or len(idx) == 0 or idx.dtype.kind not in "iu" or idx.min() < 0 or idx.max() >= n_members
            or len(np.unique(idx)) != len(idx)):
        raise ValueError(f"members must be distinct integers in [0, {n_members}), got {indices!r}.")
    return idx.astype(np.int64)
