"""Multi-class from the command line: ``scd train --classes all`` makes a 10-class one-vs-rest SCD
model of digits that info, predict and attack (HopSkipJump, and PGD and EAD through the smooth
relaxation, the design's example) read back; certify says what it supports."""

import json

import numpy as np
import pytest
from click.testing import CliRunner
from sklearn.datasets import load_digits

from cli import _join_classes, main

SMALL = ["--votes", "2", "--iters", "5", "--hidden", "4", "--jobs", "1", "--quiet"]
ALL = ["--classes", "all"]


@pytest.fixture(scope="module")
def ten(tmp_path_factory):
    """The default ``scd train`` on all ten digits (a one-vs-rest SCD01 model), small."""
    path = tmp_path_factory.mktemp("multiclass") / "ten.scd"
    result = CliRunner().invoke(main, ["train", *ALL, *SMALL, "--out", str(path)])
    assert result.exit_code == 0, result.output
    assert "one-vs-rest SCD01: 10 classes x 2 members" in result.output
    return path


def test_classes_take_any_number_of_ids_or_all():
    assert _join_classes(["train", "--classes", "0", "1", "2", "--votes", "3"]) == \
        ["train", "--classes", "0,1,2", "--votes", "3"]
    assert _join_classes(["attack", "--classes", "1", "8", "m.scd"]) == ["attack", "--classes", "1,8", "m.scd"]
    assert _join_classes(["predict", "m.scd", "--classes", "all"]) == ["predict", "m.scd", "--classes", "all"]
    runner = CliRunner()
    for bad in (["--classes", "3"], ["--classes", "3", "3"], ["--classes", "all", "3"]):
        result = runner.invoke(main, ["train", *bad, *SMALL])
        assert result.exit_code == 2 and "two or more distinct integers" in result.output


def test_info_and_predict_read_the_model(ten, tmp_path):
    runner = CliRunner()
    info = json.loads(runner.invoke(main, ["info", str(ten)]).output)
    assert info["kind"] == "one-vs-rest" and info["classes"] == list(range(10))
    assert info["nested"]["class_9.scd"]["estimator"] == "SCDClassifier"
    csv = tmp_path / "p.csv"
    result = runner.invoke(main, ["predict", str(ten), *ALL, "--out", str(csv)])
    assert result.exit_code == 0, result.output
    assert "samples/s warm" in result.output
    rows = np.loadtxt(csv, delimiter=",", skiprows=1)
    assert csv.read_text().startswith("index,label,prediction,proba_0,proba_1,")
    assert rows.shape[1] == 13 and np.allclose(rows[:, 3:].sum(axis=1), 1)
    assert np.array_equal(rows[:, 2], np.argmax(rows[:, 3:], axis=1))  # normalising keeps the argmax
    assert np.bincount(rows[:, 1].astype(int)).tolist() == np.bincount(_test_labels()).tolist()
    result = runner.invoke(main, ["predict", str(ten)])
    assert result.exit_code == 1 and "predicts 10 classes" in result.output and "--classes" in result.output


def _test_labels():
    """The test labels of the package's digits split, from scikit-learn's own split."""
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    return train_test_split(bunch.target, test_size=0.25, stratify=bunch.target, random_state=0)[1]


@pytest.mark.parametrize("method, extra, source", [
    ("hsj", ["--iters", "1", "--init-size", "20"], "none (query-based attack)"),
    ("pgd", ["--iters", "10", "--eps", "0.3"], "smooth relaxation (default for sign networks)"),
    ("ead", ["--iters", "3", "--max-queries", "40"], "smooth relaxation (default for sign networks)")])
def test_attacks_on_the_ten_class_model(ten, tmp_path, method, extra, source):
    """HopSkipJump on the labels; PGD and EAD (the design's example, ``scd attack --method ead
    MODEL``) through the smooth relaxation, by default; successes re-checked on the real model."""
    out = tmp_path / "r.json"
    result = CliRunner().invoke(main, ["attack", str(ten), *ALL, "--method", method, *extra, "--n-samples", "2",
                                       "--quiet", "--out", str(out)])
    assert result.exit_code == 0, result.output
    record = json.loads(out.read_text())
    assert record["gradient_source"]["source"] == source and len(record["samples"]) == 2
    assert record["dataset"]["classes"] == list(range(10))
    if method != "ead":  # EAD's few iterations need not succeed
        assert all(s["success"] for s in record["samples"])


def test_certify_names_what_it_supports(ten, tmp_path):
    result = CliRunner().invoke(main, ["certify", str(ten), *ALL, "--out", str(tmp_path / "c.json"), "--quiet"])
    assert result.exit_code == 1 and "SCD ensembles" in result.output and "one-vs-rest" in result.output
    assert not (tmp_path / "c.json").exists()


def test_eval_reads_the_model(ten, tmp_path):
    """``scd eval accuracy`` and ``distortion`` take the one-vs-rest model and ``--classes all``."""
    from eval.datasets import load_dataset
    from scd.persist import load_model

    runner = CliRunner()
    common = [*ALL, "--backend", "sequential", "--quiet", "--model", f"ten={ten}"]
    result = runner.invoke(main, ["eval", "accuracy", *common, "--out", str(tmp_path / "a")])
    assert result.exit_code == 0, result.output
    scores = json.loads((tmp_path / "a" / "results.json").read_text())["models"]["ten"]
    ds = load_dataset("digits", classes="all")
    assert scores["test_accuracy"] == load_model(ten).score(ds.x_test, ds.y_test) and scores["members"] == 2
    result = runner.invoke(main, ["eval", "distortion", *common, "--n", "1", "--iters", "1", "--init-size", "20",
                                  "--out", str(tmp_path / "d")])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "d" / "results.json").read_text())["models"]["ten"]["n"] == 1
