"""The evaluation checklist (``scd eval checklist``): its three flag rules, the noise baseline
against closed forms on linear models, and a resumable run on a real distortion run."""

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner
from sklearn.linear_model import LogisticRegression

import scd
from attacks import AttackSpec
from cli import main
from eval.baselines import RandomForestEnsemble
from eval.checklist import (
    noise_check,
    noise_directions,
    noise_distances,
    run_checklist,
    stronger_check,
    success_curve,
)
from eval.runstore import RunStore
from eval.suite import evaluate

DATA = {"name": "digits", "classes": None, "data_dir": None, "path": None}
ATTACK = {"method": "hsj", "norm": None, "iters": 2, "init_size": None, "theta": None, "max_queries": None}


# ------------------------------------------------------------------------------- flag rules
def test_stronger_attack_flags_a_median_drop_over_ten_percent():
    before = [1.0, 2.0, 3.0]  # median 2
    kept = stronger_check(before, [None, 1.82, None])  # the middle point: 9 % closer
    assert kept["after_median"] == pytest.approx(1.82) and kept["drop"] == pytest.approx(0.09)
    assert not kept["flagged"]
    dropped = stronger_check(before, [None, 1.78, np.nan])  # 11 %
    assert dropped["drop"] == pytest.approx(0.11) and dropped["flagged"]
    # after is the best of old and new: a worse new run changes nothing
    assert stronger_check(before, [5.0, 5.0, 5.0])["drop"] == 0.0
    # a point the run failed on (infinitely far) that the stronger attack breaks
    assert stronger_check([None, None, 1.0], [0.5, 0.5, None])["flagged"]
    assert not stronger_check([None, None], [None, None])["flagged"]


def test_success_curve_reaches_one_only_when_every_point_succeeds():
    eps = np.linspace(0, 5, 11)
    full = success_curve([0.5, 1.5, 2.5, 3.0], eps)
    assert full["success_rate"][-1] == 1.0 and not full["flagged"]
    assert full["success_rate"] == [np.mean(np.array([0.5, 1.5, 2.5, 3.0]) <= e) for e in eps]  # brute force
    partial = success_curve([0.5, None, 2.5, np.inf], eps)
    assert partial["success_rate"][-1] == 0.5 and partial["flagged"] and partial["n_success"] == 2
    assert np.all(np.diff(partial["success_rate"]) >= 0)


def test_noise_check_flags_an_attack_no_better_than_noise():
    assert not noise_check([1.0, 2.0, 3.0], [4.0, 5.0, 6.0])["flagged"]
    worse = noise_check([1.0, 5.0, None], [2.0, 3.0, 4.0])  # attack median 5 (a failure counts as inf)
    assert worse["flagged"] and worse["noise_closer"] == 2
    assert noise_check([1.0], [1.0])["flagged"]  # equal is no better


# ------------------------------------------------------------------------------- noise baseline
class _Hyperplane:
    """Label 1 where w.x + b > 0."""

    def __init__(self, w, b):
        self.w, self.b = np.asarray(w, np.float64), float(b)

    def predict(self, x):
        return (np.asarray(x, np.float64) @ self.w + self.b > 0).astype(int)


def test_noise_directions_are_seeded_unit_vectors_of_one_point():
    u = noise_directions(7, 2.0, 50, seed=3, sample_id=11)
    assert u.shape == (50, 7) and np.allclose(np.linalg.norm(u, axis=1), 1.0, atol=1e-6)
    assert np.array_equal(u, noise_directions(7, 2.0, 50, seed=3, sample_id=11))
    assert not np.array_equal(u, noise_directions(7, 2.0, 50, seed=3, sample_id=12))
    s = noise_directions(7, np.inf, 50, seed=3, sample_id=11)
    assert set(np.unique(s)) == {-1.0, 1.0}
    with pytest.raises(ValueError, match="L2 and L∞"):
        noise_directions(7, 1.0, 5, seed=0, sample_id=0)


@pytest.mark.parametrize("norm", [2.0, np.inf])
def test_noise_radius_is_exact_along_the_normal_of_a_hyperplane(norm):
    rng = np.random.default_rng(0)
    d, n = 6, 8
    w, b = rng.normal(size=d), 0.0
    x = (0.5 + rng.uniform(-0.05, 0.05, (n, d))).astype(np.float32)
    b = -float(np.median(x @ w))  # points on both sides, all within 0.1 of the plane
    model = _Hyperplane(w, b)
    y = model.predict(x)
    f = x.astype(np.float64) @ w + b
    dual = np.linalg.norm(w, ord=1 if norm == np.inf else 2)
    true = np.abs(f) / dual  # closed form: the distance to the plane in this norm
    normal = -np.sign(f)[:, None] * (np.sign(w) if norm == np.inf else w / np.linalg.norm(w))
    random = np.stack([noise_directions(d, norm, 20, seed=1, sample_id=i) for i in range(n)])
    directions = np.concatenate([normal[:, None, :], random], axis=1).astype(np.float32)
    steps = 30
    dist = noise_distances(model, x, y, directions, norm, steps=steps, batch_size=7)
    tol = (np.sqrt(d) if norm == 2.0 else 1.0) / 2**steps + 1e-6
    assert np.allclose(dist[:, 0], true, atol=tol)  # equal along the normal
    assert np.all(dist >= true[:, None] - 1e-6)  # never closer than the plane
    # brute force along each random direction: the crossing radius -f / (w.u), where the path stays in the box
    radius = -f[:, None] / np.einsum("nkd,d->nk", random.astype(np.float64), w)
    inside = (radius > 0) & np.all((x[:, None] + radius[..., None] * random >= 0)
                                   & (x[:, None] + radius[..., None] * random <= 1), axis=-1)
    assert inside.sum() > 20
    assert np.allclose(dist[:, 1:][inside], radius[inside], atol=tol)


def test_noise_distances_of_logistic_regression_match_its_decision_function(digits):
    model = LogisticRegression(max_iter=500).fit(digits.x_train, digits.y_train)
    x, y = digits.x_test[:5], digits.y_test[:5]
    keep = model.predict(x) == y
    x, y = x[keep], y[keep]
    coef = model.coef_.ravel().astype(np.float64)
    true = np.abs(model.decision_function(x)) / np.linalg.norm(coef)  # sklearn's own margin
    normal = (-np.sign(model.decision_function(x))[:, None] * coef / np.linalg.norm(coef))[:, None, :]
    dist = noise_distances(model, x, y, normal.astype(np.float32), 2.0, steps=30)
    clipped = np.any((x + true[:, None] * normal[:, 0] < 0) | (x + true[:, None] * normal[:, 0] > 1), axis=1)
    assert np.all(dist[:, 0] >= true - 1e-5)  # clipping can only make the found example farther
    assert np.allclose(dist[~clipped, 0], true[~clipped], rtol=1e-4)


def test_stronger_spec_doubles_iterations_and_budgets_from_the_attacks_defaults():
    from attacks import Boundary, HopSkipJump

    assert AttackSpec(method="hsj").stronger().iters == 2 * HopSkipJump().max_iter
    assert AttackSpec(method="boundary", iters=7).stronger(3).iters == 21 and Boundary().steps == 25000
    hsj = AttackSpec(method="hsj", norm="inf", iters=10, max_queries=500).stronger()
    assert (hsj.iters, hsj.max_queries, hsj.norm) == (20, 1000, "inf")
    assert AttackSpec(method="hsj").stronger().max_queries is None  # unbounded stays unbounded
    assert AttackSpec(method="rays").stronger().max_queries == 20000  # RayS's own limit, 10,000, doubled
    with pytest.raises(ValueError, match="no iterations or query budget"):
        AttackSpec(method="structure").stronger()


# ------------------------------------------------------------------------------- the whole checklist
@pytest.fixture(scope="module")
def run(tmp_path_factory, digits):
    folder = tmp_path_factory.mktemp("checklist")
    paths = {"scd": str(folder / "scd.scd"), "rf": str(folder / "rf.model")}
    scd.SCD01(n_votes=2, n_iters=40, random_state=0, n_jobs=1).fit(digits.x_train, digits.y_train).save(paths["scd"])
    RandomForestEnsemble(n_votes=4, random_state=0).fit(digits.x_train, digits.y_train).save(paths["rf"])
    options = {"attack": ATTACK, "n": 3, "runs": 1, "start": "uniform", "chunk": 2, "batch_size": 1024, "seed": 4}
    evaluate("distortion", paths, DATA, folder / "run", options=options, backend="sequential", quiet=True)
    return folder / "run"


def _stable(checklist):
    return {k: v for k, v in checklist.items() if k not in ("date",)}


def test_checklist_runs_the_stronger_attack_and_resumes_to_the_same_result(run, tmp_path):
    first = tmp_path / "a"
    shutil.copytree(run, first)
    whole = run_checklist(first, subset=2, directions=10, steps=8, backend="sequential", quiet=True)
    st = whole["settings"]
    assert st["stronger_attack"] == AttackSpec.from_dict(ATTACK).stronger().to_dict()
    assert st["stronger_attack"]["iters"] == 4 and st["runs"] == 2 and st["seed"] == 5
    records = RunStore(first / "checklist").records
    attacks = [r for r in records.values() if r["kind"] == "attack"]
    assert sorted({r["seed"] for r in attacks}) == [5, 6]  # the seeds after the run's own
    assert all(r["sample_ids"] == st["points"] for r in attacks)
    for name, m in whole["models"].items():
        new = [min([r["l2"][j] for r in attacks if r["model"] == name and r["success"][j]], default=None)
               for j in range(2)]
        assert m["stronger"]["per_sample_new"] == new
        assert len(m["noise"]["per_sample"]) == 3
    report = (first / "report.md").read_text()
    assert "## Evaluation checklist" in report and (first / "checklist.json").exists()
    # a kill after three records (the two noise units, one run of a lock-step pair): the rerun does
    # the rest and gives the same checklist
    second = tmp_path / "b"
    shutil.copytree(run, second)
    shutil.copytree(first / "checklist", second / "checklist")
    lines = (second / "checklist" / "records.jsonl").read_bytes().split(b"\n")
    assert [json.loads(line)["kind"] for line in lines[:3]] == ["noise", "noise", "attack"]
    (second / "checklist" / "records.jsonl").write_bytes(b"\n".join(lines[:3]) + b"\n")
    resumed = run_checklist(second, subset=2, directions=10, steps=8, backend="sequential", quiet=True)
    assert _stable(resumed) == _stable(whole)
    assert json.loads((second / "checklist.json").read_text())["models"] == whole["models"]
    # scd eval report rebuilds the report with the checklist's section
    result = CliRunner().invoke(main, ["eval", "report", str(second)])
    assert result.exit_code == 0 and "## Evaluation checklist" in result.output
    with pytest.raises(ValueError, match="other settings"):
        run_checklist(second, subset=1, directions=10, steps=8, backend="sequential", quiet=True)


def test_checklist_command_prints_the_table_and_refuses_what_it_cannot_check(run, tmp_path):
    done = tmp_path / "done"
    shutil.copytree(run, done)
    result = CliRunner().invoke(main, ["eval", "checklist", str(done), "--subset", "1", "--backend", "sequential",
                                        "--quiet"])
    assert result.exit_code == 0, result.output
    assert "| scd |" in result.output and "| rf |" in result.output
    result = CliRunner().invoke(main, ["eval", "checklist", str(done), "--subset", "4", "--quiet"])
    assert result.exit_code == 1 and "subset must be an integer from 1 to the run's 3 points" in result.output
    cut = tmp_path / "cut"
    shutil.copytree(run, cut)
    lines = (cut / "records.jsonl").read_bytes().split(b"\n")
    (cut / "records.jsonl").write_bytes(b"\n".join(lines[:1]) + b"\n")
    result = CliRunner().invoke(main, ["eval", "checklist", str(cut), "--quiet"])
    assert result.exit_code == 1 and "unfinished" in result.output
    assert not (cut / "checklist").exists()
