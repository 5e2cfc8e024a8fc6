"""One contract for every attack in ``attacks.ATTACKS`` (the foolbox pattern): on a small linear
model each attack succeeds, never claims a success the model does not confirm, respects a
query budget exactly, is reproducible from its seed, and treats already-misclassified inputs
as distance-0 successes without querying them.  Decision-based attacks see labels only;
score and gradient attacks see the same model as a torch module."""

import numpy as np
import pytest

from attacks import ATTACKS, Oracle
from attack_models import Flaky, binary_linear

BOX = (0.0, 1.0)
SMALL = {"hsj": {"max_iter": 8}, "boundary": {"steps": 300}, "rays": {"query_limit": 400},
         "zoo": {"max_iter": 7, "binary_steps": 1, "batch_size": 20, "learning_rate": 0.1, "c_init": 10.0},
         "ead": {"max_iter": 30, "binary_steps": 3, "c_init": 1.0},
         "cw": {"max_iter": 30, "binary_steps": 3, "c_init": 1.0, "lr": 0.05},
         "fgsm": {"eps": 0.3}, "pgd": {"eps": 0.3, "steps": 10}}
DECISION_BASED = {"hsj", "boundary", "rays"}


@pytest.fixture(params=sorted(ATTACKS))
def attack(request):
    return ATTACKS[request.param](**SMALL[request.param])


def _oracle(attack, model, budget=None):
    """Labels only for decision-based attacks, the torch twin (scores, logits, gradients) otherwise."""
    if attack.name in DECISION_BASED:
        return Oracle(model, bounds=BOX, budget=budget)
    return Oracle(model.torch_module(), bounds=BOX, classes=model.classes_, n_features=model.n_features_in_,
                  budget=budget)


def test_contract(attack):
    model, x = binary_linear(n=4, seed=3)
    result = attack(_oracle(attack, model, 300), x, seed=0)
    assert result.success.all()
    flipped = model.predict(result.x_adv) != model.predict(x)
    np.testing.assert_array_equal(result.success, flipped)
    assert np.all(result.queries <= 300) and np.all(result.x_adv >= 0) and np.all(result.x_adv <= 1)
    distance = {1: result.l1, 2: result.l2}.get(attack.norm, result.linf)
    assert np.all(distance >= model.exact_distance(x, attack.norm) * (1 - 1e-4))
    again = attack(_oracle(attack, model, 300), x, seed=0)
    np.testing.assert_array_equal(result.x_adv, again.x_adv)
    summary = result.summary()
    assert summary["success_rate"] == 1.0 and summary["median_queries"] <= 300
    # the uncounted rows: one clean-label query and one confirmation per sample
    np.testing.assert_array_equal(result.confirm_queries, 2)
    assert summary["confirm_queries"] == 8 and result.to_dict()["samples"][0]["confirm_queries"] == 2


def test_already_misclassified_inputs_are_not_attacked(attack):
    model, x = binary_linear(n=3, seed=4)
    wrong = 1 - model.predict(x)
    oracle = _oracle(attack, model)
    result = attack(oracle, x, wrong, seed=0)
    assert result.success.all() and result.already_adversarial.all()
    np.testing.assert_array_equal(result.x_adv, x)
    assert result.queries.sum() == 0 and np.all(result.l2 == 0)


@pytest.mark.parametrize("seed", [-1, 1.5, None, True])
def test_bad_seed_is_refused_before_any_query(attack, seed):
    model, x = binary_linear(n=2, seed=5)
    oracle = _oracle(attack, model)
    with pytest.raises(ValueError, match="seed"):
        attack(oracle, x, seed=seed)
    assert oracle.summary()["confirm_rows"] == 0 and oracle.summary()["rows"] == 0


def test_rejected_success_leaves_no_budget_curve():
    """A point the model answered adversarial but the confirmation rejects is not a success, and
    its distances do not reach budget curves either."""
    result = ATTACKS["hsj"](max_iter=2, init_evals=5)(Flaky(d=4, n_rows=10), np.full((1, 4), 0.5, np.float32),
                                                     bounds=BOX, seed=0)
    assert not result.success[0] and np.isnan(result.l2[0])
    assert result.history[0].shape == (0, 2) and np.isinf(result.distance_at(1e9)[0])
    assert result.to_dict()["samples"][0]["history"] == []
