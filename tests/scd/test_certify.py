"""scd.certify's API: bad input, the misclassified and unreachable cases, time limits, and
consistency with every attack on digits (lower bound <= each attack's confirmed distance)."""

from __future__ import annotations

import copy
import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier

import scd
from attacks import Boundary, HopSkipJump, RayS
from attacks.structure import StructureAttack
from scd.certify import certify, parse_norm


@pytest.fixture(scope="module")
def digits_model(digits):
    model = scd.SCD01(n_votes=5, hidden_nodes=6, n_iters=150, random_state=0).fit(digits.x_train, digits.y_train)
    right = np.flatnonzero(model.predict(digits.x_test) == digits.y_test)[:4]
    return model, digits.x_test[right], digits.y_test[right]


def test_bad_input_is_refused_before_any_work(digits_model):
    model, x, y = digits_model
    with pytest.raises(ValueError, match="SCD ensembles"):
        certify(RandomForestClassifier(n_estimators=2).fit(x, [0, 1, 0, 1][: len(x)]), x)
    with pytest.raises(ValueError, match="shape"):
        certify(model, x[:, :10])
    bad = x.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        certify(model, bad)
    with pytest.raises(ValueError, match="inside bounds"):
        certify(model, x + 2.0)
    with pytest.raises(ValueError, match="norm"):
        certify(model, x, norm="3")
    with pytest.raises(ValueError, match="fitted"):
        certify(scd.SCD01(), x)
    assert parse_norm(np.inf) == "inf" and parse_norm("L2") == "2" and parse_norm(1) == "1"


def test_misclassified_point_has_zero_interval(digits_model):
    model, x, y = digits_model
    wrong = 1 - y[:1]
    bound = certify(model, x[:1], wrong, time_limit=0)[0]
    assert (bound.lower, bound.upper, bound.exact) == (0.0, 0.0, True)
    assert bound.lower_method == "misclassified"


def test_certificate_alone_and_timed_out_search_are_statuses(digits_model):
    model, x, y = digits_model
    alone = certify(model, x, y, norm="inf", time_limit=0)
    assert all(b.lower_method == "unit sweep" and b.upper == np.inf and not b.exact for b in alone)
    short = certify(model, x, y, norm="inf", time_limit=0.01)
    for a, b in zip(alone, short):
        assert b.lower >= a.lower  # a search can only raise the certificate
        assert b.lower <= b.upper
        assert b.record()["upper"] is None or b.record()["upper"] == b.upper


@pytest.mark.slow
@pytest.mark.parametrize("voting", ["hard", "soft"])
def test_lower_bound_below_every_attack(digits_model, voting):
    """On digits 1 vs 8: the certificate never exceeds a confirmed adversarial distance of
    HopSkipJump, Boundary, RayS or the structure attack."""
    model, x, y = digits_model
    model = copy.deepcopy(model).set_params(voting=voting)  # a run parameter: the same votes
    right = model.predict(x) == y
    x, y = x[right], y[right]
    found = {}
    kw = dict(bounds=(0.0, 1.0), seed=0)
    found["2"] = [HopSkipJump(norm=2, max_iter=5, init_size=50)(model, x, y, **kw).l2,
                  Boundary(steps=200)(model, x, y, **kw).l2,
                  StructureAttack(norm=2, time_limit=2)(model, x, y, **kw).l2]
    found["inf"] = [RayS()(model, x, y, max_queries=500, **kw).linf,
                    StructureAttack(norm="inf", time_limit=2)(model, x, y, **kw).linf]
    for norm, distances in found.items():
        lower = np.array([b.lower for b in certify(model, x, y, norm=norm, time_limit=2)])
        for dist in distances:
            ok = np.isfinite(dist)
            assert ok.any()
            assert (lower[ok] <= dist[ok] + 1e-9).all(), (norm, lower, dist)


def test_unconfirmed_points_leave_only_the_certificate(digits_model):
    """If the model refused the search's points, the search's pruning cannot be trusted: the
    result falls back to the sweep certificate and reports no upper bound."""
    from scd.certify import SignEnsemble, bound_sample

    model, x, y = digits_model
    ensemble = SignEnsemble.from_estimator(model)
    box = (np.zeros(x.shape[1]), np.ones(x.shape[1]))
    label = int(model.predict(x[:1])[0] == model.classes_[1])
    alone = bound_sample(ensemble, x[0], label, "inf", box, 0)
    refused = bound_sample(ensemble, x[0], label, "inf", box, 1.0, confirm=lambda z: False)
    assert refused.upper == np.inf and refused.lower == alone.lower and refused.lower_method == "unit sweep"
