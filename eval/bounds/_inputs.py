"""What every baseline bound shares: float32 neighbours and the distance of a confirmed
example (the inputs and the box are checked by :func:`scd.certify.check_inputs`)."""

from __future__ import annotations

import numpy as np

__all__ = ["bisect_radius", "distance", "flips", "float32_box", "largest_f32_at_most", "next_f32_above"]


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


def bisect_radius(robust, upper: float, steps: int) -> float:
    """The largest radius in ``[0, upper]`` that ``steps`` bisections prove ``robust`` (a sound
    check: no input of the box within that radius changes the prediction); 0 when not even
    radius 0 is, ``upper`` when it is (then nothing in the box changes the prediction)."""
    if not robust(0.0):
        return 0.0
    lo, hi = 0.0, float(upper)
    if robust(hi):
        return hi
    for _ in range(steps):
        mid = 0.5 * (lo + hi)
        if robust(mid):
            lo = mid
        else:
            hi = mid
    return lo
