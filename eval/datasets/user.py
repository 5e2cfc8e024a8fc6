"""The user's own file: an ``.npz`` (pre-split or ``x``/``y``) or a CSV with the label last."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from eval.datasets._common import (
    SPLIT_KEYS, open_npz, pick, pick_split, read_csv, read_npz, resolve_classes, scale_unit,
)
from eval.datasets.dataset import Dataset

__all__ = ["load"]


def load(
    kind: str,
    path: str | os.PathLike[str] | None,
    classes: tuple[int, ...] | str | None,
    test_size: float,
    random_state: int,
) -> Dataset:
    """A user .npz (x_train/y_train/x_test/y_test or x/y) or CSV (label in the last column).

    ``kind`` is ``"npz"`` or ``"csv"``; ``classes=None`` takes the file's two labels, ``"all"``
    all of its labels.
    """
    path = _existing_path(kind, path)
    if kind == "npz":
        arrays = _read_npz(path)
    else:
        table = read_csv(path)
        arrays = {"x": table[:, :-1], "y": table[:, -1]}
    for key, value in arrays.items():
        check = _checked_labels if key.startswith("y") else _checked_features
        arrays[key] = check(value, path)
    labels = np.concatenate([arrays[k] for k in arrays if k.startswith("y")])
    classes = classes or _only_two(labels, path)
    if "x" in arrays:
        classes, (x_train, y_train, x_test, y_test) = pick_split(
            arrays["x"], arrays["y"], classes, test_size, random_state, str(path)
        )
        input_shape = arrays["x"].shape[1:]
    else:
        classes = resolve_classes(arrays["y_train"], classes, f"{path} (y_train)")
        resolve_classes(arrays["y_test"], classes, f"{path} (y_test)")
        x_train, y_train = pick(arrays["x_train"], arrays["y_train"], classes)
        x_test, y_test = pick(arrays["x_test"], arrays["y_test"], classes)
        input_shape = arrays["x_train"].shape[1:]
        if arrays["x_test"].shape[1:] != input_shape:
            raise ValueError(f"{path}: x_train and x_test samples differ in shape")
    x_train, x_test = scale_unit(x_train, x_test)
    return Dataset(kind, x_train, y_train, x_test, y_test, classes, tuple(input_shape), str(path))


def _existing_path(kind: str, path: str | os.PathLike[str] | None) -> Path:
    if path is None:
        raise ValueError(f"dataset {kind!r} needs path= pointing to a .{kind} file")
    resolved = Path(path).expanduser()
    if not resolved.is_file():
        raise FileNotFoundError(f"{kind} file not found: {resolved}")
    return resolved


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    with open_npz(path) as archive:
        files = set(archive.files)
    if set(SPLIT_KEYS) <= files:
        arrays = read_npz(path, SPLIT_KEYS)
    elif {"x", "y"} <= files:
        arrays = read_npz(path, ("x", "y"))
    else:
        raise ValueError(
            f"{path}: expected arrays x_train, y_train, x_test, y_test or x, y; "
            f"found {sorted(files)}"
        )
    for part in ("", "_train", "_test"):
        if f"x{part}" in arrays and len(arrays[f"x{part}"]) != len(arrays[f"y{part}"]):
            raise ValueError(f"{path}: x{part} and y{part} differ in length")
    return arrays


def _checked_features(x: np.ndarray, path: Path) -> np.ndarray:
    if x.ndim < 2 or np.iscomplexobj(x) or not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
        raise ValueError(
            f"{path}: features must be a real numeric array of shape (n, ...), got {x.dtype} {x.shape}"
        )
    if len(x) == 0:
        raise ValueError(f"{path}: an array of features has no samples")
    if not np.isfinite(x).all():
        raise ValueError(f"{path}: contains NaN or infinite values")
    return x


def _checked_labels(y: np.ndarray, path: Path) -> np.ndarray:
    """1-D numeric labels with integer values, as int64."""
    if y.ndim != 1 or not (np.issubdtype(y.dtype, np.number) or y.dtype == bool):
        raise ValueError(f"{path}: labels must be a 1-D numeric array, got {y.dtype} {y.shape}")
    if not np.isfinite(y).all():
        raise ValueError(f"{path}: contains NaN or infinite labels")
    if not np.array_equal(y, np.round(y)):
        raise ValueError(f"{path}: labels must be integers")
    return y.astype(np.int64)


def _only_two(labels: np.ndarray, path: Path) -> tuple[int, int]:
    values = np.unique(labels)
    if len(values) != 2:
        raise ValueError(
            f"{path}: expected exactly two distinct labels, found {len(values)} "
            f"({values[:10].tolist()}); pass classes=(a, b, ...) to choose some, or classes='all'"
        )
    return int(values[0]), int(values[1])
