"""Checkpoints of an SCD fit: the votes trained so far, saved group by group and inside a vote
every few hundred iterations, and what resuming from them must match.

A checkpoint is a model file of kind ``"scd-checkpoint"`` (:mod:`scd.persist`) holding the
weights of every vote, a ``done`` mask, the mid-vote state of the unfinished votes
(:data:`scd._train.SNAPSHOT_STATE`, as ``state_*`` arrays; ``state_iters`` is 0 for a vote not
started), and the fit it belongs to: estimator class, variant, the parameters that decide the
votes (:data:`scd._params.CHECKPOINT_PARAMS`), the base seed and a fingerprint of the training
data.  Where a checkpoint lives next to a saved model, and when it is removed, is
:func:`scd.persist.fit_and_save`'s business.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from ._params import CHECKPOINT_PARAMS
from ._train import SNAPSHOT_STATE
from .persist import json_params, read_model_file, save_bundle

__all__ = ["CheckpointWriter", "VoteStore", "check_writable", "fit_identity"]

_KIND = "scd-checkpoint"
_MATCH = ("estimator", "variant", "params", "data")  # what a resumed fit must share with the checkpoint
SNAPSHOT_SECONDS = 30.0  # least time between two writes of mid-vote snapshots


def fit_identity(estimator: Any, seed: int, data: str) -> dict[str, Any]:
    """What identifies a fit of ``estimator`` with base ``seed`` on data of fingerprint ``data``."""
    params = json_params({k: getattr(estimator, k) for k in CHECKPOINT_PARAMS})
    return {"estimator": type(estimator).__name__, "variant": list(estimator._variant()), "params": params,
            "seed": seed, "data": data}


def check_writable(path: str | os.PathLike) -> None:
    """Refuse a checkpoint path that cannot be written before any training is spent on it."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"checkpoint {os.fspath(path)!r} is a directory; give a file path.")
    folder = path.parent
    while not folder.exists():
        folder = folder.parent
    if not (folder.is_dir() and os.access(folder, os.W_OK | os.X_OK)):
        raise ValueError(f"checkpoint {os.fspath(path)!r} cannot be written: {os.fspath(folder)!r} is not a "
                         "writable folder.")


class VoteStore:
    """Trained votes collected group by group, and the mid-vote state of unfinished ones, saved
    to and restored from a checkpoint."""

    def __init__(self, n_votes: int, d: int, H: int):
        self.weights = {
            "W1": np.zeros((n_votes, d, H), np.float32),
            "b1": np.zeros((n_votes, H), np.float32),
            "w2": np.zeros((n_votes, H), np.float32),
            "b2": np.zeros(n_votes, np.float32),
        }
        shapes = {"best_select": ((n_votes,), np.float64), "rng": ((n_votes, 6), np.uint64),
                  "iters": ((n_votes,), np.int64)}
        self.state = {f"state_{k}": (np.zeros_like(self.weights[k]) if k in self.weights
                                     else np.zeros(*shapes[k])) for k in SNAPSHOT_STATE}
        self.done = np.zeros(n_votes, bool)

    def add(self, votes: list[int], arrays: dict[str, np.ndarray]) -> None:
        """Votes ``votes`` finished with best snapshots ``arrays``."""
        for name, value in arrays.items():
            self.weights[name][votes] = value
        self.done[votes] = True

    def add_snapshot(self, votes: list[int], arrays: dict[str, np.ndarray]) -> None:
        """Mid-vote state of ``votes`` (:meth:`scd._train._Group.snapshot`); ignored for votes
        already finished (a late message from a worker)."""
        keep = ~self.done[votes]
        rows = np.asarray(votes)[keep]
        for name, value in arrays.items():
            (self.weights if name in self.weights else self.state)[name][rows] = value[keep]

    def start_of(self, votes: list[int]) -> dict[str, np.ndarray] | None:
        """The state to continue unfinished ``votes`` from (all at the same iteration), or
        None for votes not started."""
        if self.state["state_iters"][votes[0]] == 0:
            return None
        return {name: value[votes] for name, value in {**self.weights, **self.state}.items()}

    def groups(self, size: int) -> list[list[int]]:
        """The unfinished votes in consecutive groups of at most ``size`` votes that stopped at
        the same iteration (a group advances its votes together)."""
        missing = np.flatnonzero(~self.done)
        iters = self.state["state_iters"][missing]
        groups = []
        for it in np.unique(iters)[::-1]:
            votes = [int(v) for v in missing[iters == it]]
            groups += [votes[i : i + size] for i in range(0, len(votes), size)]
        return groups

    def done_count(self) -> int:
        return int(self.done.sum())

    def iterations_done(self, n_iters: int) -> int:
        """Vote-iterations already trained, finished votes and mid-vote states together."""
        return self.done_count() * n_iters + int(self.state["state_iters"][~self.done].sum())

    def save(self, path: str | os.PathLike, identity: dict[str, Any]) -> None:
        """Write every vote trained so far to checkpoint ``path`` (atomically)."""
        save_bundle(path, _KIND, identity, {**self.weights, **self.state, "done": self.done})

    def restore(self, path: str | os.PathLike, expected: dict[str, Any]) -> int:
        """Load finished votes from checkpoint ``path`` if it exists; returns the seed the votes
        were trained with (for ``random_state=None`` the checkpoint's drawn seed is kept)."""
        if not os.path.exists(path):
            return expected["seed"]
        file = read_model_file(path, _KIND)
        differ = [k for k in _MATCH if file.header.get(k) != expected[k]]
        if differ:
            raise ValueError(f"checkpoint {os.fspath(path)!r} does not match this fit ({', '.join(differ)} "
                             "differ); delete it or fit without resume.")
        stored = {**self.weights, **{k: v for k, v in self.state.items() if k in file.arrays}}  # older: no state
        for name, array in stored.items():
            if file.arrays[name].shape != array.shape:
                raise ValueError(f"checkpoint {os.fspath(path)!r} is corrupt: {name} has shape "
                                 f"{file.arrays[name].shape}")
            array[...] = file.arrays[name]
        self.done[...] = file.arrays["done"]
        return int(file.header["seed"])


class CheckpointWriter:
    """Feeds a :class:`VoteStore` from the training's hooks (possibly from worker threads) and
    writes it to ``path`` (or nowhere, for ``path=None``).

    A finished group is written at once.  Mid-vote snapshots arrive every few hundred
    iterations; rewriting the whole checkpoint for each would cost every vote's weights each
    time, so they are written at most every :data:`SNAPSHOT_SECONDS` and, through
    :meth:`flush`, when the fit is interrupted: Ctrl-C keeps the latest snapshot.
    """

    def __init__(self, store: VoteStore, path: str | os.PathLike | None, identity: dict[str, Any]):
        self.store, self.path, self.identity = store, path, identity
        self._lock = threading.Lock()
        self._written = -float("inf")
        self._pending = False

    def group_done(self, votes: list[int], arrays: dict[str, np.ndarray]) -> None:
        with self._lock:
            self.store.add(votes, arrays)
            self._write()

    def snapshot(self, votes: list[int], arrays: dict[str, np.ndarray]) -> None:
        with self._lock:
            self.store.add_snapshot(votes, arrays)
            self._pending = True
            if time.monotonic() - self._written >= SNAPSHOT_SECONDS:
                self._write()

    def flush(self) -> None:
        """Write snapshots received since the last write."""
        with self._lock:
            if self._pending:
                self._write()

    def _write(self) -> None:
        if self.path is not None:
            self.store.save(self.path, self.identity)
            self._written = time.monotonic()
        self._pending = False
