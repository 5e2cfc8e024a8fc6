"""``scd eval intervals``: certified intervals of a distortion run, checked against the true
minimum distortion (exhaustive search), resumed after an interruption, refused for runs that
do not match; the accuracy curves and the pairwise conclusions by hand."""

from __future__ import annotations

import itertools
import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

import scd
from cli import main
from eval import intervals
from eval.baselines import RandomForestEnsemble
from eval.intervals import accuracy_curves, pair_conclusion, run_intervals
from eval.runstore import RunStore
from eval.suite import evaluate, summarize
from tests.scd.test_certify_truth import true_minimum

HSJ_INF = {"method": "hsj", "norm": "inf", "iters": 4, "init_size": None, "theta": None, "max_queries": None}
BOUNDARY = {"method": "boundary", "norm": None, "iters": 30, "init_size": None, "theta": None, "max_queries": None}


@pytest.fixture
def no_plots(monkeypatch):
    """Reports without their PNGs, for the tests that do not look at them (drawing is slow)."""
    import eval.report

    monkeypatch.setattr(eval.report, "figures", lambda results: {})


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two distortion runs on the same 4 points of a 2-D problem: HopSkipJump in L∞ (the
    intervals' norm) and Boundary (an L2 attack, whose examples bound the L∞ minimum too);
    an SCD01 with 6 hidden units in all (3^6 faces for the truth) and a 3-tree forest."""
    folder = tmp_path_factory.mktemp("intervals")
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(160, 2)).astype(np.float32)
    y = (x.sum(1) + 0.2 * rng.normal(size=160) > 1).astype(int)
    np.savez(folder / "data.npz", x=x, y=y)
    data = {"name": "npz", "classes": None, "data_dir": None, "path": str(folder / "data.npz")}
    models = {"scd": str(folder / "scd.scd"), "rf": str(folder / "rf.model")}
    scd.SCD01(n_votes=3, hidden_nodes=2, n_iters=30, random_state=0, n_jobs=1).fit(x, y).save(models["scd"])
    RandomForestEnsemble(n_votes=3, max_depth=3, random_state=0).fit(x, y).save(models["rf"])
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("eval.report.figures", lambda results: {})
        for name, attack in (("hsj", HSJ_INF), ("boundary", BOUNDARY)):
            evaluate("distortion", models, data, folder / name, backend="sequential", quiet=True,
                     options={"attack": attack, "n": 4, "runs": 1, "start": "uniform", "chunk": 4,
                              "batch_size": 1024, "seed": 0})
    return folder


def _copy(runs, tmp_path):
    """Fresh copies of the two runs (certificates are written into the first)."""
    for name in ("hsj", "boundary"):
        shutil.copytree(runs / name, tmp_path / name)
    return tmp_path / "hsj", tmp_path / "boundary"


def _forest_truth(model, x0, norm):
    """The forest's minimum distortion: every cell of the grid of its thresholds (inside the
    box) whose prediction differs, at the distance of its closure."""
    cuts = [[0.0, 1.0] for _ in range(len(x0))]
    for tree in model.estimators_:
        for f, t in zip(tree.tree_.feature, tree.tree_.threshold):
            if f >= 0 and 0 < t < 1:
                cuts[f].append(float(t))
    edges = [np.unique(c) for c in cuts]
    label = model.predict(x0[None])[0]
    best = np.inf
    for cell in itertools.product(*[range(len(e) - 1) for e in edges]):
        lo = np.array([e[j] for e, j in zip(edges, cell)])
        hi = np.array([e[j + 1] for e, j in zip(edges, cell)])
        if model.predict(((lo + hi) / 2)[None].astype(np.float32))[0] != label:
            gap = np.maximum(0.0, np.maximum(lo - x0, x0 - hi))
            best = min(best, float(gap.max() if norm == "inf" else np.sqrt(np.sum(gap ** 2))))
    return best


def _record_minimum(run_dir, model, distance, points):
    """Per point, the closest successful example of a run's records, in ``distance``."""
    best = {p: np.inf for p in points}
    for rec in RunStore(run_dir).records.values():
        if rec["model"] == model:
            for sid, ok, d in zip(rec["sample_ids"], rec["success"], rec[distance]):
                if ok:
                    best[sid] = min(best[sid], d)
    return [best[p] for p in points]


@pytest.mark.slow
def test_intervals_contain_the_true_minimum(runs, tmp_path):
    first, second = _copy(runs, tmp_path)
    result = CliRunner().invoke(main, ["eval", "intervals", str(first), str(second), "--time-limit", "2", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "## Certified intervals" in result.output
    results = json.loads((first / "results.json").read_text())
    iv = results["intervals"]
    assert iv["norm"] == "inf" and iv["attacks"] == ["HopSkipJump L∞", "Boundary L2"]
    points = results["config"]["points"]
    from eval.baselines import load_model
    from eval.datasets import load_dataset

    ds = load_dataset("npz", path=str(runs / "data.npz"))
    for name in ("scd", "rf"):
        model = load_model(runs / f"{name}.{'scd' if name == 'scd' else 'model'}")
        m = iv["models"][name]
        assert m["certified"] and m["n"] == 4 and m["pending"] == 0 and m["conflicts"] == 0
        hsj = _record_minimum(first, name, "linf", points)
        boundary = _record_minimum(second, name, "linf", points)  # an L2 attack's examples, measured in L∞
        for row, p, h, b in zip(m["rows"], points, hsj, boundary):
            x0 = ds.x_test[p].astype(np.float64)
            truth = true_minimum(model, x0, "inf")[0] if name == "scd" else _forest_truth(model, x0, "inf")
            assert row["lower"] <= truth + 1e-6, (name, row, truth)
            assert row["upper"] >= truth - 1e-6, (name, row, truth)
            if row["exact"]:
                assert row["upper"] == pytest.approx(truth, abs=1e-5)
            assert row["attack_upper"] == pytest.approx({"HopSkipJump L∞": h, "Boundary L2": b})
            assert row["upper"] == pytest.approx(min(h, b, row["certificate_upper"] or np.inf))
            assert row["gap"] == pytest.approx(row["upper"] - row["lower"])
        assert m["exact"] >= 3  # the exact searches close these tiny problems
    curves = iv["curves"]
    for curve in curves["models"].values():
        robust, certified = np.array(curve["robust"]), np.array(curve["certified"])
        assert np.all(np.diff(robust) <= 0) and np.all(np.diff(certified) <= 0)
        assert np.all(certified <= robust) and robust[0] == 1.0 and robust[-1] == 0.0
    assert (first / "certified_accuracy.png").exists()
    assert "certified_accuracy.png" in (first / "report.md").read_text()
    # the summary (scd eval report) is rebuilt from the records alone, intervals included
    assert summarize(RunStore(first))["intervals"]["models"] == iv["models"]


class _Stop(Exception):
    pass


def _without_seconds(iv):
    for m in iv["models"].values():
        m.pop("seconds")
    return iv


def test_interrupted_intervals_resume_to_the_same_results(runs, tmp_path, monkeypatch, no_plots):
    whole = _without_seconds(run_intervals([_copy(runs, tmp_path / "whole")[0]], time_limit=1, quiet=True))
    first = _copy(runs, tmp_path / "cut")[0]
    real, calls, stop = intervals._certify_point, [], [4]

    def stop_at_the_fourth(*args, **kwargs):
        calls.append(args[-1])
        if len(calls) == stop[0]:
            raise _Stop
        return real(*args, **kwargs)

    monkeypatch.setattr(intervals, "_certify_point", stop_at_the_fourth)
    with pytest.raises(_Stop):
        run_intervals([first], time_limit=1, quiet=True)
    assert len(RunStore(first / "intervals").records) == 3
    calls.clear()
    stop[0] = None
    resumed = _without_seconds(run_intervals([first], time_limit=1, quiet=True))
    assert len(calls) == 8 - 3  # only the points not yet certified
    assert resumed == whole
    with pytest.raises(ValueError, match="other settings .differing: time_limit.; rerun with the same --time-limit"):
        run_intervals([first], time_limit=2, quiet=True)


def test_runs_that_do_not_match_are_refused(runs, tmp_path):
    first, second = _copy(runs, tmp_path)
    config = json.loads((second / "config.json").read_text())

    def variant(name, **change):
        folder = tmp_path / name
        shutil.copytree(second, folder)
        (folder / "config.json").write_text(json.dumps({**config, **change}))
        return folder

    other_points = variant("points", points=config["points"][::-1])
    other_model = variant("model", models={**config["models"], "rf": {**config["models"]["rf"], "sha256": "0" * 16}})
    extra_model = variant("extra", models={**config["models"], "mlp": config["models"]["rf"]})
    other_data = variant("data", data={**config["data"], "name": "digits", "path": None})
    accuracy = variant("accuracy", kind="accuracy")
    for folder, message in ((other_points, "other test points"), (other_model, "another file as model 'rf'"),
                            (extra_model, "model 'mlp'"), (other_data, "other data"),
                            (accuracy, "not a distortion run"), (first, "given twice")):
        with pytest.raises(ValueError, match=message):
            run_intervals([first, folder], quiet=True)
    result = CliRunner().invoke(main, ["eval", "intervals", str(accuracy)])
    assert result.exit_code == 1 and "intervals are for distortion runs" in result.output
    assert not (first / "intervals").exists()  # refused before anything is written


def test_a_model_without_a_certificate_gets_none(runs, tmp_path, monkeypatch, no_plots):
    """A model the certificates do not cover (as the larq BNN) has no lower bound: "none" and
    the reason, the attacks' upper bound, no certified curve."""
    import eval.bounds

    real = eval.bounds.model_kind

    def no_forest(model):
        if type(model) is RandomForestEnsemble:  # as model_kind refuses the models it cannot bound
            raise ValueError("certified bounds are implemented for ..., not for RandomForestEnsemble.")
        return real(model)

    monkeypatch.setattr(eval.bounds, "model_kind", no_forest)
    first = _copy(runs, tmp_path)[0]
    iv = run_intervals([first], time_limit=0, quiet=True)
    rf = iv["models"]["rf"]
    assert not rf["certified"] and "not for RandomForestEnsemble" in rf["reason"]
    assert all(r["lower"] is None and r["lower_method"] == "none" and not r["exact"] for r in rf["rows"])
    points = json.loads((first / "config.json").read_text())["points"]
    assert [r["upper"] for r in rf["rows"]] == pytest.approx(_record_minimum(first, "rf", "linf", points))
    assert iv["curves"]["models"]["rf"]["certified"] is None
    report = (first / "report.md").read_text()
    assert "No certified bound for rf: certified bounds are implemented" in report
    assert "| rf | 4 | none |" in report


def test_accuracy_curves_by_hand():
    lower = np.array([0.1, 0.3, np.inf, 0.0])  # the last point is misclassified: distance 0
    upper = np.array([0.2, 0.5, np.inf, 0.0])  # nothing found for the third
    eps = np.array([0.0, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0])
    curves = accuracy_curves(lower, upper, eps)
    assert curves["robust"] == [0.75, 0.75, 0.75, 0.5, 0.5, 0.25, 0.25]
    assert curves["certified"] == [0.75, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25]
    assert accuracy_curves(None, upper, eps)["certified"] is None


def _intervals(centres_a, centres_b, half=0.05):
    a, b = np.asarray(centres_a, float), np.asarray(centres_b, float)
    return a - half, a + half, b - half, b + half


def test_pair_conclusion_on_hand_made_intervals():
    # a above b on 9 of 10 images, overlapping on the last: sign test p = 11 / 1024
    la, ua, lb, ub = _intervals([1.0] * 10, [0.5] * 9 + [1.0])
    c = pair_conclusion("scd", "mlp", la, ua, lb, ub)
    assert (c["n"], c["a_provably_harder"], c["b_provably_harder"], c["verdict"]) == (10, 9, 0, "scd")
    assert c["sign_test_p_a"] == pytest.approx(11 / 1024)
    assert c["text"].startswith("scd harder than mlp: confirmed")
    # swapped: b is the harder one
    c = pair_conclusion("mlp", "scd", lb, ub, la, ua)
    assert c["verdict"] == "scd" and c["text"].startswith("scd harder than mlp: confirmed")
    # 8 of 10: p = 56 / 1024 > 0.05, so it cannot be decided
    la, ua, lb, ub = _intervals([1.0] * 10, [0.5] * 8 + [1.0] * 2)
    c = pair_conclusion("scd", "mlp", la, ua, lb, ub)
    assert c["sign_test_p_a"] == pytest.approx(56 / 1024) and c["verdict"] is None
    assert c["text"].startswith("scd vs mlp: cannot decide")
    # the attacks alone put a higher on every image, but the intervals overlap everywhere
    la, ua, lb, ub = _intervals([1.0] * 10, 0.99 - 0.005 * np.arange(10))
    c = pair_conclusion("scd", "mlp", la, ua, lb, ub)
    assert c["verdict"] is None and c["a_provably_harder"] == c["b_provably_harder"] == 0
    assert "The attacks alone put scd higher" in c["text"] and "do not confirm" in c["text"]
    # without a certificate b's lower bound is 0: b is never proven harder, a still can be
    lb = np.zeros(10)
    spread = 0.01 * np.arange(10)
    c = pair_conclusion("scd", "bnn", np.full(10, 1.0), 1.2 + spread, lb, 0.5 + spread[::-1] ** 2)
    assert c["verdict"] == "scd"
    c = pair_conclusion("scd", "bnn", np.full(10, 0.1), 0.2 + spread, lb, 0.5 + spread[::-1] ** 2)
    assert c["verdict"] is None and "No positive certified lower bound for bnn" in c["text"]
    # images without both intervals (NaN) are left out; an upper bound nobody found is inf
    c = pair_conclusion("a", "b", [1.0, np.nan, 1.0], [np.inf, 1.0, 2.0], [0.1, 0.1, 0.1], [0.5, 0.5, 0.5])
    assert (c["n"], c["a_provably_harder"]) == (2, 2)
    c = pair_conclusion("a", "b", [np.nan], [np.nan], [0.1], [0.2])
    assert c["n"] == 0 and "cannot decide" in c["text"]
    with pytest.raises(ValueError, match="not intervals"):
        pair_conclusion("a", "b", [1.0], [0.5], [0.1], [0.2])
