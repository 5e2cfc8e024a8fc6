"""Fixed-order float64 dot products (numba), for the few hidden pre-activations that float32
rounding leaves undecided (:func:`scd._network.hidden_signs`).

``reassoc`` lets LLVM vectorise the sum; the order it picks is fixed when the kernel is
compiled (lanes by feature index), never by the data or the batch.  The products of float32
values are exact in float64, so contracting them into fused multiply-adds changes nothing.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["fixed_order_pre"]


@njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def _pre(X, units, b1, rows, cols, out):
    for e in range(rows.shape[0]):
        x, w = X[rows[e]], units[cols[e]]
        s = 0.0
        for k in range(x.shape[0]):
            s += np.float64(x[k]) * np.float64(w[k])
        out[e] = s + np.float64(b1[cols[e]])


def fixed_order_pre(X: np.ndarray, units: np.ndarray, b1: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``X[rows[e]] . units[cols[e]] + b1[cols[e]]`` for every ``e``, in float64, each entry
    summed the same way whatever the other entries (``X``, ``units`` float32 C-contiguous)."""
    out = np.empty(len(rows))
    _pre(X, units, b1, rows.astype(np.int64), cols.astype(np.int64), out)
    return out
