"""Array helpers shared by the dataset loaders: pick classes, split, scale, read files.

Every function names the file (``source``/``path``) in its errors, so a bad
input says where it came from.
"""
from __future__ import annotations

import hashlib
import os
import urllib.request
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
from sklearn.model_selection import train_test_split

from eval.datasets.dataset import Dataset
from eval.datasets.registry import ALL_CLASSES
from eval.io import ZIP_READ_ERRORS, atomic_open, default_data_dir

SPLIT_KEYS = ("x_train", "y_train", "x_test", "y_test")
_NPZ_EXPANSION = 100  # most bytes an .npz's arrays may declare per byte of the file (a zip bomb's is ~1000)


def resolve_dir(data_dir: str | os.PathLike[str] | None) -> Path:
    """The folder to look for data files in: ``data_dir``, else :func:`eval.io.default_data_dir`."""
    return default_data_dir() if data_dir is None else Path(data_dir).expanduser()


def download_file(url: str, dest: Path, digest: str | None, algorithm: str) -> None:
    """Stream ``url`` to ``dest`` atomically; ValueError if its ``algorithm`` (md5, sha256) hex
    digest differs from ``digest`` (None: the caller checks the content itself).

    Network errors propagate as OSError (``urllib.error.URLError``); on any
    error no file is left at ``dest``.
    """
    hasher = hashlib.new(algorithm, usedforsecurity=False)
    with urllib.request.urlopen(url, timeout=60) as response, atomic_open(dest, "wb") as out:
        for chunk in iter(lambda: response.read(1 << 20), b""):
            hasher.update(chunk)
            out.write(chunk)
        if digest is not None and hasher.hexdigest() != digest.lower():
            raise ValueError(
                f"checksum mismatch for {url}: {algorithm} {hasher.hexdigest()}, expected {digest}; "
                "the download was discarded"
            )


def fetch(path: Path, url: str, digest: str | None, algorithm: str, download: bool,
          missing: Callable[[Exception | None], FileNotFoundError]) -> Path:
    """``path``, downloaded from ``url`` (:func:`download_file`) when it is not there and
    ``download`` allows it; otherwise, or when the download fails, ``missing(error)`` is raised
    (a ``FileNotFoundError`` that says how to get the file)."""
    if not path.is_file():
        if not download:
            raise missing(None)
        try:
            download_file(url, path, digest, algorithm)
        except OSError as exc:
            raise missing(exc) from exc
    return path


def resolve_classes(labels: np.ndarray, classes: tuple[int, ...] | str, source: str) -> tuple[int, ...]:
    """``classes`` with :data:`ALL_CLASSES` replaced by the sorted labels of ``labels`` (at
    least two); ValueError unless every class occurs in ``labels``."""
    available = np.unique(labels)
    if classes == ALL_CLASSES:
        if len(available) < 2:
            raise ValueError(f"{source} holds {len(available)} label(s) {available.tolist()}; need at least two")
        return tuple(int(c) for c in available)
    missing = [c for c in classes if c not in available]
    if missing:
        raise ValueError(
            f"classes {missing} not present in {source}; available labels: {available.tolist()}"
        )
    return tuple(classes)


def pick(x: np.ndarray, y: np.ndarray, classes: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Keep the rows of ``classes`` (in their original order), flatten x, and map y to the
    position of its class in ``classes`` (0/1 for a pair: 1 means ``classes[1]``)."""
    keep = np.isin(y, classes)
    return x[keep].reshape(int(keep.sum()), -1), positions(y[keep], classes)


def positions(labels: np.ndarray, classes: tuple[int, ...]) -> np.ndarray:
    """Each label's position in ``classes``: its class index (every label must be in ``classes``)."""
    return np.argmax(labels[:, None] == np.asarray(classes)[None, :], axis=1).astype(np.int64)


def split(
    x: np.ndarray, y: np.ndarray, test_size: float, random_state: int, source: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Stratified split, returned as (x_train, y_train, x_test, y_test)."""
    try:
        x_train, x_test, y_train, y_test = train_test_split(
            x, y, test_size=test_size, stratify=y, random_state=random_state
        )
    except ValueError as exc:  # too few rows of a class, or a test_size that leaves none
        raise ValueError(f"{source}: cannot split into train and test sets: {exc}") from None
    return x_train, y_train, x_test, y_test


def pick_split(
    x: np.ndarray, y: np.ndarray, classes: tuple[int, ...] | str, test_size: float, random_state: int, source: str
) -> tuple[tuple[int, ...], tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Keep ``classes`` (each must occur; see :func:`resolve_classes`), flatten, and split
    stratified: ``(classes, (x_train, y_train, x_test, y_test))``."""
    classes = resolve_classes(y, classes, source)
    x, y = pick(x, y, classes)
    return classes, split(x, y, test_size, random_state, source)


def divide(x: np.ndarray, maximum: float) -> np.ndarray:
    """Pixel values to float32 in [0, 1], dividing by the format's maximum."""
    return x.astype(np.float32) / np.float32(maximum)


def scale_unit(x_train: np.ndarray, x_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Map features to [0, 1] with the training min/max, unless they are already there."""
    x_train = x_train.astype(np.float64)
    x_test = x_test.astype(np.float64)
    if all(a.size == 0 or (a.min() >= 0.0 and a.max() <= 1.0) for a in (x_train, x_test)):
        return x_train.astype(np.float32), x_test.astype(np.float32)
    # in halves, so that features near the float64 limits (+-1e308) do not overflow the span
    low, high = x_train.min(axis=0) / 2, x_train.max(axis=0) / 2
    span = np.where(high > low, high - low, 1.0)
    return tuple(np.clip((a / 2 - low) / span, 0.0, 1.0).astype(np.float32) for a in (x_train, x_test))


def image_dataset(
    name: str, arrays: dict[str, np.ndarray], classes: tuple[int, ...] | str, shape: tuple[int, ...], source: str
) -> Dataset:
    """A Dataset from official uint8 image splits: keep ``classes``, flatten, divide by 255."""
    classes = resolve_classes(arrays["y_train"], classes, source)
    x_train, y_train = pick(arrays["x_train"], arrays["y_train"], classes)
    x_test, y_test = pick(arrays["x_test"], arrays["y_test"], classes)
    return Dataset(
        name, divide(x_train, 255.0), y_train, divide(x_test, 255.0), y_test, classes, shape, source
    )


def check_images(arrays: dict[str, np.ndarray], shape: tuple[int, ...], source: str) -> None:
    """Image splits as the official files hold them: uint8 samples of ``shape``, one label each."""
    for part in ("train", "test"):
        x, y = arrays[f"x_{part}"], arrays[f"y_{part}"]
        if x.dtype != np.uint8:
            raise ValueError(f"{source}: x_{part} must hold uint8 pixel values 0..255, got {x.dtype}")
        if x.shape[1:] != shape:
            raise ValueError(f"{source} x_{part}: expected samples of shape {shape}, got {x.shape[1:]}")
        if y.ndim != 1 or len(y) != len(x):
            raise ValueError(f"{source}: y_{part} must be one label per image ({len(x)}), got shape {y.shape}")


def read_npz(path: Path, keys: Iterable[str]) -> dict[str, np.ndarray]:
    """Read the named arrays of an .npz file (never unpickling), each one's declared shape and
    dtype checked against the bytes it holds before it is read, and the whole against a zip bomb."""
    # imported here, as importing scd imports torch
    from scd.persist import check_npy_header, check_zip_sizes

    with open_npz(path) as archive:
        missing = [k for k in keys if k not in archive.files]
        if missing:
            raise ValueError(f"{path}: missing arrays {missing} (found {archive.files})")
        try:
            check_zip_sizes(archive.zip, path.stat().st_size, _NPZ_EXPANSION)
            for k in keys:  # declared shapes and dtypes before anything is allocated from them
                info = archive.zip.getinfo(f"{k}.npy" if f"{k}.npy" in archive.zip.namelist() else k)
                with archive.zip.open(info) as fh:
                    check_npy_header(fh, info.file_size, info.filename)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
        except (*ZIP_READ_ERRORS, KeyError) as exc:
            raise ValueError(f"{path} is corrupt or truncated: {exc}") from exc
        try:
            return {k: archive[k] for k in keys}
        except (*ZIP_READ_ERRORS, ValueError) as exc:
            raise ValueError(f"{path} is corrupt or truncated: {exc}") from exc


def open_npz(path: Path) -> np.lib.npyio.NpzFile:
    """Open an .npz archive with ``allow_pickle=False``; ValueError names a bad file."""
    try:
        loaded = np.load(path, allow_pickle=False)
    except (*ZIP_READ_ERRORS, ValueError) as exc:
        raise ValueError(f"{path} is not a readable .npz archive (corrupt, truncated or another format): "
                         f"{exc}") from exc
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise ValueError(f"{path} is not an .npz archive")
    return loaded


def read_csv(path: Path) -> np.ndarray:
    """Comma-separated numbers, at least two columns; a non-numeric first line is a header."""
    try:
        with open(path, encoding="utf-8-sig") as handle:  # utf-8-sig: a leading BOM is not a header
            first = handle.readline()
        skip = 0 if _is_numeric_row(first) else 1
        table = np.loadtxt(path, delimiter=",", skiprows=skip, dtype=np.float64, ndmin=2, encoding="utf-8-sig")
    except ValueError as exc:  # UnicodeDecodeError included
        raise ValueError(f"{path}: not a numeric CSV: {exc}") from None
    if table.shape[1] < 2 or table.shape[0] == 0:
        raise ValueError(f"{path}: need at least one row with features and a label column")
    if not np.isfinite(table).all():
        raise ValueError(f"{path}: contains NaN or infinite values")
    return table


def _is_numeric_row(line: str) -> bool:
    try:
        [float(field) for field in line.split(",")]
    except ValueError:
        return False
    return True
