"""HopSkipJump (Chen, Jordan, Wainwright 2019, arXiv 1904.02144): decision-based, L2 and L∞.

Each iteration estimates the gradient direction of the decision boundary at the current
boundary point from the labels of ``B_t = min(init_evals·√t, max_evals)`` random
perturbations of size ``δ_t``, steps along it (geometric step-size search, or a grid of 20
steps each projected back to the boundary), and projects back onto the boundary by binary
search between the original and the new point.

Differences from the reference implementations
----------------------------------------------
- Batched across samples: every binary search, step search and gradient estimate runs in
  lock-step for all active samples (the original and ART loop over samples and query single
  points; ART made ~1,000 model calls per sample on a random forest).  The L2 projection's
  binary search asks line queries (:meth:`~attacks.oracle.Oracle.line`): the same points,
  answers and counts, answered from the segment's ends by SCD ensembles.
- ``theta="paper"`` (default) is the original and foolbox θ = γ/d^{3/2} (L2) or γ/d² (L∞),
  so δ_t = dist/d, and every iteration ends on the boundary, as in the original.
  ``theta="art"`` is the ART-compatible setting used to validate against ART: θ = 0.01/√d
  (L2) or 0.01/d (L∞), δ_t = 0.01·dist, and ART's order: each iteration starts with the
  projection to the boundary and ends with the (unprojected) step, so the result is the last
  post-step point, as ART returns it.  A float ``theta`` keeps the original order.
- Initialisation is seeded (ART's is not), per sample, and a failure is a per-sample flag
  (foolbox raises for the whole batch).  The geometric step search halves at most
  ``max_halvings`` times (ART's loop is unbounded); a zero gradient estimate leaves the
  sample where it is and is counted in ``zero_gradients``.
- A per-sample query budget stops a sample exactly; the gradient estimate of the last
  iteration shrinks to the rows left.
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any

import numpy as np

from .base import Attack
from .criteria import Probe
from .distances import norm_of, parse_norm
from .search import Best, bisect, bisect_segments, blend, closest_per_owner, progress_bar, still_active, uniform_init

__all__ = ["HopSkipJump"]

_MAX_ELEMENTS = 1 << 24  # floats per gradient-estimation batch (64 MB)


class HopSkipJump(Attack):
    """HopSkipJump attack (untargeted or targeted, L2 or L∞).

    Parameters
    ----------
    norm : 2 or "inf"
        Distance to minimise.
    max_iter : int, default=40
        Iterations (original default 40; ART 50; the SCD paper used 100).
    init_evals, max_evals : int, default=100, 10000
        Gradient-estimation rows at iteration t: ``min(init_evals·√t, max_evals)``.
    gamma : float, default=1.0
        θ = γ/d^{3/2} (L2) or γ/d² (L∞) when ``theta="paper"``.
    theta : "paper", "art" or float
        Binary-search tolerance rule; "art" also switches to ART's iteration order (see the
        module docstring).
    stepsize_search : {"geometric", "grid"}
        Geometric progression (halve ``dist/√t`` until adversarial) or a grid of 20 steps
        ``logspace(-4, 0)·dist``, each projected to the boundary, keeping the closest.
    init_size : int, default=100
        Uniform random draws per sample to find a starting point (the SCD paper used 1000).
    max_halvings : int, default=30
        Cap of the geometric step search.
    """

    name = "hsj"
    uses_starting_points = True

    def __init__(self, norm: Any = 2, max_iter: int = 40, init_evals: int = 100, max_evals: int = 10000,
                 gamma: float = 1.0, theta: Any = "paper", stepsize_search: str = "geometric",
                 init_size: int = 100, max_halvings: int = 30):
        self.norm_name = norm
        self.max_iter = max_iter
        self.init_evals = init_evals
        self.max_evals = max_evals
        self.gamma = gamma
        self.theta = theta
        self.stepsize_search = stepsize_search
        self.init_size = init_size
        self.max_halvings = max_halvings

    def _check_params(self) -> None:
        if parse_norm(self.norm_name) == 1:
            raise ValueError("HopSkipJump attacks the L2 or Linf norm, not L1.")
        for name in ("max_iter", "init_evals", "max_evals", "init_size", "max_halvings"):
            value = getattr(self, name)
            if not isinstance(value, Integral) or isinstance(value, bool) or value < (0 if name == "max_iter" else 1):
                raise ValueError(f"{name} must be a positive integer, got {value!r}.")
        if not (_is_real(self.gamma) and np.isfinite(self.gamma) and self.gamma > 0):
            raise ValueError(f"gamma must be > 0, got {self.gamma!r}.")
        if self.stepsize_search not in ("geometric", "grid"):
            raise ValueError(f"stepsize_search must be 'geometric' or 'grid', got {self.stepsize_search!r}.")
        if isinstance(self.theta, str):
            if self.theta not in ("paper", "art"):
                raise ValueError(f"theta must be 'paper', 'art' or a positive number, got {self.theta!r}.")
        elif not (_is_real(self.theta) and np.isfinite(self.theta) and self.theta > 0):
            raise ValueError(f"theta must be 'paper', 'art' or a positive number, got {self.theta!r}.")

    def theta_for(self, d: int) -> float:
        """The binary-search tolerance θ for ``d`` features."""
        l2 = self.norm == 2
        if self.theta == "paper":
            return self.gamma / (d * np.sqrt(d)) if l2 else self.gamma / d**2
        if self.theta == "art":
            return 0.01 / np.sqrt(d) if l2 else 0.01 / d
        return float(self.theta)

    # ------------------------------------------------------------------ algorithm
    def run(self, probe: Probe, x: np.ndarray, best: Best, rngs: list[np.random.Generator], *,
            active: np.ndarray, starting_points: np.ndarray | None, early_stop: float | None,
            progress: bool) -> dict[str, Any]:
        d = x.shape[1]
        norm = self.norm
        theta = self.theta_for(d)
        n = len(x)
        init_failed = np.zeros(n, bool)
        zero_grad = np.zeros(n, np.int64)

        idx = np.flatnonzero(active)
        start = x[idx].copy()
        have = np.zeros(len(idx), bool)
        if starting_points is not None:
            have = probe.is_adversarial(starting_points[idx], idx)
            start[have] = starting_points[idx[have]]
        need = np.flatnonzero(~have)
        if len(need):
            start[need], have[need] = uniform_init(probe, x, rngs, idx[need], self.init_size)
        init_failed[idx[~have]] = True
        idx, start = idx[have], start[have]
        art_order = self.theta == "art"  # ART projects at the start of each iteration, not the end
        current = start if art_order else self._project(probe, x, idx, start, theta)
        best.offer(idx, current, np.ones(len(idx), bool))
        best.record(idx)
        state = np.zeros((n, d), np.float32)
        state[idx] = current
        live = still_active(probe, best, idx, early_stop)

        bar = progress_bar(progress, self.max_iter, type(self).__name__, "it")
        for t in range(1, self.max_iter + 1):
            if not len(live):
                break
            xt = state[live]
            if t == 1:
                delta = np.full(len(live), 0.1 * float(np.mean(probe.upper - probe.lower)))
            else:
                delta = (np.sqrt(d) if norm == 2 else d) * theta * norm_of(xt - x[live], norm)
            if art_order:
                xt = self._project(probe, x, live, xt, theta)
            dist = norm_of(xt - x[live], norm)
            evals = min(int(self.init_evals * np.sqrt(t)), self.max_evals)
            rows = np.minimum(evals, probe.remaining(live)).astype(np.int64)
            update, zero = self._estimate_direction(probe, live, xt, delta, rows, rngs)
            zero_grad[live[zero]] += 1
            moved = self._step(probe, x, live, xt, update, dist, t, theta, project=not art_order)
            state[live] = moved
            best.offer(live, moved, np.ones(len(live), bool))
            best.record(live)
            live = still_active(probe, best, live, early_stop)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(median_dist=f"{np.median(best.dist[np.isfinite(best.dist)]):.4g}", active=len(live))
        if bar is not None:
            bar.close()
        return {"init_failed": init_failed, "zero_gradients": zero_grad, "theta": theta}

    def _project(self, probe: Probe, x: np.ndarray, idx: np.ndarray, points: np.ndarray,
                 theta: float) -> np.ndarray:
        """Binary search between each original and its adversarial point; the boundary side."""
        x0 = x[idx]
        if self.norm == 2:
            return blend(x0, points, bisect_segments(probe, idx, x0, points, theta))
        dist = norm_of(points - x0, np.inf)
        hi = bisect(probe, idx, lambda r, a: _clip_box(points[r], x0[r], a), np.zeros(len(idx)), dist,
                    np.minimum(dist * theta, theta))
        return _clip_box(points, x0, hi)

    def _estimate_direction(self, probe: Probe, idx: np.ndarray, xt: np.ndarray, delta: np.ndarray,
                            rows: np.ndarray, rngs) -> tuple[np.ndarray, np.ndarray]:
        """Monte-Carlo estimate of the boundary normal at each ``xt`` (unit L2, or its sign for
        L∞), from ``rows[i]`` labelled perturbations; zero where the estimate vanished."""
        n, d = xt.shape
        update = np.zeros((n, d), np.float32)
        pos = 0
        while pos < n:
            stop = pos + 1
            while stop < n and rows[pos:stop + 1].sum() * d <= _MAX_ELEMENTS:
                stop += 1
            part = range(pos, stop)
            noise = [self._noise(rngs[idx[j]], int(rows[j]), d) for j in part]
            cand = np.concatenate([xt[j] + delta[j] * u for j, u in zip(part, noise)]) if noise else None
            owners = np.repeat(idx[pos:stop], rows[pos:stop])
            cand = probe.clip(cand)
            adv = probe.is_adversarial(cand, owners, clipped=True)
            offset = 0
            for j, u in zip(part, noise):
                k = len(u)
                if k:
                    u = (cand[offset:offset + k] - xt[j]) / np.float32(delta[j])
                    f = 2.0 * adv[offset:offset + k] - 1.0
                    mean_f = f.mean()
                    if mean_f in (1.0, -1.0):
                        g = mean_f * u.mean(axis=0, dtype=np.float64)
                    else:
                        g = ((f - mean_f)[:, None] * u).mean(axis=0, dtype=np.float64)
                    size = np.linalg.norm(g)
                    if size > 0 and np.isfinite(size):
                        update[j] = g / size if self.norm == 2 else np.sign(g)
                offset += k
            pos = stop
        zero = ~np.any(update != 0, axis=1)
        return update, zero

    def _noise(self, rng: np.random.Generator, k: int, d: int) -> np.ndarray:
        u = rng.standard_normal((k, d), dtype=np.float32) if self.norm == 2 else \
            rng.uniform(-1.0, 1.0, (k, d)).astype(np.float32)
        u /= np.maximum(np.linalg.norm(u, axis=1, keepdims=True), np.float32(1e-30))
        return u

    def _step(self, probe: Probe, x: np.ndarray, idx: np.ndarray, xt: np.ndarray, update: np.ndarray,
              dist: np.ndarray, t: int, theta: float, project: bool = True) -> np.ndarray:
        """Step along ``update`` and (with ``project``) back to the boundary; the new points."""
        if self.stepsize_search == "grid":
            return self._grid_step(probe, x, idx, xt, update, dist, theta)
        eps = dist / np.sqrt(t)
        cand = xt.copy()
        todo = np.flatnonzero(np.any(update != 0, axis=1))
        for _ in range(self.max_halvings):
            todo = todo[probe.remaining(idx[todo]) > 0]
            if not len(todo):
                break
            trial = probe.clip(xt[todo] + eps[todo, None].astype(np.float32) * update[todo])
            adv = probe.is_adversarial(trial, idx[todo], clipped=True)
            cand[todo[adv]] = trial[adv]
            todo = todo[~adv]
            eps[todo] /= 2
        return self._project(probe, x, idx, cand, theta) if project else cand

    def _grid_step(self, probe: Probe, x: np.ndarray, idx: np.ndarray, xt: np.ndarray, update: np.ndarray,
                   dist: np.ndarray, theta: float) -> np.ndarray:
        grid = np.logspace(-4, 0, 20)
        rows = np.repeat(np.arange(len(idx)), len(grid))
        steps = (dist[:, None] * grid[None, :]).ravel().astype(np.float32)
        trial = probe.clip(xt[rows] + steps[:, None] * update[rows])
        adv = probe.is_adversarial(trial, idx[rows], clipped=True)
        adv &= np.any(update[rows] != 0, axis=1)
        keep = np.flatnonzero(adv)
        out = xt.copy()
        if len(keep):
            projected = self._project(probe, x, idx[rows[keep]], trial[keep], theta)
            d = norm_of(projected - x[idx[rows[keep]]], self.norm)
            chosen = closest_per_owner(rows[keep], d)
            better = d[chosen] < dist[rows[keep][chosen]]
            out[rows[keep][chosen[better]]] = projected[chosen[better]]
        return out


def _is_real(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def _clip_box(points: np.ndarray, x0: np.ndarray, radius: np.ndarray) -> np.ndarray:
    """Project ``points`` into the L∞ ball of ``radius`` around ``x0`` (row by row)."""
    r = np.asarray(radius, np.float32)[:, None]
    return np.clip(points, x0 - r, x0 + r).astype(np.float32)

