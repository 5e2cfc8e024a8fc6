"""PTB diagnostic ECG heartbeats (Kaggle ``shayanfazeli/heartbeat``), normal vs abnormal."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from eval.datasets._common import pick_split, read_csv, resolve_dir, scale_unit
from eval.datasets.dataset import Dataset
from eval.datasets.registry import REGISTRY

__all__ = ["load"]

_INFO = REGISTRY["ecg"]
_FEATURES = 187  # samples per heartbeat; the label is one more column


def load(
    classes: tuple[int, ...] | str, data_dir: str | os.PathLike[str] | None, test_size: float, random_state: int
) -> Dataset:
    """PTB diagnostic ECG heartbeats: 187 samples per beat, normal=0, abnormal=1.

    The files have no official split, so the rows are split stratified and
    scaled to [0, 1] with the training minimum and maximum where needed.
    """
    data_dir = resolve_dir(data_dir)
    paths = [data_dir / name for name in _INFO.files]  # labels 0 and 1, in that order
    if not all(p.is_file() for p in paths):
        raise FileNotFoundError(
            f"PTB ECG data not found in {data_dir}: need {_INFO.files[0]} and {_INFO.files[1]} "
            f"({_INFO.origin}); put them there or pass --data-dir / set SCD_DATA_DIR."
        )
    table = np.concatenate([_read_table(p, label) for label, p in enumerate(paths)])
    x, y = table[:, :-1], table[:, -1].astype(np.int64)
    source = ", ".join(map(str, paths))
    classes, (x_train, y_train, x_test, y_test) = pick_split(x, y, classes, test_size, random_state, source)
    x_train, x_test = scale_unit(x_train, x_test)
    return Dataset("ecg", x_train, y_train, x_test, y_test, classes, (_FEATURES,), source)


def _read_table(path: Path, label: int) -> np.ndarray:
    """One of the two CSV files: 187 samples and the label ``label`` on every row."""
    table = read_csv(path)
    if table.shape[1] != _FEATURES + 1:
        raise ValueError(f"{path}: expected {_FEATURES + 1} columns, found {table.shape[1]}")
    if not np.all(table[:, -1] == label):
        raise ValueError(f"{path}: expected every label (last column) to be {label}")
    return table
