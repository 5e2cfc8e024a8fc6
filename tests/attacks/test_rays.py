"""RayS: radii against the exact boundary of linear models (closed form and brute force over
all sign vectors), a step-by-step match with a transcription of the authors' code,
determinism, budgets, early stopping, confirmation and errors raised before any query."""

import json

import numpy as np
import pytest

from attacks import Oracle
from attacks.rays import RayS
from tests.attacks.models import Constant, Flaky, Linear, binary_linear, three_class_linear

BOX = (0.0, 1.0)
TOL = 1e-3


def _boundary_radius(model, x, signs):
    """Exact radius along ``s/‖s‖₂`` to a binary linear boundary (no clipping): ``-m/(w·s/‖s‖₂)``."""
    s = np.asarray(signs, np.float64)
    slope = (s @ model.W) / np.linalg.norm(s, axis=1)
    return -model.margin(x) / slope


@pytest.mark.parametrize("bounds", [(0.0, 1.0), (-1.0, 1.0)])
def test_radius_is_the_exact_boundary_radius_and_linf_is_optimal(bounds):
    model, x = binary_linear(d=32, n=6, seed=2)
    result = RayS(query_limit=1500)(model, x, bounds=bounds, seed=0)
    assert result.success.all()
    radius = result.extra["radius"]
    exact = _boundary_radius(model, x, result.extra["signs"])
    # the binary search brackets the boundary from the adversarial side, to tol
    assert np.all(radius >= exact - 1e-5) and np.all(radius <= exact + TOL + 1e-5)
    # single-coordinate sweeps reach the optimal signs -sign(w)·sign(margin) on a linear model
    best_linf = model.exact_distance(x, np.inf)
    assert np.all(result.linf >= best_linf * (1 - 1e-4))
    assert np.all(result.linf <= best_linf * 1.02)
    np.testing.assert_array_equal(result.extra["signs"], -np.sign(model.margin(x))[:, None] * np.sign(model.W))
    # no clipping here: the example is x0 + radius·s/√d, at L∞ radius/√d
    np.testing.assert_allclose(result.linf, radius / np.sqrt(32), rtol=1e-5)
    assert np.all(np.sign(model.margin(result.x_adv)) != np.sign(model.margin(x)))


def test_wide_box_starts_the_search_at_the_corner():
    # bounds (-10, 10) with the boundary 1.5 per coordinate away: the authors' upper bound
    # min(d_t, ‖s‖₂) moves each coordinate by 1 only, a point that is not adversarial
    d = 8
    rng = np.random.default_rng(3)
    w = rng.normal(size=d)
    x = rng.uniform(-0.2, 0.2, size=(3, d)).astype(np.float32)
    b = -(x.astype(np.float64) @ w)[0] - 1.5 * np.abs(w).sum()  # sample 0 at L∞ distance 1.5
    model = Linear(w, np.asarray(b))
    result = RayS(query_limit=400)(model, x, bounds=(-10.0, 10.0), seed=0)
    assert result.success.all()
    exact = _boundary_radius(model, x, result.extra["signs"])
    assert np.all(np.abs(result.extra["radius"] - exact) <= TOL + 1e-5)
    assert np.all(result.linf <= model.exact_distance(x, np.inf) * 1.02)
    assert result.linf[0] > 1.4


def test_brute_force_over_all_sign_vectors_in_six_dimensions():
    d = 6
    rng = np.random.default_rng(5)
    w = rng.normal(size=d)
    model = Linear(w, np.asarray(-0.5 * w.sum()))
    x = (0.5 + rng.uniform(-0.05, 0.05, size=(3, d))).astype(np.float32)
    result = RayS(query_limit=600)(model, x, bounds=BOX, seed=0)
    assert result.success.all()

    every = np.array(np.meshgrid(*[[-1.0, 1.0]] * d, indexing="ij")).reshape(d, -1).T  # 64 sign vectors
    grid = np.arange(1, 20001) * 1e-4  # radii 1e-4 .. 2
    for i in range(len(x)):
        first = np.full(len(every), np.inf)
        for k, s in enumerate(every):
            rows = np.clip(x[i] + grid[:, None] * (s / np.sqrt(d)), 0, 1).astype(np.float32)
            adv = model.predict(rows) != model.predict(x[i:i + 1])[0]
            if adv.any():
                first[k] = grid[np.argmax(adv)]
        k = np.argmin(first)
        assert first[k] < 1.0  # the optimum is well inside the grid and the box
        assert abs(result.extra["radius"][i] - first[k]) <= TOL + 1e-4
        np.testing.assert_array_equal(result.extra["signs"][i], every[k])
        assert abs(result.linf[i] - first[k] / np.sqrt(d)) <= (TOL + 1e-4) / np.sqrt(d)


def _authors_rays(model, x0, y, n_blocks, tol=TOL):
    """One sample through a line-by-line numpy transcription of ``RayS.attack_hard_label`` and
    ``binary_search`` in the authors' batched RayS.py (box [0, 1], untargeted)."""
    d = len(x0)
    sgn, d_t, queries = np.ones(d), np.inf, 0
    block_level, block_ind = 0, 0

    def succ(r, unit):
        nonlocal queries
        queries += 1
        row = np.clip(x0 + r * unit, 0.0, 1.0).astype(np.float32)[None]
        return model.predict(row)[0] != y

    for _ in range(n_blocks):
        block_size = int(np.ceil(d / 2 ** block_level))
        start, end = block_ind * block_size, min(d, (block_ind + 1) * block_size)
        attempt = sgn.copy()
        attempt[start:end] *= -1.0
        sgn_norm = np.linalg.norm(attempt)
        unit = attempt / sgn_norm
        d_start, d_end = 0.0, d_t
        if succ(d_t, unit):
            d_end = min(d_t, sgn_norm)
            while True:
                d_mid = (d_start + d_end) / 2.0
                if succ(d_mid, unit):
                    d_end = d_mid
                else:
                    d_start = d_mid
                if d_end - d_start <= tol:
                    break
        if d_end < d_t:
            d_t, sgn = d_end, attempt
        block_ind += 1
        if block_ind == 2 ** block_level or end == d:
            block_level += 1
            block_ind = 0
    return d_t, sgn, queries


def test_same_radius_signs_and_queries_as_the_authors_code():
    model, x = binary_linear(d=20, n=3, seed=4)
    y = model.predict(x)
    for i in range(len(x)):
        d_t, sgn, queries = _authors_rays(model, x[i], y[i], n_blocks=70)
        # stopping at the authors' query count after 70 blocks ends exactly after block 70
        result = RayS(query_limit=queries)(model, x[i:i + 1], bounds=BOX, seed=0, sample_ids=[i])
        assert result.queries[0] == queries
        assert result.extra["radius"][0] == d_t
        np.testing.assert_array_equal(result.extra["signs"][0], sgn)


def test_deterministic_and_independent_of_batch_mates():
    model, x = binary_linear(d=24, n=5, seed=1)
    attack = RayS(query_limit=400)
    a = attack(model, x, bounds=BOX, seed=0, sample_ids=np.arange(10, 15))
    b = attack(model, x, bounds=BOX, seed=7, sample_ids=np.arange(10, 15))  # the seed is unused
    np.testing.assert_array_equal(a.x_adv, b.x_adv)
    np.testing.assert_array_equal(a.queries, b.queries)
    np.testing.assert_array_equal(a.extra["radius"], b.extra["radius"])
    alone = attack(model, x[3:4], bounds=BOX, seed=0, sample_ids=[13])
    np.testing.assert_array_equal(a.x_adv[3], alone.x_adv[0])
    assert a.queries[3] == alone.queries[0] and a.extra["radius"][3] == alone.extra["radius"][0]
    # budget curves only improve
    for h in a.history:
        assert len(h) and np.all(np.diff(h[:, 0]) >= 0) and np.all(np.diff(h[:, 1]) <= 0)


def test_budgets_are_exact():
    model, x = binary_linear(d=16, n=4, seed=3)
    # without early stopping every sample spends its whole budget, never a row more
    limited = RayS(query_limit=250)(model, x, bounds=BOX, seed=0)
    assert np.all(limited.queries == 250)
    oracle = Oracle(model, bounds=BOX, budget=180)
    capped = RayS(query_limit=250)(oracle, x, seed=0)
    assert np.all(capped.queries == 180)
    assert oracle.summary()["refused_rows"] == 0  # the attack never asks past the budget
    assert capped.success.all()
    capped2 = RayS(query_limit=100)(model, x, bounds=BOX, seed=0, max_queries=180)
    assert np.all(capped2.queries == 100)
    # a tiny budget: the first (corner) query plus a search cut short still gives valid points
    tiny = RayS(query_limit=3)(model, x, bounds=BOX, seed=0)
    assert np.all(tiny.queries == 3) and tiny.success.all()
    assert np.all(np.sign(model.margin(tiny.x_adv)) != np.sign(model.margin(x)))


def test_max_queries_alone_sets_the_limit_beyond_the_default(monkeypatch):
    """Without ``query_limit`` the oracle's budget is the limit, also above the authors' default
    (made 100 here instead of 10000, to keep the test short)."""
    import attacks.rays

    monkeypatch.setattr(attacks.rays, "_DEFAULT_QUERY_LIMIT", 100)
    model, x = binary_linear(d=8, n=2, seed=3)
    assert np.all(RayS()(model, x, bounds=BOX, seed=0).queries == 100)
    result = RayS()(model, x, bounds=BOX, seed=0, max_queries=150)
    assert np.all(result.queries == 150) and result.params["query_limit"] is None


def test_early_stop_stops_each_sample_at_epsilon():
    model, x = binary_linear(d=32, n=6, seed=2)
    eps = float(np.max(model.exact_distance(x, np.inf))) * 1.1  # reachable by every sample
    full = RayS(query_limit=1000)(model, x, bounds=BOX, seed=0)
    early = RayS(query_limit=1000)(model, x, bounds=BOX, seed=0, early_stop=eps)
    assert early.success.all() and np.all(early.linf <= eps)
    assert np.all(early.queries < full.queries)
    np.testing.assert_array_equal(early.extra["stop_queries"], early.queries)
    # without early_stop, stop_queries is the count at the first adversarial point
    assert np.all((full.extra["stop_queries"] > 0) & (full.extra["stop_queries"] < 40))
    # a sample stops at the end of the first block that reaches eps, like the batched original
    for h, q in zip(early.history, early.queries):
        assert h[-1, 0] == q and h[-1, 1] <= eps and np.all(h[:-2, 1] > eps)


def test_never_claims_an_unconfirmed_success():
    # the model lies ("adversarial") during the attack, then answers truthfully at confirmation
    x = np.full((2, 4), 0.5, np.float32)
    result = RayS(query_limit=50)(Flaky(4, n_rows=40), x, y=[0, 0], bounds=BOX, seed=0)
    assert not result.success.any()
    np.testing.assert_array_equal(result.x_adv, x)
    assert np.all(result.extra["radius"] > 0)  # it did believe the lies


def test_no_adversarial_ray_is_a_flag_and_json_works():
    x = np.full((3, 5), 0.5, np.float32)
    result = RayS(query_limit=40)(Constant(5), x, y=[0, 0, 0], bounds=BOX, seed=0)
    assert not result.success.any() and np.all(result.queries == 40)
    np.testing.assert_array_equal(result.extra["radius"], -1.0)
    np.testing.assert_array_equal(result.extra["stop_queries"], -1)
    record = json.loads(result.to_json())
    assert record["summary"]["success_rate"] == 0.0 and record["params"] == {"query_limit": 40, "tol": TOL}


def test_already_misclassified_samples_are_not_attacked():
    model, x = binary_linear(d=10, n=4, seed=0)
    y = model.predict(x)
    y[1] = 1 - y[1]
    result = RayS(query_limit=100)(model, x, y=y, bounds=BOX, seed=0)
    assert result.success.all() and result.queries[1] == 0 and result.linf[1] == 0
    assert result.extra["radius"][1] == 0 and result.extra["stop_queries"][1] == 0
    record = json.loads(result.to_json())
    assert [s["queries"] for s in record["samples"]] == result.queries.tolist()


def test_targeted_attack_reaches_the_target():
    model, x = three_class_linear()
    targets = (model.predict(x) + 1) % 3
    result = RayS(query_limit=800)(model, x, bounds=BOX, targets=targets, seed=0)
    assert result.success.mean() >= 0.8
    ok = result.success
    np.testing.assert_array_equal(model.predict(result.x_adv[ok]), targets[ok])
    assert np.all(result.linf[ok] > 0)


def test_progress_bar_runs():
    model, x = binary_linear(d=8, n=2)
    result = RayS(query_limit=60)(model, x, bounds=BOX, seed=0, progress=True)
    assert result.success.all()


def test_invalid_parameters_raise_before_any_query():
    model, x = binary_linear(d=8, n=2)
    for bad in (dict(query_limit=0), dict(query_limit=2.5), dict(query_limit=True), dict(tol=0.0),
                dict(tol=float("nan")), dict(tol="1e-3")):
        model.rows = 0
        with pytest.raises(ValueError):
            RayS(**bad)(model, x, bounds=BOX)
        assert model.rows == 0
    with pytest.raises(ValueError, match="early_stop"):
        RayS()(model, x, bounds=BOX, early_stop=-1.0)
    with pytest.raises(ValueError, match="starting_points"):
        RayS()(model, x, bounds=BOX, starting_points=x)
    attack = RayS()
    assert attack.name == "rays" and attack.norm == np.inf
    assert attack.get_params() == {"query_limit": None, "tol": 1e-3}
    assert repr(attack) == "RayS(query_limit=None, tol=0.001)"
