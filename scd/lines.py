"""Exact, cheap label queries along line segments of an SCD ensemble (binary searches).

A binary search between ``x0`` and ``x1`` asks for the labels of the points
``clip(segment_points(x0, x1, a))`` for a sequence of blend factors ``a``.  Every hidden unit's
pre-activation at ``(1 - a) x0 + a x1`` is affine in ``a``, so :class:`Segments` computes the
projections of both endpoints once and answers each query from them, without a matrix
product over the features.

The answers are those of ``predict`` on the formed float32 points, bit for bit.  The point
the search really sends differs from the exact affine one by float32 rounding (and by the
clip into the box, which only moves it closer); the answer's pre-activation is within a
rigorous bound ``B`` of the affine value (the rounding of forming the point, of the
float64 endpoint projections and of their combination, and of the fixed-order float64
sum that ``predict`` falls back to; Cauchy-Schwarz with the row and unit norms, then
doubled).  Where ``|affine value| > B`` its sign is the exact sign of the point's
pre-activation, which is the one ``predict`` returns (:func:`scd._network.hidden_signs`).
The other entries (rare: a pre-activation within about ``1e-7`` relative of its
threshold) are recomputed the way ``predict`` recomputes its undecided entries: the point
is formed exactly as the search forms it and summed in fixed-order float64
(:func:`scd._dots.fixed_order_pre`).  Those entries lie inside ``predict``'s own rounding
band, where it uses that same sum.  The vote logits and the vote then go through the same
code as ``predict``.
"""

from __future__ import annotations

import weakref
from typing import Any

import numpy as np
import torch

__all__ = ["Segments", "segment_points"]

_U32 = 2.0**-24  # unit roundoff of float32
_U64 = 2.0**-53


def segment_points(x0: np.ndarray, x1: np.ndarray, a: Any) -> np.ndarray:
    """``(1 - a) x0 + a x1`` row by row, in float32 (``a`` is cast to float32 first): the points
    a binary search between ``x0`` and ``x1`` asks about (the attacks' ``blend``)."""
    a = np.asarray(a, np.float32)[:, None]
    return ((1 - a) * x0 + a * x1).astype(np.float32)


def _gamma(k: int, u: float) -> float:
    return k * u / (1 - k * u)


_UNITS64: dict[int, tuple[weakref.ref, torch.Tensor, torch.Tensor]] = {}


def _units64(units: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``units`` in float64 and their float64 norms, once per (cached) unit matrix."""
    key = id(units)
    hit = _UNITS64.get(key)
    if hit is not None and hit[0]() is units:
        return hit[1], hit[2]
    u64 = units.to(torch.float64)
    norms = torch.linalg.vector_norm(u64, dim=1) * (1 + 1e-12)
    _UNITS64[key] = (weakref.ref(units, lambda _, key=key: _UNITS64.pop(key, None)), u64, norms)
    return u64, norms


class Segments:
    """Labels of a fitted SCD ensemble at ``clip(segment_points(x0[i], x1[i], a), lower, upper)``,
    bit-identical to ``model.predict`` of those points (see the module docstring).

    Parameters
    ----------
    model : fitted SCD estimator (:class:`scd.SCDClassifier` and its variants)
    x0, x1 : arrays (n, n_features)
        The segments' ends, inside ``bounds``.
    bounds : (lower, upper)
        The box the queried points are clipped into (scalars or ``(n_features,)`` arrays).
    """

    def __init__(self, model: Any, x0: Any, x1: Any, bounds: tuple[Any, Any]):
        from sklearn.utils.validation import check_is_fitted

        from ._base import _WEIGHTS, _stacked

        check_is_fitted(model)
        d = model.n_features_in_
        x0 = np.ascontiguousarray(x0, dtype=np.float32)
        x1 = np.ascontiguousarray(x1, dtype=np.float32)
        if x0.ndim != 2 or x0.shape[1] != d or x1.shape != x0.shape:
            raise ValueError(f"x0 and x1 must both have shape (n, {d}), got {x0.shape} and {x1.shape}.")
        lower = np.broadcast_to(np.asarray(bounds[0], np.float32), (d,))
        upper = np.broadcast_to(np.asarray(bounds[1], np.float32), (d,))
        for name, x in (("x0", x0), ("x1", x1)):
            if not np.all(np.isfinite(x)) or np.any(x < lower) or np.any(x > upper):
                raise ValueError(f"{name} must be finite and inside the bounds: the line queries rest on it.")
        self.model, self.x0, self.x1, self.lower, self.upper = model, x0, x1, lower, upper
        self.units, _ = _stacked(model.W1_)
        u64, wn = _units64(self.units)
        self.b1 = torch.from_numpy(np.ascontiguousarray(model.b1_.reshape(-1)))
        self.w2, self.b2 = (torch.from_numpy(getattr(model, f"{n}_")) for n in _WEIGHTS[2:])
        with torch.no_grad():
            ends = torch.from_numpy(np.concatenate([x0, x1])).to(torch.float64)
            p = ends @ u64.T
        n = len(x0)
        self.p0, self.p1 = p[:n].numpy(), p[n:].numpy()
        self.n0 = np.linalg.norm(x0.astype(np.float64), axis=1)[:, None] * (1 + 1e-12)
        self.n1 = np.linalg.norm(x1.astype(np.float64), axis=1)[:, None] * (1 + 1e-12)
        self.wn = wn.numpy()[None, :]
        self.b64 = self.b1.numpy().astype(np.float64)[None, :]
        self._gd = _gamma(d + 2, _U64)  # a float64 dot product of d terms plus the bias, any order

    def points(self, a: Any, rows: Any = None) -> np.ndarray:
        """The float32 points the queries answer for: ``clip(segment_points(x0[rows], x1[rows], a))``."""
        rows = np.arange(len(self.x0)) if rows is None else np.asarray(rows, np.int64)
        return np.clip(segment_points(self.x0[rows], self.x1[rows], a), self.lower, self.upper)

    def predict(self, a: Any, rows: Any = None) -> np.ndarray:
        """Labels (values of ``classes_``) at blend factors ``a (m,)`` of segments ``rows (m,)``
        (default: every segment, in order), equal to ``model.predict(self.points(a, rows))``."""
        from ._network import logits_from_signs

        z = logits_from_signs(torch.from_numpy(self.hidden_signs(a, rows)), self.w2, self.b2).numpy()
        return self.model.classes_[(self.model._vote_fraction(z) > 0.5).astype(int)]

    def hidden_signs(self, a: Any, rows: Any = None) -> np.ndarray:
        """The hidden units' signs ``(m, n_votes * hidden_nodes)`` (vote by vote) at the points
        :meth:`predict` answers for: those ``predict`` computes."""
        from ._dots import fixed_order_pre

        rows = np.arange(len(self.x0)) if rows is None else np.asarray(rows, np.int64)
        a32 = np.asarray(a, np.float32)
        if a32.shape != rows.shape:
            raise ValueError(f"a must have one blend factor per row, shape {rows.shape}, got {a32.shape}.")
        a = a32.astype(np.float64)[:, None]
        c = (1 - a32).astype(np.float64)[:, None]  # the float32 (1 - a) that segment_points multiplies by
        p0, p1, n0, n1 = self.p0[rows], self.p1[rows], self.n0[rows], self.n1[rows]
        value = (1 - a) * p0 + a * p1 + self.b64
        # |x| w summed, bounded by Cauchy-Schwarz: the rounding of forming the point, of the endpoint
        # projections, of the combination above, and of predict's own fixed-order float64 sum
        formed = (c * n0 + a * n1) * self.wn  # bounds sum_k |x_k w_k| of the exact affine point
        err = _gamma(2, _U32) * formed + np.abs(c - (1 - a)) * n0 * self.wn  # forming the float32 point
        bound = (err
                 + self._gd * ((1 - a) * n0 + a * n1) * self.wn  # the float64 endpoint projections
                 + 8 * _U64 * (np.abs((1 - a) * p0) + np.abs(a * p1) + np.abs(self.b64))  # the line above
                 + self._gd * (formed + 2 * err + np.abs(self.b64)))  # predict's fixed-order float64 sum
        signs = np.sign(value)
        r, j = np.nonzero(~(np.abs(value) > 2 * bound))
        if len(r):
            near, r = np.unique(r, return_inverse=True)
            points = self.points(a32[near], rows[near])
            signs[near[r], j] = np.sign(fixed_order_pre(points, self.units.numpy(), self.b1.numpy(), r, j))
        return signs
