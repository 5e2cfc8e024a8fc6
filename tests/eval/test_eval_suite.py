"""The evaluation suite (``scd eval``): records, resumption, backends and agreement with the
in-process measurements."""

import json
import os

import numpy as np
import pytest
from click.testing import CliRunner

import scd
from attacks import HopSkipJump
from cli import main
from eval.baselines import RandomForestEnsemble
from eval.datasets import load_dataset
from eval.ensemble_size import distortion_vs_size
from eval.runstore import RunStore
from eval.report import _paper
from eval.suite import evaluate, finish
from eval.transfer import within_ensemble_transfer

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
DATA = {"name": "digits", "classes": None, "data_dir": None, "path": None}
ATTACK = {"method": "hsj", "norm": None, "iters": 3, "init_size": None, "theta": None, "max_queries": None}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    ds = load_dataset("digits")
    paths = {"scd": str(folder / "scd.scd"), "rf": str(folder / "rf.model")}
    scd.SCD01(n_votes=3, n_iters=60, random_state=0, n_jobs=1).fit(ds.x_train, ds.y_train).save(paths["scd"])
    RandomForestEnsemble(n_votes=6, random_state=0).fit(ds.x_train, ds.y_train).save(paths["rf"])
    return paths


def _options(**extra):
    return {"attack": ATTACK, "n": 4, "runs": 2, "start": "uniform", "chunk": 2, "batch_size": 1024, "seed": 0, **extra}


def _stable(results):
    """A run's results without what legitimately differs between runs (times, dates)."""
    drop = {"seconds", "date", "predict_rows_per_second"}

    def clean(value):
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items() if k not in drop}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value

    out = clean(results)
    out["config"].pop("models")  # absolute paths of the same files
    return out


def _records(run_dir):
    recs = RunStore(run_dir).records
    return {k: {f: v for f, v in r.items() if f != "seconds"} for k, r in sorted(recs.items())}


def test_distortion_run_writes_records_results_report_and_plot(models, tmp_path):
    results = evaluate("distortion", models, DATA, tmp_path, options=_options(), backend="sequential", quiet=True)
    assert set(results["models"]) == {"scd", "rf"}
    for name, m in results["models"].items():
        assert m["n"] == 4 and m["runs_done"] == 2
        finite = [v for v in m["per_sample"] if v is not None]
        assert m["n_success"] == len(finite)
        assert m["median"] == pytest.approx(np.median(finite))
    records = RunStore(tmp_path).records
    assert len(records) == 2 * 2 * 2  # models x runs x chunks of 2 of the 4 points
    # the per-sample minimum over runs is the minimum of the recorded runs
    scd_l2 = {}
    for rec in records.values():
        if rec["model"] == "scd":
            for sid, ok, d in zip(rec["sample_ids"], rec["success"], rec["l2"]):
                if ok:
                    scd_l2[sid] = min(scd_l2.get(sid, np.inf), d)
    expected = [scd_l2.get(p) for p in results["config"]["points"]]
    assert results["models"]["scd"]["per_sample"] == pytest.approx(expected)
    assert results["paired_tests"][0]["a"] == "scd" and results["paired_tests"][0]["b"] == "rf"
    matrix = results["transfer_matrix"]["fooled_fraction"]
    assert matrix["rf"]["rf"] == 1.0  # confirmed successes fool their source (a forest: no rounding at stake)
    assert all(0.0 <= v <= 1.0 for row in matrix.values() for v in row.values())
    for name in ("results.json", "report.md", "distortion.png", "budget.png", "config.json", "records.jsonl"):
        assert (tmp_path / name).exists()
    # the budget curve: each (image, run) attack's best distance within 1000 queries, read off its records
    within = [d for rec in records.values() if rec["model"] == "scd" for d in rec["distance_at"][1]]
    assert results["models"]["scd"]["budget_curve"]["success_rate"][1] == np.mean([d is not None for d in within])
    assert "| scd |" in (tmp_path / "report.md").read_text()


def test_points_are_correct_for_every_model(models, tmp_path):
    results = evaluate("distortion", models, DATA, tmp_path, options=_options(runs=1), backend="sequential",
                       quiet=True)
    ds = load_dataset("digits")
    points = results["config"]["points"]
    for path in models.values():
        from eval.baselines import load_model

        assert (load_model(path).predict(ds.x_test[points]) == ds.y_test[points]).all()


class _Stop(Exception):
    pass


def test_interrupted_run_resumes_to_the_same_results(models, tmp_path):
    whole = evaluate("distortion", models, DATA, tmp_path / "whole", options=_options(), backend="sequential",
                     quiet=True)
    seen = []

    def stop_after_three(record):
        seen.append(record["key"])
        if len(seen) == 3:
            raise _Stop

    with pytest.raises(_Stop):
        evaluate("distortion", models, DATA, tmp_path / "cut", options=_options(), backend="sequential", quiet=True,
                 on_record=stop_after_three)
    assert len(RunStore(tmp_path / "cut").records) == 3
    assert not (tmp_path / "cut" / "results.json").exists()
    # a kill in the middle of writing a record leaves a torn last line: it is dropped
    with open(tmp_path / "cut" / "records.jsonl", "ab") as fh:
        fh.write(b'{"key": "scd.r1.c1", "kind": "att')
    assert len(RunStore(tmp_path / "cut").records) == 3
    redone = []
    resumed = evaluate("distortion", models, DATA, tmp_path / "cut", options=_options(), backend="sequential",
                       quiet=True, on_record=lambda r: redone.append(r["key"]))
    assert len(redone) == 8 - 3 and not set(redone) & set(seen)
    assert _stable(resumed) == _stable(whole)
    assert _records(tmp_path / "cut") == _records(tmp_path / "whole")


def test_report_of_an_unfinished_run_counts_pending_points_apart(models, tmp_path):
    """Points whose attacks have not run yet are neither failures nor in the success rate."""
    def stop_after_one(record):
        raise _Stop

    with pytest.raises(_Stop):
        evaluate("distortion", models, DATA, tmp_path, options=_options(runs=1), backend="sequential", quiet=True,
                 on_record=stop_after_one)
    results = finish(RunStore(tmp_path))
    (done,) = RunStore(tmp_path).records.values()
    m = results["models"][done["model"]]
    assert m["n"] == 2 and m["pending"] == 2 and m["success_rate"] == m["n_success"] / 2
    other = results["models"]["rf" if done["model"] == "scd" else "scd"]
    assert other["n"] == 0 and other["pending"] == 4 and other["success_rate"] is None
    assert "(2 not yet run)" in (tmp_path / "report.md").read_text()


def test_report_leaves_out_the_transfer_matrix_when_a_model_file_changed(models, tmp_path):
    copies = {name: str(tmp_path / os.path.basename(p)) for name, p in models.items()}
    for name, p in models.items():
        with open(p, "rb") as src, open(copies[name], "wb") as dst:
            dst.write(src.read())
    results = evaluate("distortion", copies, DATA, tmp_path / "run", options=_options(runs=1), backend="sequential",
                       quiet=True)
    assert results["transfer_matrix"] is not None
    ds = load_dataset("digits")
    RandomForestEnsemble(n_votes=6, random_state=7).fit(ds.x_train, ds.y_train).save(copies["rf"])
    assert finish(RunStore(tmp_path / "run"))["transfer_matrix"] is None


def test_paper_distortions_only_next_to_the_papers_norm():
    results = {"config": {"data": {"name": "cifar10", "classes": [0, 1]}, "attack": {"method": "hsj"}},
               "distance": "l2"}
    assert _paper(results, "scd01", "hsj_l2") == "3.2"
    assert _paper({**results, "distance": "linf"}, "scd01", "hsj_l2") == ""


def test_resume_with_other_settings_is_refused(models, tmp_path):
    evaluate("distortion", models, DATA, tmp_path, options=_options(runs=1), backend="sequential", quiet=True)
    with pytest.raises(ValueError, match="other settings.*runs"):
        evaluate("distortion", models, DATA, tmp_path, options=_options(runs=3), backend="sequential", quiet=True)


def test_last_record_without_its_newline_is_kept_and_ended(models, tmp_path):
    evaluate("distortion", models, DATA, tmp_path, options=_options(runs=1), backend="sequential", quiet=True)
    path = tmp_path / "records.jsonl"
    whole = path.read_bytes()
    path.write_bytes(whole.rstrip(b"\n").rsplit(b"\n", 1)[0])  # drop the last record, and the newline before it
    assert len(RunStore(tmp_path).records) == 3
    evaluate("distortion", models, DATA, tmp_path, options=_options(runs=1), backend="sequential", quiet=True)
    assert len(RunStore(tmp_path).records) == 4 and path.read_bytes().count(b"\n") == 4


def test_corrupt_record_in_the_middle_is_an_error(models, tmp_path):
    evaluate("distortion", models, DATA, tmp_path, options=_options(runs=1), backend="sequential", quiet=True)
    lines = (tmp_path / "records.jsonl").read_bytes().split(b"\n")
    lines[0] = lines[0][:10]
    (tmp_path / "records.jsonl").write_bytes(b"\n".join(lines))
    with pytest.raises(ValueError, match="line 1 is corrupt"):
        RunStore(tmp_path)


def test_size_run_matches_the_in_process_measurement(models, tmp_path):
    results = evaluate("size", {"rf": models["rf"]}, DATA, tmp_path, options=_options(sizes=[1, 3, 6], runs=2),
                       backend="loky", n_jobs=2, quiet=True)
    ds = load_dataset("digits")
    from eval.baselines import load_model

    points = np.array(results["config"]["points"])
    direct = distortion_vs_size(load_model(models["rf"]), ds.x_test[points], ds.y_test[points],
                                HopSkipJump(max_iter=3), [1, 3, 6], runs=2, sample_ids=points)
    for row, ref in zip(results["models"]["rf"]["sizes"], direct):
        assert row["k"] == ref["k"]
        assert row["per_sample"] == pytest.approx(ref["distance"])
        assert row["misclassified"] == ref["misclassified"]
        assert row["n"] == len(points) - row["misclassified"]  # success over the images attacked


def test_success_rate_is_over_the_images_attacked():
    """A point the model misclassifies is left out, one not attacked yet is pending; neither
    is a failure."""
    from eval.suite import _distance_summary, _per_sample_min

    record = {"key": "m.r0.c0", "seconds": 1.0, "sample_ids": [10, 11, 12], "already_adversarial": [True, False, False],
              "queries": [0, 5, 7], "success": [True, True, False], "l2": [0.0, 0.5, None]}
    best, info = _per_sample_min([record], [10, 11, 12, 13], "l2")
    summary = _distance_summary(best, info, seed=0)
    assert (summary["n"], summary["n_success"], summary["success_rate"]) == (2, 1, 0.5)
    assert (summary["misclassified"], summary["pending"], summary["median"]) == (1, 1, 0.5)


def test_transfer_run_matches_the_in_process_measurement(models, tmp_path):
    options = _options(runs=1, members=None)
    results = evaluate("transfer", {"scd": models["scd"]}, DATA, tmp_path, options=options, backend="sequential",
                       quiet=True)
    ds = load_dataset("digits")
    points = np.array(results["config"]["points"])
    direct = within_ensemble_transfer(scd.load(models["scd"]), ds.x_test[points], ds.y_test[points],
                                      HopSkipJump(max_iter=3), sample_ids=points)
    got = results["models"]["scd"]
    assert got["mean_probability"] == pytest.approx(direct.mean_probability, nan_ok=True)
    expected = [None if not np.isfinite(p) else p for p in direct.probability]
    assert got["probability"] == pytest.approx(expected)
    assert got["n_members"] == 3


def test_dask_and_ray_give_the_loky_results(models, tmp_path):
    pytest.importorskip("distributed")
    pytest.importorskip("ray")
    options = _options()
    local = evaluate("distortion", models, DATA, tmp_path / "loky", options=options, backend="loky", n_jobs=2,
                     quiet=True)
    on_dask = evaluate("distortion", models, DATA, tmp_path / "dask", options=options, backend="dask", n_jobs=2,
                       quiet=True)
    on_ray = evaluate("distortion", models, DATA, tmp_path / "ray", options=options, backend="ray", n_jobs=2,
                      quiet=True)
    assert _stable(on_dask) == _stable(local)
    assert _stable(on_ray) == _stable(local)
    assert _records(tmp_path / "dask") == _records(tmp_path / "loky") == _records(tmp_path / "ray")


def test_cli_commands_end_to_end(models, tmp_path):
    runner = CliRunner()
    model_args = ["--model", f"scd={models['scd']}", "--model", f"rf={models['rf']}"]
    common = ["--quiet", "--backend", "sequential"]

    def ok(*args):
        result = runner.invoke(main, ["eval", *args], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    out = ok("accuracy", *model_args, "--out", str(tmp_path / "acc"), *common)
    acc = json.loads((tmp_path / "acc" / "results.json").read_text())
    ds = load_dataset("digits")
    assert acc["models"]["scd"]["test_accuracy"] == pytest.approx(scd.load(models["scd"]).score(ds.x_test, ds.y_test))
    assert "| rf | 6 |" in out
    ok("distortion", *model_args, "--n", "3", "--iters", "2", "--out", str(tmp_path / "d"), *common)
    point = json.loads((tmp_path / "d" / "results.json").read_text())["config"]["points"][0]
    ok("timeseries", str(tmp_path / "d"), "--sample", str(point))
    assert (tmp_path / "d" / f"examples_{point}.png").exists()
    (tmp_path / "d" / "report.md").unlink()
    (tmp_path / "d" / f"examples_{point}.png").write_bytes(b"stale")
    ok("report", str(tmp_path / "d"))
    assert (tmp_path / "d" / "report.md").exists()
    assert (tmp_path / "d" / f"examples_{point}.png").read_bytes()[:4] == b"\x89PNG"  # drawn again
    points = json.loads((tmp_path / "d" / "results.json").read_text())["config"]["points"][:2]
    ok("size", *model_args, "--indices", ",".join(map(str, points)), "--iters", "2", "--sizes", "1,3",
       "--out", str(tmp_path / "s"), *common)
    size = json.loads((tmp_path / "s" / "results.json").read_text())["config"]
    assert size["points"] == points and size["n"] == 2  # the distortion run's images, as given
    ok("transfer", "--model", f"rf={models['rf']}", "--n", "2", "--iters", "2", "--members", "0,2",
       "--out", str(tmp_path / "t"), *common)
    t = json.loads((tmp_path / "t" / "results.json").read_text())
    assert t["models"]["rf"]["members_attacked"] == 2
    ok("substitute", "--model", f"scd={models['scd']}", "--n", "20", "--seeds", "1", "--rounds", "1", "--epochs",
       "2", "--seed-size", "10", "--eps", "0,0.1", "--out", str(tmp_path / "sub"), *common)
    sub = json.loads((tmp_path / "sub" / "results.json").read_text())
    assert sub["models"]["scd"]["eps"] == [0.0, 0.1]
    assert (tmp_path / "sub" / "substitute.png").exists()
    ok("width", "--hidden", "2,4", "--votes", "2", "--train-iters", "20", "--train-jobs", "1", "--n", "2", "--iters",
       "2", "--out", str(tmp_path / "w"), *common)
    w = json.loads((tmp_path / "w" / "results.json").read_text())
    assert set(w["models"]) == {"h2", "h4"}
    assert scd.load(str(tmp_path / "w" / "models" / "h4.scd")).hidden_nodes == 4


def test_cli_bad_input_is_a_clear_error(models, tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["eval", "distortion", "--model", "x.y=" + models["rf"], "--out", str(tmp_path)])
    assert result.exit_code != 0 and "letters, digits" in result.output
    result = runner.invoke(main, ["eval", "distortion", "--model", str(tmp_path / "missing.model"),
                                  "--out", str(tmp_path)])
    assert result.exit_code != 0 and "not found" in result.output
    result = runner.invoke(main, ["eval", "size", "--model", models["rf"], "--sizes", "1,x", "--out", str(tmp_path)])
    assert result.exit_code != 0 and "--sizes" in result.output
    result = runner.invoke(main, ["eval", "distortion", "--model", models["rf"], "--n", "5000",
                                  "--out", str(tmp_path / "n")])
    assert result.exit_code != 0 and "classified correctly by every model" in result.output
    result = runner.invoke(main, ["eval", "distortion", "--model", models["rf"], "--indices", "0,99999",
                                  "--out", str(tmp_path / "i")])
    assert result.exit_code != 0 and "indices must be in" in result.output
    assert not (tmp_path / "i").exists()
    result = runner.invoke(main, ["eval", "report", str(tmp_path)])
    assert result.exit_code != 0 and "no config.json" in result.output


def test_training_vote_groups_on_dask_equals_local_training(tmp_path):
    pytest.importorskip("distributed")
    ds = load_dataset("digits")
    local = scd.SCD01(n_votes=4, n_iters=30, group_size=1, random_state=3, n_jobs=1).fit(ds.x_train, ds.y_train)
    out = tmp_path / "dask.scd"
    result = CliRunner().invoke(main, ["train", "--votes", "4", "--iters", "30", "--seed", "3", "--jobs", "2",
                                       "--backend", "dask", "--quiet", "--out", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    on_dask = scd.load(str(out))
    np.testing.assert_array_equal(on_dask.W1_, local.W1_)
    np.testing.assert_array_equal(on_dask.predict(ds.x_test), local.predict(ds.x_test))


def test_examples_plot_draws_curves_for_one_dimensional_inputs(tmp_path):
    pytest.importorskip("matplotlib")
    from eval.report import plot_examples

    t = np.linspace(0, 1, 187, dtype=np.float32)
    original = 0.5 + 0.4 * np.sin(12 * t)
    adversarial = {"scd01": original + 0.05 * np.sign(np.sin(90 * t)), "rf": original + 0.02}
    path = plot_examples(original, adversarial, tmp_path / "ecg.png", input_shape=(187,), title="ECG")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.image

    height, width = matplotlib.image.imread(path).shape[:2]
    assert width > 1.6 * height  # one wide panel of curves, not a 2-row grid of images


def test_attack_spec_keeps_the_config_format_of_existing_runs(models, tmp_path):
    """The ``attack`` entry of ``config.json`` is the spec's dict form, as it was written before
    the spec existed, so an existing run directory resumes (and one with other settings is refused)."""
    from attacks import AttackSpec

    spec = AttackSpec.from_dict(ATTACK)
    assert spec.to_dict() == ATTACK
    first = evaluate("distortion", models, DATA, tmp_path, options=_options(runs=1), backend="sequential",
                     quiet=True)
    assert json.loads((tmp_path / "config.json").read_text())["attack"] == ATTACK
    again = evaluate("distortion", models, DATA, tmp_path, options=_options(runs=1, attack=spec),
                     backend="sequential", quiet=True)
    assert _stable(again) == _stable(first)
    with pytest.raises(ValueError, match="other settings.*attack"):
        evaluate("distortion", models, DATA, tmp_path, options=_options(runs=1, attack={**ATTACK, "iters": 4}),
                 backend="sequential", quiet=True)
