"""Evaluation at speed (#29): the paper's HopSkipJump protocol against the model's own prediction rate.

    nice -n 10 python benchmarks/bench_eval_speed.py [--model runs/models/scd01_cifar_100v.scd] [--quick]
        [--n 10 --runs 10 --iters 100 --init-size 1000] [--old-n 2 --old-runs 2 --old-iters 10]
        [--backend loky --jobs N] [--out runs/bench_eval_speed] [--label NAME]

On CIFAR-10 0 vs 1 and one saved model:

1. the model's prediction rate at batch 1,000 with torch on every core (median of 5 calls,
   before and after the protocol; the baseline of the ratio), and the rate curve over batch
   sizes on one lock-step group's threads (the optimum that ``eval.units.merge_rows`` follows);
2. the old path against the new one on a reduced protocol (``--old-*``): every run of every
   chunk as its own attack with every binary-search point sent to ``predict`` (the code
   before #29), then the same units in lock-step with line queries; their records must be
   identical (else the benchmark fails), and their wall times give the speed-up;
3. the whole protocol (``--n`` images x ``--runs`` runs x ``--iters`` iterations, initial
   pool ``--init-size``, nearest-image starts, ``--chunk`` images per unit) through ``scd eval
   distortion``'s code (``eval.suite.evaluate``) on ``--backend`` with ``--jobs`` workers
   (``scd eval``'s default: loky, one worker process per core, each on
   ``eval.units.LOCKSTEP_THREADS`` torch threads) into the resumable run directory ``--out``.
   The time is wall-clock time, summed over the calls of an interrupted and resumed
   benchmark.  Effective queries per second = counted queries / that time.

``--quick`` is 2 images x 2 runs x 10 iterations for both protocols.  Writes
``benchmarks/results/eval_speed[_LABEL].json`` (with ``uptime``'s load before and after) and
regenerates ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))

import numpy as np
import torch
from bench_train import RESULTS, commit, data_dir, machine

from eval.io import atomic_write_bytes

DEFAULT_MODEL = ROOT.parent / "main" / "runs" / "models" / "scd01_cifar_100v.scd"
BATCHES = (64, 128, 256, 512, 1024, 2048)


def _load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def _rate(model, x: np.ndarray, repeats: int = 5) -> tuple[float, float]:
    """Median rows per second of ``model.predict`` on ``x`` (after one warm-up call), in wall
    time and in this process's CPU time (which a busy machine disturbs less)."""
    model.predict(x)
    wall, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        model.predict(x)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return len(x) / float(np.median(wall)), len(x) / float(np.median(cpu))


def _curve(model, x: np.ndarray) -> dict[str, float]:
    """Rows per CPU-second of ``predict`` at each batch size of :data:`BATCHES` (2,048 rows per size)."""
    out = {}
    for b in BATCHES:
        model.predict(x[:b])
        c0 = time.process_time()
        for i in range(0, 2048, b):
            model.predict(x[i:i + b])
        out[str(b)] = 2048 / (time.process_time() - c0)
    return out


def _options(args: argparse.Namespace, n: int, runs: int, iters: int) -> dict:
    attack = {"method": "hsj", "norm": 2, "iters": iters, "init_size": args.init_size, "theta": None,
              "max_queries": None}
    return {"attack": attack, "n": n, "runs": runs, "start": "nearest", "chunk": args.chunk, "batch_size": 1024,
            "seed": args.seed}


def _units(options: dict, model_path: str, data: dict):
    """The work units of ``scd eval distortion`` with these options (as the suite plans them)."""
    from attacks import AttackSpec
    from eval.points import choose_points
    from eval.suite import _build_config, _plan
    from eval.units import load_cached, load_data

    ds = load_data(data)
    model = load_cached(model_path)
    spec = AttackSpec.from_dict(options["attack"])
    config = _build_config("distortion", {"m": model_path}, data, options, spec)
    config["points"] = choose_points([model], ds.x_test, ds.y_test, options["n"], seed=options["seed"]).tolist()
    return _plan(config, {"m": model}, ds, spec)


def _old_unit(unit: dict, model) -> dict:
    """One unit the way ``scd eval`` ran it before #29: its own attack call, every binary-search
    point sent to ``predict`` (no line queries)."""
    from attacks import Oracle
    from eval.units import _attack_record

    spec = unit["attack"]
    oracle = Oracle(model, bounds=(0.0, 1.0), budget=spec.budget, batch_size=unit["batch_size"], line_queries=False)
    result = spec.attack(oracle, unit["x"], unit["y"], seed=int(unit["seed"]), sample_ids=unit["ids"],
                         starting_points=unit.get("starts"))
    return _attack_record(unit, result)[0]


def _stripped(records: list[dict]) -> list[dict]:
    """Records without their times, in key order."""
    return sorted(({k: v for k, v in r.items() if k != "seconds"} for r in records), key=lambda r: r["key"])


def _compare(args: argparse.Namespace, model_path: str, data: dict) -> dict:
    """Old path against new on the reduced protocol, same units, same process."""
    from eval.suite import _lockstep_groups
    from eval.units import LOCKSTEP_THREADS, load_cached, run_units

    units = _units(_options(args, args.old_n, args.old_runs, args.old_iters), model_path, data)
    model = load_cached(model_path)
    before = torch.get_num_threads()
    torch.set_num_threads(LOCKSTEP_THREADS)
    try:
        t0 = time.perf_counter()
        old = [_old_unit(u, model) for u in units]
        old_s = time.perf_counter() - t0
    finally:
        torch.set_num_threads(before)
    t0 = time.perf_counter()
    new = [rec for group in _lockstep_groups(units) for rec, _ in run_units(group)]
    new_s = time.perf_counter() - t0
    if _stripped(old) != _stripped(new):
        raise SystemExit("the lock-step records differ from the old path's: results changed.")
    queries = int(sum(sum(r["queries"]) for r in old))
    return {"n": args.old_n, "runs": args.old_runs, "iters": args.old_iters, "units": len(units),
            "queries": queries, "old_seconds": old_s, "new_seconds": new_s, "old_qps": queries / old_s,
            "new_qps": queries / new_s, "speedup": old_s / new_s, "records_identical": True,
            "median_l2": float(np.nanmedian([v if v is not None else np.nan for r in new for v in r["l2"]]))}


def _progress(args: argparse.Namespace, records: list[dict], total: int, seconds: float) -> dict:
    """The protocol's numbers from the records done so far (all of them once it is finished),
    ``seconds`` of wall-clock time spent on them."""
    queries = int(sum(sum(r["queries"]) for r in records))
    return {"n": args.n, "runs": args.runs, "iters": args.iters, "init_size": args.init_size, "start": "nearest",
            "chunk": args.chunk, "backend": args.backend, "jobs": args.jobs, "units": len(records),
            "units_total": total, "queries": queries, "seconds": seconds,
            "unit_seconds": float(sum(r["seconds"] for r in records)),
            "projected_seconds": seconds * total / max(1, len(records)), "qps": queries / max(seconds, 1e-9),
            "run_dir": str(args.out)}


def _protocol(args: argparse.Namespace, model_path: str, data: dict, save, earlier_seconds: float) -> dict:
    """The whole protocol through ``eval.suite.evaluate`` (resumable in ``args.out``; the wall
    time of earlier, interrupted calls is ``earlier_seconds``); ``save`` gets the numbers so
    far after every unit, so an interrupted benchmark leaves a partial record."""
    from eval.runstore import RunStore
    from eval.suite import evaluate

    options = _options(args, args.n, args.runs, args.iters)
    total = args.runs * -(-args.n // options["chunk"])
    done = list(RunStore(args.out).records.values()) if (Path(args.out) / "config.json").exists() else []
    t0 = time.perf_counter()

    def on_record(record: dict) -> None:
        done.append(record)
        save(_progress(args, done, total, earlier_seconds + time.perf_counter() - t0))

    results = evaluate("distortion", {"scd01": model_path}, data, args.out, options=options, backend=args.backend,
                       n_jobs=args.jobs, quiet=True, on_record=on_record)
    seconds = earlier_seconds + time.perf_counter() - t0
    m = results["models"]["scd01"]
    return {**_progress(args, list(RunStore(args.out).records.values()), total, seconds),
            "success_rate": m["success_rate"], "median_l2": m["median"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(DEFAULT_MODEL))
    parser.add_argument("--n", type=int, default=10)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--iters", type=int, default=100)
    parser.add_argument("--init-size", type=int, default=1000)
    parser.add_argument("--old-n", type=int, default=2)
    parser.add_argument("--old-runs", type=int, default=2)
    parser.add_argument("--old-iters", type=int, default=10)
    parser.add_argument("--chunk", type=int, default=5, help="images per unit (scd eval's --chunk)")
    parser.add_argument("--backend", default="loky", choices=("loky", "sequential"),
                        help="scd eval's --backend (default loky: one worker process per core)")
    parser.add_argument("--jobs", type=int, default=None, help="scd eval's --jobs (default: one per core)")
    parser.add_argument("--quick", action="store_true", help="2 images x 2 runs x 10 iterations for both")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", default=None, help="run directory of the protocol (resumable)")
    parser.add_argument("--label", default=None, help="record name suffix: eval_speed_LABEL.json")
    parser.add_argument("--no-report", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.n = args.runs = args.old_n = args.old_runs = 2
        args.iters = args.old_iters = 10
    if not os.path.isfile(args.model):
        raise FileNotFoundError(f"model file not found: {args.model!r}")
    tag = f"{args.n}x{args.runs}x{args.iters}"
    args.out = Path(args.out or ROOT / "runs" / ("bench_eval_speed_" + tag + (f"_{args.label}" if args.label else "")))
    data = {"name": "cifar10", "classes": [0, 1], "data_dir": data_dir(args.data_dir), "path": None}

    from eval.units import LOCKSTEP_THREADS, load_cached, load_data

    model = load_cached(args.model)
    x = load_data(data).x_test
    x = np.concatenate([x] * (-(-2048 // len(x))))[:2048]
    cores = os.cpu_count() or 1
    workers = 1 if args.backend == "sequential" else (args.jobs or cores)
    load_before = _load()
    torch.set_num_threads(cores)
    rate_before, cpu_before = _rate(model, x[:1000])
    torch.set_num_threads(LOCKSTEP_THREADS)
    curve = _curve(model, x)
    compare = _compare(args, args.model, data)
    record = {
        "model": os.path.relpath(args.model, ROOT), "members": int(model.n_votes),
        "hidden_nodes": int(model.hidden_nodes), "dataset": "cifar10 0 vs 1", "threads": LOCKSTEP_THREADS,
        "workers": workers, "predict_threads": cores,
        "predict_qps_batch1000": rate_before, "predict_qps_before": rate_before, "predict_qps_after": None,
        "predict_cpu_qps_batch1000": cpu_before,
        "predict_curve": curve, "compare": compare, "load_before": load_before, "quick": args.quick,
        "command": " ".join([*([f"SCD_EVAL_THREADS={os.environ['SCD_EVAL_THREADS']}"]
                               if "SCD_EVAL_THREADS" in os.environ else []),
                             "python", "benchmarks/" + Path(__file__).name, *sys.argv[1:]]),
        "code": commit(), "machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / ("eval_speed" + (f"_{args.label}" if args.label else "") + ".json")
    earlier = json.loads(path.read_text()) if path.exists() else {}
    resumed = earlier.get("protocol", {}).get("run_dir") == str(args.out) and not earlier.get("finished")
    earlier_seconds = float(earlier["protocol"]["seconds"]) if resumed else 0.0

    def save(protocol: dict, finished: bool = False) -> None:
        record.update(protocol=protocol, ratio=protocol["qps"] / record["predict_qps_batch1000"], finished=finished,
                      load_after=_load())
        atomic_write_bytes(path, json.dumps(record, indent=1).encode())

    protocol = _protocol(args, args.model, data, save, earlier_seconds)
    torch.set_num_threads(cores)
    rate_after, cpu_after = _rate(model, x[:1000])
    record.update(predict_qps_after=rate_after, predict_qps_batch1000=(rate_before + rate_after) / 2,
                  predict_cpu_qps_batch1000=(cpu_before + cpu_after) / 2)
    save(protocol, finished=True)
    print(json.dumps({k: v for k, v in record.items() if k != "machine"}, indent=1), flush=True)
    if not args.no_report:
        from report import write_report

        write_report()


if __name__ == "__main__":
    main()
