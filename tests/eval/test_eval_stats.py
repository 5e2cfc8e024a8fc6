"""Bootstrap intervals, paired tests and distortion summaries of eval.stats."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats as sps

from eval.stats import bootstrap_ci, paired_test, summarize_distances


def _sample(n: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).lognormal(mean=0.0, sigma=0.5, size=n)


@pytest.mark.parametrize("statistic", ["mean", "median"])
def test_ci_contains_statistic_and_matches_brute_force(statistic):
    x = _sample(60)
    lo, hi = bootstrap_ci(x, statistic, confidence=0.9, n_resamples=500, seed=3)
    point = np.mean(x) if statistic == "mean" else np.median(x)
    assert lo < point < hi
    # independent loop-based percentile bootstrap with the same random stream
    rng = np.random.default_rng(3)
    idx = rng.integers(0, x.size, size=(500, x.size))
    f = np.mean if statistic == "mean" else np.median
    est = np.array([f(x[row]) for row in idx])
    assert (lo, hi) == pytest.approx((np.quantile(est, 0.05), np.quantile(est, 0.95)), rel=1e-12)


def test_ci_close_to_scipy_percentile_bootstrap():
    x = _sample(200)
    lo, hi = bootstrap_ci(x, "mean", n_resamples=4000, seed=0)
    ref = sps.bootstrap((x,), np.mean, method="percentile", n_resamples=4000,
                        random_state=np.random.default_rng(5)).confidence_interval
    width = ref.high - ref.low
    assert abs(lo - ref.low) < 0.1 * width and abs(hi - ref.high) < 0.1 * width


def test_ci_narrows_with_more_data():
    small = bootstrap_ci(_sample(20), "median", seed=0)
    large = bootstrap_ci(_sample(2000), "median", seed=0)
    assert large[1] - large[0] < 0.5 * (small[1] - small[0])


def test_ci_reproducible_with_seed_and_differs_with_another():
    x = _sample(50)
    assert bootstrap_ci(x, seed=7) == bootstrap_ci(x, seed=7)
    assert bootstrap_ci(x, seed=7) != bootstrap_ci(x, seed=8)


def test_ci_drops_nan_and_needs_two_values():
    x = _sample(30)
    with_nan = np.concatenate([x[:10], [np.nan], x[10:], [np.nan]])
    assert bootstrap_ci(with_nan, seed=2) == bootstrap_ci(x, seed=2)
    lo, hi = bootstrap_ci([1.0, np.nan], seed=0)
    assert math.isnan(lo) and math.isnan(hi)


@pytest.mark.parametrize("kwargs, match", [
    (dict(statistic="mode"), "statistic"),
    (dict(confidence=1.0), "confidence"),
    (dict(n_resamples=0), "n_resamples"),
])
def test_ci_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        bootstrap_ci(_sample(10), **kwargs)


def test_ci_rejects_bad_values():
    with pytest.raises(ValueError, match="1-D"):
        bootstrap_ci(np.ones((3, 3)))
    with pytest.raises(ValueError, match="infinite"):
        bootstrap_ci([1.0, np.inf, 2.0])


def test_paired_test_matches_scipy_and_drops_nan_pairs():
    rng = np.random.default_rng(0)
    a = rng.normal(1.0, 0.3, size=40)
    b = a + rng.normal(0.05, 0.2, size=40)
    a_nan, b_nan = a.copy(), b.copy()
    a_nan[[3, 17]] = np.nan
    b_nan[[5, 17, 30]] = np.nan
    keep = np.ones(40, bool)
    keep[[3, 5, 17, 30]] = False
    res = paired_test(a_nan, b_nan)
    assert res["n"] == 36
    d = a[keep] - b[keep]
    assert res["mean_difference"] == pytest.approx(d.mean())
    assert res["median_difference"] == pytest.approx(np.median(d))
    assert res["wilcoxon_p"] == pytest.approx(sps.wilcoxon(d).pvalue, rel=1e-12)
    assert res["t_p"] == pytest.approx(sps.ttest_1samp(d, 0.0).pvalue, rel=1e-12)
    json.dumps(res)  # plain types only
    assert all(type(v) in (int, float) for v in res.values())


def test_paired_test_clear_shift_gives_small_p():
    rng = np.random.default_rng(1)
    a = rng.uniform(0.5, 1.5, size=50)
    res = paired_test(a + 0.3 + rng.normal(0, 0.05, size=50), a)
    assert res["wilcoxon_p"] < 1e-6 and res["t_p"] < 1e-6
    assert res["mean_difference"] == pytest.approx(0.3, abs=0.05)
    same = paired_test(a, a + rng.normal(0, 0.05, size=50))
    assert same["wilcoxon_p"] > 0.01 and same["t_p"] > 0.01


def test_paired_test_undefined_cases():
    assert paired_test([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])["wilcoxon_p"] is None
    constant = paired_test([1.0, 2.0, 3.0], [0.5, 1.5, 2.5])
    assert constant["t_p"] is None and constant["wilcoxon_p"] is not None
    one = paired_test([1.0, np.nan], [2.0, 1.0])
    assert one["n"] == 1 and one["wilcoxon_p"] is None and one["t_p"] is None
    none = paired_test([np.nan], [1.0])
    assert none == {"n": 0, "mean_difference": None, "median_difference": None,
                    "wilcoxon_p": None, "t_p": None}


def test_paired_test_shape_mismatch():
    with pytest.raises(ValueError, match="same shape"):
        paired_test(np.ones(5), np.ones(4))


def test_summarize_distances_counts_successes():
    ok = _sample(20)
    values = np.concatenate([ok[:7], [np.nan] * 5, ok[7:]])
    s = summarize_distances(values, seed=4)
    assert (s["n"], s["n_success"]) == (25, 20)
    assert s["success_rate"] == pytest.approx(0.8)
    assert s["mean"] == pytest.approx(ok.mean()) and s["median"] == pytest.approx(np.median(ok))
    assert s["mean_ci"] == list(bootstrap_ci(ok, "mean", seed=4))
    assert s["median_ci"] == list(bootstrap_ci(ok, "median", seed=4))
    assert s["mean_ci"][0] < s["mean"] < s["mean_ci"][1]
    json.loads(json.dumps(s))


def test_summarize_distances_without_successes():
    s = summarize_distances([np.nan, np.nan, np.nan])
    assert s == {"n": 3, "n_success": 0, "success_rate": 0.0, "mean": None, "median": None,
                 "mean_ci": None, "median_ci": None}
    single = summarize_distances([np.nan, 2.0])
    assert single["mean"] == 2.0 and single["mean_ci"] is None
    assert summarize_distances([])["success_rate"] is None
