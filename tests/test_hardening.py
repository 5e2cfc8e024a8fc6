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
              "cnn": CNNEnsemble(n_votes=2, epochs=1, batch_size=256, random_state=0, device="cpu")}
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
        ("train --model mlp --hidden 100000000", [*train, "--model", "mlp", "--hidden", "100000000"]),
        ("train --model mlp --votes 1000000000", [*train, "--model", "mlp", "--votes", "1000000000"]),
        ("train --model bnn --hidden 100000000", [*train, "--model", "bnn", "--hidden", "100000000"]),
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
        if i % 5 == 0:  # and a sample through the commands that read models
            for command in (["predict", "model.scd"], ["info", "model.scd"],
                            ["eval", "accuracy", "--model", "a=model.scd", "--out", "run", "--quiet"]):
                cases.append({"name": f"{name} [scd {command[0]}]", "call": "cli", "args": command,
                              "cwd": str(case_dir), "must_fail": command[0] != "info"})
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
    print(f"{len(cases)} cases ({len({c['name'].split(' [')[0] for c in cases})} files and option sets), "
          f"peak {report['peak_bytes'] / 2**20:.0f} MiB")
    by_name = {r["name"]: r["error"]["message"] for r in results if r["error"]}
    assert "model.scd" in by_name["scd: no seed [load_model]"] and "'seed'" in by_name["scd: no seed [load_model]"]
    assert "more than" in by_name["scd: entry declares 4 GB [load_model]"]


# ------------------------------------------------------------------------------ locks and kills
def _spawn(code: str, cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", code], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait_for(condition, proc: subprocess.Popen, seconds: float = 120) -> None:
    end = time.monotonic() + seconds
    while not condition():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < end, "the child never got there"
        time.sleep(0.05)


def _kill(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    proc.send_signal(sig)
    proc.communicate(timeout=60)


# scd.files alone (importing the scd package would import torch), with Ctrl-C raising
# KeyboardInterrupt even where the test runs in the background (which ignores SIGINT)
_FILES = "import importlib.util, signal, sys, time; signal.signal(signal.SIGINT, signal.default_int_handler); " \
         "spec = importlib.util.spec_from_file_location('f', 'scd/files.py'); " \
         "f = importlib.util.module_from_spec(spec); spec.loader.exec_module(f)\n"


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_a_killed_save_keeps_the_old_file_and_leaves_nothing_after_the_next_run(tmp_path, sig):
    target = tmp_path / "m.scd"
    target.write_bytes(b"the old model")
    code = _FILES + f"""
with f.atomic_open({str(target)!r}) as fh:
    fh.write(b"x" * (1 << 20))
    fh.flush()
    print("writing", flush=True)
    time.sleep(600)
"""
    proc = _spawn(code, ROOT)
    _wait_for(lambda: any(p.suffix == ".tmp" and p.stat().st_size for p in tmp_path.iterdir()), proc)
    _kill(proc, sig)
    assert target.read_bytes() == b"the old model"
    left = sorted(p.name for p in tmp_path.iterdir())
    # Ctrl-C removes the temporary file at once; kill -9 cannot, and the next writer sweeps it
    assert len(left) == (1 if sig == signal.SIGINT else 2)
    from scd.files import exclusive, sweep_temporary

    with exclusive(target, "model file"):
        sweep_temporary(tmp_path, [target.name])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.scd"]


def test_training_is_locked_and_a_killed_one_resumes_to_the_same_model(tmp_path, digits):
    """A second fit to the same --out fails at once; kill -9 of the first keeps its
    checkpoint, whose resumption gives the uninterrupted model and leaves only the model."""
    from scd.persist import fit_and_save

    out = tmp_path / "m.scd"
    params = {"n_votes": 4, "n_iters": 20, "hidden_nodes": 3, "random_state": 1, "group_size": 1, "n_jobs": 1}
    code = f"""
import time
import scd
from scd import _parallel
from eval.datasets import load_dataset
from scd.persist import fit_and_save
real = _parallel.train_votes
def slow(*args, **kwargs):  # each group after the first takes a while: time to act
    if args[2] != [0]:
        time.sleep(2)
    return real(*args, **kwargs)
_parallel.train_votes = slow
ds = load_dataset("digits")
fit_and_save(scd.SCD01(**{params!r}), ds.x_train, ds.y_train, {str(out)!r})
"""
    proc = _spawn(code, tmp_path)
    ckpt = Path(f"{out}.ckpt")
    _wait_for(ckpt.exists, proc)
    with pytest.raises(ValueError, match="in use by another process"):
        fit_and_save(scd.SCD01(**params), digits.x_train, digits.y_train, out)
    assert proc.poll() is None
    _kill(proc)
    assert ckpt.exists() and not out.exists()
    model = fit_and_save(scd.SCD01(**params), digits.x_train, digits.y_train, out, resume=True)
    assert 0 < model.n_votes_resumed_ < params["n_votes"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.scd"]
    reference = scd.SCD01(**params).fit(digits.x_train, digits.y_train)
    np.testing.assert_array_equal(scd.load(out).W1_, reference.W1_)


def test_evaluation_is_locked_and_a_killed_one_resumes(tmp_path, templates):
    """A second evaluation of one run directory fails at once; after kill -9 of the first, the
    rerun does only the units left and its records equal an uninterrupted run's."""
    from eval.suite import evaluate

    model = tmp_path / "m.scd"
    model.write_bytes(templates["scd"])
    options = {"attack": {"method": "hsj", "iters": 1, "init_size": 10, "max_queries": 100}, "n": 4, "runs": 1,
               "start": "uniform", "chunk": 1, "batch_size": 64, "seed": 0}
    data = {"name": "digits", "classes": None, "data_dir": None, "path": None}
    run = tmp_path / "run"
    code = f"""
import time
from eval.suite import evaluate
import eval.units as units
real = units.run_unit
def slow(unit):
    time.sleep(0.3)
    return real(unit)
units.run_unit = slow
import eval.suite
eval.suite.run_unit = slow
evaluate("distortion", {{"m": {str(model)!r}}}, {data!r}, {str(run)!r}, options={options!r}, backend="sequential",
         quiet=True)
"""
    proc = _spawn(code, tmp_path)
    records = run / "records.jsonl"
    _wait_for(lambda: records.exists() and records.read_bytes().count(b"\n") >= 2, proc)
    with pytest.raises(ValueError, match="in use by another process"):
        evaluate("distortion", {"m": str(model)}, data, run, options=options, backend="sequential", quiet=True)
    _kill(proc)
    done = records.read_bytes().count(b"\n")
    assert 2 <= done < 4
    seen = []
    evaluate("distortion", {"m": str(model)}, data, run, options=options, backend="sequential", quiet=True,
             on_record=seen.append)
    assert len(seen) == 4 - done
    again = tmp_path / "again"
    evaluate("distortion", {"m": str(model)}, data, again, options=options, backend="sequential", quiet=True)
    def keyed(path):
        return sorted((r["key"], r["l2"]) for r in map(json.loads, path.read_text().splitlines()))

    assert keyed(records) == keyed(again / "records.jsonl")
    assert not [p for p in tmp_path.rglob("*") if p.suffix in (".tmp", ".lock")]


def test_loky_workers_end_with_their_killed_parent(tmp_path):
    """kill -9 of a run under ``--backend loky`` ends its busy workers too."""
    code = f"""
import os, time, joblib
from eval.backends import parallel_backend, map_unordered

def task(i):
    open(os.path.join({str(tmp_path)!r}, f"worker{{os.getpid()}}"), "w").close()
    time.sleep(600)

with parallel_backend("loky", n_jobs=2) as jobs:
    list(map_unordered(task, [0, 1], n_jobs=jobs))
"""
    proc = _spawn(code, tmp_path)
    _wait_for(lambda: len(list(tmp_path.glob("worker*"))) == 2, proc)
    workers = [int(p.name[6:]) for p in tmp_path.glob("worker*")]
    _kill(proc)

    def alive(pid):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        with open(f"/proc/{pid}/stat") as fh:  # a zombie is gone, awaiting its reaper
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"

    end = time.monotonic() + 30
    while any(map(alive, workers)) and time.monotonic() < end:
        time.sleep(0.1)
    assert not any(map(alive, workers))


@pytest.mark.parametrize("kind", ["scd", "mlp", "rf", "cnn"])
def test_saving_onto_a_directory_is_a_value_error_that_writes_nothing(tmp_path, templates, kind):
    from eval.baselines import load_model

    source = tmp_path / "model.scd"
    source.write_bytes(templates[kind])
    model = load_model(source)
    folder = tmp_path / "existing"
    folder.mkdir()
    with pytest.raises(ValueError, match="is a directory"):
        model.save(folder)
    assert list(folder.iterdir()) == [] and sorted(p.name for p in tmp_path.iterdir()) == ["existing", "model.scd"]
