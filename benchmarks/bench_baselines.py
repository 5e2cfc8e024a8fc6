"""Train one baseline on CIFAR-10 classes 0 vs 1; record clean accuracy and training time per member.

    python benchmarks/bench_baselines.py --model mlp|bnn|rf|cnn [--votes N] [--epochs E] [--jobs J]
    python benchmarks/bench_baselines.py --model mlp --votes 100 --grow benchmarks/results/baseline_mlp_20v.model

Settings are the package defaults (the reference's, see README "Baselines"); ``--votes``
defaults to the model's own default.  Writes ``benchmarks/results/baseline_<model>_<votes>v.json`` (and the model next to it as
``.model``, not committed, for the attack benchmarks) and regenerates ``docs/benchmarks.md``.  The data is ``cifar10_01.npz`` from ``--data-dir``
(default: the shared data folder beside the checkout, else ``$SCD_DATA_DIR``).
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
from eval.baselines import BASELINES  # noqa: E402
from eval.datasets import load_dataset  # noqa: E402
from eval.io import atomic_write_bytes  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=sorted(BASELINES), required=True)
    parser.add_argument("--votes", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=None, help="bnn, cnn (default: the class default)")
    parser.add_argument("--jobs", type=int, default=None, help="mlp, rf: joblib workers")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--grow", default=None, metavar="MODEL",
                        help="mlp: keep the members of this saved ensemble and train only the rest (warm_start; "
                             "the same ensemble as a fresh fit with the same seed)")
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()

    ds = load_dataset("cifar10", data_dir=data_dir(args.data_dir))
    cls = BASELINES[args.model]
    params = {"random_state": args.seed}
    if args.votes:
        params["n_votes"] = args.votes
    if args.epochs and "epochs" in cls().get_params():
        params["epochs"] = args.epochs
    if args.jobs and "n_jobs" in cls().get_params():
        params["n_jobs"] = args.jobs
    if args.grow:
        from eval.baselines import load_model

        model = load_model(args.grow).set_params(warm_start=True, **{k: v for k, v in params.items()
                                                                      if k != "random_state"})
    else:
        model = cls(**params)
    model.fit(ds.x_train, ds.y_train)
    votes = model.n_votes
    member_acc = [float(np.mean(model.predict(ds.x_test, member=i) == ds.y_test)) for i in range(votes)]
    record = {
        "model": args.model, "estimator": type(model).__name__, "votes": votes,
        "params": {k: v for k, v in model.get_params().items() if isinstance(v, (int, float, str, type(None)))},
        "dataset": "cifar10 0 vs 1", "n_train": len(ds.x_train), "n_test": len(ds.x_test),
        "train_accuracy": float(model.score(ds.x_train, ds.y_train)),
        "test_accuracy": float(model.score(ds.x_test, ds.y_test)),
        "member_test_accuracy_mean": float(np.mean(member_acc)),
        "fit_seconds": model.fit_time_, "seconds_per_member": model.fit_time_ / votes,
        "command": " ".join(["python", "benchmarks/" + Path(__file__).name, *sys.argv[1:]]),
        "machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    model.save(RESULTS / f"baseline_{args.model}_{votes}v.model")
    atomic_write_bytes(RESULTS / f"baseline_{args.model}_{votes}v.json", json.dumps(record, indent=1).encode())
    print(json.dumps(record, indent=1))
    from report import write_report

    write_report()


if __name__ == "__main__":
    main()
