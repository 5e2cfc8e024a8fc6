"""Substitute-model attack (paper Figure 2) on CIFAR-10 0 vs 1 for saved models.

    python benchmarks/bench_substitute.py --model scd01=benchmarks/results/train_SCD01_100v_1000it.scd \\
        --model mlp=benchmarks/results/baseline_mlp_100v.model [--seeds 2019 2393 92382] [--rounds 20]

The reference protocol (``scd-reference.md`` section 5): the 2000 test images are permuted
with each seed, the first 200 are the substitute's seed set and the other 1800 are attacked
with their true labels; 3072-200-200-2 ReLU substitute, Adam lr 1e-4, 20 epochs per round,
``--rounds`` Jacobian-augmentation rounds with λ = 0.1 and a random sign per round, at most
6400 points; FGSM on the substitute at each L∞ budget, transferred; Gaussian noise of the
same L2 norm as the control.  Curves are averaged over seeds.  Models already in the JSON record
with the same settings are kept, so models can be added one run at a time.  Writes
``benchmarks/results/substitute_cifar.json``, ``docs/substitute_cifar.png`` (drawn by
:func:`eval.report.plot_substitute`, the plot of ``scd eval substitute``) and regenerates
``docs/benchmarks.md``.  ``scd eval substitute`` attacks only images that every model
classifies correctly, with one seed set for all seeds; this script keeps the reference's
protocol, which attacks all the other test images and draws a seed set per seed.
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
from attacks.substitute import substitute_attack  # noqa: E402
from eval.baselines import load_model  # noqa: E402
from eval.datasets import load_dataset  # noqa: E402
from eval.io import atomic_write_bytes  # noqa: E402
from eval.report import plot_substitute  # noqa: E402
from eval.suite import parse_models  # noqa: E402

EPS = [0.0, 0.015625, 0.03125, 0.0625, 0.09375, 0.125, 0.1875, 0.25]
PLOT = ROOT / "docs" / "substitute_cifar.png"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", required=True, metavar="NAME=PATH")
    parser.add_argument("--seeds", type=int, nargs="+", default=[2019, 2393, 92382])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seed-size", type=int, default=200)
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()

    ds = load_dataset("cifar10", data_dir=data_dir(args.data_dir))
    named = parse_models(args.model)
    record = {"eps": EPS, "seeds": args.seeds, "rounds": args.rounds, "epochs": args.epochs,
              "seed_size": args.seed_size, "models": {},
              "command": " ".join(["python", "benchmarks/" + Path(__file__).name, *sys.argv[1:]]),
              "machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M")}
    previous = RESULTS / "substitute_cifar.json"
    if previous.exists():
        old = json.loads(previous.read_text())
        if all(old.get(k) == record[k] for k in ("eps", "seeds", "rounds", "epochs", "seed_size")):
            record["models"] = {k: v for k, v in old["models"].items() if k not in named}
    for name, path in named.items():
        model = load_model(path)
        runs = []
        for seed in args.seeds:
            order = np.random.default_rng(seed).permutation(len(ds.x_test))
            seed_set, attacked = order[:args.seed_size], order[args.seed_size:]
            result = substitute_attack(model, ds.x_test[seed_set], ds.x_test[attacked], ds.y_test[attacked], EPS,
                                       bounds=(0.0, 1.0), seed=seed, rounds=args.rounds, epochs=args.epochs,
                                       progress=True)
            print(f"{name} seed {seed}: {result.seconds:.0f} s, {result.queries} queries\n{result.table()}", flush=True)
            runs.append(result.to_dict())
        record["models"][name] = {
            "path": path, "members": getattr(model, "n_votes", None),
            "adversarial_accuracy": np.mean([r["adversarial_accuracy"] for r in runs], axis=0).tolist(),
            "noise_accuracy": np.mean([r["noise_accuracy"] for r in runs], axis=0).tolist(),
            "substitute_accuracy": np.mean([r["substitute_accuracy"] for r in runs], axis=0).tolist(),
            "mean_l2": np.mean([r["mean_l2"] for r in runs], axis=0).tolist(),
            "agreement": float(np.mean([r["agreement"] for r in runs])),
            "queries": float(np.mean([r["queries"] for r in runs])),
            "seconds": float(np.sum([r["seconds"] for r in runs])), "runs": runs,
        }
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(RESULTS / "substitute_cifar.json", json.dumps(record, indent=1).encode())
    plot_substitute({name: {"eps": record["eps"], **entry} for name, entry in record["models"].items()}, PLOT,
                    title="Substitute-model attack, CIFAR-10 0 vs 1")
    from report import write_report

    write_report()


if __name__ == "__main__":
    main()
