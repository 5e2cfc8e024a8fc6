"""Work units of the evaluation suite: plain dicts in, ``(record, arrays)`` out.

A unit names a saved model by path (workers load it once per process), carries the rows it
attacks and the attack's :class:`~attacks.spec.AttackSpec` (with its attack, built once), and
is independent of every other unit, so the suite can send units to any joblib backend (a
local pool, a dask cluster, ray) and persist each result as it arrives.  Every attack seeds
each sample by its dataset index, so a sample's result does not depend on which unit, worker
or chunk it ran in: a run gives the same records on any backend and after any number of
restarts.

The runs of one attack on one chunk of rows (units that differ only in their seed) run
together when several are pending (:func:`run_units`): every model call carries the rows of
all of them (:mod:`attacks.lockstep`), while each run keeps its own oracle, so its record is
the one it gets alone.

Kinds: ``accuracy`` (clean accuracy and timing of one model), ``attack`` (one model, or its
member ``member``, or its first ``subset`` members, on a chunk of rows with one run's seed),
``transfer`` (attack member ``member`` alone and count the other members each example fools)
and ``substitute`` (the substitute-model curve of one model for one seed).
"""

from __future__ import annotations

import functools
import os
import sys
import time
from typing import Any

import numpy as np

__all__ = ["LOCKSTEP_METHODS", "LOCKSTEP_THREADS", "fingerprint", "json_floats", "keep_worker_caches", "load_cached",
           "load_data", "lockstep_key", "merge_rows", "run_unit", "run_units"]

_DISTANCES = ("l0", "l1", "l2", "linf")


@functools.lru_cache(maxsize=8)
def _load(path: str, mtime_ns: int, size: int) -> Any:
    from eval.baselines import load_with_fingerprint

    return load_with_fingerprint(path)


def _loaded(path: str) -> Any:
    stat = os.stat(path)
    return _load(os.path.abspath(path), stat.st_mtime_ns, stat.st_size)


def load_cached(path: str) -> Any:
    """The model saved at ``path``, loaded once per process (reloaded if the file changes)."""
    return _loaded(path).model


def fingerprint(path: str) -> str:
    """The first 16 hex digits of the SHA-256 of the model file at ``path``, from the same
    single read that loads it (:func:`load_cached`)."""
    return _loaded(path).fingerprint


@functools.lru_cache(maxsize=2)
def _dataset(name: str, classes: tuple[int, ...] | str | None, data_dir: str | None, path: str | None) -> Any:
    from eval.datasets import load_dataset

    return load_dataset(name, classes=classes, data_dir=data_dir, path=path)


def load_data(spec: dict[str, Any]) -> Any:
    """The dataset a suite config names (``name``, ``classes``, ``data_dir``, ``path``), loaded
    once per process."""
    classes = spec.get("classes")
    classes = tuple(classes) if isinstance(classes, list) else classes  # a list of ids, "all" or None
    return _dataset(spec["name"], classes, spec.get("data_dir"), spec.get("path"))


def json_floats(values: Any) -> list:
    """Floats for JSON: None where a value is NaN or infinite (a failed attack)."""
    return [None if not np.isfinite(v) else float(v) for v in np.asarray(values, np.float64)]


def _accuracy(model: Any, unit: dict[str, Any]) -> dict[str, Any]:
    """Clean accuracy, training time (as saved with the model) and prediction throughput."""
    out: dict[str, Any] = {"members": int(getattr(model, "n_votes", 1))}
    ds = load_data(unit["data"])
    for split in ("train", "test"):
        x, y = getattr(ds, f"x_{split}"), getattr(ds, f"y_{split}")
        t0 = time.perf_counter()
        pred = model.predict(x)
        seconds = time.perf_counter() - t0
        out[f"{split}_accuracy"] = float(np.mean(pred == y))
        out[f"n_{split}"] = len(y)
        if split == "test":
            out["predict_rows_per_second"] = len(x) / max(seconds, 1e-9)
    fit_time = getattr(model, "fit_time_", None)
    out["fit_seconds"] = float(fit_time) if fit_time else None
    return out


def _record(unit: dict[str, Any]) -> dict[str, Any]:
    """The fields of a unit's record that its settings give (``key`` first)."""
    record: dict[str, Any] = {"key": unit["key"], "kind": unit["kind"], "model": unit["model"],
                              "sample_ids": [int(i) for i in unit["ids"]]}
    for name in ("run", "member", "subset", "seed"):
        if unit.get(name) is not None:
            record[name] = unit[name]
    return record


def _attacked(model: Any, unit: dict[str, Any]) -> Any:
    """The model an attack unit attacks: the model, its member ``member`` or its first ``subset`` members."""
    if unit.get("member") is not None:
        return model.member(int(unit["member"]))
    if unit.get("subset") is not None:
        return model.members(range(int(unit["subset"])))
    return model


def _attack(attacked: Any, unit: dict[str, Any]) -> Any:
    """The attack of an attack unit on ``attacked`` (the model or a lock-step proxy of it)."""
    spec = unit["attack"]
    return spec.attack(attacked, unit["x"], unit["y"], bounds=(0.0, 1.0), seed=int(unit["seed"]),
                       max_queries=spec.budget, sample_ids=unit["ids"], starting_points=unit.get("starts"),
                       batch_size=unit.get("batch_size"))


def _attack_record(unit: dict[str, Any], result: Any) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    record = _record(unit)
    record["success"] = result.success.tolist()
    for name in _DISTANCES:
        record[name] = json_floats(getattr(result, name))
    record["already_adversarial"] = result.already_adversarial.tolist()
    record["queries"] = result.queries.tolist()
    record["calls"] = result.calls.tolist()
    if any(len(h) for h in result.history):  # query-based: each sample's best distance within each budget
        from eval.attack_run import QUERY_BUDGETS

        record["budget_queries"] = list(QUERY_BUDGETS)
        record["distance_at"] = [json_floats(result.distance_at(q)) for q in QUERY_BUDGETS]
    return record, ({"x_adv": result.x_adv} if unit.get("keep_examples") else {})


LOCKSTEP_METHODS = ("hsj", "boundary", "rays")
"""The attacks whose runs go in lock-step: decision-based, they ask the model for labels only."""


def lockstep_key(unit: dict[str, Any]) -> tuple | None:
    """Units with the same key run together in lock-step (:func:`run_units`): attack units of a
    decision-based attack that differ only in their run (seed); None for a unit that runs alone."""
    if unit["kind"] != "attack" or unit["attack"].method not in LOCKSTEP_METHODS:
        return None
    return (unit["model"], unit.get("member"), unit.get("subset"), tuple(int(i) for i in unit["ids"]))


def merge_rows(model: Any) -> int:
    """Rows per merged model call of a lock-step group.  Measured on a 100-vote, 20-unit SCD01
    on CIFAR-10 (one thread, CPU time per row): a plateau from 512 to 1,024 rows, 20 % lower at
    128 and 15 % lower at 2,048 (``benchmarks/bench_eval_speed.py`` records the curve); its
    middle, 768 rows, is about 1.5 million hidden pre-activations per call.  1,024 rows for
    other models."""
    units = getattr(model, "n_votes", 0) * getattr(model, "hidden_nodes", 0)
    return max(64, (3 << 19) // units) if units else 1024


def _threads_setting() -> int:
    value = os.environ.get("SCD_EVAL_THREADS", "1")
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"SCD_EVAL_THREADS must be a positive integer (torch threads per worker), got {value!r}.")
    return int(value)


LOCKSTEP_THREADS = _threads_setting()
"""torch intra-op threads while a lock-step group runs (:func:`run_units`; environment variable
``SCD_EVAL_THREADS``, default 1): the suite runs one worker process per core by default, and
one thread per worker avoids oversubscription, which on a busy machine costs several times
the time (RayS, 1,000 queries x 5 samples: 1.5 s on one thread, 9.5 s on torch's default).
On an idle machine with a single worker (``--backend sequential``), set it to the core count."""


def keep_worker_caches() -> None:
    """loky replaces a worker whose memory grew by 300 MB after its first task (its leak check,
    ``process_executor._MAX_MEMORY_LEAK_SIZE``).  The model cache of :func:`load_cached` and the
    malloc arenas of the lock-step threads grow that much by design, and every replacement
    reloads the models and torch (seen as new LokyProcess workers during the paper's protocol).
    Raise that limit to 4 GiB in this process; a private knob, so nothing happens if it is gone."""
    executor = sys.modules.get("joblib.externals.loky.process_executor")
    if isinstance(getattr(executor, "_MAX_MEMORY_LEAK_SIZE", None), int):
        executor._MAX_MEMORY_LEAK_SIZE = max(executor._MAX_MEMORY_LEAK_SIZE, 4 << 30)


def run_units(units: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, np.ndarray]]]:
    """Run units of one :func:`lockstep_key` together: the attacks of all their runs share every
    model call (:func:`attacks.lockstep.run_lockstep`), and each unit gets the record it would
    get alone (its ``seconds`` are the group's wall time shared equally).  Other units run alone."""
    keep_worker_caches()
    if len(units) == 1 or lockstep_key(units[0]) is None:
        return [run_unit(u) for u in units]
    from attacks.lockstep import run_lockstep

    if len({lockstep_key(u) for u in units}) != 1:
        raise ValueError("run_units takes units of one lock-step group (same model, member, subset and rows).")
    start = time.perf_counter()
    attacked = _attacked(load_cached(units[0]["model_path"]), units[0])
    jobs = [functools.partial(_attack, unit=u) for u in units]
    # SCD ensembles answer each row independently of its batch (scd._network.hidden_signs), and
    # those are the models with line queries: their rounds need not wait for every run
    invariant = callable(getattr(attacked, "segments", None))
    results = run_lockstep(attacked, jobs, rows_per_call=merge_rows(attacked), threads=LOCKSTEP_THREADS,
                           batch_invariant=invariant)
    share = (time.perf_counter() - start) / len(units)
    out = []
    for unit, result in zip(units, results):
        record, arrays = _attack_record(unit, result)
        record["seconds"] = share
        out.append((record, arrays))
    return out


def run_unit(unit: dict[str, Any]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Run one unit; returns its JSON record (``key`` first) and the arrays to keep with it."""
    start = time.perf_counter()
    kind = unit["kind"]
    model = load_cached(unit["model_path"])
    record = _record(unit)
    arrays: dict[str, np.ndarray] = {}
    if kind == "attack":
        record, arrays = _attack_record(unit, _attack(_attacked(model, unit), unit))
    elif kind == "accuracy":
        record.update(_accuracy(model, unit))
    elif kind == "transfer":
        from eval.transfer import transfer_from_member

        spec = unit["attack"]
        part = transfer_from_member(model, int(unit["member"]), unit["x"], unit["y"], spec.attack,
                                    bounds=(0.0, 1.0), seed=int(unit["seed"]), max_queries=spec.budget,
                                    sample_ids=unit["ids"], batch_size=unit.get("batch_size"))
        record.update(attacked=part["attacked"].tolist(), success=part["success"].tolist(),
                      fooled=json_floats(part["fooled"]), l2=json_floats(part["l2"]), n_members=int(model.n_votes))
    elif kind == "substitute":
        from attacks.substitute import substitute_attack

        s = unit["substitute"]
        result = substitute_attack(model, unit["x_seed"], unit["x"], unit["y"], s["eps"], bounds=(0.0, 1.0),
                                   seed=int(unit["seed"]), rounds=s["rounds"], epochs=s["epochs"])
        record.update({k: v for k, v in result.to_dict().items() if k not in ("settings",)})
    else:
        raise ValueError(f"unknown unit kind {kind!r}.")
    record["seconds"] = time.perf_counter() - start
    return record, arrays
