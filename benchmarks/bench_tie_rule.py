"""Tie rule experiment: cuts only between distinct values (this package) against the reference's
positional cuts, which also split groups of tied projections, on a validation split.

    python benchmarks/bench_tie_rule.py [--variants SCD01BNN SCDCEBNN] [--votes 4] [--iters 1000]

CIFAR-10 0 vs 1: the training set is split (stratified, seed 0) into 80 % for training and
20 % for validation; each variant trains ``--votes`` votes (seed 0) under each rule, and the
validation accuracy of the members and of the ensemble is recorded.  The rule with the better
mean validation accuracy over the variants (ties: the package's) is then scored once on the
test set.  The positional rule is the reference's: every position between two rows of the
sorted batch is a cut, including inside a tie group (whose threshold is the tied value itself,
where the model gives those rows ``sign(0)``), and "all below" is not one.  It runs on the
tensor path (the fused kernels merge tied values); the package's rule on the kernels, which
give the tensor path's votes.  Writes ``benchmarks/results/tie_rule_<votes>v_<iters>it.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))

import numpy as np
import torch
from bench_train import RESULTS, data_dir, machine
from sklearn.model_selection import train_test_split

import scd
from eval.datasets import load_dataset
from eval.io import atomic_write_bytes
from scd import _search, _train


def _positional_cuts(seq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference's cuts: every boundary between two rows of ``seq`` (ties included) and
    "all above"; thresholds as :func:`scd._search.cut_thresholds` places them."""
    lo, hi = seq[..., :-1], seq[..., 1:]
    theta = torch.where(torch.isinf(lo), hi - _search.cut_margin(hi), (lo + hi) / 2)
    return theta, torch.isfinite(theta) & torch.isfinite(hi)


@contextlib.contextmanager
def rule(name: str):
    """Train under tie rule ``name`` (``"distinct"`` or ``"positional"``) in this process."""
    if name == "distinct":
        yield
        return
    cuts, fused = _search.cut_thresholds, _train._fused_kernel
    _search.cut_thresholds, _train._fused_kernel = _positional_cuts, (lambda device: False)
    try:
        yield
    finally:
        _search.cut_thresholds, _train._fused_kernel = cuts, fused


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", default=["SCD01BNN", "SCDCEBNN"])
    parser.add_argument("--votes", type=int, default=4)
    parser.add_argument("--iters", type=int, default=1000)
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    ds = load_dataset("cifar10", data_dir=data_dir(args.data_dir))
    x_fit, x_val, y_fit, y_val = train_test_split(ds.x_train, ds.y_train, test_size=0.2, random_state=0,
                                                  stratify=ds.y_train)
    rows, models = [], {}
    for variant in args.variants:
        for name in ("distinct", "positional"):
            est = getattr(scd, variant)(n_votes=args.votes, n_iters=args.iters, random_state=0, device="cpu")
            start = time.perf_counter()
            with rule(name):
                est.fit(x_fit, y_fit)
            members = [float(np.mean(est.members([v]).predict(x_val) == y_val)) for v in range(args.votes)]
            row = {"variant": variant, "rule": name, "votes": args.votes, "iters": args.iters,
                   "fit_s": time.perf_counter() - start, "val_members": members,
                   "val_member_mean": float(np.mean(members)), "val_ensemble": float(est.score(x_val, y_val))}
            rows.append(row)
            models[variant, name] = est
            print(json.dumps(row), flush=True)
    mean = {name: np.mean([r["val_ensemble"] for r in rows if r["rule"] == name]) for name in ("distinct", "positional")}
    best = "positional" if mean["positional"] > mean["distinct"] else "distinct"
    test = {v: float(models[v, best].score(ds.x_test, ds.y_test)) for v in args.variants}
    print(f"better on validation: {best}; its test accuracy: {test}")
    record = {"machine": machine(), "split": "train 80 % / validation 20 %, stratified, seed 0", "rows": rows,
              "better_on_validation": best, "test_accuracy_of_better": test}
    out = RESULTS / f"tie_rule_{args.votes}v_{args.iters}it.json"
    atomic_write_bytes(out, json.dumps(record, indent=1).encode())


if __name__ == "__main__":
    main()
