"""Work units of the evaluation suite: plain dicts in, ``(record, arrays)`` out.

A unit names a saved model by path (workers load it once per process), carries the rows it
attacks and the attack's :class:`~attacks.spec.AttackSpec` (with its attack, built once), and
is independent of every other unit, so the suite can send units to any joblib backend (a
local pool, a dask cluster, ray) and persist each result as it arrives.  Every attack seeds
each sample by its dataset index, so a sample's result does not depend on which unit, worker
or chunk it ran in: a run gives the same records on any backend and after any number of
restarts.

Kinds: ``accuracy`` (clean accuracy and timing of one model), ``attack`` (one model, or its
member ``member``, or its first ``subset`` members, on a chunk of rows with one run's seed),
``transfer`` (attack member ``member`` alone and count the other members each example fools)
and ``substitute`` (the substitute-model curve of one model for one seed).
"""

from __future__ import annotations

import functools
import os
import time
from typing import Any

import numpy as np

__all__ = ["fingerprint", "json_floats", "load_cached", "load_data", "run_unit"]

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


def run_unit(unit: dict[str, Any]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Run one unit; returns its JSON record (``key`` first) and the arrays to keep with it."""
    start = time.perf_counter()
    kind = unit["kind"]
    model = load_cached(unit["model_path"])
    record: dict[str, Any] = {"key": unit["key"], "kind": kind, "model": unit["model"],
                              "sample_ids": [int(i) for i in unit["ids"]]}
    for name in ("run", "member", "subset", "seed"):
        if unit.get(name) is not None:
            record[name] = unit[name]
    arrays: dict[str, np.ndarray] = {}
    if kind == "attack":
        attacked = model
        if unit.get("member") is not None:
            attacked = model.member(int(unit["member"]))
        elif unit.get("subset") is not None:
            attacked = model.members(range(int(unit["subset"])))
        spec = unit["attack"]
        result = spec.attack(attacked, unit["x"], unit["y"], bounds=(0.0, 1.0), seed=int(unit["seed"]),
                             max_queries=spec.budget, sample_ids=unit["ids"], starting_points=unit.get("starts"),
                             batch_size=unit.get("batch_size"))
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
        if unit.get("keep_examples"):
            arrays["x_adv"] = result.x_adv
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
