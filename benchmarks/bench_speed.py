"""One SCD01 vote against scikit-learn's MLP with the paper's settings, the 100-vote training time,
and 100-vote prediction throughput.

    python benchmarks/bench_speed.py [--votes 10] [--model benchmarks/results/train_SCD01_100v_1000it.scd]

The trainings run in this process, one after the other, on CIFAR-10 0 vs 1 (10,000 x 3072),
with every core available to each, so their ratios are comparable even on a noisy machine.
``--votes K`` also trains a K-vote ensemble with one joblib worker per core, the setting of
``scd train --votes 100``: votes are independent and each worker trains one at a time, so the
100-vote time is ``100 / K`` times it (``--votes 100`` measures it directly).
Throughput is measured on a 100-vote SCD01 ensemble (the saved benchmark model if present,
otherwise the one-vote model's weights tiled to 100 votes: the cost does not depend on the
values) for batches of 1,000 test images, called directly and through the query-counted
``attacks.Oracle`` that every attack uses.  Writes ``benchmarks/results/speed.json`` and
regenerates ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.neural_network import MLPClassifier  # noqa: E402

import scd  # noqa: E402
from attacks import Oracle  # noqa: E402
from bench_train import RESULTS, data_dir, machine  # noqa: E402
from eval.datasets import load_dataset  # noqa: E402
from eval.io import atomic_write_bytes  # noqa: E402


def paper_mlp(seed: int) -> MLPClassifier:
    """The reference's MLP baseline (scd-reference.md section 4)."""
    return MLPClassifier((20,), activation="logistic", solver="sgd", alpha=1e-4, batch_size=200,
                         learning_rate="constant", learning_rate_init=0.01, max_iter=1000, shuffle=True,
                         random_state=seed, tol=1e-4, momentum=0.9, nesterovs_momentum=True,
                         n_iter_no_change=10)


def _median_seconds(fn, repeats: int = 7) -> float:
    """Median wall time of ``fn()`` after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(RESULTS / "train_SCD01_100v_1000it.scd"))
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--votes", type=int, default=10, help="also time a K-vote ensemble on every core (0: skip)")
    args = parser.parse_args()
    ds = load_dataset("cifar10", data_dir=data_dir(args.data_dir))

    mlp = paper_mlp(args.seed)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        mlp.fit(ds.x_train, ds.y_train)
    mlp_s = time.perf_counter() - start

    vote = scd.SCD01(n_votes=1, random_state=args.seed, device="cpu").fit(ds.x_train, ds.y_train)
    timed = {}
    if args.votes:
        group = scd.SCD01(n_votes=args.votes, random_state=args.seed, device="cpu", n_jobs=-1)
        group.fit(ds.x_train, ds.y_train)
        timed = {"ensemble_votes": args.votes, "ensemble_seconds": group.fit_time_,
                 "ensemble_test_accuracy": float(group.score(ds.x_test, ds.y_test)),
                 "estimated_100_vote_seconds": group.fit_time_ * 100 / args.votes}

    if Path(args.model).exists():
        ensemble = scd.load(args.model)
    else:
        ensemble = vote
        for name in ("W1_", "b1_", "w2_", "b2_", "vote_scores_"):
            setattr(ensemble, name, np.repeat(getattr(vote, name), 100, axis=0))
        ensemble.W1_.flags.writeable = False  # as after fit or load: the prediction layout is cached
    batch = ds.x_test[:1000]
    oracle = Oracle(ensemble, bounds=(0.0, 1.0), batch_size=len(batch))
    ids = np.arange(len(batch))
    per_batch = _median_seconds(lambda: ensemble.predict(batch))
    per_batch_oracle = _median_seconds(lambda: oracle.labels(batch, ids=ids))

    record = {
        "mlp_seconds": mlp_s, "mlp_iterations": int(mlp.n_iter_), "mlp_test_accuracy": float(mlp.score(ds.x_test, ds.y_test)),
        "scd_vote_seconds": vote.fit_time_, "scd_vote_test_accuracy": float(vote.score(ds.x_test, ds.y_test)),
        "ratio_scd_vote_over_mlp": vote.fit_time_ / mlp_s, **timed,
        "predict_votes": int(ensemble.W1_.shape[0]), "predict_batch": len(batch),
        "predict_ms_per_batch": per_batch * 1e3, "predict_qps": len(batch) / per_batch,
        "oracle_ms_per_batch": per_batch_oracle * 1e3, "oracle_qps": len(batch) / per_batch_oracle,
        "command": " ".join(["python", "benchmarks/" + Path(__file__).name, *sys.argv[1:]]),
        "machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    atomic_write_bytes(RESULTS / "speed.json", json.dumps(record, indent=1).encode())
    print(json.dumps(record, indent=1))
    from report import write_report

    write_report()


if __name__ == "__main__":
    main()
