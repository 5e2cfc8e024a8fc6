"""Evaluation at speed gives the same results: lock-step runs (attacks.lockstep, eval.units.run_units)
and line queries (Oracle.line) change how the model is asked, never what is found or counted."""

from __future__ import annotations

import json

import numpy as np
import pytest

import scd
from attacks import AttackSpec, Boundary, HopSkipJump, Oracle
from attacks.lockstep import run_lockstep
from eval.runstore import RunStore
from eval.suite import evaluate
from eval.units import run_unit, run_units
from scd.lines import Segments

DATA = {"name": "digits", "classes": None, "data_dir": None, "path": None}


@pytest.fixture(scope="module")
def saved(tmp_path_factory, digits):
    path = tmp_path_factory.mktemp("lockstep") / "scd.scd"
    model = scd.SCD01(n_votes=3, hidden_nodes=6, n_iters=20, random_state=0, n_jobs=1)
    model.fit(digits.x_train, digits.y_train).save(path)
    return str(path), scd.load(path)


def _units(path, digits, spec, runs=3, ids=(0, 3, 8)):
    ids = np.asarray(ids)
    return [{"key": f"m.r{r}.c0", "kind": "attack", "model": "m", "model_path": path, "ids": ids,
             "x": digits.x_test[ids], "y": digits.y_test[ids], "attack": spec, "batch_size": 16, "run": r,
             "seed": 7 + r, "keep_examples": True} for r in range(runs)]


def _without_seconds(pairs):
    return [({k: v for k, v in rec.items() if k != "seconds"}, arrays) for rec, arrays in pairs]


@pytest.mark.parametrize("attack", [
    {"method": "hsj", "norm": 2, "iters": 2, "init_size": 50, "theta": None, "max_queries": 500},
    {"method": "boundary", "norm": None, "iters": 20, "init_size": 50, "theta": None, "max_queries": 300},
])
def test_lockstep_units_give_the_records_of_single_units(saved, digits, attack):
    path, _ = saved
    units = _units(path, digits, AttackSpec.from_dict(attack))
    alone = _without_seconds([run_unit(u) for u in units])
    together = _without_seconds(run_units(units))
    for (a, xa), (b, xb) in zip(alone, together):
        assert a == b  # success, every distance, queries and calls, per sample
        np.testing.assert_array_equal(xa["x_adv"], xb["x_adv"])
    assert any(rec["success"] != alone[0][0]["success"] or rec["l2"] != alone[0][0]["l2"] for rec, _ in alone[1:])


def test_line_queries_change_neither_results_nor_counts(saved, digits, monkeypatch):
    _, model = saved
    x, y = digits.x_test[:3], digits.y_test[:3]
    answered = []
    predict = Segments.predict
    monkeypatch.setattr(Segments, "predict", lambda self, a, rows=None: answered.append(len(a)) or
                        predict(self, a, rows))
    for attack in (HopSkipJump(max_iter=2, init_evals=30, init_size=40), Boundary(steps=10, init_size=40)):
        out = {}
        for on in (True, False):
            oracle = Oracle(model, bounds=(0.0, 1.0), budget=600, batch_size=7, line_queries=on)
            out[on] = attack(oracle, x, y, seed=3)
        assert answered  # the searches were answered by line queries
        for field in ("x_adv", "success", "l2", "queries", "calls", "history"):
            a, b = getattr(out[True], field), getattr(out[False], field)
            if field == "history":
                assert all(np.array_equal(p, q) for p, q in zip(a, b))
            else:
                np.testing.assert_array_equal(a, b)
        answered.clear()


def test_an_unfinished_store_of_single_units_resumes_in_lockstep(saved, tmp_path):
    """A run directory written before lock-step (one unit at a time) finishes with the records
    that a lock-step run from scratch writes."""
    path, _ = saved
    options = {"attack": {"method": "hsj", "norm": None, "iters": 3, "init_size": None, "theta": None,
                          "max_queries": None}, "n": 2, "runs": 3, "start": "uniform", "chunk": 1,
               "batch_size": 1024, "seed": 0}
    fresh = evaluate("distortion", {"m": path}, DATA, tmp_path / "fresh", options=options, backend="sequential",
                     quiet=True)
    old = RunStore(tmp_path / "old", json.loads((tmp_path / "fresh" / "config.json").read_text()))
    from eval.suite import _plan
    from eval.units import load_data

    units = _plan(old.config, {"m": scd.load(path)}, load_data(DATA), AttackSpec.from_dict(options["attack"]))
    for unit in units[::2]:  # every other run of each chunk, the old way
        old.add(*run_unit(unit))
    resumed = evaluate("distortion", {"m": path}, DATA, tmp_path / "old", options=options, backend="sequential",
                       quiet=True)
    records = [{k: v for k, v in r.items() if k != "seconds"} for r in RunStore(tmp_path / "old").records.values()]
    want = [{k: v for k, v in r.items() if k != "seconds"} for r in RunStore(tmp_path / "fresh").records.values()]
    assert sorted(records, key=lambda r: r["key"]) == sorted(want, key=lambda r: r["key"])
    assert resumed["models"]["m"]["per_sample"] == fresh["models"]["m"]["per_sample"]


class _Logged:
    """A model that records the size of every batch it answers (labels: the sign of the row sum)."""

    classes_ = np.array([0, 1])
    n_features_in_ = 3

    def __init__(self):
        self.batches = []

    def predict(self, x):
        self.batches.append(len(x))
        return (x.sum(axis=1) > 1.5).astype(int)


def test_run_lockstep_merges_calls_and_returns_each_jobs_rows():
    model = _Logged()
    rng = np.random.default_rng(0)
    xs = [rng.uniform(0, 1, (k, 3)) for k in (2, 3, 4)]

    def job(k):
        return lambda m: [m.predict(xs[k]), m.predict(xs[k][:1])] + ([m.predict(xs[k])] if k == 2 else [])

    out = run_lockstep(model, [job(k) for k in range(3)], rows_per_call=5)
    for k in range(3):
        want = (xs[k].sum(axis=1) > 1.5).astype(int)
        np.testing.assert_array_equal(out[k][0], want)
        np.testing.assert_array_equal(out[k][1], want[:1])
    # round 1: 2 + 3 + 4 rows in calls of at most 5; round 2: 1 + 1 + 1; round 3: job 2 alone
    assert model.batches == [5, 4, 3, 4]


def test_run_lockstep_reraises_the_first_failing_job_and_frees_the_others():
    model = _Logged()

    def fails(m):
        m.predict(np.zeros((1, 3)))
        raise KeyError("job 1")

    def ok(m):
        return [m.predict(np.ones((2, 3))) for _ in range(3)]

    with pytest.raises(KeyError, match="job 1"):
        run_lockstep(model, [ok, fails, ok])
    with pytest.raises(ValueError, match="rows_per_call"):
        run_lockstep(model, [ok], rows_per_call=0)


def test_loky_workers_keep_their_model_cache():
    """A loky worker whose memory grew by 300 MB is replaced (and reloads its models): the
    evaluation raises that limit where it runs, since its caches are that growth by design."""
    from joblib.externals.loky import process_executor

    from eval import units

    before = process_executor._MAX_MEMORY_LEAK_SIZE
    try:
        process_executor._MAX_MEMORY_LEAK_SIZE = int(3e8)
        units.keep_worker_caches()
        assert process_executor._MAX_MEMORY_LEAK_SIZE == 4 << 30
    finally:
        process_executor._MAX_MEMORY_LEAK_SIZE = before
