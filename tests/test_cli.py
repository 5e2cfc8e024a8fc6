"""The ``scd`` command trains, saves, describes and predicts, and answers --help without torch."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from cli import main
from tests.paths import ROOT



def test_help_does_not_import_torch_or_tensorflow():
    code = "import sys, cli; cli.main(['--help'], standalone_mode=False); " \
           "assert 'torch' not in sys.modules and 'tensorflow' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True)


def test_train_info_predict(tmp_path):
    runner = CliRunner()
    out = tmp_path / "m.scd"
    result = runner.invoke(main, ["train", "--loss", "ce", "--votes", "3", "--iters", "30", "--hidden", "4",
                                  "--jobs", "1", "--quiet", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "test accuracy" in result.output and "training time" in result.output
    assert out.exists() and not Path(f"{out}.ckpt").exists()

    info = runner.invoke(main, ["info", str(out)])
    assert info.exit_code == 0, info.output
    meta = json.loads(info.output)
    assert meta["estimator"] == "SCDClassifier" and meta["params"]["loss"] == "ce"
    assert meta["arrays"]["W1"] == [3, 64, 4]

    preds = tmp_path / "p.csv"
    pred = runner.invoke(main, ["predict", str(out), "--member", "1", "--out", str(preds)])
    assert pred.exit_code == 0, pred.output
    assert "test accuracy" in pred.output
    assert preds.read_text().startswith("index,label,prediction,proba_1\n")


def test_bad_options_are_reported(tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["train", "--resume"])
    assert result.exit_code != 0 and "--resume needs --out" in result.output
    result = runner.invoke(main, ["train", "--model", "rf", "--resume", "--out", str(tmp_path / "m.scd")])
    assert result.exit_code != 0 and "--model scd" in result.output
    result = runner.invoke(main, ["train", "--data", "cifar10", "--data-dir", str(tmp_path / "empty"),
                                  "--votes", "1", "--iters", "1"])
    assert result.exit_code == 1 and "Error:" in result.output and "CIFAR" in result.output
    result = runner.invoke(main, ["train", "--votes", "1", "--iters", "1", "--device", "cuda:7", "--quiet"])
    assert result.exit_code == 1 and "Error:" in result.output


def test_bad_input_ends_every_command_with_a_message(tmp_path, forest_file):
    """Missing files, unknown classes, corrupt models and bad members: ``Error: ...``, exit 1, no
    traceback, whichever command meets them."""
    truncated = tmp_path / "cut.scd"
    truncated.write_bytes(forest_file.read_bytes()[:300])
    cases = [
        (["train", "--data", "npz", "--path", str(tmp_path / "nope.npz")], "not found"),
        (["train", "--data", "digits", "--classes", "1", "10"], "not present"),
        (["info", str(truncated)], "cut.scd"),
        (["predict", str(truncated)], "cut.scd"),
        (["predict", str(forest_file), "--member", "99"], "member"),
        (["attack", str(forest_file), "--data", "mnist", "--data-dir", str(tmp_path)], "MNIST not found"),
        (["eval", "distortion", "--model", f"rf={forest_file}", "--theta", "abc", "--out", str(tmp_path / "run")],
         "theta"),
    ]
    for args, message in cases:
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 1, (args, result.output)
        assert "Error:" in result.output and message in result.output, (args, result.output)
        assert isinstance(result.exception, SystemExit), args


@pytest.mark.parametrize("kind, extra", [("mlp", ["--votes", "2"]), ("rf", ["--votes", "5"]),
                                         ("cnn", ["--votes", "1", "--epochs", "2"]),
                                         ("bnn", ["--votes", "1", "--epochs", "2"])])
def test_baselines_train_info_predict(tmp_path, kind, extra):
    if kind == "bnn":
        pytest.importorskip("larq")
    runner = CliRunner()
    out = tmp_path / f"{kind}.scd"
    result = runner.invoke(main, ["train", "--model", kind, *extra, "--jobs", "1", "--quiet", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "test accuracy" in result.output and out.exists()
    meta = json.loads(runner.invoke(main, ["info", str(out)]).output)
    assert meta["kind"] == f"baseline-{kind}"
    pred = runner.invoke(main, ["predict", str(out), "--member", "0"])
    assert pred.exit_code == 0 and "test accuracy" in pred.output, pred.output


@pytest.fixture(scope="module")
def forest_file(tmp_path_factory):
    from eval.baselines import RandomForestEnsemble
    from eval.datasets import load_dataset

    ds = load_dataset("digits")
    path = tmp_path_factory.mktemp("models") / "rf.model"
    RandomForestEnsemble(n_votes=10, random_state=0).fit(ds.x_train, ds.y_train).save(path)
    return path


@pytest.mark.parametrize("method, extra", [("hsj", ["--iters", "3", "--norm", "inf"]),
                                           ("boundary", ["--iters", "50", "--start", "nearest"]),
                                           ("rays", ["--max-queries", "200"])])
def test_attack_writes_table_json_and_examples(tmp_path, forest_file, method, extra):
    import numpy as np

    out, examples = tmp_path / "r.json", tmp_path / "adv.npz"
    result = CliRunner().invoke(main, ["attack", str(forest_file), "--method", method, "--n-samples", "3",
                                       "--init-size", "200", "--out", str(out), "--save-examples", str(examples),
                                       "--quiet", *extra] if method != "rays" else
                                ["attack", str(forest_file), "--method", method, "--n-samples", "3", "--out", str(out),
                                 "--save-examples", str(examples), "--quiet", *extra])
    assert result.exit_code == 0, result.output
    assert "success rate" in result.output and "queries median" in result.output
    record = json.loads(out.read_text())
    assert record["attack"] == method and len(record["samples"]) == 3
    assert record["dataset"]["name"] == "digits" and record["config"]["n_samples"] == 3
    saved = np.load(examples)
    assert saved["x_adv"].shape == saved["x"].shape == (3, 64)
    assert [s["success"] for s in record["samples"]] == saved["success"].tolist()


def test_attack_rejects_bad_requests_before_querying(tmp_path, forest_file):
    runner = CliRunner()
    cases = [(["--method", "boundary", "--norm", "inf"], "L2"), (["--method", "rays", "--iters", "3"], "max-queries"),
             (["--theta", "sometimes"], "theta"), (["--indices", "1,x"], "comma"),
             (["--indices", "100000"], "indices"), (["--target", "7"], "target"),
             (["--method", "rays", "--start", "nearest"], "starting points")]
    for args, message in cases:
        result = runner.invoke(main, ["attack", str(forest_file), "--quiet", *args])
        assert result.exit_code != 0, args
        assert message.lower() in result.output.lower(), (args, result.output)


@pytest.fixture(scope="module")
def scd_file(tmp_path_factory):
    import scd
    from eval.datasets import load_dataset

    ds = load_dataset("digits")
    path = tmp_path_factory.mktemp("models") / "m.scd"
    scd.SCD01(n_votes=3, n_iters=60, random_state=0).fit(ds.x_train, ds.y_train).save(path)
    return path


SUBSTITUTE = ["--surrogate", "substitute", "--seed-size", "40", "--substitute-rounds", "2", "--substitute-epochs", "5"]


@pytest.mark.parametrize("extra, source", [
    (["--method", "pgd", "--surrogate", "smooth", "--iters", "5", "--eps", "0.3"], "smooth"),
    (["--method", "fgsm", "--eps", "0.3", *SUBSTITUTE], "substitute"),
    (["--method", "ead", "--surrogate", "smooth", "--iters", "20"], "smooth"),
    (["--method", "ead", "--iters", "20", *SUBSTITUTE], "substitute")])
def test_gradient_attack_on_an_ensemble_names_its_gradient_source(tmp_path, scd_file, extra, source):
    out = tmp_path / "r.json"
    result = CliRunner().invoke(main, ["attack", str(scd_file), "--n-samples", "4", "--quiet", "--out", str(out),
                                       *extra])
    assert result.exit_code == 0, result.output
    assert "gradient source" in result.output and source in result.output
    assert "success rate (on the real model)" in result.output
    record = json.loads(out.read_text())
    assert record["gradient_source"]["source"] == source
    if source == "substitute":
        assert record["gradient_source"]["training_queries"] >= 40
        assert not set(record["gradient_source"]["seed_indices"]) & set(record["dataset"]["indices"])


def test_ead_runs_on_the_default_output_of_train_through_the_smooth_relaxation(tmp_path, forest_file):
    """The design's example: ``scd attack --method ead MODEL`` on what ``scd train`` makes by default
    (an SCD01 ensemble) takes its gradients from the smooth relaxation and says so; a forest still
    needs an explicit ``--surrogate substitute``."""
    from eval.attack_run import SMOOTH_DEFAULT

    runner = CliRunner()
    model, out = tmp_path / "m.scd", tmp_path / "r.json"
    result = runner.invoke(main, ["train", "--votes", "3", "--iters", "30", "--jobs", "1", "--quiet", "--out",
                                  str(model)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(main, ["attack", str(model), "--method", "ead", "--iters", "20", "--n-samples", "3",
                                  "--quiet", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "| gradient source" in result.output and SMOOTH_DEFAULT in result.output
    record = json.loads(out.read_text())
    assert record["gradient_source"]["source"] == SMOOTH_DEFAULT and len(record["samples"]) == 3
    result = runner.invoke(main, ["attack", str(forest_file), "--method", "pgd", "--quiet"])
    assert result.exit_code == 1 and "--surrogate substitute" in result.output


@pytest.mark.parametrize("method, extra", [("pgd", ["--iters", "5", "--eps", "0.1,0.03,0.3,0.01"]),
                                           ("hsj", ["--iters", "5", "--norm", "inf", "--eps", "0.3,0.03,0.1,0.01"])])
def test_robust_accuracy_curve_over_four_eps_in_one_run(tmp_path, scd_file, method, extra):
    """pgd: one run per ε; hsj: read off its distances (recomputed here from the per-sample records)."""
    out = tmp_path / "r.json"
    result = CliRunner().invoke(main, ["attack", str(scd_file), "--method", method, "--n-samples", "6", "--quiet",
                                       "--out", str(out), *extra])
    assert result.exit_code == 0, result.output
    assert "robust accuracy at Linf eps=0.01" in result.output
    assert (tmp_path / "r_robust_accuracy.png").exists()  # and r_budget.png where the record has a budget curve
    assert (tmp_path / "r_budget.png").exists() == ("budget_curve" in json.loads(out.read_text()))
    curve = json.loads(out.read_text())["robust_accuracy"]
    acc = np.array(curve["robust_accuracy"])
    assert curve["eps"] == [0.01, 0.03, 0.1, 0.3] and curve["norm"] == "linf" and len(acc) == 4
    assert np.all(np.diff(acc) <= 0) and np.all((acc >= 0) & (acc <= 1))
    samples = json.loads(out.read_text())["samples"]
    if method == "hsj":
        d = np.array([s["linf"] if s["success"] else np.inf for s in samples])
        np.testing.assert_array_equal(acc, [np.mean(~(d <= e)) for e in curve["eps"]])
        budget = json.loads(out.read_text())["budget_curve"]  # recomputed from the per-sample curves
        best = [[min([dist for q, dist in s["history"] if q <= b], default=np.inf) for s in samples]
                for b in budget["queries"]]
        assert budget["success_rate"] == [np.mean(np.isfinite(row)) for row in best]
        assert [np.inf if m is None else m for m in budget["median_distance"]] == [np.median(r) for r in best]
        assert "within 1000 queries" in result.output
    else:
        assert len(curve["success_rate"]) == 4 and acc[-1] <= 1 - curve["success_rate"][-1] + 1e-12


def test_substitute_curve_and_gradient_errors(tmp_path, scd_file):
    runner = CliRunner()
    out = tmp_path / "c.json"
    result = runner.invoke(main, ["attack", str(scd_file), "--method", "substitute", "--n-samples", "5",
                                  "--eps", "0,0.2", "--seed-size", "30", "--substitute-rounds", "2",
                                  "--substitute-epochs", "5", "--quiet", "--out", str(out)])
    assert result.exit_code == 0, result.output
    record = json.loads(out.read_text())
    assert record["eps"] == [0.0, 0.2] and record["adversarial_accuracy"][0] == 1.0
    cases = [(["--method", "hsj", "--surrogate", "smooth"], "surrogate"),
             (["--method", "fgsm", "--iters", "3"], "one step"), (["--method", "structure", "--eps", "0.1"], "eps"),
             (["--method", "substitute", "--save-examples", str(tmp_path / "x.npz")], "save-examples")]
    for args, message in cases:
        result = runner.invoke(main, ["attack", str(scd_file), "--quiet", *args])
        assert result.exit_code != 0, args
        assert message.lower() in result.output.lower(), (args, result.output)
