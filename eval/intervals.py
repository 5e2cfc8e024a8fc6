"""``scd eval intervals``: every distortion of a run as a certified interval, resumable.

For each model and test point of a distortion run (``scd eval distortion``), the smallest
perturbation that changes the prediction, in the run's norm, lies in ``[lower, upper]``:

* ``lower`` is certified by :func:`eval.bounds.certify_model` (SCD ensembles through
  :func:`scd.certify.certify`; the forest's MILP, the MLP's bound propagation, the CNN's
  interval propagation); a model it cannot bound (the larq BNN) has none, and says why;
* ``upper`` is the closest confirmed example of every attack run on the same models and points
  (the run itself and any further runs given, whatever their norm: an example's distance in
  this norm bounds the minimum too) and of the certificate's own search, with the name of the
  one that found it.

The certificates are kept in ``RUN_DIR/intervals/`` (:class:`eval.runstore.RunStore`: its
settings, one record per model and point, the certificate's example under ``arrays/``), so an
interrupted run resumes; ``RUN_DIR/intervals/attacks.json`` keeps the further runs' distances.
:func:`summarize_intervals` combines them into ``results.json["intervals"]``, which
``report.md`` renders (:func:`interval_tables`) with the robust- and certified-accuracy plot
(:func:`accuracy_figure`); ``docs/intervals.md`` describes the JSON.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .report import norm_label
from .runstore import RunStore

__all__ = ["FOLDER", "accuracy_curves", "accuracy_figure", "interval_tables", "pair_conclusion", "run_intervals",
           "summarize_intervals"]

FOLDER = "intervals"
"""The folder of a run directory that holds its certificates."""
_KINDS = ("distortion", "width")
_ALPHA = 0.05


# ------------------------------------------------------------------------------- the run
def _attack_name(config: dict[str, Any]) -> str:
    """A run's attack in two words: ``HopSkipJump L2``."""
    from attacks import ATTACKS, AttackSpec

    spec = AttackSpec.from_dict(config["attack"])
    return f"{ATTACKS[spec.method].__name__} {norm_label(spec.distance)}"


def _check_same(first: RunStore, other: RunStore) -> None:
    """``ValueError`` unless ``other`` attacked models of ``first`` (same names, same files) on the
    same data and points."""
    a, b = first.config, other.config
    where = f"{os.fspath(other.dir)!r}"
    if b.get("kind") not in _KINDS:
        raise ValueError(f"{where} is a {b.get('kind')!r} run, not a distortion run.")
    same_data = lambda c: {k: c["data"].get(k) for k in ("name", "classes", "path")}
    if same_data(a) != same_data(b):
        raise ValueError(f"{where} attacked other data ({same_data(b)}) than {os.fspath(first.dir)!r} "
                         f"({same_data(a)}); give runs on the same models, data and points.")
    if a["points"] != b["points"]:
        raise ValueError(f"{where} attacked other test points than {os.fspath(first.dir)!r}; give runs on the same "
                         "models, data and points (the same --n and --seed).")
    for name, model in b["models"].items():
        if name not in a["models"]:
            raise ValueError(f"{where} attacked model {name!r}, which {os.fspath(first.dir)!r} does not have.")
        if model["sha256"] != a["models"][name]["sha256"]:
            raise ValueError(f"{where} attacked another file as model {name!r} than {os.fspath(first.dir)!r} "
                             f"(sha256 {model['sha256']} vs {a['models'][name]['sha256']}).")


def _attack_distances(store: RunStore, distance: str) -> dict[str, list[float | None]]:
    """Per model of a run, each point's closest confirmed example over its seeds, in ``distance``
    (None where every attack failed, or the point is not attacked yet)."""
    from .suite import _per_sample_min
    from .units import json_floats

    by_model: dict[str, list[dict[str, Any]]] = {}
    for record in store.records.values():
        by_model.setdefault(record["model"], []).append(record)
    return {name: json_floats(_per_sample_min(by_model.get(name, []), store.config["points"], distance)[0])
            for name in store.config["models"]}


def _labels(stores: list[RunStore]) -> list[str]:
    """A label per run: its attack, with the run's folder where two runs have the same attack."""
    names = [_attack_name(s.config) for s in stores]
    return [name if names.count(name) == 1 else f"{name} ({s.dir.name})" for s, name in zip(stores, names)]


def _sources(stores: list[RunStore], distance: str) -> dict[str, Any]:
    """``attacks.json``: the runs' labels, and the further runs' distances in ``distance``."""
    labels = _labels(stores)
    runs = [{"label": label, "run_dir": os.path.abspath(store.dir), "attack": store.config["attack"],
             "runs": store.config.get("runs", 1), "per_sample": _attack_distances(store, distance)}
            for store, label in zip(stores[1:], labels[1:])]
    return {"distance": distance, "first": labels[0], "runs": runs}


def _open_store(run_dir: Path, config: dict[str, Any]) -> RunStore:
    """The certificates' store; ``ValueError`` saying how to go on when it holds other settings."""
    folder = run_dir / FOLDER
    if (folder / "config.json").exists():
        old, new = RunStore(folder).config, json.loads(json.dumps(config))
        changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        if changed:
            raise ValueError(f"{os.fspath(folder)!r} holds intervals computed with other settings (differing: "
                             f"{', '.join(changed)}); rerun with the same --time-limit to resume, or delete that "
                             "folder to bound again.")
    return RunStore(folder, config)


def run_intervals(run_dirs: Sequence[str | os.PathLike], *, time_limit: float | None = 10.0,
                  quiet: bool = False) -> dict[str, Any]:
    """Certify every model of the distortion run ``run_dirs[0]`` on its points and combine the
    bounds with the attacks of every run given; returns ``results.json["intervals"]``.

    Further ``run_dirs`` are distortion runs of the same models (all or some of them), data and
    points, e.g. with Boundary or RayS.  ``time_limit``: seconds of search per model and point
    after the certificate (:func:`eval.bounds.certify_model`).  Results go to
    ``RUN_DIR/intervals/`` (resumed after an interruption; other settings are refused), then
    ``results.json``, ``report.md`` and the plots of the first run are rebuilt.
    """
    from attacks import AttackSpec
    from scd.certify import parse_norm

    from .io import atomic_write_bytes, exclusive, sweep_temporary
    from .suite import finish
    from .units import fingerprint, load_cached, load_data

    if not run_dirs:
        raise ValueError("give at least one distortion run directory.")
    if time_limit is not None and time_limit < 0:
        raise ValueError(f"time_limit must be >= 0 or None; got {time_limit!r}.")
    dirs = [Path(d) for d in run_dirs]
    if len({d.resolve() for d in dirs}) != len(dirs):
        raise ValueError("a run directory is given twice.")
    stores = [RunStore(d) for d in dirs]
    first = stores[0]
    if first.config.get("kind") not in _KINDS:
        raise ValueError(f"{os.fspath(first.dir)!r} is a {first.config.get('kind')!r} run; intervals are for "
                         "distortion runs (scd eval distortion).")
    for other in stores[1:]:
        _check_same(first, other)
    distance = AttackSpec.from_dict(first.config["attack"]).distance
    norm = parse_norm(distance)
    points = [int(i) for i in first.config["points"]]
    models = first.config["models"]
    for name, m in models.items():
        if not os.path.isfile(m["path"]):
            raise FileNotFoundError(f"model {name!r} not found at {m['path']!r}, where the run loaded it.")
        if fingerprint(m["path"]) != m["sha256"]:
            raise ValueError(f"model file {m['path']!r} ({name}) changed since the run attacked it.")
    ds = load_data(first.config["data"])
    config = {"kind": "intervals", "norm": norm, "time_limit": time_limit, "bounds": [0.0, 1.0],
              "data": first.config["data"], "points": points, "models": models}
    with exclusive(first.dir, "run directory"):
        sweep_temporary(first.dir / FOLDER)
        sweep_temporary(first.dir / FOLDER / "arrays")
        store = _open_store(first.dir, config)
        atomic_write_bytes(first.dir / FOLDER / "attacks.json",
                           json.dumps(_sources(stores, distance), indent=1, allow_nan=False).encode())
        keys = [(name, i) for name in models for i in points]
        from tqdm.auto import tqdm

        with tqdm(total=len(keys), initial=sum(store.done(f"{n}.i{i}") for n, i in keys), unit="point",
                  desc=f"intervals {norm_label(distance)}", disable=quiet) as bar:
            for name in models:
                if all(store.done(f"{name}.i{i}") for i in points):
                    continue
                model = load_cached(models[name]["path"])
                for i in points:
                    if not store.done(f"{name}.i{i}"):
                        record, arrays = _certify_point(model, ds.x_test[i:i + 1], ds.y_test[i:i + 1], norm,
                                                        time_limit, i)
                        store.add({"key": f"{name}.i{i}", "model": name, "index": i, **record}, arrays)
                        bar.update(1)
        results = finish(first)
    return results["intervals"]


def _certify_point(model: Any, x: np.ndarray, y: np.ndarray, norm: str, time_limit: float | None,
                   index: int) -> tuple[dict[str, Any], dict[str, np.ndarray] | None]:
    """The certificate's record of one point (``certified`` False, with the reason, for a model
    no certificate covers) and its example."""
    from .bounds import certify_model, model_kind

    try:
        model_kind(model)
    except ValueError as err:
        return {"certified": False, "reason": str(err), "lower": 0.0, "upper": None, "lower_method": "none",
                "upper_method": "", "seconds": 0.0}, None
    bound = certify_model(model, x, y, norm=norm, time_limit=time_limit, seed=index)[0]
    return {"certified": True, **bound.record()}, (None if bound.x_adv is None else {"x_adv": bound.x_adv})


# ------------------------------------------------------------------------------- the summary
def _value(v: float | None) -> float:
    """A stored bound as a float (None is inf, as :meth:`scd.certify.Bound.record` writes it)."""
    return np.inf if v is None else float(v)


def _exact(lower: float, upper: float) -> bool:
    from scd.certify import Bound

    return Bound(lower, upper, "", "").exact


def _rows(records: list[dict[str, Any] | None], attacks: dict[str, list[float | None]]) -> list[dict[str, Any]]:
    """Each point's interval: the certificate's lower bound, the best upper bound over the attacks
    and the certificate's own example, who found it, the gap and whether they meet."""
    rows = []
    for j, record in enumerate(records):
        if record is None:  # not certified yet
            continue
        candidates = [(_value(values[j]), label) for label, values in attacks.items()]
        candidates.append((_value(record["upper"]), f"certify: {record['upper_method']}"))
        upper, by = min(candidates, key=lambda c: c[0])
        lower = _value(record["lower"])
        certified = record["certified"]
        finite = lambda v: float(v) if np.isfinite(v) else None
        rows.append({
            "index": record["index"], "lower": finite(lower) if certified else None,
            "lower_method": record["lower_method"], "upper": finite(upper), "upper_by": by if np.isfinite(upper) else None,
            "attack_upper": {label: values[j] for label, values in attacks.items()},
            "certificate_upper": finite(_value(record["upper"])),
            "gap": finite(upper - lower) if certified and np.isfinite(lower) else None,
            "ratio": finite(upper / lower) if certified and 0 < lower < np.inf else None,
            "exact": bool(certified and _exact(lower, upper)),
            "lower_is_inf": bool(certified and lower == np.inf),
            # a sound lower bound is never above a confirmed example's distance (1e-6 relative: rounding)
            "conflict": bool(certified and lower > upper * (1 + 1e-6) + 1e-12),
            "misclassified": record["lower_method"] == "misclassified",
        })
    return rows


def _arrays(rows: list[dict[str, Any]], points: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Per point (NaN where not certified yet): the lower bound (0 without a certificate: the
    trivial bound; inf where nothing in the box changes the prediction) and the best upper bound
    (inf where none was found)."""
    lower, upper = np.full(len(points), np.nan), np.full(len(points), np.nan)
    pos = {p: k for k, p in enumerate(points)}
    for r in rows:
        k = pos[r["index"]]
        upper[k] = _value(r["upper"])
        lower[k] = np.inf if r["lower_is_inf"] else (r["lower"] if r["lower"] is not None else 0.0)
        lower[k] = min(lower[k], upper[k])  # a conflict (flagged in the rows) counts as its smaller end
    return lower, upper


def accuracy_curves(lower: np.ndarray | None, upper: np.ndarray, eps: np.ndarray) -> dict[str, list[float] | None]:
    """At each ``eps``: robust accuracy from the attacks, the fraction of points with no example
    within ε (``upper > ε``: an upper bound on the true robust accuracy), and certified accuracy,
    the fraction whose certified ``lower > ε`` (a lower bound; None without ``lower``).  A point
    already misclassified has distance 0, so it counts as broken at every ε >= 0."""
    from attacks import robust_accuracy

    robust = robust_accuracy(np.asarray(upper, np.float64), eps).tolist()
    certified = None if lower is None else robust_accuracy(np.asarray(lower, np.float64), eps).tolist()
    return {"robust": robust, "certified": certified}


def pair_conclusion(a: str, b: str, lower_a: Any, upper_a: Any, lower_b: Any, upper_b: Any, *,
                    alpha: float = _ALPHA) -> dict[str, Any]:
    """What the intervals of models ``a`` and ``b`` on the same images say about "a is harder
    to attack than b" (a larger minimum distortion).

    Each argument is per image (NaN: no interval there; a lower bound of 0 for a model without
    a certificate; inf for an upper bound nobody found).  Where ``lower_a > upper_b``, a's true
    minimum provably exceeds b's on that image, and the reverse where ``lower_b > upper_a``.
    The claim is confirmed when the one-sided sign test on those proven orderings rejects "a's
    minimum is not typically larger" at ``alpha``: the true number of images where a's minimum
    is larger is at least the proven one, so the test is conservative.  Anything else cannot
    be decided from the intervals, whatever the attacks alone suggest (their upper bounds are
    compared too, for the statement).  Returns counts, p-values, ``verdict`` (``a``, ``b`` or
    ``None``) and ``text``.
    """
    from scipy.stats import binomtest

    from .stats import paired_test

    la, ua, lb, ub = (np.asarray(v, np.float64) for v in (lower_a, upper_a, lower_b, upper_b))
    if not la.shape == ua.shape == lb.shape == ub.shape or la.ndim != 1:
        raise ValueError("the four bounds must be 1-D arrays over the same images.")
    both = ~(np.isnan(la) | np.isnan(ua) | np.isnan(lb) | np.isnan(ub))
    if np.any((la > ua)[both]) or np.any((lb > ub)[both]):
        raise ValueError("a lower bound exceeds its upper bound; these are not intervals.")
    n = int(both.sum())
    a_harder, b_harder = int(np.sum((la > ub)[both])), int(np.sum((lb > ua)[both]))
    p_a = float(binomtest(a_harder, n, 0.5, alternative="greater").pvalue) if n else None
    p_b = float(binomtest(b_harder, n, 0.5, alternative="greater").pvalue) if n else None
    finite = lambda v: np.where(np.isfinite(v), v, np.nan)
    attacks = paired_test(finite(ua[both]), finite(ub[both]))
    verdict = a if p_a is not None and p_a < alpha else b if p_b is not None and p_b < alpha else None
    out = {"a": a, "b": b, "n": n, "a_provably_harder": a_harder, "b_provably_harder": b_harder,
           "sign_test_p_a": p_a, "sign_test_p_b": p_b, "alpha": alpha, "verdict": verdict}
    if not n:
        out["text"] = f"{a} vs {b}: cannot decide: no image has an interval for both."
        return out
    proven = (f"{a}'s certified lower bound exceeds {b}'s best upper bound on {a_harder} of {n} images ({a} provably "
              f"harder there), {b}'s exceeds {a}'s on {b_harder}")
    if verdict is not None:
        loser = b if verdict == a else a
        p = p_a if verdict == a else p_b
        out["text"] = (f"{verdict} harder than {loser}: confirmed by the intervals. {proven}; one-sided sign test on "
                       f"the proven orderings p = {p:.3g} < {alpha}.")
        return out
    hint = ""
    if attacks["median_difference"]:
        higher = a if attacks["median_difference"] > 0 else b
        p = attacks["wilcoxon_p"]
        hint = (f" The attacks alone put {higher} higher (median difference of the upper bounds "
                f"{attacks['median_difference']:+.3g} over {attacks['n']} images"
                + (f", Wilcoxon p = {p:.3g}" if p is not None else "") + "), which the intervals do not confirm.")
    uncertified = [m for m, lower in ((a, la), (b, lb)) if not np.any(lower[both] > 0)]
    if uncertified:
        hint += f" No positive certified lower bound for {' or '.join(uncertified)}: it is never proven harder."
    out["text"] = (f"{a} vs {b}: cannot decide. {proven}; one-sided sign tests p = {p_a:.3g} ({a} harder) and "
                   f"{p_b:.3g} ({b} harder), neither < {alpha}.{hint}")
    return out


def summarize_intervals(run_dir: str | os.PathLike, results: dict[str, Any]) -> dict[str, Any] | None:
    """The intervals of a distortion run (``results.json["intervals"]``), from its certificates
    (``RUN_DIR/intervals``), the run's own attacks (``results``, its summary) and the further
    runs' (``attacks.json``); None where ``scd eval intervals`` has not run."""
    from .stats import paired_test
    from .units import json_floats

    folder = Path(run_dir) / FOLDER
    if not (folder / "config.json").exists():
        return None
    store = RunStore(folder)
    config, points = store.config, results["config"]["points"]
    if config["points"] != points or set(config["models"]) != set(results["models"]):
        return None  # certificates of another run's points or models: left out rather than mixed
    path = folder / "attacks.json"
    sources = json.loads(path.read_text()) if path.exists() else {}
    further = sources.get("runs", [])
    first = sources.get("first") or _attack_name(results["config"])
    out: dict[str, Any] = {"norm": config["norm"], "distance": results["distance"], "time_limit": config["time_limit"],
                           "n_points": len(points), "attacks": [first] + [s["label"] for s in further],
                           "models": {}}
    bounds = {}
    for name, m in results["models"].items():
        attacks = {first: m["per_sample"]}
        attacks.update({s["label"]: s["per_sample"][name] for s in further if name in s["per_sample"]})
        records = [store.records.get(f"{name}.i{i}") for i in points]
        rows = _rows(records, attacks)
        done = [r for r in records if r is not None]
        certified = bool(done) and done[0]["certified"]
        lower, upper = _arrays(rows, points)
        bounds[name] = (lower, upper, certified)
        ok = ~np.isnan(lower)
        by: dict[str, int] = {}
        for r in rows:
            if r["upper_by"] is not None:
                by[r["upper_by"]] = by.get(r["upper_by"], 0) + 1
        ratios = [r["ratio"] for r in rows if r["ratio"] is not None]
        out["models"][name] = {
            "certified": certified, "reason": None if certified or not done else done[0]["reason"],
            "n": len(rows), "pending": len(points) - len(rows),
            "misclassified": sum(r["misclassified"] for r in rows),
            "median_lower": json_floats([np.median(lower[ok])])[0] if certified and ok.any() else None,
            "median_upper": json_floats([np.median(upper[ok])])[0] if ok.any() else None,
            "median_ratio": float(np.median(ratios)) if ratios else None,
            "exact": sum(r["exact"] for r in rows), "conflicts": sum(r["conflict"] for r in rows),
            "upper_found_by": by, "seconds": float(sum(r.get("seconds", 0.0) for r in done)),
            "rows": rows}
    names = list(out["models"])
    nan_unless = lambda v, keep: np.where(keep & np.isfinite(v), v, np.nan)
    tests = []
    for k, a in enumerate(names):
        for b in names[k + 1:]:
            (la, ua, ca), (lb, ub, cb) = bounds[a], bounds[b]
            tests.append({"a": a, "b": b,
                          "lower": paired_test(nan_unless(la, ca), nan_unless(lb, cb)) if ca and cb else None,
                          "upper": paired_test(nan_unless(ua, True), nan_unless(ub, True)),
                          "conclusion": pair_conclusion(a, b, la, ua, lb, ub)})
    out["paired_tests"] = tests
    out["curves"] = _curves(bounds)
    return out


def _curves(bounds: dict[str, tuple[np.ndarray, np.ndarray, bool]]) -> dict[str, Any]:
    """The accuracy curves of every model on one ε grid: 0, every finite bound (where a curve
    steps down) and a little past the largest; over the points certified so far."""
    values = np.concatenate([np.concatenate([lo[np.isfinite(lo)], up[np.isfinite(up)]])
                             for lo, up, _ in bounds.values()] + [np.zeros(1)])
    top = float(values.max()) if values.size else 0.0
    eps = np.unique(np.concatenate([values, [top * 1.05 if top > 0 else 1.0]]))
    models = {}
    for name, (lower, upper, certified) in bounds.items():
        ok = ~np.isnan(lower)
        curve = accuracy_curves(lower[ok] if certified else None, upper[ok], eps) if ok.any() else None
        models[name] = None if curve is None else {**curve, "n": int(ok.sum())}
    return {"eps": eps.tolist(), "models": models}


# ------------------------------------------------------------------------------- the report
def _fmt(v: Any, digits: int = 4) -> str:
    if v is None:
        return "n/a"
    return f"{v:.{digits}g}" if isinstance(v, float) else str(v)


def interval_tables(results: dict[str, Any]) -> list[str]:
    """Markdown lines of a run's intervals: the summary per model, the tests on both bounds with
    each pair's conclusion, and every point's interval."""
    iv = results["intervals"]
    d = norm_label(iv["distance"])
    attacks = ", ".join(iv["attacks"])
    lines = ["## Certified intervals", "",
             (f"Per image, the minimum {d} distortion lies in [lower, upper]: lower is certified (`scd eval "
              f"intervals`, {iv['time_limit']} s of search per image after the certificate), upper is the closest "
              f"example confirmed on the model, over the attacks ({attacks}) and the certificate's own search "
              "(`certify: ...`). exact: the two meet (relative 1e-6). Only correctly classified images get intervals; "
              "a misclassified one would have lower = upper = 0."), "",
             (f"| model | images | median lower {d} | median upper {d} | exact | median upper / lower | "
              "upper found by | lower by | time |"), "|---|---|---|---|---|---|---|---|---|"]
    for name, m in iv["models"].items():
        pending = f" ({m['pending']} not yet)" if m["pending"] else ""
        found = ", ".join(f"{k} {v}" for k, v in sorted(m["upper_found_by"].items(), key=lambda kv: -kv[1]))
        methods = sorted({r["lower_method"] for r in m["rows"]})
        lower = _fmt(m["median_lower"]) if m["certified"] else "none"
        exact = f"{m['exact']}/{m['n']}" if m["certified"] else "n/a"
        lines.append(f"| {name} | {m['n']}{pending} | {lower} | {_fmt(m['median_upper'])} | "
                     f"{exact} | {_fmt(m['median_ratio'], 3)} | "
                     f"{found or 'none'} | {', '.join(methods)} | {m['seconds']:.0f} s |")
    for name, m in iv["models"].items():
        if not m["certified"] and m["reason"]:
            lines += ["", f"No certified bound for {name}: {m['reason']}"]
        if m["conflicts"]:
            lines += ["", (f"**{name}: on {m['conflicts']} image(s) the certified lower bound exceeds a confirmed "
                           "example's distance: a bug in a bound or in a distance, to investigate.**")]
    if iv["paired_tests"]:
        lines += ["", ("Paired tests on each bound separately (Wilcoxon signed-rank and paired t, two-sided, over "
                       "the images where both bounds are known), and what the intervals decide:"), "",
                  ("| a | b | lower: median a − b | lower: Wilcoxon p | upper: median a − b | upper: Wilcoxon p | "
                   "a provably harder | b provably harder | conclusion |"), "|---|---|---|---|---|---|---|---|---|"]
        for t in iv["paired_tests"]:
            lo, up, c = t["lower"] or {}, t["upper"], t["conclusion"]
            verdict = f"{c['verdict']} harder (confirmed)" if c["verdict"] else "cannot decide"
            lines.append(f"| {t['a']} | {t['b']} | {_fmt(lo.get('median_difference'))} | {_fmt(lo.get('wilcoxon_p'), 3)} | "
                         f"{_fmt(up['median_difference'])} | {_fmt(up['wilcoxon_p'], 3)} | "
                         f"{c['a_provably_harder']}/{c['n']} | {c['b_provably_harder']}/{c['n']} | {verdict} |")
        lines += [""] + [f"* {t['conclusion']['text']}" for t in iv["paired_tests"]]
    lines += ["", f"| model | image | lower {d} | lower by | best upper {d} | found by | gap | upper / lower | exact |",
              "|---|---|---|---|---|---|---|---|---|"]
    for name, m in iv["models"].items():
        for r in m["rows"]:
            lower = "inf" if r["lower_is_inf"] else _fmt(r["lower"]) if m["certified"] else "none"
            upper = "none found" if r["upper"] is None else _fmt(r["upper"])
            lines.append(f"| {name} | {r['index']} | {lower} | {r['lower_method']} | {upper} | {r['upper_by'] or '-'} | "
                         f"{_fmt(r['gap'])} | {_fmt(r['ratio'], 3)} | {'yes' if r['exact'] else 'no'} |")
    return lines


def accuracy_figure(plt: Any, results: dict[str, Any]) -> Any:
    """Robust accuracy from the attacks (solid; an upper bound) and certified accuracy (dashed;
    a lower bound) against ε, every model in its colour on one plot."""
    from .report import _panels, dataset_label  # the run's plot conventions

    iv = results["intervals"]
    n = iv["n_points"]
    d = norm_label(iv["distance"])
    title = (f"Robust accuracy (attacks: an upper bound) and certified accuracy (a lower bound) against ε\n"
             f"{dataset_label(results['config']['data'])} · {d} · attacks: {', '.join(iv['attacks'])} and the "
             f"certificate's search · n = {n} images")
    fig, (ax,) = _panels(plt, title, width=7.0)
    # a log ε axis: the bounds of different models lie orders of magnitude apart (interval
    # propagation's lower bounds, a stalled attack's upper ones); every curve is 1 below its
    # smallest bound, so the grid's ε = 0 is left out
    eps = np.asarray(iv["curves"]["eps"])
    shown = eps > 0
    for i, (name, curve) in enumerate(iv["curves"]["models"].items()):
        if curve is None:
            continue
        # wide and light under a thin dashed line, so that the certified curve shows where they coincide (exact)
        ax.plot(eps[shown], np.asarray(curve["robust"])[shown], "-", drawstyle="steps-post", color=f"C{i}", lw=3,
                alpha=0.45, label=f"{name}: attacks")
        if curve["certified"] is not None:
            ax.plot(eps[shown], np.asarray(curve["certified"])[shown], "--", drawstyle="steps-post", color=f"C{i}",
                    lw=1.5, label=f"{name}: certified")
        else:
            ax.plot([], [], " ", label=f"{name}: no certified bound")
    ax.set_ylim(-0.02, 1.02)
    if shown.any():
        ax.set_xscale("log")
        ax.set_xlim(eps[shown][0] / 1.5, eps[-1])
    ax.set_xlabel(f"{d} budget ε (log scale)")
    ax.set_ylabel(f"accuracy on the n = {n} images\n(correctly classified by every model)")
    ax.legend(fontsize=7, ncol=2)
    return fig
