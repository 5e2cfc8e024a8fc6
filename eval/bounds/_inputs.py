"""What every baseline bound shares: checking the inputs and the box, float32 neighbours, and
the distance of a confirmed example."""

from __future__ import annotations

import numpy as np

__all__ = ["check_rows", "distance", "flips", "float32_box", "largest_f32_at_most", "next_f32_above"]


def check_rows(X, d: int, bounds) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``X`` as float32 ``(n, d)`` inside the box ``bounds``, and the box as float64 ``(d,)``
    arrays; ``ValueError`` naming the problem otherwise (as :func:`scd.certify.certify`)."""
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[1] != d:
        raise ValueError(f"X must have shape (n_samples, {d}); got {X.shape}.")
    if X.dtype.kind not in "fiu" or not np.isfinite(X).all():
        raise ValueError("X must hold finite numbers (no NaN or inf).")
    lo = np.broadcast_to(np.asarray(bounds[0], dtype=np.float64), (d,)).copy()
    hi = np.broadcast_to(np.asarray(bounds[1], dtype=np.float64), (d,)).copy()
    if not (np.isfinite(lo).all() and np.isfinite(hi).all() and (lo <= hi).all()):
        raise ValueError(f"bounds must be finite with lower <= upper; got {bounds!r}.")
    X = X.astype(np.float32)
    if ((X < lo) | (X > hi)).any():
        raise ValueError("every row of X must lie inside bounds; clip the inputs or widen the bounds.")
    return X, lo, hi


def largest_f32_at_most(t: np.ndarray) -> np.ndarray:
    """The largest float32 ``<= t`` (float64 in, float32 out): for a float32 input ``x``,
    ``x <= t`` holds exactly when ``x <= largest_f32_at_most(t)``."""
    t = np.asarray(t, np.float64)
    r = t.astype(np.float32)
    above = r.astype(np.float64) > t
    r[above] = np.nextafter(r[above], np.float32(-np.inf))
    return r


def next_f32_above(a: np.ndarray) -> np.ndarray:
    """The smallest float32 ``> a`` for float32 ``a``."""
    return np.nextafter(np.asarray(a, np.float32), np.float32(np.inf))


def float32_box(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The float32 inputs of the box ``[lo, hi]``: its smallest and largest float32 values."""
    lo32 = lo.astype(np.float32)
    below = lo32.astype(np.float64) < lo
    lo32[below] = np.nextafter(lo32[below], np.float32(np.inf))
    return lo32, largest_f32_at_most(hi)


def distance(delta: np.ndarray, norm: str) -> float:
    """``||delta||`` in ``norm`` ("inf", "2" or "1"), in float64."""
    delta = np.asarray(delta, np.float64)
    return float({"inf": np.max(np.abs(delta), initial=0.0), "2": np.sqrt(np.sum(delta * delta)),
                  "1": np.sum(np.abs(delta))}[norm])


def flips(model, point: np.ndarray, label: int) -> bool:
    """Whether ``model`` itself predicts the other class than class index ``label`` for ``point``."""
    return int(model.predict(point[None])[0] == model.classes_[1]) != label
