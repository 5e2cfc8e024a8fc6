"""The trainer on a GPU: one vote and 100 votes of every variant, and the tensor path's host
synchronisations per iteration.

    python benchmarks/bench_gpu.py [--iters N] [--variants SCD01 ...] [--votes 1 100]
    python benchmarks/bench_gpu.py --count-syncs [--iters N]

On a CUDA GPU, each variant trains CIFAR-10 0 vs 1 with the paper's settings (vote groups of
``group_size=None``: all votes of a fit in one batched program per GPU), after a short
warm-up, and records the wall time and the training and test accuracy of each fit.  Without a
GPU it prints what it would need and exits 0.  ``--iters`` defaults to each variant's full
vote (1000, or 10,000 for the binary-weight variants).  Writes
``benchmarks/results/gpu_<device>.json``.

``--count-syncs`` runs on any machine: it trains a few iterations of every variant through
the tensor path (what CUDA runs) on the CPU and counts, per iteration after the first, the
operations that make a CUDA host wait for the GPU: reading a tensor's value into Python
(``item``, ``tolist``, ``bool``, ``int``, ``float``), ``nonzero`` and boolean-mask indexing
(their result's size is data-dependent), and copies of numpy arrays to the device
(``as_tensor``, ``from_numpy``; the trainer's one ``from_numpy`` per iteration goes to a GPU
asynchronously, from pinned memory).  Writes ``benchmarks/results/gpu_syncs.json``, under
``--as after`` (the default) or ``--as before`` (the same counter run on older code), with the commit.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))

import numpy as np
import torch
from bench_train import RESULTS, commit, data_dir, machine

import scd
from eval.datasets import load_dataset
from eval.io import atomic_write_bytes
from scd import _train

VARIANTS = ("SCD01", "SCDCE", "SCD01BNN", "SCDCEBNN")
_TARGET = "100 SCD01 votes on one H100 in <= 60 s"


class SyncCounter:
    """Counts, by calling function, the tensor operations that synchronise a CUDA host with
    its GPU (see the module docstring), while active."""

    _READS = ("item", "tolist", "__bool__", "__int__", "__float__", "__index__", "nonzero")

    def __init__(self):
        self.counts: collections.Counter = collections.Counter()
        self.active = False
        self._saved: list = []

    def _hit(self, what: str) -> None:
        if self.active:
            caller = sys._getframe(2).f_code.co_name
            self.counts[f"{caller}: {what}"] += 1

    def _wrap(self, owner, name: str, when=None):
        real = getattr(owner, name)
        counter = self

        def wrapper(*args, **kwargs):
            if when is None or when(*args, **kwargs):
                counter._hit(name)
            return real(*args, **kwargs)

        self._saved.append((owner, name, real))
        setattr(owner, name, wrapper)

    def __enter__(self):
        for name in self._READS:
            self._wrap(torch.Tensor, name)
        self._wrap(torch, "nonzero")
        masked = lambda self, index, *rest: _has_mask(index)
        self._wrap(torch.Tensor, "__getitem__", masked)
        self._wrap(torch.Tensor, "__setitem__", masked)
        self._wrap(torch, "as_tensor", lambda data, *a, **k: isinstance(data, np.ndarray))
        self._wrap(torch, "from_numpy")
        return self

    def __exit__(self, *exc):
        for owner, name, real in reversed(self._saved):
            setattr(owner, name, real)


def _has_mask(index) -> bool:
    parts = index if isinstance(index, tuple) else (index,)
    return any(isinstance(p, torch.Tensor) and p.dtype == torch.bool for p in parts)


def count_syncs(iters: int) -> dict:
    """Host synchronisations per iteration of the tensor path, per variant and source."""
    rng = np.random.default_rng(0)
    n, d = 4000, 200  # a batch of 3,000 rows: the hidden windows take the guessed-band path, as on CIFAR-10
    X = rng.random((n, d), dtype=np.float32)
    y = (X[:, :10].sum(1) > 5).astype(np.int64)
    XT = torch.from_numpy(np.ascontiguousarray(X.T))
    out = {}
    for name in VARIANTS:
        est = getattr(scd, name)(n_iters=iters, hidden_nodes=20, random_state=0)
        cfg = est._config()
        counter = SyncCounter()
        real_step, real_fused = _train._Group.step, _train._fused_kernel

        def step(self, it, real_step=real_step, counter=counter):
            counter.active = it > 0
            real_step(self, it)
            counter.active = False

        _train._Group.step, _train._fused_kernel = step, lambda device: False
        try:
            with counter, torch.no_grad():
                _train.train_votes(XT, y, [0, 1, 2, 3], 0, cfg)
        finally:
            _train._Group.step, _train._fused_kernel = real_step, real_fused
        per = {k: v / (iters - 1) for k, v in sorted(counter.counts.items())}
        out[name] = {"per_iteration": sum(per.values()), "by_source": per}
        print(f"{name}: {out[name]['per_iteration']:.2f} host synchronisations per iteration")
        for k, v in per.items():
            print(f"    {v:6.2f}  {k}")
    return out


def _fit(cls, ds, votes: int, iters: int, device: str) -> dict:
    est = cls(n_votes=votes, n_iters=iters, device=device, random_state=0)
    torch.cuda.synchronize()
    start = time.perf_counter()
    est.fit(ds.x_train, ds.y_train)
    torch.cuda.synchronize()
    wall = time.perf_counter() - start
    return {"votes": votes, "iters": iters, "wall_s": wall, "train_accuracy": float(est.score(ds.x_train, ds.y_train)),
            "test_accuracy": float(est.score(ds.x_test, ds.y_test))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iters", type=int, default=None, help="default: each variant's full vote")
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--votes", nargs="+", type=int, default=[1, 100])
    parser.add_argument("--count-syncs", action="store_true", help="count the tensor path's host synchronisations")
    parser.add_argument("--as", dest="label", choices=("before", "after"), default="after",
                        help="--count-syncs: record the counts as the code before or after a change")
    parser.add_argument("--results", default=str(RESULTS), help="where the records go")
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()
    if args.count_syncs:
        path = Path(args.results) / "gpu_syncs.json"
        record = json.loads(path.read_text()) if path.exists() else {}
        record = record if "after" in record or "before" in record else {}  # an older layout: start again
        iters = args.iters or 20
        record[args.label] = {"machine": machine(), "iters": iters, "commit": commit(), "variants": count_syncs(iters),
                              "command": " ".join(["python", "benchmarks/bench_gpu.py", *sys.argv[1:]])}
        atomic_write_bytes(path, json.dumps(record, indent=1).encode())
        return
    if not torch.cuda.is_available():
        print("No CUDA GPU here: nothing measured.  This benchmark needs a CUDA GPU with torch built for it "
              f"(about 2 GiB of GPU memory for 100 CIFAR-10 votes), the data file cifar10_01.npz, and about "
              f"{len(args.variants) * 2} fits of up to 10,000 iterations.  Target: {_TARGET}.")
        return
    ds = load_dataset("cifar10", data_dir=data_dir(args.data_dir))
    device = torch.cuda.get_device_name(0)
    rows = []
    for name in args.variants:
        cls = getattr(scd, name)
        iters = args.iters or cls().n_iters
        _fit(cls, ds, 1, 10, "cuda")  # warm-up: CUDA context, kernels, allocator
        for votes in args.votes:
            row = {"variant": name, **_fit(cls, ds, votes, iters, "cuda")}
            rows.append(row)
            print(json.dumps(row))
    record = {"machine": machine(), "device": device, "rows": rows}
    slug = device.lower().replace(" ", "_")
    atomic_write_bytes(RESULTS / f"gpu_{slug}.json", json.dumps(record, indent=1).encode())


if __name__ == "__main__":
    main()
