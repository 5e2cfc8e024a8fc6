"""Search steps shared by the attacks: best-so-far tracking, batched binary search along a
path, uniform-noise initialisation, starting points from data, and the bookkeeping of which
samples are still running.

Every step works on per-sample ``(n,)`` state in lock-step for all active samples and talks to
the model only through a :class:`~attacks.criteria.Probe`.
"""

from __future__ import annotations

import numpy as np

# the one definition of a search's points, shared with the line queries
from scd.lines import segment_points as blend

from .counting import rank_within
from .criteria import Probe
from .distances import norm_of
from .oracle import Line

__all__ = ["Best", "bisect", "bisect_segments", "blend", "closest_per_owner", "nearest_other_class", "progress_bar",
           "still_active", "uniform_init"]


class Best:
    """The closest adversarial point found so far for every sample, and its history.

    Only points the model answered as adversarial are ever offered, so ``found`` never
    claims more than the oracle said.  ``record`` appends ``(queries used, best distance)``
    for budget curves.
    """

    def __init__(self, x: np.ndarray, norm: float, probe: Probe):
        self.x = x
        self.norm = norm
        self.probe = probe
        self.x_adv = x.copy()
        self.dist = np.full(len(x), np.inf)
        self.history: list[list[tuple[int, float]]] = [[] for _ in range(len(x))]

    @property
    def found(self) -> np.ndarray:
        return np.isfinite(self.dist)

    def offer(self, owners: np.ndarray, candidates: np.ndarray, is_adv: np.ndarray) -> np.ndarray:
        """Keep the adversarial candidates that beat their sample's best; returns the rows kept.
        ``owners`` may repeat (several candidates per sample): the closest one wins."""
        owners = np.asarray(owners, np.int64)
        d = norm_of(candidates - self.x[owners], self.norm)
        d[~is_adv] = np.inf
        best_rows = closest_per_owner(owners, d)
        better = d[best_rows] < self.dist[owners[best_rows]]
        rows = best_rows[better]
        self.x_adv[owners[rows]] = candidates[rows]
        self.dist[owners[rows]] = d[rows]
        return rows

    def close(self, owners: np.ndarray) -> None:
        """End the budget curves of ``owners`` at their final state, where the last point is out of date."""
        owners = np.asarray(owners, np.int64)
        used = self.probe.queries(owners)
        stale = [k for k, i in enumerate(owners)
                 if not self.history[i] or self.history[i][-1] != (int(used[k]), float(self.dist[i]))]
        if stale:
            self.record(owners[stale])

    def record(self, owners: np.ndarray) -> None:
        """Append a budget-curve point for each sample in ``owners`` that has found a point."""
        owners = np.asarray(owners, np.int64)
        owners = owners[np.isfinite(self.dist[owners])]
        used = self.probe.queries(owners)
        for i, q in zip(owners, used):
            self.history[i].append((int(q), float(self.dist[i])))


def nearest_other_class(x: np.ndarray, pool: np.ndarray, x_labels: np.ndarray, pool_labels: np.ndarray,
                        targets: np.ndarray | None = None) -> np.ndarray:
    """For each row of ``x``, the nearest (L2) row of ``pool`` whose label differs from the row's
    (or equals its target label): starting points for decision-based attacks where uniform noise
    always falls in one class.  Labels are the model's answers, obtained by the caller."""
    d = (x * x).sum(1)[:, None] - 2.0 * x @ pool.T + (pool * pool).sum(1)[None, :]
    wrong = x_labels[:, None] == pool_labels[None, :] if targets is None else targets[:, None] != pool_labels[None, :]
    d[wrong] = np.inf
    if np.isinf(d.min(axis=1)).any():
        raise ValueError("the pool has no point of the required class for some rows of x.")
    return pool[np.argmin(d, axis=1)]


def bisect(probe: Probe, owners: np.ndarray, point, lo: np.ndarray, hi: np.ndarray,
           tol: np.ndarray | float, *, line: Line | None = None) -> np.ndarray:
    """Batched binary search for the boundary along a one-parameter path per row.

    ``point(rows, a)`` gives the inputs at parameter ``a`` for the rows ``rows`` (positions in
    ``owners``); ``point(rows, hi)`` must be adversarial and ``point(rows, lo)`` not.  With
    ``line`` (an :meth:`~attacks.oracle.Oracle.line` whose segment ``r`` is row ``r``) the path
    is the segments' ``blend`` and ``point`` is unused: the line answers (see
    :func:`bisect_segments`).  All rows
    bisect in lock-step (one model call per round for the whole batch) until ``hi - lo <= tol``
    or their sample's budget is spent.  ``owners`` may repeat (several searches for one
    sample); a row is only sent while its sample's budget covers it, so no answer is ever a
    refusal.  Returns the final ``hi`` (the adversarial end).
    """
    owners = np.asarray(owners, np.int64)
    lo = np.array(lo, np.float64)
    hi = np.array(hi, np.float64)
    tol = np.broadcast_to(np.asarray(tol, np.float64), lo.shape)
    live = np.flatnonzero(hi - lo > tol)
    while len(live):
        live = live[rank_within(owners[live]) < probe.remaining(owners[live])]  # rows the budget still covers
        if not len(live):
            break
        mid = (lo[live] + hi[live]) / 2
        if line is None:
            adv = probe.is_adversarial(point(live, mid), owners[live])
        else:
            adv = probe.on_line(line, live, mid, owners[live])
        hi[live[adv]] = mid[adv]
        lo[live[~adv]] = mid[~adv]
        live = live[hi[live] - lo[live] > tol[live]]
    return hi


def bisect_segments(probe: Probe, owners: np.ndarray, x0: np.ndarray, x1: np.ndarray,
                    tol: np.ndarray | float) -> np.ndarray:
    """:func:`bisect` for the blend factor ``a`` in ``[0, 1]`` of ``blend(x0, x1, a)`` (``x1``
    adversarial, ``x0`` not; rows inside the box), answered by line queries
    (:meth:`~attacks.oracle.Oracle.line`): the same answers and counts as forming each point,
    cheap for SCD ensembles.  Returns the final blend factors."""
    line = probe.oracle.line(x0, x1)
    return bisect(probe, owners, None, np.zeros(len(x0)), np.ones(len(x0)), tol, line=line)


def closest_per_owner(owners: np.ndarray, d: np.ndarray) -> np.ndarray:
    """For each distinct owner, the row with the smallest ``d`` (ties: the first row)."""
    order = np.lexsort((d, owners))
    first = np.ones(len(order), bool)
    first[1:] = owners[order][1:] != owners[order][:-1]
    return order[first]


def uniform_init(probe: Probe, x: np.ndarray, rngs: list[np.random.Generator], idx: np.ndarray,
                 size: int) -> tuple[np.ndarray, np.ndarray]:
    """Draw up to ``size`` uniform points in the box per sample until one is adversarial.

    Draws come in rounds of 1, 2, 4, ... per sample (so few model calls are needed, and few
    rows are wasted after the first hit); each sample takes the first adversarial draw of
    its own stream.  Returns ``(points (len(idx), d), found mask)``.
    """
    lower, upper = probe.lower, probe.upper
    points = x[idx].copy()
    found = np.zeros(len(idx), bool)
    drawn = np.zeros(len(idx), np.int64)
    batch = 1
    while True:
        todo = np.flatnonzero(~found & (drawn < size))
        todo = todo[probe.remaining(idx[todo]) > 0]
        if not len(todo):
            break
        counts = np.minimum(batch, size - drawn[todo])
        rows = np.concatenate([rngs[idx[j]].uniform(lower, upper, (c, len(lower))).astype(np.float32)
                               for j, c in zip(todo, counts)])
        owners = np.repeat(todo, counts)
        adv = probe.is_adversarial(rows, idx[owners])
        first = np.flatnonzero(adv)
        first = first[np.unique(owners[first], return_index=True)[1]]
        points[owners[first]] = rows[first]
        found[owners[first]] = True
        drawn[todo] += counts
        batch *= 2
    return points, found


def still_active(probe: Probe, best: Best, idx: np.ndarray, early_stop: float | None) -> np.ndarray:
    """The samples of ``idx`` with budget left and, under ``early_stop``, not yet close enough."""
    keep = probe.remaining(idx) > 0
    if early_stop is not None:
        keep &= best.dist[idx] > early_stop
    return idx[keep]


def progress_bar(progress: bool, total: int, desc: str, unit: str):
    """A tqdm bar, or None when ``progress`` is off."""
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit)
