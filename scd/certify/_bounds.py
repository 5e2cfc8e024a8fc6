"""Certified lower bounds from per-unit crossing distances, swept over the radius.

Within radius ``r`` of ``x0`` only the hidden units whose crossing distance is at most ``r``
can change state; every other unit keeps its state.  So each vote's logit stays within the
range that the movable units allow, and the ensemble keeps its prediction while no choice of
those ranges changes it.  Sweeping ``r`` over the sorted unit distances gives the first radius
at which the prediction could change: no input closer than that changes it.  For hard voting
this is the classic order statistic of per-network radii; soft voting uses the reachable
probability of every vote.  ``docs/certify.md`` has the proof, ties included.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._halfspace import crossing_distances
from ._model import SignEnsemble, sigmoid

__all__ = ["Problem", "certified_radius", "changeable", "logit_ranges"]


@dataclass
class Problem:
    """One input to bound: the ensemble, ``x0 (d,)`` in float64, its predicted class index
    ``label`` (0/1), the box ``lo, hi (d,)`` and the norm; derived per-unit data:

    ``pre (K, H)`` pre-activations, ``tau (K, H)`` their rounding bound, ``side (K, H)`` the
    state of each unit's original side (1 above its hyperplane, 0 below) and ``sign`` the same
    as +-1, ``h0 (K, H)`` the states at ``x0`` (units within ``tau`` of zero count as
    undecided: 1/2), ``toward (K, H, d)``
    the direction ``-sign(pre) w`` that moves a unit across its hyperplane, ``dist (K, H)``
    the crossing distances (sound lower bounds; 0 for undecided units), ``favourable (K, H)``
    the units whose crossing moves their vote towards the other class; ``leaf_lp``: the
    persistent LP of the leaves (:class:`scd.certify._leaf.LeafLP`), made on first use.
    """

    model: SignEnsemble
    x0: np.ndarray
    label: int
    lo: np.ndarray
    hi: np.ndarray
    norm: str

    def __post_init__(self):
        m = self.model
        self.pre = m.pre(self.x0)
        self.tau = m.rounding(self.x0, (self.lo, self.hi))
        self.undecided = np.abs(self.pre) <= self.tau
        self.side = np.where(self.pre > 0, 1.0, 0.0)
        self.sign = 2.0 * self.side - 1.0
        self.h0 = np.where(self.undecided, 0.5, self.side)
        self.toward = -self.sign[..., None] * m.W
        self.gap = np.abs(self.pre)  # toward . delta >= gap crosses (reaches) the hyperplane
        self.l = self.lo - self.x0
        self.u = self.hi - self.x0
        K, H, d = m.W.shape
        need = np.maximum(self.gap - self.tau, 0.0)
        dist = crossing_distances(self.toward.reshape(K * H, d), need.reshape(-1), self.l, self.u, self.norm)
        self.dist = dist.reshape(K, H)
        self.dist[self.undecided] = 0.0
        # units whose crossing moves their vote's logit towards the other class
        change = m.v * (1.0 - 2.0 * self.side)
        self.favourable = change < 0 if self.label == 1 else change > 0
        # a vote whose logit is within rounding of zero may be read either way
        self.z_slack = 1e-12 * (np.abs(m.v).sum(axis=1) + np.abs(m.c))
        self.leaf_lp = None


def logit_ranges(p: Problem, lo_h: np.ndarray, hi_h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(z_min, z_max) (K,)`` of every vote when unit states range over ``[lo_h, hi_h]``."""
    v = p.model.v
    zmin = (np.minimum(v * lo_h, v * hi_h)).sum(axis=1)
    zmax = (np.maximum(v * lo_h, v * hi_h)).sum(axis=1)
    return zmin + p.model.c, zmax + p.model.c


def changeable(p: Problem, zmin: np.ndarray, zmax: np.ndarray) -> bool:
    """Whether some logits within the ranges give the other class (with rounding slack)."""
    K = len(zmin)
    if p.model.soft:
        slack = 1e-12 * K
        if p.label == 1:
            return float(sigmoid(zmin - p.z_slack).sum()) <= K / 2 + slack
        return float(sigmoid(zmax + p.z_slack).sum()) > K / 2 - slack
    if p.label == 1:
        return 2 * int((zmin - p.z_slack > 0).sum()) <= K
    return 2 * int((zmax + p.z_slack > 0).sum()) > K


def certified_radius(p: Problem, lo_h: np.ndarray | None = None, hi_h: np.ndarray | None = None,
                     moving: np.ndarray | None = None) -> float:
    """The first radius at which the units that can move could change the prediction
    (``inf`` if none can within the box).

    ``lo_h, hi_h``: the unit-state ranges before any unit moves (default: the states at
    ``x0``); ``moving (K, H)``: the units swept in at their crossing distance (default: all).
    """
    H = p.dist.shape[1]
    lo_h = p.h0.copy() if lo_h is None else lo_h.copy()
    hi_h = p.h0.copy() if hi_h is None else hi_h.copy()
    if changeable(p, *logit_ranges(p, lo_h, hi_h)):
        return 0.0
    dist = p.dist if moving is None else np.where(moving, p.dist, np.inf)
    order = np.argsort(dist, axis=None, kind="stable")
    flat = dist.reshape(-1)[order]
    i, n = 0, len(order)
    while True:
        r = flat[i] if i < n else np.inf
        if not np.isfinite(r):
            return np.inf
        while i < n and flat[i] == r:
            k, j = divmod(int(order[i]), H)
            lo_h[k, j], hi_h[k, j] = 0.0, 1.0
            i += 1
        if changeable(p, *logit_ranges(p, lo_h, hi_h)):
            return float(r)
        if i >= n:
            return np.inf
