"""The paper's measurements as resumable, distributable runs: the computation behind ``scd eval``.

Every measurement is planned as independent work units (:mod:`eval.units`), which go through
joblib (:mod:`eval.backends`: loky, dask or ray) and are persisted one by one in a run
directory (:class:`eval.runstore.RunStore`).  A restarted run skips the units already done;
since every attack seeds each sample by its dataset index, the records do not depend on the
backend, the number of workers or the interruptions.  The pending runs of a decision-based
attack on one chunk of rows go to a worker together and share every model call
(:func:`eval.units.run_units`), each still persisted as its own unit.  When all units are
done the records are summarised into ``results.json`` and rendered (:mod:`eval.report`).

Measurements (``kind``):

* ``accuracy``: clean train/test accuracy, training time and prediction throughput (Table 1);
* ``distortion``: minimum adversarial distortion with HopSkipJump, Boundary or RayS over
  ``runs`` seeds per image, on ``n`` test images that every model classifies correctly, with
  bootstrap confidence intervals, paired tests and the cross-model transfer matrix of the
  closest examples (Tables 2 to 5, 8);
* ``transfer``: transfer probability inside each ensemble (Table 6);
* ``size``: minimum distortion of the ensembles of the first ``k`` members (Figure 1);
* ``width``: train SCD01 ensembles of several hidden widths, then ``distortion`` (Table 5);
* ``substitute``: the substitute-model curve with its Gaussian-noise control (Figure 2).
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from attacks import AttackSpec

from .io import exclusive, sweep_temporary
from .points import choose_points, seed_set
from .runstore import RunStore
from .units import fingerprint, json_floats, load_cached, load_data, lockstep_key, run_units

__all__ = ["KINDS", "evaluate", "examples", "finish", "parse_models", "plot_example", "summarize"]

KINDS = ("accuracy", "distortion", "transfer", "size", "width", "substitute")
_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


def parse_models(specs: Sequence[str]) -> dict[str, str]:
    """``NAME=PATH`` (or ``PATH``, named by its file stem) for each model, in order."""
    models: dict[str, str] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep:
            name, path = Path(spec).stem, spec
        if not _NAME.match(name):
            raise ValueError(f"model name {name!r} must be letters, digits, _ and - only (NAME=PATH).")
        if name in models:
            raise ValueError(f"model name {name!r} is given twice.")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"model file not found: {path!r}")
        models[name] = path
    return models


def _chunks(ids: np.ndarray, size: int) -> list[np.ndarray]:
    return [ids[i:i + size] for i in range(0, len(ids), size)]


def _build_config(kind: str, models: dict[str, str], data: dict[str, Any], options: dict[str, Any],
                  attack: AttackSpec | None) -> dict:
    """The JSON settings of a run (``config.json``); the attack in its dict form."""
    config = {"kind": kind, "data": data, **options}
    if attack is not None:
        config["attack"] = attack.to_dict()
    config["models"] = {name: {"path": os.path.abspath(p), "sha256": fingerprint(p)} for name, p in models.items()}
    return config


def _plan(config: dict[str, Any], models: dict[str, Any], ds: Any, attack: AttackSpec | None) -> list[dict[str, Any]]:
    """The work units of a run (deterministic in the config); attack units carry ``attack``."""
    kind = config["kind"]
    paths = {name: m["path"] for name, m in config["models"].items()}
    if kind == "accuracy":
        return [{"key": name, "kind": "accuracy", "model": name, "model_path": path, "ids": [], "data": config["data"]}
                for name, path in paths.items()]
    ids = np.asarray(config["points"], np.int64)
    x, y = ds.x_test, ds.y_test
    starts = None
    if config.get("start") == "nearest":
        from attacks import nearest_other_class

        starts = dict(zip(ids.tolist(), nearest_other_class(x[ids], ds.x_train, y[ids], ds.y_train)))
    base = {"attack": attack, "batch_size": config.get("batch_size")}
    units = []
    for name, path in paths.items():
        common = dict(base, model=name, model_path=path)
        if kind == "substitute":
            s = config["substitute"]
            seed_ids = np.asarray(config["seed_points"], np.int64)
            for seed in s["seeds"]:
                units.append(dict(common, key=f"{name}.s{seed}", kind="substitute", seed=int(seed), ids=ids,
                                  x=x[ids], y=y[ids], x_seed=x[seed_ids], substitute=s))
            continue
        for c, chunk in enumerate(_chunks(ids, int(config["chunk"]))):
            rows = dict(common, ids=chunk, x=x[chunk], y=y[chunk],
                        starts=None if starts is None else np.stack([starts[int(i)] for i in chunk]))
            if kind in ("distortion", "width"):
                for r in range(int(config["runs"])):
                    units.append(dict(rows, key=f"{name}.r{r}.c{c}", kind="attack", run=r,
                                      seed=int(config["seed"]) + r, keep_examples=True))
            elif kind == "size":
                for k in config["sizes"]:
                    if k > models[name].n_votes:
                        continue
                    for r in range(int(config["runs"])):
                        units.append(dict(rows, key=f"{name}.k{k}.r{r}.c{c}", kind="attack", subset=int(k), run=r,
                                          seed=int(config["seed"]) + r))
            elif kind == "transfer":
                members = config.get("members") or list(range(int(models[name].n_votes)))
                for i in members:  # _check_models has refused members past n_votes
                    units.append(dict(rows, key=f"{name}.m{i}.c{c}", kind="transfer", member=int(i),
                                      seed=int(config["seed"]), starts=None))
    return units


def _lockstep_groups(units: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The units as the groups that run together (:func:`eval.units.run_units`): the pending
    runs of one model (member, subset) on one chunk of rows share their model calls; the
    unit keys and records are those of single units, so a run directory written before
    lock-step resumes unchanged, whichever of its units are done."""
    groups: dict[Any, list[dict[str, Any]]] = {}
    for i, unit in enumerate(units):
        key = lockstep_key(unit)
        groups.setdefault(i if key is None else key, []).append(unit)
    return list(groups.values())


def _train_widths(config: dict[str, Any], ds: Any, run_dir: Path, quiet: bool) -> dict[str, str]:
    """Train (or reuse) one SCD ensemble per hidden width of a ``width`` run, in
    ``RUN_DIR/models``; the training settings are kept there, and other settings are refused."""
    import json

    from scd import SCDClassifier
    from scd.persist import fit_and_save

    from .io import atomic_write_bytes

    w = config["width"]
    settings = {"width": w, "data": config["data"], "seed": config["seed"]}
    folder = run_dir / "models"
    recorded = folder / "settings.json"
    if recorded.exists():
        if json.loads(recorded.read_text()) != json.loads(json.dumps(settings)):
            raise ValueError(f"{os.fspath(folder)!r} holds models trained with other settings; use another --out.")
    else:
        atomic_write_bytes(recorded, json.dumps(settings, indent=1, sort_keys=True).encode())
    paths = {}
    for H in w["hidden"]:
        path = folder / f"h{H}.scd"
        if not path.exists():
            model = SCDClassifier(loss=w["loss"], hidden_nodes=int(H), n_votes=int(w["votes"]),
                                  n_iters=int(w["iters"]), random_state=int(config["seed"]),
                                  n_jobs=w.get("jobs"), verbose=0 if quiet else 1)
            fit_and_save(model, ds.x_train, ds.y_train, path, resume=True)
        paths[f"h{H}"] = str(path)
    return paths


def _attack_spec(options: dict[str, Any]) -> AttackSpec | None:
    """The options' attack as a checked spec (given as one, or as its dict form)."""
    spec = options.get("attack")
    if spec is None:
        return None
    if not isinstance(spec, AttackSpec):
        spec = AttackSpec.from_dict(spec)
    spec.validate()
    return spec


def evaluate(kind: str, models: dict[str, str] | None, data: dict[str, Any], out: str | os.PathLike, *,
             options: dict[str, Any] | None = None, backend: str = "loky", n_jobs: int | None = None,
             scheduler: str | None = None, ray_address: str | None = None, quiet: bool = False,
             on_record: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Run (or resume) one measurement into ``out`` and return its summary (``results.json``).

    ``models`` maps names to saved model files (not for ``width``, which trains its own);
    ``data`` names the dataset (``name``, ``classes``, ``data_dir``, ``path``); ``options``
    are the measurement's settings (see ``scd eval KIND --help``), the attack as an
    :class:`~attacks.spec.AttackSpec` (or its dict form).  ``on_record`` sees each
    record as it is persisted.
    """
    from .backends import map_unordered, parallel_backend

    if kind not in KINDS:
        raise ValueError(f"unknown evaluation {kind!r}; choose from {KINDS}.")
    options = dict(options or {})
    spec = _attack_spec(options)
    run_dir = Path(out)
    ds = load_data(data)
    with exclusive(run_dir, "run directory"), \
            parallel_backend(backend, n_jobs=n_jobs, scheduler=scheduler, ray_address=ray_address) as jobs:
        for folder in (run_dir, run_dir / "arrays", run_dir / "models"):
            sweep_temporary(folder)
        if kind == "width":
            models = _train_widths({"data": data, **options}, ds, run_dir, quiet)
        if not models:
            raise ValueError("give at least one model (--model NAME=PATH).")
        loaded = {name: load_cached(path) for name, path in models.items()}
        _check_models(kind, loaded, options, ds)
        config = _build_config(kind, models, data, options, spec)
        if kind != "accuracy":
            config["points"] = choose_points(list(loaded.values()), ds.x_test, ds.y_test, int(options["n"]),
                                             seed=int(options.get("seed", 0)), indices=options.get("indices")).tolist()
        if kind == "substitute":
            config["seed_points"] = seed_set(len(ds.x_test), config["points"], int(options["substitute"]["seed_size"]),
                                             int(options.get("seed", 0))).tolist()
        units = _plan(config, loaded, ds, spec)
        if not units:
            raise ValueError(f"nothing to evaluate: these settings give no {kind} work unit for the models given.")
        store = RunStore(run_dir, config)
        pending = [u for u in units if not store.done(u["key"])]
        from tqdm.auto import tqdm

        with tqdm(total=len(units), initial=len(units) - len(pending), desc=f"eval {kind}", unit="unit",
                  disable=quiet) as bar:
            for _, done in map_unordered(run_units, _lockstep_groups(pending), n_jobs=jobs):
                for record, arrays in done:
                    store.add(record, arrays)
                    bar.update(1)
                    if on_record is not None:
                        on_record(record)
    return finish(store, models=loaded, ds=ds)


def _check_models(kind: str, loaded: dict[str, Any], options: dict[str, Any], ds: Any) -> None:
    """``ValueError`` for models the measurement cannot use: another feature count, a single
    member where ensembles are compared, a member index or ensemble size they do not have."""
    for name, model in loaded.items():
        if model.n_features_in_ != ds.x_test.shape[1]:
            raise ValueError(f"model {name!r} takes {model.n_features_in_} features, but {ds.name} has "
                             f"{ds.x_test.shape[1]}.")
        n_votes = int(getattr(model, "n_votes", 1))
        if kind in ("transfer", "size") and n_votes < 2:
            raise ValueError(f"model {name!r} has one member; {kind} needs ensembles.")
        members = options.get("members") if kind == "transfer" else None
        if members is not None and (not members or max(members) >= n_votes):
            raise ValueError(f"members {members} are not all among the {n_votes} members (0 to {n_votes - 1}) "
                             f"of model {name!r}.")
    sizes = options.get("sizes") if kind == "size" else None
    if sizes is not None and (not sizes or min(sizes) < 1):
        raise ValueError(f"ensemble sizes must be integers >= 1, got {sizes}.")


def finish(store: RunStore, models: dict[str, Any] | None = None, ds: Any = None) -> dict[str, Any]:
    """Summarise the records of a run into ``results.json`` and render its report; the example
    figures already drawn (``examples_<id>.png``, :func:`plot_example`) are drawn again."""
    from .report import render

    if store.config["kind"] == "text":
        from .text_eval import finish_text

        return finish_text(store)
    results = summarize(store, models=models, ds=ds)
    store.write_json("results.json", results)
    render(results, store.dir)
    for path in sorted(store.dir.glob("examples_*.png")):
        match = re.fullmatch(r"examples_(\d+)\.png", path.name)
        if match and int(match[1]) in store.config.get("points", ()):
            plot_example(store.dir, int(match[1]), path)
    return results


# --------------------------------------------------------------------------- summaries
def _per_sample_min(records: list[dict[str, Any]], points: list[int], dist: str) -> tuple[np.ndarray, dict]:
    """Per point, the smallest successful distance over runs (NaN if every run failed or none
    ran yet), the run it came from, which points were attacked, and query/time totals."""
    pos = {p: i for i, p in enumerate(points)}
    best = np.full(len(points), np.inf)
    best_key: list[tuple[str, int] | None] = [None] * len(points)
    queries, seconds = [], 0.0
    misclassified, attacked = np.zeros(len(points), bool), np.zeros(len(points), bool)
    for rec in records:
        seconds += rec["seconds"]
        for j, sid in enumerate(rec["sample_ids"]):
            i = pos[sid]
            if rec["already_adversarial"][j]:
                misclassified[i] = True
                continue
            attacked[i] = True
            queries.append(rec["queries"][j])
            d = rec[dist][j]
            if rec["success"][j] and d is not None and d < best[i]:
                best[i], best_key[i] = d, (rec["key"], j)
    best[~np.isfinite(best)] = np.nan
    best[misclassified] = np.nan
    attacked &= ~misclassified
    return best, {"keys": best_key, "median_queries": float(np.median(queries)) if queries else None,
                  "seconds": seconds, "misclassified": int(misclassified.sum()), "attacked": attacked,
                  "pending": int((~attacked & ~misclassified).sum())}


def _distance_summary(best: np.ndarray, info: dict[str, Any], seed: int) -> dict[str, Any]:
    """Success and distortion statistics over the points attacked so far (a point the model
    misclassifies, or whose attack has not run yet, is not a failure)."""
    from .stats import summarize_distances

    return {**summarize_distances(best[info["attacked"]], seed=seed), "per_sample": json_floats(best),
            "misclassified": info["misclassified"], "pending": info["pending"],
            "median_queries": info["median_queries"], "seconds": info["seconds"]}


def _budget_curve(records: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The query-budget curve over every (image, run) attack of ``records``; None without
    records, or when one lacks the curve (a gradient attack, or a record written before
    records carried it)."""
    from .stats import budget_summary

    if not records or any("distance_at" not in r for r in records):
        return None
    columns = [np.asarray(r["distance_at"], np.float64)[:, ~np.asarray(r["already_adversarial"], bool)]
               for r in records]
    return budget_summary(np.concatenate(columns, axis=1), records[0]["budget_queries"])


def _by_model(store: RunStore) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for rec in store.records.values():
        out.setdefault(rec["model"], []).append(rec)
    return out


def summarize(store: RunStore, models: dict[str, Any] | None = None, ds: Any = None) -> dict[str, Any]:
    """The JSON summary of a run's records (``results.json``).  ``models``/``ds`` are loaded
    from the config when a summary needs them (the cross-model transfer matrix)."""
    from importlib.metadata import version

    from .stats import paired_test

    config = store.config
    kind = config["kind"]
    names = list(config["models"])
    records = _by_model(store)
    results: dict[str, Any] = {"kind": kind, "config": config, "package_version": version("scd"),
                               "date": time.strftime("%Y-%m-%d %H:%M:%S"), "models": {}}
    seed = int(config.get("seed", 0))
    if kind == "accuracy":
        for name in names:
            if name in records:
                results["models"][name] = {k: v for k, v in records[name][0].items()
                                           if k not in ("key", "kind", "model", "sample_ids")}
        if any("n_test" not in m for m in results["models"].values()):  # records written before they kept it
            try:
                ds = load_data(config["data"]) if ds is None else ds
            except FileNotFoundError:  # rebuilt where the data is not: the report goes without the sizes
                return results
            for m in results["models"].values():
                m.setdefault("n_train", len(ds.y_train))
                m.setdefault("n_test", len(ds.y_test))
        return results
    points = config["points"]
    if kind in ("distortion", "width", "size"):
        dist = results["distance"] = AttackSpec.from_dict(config["attack"]).distance
    if kind in ("distortion", "width"):
        mins = {}
        for name in names:
            best, info = _per_sample_min(records.get(name, []), points, dist)
            mins[name] = best
            results["models"][name] = {**_distance_summary(best, info, seed),
                                       "runs_done": len({r["run"] for r in records.get(name, [])}),
                                       "best": info["keys"], "budget_curve": _budget_curve(records.get(name, []))}
        results["paired_tests"] = [{"a": a, "b": b, **paired_test(mins[a], mins[b])}
                                   for i, a in enumerate(names) for b in names[i + 1:]]
        results["transfer_matrix"] = _transfer_matrix(store, results, names, models, ds)
        from .intervals import summarize_intervals

        intervals = summarize_intervals(store.dir, results)  # None until scd eval intervals has run
        if intervals is not None:
            results["intervals"] = intervals
    elif kind == "size":
        for name in names:
            rows = []
            for k in config["sizes"]:
                recs = [r for r in records.get(name, []) if r.get("subset") == k]
                if not recs:
                    continue
                best, info = _per_sample_min(recs, points, dist)
                rows.append({"k": int(k), **_distance_summary(best, info, seed)})
            results["models"][name] = {"sizes": rows}
    elif kind == "transfer":
        from .transfer import combine_transfer

        pos = {p: i for i, p in enumerate(points)}
        for name in names:
            recs = records.get(name, [])
            if not recs:
                continue
            M = recs[0]["n_members"]
            shape = (len(points), M)
            fooled, l2 = np.full(shape, np.nan), np.full(shape, np.nan)
            attacked, success = np.zeros(shape, bool), np.zeros(shape, bool)
            for rec in recs:
                rows = [pos[s] for s in rec["sample_ids"]]
                m = rec["member"]
                attacked[rows, m], success[rows, m] = rec["attacked"], rec["success"]
                fooled[rows, m] = np.array(rec["fooled"], dtype=np.float64)
                l2[rows, m] = np.array(rec["l2"], dtype=np.float64)
            tr = combine_transfer(fooled, attacked, success, l2, M)
            results["models"][name] = {"mean_probability": _none(tr.mean_probability),
                                       "probability": json_floats(tr.probability),
                                       "members_attacked": int(attacked.any(axis=0).sum()), "n_members": M,
                                       "member_success_rate": _none(success.sum() / max(1, attacked.sum())),
                                       "median_member_l2": _none(np.nanmedian(l2)) if np.isfinite(l2).any() else None,
                                       "seconds": float(sum(r["seconds"] for r in recs))}
    elif kind == "substitute":
        for name in names:
            recs = sorted(records.get(name, []), key=lambda r: r["seed"])
            if not recs:
                continue
            mean = lambda k: np.mean([r[k] for r in recs], axis=0).tolist()  # noqa: E731
            results["models"][name] = {"eps": recs[0]["eps"], "adversarial_accuracy": mean("adversarial_accuracy"),
                                       "noise_accuracy": mean("noise_accuracy"),
                                       "substitute_accuracy": mean("substitute_accuracy"),
                                       "clean_accuracy": float(np.mean([r["clean_accuracy"] for r in recs])),
                                       "agreement": float(np.mean([r["agreement"] for r in recs])),
                                       "queries": float(np.mean([r["queries"] for r in recs])),
                                       "seeds": [r["seed"] for r in recs],
                                       "seconds": float(sum(r["seconds"] for r in recs))}
    return results


def _transfer_matrix(store: RunStore, results: dict[str, Any], names: list[str], models: dict[str, Any] | None,
                     ds: Any) -> dict[str, Any] | None:
    """For each source model's closest adversarial examples, the fraction that every other
    model also misclassifies (rows: the source model, columns: every model it is tried on)."""
    if len(names) < 2:
        return None
    if models is None:
        saved = store.config["models"].values()
        if not all(os.path.isfile(m["path"]) and fingerprint(m["path"]) == m["sha256"] for m in saved):
            return None  # rebuilt without the attacked model files (missing or changed): leave the matrix out
        models = {name: load_cached(m["path"]) for name, m in store.config["models"].items()}
    if ds is None:
        ds = load_data(store.config["data"])
    points = store.config["points"]
    matrix: dict[str, dict[str, float | None]] = {}
    for src in names:
        keys = [k for k in results["models"][src]["best"] if k is not None]
        if not keys:
            matrix[src] = {dst: None for dst in names}
            continue
        x_adv = np.stack([store.arrays(key)["x_adv"][j] for key, j in keys])
        sid = np.array([store.records[key]["sample_ids"][j] for key, j in keys])
        y = ds.y_test[sid]
        matrix[src] = {dst: float(np.mean(np.asarray(models[dst].predict(x_adv)) != y)) for dst in names}
    return {"sources": names, "fooled_fraction": matrix, "n_points": len(points)}


def examples(run_dir: str | os.PathLike, sample_id: int) -> tuple[np.ndarray, dict[str, np.ndarray], Any]:
    """The original test input ``sample_id`` of a distortion run and each model's closest
    adversarial version of it (models whose attacks all failed are left out), and the dataset."""
    import json

    store = RunStore(run_dir)
    if store.config["kind"] not in ("distortion", "width"):
        raise ValueError(f"examples come from distortion or width runs, not {store.config['kind']!r}.")
    path = store.dir / "results.json"
    if not path.exists():
        raise FileNotFoundError(f"{os.fspath(path)!r} not found: finish the run (or run scd eval report) first.")
    results = json.loads(path.read_text())
    points = store.config["points"]
    if sample_id not in points:
        raise ValueError(f"test point {sample_id} was not attacked in this run; choose from {points}.")
    i = points.index(sample_id)
    ds = load_data(store.config["data"])
    adversarial = {}
    for name, m in results["models"].items():
        if m["best"][i] is not None:
            key, j = m["best"][i]
            adversarial[name] = store.arrays(key)["x_adv"][j]
    return ds.x_test[sample_id], adversarial, ds


def plot_example(run_dir: str | os.PathLike, sample_id: int, out: str | os.PathLike | None = None) -> Path:
    """Draw test point ``sample_id`` of a distortion run and each model's closest adversarial
    version of it (:func:`eval.report.plot_examples`) into ``out`` (default
    ``RUN_DIR/examples_<sample_id>.png``), titled with the dataset and the attack."""
    import json

    from .report import attack_label, dataset_label, plot_examples

    original, adversarial, ds = examples(run_dir, sample_id)
    results = json.loads((Path(run_dir) / "results.json").read_text())
    c = results["config"]
    failed = [name for name in results["models"] if name not in adversarial]
    title = (f"The closest adversarial example found for each model\n{dataset_label(c['data'])} · "
             f"{attack_label(c['attack'], c.get('runs'))} · test point {sample_id}, one of n = {len(c['points'])}"
             + (f"\nnone found for {', '.join(failed)}" if failed else ""))
    return plot_examples(original, adversarial, Path(run_dir) / f"examples_{sample_id}.png" if out is None else out,
                         input_shape=ds.input_shape, norm=results["distance"], title=title)


def _none(value: Any) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None
