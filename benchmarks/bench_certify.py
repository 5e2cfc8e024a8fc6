"""Certified intervals [lower, upper] for SCD01 sub-ensembles on CIFAR-10 0 vs 1, next to
HopSkipJump (L2) and RayS (L∞) distances (issue #27's benchmark).

    python benchmarks/bench_certify.py --model runs/models/scd01_cifar_100v.scd [--votes 1,5,20,100] [--n 10] \\
        [--time-limit 10] [--hsj-iters 20] [--hsj-queries 20000] [--rays-queries 5000] [--structure 0] \\
        [--refresh-bounds]
    python benchmarks/bench_certify.py --checkpoint runs/models/scd01_cifar_100v.scd.ckpt --votes 1,5,20

For each size ``k`` the model's first ``k`` votes (``model.members(range(k))``) are measured on
the first ``--n`` test images that sub-ensemble classifies correctly: per image and per norm
(L∞, L2) ``scd.certify.certify`` with ``--time-limit`` seconds of search, and the certificate
alone (``time_limit=0``) with its time; HopSkipJump's L2 and RayS's L∞ distance; optionally
the structure attack (``--structure S`` seconds, 0: skipped; a rerun with it adds it to the
images already measured).  ``--refresh-bounds`` re-measures the intervals and certificates of
images measured by an older generation of the bounds code (``BOUNDS_VERSION``), and those named
by ``--remeasure I,J`` (on a quieter machine, say), keeping their attack results.  ``--checkpoint`` reads the finished votes of a training checkpoint
instead of a model file.

The record of size ``k`` is ``benchmarks/results/certify_cifar_<k>v.json``, rewritten
atomically after every image; a rerun with the same settings and the same votes (weights
fingerprint) skips the images it already holds; other settings stop with an error unless
``--restart``.  Any certified lower bound above an attack's distance would be a soundness bug:
it is printed as ``SOUNDNESS VIOLATION`` and recorded.  ``docs/benchmarks.md`` is regenerated
at the end.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from bench_train import RESULTS, data_dir, machine  # noqa: E402
from attacks import HopSkipJump, RayS  # noqa: E402
from eval.datasets import load_dataset  # noqa: E402
from eval.io import atomic_write_bytes  # noqa: E402
from scd.certify import certify  # noqa: E402

NORMS = {"inf": "linf", "2": "l2"}  # certify's norm -> the attack distance it is compared with
# The bounds' code generation: --refresh-bounds re-measures the intervals of images measured
# with an older one (the attacks stay).  2: the joint-crossing bound (scd.certify._gram); 3: it also
# bounds the nodes of the branch and bound, and the L2 leaf searches its line exactly; 4: the
# Gram eigenvalue bound proven by a Cholesky factorisation (one BLAS thread); 5: tie leaves bounded
# by the multipliers of their own rows; 6: no tie nodes in the branch and bound, one BLAS thread
# for the whole bound, the joint-crossing bound for soft voting; 7: the L∞ and L1 leaves in one
# persistent HiGHS model per image (about 4 times the nodes), dives for closer adversarial points.
BOUNDS_VERSION = 7
_WEIGHTS = ("W1", "b1", "w2", "b2")


def from_checkpoint(path: str):
    """The SCD01 ensemble of a training checkpoint's finished votes (in vote order), and
    their indices: the checkpoint is a zip of ``W1.npy, b1.npy, w2.npy, b2.npy, done.npy``."""
    import scd

    with zipfile.ZipFile(path) as z:
        arrays = {n[:-4]: np.lib.format.read_array(z.open(n)) for n in z.namelist() if n.endswith(".npy")}
        meta = json.loads(z.read("metadata.json"))
    if meta.get("variant", ["01", False]) != ["01", False]:
        raise SystemExit(f"{path}: --checkpoint reads SCD01 checkpoints only; this one is {meta['variant']}.")
    known = scd.SCD01().get_params()
    params = {k: v for k, v in meta.get("params", {}).items() if k in known}
    done = np.flatnonzero(arrays["done"])
    model = scd.SCD01(**{**params, "n_votes": len(done)})
    for name in _WEIGHTS:
        setattr(model, f"{name}_", np.ascontiguousarray(arrays[name][done]))
    model.W1_.flags.writeable = False
    model.vote_scores_ = np.zeros(len(done))
    model.best_index_, model.n_votes_resumed_ = 0, 0
    model.classes_, model.n_features_in_ = np.array([0, 1]), model.W1_.shape[1]
    return model, done


def fingerprint(model) -> str:
    """A short hash of an ensemble's weights: the same votes give the same records, whether
    they came from the model file or from its training checkpoint."""
    h = hashlib.sha256()
    for name in _WEIGHTS:
        h.update(np.ascontiguousarray(getattr(model, f"{name}_")).tobytes())
    return h.hexdigest()[:16]


def _interval(model, x, y, norm: str, time_limit: float) -> dict:
    bound = certify(model, x[None], np.array([y]), norm=norm, bounds=(0.0, 1.0), time_limit=time_limit)[0]
    return bound.record()


def _distance(value) -> float | None:
    return float(value) if np.isfinite(value) else None


def measure_bounds(model, x: np.ndarray, y: int, entry: dict, time_limit: float) -> None:
    """The interval (``time_limit`` seconds of search) and the certificate alone, per norm."""
    for norm in NORMS:
        entry[f"interval_{norm}"] = _interval(model, x, y, norm, time_limit)
        entry[f"certificate_{norm}"] = _interval(model, x, y, norm, 0)
    entry["bounds_version"] = BOUNDS_VERSION


def measure_image(model, x: np.ndarray, y: int, index: int, args: argparse.Namespace) -> dict:
    """Every measurement of one image: intervals and certificates per norm, then the attacks."""
    entry = {"index": int(index)}
    measure_bounds(model, x, y, entry, args.time_limit)
    hsj = HopSkipJump(norm=2, max_iter=args.hsj_iters, init_size=args.hsj_init)(
        model, x[None], np.array([y]), bounds=(0.0, 1.0), seed=0, max_queries=args.hsj_queries,
        sample_ids=np.array([index]))
    rays = RayS()(model, x[None], np.array([y]), bounds=(0.0, 1.0), seed=0, max_queries=args.rays_queries,
                  sample_ids=np.array([index]))
    entry["hsj"] = {"l2": _distance(hsj.l2[0]), "success": bool(hsj.success[0]), "queries": int(hsj.queries[0]),
                    "seconds": hsj.seconds}
    entry["rays"] = {"linf": _distance(rays.linf[0]), "success": bool(rays.success[0]),
                     "queries": int(rays.queries[0]), "seconds": rays.seconds}
    entry["violations"] = violations(entry)
    return entry


def measure_structure(model, x: np.ndarray, y: int, entry: dict, time_limit: float) -> None:
    """Add the structure attack's L∞ and L2 distances to an image's ``entry`` (an add-on: a
    rerun with ``--structure`` fills it into images measured without it)."""
    from attacks.structure import StructureAttack

    entry["structure"] = {"time_limit": time_limit}
    for norm, key in NORMS.items():
        r = StructureAttack(norm=norm, time_limit=time_limit)(model, x[None], np.array([y]), bounds=(0.0, 1.0),
                                                              seed=0, sample_ids=np.array([entry["index"]]))
        entry["structure"][key] = {"distance": _distance(getattr(r, key)[0]), "seconds": r.seconds,
                                   "queries": int(r.queries[0])}
    entry["violations"] = violations(entry)


def violations(entry: dict) -> list[str]:
    """The attack distances below a certified lower bound (each one a soundness bug)."""
    found = []
    attacks = [("hsj", "l2", entry["hsj"]["l2"]), ("rays", "linf", entry["rays"]["linf"])]
    attacks += [("structure", k, entry["structure"][k]["distance"]) for k in NORMS.values() if "structure" in entry]
    for name, key, dist in attacks:
        norm = {v: k for k, v in NORMS.items()}[key]
        for kind in ("interval", "certificate"):
            lower = entry[f"{kind}_{norm}"]["lower"]
            if dist is not None and lower is not None and lower > dist:
                found.append(f"image {entry['index']}: {kind} lower {lower:.6g} > {name} {key} {dist:.6g}")
    return found


def summarise(images: list[dict]) -> dict:
    """Per norm: medians of lower, upper, upper/lower, seconds; the exact count; the attacks'
    medians; whether every lower bound is at most every attack distance.  A missing upper bound
    (no example found) counts as infinite in the medians; an infinite median is ``None``."""
    med = lambda vals: float(np.median(vals)) if vals else None  # noqa: E731
    finite = lambda v: v if v is not None and np.isfinite(v) else None  # noqa: E731
    out = {"n": len(images)}
    for norm, key in NORMS.items():
        iv = [e[f"interval_{norm}"] for e in images]
        cert = [e[f"certificate_{norm}"] for e in images]
        upper = [np.inf if b["upper"] is None else b["upper"] for b in iv]  # None: no example found
        ratios = [u / b["lower"] for u, b in zip(upper, iv) if b["lower"]]
        out[key] = {"median_lower": med([b["lower"] for b in iv if b["lower"] is not None]),
                    "median_upper": finite(med(upper)), "median_ratio": finite(med(ratios)),
                    "upper_found": sum(b["upper"] is not None for b in iv), "exact": sum(b["exact"] for b in iv),
                    "complete": sum(b["complete"] for b in iv),
                    "median_seconds": med([b["seconds"] for b in iv]),
                    "median_certificate": med([b["lower"] for b in cert if b["lower"] is not None]),
                    "median_certificate_seconds": med([b["seconds"] for b in cert]),
                    "max_certificate_seconds": max((b["seconds"] for b in cert), default=None)}
    out["hsj_median_l2"] = med([e["hsj"]["l2"] for e in images if e["hsj"]["l2"] is not None])
    out["rays_median_linf"] = med([e["rays"]["linf"] for e in images if e["rays"]["linf"] is not None])
    out["hsj_success"] = sum(e["hsj"]["success"] for e in images)
    out["rays_success"] = sum(e["rays"]["success"] for e in images)
    for key in NORMS.values():
        found = [e["structure"][key] for e in images if "structure" in e]
        if found:
            out[f"structure_median_{key}"] = med([v["distance"] for v in found if v["distance"] is not None])
            out[f"structure_success_{key}"] = sum(v["distance"] is not None for v in found)
            out[f"structure_median_seconds_{key}"] = med([v["seconds"] for v in found])
            out["structure_images"] = len(found)
    out["violations"] = [v for e in images for v in e["violations"]]
    out["lower_below_attacks"] = not out["violations"]
    return out


def _settings(args: argparse.Namespace) -> dict:
    return {"time_limit": args.time_limit, "hsj_iters": args.hsj_iters, "hsj_init_size": args.hsj_init,
            "hsj_max_queries": args.hsj_queries, "hsj_theta": "paper", "rays_max_queries": args.rays_queries,
            "seed": 0, "bounds": [0.0, 1.0]}


def run_size(full, k: int, source: dict, ds, args: argparse.Namespace) -> dict:
    """Measure (or resume) the first ``k`` votes; returns the record, written after every image."""
    model = full.members(range(k))
    path = Path(args.results) / f"certify_cifar_{k}v.json"
    settings, key = _settings(args), fingerprint(model)
    record = json.loads(path.read_text()) if path.exists() and not args.restart else None
    if record and (record["settings"] != settings or record["weights"] != key):
        raise SystemExit(f"{path} holds a run with other settings or other votes; pass --restart to replace it, "
                         "or --results elsewhere.")
    if not record:
        record = {"dataset": "cifar10 0 vs 1", "votes": k, "weights": key, "settings": settings, "images": [],
                  "runs": []}
    run = {"command": " ".join(["python", "benchmarks/" + Path(__file__).name, *sys.argv[1:]]), "source": source,
           "machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M"), "structure_time_limit": args.structure,
           "bounds_version": BOUNDS_VERSION}
    correct = np.flatnonzero(model.predict(ds.x_test) == ds.y_test)[: args.n]
    by_index = {e["index"]: e for e in record["images"]}
    for i in correct:
        if int(i) in by_index:
            entry = by_index[int(i)]
            stale = entry.get("bounds_version", 1) != BOUNDS_VERSION or int(i) in args.remeasure
            if args.refresh_bounds and stale:
                measure_bounds(model, ds.x_test[i], int(ds.y_test[i]), entry, args.time_limit)
                entry["violations"] = violations(entry)
                _report_violations(k, entry)
                _write(path, record, run)
                print(k, int(i), "bounds", json.dumps({n: entry[f"interval_{n}"] for n in NORMS}), flush=True)
            if args.structure > 0 and entry.get("structure", {}).get("time_limit") != args.structure:
                measure_structure(model, ds.x_test[i], int(ds.y_test[i]), entry, args.structure)
                _report_violations(k, entry)
                _write(path, record, run)
                print(k, int(i), "structure", json.dumps(entry["structure"]), flush=True)
            continue
        entry = measure_image(model, ds.x_test[i], int(ds.y_test[i]), int(i), args)
        if args.structure > 0:
            measure_structure(model, ds.x_test[i], int(ds.y_test[i]), entry, args.structure)
        _report_violations(k, entry)
        record["images"].append(entry)
        _write(path, record, run)
        print(k, json.dumps({n: {f: entry[f"interval_{n}"][f] for f in ("lower", "upper", "exact", "seconds")}
                             for n in NORMS} | {"hsj": entry["hsj"]["l2"], "rays": entry["rays"]["linf"]}),
              flush=True)
    if record["images"]:
        model_file = source.get("model")
        if model_file and all(r["source"].get("model") != model_file for r in record["runs"]):
            record["same_votes_as"] = model_file  # measured on a checkpoint whose votes the model file holds
        _write(path, record)  # a finished record gets the current summary too
    return record


def _report_violations(k: int, entry: dict) -> None:
    for v in entry["violations"]:
        print(f"SOUNDNESS VIOLATION ({k} votes): {v}", flush=True)


def _write(path: Path, record: dict, run: dict | None = None) -> None:
    """Sort the images, summarise them and replace the record atomically; ``run``: the
    invocation that has just measured something (each one is listed once, in order)."""
    if run is not None and run not in record["runs"]:
        record["runs"].append(run)
    record["images"].sort(key=lambda e: e["index"])
    record["summary"] = summarise(record["images"])
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, json.dumps(record, indent=1).encode())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", help="a saved SCD ensemble")
    src.add_argument("--checkpoint", help="a training checkpoint (its finished votes)")
    parser.add_argument("--votes", default="1,5,20,100", help="ensemble sizes: the first k votes")
    parser.add_argument("--n", type=int, default=10, help="images per size")
    parser.add_argument("--time-limit", type=float, default=10.0, help="certify's search seconds per image and norm")
    parser.add_argument("--hsj-iters", type=int, default=20)
    parser.add_argument("--hsj-init", type=int, default=100, help="HopSkipJump's initial pool")
    parser.add_argument("--hsj-queries", type=int, default=20000)
    parser.add_argument("--rays-queries", type=int, default=5000)
    parser.add_argument("--structure", type=float, default=0.0,
                        help="structure attack seconds per image and norm (0: skipped); added to finished images too")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--results", default=str(RESULTS), help="where the records go")
    parser.add_argument("--restart", action="store_true", help="replace the records instead of resuming them")
    parser.add_argument("--refresh-bounds", action="store_true",
                        help="re-measure the intervals of held images measured by older bounds code (attacks kept)")
    parser.add_argument("--remeasure", type=lambda v: {int(i) for i in v.split(",")}, default=set(),
                        help="with --refresh-bounds: also these test indices (comma-separated), whatever their code")
    parser.add_argument("--no-report", action="store_true", help="do not regenerate docs/benchmarks.md")
    args = parser.parse_args()

    ds = load_dataset("cifar10", data_dir=data_dir(args.data_dir))
    if args.model:
        import scd

        full, source = scd.load(args.model), {"model": args.model}
    else:
        full, finished = from_checkpoint(args.checkpoint)
        source = {"checkpoint": args.checkpoint, "finished_votes": len(finished)}
    for k in (int(v) for v in args.votes.split(",")):
        if k > full.n_votes:
            print(f"skipping {k} votes: the ensemble has {full.n_votes}", flush=True)
            continue
        record = run_size(full, k, {**source, "votes_used": list(range(k)) if args.model else
                                    [int(i) for i in finished[:k]]}, ds, args)
        print(k, "summary", json.dumps(record.get("summary")), flush=True)
    if not args.no_report:
        from report import write_report

        write_report()


if __name__ == "__main__":
    main()
