"""The fused CPU kernels against the tensor path: one vote of every variant, trained both ways.

    python benchmarks/bench_kernels.py [--iters N] [--variants SCD01 SCDCE ...]

Each variant trains vote 0 (seed 0) of CIFAR-10 0 vs 1 with the paper's settings, on one
thread, once with the kernels of ``scd/_kernels.py`` (what a CPU fit uses) and once with the
tensor path alone (what CUDA uses), in the same process, after a short warm-up that compiles
the kernels.  It records both times, their ratio, and whether the two votes are identical
(the kernels are meant to give the tensor path's models).  ``--iters`` defaults to each
variant's full vote (1000, or 10,000 for the binary-weight variants).  Writes
``benchmarks/results/kernels.json`` (or ``--out``) and regenerates ``docs/benchmarks.md``.  The
trainer's CPU timings before and after a change are two such records, ``--label before`` and
``--label after``, written to ``benchmarks/results/trainer_cpu_<label>.json`` by the same
script run on the two commits.
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
import torch  # noqa: E402

from bench_train import RESULTS, commit, data_dir, machine  # noqa: E402
from eval.datasets import load_dataset  # noqa: E402
from eval.io import atomic_write_bytes  # noqa: E402
from scd import _train  # noqa: E402

VARIANTS = {"SCD01": ("01", False, 1000), "SCDCE": ("ce", False, 1000),
            "SCD01BNN": ("01", True, 10000), "SCDCEBNN": ("ce", True, 10000)}


def _train_vote(XT, y, cfg, kernels: bool) -> tuple[dict, float]:
    on_cpu = _train._fused_kernel
    _train._fused_kernel = on_cpu if kernels else (lambda device: False)
    try:
        start = time.perf_counter()
        vote = _train.train_votes(XT, y, [0], 0, cfg)
        return vote, time.perf_counter() - start
    finally:
        _train._fused_kernel = on_cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iters", type=int, default=None, help="default: each variant's full vote")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", default=str(RESULTS / "kernels.json"),
                        help="the record (default benchmarks/results/kernels.json)")
    parser.add_argument("--label", default=None, help="a name for the code measured, kept in the record")
    parser.add_argument("--no-report", action="store_true", help="do not regenerate docs/benchmarks.md")
    args = parser.parse_args()
    torch.set_num_threads(1)
    ds = load_dataset("cifar10", data_dir=data_dir(args.data_dir))
    XT = torch.as_tensor(ds.x_train).T.contiguous()
    y = ds.y_train
    rows = []
    for name in args.variants:
        loss, binary, full = VARIANTS[name]
        iters = args.iters or full
        make = lambda t: _train.TrainConfig(  # noqa: E731
            loss=loss, binary_weights=binary, hidden_nodes=20, n_iters=t, nrows=0.75, w_inc1=0.17, w_inc2=0.2,
            updated_features=128, interval=20, b_ratio=0.2)
        _train_vote(XT, y, make(3), kernels=True)  # compiles (or loads) the kernels
        fused, t_fused = _train_vote(XT, y, make(iters), kernels=True)
        tensor, t_tensor = _train_vote(XT, y, make(iters), kernels=False)
        same = all(np.array_equal(fused[k], tensor[k]) for k in fused)
        rows.append({"variant": name, "iters": iters, "kernel_seconds": t_fused, "tensor_seconds": t_tensor,
                     "speedup": t_tensor / t_fused, "identical": same})
        print(f"{name}: {iters} iterations, kernels {t_fused:.1f} s, tensor path {t_tensor:.1f} s, "
              f"{t_tensor / t_fused:.2f}x, votes {'identical' if same else 'DIFFERENT'}", flush=True)
    record = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": machine(), "label": args.label, "commit": commit(),
              "command": "python benchmarks/bench_kernels.py" + "".join(
                  f" {a}" for a in sys.argv[1:]), "rows": rows}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out, (json.dumps(record, indent=1) + "\n").encode())
    if args.no_report:
        return
    from report import write_report

    write_report()


if __name__ == "__main__":
    main()
