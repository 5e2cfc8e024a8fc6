"""Our HopSkipJump and Boundary Attack against ART's, at equal queries, from the same starting points.

    python benchmarks/bench_attacks_art.py [--n 20] [--hsj-iters 50] [--boundary-iters 200] [--models rf,scd]

On the embedded ``digits`` pair, for a 100-tree random forest and a 100-vote SCD01 ensemble,
the first ``--n`` test points both classify correctly are attacked untargeted in L2:

* starting points: the nearest training image the model labels differently, projected to
  the boundary (HopSkipJump with ``max_iter=0``), given to both libraries (ART's own
  initialisation cannot be seeded, and uniform noise falls in one class for some models);
* ART ``HopSkipJump(max_iter=T)`` and ours in the ART-compatible setting (``theta="art"``,
  same T); ART ``BoundaryAttack(targeted=False, max_iter=B)`` and ours (foolbox-style);
* every query of both goes through :class:`attacks.Oracle`, one sample at a time for ART
  (it loops over samples anyway), so queries are counted the same way;
* "at equal queries": our best distance for sample i after at most the number of queries ART
  used on sample i (read off our budget curve), so ours is never given more queries.

Writes ``benchmarks/results/attacks_art.json`` and regenerates ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from bench_train import RESULTS, machine  # noqa: E402
from attacks import Boundary, HopSkipJump, Oracle  # noqa: E402
from attacks.base import nearest_other_class  # noqa: E402
from attacks.art_adapter import art_generate, to_art_classifier  # noqa: E402
from eval.io import atomic_write_bytes  # noqa: E402

BOX = (0.0, 1.0)


def models(names: list[str], x: np.ndarray, y: np.ndarray, seed: int) -> dict:
    import scd
    from eval.baselines import RandomForestEnsemble

    built = {}
    if "rf" in names:
        built["rf"] = RandomForestEnsemble(n_votes=100, random_state=seed).fit(x, y)
    if "scd" in names:
        built["scd"] = scd.SCD01(n_votes=100, random_state=seed, verbose=0).fit(x, y)
    return built


def compare(model, x, ours_attack, art_attack_factory, start, seed) -> dict:
    """Run ART then ours from ``start`` (ours capped at ART's largest per-sample query count);
    our distances are read at ART's per-sample query counts."""
    art_oracle = Oracle(model, bounds=BOX)
    classifier = to_art_classifier(art_oracle, output="labels")
    t0 = time.perf_counter()
    art_adv, _ = art_generate(art_attack_factory(classifier), x, x_adv_init=start)
    art_seconds = time.perf_counter() - t0
    art_queries = art_oracle.queries(np.arange(len(x)))
    art_calls = art_oracle.summary()["calls"]
    clean = art_oracle.confirm(x)
    art_success = art_oracle.confirm(art_oracle.clip(art_adv)) != clean
    art_l2 = np.linalg.norm(art_adv.astype(np.float64) - x, axis=1)

    t0 = time.perf_counter()
    our_oracle = Oracle(model, bounds=BOX, budget=int(art_queries.max()))
    ours = ours_attack(our_oracle, x, seed=seed, starting_points=start)
    our_seconds = time.perf_counter() - t0
    at_equal = ours.distance_at(art_queries)
    ok_art = art_success
    ok_ours = ours.success & np.isfinite(at_equal)
    return {
        "art": {"success_rate": float(ok_art.mean()), "median_l2": float(np.median(art_l2[ok_art])),
                "median_queries": float(np.median(art_queries)), "model_calls": int(art_calls),
                "seconds": art_seconds},
        "ours_at_art_queries": {"success_rate": float(ok_ours.mean()), "median_l2": float(np.median(at_equal[ok_ours]))},
        "ours_full_run": {"success_rate": float(ours.success.mean()), "median_l2": float(np.nanmedian(ours.l2)),
                          "median_queries": float(np.median(ours.queries)), "model_calls": int(our_oracle.summary()["calls"]),
                          "seconds": our_seconds},
        "l2_ratio_ours_over_art": float(np.median(at_equal[ok_ours]) / np.median(art_l2[ok_art])),
        "speedup_wall": art_seconds / our_seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--hsj-iters", type=int, default=50)
    parser.add_argument("--boundary-iters", type=int, default=200)
    parser.add_argument("--models", default="rf,scd")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    from art.attacks.evasion import BoundaryAttack
    from art.attacks.evasion import HopSkipJump as ArtHopSkipJump

    from eval.datasets import load_dataset

    ds = load_dataset("digits")
    built = models(args.models.split(","), ds.x_train, ds.y_train, args.seed)
    correct = np.ones(len(ds.x_test), bool)
    for model in built.values():
        correct &= model.predict(ds.x_test) == ds.y_test
    idx = np.flatnonzero(correct)[: args.n]
    x = ds.x_test[idx]
    record = {"dataset": f"digits {ds.classes}", "indices": idx.tolist(), "n": len(idx), "hsj_iters": args.hsj_iters,
              "boundary_iters": args.boundary_iters, "command": " ".join(["python", "benchmarks/" + Path(__file__).name,
                                                                          *sys.argv[1:]]),
              "machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M"), "models": {}}
    for name, model in built.items():
        init = HopSkipJump(max_iter=0)(model, x, bounds=BOX, seed=args.seed,
                                                     starting_points=nearest_other_class(
                                                         x, ds.x_train, model.predict(x), model.predict(ds.x_train)))
        start = init.x_adv
        assert init.success.all(), "initialisation failed for some sample"
        hsj = compare(model, x, HopSkipJump(theta="art", max_iter=args.hsj_iters),
                      lambda c: ArtHopSkipJump(c, targeted=False, norm=2, max_iter=args.hsj_iters, max_eval=10000,
                                               init_eval=100, init_size=100, verbose=False), start, args.seed)
        print(name, "hsj", json.dumps(hsj), flush=True)

        def art_boundary(c):
            return BoundaryAttack(c, targeted=False, max_iter=args.boundary_iters, verbose=False)

        boundary = compare(model, x, Boundary(steps=100000), art_boundary, start, args.seed)
        print(name, "boundary", json.dumps(boundary), flush=True)
        record["models"][name] = {"hsj": hsj, "boundary": boundary, "init_median_l2": float(np.median(init.l2))}
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(RESULTS / "attacks_art.json", json.dumps(record, indent=1).encode())
    from report import write_report

    write_report()


if __name__ == "__main__":
    main()
