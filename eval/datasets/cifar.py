"""CIFAR-10: a prepared ``.npz`` subset, the official batch folder or its tarball.

The official python batches are pickles; they are decoded by the restricted
reader in :mod:`eval.datasets._pickle`, which imports and calls nothing.  When
no copy is found the official archive is downloaded and md5-checked.
"""
from __future__ import annotations

import os
import tarfile
from pathlib import Path, PurePosixPath

import numpy as np

from eval.datasets._common import SPLIT_KEYS, check_images, fetch, image_dataset, read_npz, resolve_dir
from eval.datasets._pickle import RestrictedPickle, Stub, text
from eval.datasets.dataset import Dataset
from eval.datasets.registry import ALL_CLASSES, CIFAR10_MD5, CIFAR10_URL, REGISTRY

__all__ = ["load"]

_NPZ, _DIR, _TAR = (name.rstrip("/") for name in REGISTRY["cifar10"].files)
_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
_TEST = "test_batch"
_SHAPE = (32, 32, 3)
_ROW = 3 * 32 * 32


def load(classes: tuple[int, ...] | str, data_dir: str | os.PathLike[str] | None, download: bool) -> Dataset:
    """CIFAR-10 with its official split, images in HWC order divided by 255."""
    classes = tuple(range(10)) if classes == ALL_CLASSES else classes
    arrays, source = _read(classes, resolve_dir(data_dir), download)
    return image_dataset("cifar10", arrays, classes, _SHAPE, source)


def _read(pair: tuple[int, ...], data_dir: Path, download: bool) -> tuple[dict[str, np.ndarray], str]:
    """Find CIFAR-10 in ``data_dir`` (npz subset, batch folder, tarball), else download it."""
    npz = data_dir / _NPZ
    if npz.is_file():
        arrays = read_npz(npz, SPLIT_KEYS)
        check_images(arrays, _SHAPE, str(npz))
        if all(np.isin(pair, arrays[k]).all() for k in ("y_train", "y_test")):
            return arrays, str(npz)
    batches = data_dir / _DIR
    if batches.is_dir():
        return _read_dir(batches), str(batches)
    tarball = fetch(data_dir / _TAR, CIFAR10_URL, CIFAR10_MD5, "md5", download,
                    lambda error: _missing(pair, data_dir, error))
    return _read_tar(tarball), str(tarball)


def _missing(pair: tuple[int, ...], data_dir: Path, error: Exception | None = None) -> FileNotFoundError:
    message = (
        f"CIFAR-10 not found in {data_dir}: looked for {_NPZ} (holding classes "
        f"{', '.join(map(str, pair))}), {_DIR}/ and {_TAR}. Download {CIFAR10_URL} "
        f"(md5 {CIFAR10_MD5}) into that directory, or pass --data-dir / set SCD_DATA_DIR "
        f"to a directory holding one of them."
    )
    if error is not None:
        message += f" Download failed: {error}"
    return FileNotFoundError(message)


def _read_dir(directory: Path) -> dict[str, np.ndarray]:
    paths = [directory / name for name in (*_TRAIN, _TEST)]
    return _assemble({p.name: _parse_cifar_batch(p.read_bytes(), str(p)) for p in paths})


def _read_tar(tarball: Path) -> dict[str, np.ndarray]:
    """Read the batches from the .tar.gz in one streaming pass, extracting nothing to disk."""
    wanted = {*_TRAIN, _TEST}
    batches = {}
    with tarfile.open(tarball, "r|gz") as archive:
        for member in archive:
            member_path = PurePosixPath(member.name)
            in_dir = member_path.parent.name == _DIR
            if member.isfile() and in_dir and member_path.name in wanted:
                data = archive.extractfile(member).read()
                batches[member_path.name] = _parse_cifar_batch(data, f"{tarball}:{member.name}")
    missing = sorted(wanted - batches.keys())
    if missing:
        raise ValueError(f"corrupt or unexpected CIFAR-10 archive {tarball}: missing {missing}")
    return _assemble(batches)


def _assemble(batches: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, np.ndarray]:
    """Concatenate the five training batches in official order."""
    return {
        "x_train": np.concatenate([batches[n][0] for n in _TRAIN]),
        "y_train": np.concatenate([batches[n][1] for n in _TRAIN]),
        "x_test": batches[_TEST][0],
        "y_test": batches[_TEST][1],
    }


def _parse_cifar_batch(data: bytes, source: str) -> tuple[np.ndarray, np.ndarray]:
    """Decode one official CIFAR-10 python batch without unpickling it.

    Returns images as uint8 (n, 32, 32, 3) in HWC order (the file stores CHW
    rows: 1024 red, 1024 green, 1024 blue values) and labels as int64.
    """
    try:
        labels, pixels = _fields(RestrictedPickle().run(data))
    except (ValueError, TypeError, KeyError, IndexError, EOFError) as exc:
        raise ValueError(f"corrupt or unexpected CIFAR-10 batch file: {source}: {exc}") from None
    images = np.frombuffer(pixels, np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return images, np.asarray(labels, dtype=np.int64)


def _fields(batch: object) -> tuple[list[int], bytes]:
    """Validate a decoded batch dict; return its labels and raw pixel bytes."""
    if not isinstance(batch, dict):
        raise ValueError("top-level object is not a dict")
    fields = {text(k): v for k, v in batch.items()}
    labels, array = fields.get("labels"), fields.get("data")
    if not isinstance(labels, list) or not all(type(v) is int and 0 <= v < 10 for v in labels):
        raise ValueError("'labels' is not a list of class ids 0..9")
    shape, pixels = _uint8_array(array)
    if shape != (len(labels), _ROW):
        raise ValueError(f"'data' has shape {shape}, expected ({len(labels)}, {_ROW})")
    return labels, pixels


def _uint8_array(array: object) -> tuple[tuple, bytes]:
    """Shape and bytes of a symbolically decoded C-order uint8 numpy array."""
    if not (isinstance(array, Stub) and array.kind == "ndarray"):
        raise ValueError("'data' is not a pickled numpy array")
    if not (isinstance(array.state, tuple) and len(array.state) == 5):
        raise ValueError("unexpected numpy array state")
    _version, shape, dtype, fortran, pixels = array.state
    if not (isinstance(dtype, Stub) and dtype.kind == "dtype" and text(dtype.args[0]) == "u1"):
        raise ValueError("'data' is not a uint8 array")
    if fortran or not isinstance(pixels, bytes) or not isinstance(shape, tuple):
        raise ValueError("unexpected numpy array layout")
    size = int(np.prod(shape))
    if len(pixels) != size:
        raise ValueError(f"'data' holds {len(pixels)} bytes, shape {shape} needs {size}")
    return shape, pixels
