"""One contract for every attack in ``attacks.ATTACKS`` (the foolbox pattern): on a small linear
model each attack succeeds, never claims a success the model does not confirm, respects a
query budget exactly, is reproducible from its seed, and treats already-misclassified inputs
as distance-0 successes without querying them.  Decision-based attacks see labels only;
score and gradient attacks see the same model as a torch module."""

import numpy as np
import pytest

from attacks import ATTACKS, Oracle
from tests.attacks.models import Flaky, binary_linear

BOX = (0.0, 1.0)
SMALL = {"hsj": {"max_iter": 8}, "boundary": {"steps": 300}, "rays": {"query_limit": 400},
         "zoo": {"max_iter": 7, "binary_steps": 1, "batch_size": 20, "learning_rate": 0.1, "c_init": 10.0},
         "ead": {"max_iter": 30, "binary_steps": 3, "c_init": 1.0},
         "cw": {"max_iter": 30, "binary_steps": 3, "c_init": 1.0, "lr": 0.05},
         "fgsm": {"eps": 0.3}, "pgd": {"eps": 0.3, "steps": 10}}
DECISION_BASED = {"hsj", "boundary", "rays"}
SCD_ONLY = {"structure"}  # white-box from an SCD ensemble's weights: its own contract below


@pytest.fixture(params=sorted(set(ATTACKS) - SCD_ONLY))
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


# ---------------------------------------------------------------------- the attack specification
def test_spec_answers_without_building_its_attack():
    from attacks import AttackSpec

    spec = AttackSpec("pgd", norm="2", iters=3, eps=(0.5,))
    assert (spec.norm_value, spec.distance, spec.needs, spec.budget) == (2.0, "l2", "gradients", None)
    assert not spec.uses_starting_points and "_attack" not in vars(spec)
    assert AttackSpec("rays", max_queries=50).budget is None and AttackSpec("hsj", max_queries=50).budget == 50
    assert AttackSpec("ead").needs == "logit_gradients" and AttackSpec("zoo").needs == "scores"
    assert AttackSpec("hsj", norm="inf").distance == "linf" and AttackSpec("ead").distance == "l1"


def test_spec_round_trips_and_builds_its_attack_once():
    import pickle

    from attacks import AttackSpec, HopSkipJump

    spec = AttackSpec("hsj", norm="inf", iters=3, init_size=7, theta="0.01", max_queries=90)
    data = spec.to_dict()
    assert data == {"method": "hsj", "norm": "inf", "iters": 3, "init_size": 7, "theta": "0.01", "max_queries": 90}
    assert AttackSpec.from_dict(data) == spec and hash(AttackSpec.from_dict(data)) == hash(spec)
    attack = spec.attack
    assert isinstance(attack, HopSkipJump) and spec.attack is attack
    assert (attack.norm, attack.max_iter, attack.init_size, attack.theta) == (np.inf, 3, 7, 0.01)
    copy = pickle.loads(pickle.dumps(spec))
    assert copy == spec and copy.attack.get_params() == attack.get_params()
    pgd = AttackSpec.from_dict({"method": "pgd", "norm": "1", "iters": 4, "eps": [0.25]})
    assert pgd.to_dict()["eps"] == [0.25] and (pgd.attack.eps, pgd.attack.steps, pgd.attack.norm) == (0.25, 4, 1.0)


def test_spec_with_several_eps_runs_one_per_eps():
    from attacks import AttackSpec

    spec = AttackSpec("pgd", eps=(0.3, 0.1, 0.2, 0.1))
    assert spec.eps == (0.1, 0.2, 0.3) and spec.bounded and spec.attack.eps == 0.3
    assert spec.at_eps(0.2).attack.eps == 0.2 and spec.at_eps(0.2).iters == spec.iters
    model, x = binary_linear(n=3, seed=3)
    with pytest.raises(ValueError, match="at_eps"):
        spec(model, x, bounds=BOX)
    hsj = AttackSpec("hsj", eps=(0.2, 0.1))  # thresholds of the curve only
    assert not hsj.bounded and "eps" not in hsj.attack.get_params()


def test_spec_runs_its_attack_with_its_budget():
    from attacks import AttackSpec

    model, x = binary_linear(n=3, seed=3)
    spec = AttackSpec("hsj", iters=3, max_queries=120)
    result = spec(model, x, bounds=BOX, seed=0)
    again = spec.attack(model, x, bounds=BOX, seed=0, max_queries=120)
    np.testing.assert_array_equal(result.x_adv, again.x_adv)
    assert np.all(result.queries <= 120)


@pytest.mark.parametrize("settings, message", [
    ({"method": "nope"}, "Unknown attack method"), ({"method": "boundary", "norm": "inf"}, "L2 norm only"),
    ({"method": "hsj", "norm": "1"}, "L2 or Linf"), ({"method": "rays", "iters": 3}, "max-queries"),
    ({"method": "hsj", "theta": "sometimes"}, "theta"), ({"method": "fgsm", "iters": 2}, "one step"),
    ({"method": "structure", "eps": [0.1]}, "eps"), ({"method": "pgd", "eps": [0.1, -0.2]}, "eps"),
    ({"method": "zoo", "init_size": 5}, "init-size"), ({"method": "hsj", "colour": 1}, "unknown attack settings")])
def test_spec_refuses_bad_settings_when_made(settings, message):
    from attacks import AttackSpec

    with pytest.raises(ValueError, match=message):
        AttackSpec.from_dict(settings)


def test_spec_validate_runs_the_attacks_own_checks():
    from attacks import AttackSpec

    spec = AttackSpec("hsj", theta="-1")
    with pytest.raises(ValueError, match="theta"):
        spec.validate()
    with pytest.raises(ValueError, match="init_size"):
        AttackSpec("boundary", init_size=0).validate()


def test_structure_attack_contract():
    """The structure attack on an SCD ensemble: confirmed successes, one counted query per
    sample, reproducible, already-misclassified inputs untouched; other models are refused."""
    import scd

    rng = np.random.default_rng(0)
    X = rng.uniform(size=(200, 6)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] > 1).astype(int)
    model = scd.SCD01(n_votes=3, hidden_nodes=4, n_iters=50, random_state=0).fit(X, y)
    x = X[:5]
    attack = ATTACKS["structure"](norm="inf", time_limit=2)
    result = attack(model, x, bounds=BOX, seed=0)
    assert result.success.any()
    np.testing.assert_array_equal(result.success, model.predict(result.x_adv) != model.predict(x))
    assert np.all(result.queries <= 1)
    np.testing.assert_array_equal(result.x_adv, attack(model, x, bounds=BOX, seed=0).x_adv)
    wrong = attack(model, x, 1 - model.predict(x), bounds=BOX, seed=0)
    assert wrong.already_adversarial.all() and wrong.queries.sum() == 0
    linear, xl = binary_linear(n=2, seed=5)
    with pytest.raises(ValueError, match="SCD ensembles"):
        attack(linear, xl, bounds=BOX)


def test_robust_accuracy_is_the_fraction_not_broken_within_each_eps():
    from attacks import robust_accuracy

    d = np.array([0.0, 0.05, 0.2, np.inf, 0.1])
    other = np.array([np.inf, 0.01, 0.3, 0.15, np.inf])
    eps = [0.0, 0.01, 0.1, 0.15, 1.0]
    brute = [sum(min(a, b) > e for a, b in zip(d, other)) / 5 for e in eps]
    np.testing.assert_array_equal(robust_accuracy([d, other], eps), brute)
    assert np.all(np.diff(robust_accuracy(d, eps)) <= 0)
