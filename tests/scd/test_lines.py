"""Line queries (scd.lines.Segments) answer exactly what predict answers at the points a binary
search forms, also where a point lies within rounding of a hidden unit's threshold."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import scd
from scd._network import hidden_signs, stack_units, unit_norms
from scd.lines import Segments, segment_points


@pytest.fixture(scope="module", params=["SCD01", "SCDCE"])
def fitted(request, digits):
    model = getattr(scd, request.param)(n_votes=3, hidden_nodes=4, n_iters=20, random_state=0, n_jobs=1)
    return model.fit(digits.x_train, digits.y_train)


def exact_signs(model, X: np.ndarray) -> np.ndarray:
    """Every hidden pre-activation's sign in exact arithmetic (float32 products are exact in
    float64 and ``math.fsum`` rounds their sum correctly), vote by vote: brute force."""
    V, _, H = model.W1_.shape
    out = np.empty((len(X), V * H))
    for i, x in enumerate(X.astype(np.float64)):
        for v in range(V):
            for k in range(H):
                terms = (x * model.W1_[v, :, k].astype(np.float64)).tolist() + [float(model.b1_[v, k])]
                out[i, v * H + k] = np.sign(math.fsum(terms))
    return out


def predict_signs(model, X: np.ndarray) -> np.ndarray:
    units = stack_units(torch.tensor(model.W1_))
    return hidden_signs(torch.from_numpy(X), units, torch.from_numpy(model.b1_.reshape(-1)), unit_norms(units)).numpy()


def crossing(model, x0: np.ndarray, x1: np.ndarray, unit: int) -> float:
    """The blend factor where the segment crosses hidden unit ``unit``'s threshold (float64)."""
    H = model.W1_.shape[2]
    w = model.W1_[unit // H, :, unit % H].astype(np.float64)
    b = float(model.b1_[unit // H, unit % H])
    p0, p1 = x0.astype(np.float64) @ w + b, x1.astype(np.float64) @ w + b
    return p0 / (p0 - p1) if p0 != p1 else 0.5


@settings(max_examples=15, deadline=None)
@given(i=st.integers(0, 88), j=st.integers(0, 88), unit=st.integers(0, 11), ulps=st.integers(-3, 3),
       lower=st.sampled_from([0.0, 0.25]))
def test_line_answers_equal_predict_near_thresholds(fitted, digits, i, j, unit, ulps, lower):
    bounds = (lower, 1.0)
    x0, x1 = (np.clip(digits.x_test[[k]], *bounds) for k in (i, j))
    a = np.float32(np.clip(crossing(fitted, x0[0], x1[0], unit), 0, 1))
    for _ in range(abs(ulps)):  # adjacent float32 blend factors: points on either side of the threshold
        a = np.nextafter(a, np.float32(np.sign(ulps)), dtype=np.float32)
    a = np.array([np.clip(a, 0, 1), 0.0, 1.0, 0.5], np.float32)
    seg = Segments(fitted, np.repeat(x0, 4, 0), np.repeat(x1, 4, 0), bounds)
    points = np.clip(segment_points(np.repeat(x0, 4, 0), np.repeat(x1, 4, 0), a), *bounds)
    np.testing.assert_array_equal(seg.points(a), points)
    got = seg.hidden_signs(a)
    np.testing.assert_array_equal(got, exact_signs(fitted, points))
    np.testing.assert_array_equal(got, predict_signs(fitted, points))
    np.testing.assert_array_equal(seg.predict(a), fitted.predict(points))


def test_line_answers_on_a_whole_binary_search(fitted, digits):
    x0, x1 = digits.x_test[:20], digits.x_test[40:60]
    seg = fitted.segments(x0, x1, (0.0, 1.0))
    lo, hi = np.zeros(20), np.ones(20)
    rows = np.arange(20)
    start = fitted.predict(x0)
    for _ in range(30):  # past float32 resolution: every point ends within rounding of the boundary
        a = (lo + hi) / 2
        want = fitted.predict(np.clip(segment_points(x0, x1, a), 0, 1))
        np.testing.assert_array_equal(seg.predict(a[::-1], rows[::-1]), want[::-1])
        flip = want != start
        hi, lo = np.where(flip, a, hi), np.where(flip, lo, a)


def test_segments_refuse_ends_outside_the_box(fitted, digits):
    x = digits.x_test[:2]
    with pytest.raises(ValueError, match="inside the bounds"):
        Segments(fitted, x, x + 2.0, (0.0, 1.0))
    with pytest.raises(ValueError, match="shape"):
        Segments(fitted, x, x[:1], (0.0, 1.0))
    with pytest.raises(ValueError, match="one blend factor per row"):
        Segments(fitted, x, x, (0.0, 1.0)).predict(np.zeros(3))


def test_points_within_rounding_of_a_threshold_are_recomputed_as_predict_does(fitted, digits, monkeypatch):
    """At a segment's float32 crossing of a unit's threshold the affine value cannot decide the
    sign: the formed point is summed as predict sums its undecided entries, and agrees."""
    formed = []
    points = Segments.points
    monkeypatch.setattr(Segments, "points", lambda self, a, rows=None: formed.append(len(a)) or points(self, a, rows))
    x0, x1 = digits.x_test[:10], digits.x_test[20:30]
    for unit in range(12):
        a = np.array([crossing(fitted, x0[i], x1[i], unit) for i in range(10)], np.float32).clip(0, 1)
        seg = Segments(fitted, x0, x1, (0.0, 1.0))
        np.testing.assert_array_equal(seg.hidden_signs(a), exact_signs(fitted, seg.points(a)))
    assert len(formed) > 12  # some crossings were undecided (and each check above formed its points once)
