"""HopSkipJump: distances against the exact boundary distance of linear models, budgets,
seeds, starting points, failures, and errors raised before any query."""

import numpy as np
import pytest

from attacks import Oracle
from attacks.hop_skip_jump import HopSkipJump
from tests.attacks.models import Constant, Flaky, binary_linear, three_class_linear

BOX = (0.0, 1.0)


@pytest.mark.parametrize("norm, key, tolerance", [(2, "l2", 0.05), ("inf", "linf", 0.15)])
def test_distance_close_to_exact_on_linear_model(norm, key, tolerance):
    model, x = binary_linear()
    result = HopSkipJump(norm=norm, max_iter=25)(model, x, bounds=BOX, seed=0)
    exact = model.exact_distance(x, 2.0 if norm == 2 else np.inf)
    assert result.success.all()
    found = getattr(result, key)
    assert np.all(found >= exact * (1 - 1e-3))  # never closer than the true boundary
    assert np.median(found / exact) < 1 + tolerance
    # every reported example really is on the other side
    assert np.all(np.sign(model.margin(result.x_adv)) != np.sign(model.margin(x)))


def test_grid_step_search_and_art_theta_also_converge():
    model, x = binary_linear(n=4)
    exact = model.exact_distance(x, 2.0)
    # ART's order returns the last post-step point, off the boundary: looser
    for kwargs, bound in (({"stepsize_search": "grid"}, 1.1), ({"theta": "art"}, 1.5)):
        result = HopSkipJump(max_iter=15, **kwargs)(model, x, bounds=BOX, seed=0)
        assert result.success.all()
        assert np.median(result.l2 / exact) < bound


def test_budget_is_exact_and_results_are_seeded():
    model, x = binary_linear(n=5)
    attack = HopSkipJump(max_iter=50)
    a = attack(model, x, bounds=BOX, seed=3, max_queries=700)
    assert np.all(a.queries <= 700) and np.all(a.queries >= 600)
    b = attack(model, x, bounds=BOX, seed=3, max_queries=700)
    np.testing.assert_array_equal(a.x_adv, b.x_adv)
    np.testing.assert_array_equal(a.queries, b.queries)
    c = attack(model, x, bounds=BOX, seed=4, max_queries=700)
    assert not np.array_equal(a.x_adv, c.x_adv)
    # history is monotone in queries and distance
    for h in a.history:
        assert np.all(np.diff(h[:, 0]) >= 0) and np.all(np.diff(h[:, 1]) <= 1e-12)


def test_a_sample_does_not_depend_on_its_batch_mates():
    model, x = binary_linear(n=5)
    attack = HopSkipJump(max_iter=8)
    together = attack(model, x, bounds=BOX, seed=1, sample_ids=np.arange(10, 15))
    alone = attack(model, x[2:3], bounds=BOX, seed=1, sample_ids=[12])
    np.testing.assert_array_equal(together.x_adv[2], alone.x_adv[0])
    assert together.queries[2] == alone.queries[0]


def test_targeted_attack_reaches_the_target():
    model, x = three_class_linear()
    labels = model.predict(x)
    targets = (labels + 1) % 3
    result = HopSkipJump(max_iter=10, init_size=200)(model, x, bounds=BOX, targets=targets, seed=0)
    assert result.success.mean() >= 0.8
    np.testing.assert_array_equal(model.predict(result.x_adv[result.success]), targets[result.success])


def test_starting_points_are_used_and_bad_ones_fall_back():
    model, x = binary_linear(n=4)
    flipped = x - 2 * (model.margin(x) / (model.W @ model.W))[:, None].astype(np.float32) * model.W.astype(np.float32)
    start = np.clip(flipped, 0, 1)
    start[0] = x[0]  # not adversarial: falls back to random draws
    result = HopSkipJump(max_iter=5, init_size=50)(model, x, bounds=BOX, seed=0, starting_points=start)
    assert result.success.all()
    assert not result.extra["init_failed"].any()


def test_failure_is_a_flag_not_an_exception():
    x = np.full((3, 5), 0.5, np.float32)
    result = HopSkipJump(max_iter=3, init_size=20)(Constant(5), x, y=[0, 0, 0], bounds=BOX, seed=0)
    assert not result.success.any()
    assert result.extra["init_failed"].all()
    np.testing.assert_array_equal(result.x_adv, x)
    assert np.isnan(result.l2).all() and result.summary()["success_rate"] == 0.0


def test_success_is_confirmed_on_the_real_model():
    # the model lies ("adversarial") during the attack, then answers truthfully at confirmation
    x = np.full((2, 4), 0.5, np.float32)
    model = Flaky(4, n_rows=400)
    result = HopSkipJump(max_iter=2, init_size=5)(model, x, y=[0, 0], bounds=BOX, seed=0)
    assert not result.success.any()
    np.testing.assert_array_equal(result.x_adv, x)


def test_invalid_input_raises_before_any_query():
    model, x = binary_linear(n=3)
    cases = [
        (dict(), x[:, :5]),                                   # wrong feature count
        (dict(), x + 2.0),                                    # outside the bounds
        (dict(targets=model.predict(x)), x),                  # target equals the label
    ]
    for kwargs, inputs in cases:
        model.rows = 0
        with pytest.raises(ValueError):
            HopSkipJump()(model, inputs, bounds=BOX, **kwargs)
        assert model.rows <= len(x)  # at most the clean-label query of valid inputs
    for bad in (dict(norm=3), dict(norm=1), dict(stepsize_search="line"), dict(theta=-1.0), dict(max_iter=-1),
                dict(max_iter=True), dict(gamma="a"), dict(theta=[1.0])):
        model.rows = 0
        with pytest.raises(ValueError):
            HopSkipJump(**bad)(model, x, bounds=BOX)
        assert model.rows == 0
    with pytest.raises(ValueError, match="bounds"):
        HopSkipJump()(model, x)
    with pytest.raises(ValueError, match="Oracle"):
        HopSkipJump()(Oracle(model, bounds=BOX), x, max_queries=10)


def test_result_json_round_trip():
    import json

    model, x = binary_linear(n=3)
    result = HopSkipJump(max_iter=3)(model, x, bounds=BOX, seed=0)
    record = json.loads(result.to_json())
    assert record["summary"]["success_rate"] == 1.0
    assert [s["queries"] for s in record["samples"]] == result.queries.tolist()
    assert record["params"]["max_iter"] == 3
