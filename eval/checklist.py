"""The evaluation checklist of a distortion run: is the attack strong enough to trust its distances?

Carlini et al. 2019, "On Evaluating Adversarial Robustness" (arXiv:1902.06705), ask every
robustness evaluation to show that its attack has converged, that it succeeds everywhere given
room, and that it beats a trivial baseline.  :func:`run_checklist` runs three such checks on a
finished ``scd eval distortion`` (or ``width``) run and flags each model that fails one:

1. **Stronger attack on a subset.**  The run's attack again with ``factor`` times its iterations
   and query budget (:meth:`attacks.AttackSpec.stronger`) and ``factor`` times its runs, with the
   seeds after the run's own (``seed + runs`` onwards), on the first ``subset`` points.  Flagged
   when the median distance over those points, best of old and new, is more than
   :data:`DROP_THRESHOLD` below the run's median there (:func:`stronger_check`).
2. **Success against ε.**  From the run's per-image best distances, the fraction of points with
   an adversarial example within ε (:func:`success_curve`).  A minimum-distortion attack must
   reach 100 % once ε is large; flagged when it does not (a failed point is never reached).
3. **Random noise of the same norm.**  Per point, ``directions`` random directions (uniform on
   the L2 sphere, or random sign vectors for L∞), each walked out from the point until the
   prediction changes (:func:`noise_distances`); the closest such example per point.  Flagged
   when the attack's median distance is not below the noise's (:func:`noise_check`).

The stronger runs and the noise are work units of a :class:`~eval.runstore.RunStore` in
``RUN_DIR/checklist`` (the attack units are :mod:`eval.units`' own, run in lock-step), so an
interrupted checklist resumes where it stopped.  The outcome is ``RUN_DIR/checklist.json`` and
``checklist.png``, and a section of ``report.md`` (:func:`report_section`, which ``scd eval
report`` keeps).  Every random choice is seeded: the same run gives the same checklist.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from attacks import AttackSpec, robust_accuracy

from .io import exclusive, sweep_temporary
from .report import attack_label, norm_label
from .runstore import RunStore
from .suite import _budget_curve, _by_model, _lockstep_groups, _per_sample_min, _plan
from .units import fingerprint, json_floats, keep_worker_caches, load_cached, load_data, run_units

__all__ = ["DROP_THRESHOLD", "figure", "flag_lines", "format_table", "noise_check", "noise_directions", "noise_distances",
           "report_section", "run_checklist", "stronger_check", "success_curve", "summarize_checklist"]

DROP_THRESHOLD = 0.10
"""A model is flagged when the stronger attack lowers its median distance by more than this fraction."""
FACTOR = 2
"""The stronger attack's multiple of the run's iterations, query budget and runs."""
DIRECTIONS = 100
"""Random directions per point for the noise baseline."""
SCAN = 16
"""Radii per direction on the noise baseline's geometric scale (ratio sqrt 2, the largest the box's
diameter), climbed until the prediction changes: the first crossing is bracketed within a factor 1.41."""
STEPS = 12
"""Bisection steps per direction after the scale: the radius to within 0.3 / 2**12 of itself."""
_NOISE_STREAM = 30  # the noise's random stream: default_rng([seed, 30, sample_id]), apart from the attacks'


# ------------------------------------------------------------------------------- the three checks
def _as_distances(values: Any) -> np.ndarray:
    """Distances as float64 with inf where there is none (None or NaN: a failed attack)."""
    d = np.asarray([np.nan if v is None else v for v in np.ravel(np.asarray(values, object))], np.float64)
    return np.where(np.isnan(d), np.inf, d)


def _median(d: np.ndarray) -> float | None:
    """The median, failures (inf) included as the largest values; None where it is infinite."""
    if not len(d):
        return None
    m = float(np.median(d))
    return m if np.isfinite(m) else None


def stronger_check(before: Any, new: Any, threshold: float = DROP_THRESHOLD) -> dict[str, Any]:
    """Compare the run's median distance over some points with the median after a stronger attack.

    ``before`` are the run's best distances on those points and ``new`` the stronger attack's
    (None, NaN or inf where one failed); per point the best of the two counts as ``after``.  The
    ``drop`` is ``1 - median(after) / median(before)`` (1 where only ``after`` is finite, 0 where
    neither is), and the check is ``flagged`` when it exceeds ``threshold``.
    """
    b = _as_distances(before)
    after = np.minimum(b, _as_distances(new))
    mb, ma = (float(np.median(v)) if len(v) else np.inf for v in (b, after))
    if not np.isfinite(mb):
        drop = 1.0 if np.isfinite(ma) else 0.0
    else:
        drop = 1.0 - ma / mb if mb > 0 else 0.0
    return {"before_median": _median(b), "after_median": _median(after), "drop": float(drop),
            "flagged": bool(drop > threshold), "per_sample_before": json_floats(b),
            "per_sample_new": json_floats(_as_distances(new)), "per_sample_after": json_floats(after)}


def success_curve(distances: Any, eps: Any) -> dict[str, Any]:
    """The attack's success rate at each ε of ``eps``: the fraction of points whose best distance
    is at most ε (:func:`attacks.robust_accuracy`'s complement; a failed point, None/NaN/inf,
    is never reached).  ``flagged`` unless every point succeeded, i.e. unless the curve reaches
    1 at a large enough ε."""
    d = _as_distances(distances)
    rates = 1.0 - robust_accuracy(d, eps) if len(d) else np.zeros(len(np.atleast_1d(eps)))
    n_success = int(np.isfinite(d).sum())
    return {"eps": [float(e) for e in np.atleast_1d(eps)], "success_rate": [float(r) for r in rates],
            "n": len(d), "n_success": n_success, "flagged": bool(n_success < len(d))}


def noise_check(attack: Any, noise: Any) -> dict[str, Any]:
    """The attack's median distance next to random noise's over the same points (failures
    count as infinitely far); ``flagged`` when the attack's is not smaller, and
    ``noise_closer``: on how many points noise found a closer example than the attack."""
    a, z = _as_distances(attack), _as_distances(noise)
    ma, mz = (float(np.median(v)) if len(v) else np.inf for v in (a, z))
    return {"attack_median": _median(a), "noise_median": _median(z), "noise_closer": int(np.sum(z < a)),
            "n": len(a), "flagged": bool(not ma < mz)}


# ------------------------------------------------------------------------------- the noise baseline
def _check_norm(norm: float) -> None:
    if norm not in (2.0, np.inf):
        raise ValueError(f"the noise baseline is for the L2 and L∞ norms, not the norm {norm!r}.")


def noise_directions(n_features: int, norm: float, count: int, seed: int, sample_id: int) -> np.ndarray:
    """``(count, n_features)`` float32 random directions of unit ``norm`` for one point: uniform on
    the L2 sphere (normalised Gaussians) or random sign vectors (L∞), drawn from
    ``default_rng([seed, 30, sample_id])``, so a point's directions depend on it alone."""
    _check_norm(norm)
    rng = np.random.default_rng([int(seed), _NOISE_STREAM, int(sample_id)])
    if norm == 2.0:
        g = rng.standard_normal((count, n_features))
        return (g / np.linalg.norm(g, axis=1, keepdims=True)).astype(np.float32)
    return (2 * rng.integers(0, 2, (count, n_features)) - 1).astype(np.float32)


def _noisy(x: np.ndarray, u: np.ndarray, radius: np.ndarray) -> np.ndarray:
    """The rows ``clip(x + radius * u, 0, 1)`` in float32 (the model's input)."""
    return np.clip(x.astype(np.float64) + radius[:, None] * u, 0.0, 1.0).astype(np.float32)


def noise_distances(model: Any, x: np.ndarray, y: np.ndarray, directions: np.ndarray, norm: float, *,
                    steps: int = STEPS, batch_size: int = 1024) -> np.ndarray:
    """Per point and direction, the distance of the closest noisy example found along it.

    Along direction ``u`` of point ``x`` the candidates are ``clip(x + r u, 0, 1)``.  The radius
    ``r`` first climbs a geometric scale of :data:`SCAN` radii (ratio sqrt 2) up to the box's
    diameter (``sqrt(d)`` in L2, 1 in L∞) until the prediction differs from ``y``; a bisection of
    ``steps`` halvings then narrows the bracket between that radius and the one below it, and the
    distance (in ``norm``) of the clipped candidate at its upper end, one the model confirmed, is
    returned: inf where no radius of the scale changes the prediction, 0 where the model already
    misclassifies ``x``.  The distance is at most the radius (clipping only shortens a step) and
    at least the point's true minimum distortion, since every value is a confirmed example.

    ``x`` is ``(n, d)``, ``y`` ``(n,)``, ``directions`` ``(n, D, d)`` of unit ``norm``; returns
    ``(n, D)`` float64.  The rows of all points and directions at one step go through
    ``model.predict`` together, ``batch_size`` rows per call.
    """
    _check_norm(norm)
    x, y = np.asarray(x, np.float32), np.asarray(y)
    n, d = x.shape
    if directions.ndim != 3 or directions.shape[0] != n or directions.shape[2] != d:
        raise ValueError(f"directions must be (n, D, d) = ({n}, D, {d}), got {directions.shape}.")
    D = directions.shape[1]

    def candidates(radius: np.ndarray, pairs: np.ndarray):
        """``(point index, candidate rows)`` of each batch of (point, direction) ``pairs``."""
        point, k = np.divmod(pairs, D)
        for s in range(0, len(pairs), batch_size):
            i = point[s:s + batch_size]
            yield s, i, _noisy(x[i], directions[i, k[s:s + batch_size]], radius[s:s + batch_size])

    def changed(radius: np.ndarray, pairs: np.ndarray) -> np.ndarray:
        out = np.empty(len(pairs), bool)
        for s, i, rows in candidates(radius, pairs):
            out[s:s + len(i)] = np.asarray(model.predict(rows)) != y[i]
        return out

    wrong = np.asarray(model.predict(x)) != y
    top = np.sqrt(d) if norm == 2.0 else 1.0
    lo, hi = np.zeros(n * D), np.full(n * D, np.inf)
    live, below = np.flatnonzero(np.repeat(~wrong, D)), 0.0
    for r in top * 2.0 ** (-np.arange(SCAN - 1, -1, -1) / 2):  # ascending; the last is the diameter
        adv = changed(np.full(len(live), r), live)
        hi[live[adv]], lo[live[adv]] = r, below
        live, below = live[~adv], r
    found = np.flatnonzero(np.isfinite(hi))
    for _ in range(steps):
        mid = (lo[found] + hi[found]) / 2
        adv = changed(mid, found)
        hi[found], lo[found] = np.where(adv, mid, hi[found]), np.where(adv, lo[found], mid)
    out = np.full(n * D, np.inf)
    for s, i, rows in candidates(hi[found], found):
        out[found[s:s + len(i)]] = np.linalg.norm(rows.astype(np.float64) - x[i], ord=norm, axis=1)
    out = out.reshape(n, D)
    out[wrong] = 0.0
    return out


def _noise_unit(unit: dict[str, Any]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The noise baseline of one model on the run's points, as a record (``distance``: per
    point the closest over the directions, None where none changed the prediction)."""
    start = time.perf_counter()
    model = load_cached(unit["model_path"])
    x, ids, norm = unit["x"], unit["ids"], float(unit["norm"])
    directions = np.stack([noise_directions(x.shape[1], norm, unit["directions"], unit["seed"], i) for i in ids])
    dist = noise_distances(model, x, unit["y"], directions, norm, steps=unit["steps"], batch_size=unit["batch_size"])
    record = {"key": unit["key"], "kind": "noise", "model": unit["model"], "sample_ids": [int(i) for i in ids],
              "distance": json_floats(dist.min(axis=1)), "directions_changed": np.isfinite(dist).sum(axis=1).tolist(),
              "seconds": time.perf_counter() - start}
    return record, {}


def _run_group(group: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, np.ndarray]]]:
    """One item of the checklist's work: a noise unit, or a lock-step group of attack units."""
    keep_worker_caches()
    return [_noise_unit(group[0])] if group[0]["kind"] == "noise" else run_units(group)


# ------------------------------------------------------------------------------- the run
def _check_run(store: RunStore, subset: int | None) -> int:
    """``ValueError`` (``FileNotFoundError`` for a missing model file) for a run the checklist
    cannot use, before anything is loaded; returns the subset size (default ``min(5, n)``)."""
    config = store.config
    if config["kind"] not in ("distortion", "width"):
        raise ValueError(f"the checklist reads distortion (or width) runs; {os.fspath(store.dir)!r} is a "
                         f"{config['kind']!r} run.")
    _check_norm(AttackSpec.from_dict(config["attack"]).norm_value)
    n = len(config["points"])
    subset = min(5, n) if subset is None else subset
    if isinstance(subset, bool) or not isinstance(subset, int) or not 1 <= subset <= n:
        raise ValueError(f"subset must be an integer from 1 to the run's {n} points, got {subset!r}.")
    for name, m in config["models"].items():
        if not os.path.isfile(m["path"]):
            raise FileNotFoundError(f"model {name!r} of the run is not at {m['path']!r}: the checklist attacks it "
                                    "again.")
    return subset


def _open_run(run_dir: Path) -> tuple[RunStore, dict[str, Any], Any]:
    """The run's store, its models (checked unchanged) and its dataset; ``ValueError`` for a
    changed model file or an unfinished run."""
    store = RunStore(run_dir)
    config = store.config
    for name, m in config["models"].items():
        if fingerprint(m["path"]) != m["sha256"]:
            raise ValueError(f"the file of model {name!r} ({m['path']!r}) changed since the run: the checklist must "
                             "attack the model the run attacked.")
    loaded = {name: load_cached(m["path"]) for name, m in config["models"].items()}
    ds = load_data(config["data"])
    missing = [u["key"] for u in _plan(config, loaded, ds, AttackSpec.from_dict(config["attack"]))
               if not store.done(u["key"])]
    if missing:
        raise ValueError(f"the run in {os.fspath(run_dir)!r} is unfinished ({len(missing)} units to go, e.g. "
                         f"{missing[0]}): resume it with the same scd eval command first.")
    return store, loaded, ds


def _settings(config: dict[str, Any], subset: int, directions: int, steps: int) -> dict[str, Any]:
    """The checklist's own settings (its store's config): what the extra work depends on."""
    runs, seed = int(config.get("runs", 1)), int(config.get("seed", 0))
    try:
        stronger = AttackSpec.from_dict(config["attack"]).stronger(FACTOR).to_dict()
    except ValueError:  # the structure attack: no iterations or budget to multiply
        stronger = None
    return {"kind": "checklist", "run": {k: config[k] for k in ("kind", "data", "attack", "points", "models")},
            "subset": subset, "points": config["points"][:subset], "stronger_attack": stronger,
            "runs": FACTOR * runs, "seed": seed + runs, "factor": FACTOR, "threshold": DROP_THRESHOLD,
            "noise": {"directions": directions, "scan": SCAN, "steps": steps, "seed": seed}}


def _units(settings: dict[str, Any], config: dict[str, Any], loaded: dict[str, Any], ds: Any) -> list[dict[str, Any]]:
    """The checklist's work: the stronger attack's units (the run's plan on the subset, with
    its runs and seeds; no examples kept) and one noise unit per model."""
    units = []
    if settings["stronger_attack"] is not None:
        planned = dict(config, points=settings["points"], runs=settings["runs"], seed=settings["seed"])
        units = [dict(u, keep_examples=False) for u in
                 _plan(planned, loaded, ds, AttackSpec.from_dict(settings["stronger_attack"]))]
    ids = np.asarray(config["points"], np.int64)
    norm = AttackSpec.from_dict(config["attack"]).norm_value
    noise = settings["noise"]
    for name, m in config["models"].items():
        units.append({"key": f"{name}.noise", "kind": "noise", "model": name, "model_path": m["path"], "ids": ids,
                      "x": ds.x_test[ids], "y": ds.y_test[ids], "norm": norm, "directions": noise["directions"],
                      "steps": noise["steps"], "seed": noise["seed"],
                      "batch_size": int(config.get("batch_size") or 1024)})
    return units


def _open_store(folder: Path, settings: dict[str, Any]) -> RunStore:
    """The checklist's store; a folder holding another checklist (other settings) is refused,
    naming what differs."""
    path = folder / "config.json"
    if path.exists():
        old = json.loads(path.read_text())
        new = json.loads(json.dumps(settings))
        if old != new:
            changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            raise ValueError(f"{os.fspath(folder)!r} holds a checklist with other settings (differing: "
                             f"{', '.join(changed)}); rerun with its --subset to resume, or delete the folder to "
                             "start over.")
    return RunStore(folder, settings)


def run_checklist(run_dir: str | os.PathLike, *, subset: int | None = None, directions: int = DIRECTIONS,
                  steps: int = STEPS, backend: str = "loky", n_jobs: int | None = None,
                  quiet: bool = False) -> dict[str, Any]:
    """Run (or resume) the checklist of the finished distortion run in ``run_dir``; see the module
    docstring.  ``subset`` is the number of points the stronger attack reruns (default
    ``min(5, n)``), ``directions`` and ``steps`` the noise baseline's.  Writes
    ``checklist.json``, ``checklist.png`` (with matplotlib) and the run's ``report.md`` again;
    returns the checklist."""
    from tqdm.auto import tqdm

    from .backends import map_unordered, parallel_backend

    run_dir = Path(run_dir)
    for name, value, least in (("directions", directions, 1), ("steps", steps, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ValueError(f"{name} must be an integer >= {least}, got {value!r}.")
    subset = _check_run(RunStore(run_dir), subset)
    with exclusive(run_dir, "run directory"):
        store, loaded, ds = _open_run(run_dir)  # read again under the lock
        config = store.config
        settings = _settings(config, subset, directions, steps)
        folder = run_dir / "checklist"
        sweep_temporary(folder / "arrays")
        ck = _open_store(folder, settings)
        units = _units(settings, config, loaded, ds)
        pending = [u for u in units if not ck.done(u["key"])]
        groups = [[u] for u in pending if u["kind"] == "noise"] + \
            _lockstep_groups([u for u in pending if u["kind"] != "noise"])
        with parallel_backend(backend, n_jobs=n_jobs) as jobs, \
                tqdm(total=len(units), initial=len(units) - len(pending), desc="eval checklist", unit="unit",
                     disable=quiet) as bar:
            for _, done in map_unordered(_run_group, groups, n_jobs=jobs):
                for record, arrays in done:
                    ck.add(record, arrays)
                    bar.update(1)
        checklist = summarize_checklist(store, ck)
        store.write_json("checklist.json", checklist)
        _render(store, checklist)
    return checklist


# ------------------------------------------------------------------------------- summary
def _best(records: list[dict[str, Any]], points: list[int], dist: str) -> np.ndarray:
    """Per point of a finished set of runs, the best distance over ``records``: NaN where every
    run failed, 0 where the model already misclassified the point (no run attacked it)."""
    best, info = _per_sample_min(records, points, dist)
    best[~info["attacked"]] = 0.0
    return best


def summarize_checklist(store: RunStore, ck: RunStore) -> dict[str, Any]:
    """The checklist (``checklist.json``) from the run's records and the checklist's."""
    from importlib.metadata import version

    config, settings = store.config, ck.config
    spec = AttackSpec.from_dict(config["attack"])
    dist, points, subset = spec.distance, config["points"], settings["points"]
    run_records, extra = _by_model(store), _by_model(ck)
    best = {name: _best(run_records.get(name, []), points, dist) for name in config["models"]}
    finite = [v for name in best for v in best[name] if np.isfinite(v)]
    noise = {}
    for name in config["models"]:
        rec = ck.records[f"{name}.noise"]
        noise[name] = _as_distances(rec["distance"])
        finite += [v for v in noise[name] if np.isfinite(v)]
    positive = [v for v in finite if v > 0]
    lo, hi = (min(positive) / 2, max(positive) * 1.1) if positive else (1e-3, 1.0)
    eps = np.union1d(np.geomspace(lo, hi, 64), positive)  # every step of every curve, exactly where it is
    models = {}
    for name in config["models"]:
        out: dict[str, Any] = {}
        if settings["stronger_attack"] is None:
            out["stronger"] = None
        else:
            new = [r for r in extra.get(name, []) if r["kind"] == "attack"]
            out["stronger"] = stronger_check(best[name][:len(subset)], _best(new, subset, dist),
                                             settings["threshold"])
        out["success"] = success_curve(best[name], eps)
        out["noise"] = {**noise_check(best[name], noise[name]), "per_sample": json_floats(noise[name]),
                        "noise_success_rate": success_curve(noise[name], eps)["success_rate"]}
        curve = _budget_curve(run_records.get(name, []))
        out["budget_success"] = None if curve is None else {"queries": curve["queries"],
                                                            "success_rate": curve["success_rate"]}
        out["flags"] = _flags(out, settings, spec)
        models[name] = out
    return {"settings": settings, "distance": dist, "package_version": version("scd"),
            "date": time.strftime("%Y-%m-%d %H:%M:%S"), "models": models,
            "flagged": [name for name, m in models.items() if m["flags"]]}


def _flags(m: dict[str, Any], settings: dict[str, Any], spec: AttackSpec) -> list[str]:
    """The model's failed checks, each as one plain sentence."""
    norm = norm_label(spec.distance)
    flags = []
    s = m["stronger"]
    if s is not None and s["flagged"]:
        flags.append(f"the stronger attack ({settings['factor']}x iterations and runs) lowered the median {norm} "
                     f"over the first {settings['subset']} points by {s['drop']:.0%} ({_num(s['before_median'])} -> "
                     f"{_num(s['after_median'])}): the run's attack had not converged, and its distances overstate "
                     "the robustness.")
    c = m["success"]
    if c["flagged"]:
        text = (f"the attack failed on {c['n'] - c['n_success']} of {c['n']} points, so its success never reaches "
                "100 % whatever the ε: those points are untested, not robust")
        if spec.budget is not None or spec.method == "rays":
            text += " (the attack ran under a query budget)"
        b = m["budget_success"]
        if b is not None and len(b["success_rate"]) > 1 and b["success_rate"][-1] > b["success_rate"][-2]:
            text += (f"; its success was still rising with the queries ({b['success_rate'][-2]:.2f} within "
                     f"{b['queries'][-2]:,}, {b['success_rate'][-1]:.2f} within {b['queries'][-1]:,})")
        flags.append(text + ".")
    z = m["noise"]
    if z["flagged"]:
        flags.append(f"the attack does no better than random noise: median {norm} {_num(z['attack_median'])} "
                     f"against noise's {_num(z['noise_median'])} (noise closer on {z['noise_closer']} of {z['n']} "
                     "points).")
    return flags


def _num(value: float | None) -> str:
    return "inf" if value is None else f"{value:.3g}"


# ------------------------------------------------------------------------------- report
def format_table(checklist: dict[str, Any]) -> list[str]:
    """Markdown rows: per model, the three checks' figures and whether it is flagged."""
    norm = norm_label(checklist["distance"])
    k = checklist["settings"]["subset"]
    lines = [(f"| model | stronger attack: median {norm} on {k} points, before -> after (drop) | success at the "
              f"largest ε | median {norm}: attack / noise (noise closer) | flagged |"), "|---|---|---|---|---|"]
    for name, m in checklist["models"].items():
        s, c, z = m["stronger"], m["success"], m["noise"]
        stronger = "n/a" if s is None else (f"{_num(s['before_median'])} -> {_num(s['after_median'])} "
                                             f"({s['drop']:.0%})" + (" **flag**" if s["flagged"] else ""))
        success = f"{c['n_success']}/{c['n']}" + (" **flag**" if c["flagged"] else "")
        noise = (f"{_num(z['attack_median'])} / {_num(z['noise_median'])} ({z['noise_closer']}/{z['n']})"
                 + (" **flag**" if z["flagged"] else ""))
        lines.append(f"| {name} | {stronger} | {success} | {noise} | {'yes' if m['flags'] else 'no'} |")
    return lines


def flag_lines(checklist: dict[str, Any]) -> list[str]:
    """Markdown list items: each flag of each model, in words (one line when none is flagged)."""
    if not checklist["flagged"]:
        return [("No model is flagged: the attack converged on the subset, succeeded on every point, and beat "
                 "random noise.")]
    return [f"- **{name}**: {flag}" for name, m in checklist["models"].items() for flag in m["flags"]]


def report_section(run_dir: str | os.PathLike) -> list[str]:
    """The checklist's section of ``report.md`` (Markdown lines), from ``RUN_DIR/checklist.json``;
    no lines where the run has no checklist."""
    path = Path(run_dir) / "checklist.json"
    if not path.exists():
        return []
    checklist = json.loads(path.read_text())
    st = checklist["settings"]
    noise = st["noise"]
    if st["stronger_attack"] is None:
        stronger = "not run: the run's attack has no iterations or query budget to multiply"
    else:
        stronger = (f"{attack_label(st['stronger_attack'], st['runs'])}, seeds {st['seed']} to "
                    f"{st['seed'] + st['runs'] - 1}, on the first {st['subset']} points "
                    f"({', '.join(map(str, st['points']))}); flagged when the median drops by more than "
                    f"{st['threshold']:.0%}")
    lines = ["## Evaluation checklist (Carlini et al. 2019)", "",
             f"Stronger attack: {stronger}.",
             "Success against ε: from the run's best distance per point; flagged unless every point succeeded.",
             (f"Random noise: {noise['directions']} random directions per point (uniform on the sphere for L2, sign "
              f"vectors for L∞; seed {noise['seed']}), clipped to [0, 1]; along each, the first of {noise['scan']} "
              f"radii growing by sqrt 2 up to the box's diameter that changes the prediction, refined by "
              f"{noise['steps']} bisection steps; the closest example per point; flagged when the attack's median is "
              "not smaller."),
             "", *format_table(checklist), ""]
    lines += flag_lines(checklist)
    if (Path(run_dir) / "checklist.png").exists():
        lines += ["", "![checklist](checklist.png)"]
    return lines


def _render(store: RunStore, checklist: dict[str, Any]) -> None:
    """Draw ``checklist.png`` and rewrite the run's report with the checklist's section."""
    from .report import render
    from .suite import finish

    figure(checklist, store.config, store.dir / "checklist.png")
    path = store.dir / "results.json"
    if path.exists():
        render(json.loads(path.read_text()), store.dir)
    else:
        finish(store)


def figure(checklist: dict[str, Any], config: dict[str, Any], out: str | os.PathLike) -> Path | None:
    """Success against ε for every model on one plot (log ε axis): the attack's (solid) and
    random noise's (dashed, same colour), titled with the dataset, the attack, its norm and n;
    written to ``out``.  None without matplotlib."""
    from .report import _panels, _pyplot, _save, subtitle

    plt = _pyplot()
    if plt is None:
        return None
    norm = norm_label(checklist["distance"])
    fig, (ax,) = _panels(plt, f"Attack success against ε (evaluation checklist)\n"
                              f"{subtitle({'config': config, 'kind': config['kind']})}", width=7.0)
    for i, (name, m) in enumerate(checklist["models"].items()):
        eps = m["success"]["eps"]
        ax.plot(eps, m["success"]["success_rate"], "-", drawstyle="steps-post", color=f"C{i}",
                label=f"{name}: attack ({m['success']['n_success']}/{m['success']['n']})")
        ax.plot(eps, m["noise"]["noise_success_rate"], "--", drawstyle="steps-post", color=f"C{i}", alpha=0.7,
                label=f"{name}: random noise")
    ax.set_xscale("log")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel(f"{norm} distance ε (log scale)")
    ax.set_ylabel("points with an adversarial example within ε")
    ax.legend(fontsize=7)
    return _save(fig, Path(out))
