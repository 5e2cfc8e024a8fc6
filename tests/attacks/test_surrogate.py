"""Gradient surrogates: the smooth SCD relaxation and the target/surrogate pairing."""

import numpy as np
import pytest
import torch

import scd
from attacks import PGD, Oracle
from attacks.surrogate import SurrogateGradients, smooth_scd


@pytest.fixture(scope="module")
def scd01(digits):
    return scd.SCD01(n_votes=5, n_iters=100, random_state=0).fit(digits.x_train, digits.y_train)


def test_smooth_relaxation_tends_to_the_ensemble(scd01, digits):
    """With tiny temperatures the relaxation's probabilities are the real vote fractions."""
    x = digits.x_test
    sharp = smooth_scd(scd01, hidden_temperature=1e-6, vote_temperature=1e-6)
    with torch.no_grad():
        p = torch.softmax(sharp(torch.from_numpy(x)), 1).numpy()
    assert np.mean(np.abs(p - scd01.predict_proba(x)) < 1e-3) > 0.99
    soft = SurrogateGradients(scd01, smooth_scd(scd01), "smooth")
    assert 0.8 < soft.agreement(x) <= 1.0


def test_soft_voting_keeps_the_vote_sigmoids(digits):
    model = scd.SCDCE(n_votes=3, n_iters=50, random_state=0).fit(digits.x_train, digits.y_train)
    module = smooth_scd(model, hidden_temperature=1e-6)
    with torch.no_grad():
        p = torch.softmax(module(torch.from_numpy(digits.x_test)), 1).numpy()
    close = np.abs(p - model.predict_proba(digits.x_test)).max(axis=1) < 1e-4
    assert close.mean() > 0.99


def test_surrogate_gradients_match_finite_differences(scd01, digits):
    pair = SurrogateGradients(scd01, smooth_scd(scd01, 0.5, 0.5), "smooth")
    x = digits.x_test[:3].astype(np.float64)
    y = np.array([0, 1, 0])
    g = pair.loss_gradient(x.astype(np.float32), y)
    h = 1e-3
    for j in (5, 20, 40):
        e = np.zeros_like(x)
        e[:, j] = h
        lp = -torch.log_softmax(torch.from_numpy(pair.logits(x + e)), 1).numpy()[np.arange(3), y]
        lm = -torch.log_softmax(torch.from_numpy(pair.logits(x - e)), 1).numpy()[np.arange(3), y]
        np.testing.assert_allclose(g[:, j], (lp - lm) / (2 * h), rtol=2e-2, atol=1e-4)
    w = np.array([[1.0, -1.0]] * 3)
    g_margin = pair.logits_gradient(x.astype(np.float32), w)
    assert g_margin.shape == x.shape and np.isfinite(g_margin).all()


def test_pgd_through_the_smooth_surrogate_is_judged_on_the_real_ensemble(scd01, digits):
    """Without a surrogate PGD cannot run; with one, every success is the real ensemble's answer."""
    x, y = digits.x_test, digits.y_test
    ok = np.flatnonzero(scd01.predict(x) == y)[:12]
    with pytest.raises(TypeError, match="gradient"):
        PGD(eps=0.3)(scd01, x[ok], y[ok], bounds=(0, 1))
    pair = SurrogateGradients(scd01, smooth_scd(scd01), "smooth")
    result = PGD(eps=0.3, steps=10)(pair, x[ok], y[ok], bounds=(0, 1))
    assert result.success.any()
    real = scd01.predict(result.x_adv[result.success])
    assert np.all(real != y[ok][result.success])
    assert np.all(result.queries == 11)  # 10 gradient rows + one label row, all counted
    assert Oracle(pair, bounds=(0, 1)).has_gradients


def test_bad_inputs(scd01):
    with pytest.raises(TypeError, match="fitted SCD"):
        smooth_scd(object())
    with pytest.raises(ValueError, match="hidden_temperature"):
        smooth_scd(scd01, hidden_temperature=0)
    with pytest.raises(TypeError, match="fitted classifier"):
        SurrogateGradients(object(), smooth_scd(scd01), "smooth")
