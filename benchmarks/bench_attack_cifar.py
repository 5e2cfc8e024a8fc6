"""HopSkipJump minimum L2 on CIFAR-10 0 vs 1 for saved models, with the SCD paper's protocol: ``scd eval distortion``.

    python benchmarks/bench_attack_cifar.py --model scd01=benchmarks/results/train_SCD01_100v_1000it.scd \\
        --model mlp=benchmarks/results/baseline_mlp_20v.model [--n 10] [--iters 100] [--init-size 1000] [--runs 1] \\
        [--start nearest] [--out runs/bench_attack_cifar] [-- --jobs 2 ...]

Runs ``scd eval distortion`` (untargeted L2 HopSkipJump, paper θ, geometric steps, initial pool
``--init-size``, ``--iters`` iterations, best of ``--runs`` seeds per image) on ``--n`` test
images drawn with ``--seed`` among those every model classifies correctly, into the resumable
run directory ``--out`` (its report, plots and per-sample records stay there).  Arguments
after ``--`` go to ``scd eval distortion`` unchanged.  The run's summary is recorded as
``benchmarks/results/attack_cifar_hsj.json``, and ``docs/benchmarks.md`` is regenerated.
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

from bench_train import RESULTS, data_dir, machine  # noqa: E402
from eval.baselines import load_model  # noqa: E402
from eval.io import atomic_write_bytes  # noqa: E402
from eval.suite import parse_models  # noqa: E402


def _scd_eval_distortion(args: argparse.Namespace, passed_on: list[str]) -> dict:
    """Run ``scd eval distortion`` with the benchmark's settings; returns the run's ``results.json``."""
    from cli import main as scd

    argv = ["eval", "distortion", *(f"--model={m}" for m in args.model), "--data", "cifar10", "--classes", "0", "1",
            "--method", "hsj", "--norm", "2", "--n", str(args.n), "--iters", str(args.iters),
            "--init-size", str(args.init_size), "--runs", str(args.runs), "--start", args.start,
            "--seed", str(args.seed), "--out", args.out, *passed_on]
    folder = data_dir(args.data_dir)
    if folder:
        argv += ["--data-dir", folder]
    scd.main(argv, prog_name="scd", standalone_mode=False)
    return json.loads((Path(args.out) / "results.json").read_text())


def _record(results: dict, models: dict[str, str], args: argparse.Namespace) -> dict:
    """The benchmark record of a distortion run: its settings, and per model the success rate,
    median and mean minimum L2 (with the bootstrap interval of the mean), queries and time."""
    record = {"dataset": "cifar10 0 vs 1", "indices": results["config"]["points"], "iters": args.iters,
              "init_size": args.init_size, "runs": args.runs, "start": args.start, "run_dir": args.out,
              "command": " ".join(["python", "benchmarks/" + Path(__file__).name, *sys.argv[1:]]),
              "machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M"), "models": {}}
    for name, m in results["models"].items():
        record["models"][name] = {
            "path": models[name], "members": int(getattr(load_model(models[name]), "n_votes", 1)),
            "success_rate": m["success_rate"], "median_l2": m["median"], "mean_l2": m["mean"],
            "mean_l2_ci": m["mean_ci"], "l2": m["per_sample"], "median_queries_per_run": m["median_queries"],
            "seconds": m["seconds"]}
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", required=True, help="NAME=PATH (repeatable)")
    parser.add_argument("--n", type=int, default=10)
    parser.add_argument("--iters", type=int, default=100)
    parser.add_argument("--init-size", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--start", choices=["uniform", "nearest"], default="nearest",
                        help="uniform noise, or the nearest training image of the other class")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", default=str(ROOT / "runs" / "bench_attack_cifar"), help="the run directory")
    args, passed_on = parser.parse_known_args()
    if passed_on[:1] == ["--"]:
        passed_on = passed_on[1:]

    models = parse_models(args.model)
    record = _record(_scd_eval_distortion(args, passed_on), models, args)
    for name, entry in record["models"].items():
        print(name, json.dumps({k: v for k, v in entry.items() if k != "l2"}), flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(RESULTS / "attack_cifar_hsj.json", json.dumps(record, indent=1).encode())
    from report import write_report

    write_report()


if __name__ == "__main__":
    main()
