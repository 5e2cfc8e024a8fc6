"""Checkpoints of an SCD fit: the votes trained so far, saved group by group, and what resuming
from them must match.

A checkpoint is a model file of kind ``"scd-checkpoint"`` (:mod:`scd.persist`) holding the
weights of every vote, a ``done`` mask, and the fit it belongs to: estimator class, variant, the
parameters that decide the votes (:data:`scd._params.CHECKPOINT_PARAMS`), the base seed and a
fingerprint of the training data.  Where a checkpoint lives next to a saved model, and when it
is removed, is :func:`scd.persist.fit_and_save`'s business.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ._params import CHECKPOINT_PARAMS
from .persist import json_params, read_model_file, save_bundle

__all__ = ["VoteStore", "check_writable", "fit_identity"]

_KIND = "scd-checkpoint"
_MATCH = ("estimator", "variant", "params", "data")  # what a resumed fit must share with the checkpoint


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
    """Trained votes collected group by group, saved to and restored from a checkpoint."""

    def __init__(self, n_votes: int, d: int, H: int):
        self.weights = {
            "W1": np.zeros((n_votes, d, H), np.float32),
            "b1": np.zeros((n_votes, H), np.float32),
            "w2": np.zeros((n_votes, H), np.float32),
            "b2": np.zeros(n_votes, np.float32),
        }
        self.done = np.zeros(n_votes, bool)

    def add(self, votes: list[int], arrays: dict[str, np.ndarray]) -> None:
        for name, value in arrays.items():
            self.weights[name][votes] = value
        self.done[votes] = True

    def missing(self) -> list[int]:
        return [int(v) for v in np.flatnonzero(~self.done)]

    def done_count(self) -> int:
        return int(self.done.sum())

    def save(self, path: str | os.PathLike, identity: dict[str, Any]) -> None:
        """Write every vote trained so far to checkpoint ``path`` (atomically)."""
        save_bundle(path, _KIND, identity, {**self.weights, "done": self.done})

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
        for name in self.weights:
            if file.arrays[name].shape != self.weights[name].shape:
                raise ValueError(f"checkpoint {os.fspath(path)!r} is corrupt: {name} has shape "
                                 f"{file.arrays[name].shape}")
            self.weights[name][...] = file.arrays[name]
        self.done[...] = file.arrays["done"]
        return int(file.header["seed"])
