"""MNIST with its official split, from ``mnist.npz`` or the four official idx files."""
from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

from eval.datasets._common import SPLIT_KEYS, check_images, image_dataset, read_npz, resolve_dir
from eval.datasets.dataset import Dataset
from eval.datasets.registry import REGISTRY

__all__ = ["load"]

_INFO = REGISTRY["mnist"]
_SHAPE = (28, 28)
_NPZ, *_IDX_STEMS = _INFO.files
# split key -> (idx file stem, number of dimensions); the registry lists the stems in split-key order
_IDX = dict(zip(SPLIT_KEYS, zip(_IDX_STEMS, (3, 1, 3, 1))))


def load(classes: tuple[int, ...] | str, data_dir: str | os.PathLike[str] | None) -> Dataset:
    """MNIST with its official split; default pair 3 vs 5, a classic hard pair."""
    arrays, source = _read(resolve_dir(data_dir))
    check_images(arrays, _SHAPE, source)
    return image_dataset("mnist", arrays, classes, _SHAPE, source)


def _read(data_dir: Path) -> tuple[dict[str, np.ndarray], str]:
    """``mnist.npz`` if present, else the four official idx files (optionally .gz)."""
    npz = data_dir / _NPZ
    if npz.is_file():
        return read_npz(npz, SPLIT_KEYS), str(npz)
    found = {key: _find_idx(data_dir, stem) for key, (stem, _ndim) in _IDX.items()}
    if None in found.values():
        stems = ", ".join(f"{stem}(.gz)" for stem in _IDX_STEMS)
        raise FileNotFoundError(
            f"MNIST not found in {data_dir}: looked for {_NPZ} or the idx files {stems}. "
            f"Get {_NPZ} (keys x_train, y_train, x_test, y_test; e.g. {_INFO.origin}) or the "
            "official idx files, and put them there or pass --data-dir / set SCD_DATA_DIR."
        )
    arrays = {key: _read_idx(found[key], ndim) for key, (_stem, ndim) in _IDX.items()}
    return arrays, ", ".join(str(found[key]) for key in _IDX)


def _find_idx(data_dir: Path, stem: str) -> Path | None:
    for candidate in (data_dir / stem, data_dir / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _read_idx(path: Path, ndim: int) -> np.ndarray:
    """Parse an idx file of unsigned bytes (magic 0x0000 08 <ndim>, big-endian dims)."""
    data = path.read_bytes()
    if path.suffix == ".gz":
        data = gzip.decompress(data)
    header = 4 + 4 * ndim
    if len(data) < header or data[:4] != bytes((0, 0, 0x08, ndim)):
        raise ValueError(
            f"{path}: bad idx magic number {data[:4].hex()}, expected 000008{ndim:02x}"
        )
    dims = tuple(int(d) for d in np.frombuffer(data, ">u4", count=ndim, offset=4))
    if len(data) - header != int(np.prod(dims)):
        raise ValueError(f"{path}: idx size mismatch: dims {dims} need {int(np.prod(dims))} bytes, "
                         f"found {len(data) - header}")
    return np.frombuffer(data, np.uint8, offset=header).reshape(dims)
