"""HopSkipJump minimum L2 on CIFAR-10 0 vs 1 for saved models, with the SCD paper's protocol.

    python benchmarks/bench_attack_cifar.py --model scd01=benchmarks/results/train_SCD01_100v_1000it.scd \\
        --model mlp=benchmarks/results/baseline_mlp_20v.model [--n 10] [--iters 100] [--init-size 1000] [--runs 1]

The first ``--n`` test images that every model classifies correctly are attacked untargeted
in L2 with HopSkipJump (paper θ, geometric steps, initial pool ``--init-size``, ``--iters``
iterations; an image whose uniform draws never leave its class starts from the nearest
training image the model puts in the other class instead).  With ``--runs R`` each image is attacked R
times with different seeds and the smallest distortion is kept (the paper's "best of
several runs").  Writes
``benchmarks/results/attack_cifar_hsj.json`` and regenerates ``docs/benchmarks.md``.
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

from bench_train import RESULTS, data_dir, machine  # noqa: E402
from attacks import HopSkipJump  # noqa: E402
from attacks.base import nearest_other_class  # noqa: E402
from eval.baselines import load_model  # noqa: E402
from eval.datasets import load_dataset  # noqa: E402
from eval.io import atomic_write_bytes  # noqa: E402

PAPER_L2 = {"scd01": 3.2, "scdce": 3.6, "mlp": 0.77, "bnn": 0.77, "rf": 1.91}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", required=True, help="NAME=PATH (repeatable)")
    parser.add_argument("--n", type=int, default=10)
    parser.add_argument("--iters", type=int, default=100)
    parser.add_argument("--init-size", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()

    ds = load_dataset("cifar10", data_dir=data_dir(args.data_dir))
    named = dict(spec.split("=", 1) for spec in args.model)
    loaded = {name: load_model(path) for name, path in named.items()}
    correct = np.ones(len(ds.x_test), bool)
    for model in loaded.values():
        correct &= model.predict(ds.x_test) == ds.y_test
    idx = np.flatnonzero(correct)[: args.n]
    x, y = ds.x_test[idx], ds.y_test[idx]
    record = {"dataset": "cifar10 0 vs 1", "indices": idx.tolist(), "iters": args.iters, "init_size": args.init_size,
              "runs": args.runs, "command": " ".join(["python", "benchmarks/" + Path(__file__).name, *sys.argv[1:]]),
              "machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M"), "models": {}}
    attack = HopSkipJump(norm=2, max_iter=args.iters, init_size=args.init_size)
    for name, model in loaded.items():
        best = np.full(len(idx), np.inf)
        queries = np.zeros(len(idx), np.int64)
        start = time.perf_counter()
        fallback = 0
        for run in range(args.runs):
            result = attack(model, x, y, bounds=(0.0, 1.0), seed=args.seed + run, sample_ids=idx, progress=True)
            l2, used = np.where(result.success, result.l2, np.inf), result.queries
            failed = np.flatnonzero(result.extra.get("init_failed", np.zeros(len(idx), bool)))
            if len(failed):  # uniform noise never left the class: start from the nearest other-class image
                fallback += len(failed)
                points = nearest_other_class(x[failed], ds.x_train, y[failed], model.predict(ds.x_train))
                again = attack(model, x[failed], y[failed], bounds=(0.0, 1.0), seed=args.seed + run,
                               sample_ids=idx[failed], starting_points=points, progress=True)
                l2[failed] = np.where(again.success, again.l2, np.inf)
                used[failed] += again.queries
            best = np.minimum(best, l2)
            queries += used
        seconds = time.perf_counter() - start
        ok = np.isfinite(best)
        entry = {"path": named[name], "members": int(getattr(model, "n_votes", 1)),
                 "success_rate": float(ok.mean()), "median_l2": float(np.median(best[ok])) if ok.any() else None,
                 "mean_l2": float(np.mean(best[ok])) if ok.any() else None,
                 "l2": [float(v) if np.isfinite(v) else None for v in best],
                 "median_queries_per_run": float(np.median(queries / args.runs)), "seconds": seconds,
                 "paper_l2": PAPER_L2.get(name.lower()), "nearest_image_starts": fallback}
        record["models"][name] = entry
        print(name, json.dumps({k: v for k, v in entry.items() if k != "l2"}), flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(RESULTS / "attack_cifar_hsj.json", json.dumps(record, indent=1).encode())
    from report import write_report

    write_report()


if __name__ == "__main__":
    main()
