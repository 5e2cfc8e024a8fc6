"""White-box adaptive attack on an SCD ensemble: PGD through the smooth relaxation (CIFAR-10 0 vs 1).

    python benchmarks/bench_smooth.py --model benchmarks/results/train_SCD01_100v_1000it.scd [--n 100]

The ensemble's own weights with each sign relaxed to ``tanh(pre / T)`` (and each vote's step to
``sigmoid(z / T)``) give the gradient; labels and the final check come from the real ensemble
(:class:`attacks.surrogate.SurrogateGradients`).  L∞ PGD, 20 steps, random start, on the first
``--n`` test images the ensemble classifies correctly, at several budgets and temperatures.
Writes ``benchmarks/results/smooth_cifar.json`` and regenerates ``docs/benchmarks.md``.
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
from attacks import PGD  # noqa: E402
from attacks.surrogate import SurrogateGradients, smooth_scd  # noqa: E402
from eval.baselines import load_model  # noqa: E402
from eval.datasets import load_dataset  # noqa: E402
from eval.io import atomic_write_bytes  # noqa: E402

EPS = [0.015625, 0.03125, 0.0625, 0.125]
TEMPERATURES = [0.05, 0.1, 0.2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()

    ds = load_dataset("cifar10", data_dir=data_dir(args.data_dir))
    model = load_model(args.model)
    idx = np.flatnonzero(model.predict(ds.x_test) == ds.y_test)[: args.n]
    x, y = ds.x_test[idx], ds.y_test[idx]
    record = {"model": args.model, "members": model.n_votes, "n": len(idx), "steps": args.steps, "eps": EPS,
              "runs": [], "command": " ".join(["python", "benchmarks/" + Path(__file__).name, *sys.argv[1:]]),
              "machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M")}
    for t in TEMPERATURES:
        pair = SurrogateGradients(model, smooth_scd(model, t, t), "smooth")
        agreement = pair.agreement(ds.x_test)
        rates = []
        for eps in EPS:
            result = PGD(eps=eps, steps=args.steps)(pair, x, y, bounds=(0.0, 1.0), seed=0, sample_ids=idx)
            rates.append(float(result.success.mean()))
        record["runs"].append({"temperature": t, "agreement": agreement, "success_rate": rates})
        print(json.dumps(record["runs"][-1]), flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(RESULTS / "smooth_cifar.json", json.dumps(record, indent=1).encode())
    from report import write_report

    write_report()


if __name__ == "__main__":
    main()
