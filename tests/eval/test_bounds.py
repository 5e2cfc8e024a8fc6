"""Certified bounds of the baselines (:mod:`eval.bounds`) against truths computed here: the exact
minimum of small forests by enumerating their threshold grid, dense grids for small MLPs,
random perturbations for a small CNN, and ART's clique bound against the MILP."""

from __future__ import annotations

import importlib.util
import itertools
import warnings

import numpy as np
import pytest

from eval.baselines import CNNEnsemble, MLPEnsemble, RandomForestEnsemble
from eval.bounds import certify_model, model_kind
from eval.bounds.cnn import IntervalNet, ibp_radius
from eval.bounds.forest import Forest, clique_bound
from eval.bounds.mlp import MLPNet, mlp_radius

ART = importlib.util.find_spec("art") is not None  # the `art` extra: ART's clique bound

NORMS = ("inf", "2", "1")


def _dist(delta: np.ndarray, norm: str) -> np.ndarray:
    return {"inf": np.abs(delta).max(axis=-1), "2": np.sqrt((delta**2).sum(axis=-1)),
            "1": np.abs(delta).sum(axis=-1)}[norm]


def _forest_truth(model, x: np.ndarray, norm: str) -> float:
    """The exact minimum over float32 inputs in [0, 1]^d: an optimal input moves each coordinate
    independently to the nearest float32 of its threshold interval, so it lies on the grid of
    x's own value and the float32 values at and next to every threshold."""
    cands = []
    for f in range(len(x)):
        ts = [t.tree_.threshold[t.tree_.feature == f] for t in model.estimators_]
        t32 = np.concatenate(ts).astype(np.float32)
        near = np.concatenate([t32, np.nextafter(t32, np.float32(-1)), np.nextafter(t32, np.float32(2)),
                               [x[f], 0, 1]]).astype(np.float32)
        cands.append(np.unique(near[(near >= 0) & (near <= 1)]))
    grid = np.array(list(itertools.product(*cands)), np.float32)
    other = grid[model.predict(grid) != model.predict(x[None])[0]]
    return float(_dist(other.astype(np.float64) - x.astype(np.float64), norm).min()) if len(other) else np.inf


@pytest.mark.parametrize("voting", ["soft", "hard"])
def test_forest_milp_is_exact_and_art_stays_below(voting):
    rng = np.random.default_rng(0)
    checked = 0
    for dims, trees, depth in ((2, 4, 3), (3, 2, 2), (2, 3, 2)):
        X = rng.random((120, dims)).astype(np.float32)
        y = (X[:, 0] + np.sin(3 * X[:, 1]) > 1.0).astype(int)
        model = RandomForestEnsemble(n_votes=trees, max_depth=depth, voting=voting,
                                     random_state=int(rng.integers(1000))).fit(X, y)
        forest = Forest.from_estimator(model)
        for x in X[:3]:
            label = int(model.predict(x[None])[0] == model.classes_[1])
            for norm in NORMS:
                truth = _forest_truth(model, x, norm)
                (bound,) = certify_model(model, x[None], norm=norm, time_limit=30)
                assert bound.lower <= truth <= bound.upper + 1e-12
                assert bound.exact and bound.complete and abs(bound.upper - truth) <= 1e-6
                assert model.predict(bound.x_adv[None])[0] != model.predict(x[None])[0]
                assert abs(_dist(bound.x_adv.astype(np.float64) - x.astype(np.float64), norm) - bound.upper) <= 1e-12
                if ART:
                    assert clique_bound(forest, x, label, norm) <= truth
                checked += 1
    assert checked == 27


def test_forest_time_limit_is_a_result_not_an_error():
    rng = np.random.default_rng(3)
    X = rng.random((150, 3)).astype(np.float32)
    y = (X[:, 0] * X[:, 2] + X[:, 1] > 0.6).astype(int)
    model = RandomForestEnsemble(n_votes=6, max_depth=4, random_state=1).fit(X, y)
    x = X[0]
    truth = _forest_truth(model, x, "inf")
    for limit in (1e-4, 0):
        (bound,) = certify_model(model, x[None], norm="inf", time_limit=limit)
        assert bound.lower <= truth <= bound.upper
        assert bound.lower_method in ("milp (time limit)", "art clique", "milp") or limit == 0 and not ART
    (bound,) = certify_model(model, x[None], norm="inf", time_limit=0)
    assert bound.lower_method == ("art clique" if ART else "none (no MILP; the art extra gives ART's clique bound)")
    assert bound.upper == np.inf


def test_forest_rejects_what_it_cannot_bound():
    with pytest.raises(ValueError, match="RandomForestEnsemble"):
        model_kind(object())
    relu = MLPEnsemble(n_votes=1, hidden_layer_sizes=(3,), activation="relu", max_iter=5, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        relu.fit(np.random.default_rng(0).random((20, 2)), np.arange(20) % 2)
    with pytest.raises(ValueError, match="logistic"):
        model_kind(relu)


def _random_mlp(seed: int, voting: str, dtype) -> MLPEnsemble:
    """A fitted 3-member MLP over 2 inputs whose weights are then drawn at random (seeded), each
    hidden unit's boundary and each member's through the unit square."""
    rng = np.random.default_rng(seed)
    X = rng.random((30, 2)).astype(dtype)
    model = MLPEnsemble(n_votes=3, hidden_layer_sizes=(5,), max_iter=2, voting=voting, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X, np.arange(30) % 2)
    for m in model.estimators_:
        W = rng.normal(0, 6, (2, 5))
        b = -(rng.random((1, 2)) @ W)[0]
        w2 = rng.normal(0, 3, 5)
        hidden = 1 / (1 + np.exp(-(rng.random(2) @ W + b)))
        m.coefs_ = [W.astype(dtype), w2[:, None].astype(dtype)]
        m.intercepts_ = [b.astype(dtype), np.array([-hidden @ w2], dtype)]
    return model


@pytest.mark.parametrize("voting,dtype", [("soft", np.float32), ("hard", np.float64)])
def test_mlp_bound_is_never_beaten_by_a_dense_grid(voting, dtype):
    g = np.linspace(0, 1, 201, dtype=np.float32)
    grid = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)
    positive = 0
    for seed in (1, 5, 7):  # seeds whose models have both classes in the square
        model = _random_mlp(seed, voting, dtype)
        net = MLPNet.from_estimator(model)
        pred = model.predict(grid)
        assert 0.02 < (pred == model.classes_[1]).mean() < 0.98
        rng = np.random.default_rng(100 + seed)
        for x in rng.random((4, 2)).astype(np.float32):
            px = model.predict(x[None])[0]
            label = int(px == model.classes_[1])
            for norm in NORMS:
                lower = mlp_radius(net, x, label, norm, (np.zeros(2), np.ones(2)), 3.0)
                other = grid[pred != px]
                if len(other):
                    assert lower < _dist(other.astype(np.float64) - x.astype(np.float64), norm).min()
                positive += lower > 0
    assert positive >= 20  # the bound is not vacuous


def test_mlp_interval_has_a_confirmed_upper_end():
    model = _random_mlp(7, "soft", np.float32)
    x = np.array([[0.4, 0.6]], np.float32)
    (bound,) = certify_model(model, x, norm="inf", time_limit=10, attack_rounds=3)
    assert bound.lower_method == "crown" and bound.upper_method == "pgd"
    assert 0 < bound.lower <= bound.upper < np.inf
    assert model.predict(bound.x_adv[None])[0] != model.predict(x)[0]


@pytest.mark.slow
def test_cnn_ibp_radius_holds_under_random_perturbations(digits):
    model = CNNEnsemble(n_votes=1, epochs=1, batch_size=64, random_state=0, device="cpu")
    model.fit(digits.x_train[:64], digits.y_train[:64])  # one step: the bound needs no accuracy
    net = IntervalNet.from_estimator(model)
    rng = np.random.default_rng(0)
    d = digits.x_test.shape[1]
    box = (np.zeros(d), np.ones(d))
    for x in digits.x_test[:1]:
        px = model.predict(x[None])[0]
        label = int(px == model.classes_[1])
        for norm in ("inf", "2"):
            r = ibp_radius(net, x, label, norm, box, 10.0)
            assert r > 0
            u = rng.uniform(-1, 1, (200, d))
            if norm == "inf":
                u = np.sign(u)  # the ball's corners
            delta = u * (r / _dist(u, norm))[:, None]
            assert (model.predict(np.clip(x + delta, 0, 1).astype(np.float32)) == px).all()
