"""Nothing crashes, nothing explodes, nothing is lost (issue 32).

A corpus of crafted model files, user data files and option sets, generated here from small
valid ones (:mod:`tests.crafted`), is run in one fresh process with a memory cap: every case
must end in a ``ValueError``/``FileNotFoundError`` (click's ``Error:`` for the command line),
write nothing, and the process must stay under 1 GB.  Then: locks against a second run, and
runs killed while saving, training and evaluating.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import scd
from eval.baselines import CNNEnsemble, MLPEnsemble, RandomForestEnsemble
from tests.crafted import dataset_cases, model_cases
from tests.paths import ROOT

PEAK_LIMIT = 1 << 30


@pytest.fixture(scope="module")
def templates(tmp_path_factory, digits):
    """One small valid model file per format with ``metadata.json`` (bytes by kind)."""
    folder = tmp_path_factory.mktemp("templates")
    x, y = digits.x_train, digits.y_train
    models = {"scd": scd.SCD01(n_votes=3, n_iters=10, hidden_nodes=4, random_state=0, n_jobs=1),
              "mlp": MLPEnsemble(n_votes=2, hidden_layer_sizes=(3,), max_iter=5, random_state=0, n_jobs=1),
              "rf": RandomForestEnsemble(n_votes=2, max_depth=3, random_state=0, n_jobs=1),
              "cnn": CNNEnsemble(n_votes=2, epochs=1, random_state=0, device="cpu")}
    out = {}
    for kind, model in models.items():
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(x, y)
        model.save(folder / f"{kind}.scd")
        out[kind] = (folder / f"{kind}.scd").read_bytes()
    return out


def _option_sets(folder: Path, model: Path) -> list[tuple[str, list[str]]]:
    """Command lines that must end in ``Error:`` with nothing written in ``folder``."""
    train = ["train", "--quiet", "--iters", "2", "--jobs", "1", "--out", str(folder / "m.scd")]
    evals = ["--model", f"a={model}", "--out", str(folder / "run"), "--quiet", "--backend", "sequential",
             "--n", "2"]
    return [
        ("train --device tpu", [*train, "--device", "tpu"]),
        ("train --device cuda:99", [*train, "--device", "cuda:99"]),
        ("train --device ''", [*train, "--device", ""]),
        ("train --votes 0", [*train, "--votes", "0"]),
        ("train --hidden 0", [*train, "--hidden", "0"]),
        ("train --hidden 100000000", [*train, "--hidden", "100000000"]),
        ("train --votes 1000000000", [*train, "--votes", "1000000000"]),
        ("train --votes 2 --hidden 2000000 --max-memory 1", [*train, "--votes", "2", "--hidden", "2000000",
                                                             "--max-memory", "1"]),
        ("train --max-memory 0", [*train, "--max-memory", "0"]),
        ("train --nrows 0", [*train, "--nrows", "0"]),
        ("train --nrows 2", [*train, "--nrows", "2"]),
        ("train --updated-features 0", [*train, "--updated-features", "0"]),
        ("train --data nonsense", [*train, "--data", "nonsense"]),
        ("train --data npz without --path", [*train, "--data", "npz"]),
        ("train --data npz --path missing", [*train, "--data", "npz", "--path", str(folder / "missing.npz")]),
        ("train --classes 1 1", [*train, "--classes", "1", "1"]),
        ("train --classes 1 99", [*train, "--classes", "1", "99"]),
        ("train --resume without --out", ["train", "--resume", "--quiet"]),
        ("train --resume --model mlp", [*train, "--resume", "--model", "mlp"]),
        ("train --out a directory", ["train", "--quiet", "--out", str(folder)]),
        ("train --backend nonsense", [*train, "--backend", "nonsense"]),
        ("eval size --sizes 0", ["eval", "size", *evals, "--sizes", "0"]),
        ("eval size --sizes 0,1", ["eval", "size", *evals, "--sizes", "0,1"]),
        ("eval size --sizes 999", ["eval", "size", *evals, "--sizes", "999"]),
        ("eval size --sizes x", ["eval", "size", *evals, "--sizes", "x"]),
        ("eval size --sizes -1", ["eval", "size", *evals, "--sizes", "-1"]),
        ("eval transfer --members 99", ["eval", "transfer", *evals, "--members", "99"]),
        ("eval transfer --members 0,99", ["eval", "transfer", *evals, "--members", "0,99"]),
        ("eval transfer --members -1", ["eval", "transfer", *evals, "--members", "-1"]),
        ("eval distortion --n 0", ["eval", "distortion", *evals[:-1], "0"]),
        ("eval distortion --runs 0", ["eval", "distortion", *evals, "--runs", "0"]),
        ("eval distortion missing model", ["eval", "distortion", *evals[2:], "--model", str(folder / "no.scd")]),
        ("eval distortion bad model name", ["eval", "distortion", *evals, "--model", f"a b={model}"]),
        ("eval distortion same name twice", ["eval", "distortion", *evals, "--model", f"a={model}"]),
        ("eval distortion --theta x", ["eval", "distortion", *evals, "--theta", "x"]),
        ("eval distortion --start nearest rays", ["eval", "distortion", *evals, "--method", "rays", "--start",
                                                 "nearest"]),
        ("eval distortion --path missing", ["eval", "distortion", *evals, "--data", "npz", "--path",
                                                  str(folder / "missing.npz")]),
        ("eval accuracy --out a file", ["eval", "accuracy", "--model", f"a={model}", "--out", str(model)]),
        ("predict --member 99", ["predict", str(model), "--member", "99"]),
        ("predict missing model", ["predict", str(folder / "no.scd")]),
        ("info missing model", ["info", str(folder / "no.scd")]),
    ]


def _run_cases(cases: list[dict], folder: Path) -> dict:
    (folder / "cases.json").write_text(json.dumps(cases))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-m", "tests.crafted", str(folder / "cases.json"), str(folder / "result.json")],
                   check=True, cwd=ROOT, env=env, timeout=300)
    return json.loads((folder / "result.json").read_text())


def test_crafted_files_and_option_sets_fail_cleanly_write_nothing_and_stay_small(tmp_path, templates):
    cases = []
    for i, (name, data) in enumerate(model_cases(templates)):
        case_dir = tmp_path / f"m{i}"
        case_dir.mkdir()
        (case_dir / "model.scd").write_bytes(data)
        assert len(data) < 10 << 20, name
        for call in ("load_model", "model_info"):
            cases.append({"name": f"{name} [{call}]", "call": call, "path": str(case_dir / "model.scd"),
                          "cwd": str(case_dir), "must_fail": call == "load_model"})
    for i, (name, suffix, data) in enumerate(dataset_cases()):
        case_dir = tmp_path / f"d{i}"
        case_dir.mkdir()
        (case_dir / f"data{suffix}").write_bytes(data)
        cases.append({"name": name, "call": "dataset", "kind": suffix[1:], "path": str(case_dir / f"data{suffix}"),
                      "cwd": str(case_dir), "must_fail": True})
    work = tmp_path / "cli"
    work.mkdir()
    (work / "m.scd.ckpt").write_bytes(b"the votes of an earlier run")  # kept by every failed train
    model = tmp_path / "saved.scd"
    model.write_bytes(templates["scd"])
    for name, args in _option_sets(work, model):
        cases.append({"name": name, "call": "cli", "args": args, "cwd": str(work), "must_fail": True})
    files = {n: c["name"] for n, c in enumerate(cases)}
    assert len({c["name"].split(" [")[0] for c in cases}) >= 150

    report = _run_cases(cases, tmp_path)

    results = report["results"]
    assert [r["name"] for r in results] == list(files.values())
    unclean = [(r["name"], r["error"]) for r in results if r["error"] and not r["error"]["clean"]]
    assert not unclean, "\n".join(f"{name}: {error}" for name, error in unclean)
    loaded = [r["name"] for r, c in zip(results, cases) if c["must_fail"] and r["error"] is None]
    assert not loaded, "\n".join(loaded)
    changed = [r["name"] for r in results if not r["unchanged"]]
    assert not changed, "\n".join(changed)
    assert (work / "m.scd.ckpt").read_bytes() == b"the votes of an earlier run"
    assert report["peak_bytes"] < PEAK_LIMIT, report["peak_bytes"]
    by_name = {r["name"]: r["error"]["message"] for r in results if r["error"]}
    assert "model.scd" in by_name["scd: no seed [load_model]"] and "'seed'" in by_name["scd: no seed [load_model]"]
    assert "more than" in by_name["scd: entry declares 4 GB [load_model]"]
