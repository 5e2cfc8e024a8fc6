"""One contract for every attack in ``attacks.ATTACKS`` (the foolbox pattern): on a small linear
model each attack succeeds, never claims a success the model does not confirm, respects a
query budget exactly, is reproducible from its seed, and treats already-misclassified inputs
as distance-0 successes without querying them."""

import numpy as np
import pytest

from attacks import ATTACKS, Oracle
from attack_models import binary_linear

BOX = (0.0, 1.0)
SMALL = {"hsj": {"max_iter": 8}, "boundary": {"steps": 300}, "rays": {"query_limit": 400}}


@pytest.fixture(params=sorted(ATTACKS))
def attack(request):
    return ATTACKS[request.param](**SMALL[request.param])


def test_contract(attack):
    model, x = binary_linear(n=4, seed=3)
    result = attack(model, x, bounds=BOX, seed=0, max_queries=300)
    assert result.success.all()
    flipped = model.predict(result.x_adv) != model.predict(x)
    np.testing.assert_array_equal(result.success, flipped)
    assert np.all(result.queries <= 300) and np.all(result.x_adv >= 0) and np.all(result.x_adv <= 1)
    distance = result.l2 if attack.norm == 2 else result.linf
    assert np.all(distance >= model.exact_distance(x, attack.norm) * (1 - 1e-4))
    again = attack(model, x, bounds=BOX, seed=0, max_queries=300)
    np.testing.assert_array_equal(result.x_adv, again.x_adv)
    summary = result.summary()
    assert summary["success_rate"] == 1.0 and summary["median_queries"] <= 300


def test_already_misclassified_inputs_are_not_attacked(attack):
    model, x = binary_linear(n=3, seed=4)
    wrong = 1 - model.predict(x)
    oracle = Oracle(model, bounds=BOX)
    result = attack(oracle, x, wrong, seed=0)
    assert result.success.all() and result.already_adversarial.all()
    np.testing.assert_array_equal(result.x_adv, x)
    assert result.queries.sum() == 0 and np.all(result.l2 == 0)
