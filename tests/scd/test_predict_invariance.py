"""A prediction is a function of the row alone: not of the rows batched with it, nor of which
votes are evaluated together, even for rows within rounding of a hidden unit's threshold
(where decision-based attacks stop)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import scd
from scd._network import hidden_signs, stack_units, unit_norms


@pytest.fixture(scope="module", params=["SCD01", "SCD01BNN", "SCDCE"])
def fitted(request, digits):
    model = getattr(scd, request.param)(n_votes=6, hidden_nodes=5, n_iters=40, random_state=0)
    return model.fit(digits.x_train, digits.y_train)


def on_thresholds(model, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row ``i`` of ``X`` moved onto the threshold of hidden unit ``(v_i, k_i)`` in float64 and
    rounded to float32: its pre-activation there is within float32 rounding of 0."""
    V, _, H = model.W1_.shape
    votes, units = np.arange(len(X)) % V, (np.arange(len(X)) // V) % H
    w = model.W1_[votes, :, units].astype(np.float64)  # (n, d)
    b = model.b1_[votes, units].astype(np.float64)
    t = -(np.einsum("nd,nd->n", X.astype(np.float64), w) + b) / np.einsum("nd,nd->n", w, w)
    return (X + t[:, None] * w).astype(np.float32), votes, units


def exact_sign(x: np.ndarray, w: np.ndarray, b: float) -> float:
    """The sign of ``x . w + b`` in exact arithmetic (float32 products are exact in float64, and
    ``math.fsum`` rounds their sum correctly)."""
    return float(np.sign(math.fsum((x.astype(np.float64) * w.astype(np.float64)).tolist() + [float(b)])))


def assert_exact_signs_on_thresholds(model, X: np.ndarray) -> None:
    Xb, votes, units = on_thresholds(model, X)
    stacked = stack_units(torch.tensor(model.W1_))
    signs = hidden_signs(torch.from_numpy(Xb), stacked, torch.from_numpy(model.b1_.reshape(-1)), unit_norms(stacked))
    H = model.W1_.shape[2]
    got = signs[np.arange(len(Xb)), votes * H + units].numpy()
    want = [exact_sign(Xb[i], model.W1_[votes[i], :, units[i]], model.b1_[votes[i], units[i]]) for i in range(len(Xb))]
    np.testing.assert_array_equal(got, want)


def test_hidden_signs_are_exact_on_thresholds(fitted, digits):
    assert_exact_signs_on_thresholds(fitted, digits.x_test[:120])


def test_reduced_precision_products_still_give_exact_signs(fitted, digits):
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("medium")
    try:
        assert_exact_signs_on_thresholds(fitted, digits.x_test[:60])
    finally:
        torch.set_float32_matmul_precision(before)


def test_outputs_do_not_depend_on_the_batch(fitted, digits):
    Xb, _, _ = on_thresholds(fitted, digits.x_test[:90])
    batch = fitted.decision_function(Xb)
    alone = np.array([fitted.decision_function(Xb[i : i + 1])[0] for i in range(len(Xb))])
    others = digits.x_test[:33]
    mixed = fitted.decision_function(np.vstack([others, Xb[::-1]]))[len(others) :][::-1]
    np.testing.assert_array_equal(batch, alone)
    np.testing.assert_array_equal(batch, mixed)


def test_members_alone_vote_as_inside_the_ensemble(fitted, digits):
    Xb, _, _ = on_thresholds(fitted, digits.x_test[:60])
    alone = np.mean([fitted.predict_proba(Xb, member=v)[:, 1] for v in range(fitted.W1_.shape[0])], axis=0)
    np.testing.assert_allclose(alone, fitted.predict_proba(Xb)[:, 1], rtol=1e-12, atol=0)
