"""RayS (Chen & Gu, KDD 2020, arXiv 2006.12792): hard-label L∞ ray search.

RayS searches over sign directions ``s ∈ {-1, +1}^d`` for the one whose ray from the
original reaches the decision boundary soonest.  The objective is the boundary radius
``g(s) = min r such that clip(x0 + r·s/‖s‖₂)`` is adversarial, in L2 units along the unit
ray (the L∞ distance of an unclipped point on the ray is ``r/√d``).  Starting from
``s = +1`` and ``d_t = ∞``, hierarchical block flipping proposes candidates: at level
``k = 0, 1, 2, ...`` the flattened input is cut into ``2^k`` contiguous blocks of
``⌈d/2^k⌉`` features and each block's signs are flipped in turn.  One query at the current
best radius ``d_t`` says whether a candidate can improve (the first one, with ``d_t = ∞``,
is at the box corner); only then does a binary search on ``[0, min(d_t, R)]`` to ``tol``
find its radius, and the candidate is kept if that radius is below ``d_t``.  Once blocks are
single features, sweeps over single coordinates repeat until the query limit.

The starting direction ``s = +1`` itself is never queried, as in the authors' code: the
first candidate flips every sign, so a point adversarial only along ``+1`` can be missed
(HopSkipJump or Boundary find it).

This follows the authors' batched ``RayS.py`` (github.com/uclaml/RayS): same start, same
block order, same one-query check, the same ``min(d_t, ‖s‖₂)`` upper bound on the box [0, 1]
(generalised below), at least one bisection round per search, ``tol=1e-3``,
``query_limit=10000``; ``d_t``, the signs and the query counts match it exactly.  RayS draws no random numbers, so the
``seed`` has no effect.

Differences from the authors' code
----------------------------------
- numpy on flat rows through the query-counted oracle, so any model and any device (the
  original assumes NCHW images in [0, 1], ``.cuda()`` and a ``predict_label`` method).
  Images flattened in C order give the authors' block order.
- Any box: the binary search starts at ``min(d_t, R)`` with ``R = ‖s‖₂·max(upper - lower)``,
  the radius from which every point on the ray is the clipped box corner.  On [0, 1] this is
  the authors' ``min(d_t, ‖s‖₂)``; on a wider box their bound is not a corner, was never
  queried and may not be adversarial.
- Exact per-sample budgets: every row is checked against ``query_limit`` and the oracle's
  ``max_queries`` before it is sent.  The authors check ``query_limit`` only at the start of a
  block, so a binary search can overrun it by up to ``log2(√d/tol)`` queries (they clamp
  the reported count).  A search cut short keeps its last adversarial radius.
- Early stop per sample: with ``early_stop=ε`` a sample stops querying once its L∞ distance
  is ``≤ ε``.  The authors' batched version keeps minimising every sample until all of them are
  out of queries (it only records the query count at first success, ``stop_queries``).  Without
  ``early_stop`` every sample uses its whole budget, as there.
- The reported example is the closest (in L∞) adversarial point found (the shared
  :class:`~attacks.base.Best`), which is the authors' last accepted point unless clipping
  made an earlier one closer.  ``d_t`` and the signs follow the authors exactly.
- Samples the model already misclassifies are not attacked (distance 0), and every success
  is confirmed by a final uncounted query (shared base).

RayS is in neither ART nor foolbox.
"""

from __future__ import annotations

from numbers import Integral
from typing import Any

import numpy as np

from .base import Attack
from .criteria import Probe
from .search import Best, progress_bar

__all__ = ["RayS"]

_DEFAULT_QUERY_LIMIT = 10000
"""The authors' query limit, used when neither ``query_limit`` nor the oracle's budget is set."""


class RayS(Attack):
    """RayS hard-label L∞ attack (untargeted or targeted), deterministic.

    Parameters
    ----------
    query_limit : int, optional
        Most model rows per sample (the authors' default is 10000; 40000 for their ADBD
        leaderboard).  None (the default): the oracle's budget (``max_queries``) when it has
        one, else 10000.  When both are set a sample stops at whichever comes first.
    tol : float, default=1e-3
        Binary-search tolerance on the radius, in L2 units along the unit ray ``s/‖s‖₂``
        (so about ``tol/√d`` in L∞).

    Notes
    -----
    Extra fields of the result (``result.extra``):

    - ``radius`` ``(n,)`` float64: the best radius ``d_t``; 0.0 for samples the model already
      misclassified, -1.0 where no adversarial ray was found (JSON has no infinity).
    - ``signs`` ``(n, d)`` int8: the sign vector ``s`` of that radius (all +1 if none found).
    - ``stop_queries`` ``(n,)`` int64: rows used when the sample first reached L∞ ``≤
      early_stop`` (without ``early_stop``: when it first found an adversarial point); 0 for
      samples already misclassified, -1 if never.

    References
    ----------
    Jinghui Chen and Quanquan Gu, "RayS: A Ray Searching Method for Hard-label Adversarial
    Attack", KDD 2020, arXiv:2006.12792.
    """

    name = "rays"

    def __init__(self, query_limit: int | None = None, tol: float = 1e-3):
        self.query_limit = query_limit
        self.tol = tol

    @property
    def norm(self) -> float:
        return np.inf

    def _check_params(self) -> None:
        q = self.query_limit
        if q is not None and (isinstance(q, bool) or not isinstance(q, Integral) or q < 1):
            raise ValueError(f"query_limit must be a positive integer (rows per sample), got {q!r}.")
        t = self.tol
        if isinstance(t, bool) or not isinstance(t, (int, float, np.floating, np.integer)) or \
                not (np.isfinite(t) and t > 0):
            raise ValueError(f"tol must be a finite number > 0 (binary-search tolerance on the radius), got {t!r}.")

    # ------------------------------------------------------------------ algorithm
    def run(self, probe: Probe, x: np.ndarray, best: Best, rngs: list[np.random.Generator], *,
            active: np.ndarray, starting_points: np.ndarray | None, early_stop: float | None,
            progress: bool) -> dict[str, Any]:
        n, d = x.shape
        limit = int(self.query_limit or probe.oracle.budget or _DEFAULT_QUERY_LIMIT)
        tol = float(self.tol)
        width = float(np.max(np.asarray(probe.upper, np.float64) - np.asarray(probe.lower, np.float64)))
        corner = np.sqrt(d) * width  # from this radius on, every point of a ray is a box corner

        signs = np.ones((n, d), np.int8)
        radius = np.full(n, np.inf)
        spent = np.zeros(n, np.int64)
        stop_queries = np.where(active, -1, 0).astype(np.int64)

        def point(owners: np.ndarray, s: np.ndarray, r: np.ndarray) -> np.ndarray:
            return _ray_point(probe, x[owners], s, r, corner)

        def can_query(owners: np.ndarray) -> np.ndarray:
            ok = spent[owners] < limit
            if ok.any():
                ok[ok] = probe.remaining(owners[ok]) > 0
            return ok

        live = np.flatnonzero(active)
        bar = progress_bar(progress, limit, "RayS", "query")
        shown = 0
        level, block = 0, 0
        while True:
            live = live[can_query(live)]
            if early_stop is not None:
                live = live[best.dist[live] > early_stop]
            if not len(live):
                break
            size = -(-d // (1 << level))  # ceil(d / 2^level)
            start, end = block * size, min(d, (block + 1) * size)

            cand = signs[live].copy()
            cand[:, start:end] *= -1
            adv = probe.is_adversarial(point(live, cand, radius[live]), live, clipped=True)
            spent[live] += 1

            found = np.flatnonzero(adv)
            if len(found):
                owners = live[found]
                s_found = cand[found]
                hi = _search(probe, owners, s_found, np.minimum(radius[owners], corner), point, can_query, spent,
                             tol)
                better = np.flatnonzero(hi < radius[owners])
                if len(better):
                    who = owners[better]
                    radius[who] = hi[better]
                    signs[who] = s_found[better]
                    kept = best.offer(who, point(who, s_found[better], hi[better]), np.ones(len(who), bool))
                    best.record(who[kept])

            block += 1
            if block == 1 << level or end == d:
                level, block = level + 1, 0

            first = live[stop_queries[live] < 0]
            reached = best.dist[first] <= early_stop if early_stop is not None else best.found[first]
            stop_queries[first[reached]] = spent[first[reached]]
            if bar is not None:
                low = int(spent[live].min())
                if low > shown:
                    bar.update(low - shown)
                    shown = low
                done = best.found[active]
                bar.set_postfix(blocks_level=level, found=f"{int(done.sum())}/{int(active.sum())}", refresh=False)
        if bar is not None:
            bar.close()

        best.close(np.flatnonzero(active & best.found))  # each budget curve ends at the final query count
        radius[~active] = 0.0
        radius[~np.isfinite(radius)] = -1.0
        return {"radius": radius, "signs": signs, "stop_queries": stop_queries}


def _ray_point(probe: Probe, x0: np.ndarray, s: np.ndarray, r: np.ndarray, corner: float) -> np.ndarray:
    """``clip(x0 + min(r, R)·s/‖s‖₂)`` row by row, float32; ``s`` in ``{±1}^d``, ``r`` may be ∞.

    Radii at or beyond ``R = corner`` all give the box corner, so capping them changes no
    point and avoids ``0·∞``.  The arithmetic is the authors' ``x + d·(s/‖s‖₂)`` in float64."""
    assert x0.shape == s.shape and r.shape == (len(x0),)
    unit = s / np.sqrt(s.shape[1])
    return probe.clip(x0 + np.minimum(r, corner)[:, None] * unit)


def _search(probe: Probe, owners: np.ndarray, s: np.ndarray, hi: np.ndarray, point, can_query,
            spent: np.ndarray, tol: float) -> np.ndarray:
    """Lock-step binary search for the boundary radius along the rays ``s`` of ``owners`` on
    ``[0, hi]``, where ``point(owners, s, hi)`` was just answered adversarial.

    Like the authors' code every search makes at least one round, then goes on while
    ``hi - lo > tol`` and its sample has queries left (``can_query``; ``spent`` is updated).
    Returns the final ``hi``: the start or a midpoint the model answered adversarial."""
    lo = np.zeros(len(owners))
    hi = np.array(hi, np.float64)
    todo = np.arange(len(owners))
    while len(todo):
        todo = todo[can_query(owners[todo])]
        if not len(todo):
            break
        mid = (lo[todo] + hi[todo]) / 2.0
        adv = probe.is_adversarial(point(owners[todo], s[todo], mid), owners[todo], clipped=True)
        spent[owners[todo]] += 1
        hi[todo[adv]] = mid[adv]
        lo[todo[~adv]] = mid[~adv]
        todo = todo[hi[todo] - lo[todo] > tol]
    return hi

