"""Train one SCD variant on CIFAR-10 classes 0 vs 1 with the paper's settings; record accuracy and time.

    python benchmarks/bench_train.py --variant SCD01 --votes 100 [--iters 1000] [--jobs -1]

Writes ``benchmarks/results/train_<variant>_<votes>v_<iters>it[_seed<S>].json`` (the suffix for
seeds other than 0; the model next to it as ``.scd``, not committed) and regenerates
``docs/benchmarks.md`` with ``benchmarks/report.py``.
The data is ``cifar10_01.npz`` from ``--data-dir`` (default: the shared data folder beside the
checkout, else ``$SCD_DATA_DIR``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import scd  # noqa: E402
from eval.datasets import load_dataset  # noqa: E402
from eval.io import atomic_write_bytes  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
SHARED_DATA = ROOT.parent / "shared" / "data"


def data_dir(arg: str | None) -> str | None:
    if arg:
        return arg
    return str(SHARED_DATA) if (SHARED_DATA / "cifar10_01.npz").exists() else None


def machine() -> dict:
    return {"cpu_count": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def commit() -> str:
    """The git commit of the code measured (with "+" when tracked files have changes), or "unknown"."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()

    try:
        return git("rev-parse", "--short", "HEAD") + ("+" if git("status", "--porcelain", "--untracked-files=no") else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", choices=["SCD01", "SCDCE", "SCD01BNN", "SCDCEBNN"], required=True)
    parser.add_argument("--votes", type=int, default=100)
    parser.add_argument("--iters", type=int, default=None, help="default: 1000, or 10000 for the BNN variants")
    parser.add_argument("--jobs", type=int, default=-1)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()

    ds = load_dataset("cifar10", data_dir=data_dir(args.data_dir))
    cls = getattr(scd, args.variant)
    iters = args.iters or cls().n_iters
    name = f"train_{args.variant}_{args.votes}v_{iters}it" + (f"_seed{args.seed}" if args.seed else "")
    RESULTS.mkdir(parents=True, exist_ok=True)
    ckpt = RESULTS / f"{name}.ckpt"
    model = cls(n_votes=args.votes, n_iters=iters, random_state=args.seed, device=args.device,
                n_jobs=args.jobs, checkpoint=str(ckpt), verbose=1)
    resume = ckpt.exists()
    model.fit(ds.x_train, ds.y_train, resume=resume)
    start = time.perf_counter()
    test_acc = model.score(ds.x_test, ds.y_test)
    predict_s = time.perf_counter() - start
    member_acc = [float(np.mean(model.predict(ds.x_test, member=i) == ds.y_test)) for i in range(args.votes)]
    record = {
        "variant": args.variant, "votes": args.votes, "iters": iters, "seed": args.seed, "jobs": args.jobs,
        "dataset": "cifar10 0 vs 1", "n_train": len(ds.x_train), "n_test": len(ds.x_test),
        "train_accuracy": float(model.score(ds.x_train, ds.y_train)), "test_accuracy": float(test_acc),
        "voting": model.voting_, "member_test_accuracy_mean": float(np.mean(member_acc)),
        "best_member_test_accuracy": member_acc[model.best_index_],
        "fit_seconds": model.fit_time_, "resumed": resume,
        "votes_from_checkpoint": model.n_votes_resumed_, "predict_seconds_test": predict_s,
        "command": " ".join(["python", "benchmarks/" + Path(__file__).name, *sys.argv[1:]]),
        "machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    if model.n_votes > 1 and model.voting_ == "soft":
        hard = model.set_params(voting="hard").score(ds.x_test, ds.y_test)
        record["test_accuracy_hard_vote"] = float(hard)
        model.set_params(voting="auto")
    model.save(RESULTS / f"{name}.scd")
    ckpt.unlink(missing_ok=True)
    atomic_write_bytes(RESULTS / f"{name}.json", json.dumps(record, indent=1).encode())
    print(json.dumps(record, indent=1))
    from report import write_report

    write_report()


if __name__ == "__main__":
    main()
