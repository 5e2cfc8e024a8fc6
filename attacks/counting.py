"""Per-sample query counting for :class:`~attacks.oracle.Oracle` (rows, calls, refusals)."""

from __future__ import annotations

import numpy as np

__all__ = ["QueryCounts", "rank_within"]


class QueryCounts:
    """Per-sample and total row/call counts; per-sample arrays grow with the largest id seen."""

    PER_SAMPLE = ("rows", "calls", "confirm_rows", "confirm_calls", "refused_rows")
    TOTALS = ("rows", "calls", "unattributed_rows", "unattributed_calls", "confirm_rows", "confirm_calls",
              "refused_rows")

    def __init__(self):
        self.per_sample = {k: np.zeros(0, np.int64) for k in self.PER_SAMPLE}
        self.totals = dict.fromkeys(self.TOTALS, 0)
        self.size = 0  # largest id seen + 1

    def grow(self, n: int) -> None:
        self.size = max(self.size, n)
        have = len(self.per_sample["rows"])
        if n > have:
            for key, arr in self.per_sample.items():
                self.per_sample[key] = np.concatenate([arr, np.zeros(max(n, 2 * have) - have, np.int64)])

    def call(self, ids: np.ndarray | None, n_rows: int, confirm: bool) -> None:
        """Record one model call of ``n_rows`` rows belonging to ``ids`` (None: unattributed)."""
        prefix = "confirm_" if confirm else ""
        self.totals[prefix + "rows"] += n_rows
        self.totals[prefix + "calls"] += 1
        if ids is None:
            if not confirm:
                self.totals["unattributed_rows"] += n_rows
                self.totals["unattributed_calls"] += 1
            return
        self.grow(int(ids.max()) + 1)
        np.add.at(self.per_sample[prefix + "rows"], ids, 1)
        self.per_sample[prefix + "calls"][np.unique(ids)] += 1

    def refuse(self, ids: np.ndarray) -> None:
        """Record one refused row per entry of ``ids``."""
        self.grow(int(ids.max()) + 1)
        np.add.at(self.per_sample["refused_rows"], ids, 1)
        self.totals["refused_rows"] += len(ids)

    def get(self, key: str, ids: np.ndarray) -> np.ndarray:
        arr = self.per_sample[key]
        out = np.zeros(len(ids), np.int64)
        seen = ids < len(arr)
        out[seen] = arr[ids[seen]]
        return out


def rank_within(owners: np.ndarray) -> np.ndarray:
    """For each entry, how many earlier entries have the same owner (0, 1, 2, ...): which rows of
    a request a sample's remaining budget still covers."""
    order = np.argsort(owners, kind="stable")
    sorted_owners = owners[order]
    starts = np.flatnonzero(np.r_[True, sorted_owners[1:] != sorted_owners[:-1]])
    counts = np.diff(np.r_[starts, len(owners)])
    rank = np.empty(len(owners), np.int64)
    rank[order] = np.arange(len(owners)) - np.repeat(starts, counts)
    return rank
