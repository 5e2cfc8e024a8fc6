"""The substitute-model attack: training by Jacobian augmentation and transfer curves."""

import pytest
import torch
from sklearn.linear_model import LogisticRegression

from attacks import Oracle
from attacks.substitute import substitute_attack, train_substitute
from eval.datasets import load_dataset

FAST = dict(rounds=3, epochs=30, lr=1e-3)


@pytest.fixture(scope="module")
def setting():
    ds = load_dataset("digits")
    model = LogisticRegression(max_iter=2000).fit(ds.x_train, ds.y_train)
    return model, ds.x_test[:30], ds.x_test[30:], ds.y_test[30:]


def test_training_counts_labels_grows_the_set_and_stays_in_the_box(setting):
    model, x_seed, x, y = setting
    oracle = Oracle(model, bounds=(0.0, 1.0))
    module, rounds = train_substitute(oracle, x_seed, rounds=4, epochs=5, lr=1e-3, max_size=100, seed=0)
    sizes = [r["set_size"] for r in rounds]
    assert sizes == [30, 60, 100, 100]  # doubling, then the reservoir cap
    # each point is labelled once: the seed set, then only the points new in each round (the oracle
    # refuses points outside the box, so the augmented points were clipped)
    queries = [r["queries"] for r in rounds]
    assert queries[:2] == [30, 60] and queries[2] < queries[3] <= 60 + 100 + 100
    assert oracle.summary()["rows"] == queries[-1]
    assert module(torch.zeros(2, 64)).shape == (2, 2)


def test_transfer_beats_the_noise_control_and_is_reproducible(setting):
    model, x_seed, x, y = setting
    a = substitute_attack(model, x_seed, x, y, [0.0, 0.1, 0.3], bounds=(0, 1), seed=3, **FAST)
    b = substitute_attack(model, x_seed, x, y, [0.0, 0.1, 0.3], bounds=(0, 1), seed=3, **FAST)
    assert a.adversarial_accuracy == b.adversarial_accuracy and a.noise_accuracy == b.noise_accuracy
    assert a.adversarial_accuracy[0] == a.noise_accuracy[0] == pytest.approx(model.score(x, y))
    assert a.adversarial_accuracy[2] < a.noise_accuracy[2] - 0.3
    assert a.mean_l2[0] == 0 and a.mean_l2[2] > a.mean_l2[1] > 0
    assert a.queries == a.rounds[-1]["queries"]
    assert "| 0.3 |" in a.table() and a.to_json()
    pgd = substitute_attack(model, x_seed, x, y, [0.3], bounds=(0, 1), seed=3, method="pgd", **FAST)
    assert pgd.substitute_accuracy[0] <= a.substitute_accuracy[2] + 0.05


@pytest.mark.parametrize("kwargs, message", [
    (dict(eps=[]), "eps"), (dict(eps=[-0.1]), "eps"), (dict(method="cw"), "method"),
    (dict(rounds=0), "rounds"), (dict(lam=0.0), "lam"), (dict(sign_schedule="coin"), "sign_schedule"),
])
def test_bad_settings(setting, kwargs, message):
    model, x_seed, x, y = setting
    args = dict(eps=[0.1], bounds=(0, 1))
    args.update(kwargs)
    eps = args.pop("eps")
    with pytest.raises(ValueError, match=message):
        substitute_attack(model, x_seed, x, y, eps, **args)
