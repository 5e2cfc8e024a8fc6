"""``scd certify``: the JSON record, the table, resuming, a forest's exact bounds, and refusing what it
cannot bound."""

from __future__ import annotations

import json
import warnings

import numpy as np
from click.testing import CliRunner

import scd
from cli import main
from eval.baselines import MLPEnsemble, RandomForestEnsemble
from eval.datasets import load_dataset


def _model(tmp_path):
    ds = load_dataset("digits")
    path = tmp_path / "m.scd"
    scd.SCD01(n_votes=3, hidden_nodes=4, n_iters=100, random_state=0).fit(ds.x_train, ds.y_train).save(path)
    return path, ds


def test_certify_writes_records_and_resumes(tmp_path):
    path, ds = _model(tmp_path)
    out = tmp_path / "r.json"
    args = ["certify", str(path), "--data", "digits", "--norm", "inf", "--n-samples", "2", "--time-limit", "0.5",
            "--out", str(out), "--save-examples", str(tmp_path / "adv.npz"), "--quiet"]
    first = CliRunner().invoke(main, args)
    assert first.exit_code == 0, first.output
    payload = json.loads(out.read_text())
    assert len(payload["records"]) == 2
    for record in payload["records"]:
        assert {"index", "lower", "upper", "exact", "lower_method", "upper_method"} <= set(record)
        assert record["lower"] <= record["upper"]
    assert "lower" in first.output and "upper" in first.output
    with np.load(tmp_path / "adv.npz") as z:
        model = scd.load(path)
        found = np.isfinite(z["upper"])
        assert (model.predict(z["x_adv"][found]) != ds.y_test[z["index"][found]]).all()
    again = CliRunner().invoke(main, args)  # finished points are not recomputed
    assert again.exit_code == 0, again.output
    assert json.loads(out.read_text())["records"] == payload["records"]
    other = CliRunner().invoke(main, [*args[:5], "2", *args[6:]])  # another norm in the same place
    assert other.exit_code != 0 and "other settings" in other.output


def test_certify_bounds_a_forest(tmp_path):
    ds = load_dataset("digits")
    path = tmp_path / "rf.model"
    model = RandomForestEnsemble(n_votes=3, max_depth=3, random_state=0).fit(ds.x_train, ds.y_train)
    model.save(path)
    out = tmp_path / "r.json"
    result = CliRunner().invoke(main, ["certify", str(path), "--norm", "2", "--n-samples", "2", "--time-limit", "20",
                                       "--out", str(out), "--save-examples", str(tmp_path / "adv.npz"), "--quiet"])
    assert result.exit_code == 0, result.output
    records = json.loads(out.read_text())["records"]
    assert [r["lower_method"] for r in records] == ["milp", "milp"] and all(r["exact"] for r in records)
    with np.load(tmp_path / "adv.npz") as z:
        assert (model.predict(z["x_adv"]) != ds.y_test[z["index"]]).all()


def test_certify_refuses_other_models(tmp_path):
    ds = load_dataset("digits")
    path = tmp_path / "mlp.model"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        MLPEnsemble(n_votes=1, hidden_layer_sizes=(3,), activation="relu", max_iter=5,
                    random_state=0).fit(ds.x_train, ds.y_train).save(path)
    result = CliRunner().invoke(main, ["certify", str(path), "--out", str(tmp_path / "r.json"), "--quiet"])
    assert result.exit_code != 0 and "logistic" in result.output
    assert not (tmp_path / "r.json").exists()
