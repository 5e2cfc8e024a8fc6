"""Statistics for the distortion tables of the evaluation suite.

A table holds, per model, the minimum adversarial distortion found for each test image,
with NaN where the attack failed.  These helpers summarise one column (success rate,
mean / median with bootstrap confidence intervals) and compare two models on the same
images (paired tests), returning plain Python types so results can go straight to JSON.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import stats as _sps

__all__ = ["STATISTICS", "bootstrap_ci", "budget_summary", "paired_test", "summarize_distances", "wilson_ci"]

STATISTICS = ("mean", "median")


def _as_float_array(values: Any, name: str, *, one_d: bool = True) -> np.ndarray:
    """``values`` as a float array; NaN marks a failed attack, infinities are refused."""
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be numeric, got {type(values).__name__}") from exc
    if one_d and arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if np.isinf(arr).any():
        raise ValueError(f"{name} contains infinite values; use NaN for failed attacks")
    return arr


def _float_or_none(x: float) -> float | None:
    """A plain float, or None for NaN (undefined), so the value is valid JSON."""
    x = float(x)
    return None if math.isnan(x) else x


def bootstrap_ci(
    values: Any,
    statistic: str = "mean",
    *,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean or median of ``values``.

    NaN entries (failed attacks) are dropped first; with fewer than two values left the
    interval is undefined and ``(nan, nan)`` is returned.  All resamples are drawn at
    once as an ``(n_resamples, n)`` index matrix from ``np.random.default_rng(seed)``, so
    the result is deterministic for a given seed.
    """
    if statistic not in STATISTICS:
        raise ValueError(f"statistic must be one of {STATISTICS}, got {statistic!r}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, (int, np.integer)) or n_resamples < 1:
        raise ValueError(f"n_resamples must be a positive integer, got {n_resamples!r}")
    arr = _as_float_array(values, "values")
    arr = arr[~np.isnan(arr)]
    n = arr.size
    if n < 2:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    samples = arr[rng.integers(0, n, size=(int(n_resamples), n))]
    reduce = np.mean if statistic == "mean" else np.median
    estimates = reduce(samples, axis=1)
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(estimates, [alpha, 1.0 - alpha])
    return (float(lo), float(hi))


def paired_test(a: Any, b: Any) -> dict[str, Any]:
    """Paired comparison of two models' per-image distortions on the same images.

    Pairs where either value is NaN are dropped.  Returns the number of pairs, the mean
    and median of ``a - b``, and two-sided p-values of the Wilcoxon signed-rank test and
    the paired t-test (None where a test is undefined: fewer than two pairs, all
    differences zero, or zero variance of the differences).
    """
    x = _as_float_array(a, "a", one_d=False)
    y = _as_float_array(b, "b", one_d=False)
    if x.shape != y.shape:
        raise ValueError(f"a and b must have the same shape, got {x.shape} and {y.shape}")
    x, y = x.ravel(), y.ravel()
    keep = ~(np.isnan(x) | np.isnan(y))
    x, y = x[keep], y[keep]
    d = x - y
    n = int(d.size)
    out: dict[str, Any] = {
        "n": n,
        "mean_difference": _float_or_none(d.mean()) if n else None,
        "median_difference": _float_or_none(np.median(d)) if n else None,
        "wilcoxon_p": None,
        "t_p": None,
    }
    if n < 2:
        return out
    if np.any(d != 0):
        out["wilcoxon_p"] = _float_or_none(_sps.wilcoxon(x, y).pvalue)
    if np.var(d) > 0:
        out["t_p"] = _float_or_none(_sps.ttest_rel(x, y).pvalue)
    return out


def summarize_distances(values: Any, *, seed: int = 0) -> dict[str, Any]:
    """Success rate and mean / median (with 95% bootstrap CIs) of per-image distortions.

    ``values`` is 1-D with NaN where the attack failed; the statistics are over the
    successes only.  Undefined entries (no successes; a CI from fewer than two
    successes) are None, everything else a plain int / float / list.
    """
    arr = _as_float_array(values, "values")
    ok = arr[~np.isnan(arr)]
    n, n_success = int(arr.size), int(ok.size)

    def ci(statistic: str) -> list[float] | None:
        lo, hi = bootstrap_ci(ok, statistic, seed=seed)
        return None if math.isnan(lo) else [lo, hi]

    return {
        "n": n,
        "n_success": n_success,
        "success_rate": n_success / n if n else None,
        "mean": float(ok.mean()) if n_success else None,
        "median": float(np.median(ok)) if n_success else None,
        "mean_ci": ci("mean"),
        "median_ci": ci("median"),
    }


def budget_summary(distance_at: Any, queries: Any) -> dict[str, Any]:
    """The query-budget curve of a set of attacks: per budget in ``queries``, the fraction of
    attacks that had found an adversarial example within that many queries and the median best
    distance, counting the attacks that had not as infinitely far (None when more than half had not).

    ``distance_at`` is ``(len(queries), n_attacks)``: each attack's best distance within each
    budget, inf (or NaN) where it had none yet.
    """
    d = np.asarray(distance_at, np.float64)  # None (JSON's failure) becomes NaN
    budgets = [int(q) for q in queries]
    if d.ndim != 2 or d.shape[0] != len(budgets):
        raise ValueError(f"distance_at must be (len(queries), n_attacks) = ({len(budgets)}, n), got {d.shape}")
    d = np.where(np.isnan(d), np.inf, d)
    n = d.shape[1]
    medians = [_float_or_none(np.median(row)) if n else None for row in d]
    return {"queries": budgets, "median_distance": [None if m is None or math.isinf(m) else m for m in medians],
            "success_rate": [float(np.isfinite(row).mean()) if n else None for row in d], "n": n}


def wilson_ci(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float] | None:
    """The Wilson score interval of a proportion ``successes / n`` (scipy's), None when ``n`` is 0."""
    if n <= 0:
        return None
    ci = _sps.binomtest(int(successes), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return (float(ci.low), float(ci.high))
