"""Boundary attack on linear models, where the exact minimum L2 distance is known."""

import json

import numpy as np
import pytest

from attacks.boundary import Boundary

D = 12


class Linear:
    """Binary linear classifier ``w·x + b > 0`` whose boundary crosses the middle of [0, 1]^d.

    Each row is scored on its own (no BLAS matmul), so answers never depend on batch-mates.
    """

    def __init__(self, d=D, seed=0):
        rng = np.random.default_rng(seed)
        self.w = rng.normal(size=d)
        self.b = -self.w.sum() / 2
        self.classes_ = np.array([3, 7])  # labels != indices on purpose
        self.n_features_in_ = d
        self.rows = 0

    def margin(self, x):
        return (np.asarray(x, np.float64) * self.w).sum(axis=1) + self.b

    def predict(self, x):
        self.rows += len(x)
        return self.classes_[(self.margin(x) > 0).astype(int)]

    def exact_l2(self, x):
        """Distance to the hyperplane (the true minimum when the box does not bind)."""
        return np.abs(self.margin(x)) / np.linalg.norm(self.w)


class Linear3:
    """Three-class linear classifier ``argmax(x W + b)``, classes balanced around the centre."""

    def __init__(self, d=D, seed=1):
        rng = np.random.default_rng(seed)
        self.W = rng.normal(size=(d, 3))
        self.b = -0.5 * self.W.sum(axis=0)
        self.classes_ = np.arange(3)
        self.n_features_in_ = d

    def scores(self, x):
        return (np.asarray(x, np.float64)[:, :, None] * self.W[None]).sum(axis=1) + self.b

    def predict(self, x):
        return np.argmax(self.scores(x), axis=1)


def _x(n, seed=0, d=D):
    # inputs near the centre: the hyperplane is close and the box does not bind
    return np.random.default_rng(seed).uniform(0.3, 0.7, size=(n, d)).astype(np.float32)


@pytest.fixture(scope="module")
def converged_run():
    model = Linear()
    x = _x(8)
    return model, x, Boundary(steps=3000)(model, x, bounds=(0.0, 1.0), seed=0)


def test_finds_the_exact_distance(converged_run):
    model, x, result = converged_run
    exact = model.exact_l2(x)
    assert result.success.all()
    assert np.all(result.l2 >= exact - 1e-5)  # nothing beats the hyperplane
    assert np.all(result.l2 <= 1.1 * exact), result.l2 / exact


def test_success_is_confirmed_by_the_model(converged_run):
    model, x, result = converged_run
    clean = model.predict(x)
    ok = result.success
    assert np.all(model.predict(result.x_adv[ok]) != clean[ok])
    assert np.all((result.x_adv >= 0) & (result.x_adv <= 1))
    assert np.array_equal(result.x_adv[~ok], x[~ok])


def test_history_is_a_budget_curve(converged_run):
    _, _, result = converged_run
    for i, h in enumerate(result.history):
        assert len(h) > 10
        assert np.all(np.diff(h[:, 0]) > 0) and np.all(np.diff(h[:, 1]) <= 0)
        assert h[-1, 0] == result.queries[i]
        assert h[-1, 1] == pytest.approx(result.l2[i], rel=1e-6)
    assert np.all(result.extra["steps"] == 3000)
    assert not result.extra["init_failed"].any()


def test_results_are_json_ready(converged_run):
    _, _, result = converged_run
    text = result.to_json()
    assert '"attack": "boundary"' in text
    assert result.params["steps"] == 3000 and result.params["init_size"] == 100


@pytest.mark.parametrize("budget", [1, 5, 40, 257])
def test_budget_is_never_exceeded(budget):
    model = Linear()
    x = _x(6)
    result = Boundary()(model, x, bounds=(0.0, 1.0), seed=0, max_queries=budget)  # 25000 steps: budget stops it
    assert np.all(result.queries <= budget)
    assert model.rows <= 6 * budget + 2 * 6  # plus the clean and confirming queries
    assert np.all(result.extra["steps"] <= budget)
    clean = model.predict(x)
    assert np.all(model.predict(result.x_adv[result.success]) != clean[result.success])
    assert np.array_equal(result.success, ~result.extra["init_failed"])
    if budget >= 40:
        assert result.success.all() and np.all(result.queries == budget)


def test_same_seed_same_result_other_seed_other_result():
    model = Linear()
    x = _x(4)
    a = Boundary(steps=200)(model, x, bounds=(0.0, 1.0), seed=5)
    b = Boundary(steps=200)(model, x, bounds=(0.0, 1.0), seed=5)
    c = Boundary(steps=200)(model, x, bounds=(0.0, 1.0), seed=6)
    assert np.array_equal(a.x_adv, b.x_adv) and np.array_equal(a.queries, b.queries)
    assert all(np.array_equal(h, g) for h, g in zip(a.history, b.history))
    assert not np.any(np.all(a.x_adv == c.x_adv, axis=1))


def test_a_sample_does_not_depend_on_its_batch_mates():
    model = Linear()
    x = _x(5)
    together = Boundary(steps=300)(model, x, bounds=(0.0, 1.0), seed=3, max_queries=250)
    alone = Boundary(steps=300)(model, x[2:3], bounds=(0.0, 1.0), seed=3, max_queries=250, sample_ids=[2])
    assert np.array_equal(together.x_adv[2], alone.x_adv[0])
    assert together.queries[2] == alone.queries[0] and together.calls[2] == alone.calls[0]
    assert np.array_equal(together.history[2], alone.history[0])


def test_targeted_reaches_the_target():
    model = Linear3()
    x = _x(6, seed=2)
    labels = model.predict(x)
    targets = (labels + 1) % 3
    result = Boundary(steps=2000)(model, x, targets=targets, bounds=(0.0, 1.0), seed=0)
    assert result.success.all()
    assert np.array_equal(model.predict(result.x_adv), targets)
    assert np.array_equal(result.targets, targets)
    # lower bound: at least the distance to the plane between the true and the target class
    s = model.scores(x)
    rows = np.arange(len(x))
    dw = model.W[:, labels] - model.W[:, targets]
    lower = (s[rows, labels] - s[rows, targets]) / np.linalg.norm(dw, axis=0)
    assert np.all(result.l2 >= lower - 1e-5)


def test_starting_points_are_used():
    model = Linear()
    x = _x(4)
    # far across the boundary: push every feature towards the side of the other class
    start = np.where(model.w > 0, 1.0, 0.0)[None].repeat(4, 0).astype(np.float32)
    start[model.margin(x) > 0] = 1.0 - start[model.margin(x) > 0]
    assert np.all(model.predict(start) != model.predict(x))
    bad = start.copy()
    bad[1] = x[1]  # not adversarial: falls back to the random initialisation
    result = Boundary(steps=0)(model, x, bounds=(0.0, 1.0), seed=0, starting_points=bad)
    used = [0, 2, 3]
    assert np.array_equal(result.x_adv[used], start[used])
    assert np.all(result.queries[used] == 1)  # one query to check the starting point, nothing else
    assert result.success[1] and not np.array_equal(result.x_adv[1], start[1]) and result.queries[1] > 1
    # and the walk starts from there
    walked = Boundary(steps=200)(model, x, bounds=(0.0, 1.0), seed=0, starting_points=start)
    assert walked.success.all() and np.all(walked.l2 < result.l2[used].min())


def test_convergence_and_early_stop_stop_a_sample():
    model = Linear()
    x = _x(4)
    result = Boundary(source_step_convergance=1e-3)(model, x, bounds=(0.0, 1.0), seed=0)
    assert result.extra["converged"].all() and np.all(result.extra["steps"] < 25000)
    assert np.all(result.extra["source_step"] < 1e-3)
    exact = model.exact_l2(x)
    stop = float(1.5 * exact.max())
    early = Boundary(steps=3000)(model, x, bounds=(0.0, 1.0), seed=0, early_stop=stop)
    assert early.success.all() and np.all(early.l2 <= stop)
    assert np.all(early.extra["steps"] < 3000)


def test_init_failure_is_reported_per_sample():
    class Constant(Linear):
        def predict(self, x):  # sample 0's class everywhere: nothing is adversarial for it
            return self.classes_[(self.margin(x) > 1e9).astype(int)]

    model = Constant()
    x = _x(3)
    y = model.classes_[[0, 1, 0]]  # sample 1 is already misclassified
    result = Boundary(steps=10, init_size=7)(model, x, y, bounds=(0.0, 1.0), seed=0)
    assert result.extra["init_failed"].tolist() == [True, False, True]
    assert result.success.tolist() == [False, True, False]
    assert result.already_adversarial.tolist() == [False, True, False] and result.queries[1] == 0
    assert np.all(result.queries[[0, 2]] == 7) and np.array_equal(result.x_adv[[0, 2]], x[[0, 2]])
    assert result.extra["source_step"].tolist() == [0.0, 0.0, 0.0]
    assert json.loads(result.to_json())["extra"]["init_failed"] == [True, False, True]


def test_progress_bar_runs(capsys):
    result = Boundary(steps=15)(Linear(), _x(2), bounds=(0.0, 1.0), seed=0, progress=True)
    assert result.success.all()


@pytest.mark.parametrize("params", [
    {"steps": -1}, {"steps": 2.5}, {"steps": True}, {"spherical_step": 0.0}, {"spherical_step": np.inf},
    {"source_step": -0.1}, {"source_step": "0.01"}, {"source_step_convergance": -1e-7},
    {"step_adaptation": 0.5}, {"step_adaptation": np.nan}, {"update_stats_every_k": 0}, {"init_size": 0},
])
def test_bad_params_raise_before_any_query(params):
    model = Linear()
    with pytest.raises(ValueError):
        Boundary(**params)(model, _x(2), bounds=(0.0, 1.0), seed=0)
    assert model.rows == 0
