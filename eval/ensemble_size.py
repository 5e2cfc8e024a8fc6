"""Robustness against ensemble size (the SCD paper's Figure 1): the minimum adversarial
distortion of the ensembles made of the first ``k`` members, for ``k`` in a list.

Each sub-ensemble is ``model.members(range(k))`` (every ensemble of this package has it).
Images the sub-ensemble already misclassifies are not counted (they would enter at distance
0 and measure accuracy, not robustness); the result says how many there were.  With
``runs > 1`` each image is attacked with seeds ``seed .. seed + runs - 1`` and the smallest
distortion is kept (the paper's "best of several runs").
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from attacks import distance_key

from .points import correctly_classified
from .transfer import checked_points

__all__ = ["distortion_vs_size"]


def distortion_vs_size(model: Any, x: np.ndarray, y: np.ndarray, attack: Any, sizes: Sequence[int], *,
                       bounds: tuple[Any, Any] = (0.0, 1.0), seed: int = 0, runs: int = 1,
                       max_queries: int | None = None, sample_ids: np.ndarray | None = None) -> list[dict[str, Any]]:
    """One record per size ``k``: ``distance`` (per image, in the attack's norm; None where the
    sub-ensemble misclassifies the image or every run failed), ``median``/``mean`` over the
    images attacked successfully, ``success_rate`` over the images attacked,
    ``misclassified`` (images left out) and ``queries`` (median per image and run)."""
    x, y = checked_points(model, x, y)
    sizes = list(sizes)
    if not sizes or any(isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= model.n_votes
                        for k in sizes):
        raise ValueError(f"sizes must be integers in [1, {model.n_votes}], got {list(sizes)!r}.")
    if isinstance(runs, bool) or not isinstance(runs, (int, np.integer)) or runs < 1:
        raise ValueError(f"runs must be an integer >= 1, got {runs!r}.")
    ids = np.arange(len(x)) if sample_ids is None else np.asarray(sample_ids)
    records = []
    for k in sizes:
        sub = model.members(range(int(k)))
        correct = np.flatnonzero(correctly_classified(sub, x, y))
        best = np.full(len(x), np.inf)
        queries = []
        for r in range(runs):
            if not len(correct):
                break
            result = attack(sub, x[correct], y[correct], bounds=bounds, seed=seed + r, max_queries=max_queries,
                            sample_ids=ids[correct])
            dist = getattr(result, distance_key(attack.norm))
            best[correct] = np.minimum(best[correct], np.where(result.success, dist, np.inf))
            queries.append(result.queries)
        found = np.isfinite(best)
        records.append({
            "k": int(k), "distance": [float(d) if np.isfinite(d) else None for d in best],
            "median": float(np.median(best[found])) if found.any() else None,
            "mean": float(np.mean(best[found])) if found.any() else None,
            "success_rate": float(found[correct].mean()) if len(correct) else None,
            "misclassified": int(len(x) - len(correct)),
            "queries": float(np.median(np.concatenate(queries))) if queries else None,
        })
    return records
