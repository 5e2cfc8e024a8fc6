"""Transferability inside an ensemble (paper Table 6)."""

import numpy as np
import pytest

from tests.attacks.models import Linear, binary_linear
from attacks import HopSkipJump
from eval.baselines import RandomForestEnsemble
from eval.datasets import load_dataset
from eval.transfer import member_predictions, within_ensemble_transfer


class Copies:
    """An ensemble of ``m`` members that are all the same linear model, or each its own."""

    def __init__(self, members: list[Linear]):
        self.models = members
        self.n_votes = len(members)
        self.classes_ = members[0].classes_
        self.n_features_in_ = members[0].n_features_in_

    def member(self, i):
        return self.models[i]

    def members(self, indices):
        return Copies([self.models[i] for i in indices])

    def predict(self, x, member=None):
        if member is not None:
            return self.models[member].predict(x)
        votes = np.mean([m.predict(x) for m in self.models], axis=0)
        return (votes > 0.5).astype(np.int64)


def test_identical_members_transfer_always():
    model, x = binary_linear(n=4, seed=2)
    ensemble = Copies([model] * 3)
    y = model.predict(x)
    result = within_ensemble_transfer(ensemble, x, y, HopSkipJump(max_iter=3), seed=0)
    assert result.success.all()
    np.testing.assert_array_equal(result.probability, 1.0)
    assert result.mean_probability == 1.0


def test_forest_counts_match_a_direct_recount():
    ds = load_dataset("digits")
    forest = RandomForestEnsemble(n_votes=5, random_state=0).fit(ds.x_train, ds.y_train)
    pick = np.flatnonzero(forest.predict(ds.x_test) == ds.y_test)[:4]
    x, y = ds.x_test[pick], ds.y_test[pick]
    attack = HopSkipJump(max_iter=2, init_size=200)
    result = within_ensemble_transfer(forest, x, y, attack, seed=1, sample_ids=pick, members=[0, 3])
    assert not result.attacked[:, [1, 2, 4]].any()
    p = result.probability[np.isfinite(result.probability)]
    assert len(p) and np.all((p >= 0) & (p <= 1))
    # recount member 3 by hand, on the images it classifies correctly
    rows = np.flatnonzero(forest.predict(x, member=3) == y)
    direct = attack(forest.member(3), x[rows], y[rows], bounds=(0.0, 1.0), seed=1, sample_ids=pick[rows])
    fooled = (member_predictions(forest, direct.x_adv) != y[rows][:, None]).sum(1) - 1
    np.testing.assert_array_equal(result.fooled[rows, 3][direct.success], fooled[direct.success])
    assert np.isnan(result.fooled[rows, 3][~direct.success]).all()


def test_bad_requests():
    model, x = binary_linear(n=2)
    with pytest.raises(ValueError, match="at least 2 members"):
        within_ensemble_transfer(Copies([model]), x, model.predict(x), HopSkipJump())
    with pytest.raises(ValueError, match="members"):
        within_ensemble_transfer(Copies([model, model]), x, model.predict(x), HopSkipJump(), members=[5])
    with pytest.raises(ValueError, match="not among the model's classes"):
        within_ensemble_transfer(Copies([model, model]), x, model.predict(x) + 3, HopSkipJump())


def test_distortion_against_ensemble_size():
    from eval.ensemble_size import distortion_vs_size

    model, x = binary_linear(n=4, seed=5)
    ensemble = Copies([model] * 4)
    y = model.predict(x)
    records = distortion_vs_size(ensemble, x, y, HopSkipJump(max_iter=10), [1, 2, 4], runs=2)
    assert [r["k"] for r in records] == [1, 2, 4]
    exact = model.exact_distance(x, 2)
    for r in records:  # the same model at every size: the same, near-exact distances
        assert r["success_rate"] == 1.0 and r["misclassified"] == 0
        assert np.all(np.asarray(r["distance"]) >= exact * (1 - 1e-4))
        assert np.all(np.asarray(r["distance"]) <= exact * 1.1)
    with pytest.raises(ValueError, match="sizes"):
        distortion_vs_size(ensemble, x, y, HopSkipJump(), [5])
    with pytest.raises(ValueError, match="not among the model's classes"):
        distortion_vs_size(ensemble, x, y + 3, HopSkipJump(), [1])
    assert distortion_vs_size(ensemble, x, y, HopSkipJump(max_iter=2), np.array([1]))[0]["k"] == 1


def test_distortion_against_size_on_a_forest_leaves_out_misclassified_images():
    from eval.ensemble_size import distortion_vs_size

    ds = load_dataset("digits")
    forest = RandomForestEnsemble(n_votes=6, random_state=0).fit(ds.x_train, ds.y_train)
    x, y = ds.x_test[:12], ds.y_test[:12]
    records = distortion_vs_size(forest, x, y, HopSkipJump(max_iter=2, init_size=200), [1, 6])
    for r in records:
        sub = forest.members(range(r["k"]))
        wrong = sub.predict(x) != y
        assert r["misclassified"] == int(wrong.sum())
        assert all(d is None for d, w in zip(r["distance"], wrong) if w)
