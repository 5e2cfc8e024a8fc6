"""Binary classification datasets for the evaluation suite.

Every loader returns a :class:`Dataset` with flattened float32 features in
[0, 1] and int64 labels in {0, 1}, so downstream code can treat all data sets
alike.  Label 1 is always the *second* class of ``classes``.

Data files are looked for in ``data_dir`` (default :func:`eval.io.default_data_dir`,
i.e. ``$SCD_DATA_DIR``).  Nothing is ever unpickled: ``.npz`` files are read
with ``allow_pickle=False`` and the official CIFAR-10 python batches (which are
pickles) are decoded by a restricted opcode walker that imports and calls
nothing.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import operator
import os
import pickletools
import tarfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Iterable

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from eval.io import ZIP_READ_ERRORS, atomic_open, default_data_dir

__all__ = ["CIFAR10_MD5", "CIFAR10_URL", "DATASETS", "Dataset", "load_dataset"]

DATASETS = ("digits", "cifar10", "mnist", "ecg", "npz", "csv")

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"

# 1 vs 8 is the hardest pair of sklearn's 8x8 digits for a linear model
# (logistic regression: 97.4 % mean test accuracy over 20 stratified 75/25
# splits, vs. >= 99 % for most pairs), so results are not saturated.
DIGITS_CLASSES = (1, 8)
CIFAR10_CLASSES = (0, 1)
# 3 vs 5 is a classic hard MNIST pair (logistic regression ~96 % test accuracy,
# with 5/8, 7/9, 4/9 the hardest; most pairs are > 98 %).
MNIST_CLASSES = (3, 5)
ECG_CLASSES = (0, 1)

_CIFAR_NPZ = "cifar10_01.npz"
_CIFAR_DIR = "cifar-10-batches-py"
_CIFAR_TAR = "cifar-10-python.tar.gz"
_CIFAR_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
_CIFAR_TEST = "test_batch"
_CIFAR_SHAPE = (32, 32, 3)
_CIFAR_ROW = 3 * 32 * 32

_MNIST_NPZ = "mnist.npz"
_MNIST_SHAPE = (28, 28)
_MNIST_IDX = {
    "x_train": ("train-images-idx3-ubyte", 3),
    "y_train": ("train-labels-idx1-ubyte", 1),
    "x_test": ("t10k-images-idx3-ubyte", 3),
    "y_test": ("t10k-labels-idx1-ubyte", 1),
}
_SPLIT_KEYS = ("x_train", "y_train", "x_test", "y_test")

_ECG_FILES = ("ptbdb_normal.csv", "ptbdb_abnormal.csv")  # labels 0 and 1
_ECG_FEATURES = 187


@dataclass(frozen=True, eq=False)
class Dataset:
    """A binary classification problem, ready for training.

    Attributes
    ----------
    name : str
        Dataset name (one of :data:`DATASETS`).
    x_train, x_test : np.ndarray
        float32, shape (n, d): samples flattened (images in HWC order),
        values in [0, 1].
    y_train, y_test : np.ndarray
        int64 labels in {0, 1}; 1 means ``classes[1]``.
    classes : tuple
        The original class ids mapped to 0 and 1, e.g. ``(3, 8)``.
    input_shape : tuple
        Shape of one sample before flattening, e.g. ``(32, 32, 3)``.
    source : str
        The file(s) the data was read from, or ``"sklearn"``.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: tuple
    input_shape: tuple
    source: str


def load_dataset(
    name: str,
    *,
    classes: tuple[int, int] | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    path: str | os.PathLike[str] | None = None,
    download: bool = True,
    test_size: float = 0.25,
    random_state: int = 0,
) -> Dataset:
    """Load a two-class dataset with features in [0, 1] and labels in {0, 1}.

    Parameters
    ----------
    name : str
        One of :data:`DATASETS`.  ``digits`` (sklearn, bundled), ``cifar10``,
        ``mnist``, ``ecg`` (PTB heartbeats) read from ``data_dir``;
        ``npz`` / ``csv`` read a user file given by ``path``.
    classes : (int, int), optional
        The two original class ids to keep; the second one becomes label 1.
        Defaults: digits (1, 8), cifar10 (0, 1), mnist (3, 5), ecg (0, 1)
        (normal, abnormal); npz/csv: the file's two labels, sorted.
    data_dir : path-like, optional
        Where cifar10/mnist/ecg files are looked for (and CIFAR-10 downloaded
        to); defaults to :func:`eval.io.default_data_dir`.
    path : path-like, optional
        The user file for ``npz`` / ``csv``.
    download : bool
        Download CIFAR-10 when no local copy is found.
    test_size, random_state : float, int
        Stratified train/test split for data without an official split
        (digits, ecg, npz with only ``x``/``y``, csv).

    Returns
    -------
    Dataset

    Notes
    -----
    Images are divided by their maximum value (255, or 16 for digits).  User
    data (npz, csv, ecg) is kept as is when all values already lie in [0, 1];
    otherwise every feature is min-max scaled with the *training* minimum and
    maximum (so no test statistics leak into training) and the test features
    are clipped to [0, 1].
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    pair = None if classes is None else _as_pair(classes)
    if name == "digits":
        return _load_digits(pair or DIGITS_CLASSES, test_size, random_state)
    if name == "cifar10":
        return _load_cifar10(pair or CIFAR10_CLASSES, _resolve_dir(data_dir), download)
    if name == "mnist":
        return _load_mnist(pair or MNIST_CLASSES, _resolve_dir(data_dir))
    if name == "ecg":
        return _load_ecg(pair or ECG_CLASSES, _resolve_dir(data_dir), test_size, random_state)
    return _load_user(name, _existing_path(name, path), pair, test_size, random_state)


# ---------------------------------------------------------------- common helpers


def _as_pair(classes: Iterable[Any]) -> tuple[int, int]:
    """Validate ``classes`` as two distinct integers."""
    try:
        first, second = (operator.index(c) for c in classes)
    except (TypeError, ValueError):
        raise ValueError(f"classes must be two distinct integers, got {classes!r}") from None
    if first == second:
        raise ValueError(f"classes must be two distinct integers, got {classes!r}")
    return first, second


def _resolve_dir(data_dir: str | os.PathLike[str] | None) -> Path:
    return default_data_dir() if data_dir is None else Path(data_dir).expanduser()


def _existing_path(name: str, path: str | os.PathLike[str] | None) -> Path:
    if path is None:
        raise ValueError(f"dataset {name!r} needs path= pointing to a .{name} file")
    resolved = Path(path).expanduser()
    if not resolved.is_file():
        raise FileNotFoundError(f"{name} file not found: {resolved}")
    return resolved


def _check_present(labels: np.ndarray, pair: tuple[int, int], source: str) -> None:
    """Raise ValueError unless both classes of ``pair`` occur in ``labels``."""
    available = np.unique(labels)
    missing = [c for c in pair if c not in available]
    if missing:
        raise ValueError(
            f"classes {missing} not present in {source}; available labels: {available.tolist()}"
        )


def _pick(x: np.ndarray, y: np.ndarray, pair: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Keep the rows of the two classes (in their original order), flatten x, map y to 0/1."""
    keep = np.isin(y, pair)
    return x[keep].reshape(int(keep.sum()), -1), (y[keep] == pair[1]).astype(np.int64)


def _split(
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


def _divide(x: np.ndarray, maximum: float) -> np.ndarray:
    return x.astype(np.float32) / np.float32(maximum)


def _scale_unit(x_train: np.ndarray, x_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Map features to [0, 1] with the training min/max, unless they are already there."""
    x_train = x_train.astype(np.float64)
    x_test = x_test.astype(np.float64)
    if all(a.size == 0 or (a.min() >= 0.0 and a.max() <= 1.0) for a in (x_train, x_test)):
        return x_train.astype(np.float32), x_test.astype(np.float32)
    low, high = x_train.min(axis=0), x_train.max(axis=0)
    span = np.where(high > low, high - low, 1.0)
    return tuple(np.clip((a - low) / span, 0.0, 1.0).astype(np.float32) for a in (x_train, x_test))


def _read_npz(path: Path, keys: Iterable[str]) -> dict[str, np.ndarray]:
    """Read the named arrays of an .npz file (never unpickling)."""
    with _open_npz(path) as archive:
        missing = [k for k in keys if k not in archive.files]
        if missing:
            raise ValueError(f"{path}: missing arrays {missing} (found {archive.files})")
        try:
            return {k: archive[k] for k in keys}
        except (*ZIP_READ_ERRORS, ValueError) as exc:
            raise ValueError(f"{path} is corrupt or truncated: {exc}") from exc


def _open_npz(path: Path) -> np.lib.npyio.NpzFile:
    try:
        loaded = np.load(path, allow_pickle=False)
    except (*ZIP_READ_ERRORS, ValueError) as exc:
        raise ValueError(f"{path} is not a readable .npz archive (corrupt, truncated or another format): "
                         f"{exc}") from exc
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise ValueError(f"{path} is not an .npz archive")
    return loaded


def _check_images(arrays: dict[str, np.ndarray], shape: tuple[int, ...], source: str) -> None:
    """Image splits as the official files hold them: uint8 samples of ``shape``, one label each."""
    for part in ("train", "test"):
        x, y = arrays[f"x_{part}"], arrays[f"y_{part}"]
        if x.dtype != np.uint8:
            raise ValueError(f"{source}: x_{part} must hold uint8 pixel values 0..255, got {x.dtype}")
        _check_sample_shape(x, shape, f"{source} x_{part}")
        if y.ndim != 1 or len(y) != len(x):
            raise ValueError(f"{source}: y_{part} must be one label per image ({len(x)}), got shape {y.shape}")


def _check_sample_shape(x: np.ndarray, shape: tuple[int, ...], source: str) -> None:
    if x.shape[1:] != shape:
        raise ValueError(f"{source}: expected samples of shape {shape}, got {x.shape[1:]}")


# ------------------------------------------------------------------------ digits


def _load_digits(pair: tuple[int, int], test_size: float, random_state: int) -> Dataset:
    """sklearn's bundled 8x8 digits (values 0..16), split stratified.

    The default pair, 1 vs 8, is the hardest one for a linear model (see
    :data:`DIGITS_CLASSES`), so accuracies stay informative instead of ~100 %.
    """
    bunch = load_digits()
    _check_present(bunch.target, pair, "digits")
    x, y = _pick(_divide(bunch.data, 16.0), bunch.target, pair)
    parts = _split(x, y, test_size, random_state, "sklearn digits")
    return Dataset("digits", *parts, pair, (8, 8), "sklearn")


# ----------------------------------------------------------------------- CIFAR-10


def _load_cifar10(pair: tuple[int, int], data_dir: Path, download: bool) -> Dataset:
    arrays, source = _read_cifar10(pair, data_dir, download)
    _check_present(arrays["y_train"], pair, source)
    x_train, y_train = _pick(arrays["x_train"], arrays["y_train"], pair)
    x_test, y_test = _pick(arrays["x_test"], arrays["y_test"], pair)
    return Dataset(
        "cifar10", _divide(x_train, 255.0), y_train, _divide(x_test, 255.0), y_test,
        pair, _CIFAR_SHAPE, source,
    )


def _read_cifar10(
    pair: tuple[int, int], data_dir: Path, download: bool
) -> tuple[dict[str, np.ndarray], str]:
    """Find CIFAR-10 in ``data_dir`` (npz subset, batch folder, tarball), else download it."""
    npz = data_dir / _CIFAR_NPZ
    if npz.is_file():
        arrays = _read_npz(npz, _SPLIT_KEYS)
        _check_images(arrays, _CIFAR_SHAPE, str(npz))
        if all(np.isin(pair, arrays[k]).all() for k in ("y_train", "y_test")):
            return arrays, str(npz)
    batches = data_dir / _CIFAR_DIR
    if batches.is_dir():
        return _read_cifar_dir(batches), str(batches)
    tarball = data_dir / _CIFAR_TAR
    if not tarball.is_file():
        if not download:
            raise _cifar_missing(pair, data_dir)
        try:
            _download(CIFAR10_URL, tarball, CIFAR10_MD5)
        except OSError as exc:
            raise _cifar_missing(pair, data_dir, exc) from exc
    return _read_cifar_tar(tarball), str(tarball)


def _cifar_missing(
    pair: tuple[int, int], data_dir: Path, error: Exception | None = None
) -> FileNotFoundError:
    message = (
        f"CIFAR-10 not found in {data_dir}: looked for {_CIFAR_NPZ} (holding classes "
        f"{pair[0]} and {pair[1]}), {_CIFAR_DIR}/ and {_CIFAR_TAR}. Download {CIFAR10_URL} "
        f"(md5 {CIFAR10_MD5}) into that directory, or pass --data-dir / set SCD_DATA_DIR "
        f"to a directory holding one of them."
    )
    if error is not None:
        message += f" Download failed: {error}"
    return FileNotFoundError(message)


def _download(url: str, dest: Path, md5: str) -> None:
    """Stream ``url`` to ``dest`` atomically; raise ValueError if the md5 differs.

    Network errors propagate as OSError (``urllib.error.URLError``); on any
    error no file is left at ``dest``.
    """
    digest = hashlib.md5(usedforsecurity=False)
    with urllib.request.urlopen(url, timeout=60) as response, atomic_open(dest, "wb") as out:
        for chunk in iter(lambda: response.read(1 << 20), b""):
            digest.update(chunk)
            out.write(chunk)
        if digest.hexdigest() != md5.lower():
            raise ValueError(
                f"checksum mismatch for {url}: md5 {digest.hexdigest()}, expected {md5}; "
                "the download was discarded"
            )


def _read_cifar_dir(directory: Path) -> dict[str, np.ndarray]:
    paths = [directory / name for name in (*_CIFAR_TRAIN, _CIFAR_TEST)]
    return _assemble_cifar({p.name: _parse_cifar_batch(p.read_bytes(), str(p)) for p in paths})


def _read_cifar_tar(tarball: Path) -> dict[str, np.ndarray]:
    """Read the batches from the .tar.gz in one streaming pass, extracting nothing to disk."""
    wanted = {*_CIFAR_TRAIN, _CIFAR_TEST}
    batches = {}
    with tarfile.open(tarball, "r|gz") as archive:
        for member in archive:
            member_path = PurePosixPath(member.name)
            in_dir = member_path.parent.name == _CIFAR_DIR
            if member.isfile() and in_dir and member_path.name in wanted:
                data = archive.extractfile(member).read()
                batches[member_path.name] = _parse_cifar_batch(data, f"{tarball}:{member.name}")
    missing = sorted(wanted - batches.keys())
    if missing:
        raise ValueError(f"corrupt or unexpected CIFAR-10 archive {tarball}: missing {missing}")
    return _assemble_cifar(batches)


def _assemble_cifar(batches: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, np.ndarray]:
    """Concatenate the five training batches in official order."""
    return {
        "x_train": np.concatenate([batches[n][0] for n in _CIFAR_TRAIN]),
        "y_train": np.concatenate([batches[n][1] for n in _CIFAR_TRAIN]),
        "x_test": batches[_CIFAR_TEST][0],
        "y_test": batches[_CIFAR_TEST][1],
    }


def _parse_cifar_batch(data: bytes, source: str) -> tuple[np.ndarray, np.ndarray]:
    """Decode one official CIFAR-10 python batch without unpickling it.

    Returns images as uint8 (n, 32, 32, 3) in HWC order (the file stores CHW
    rows: 1024 red, 1024 green, 1024 blue values) and labels as int64.
    """
    try:
        labels, pixels = _cifar_fields(_RestrictedPickle().run(data))
    except (ValueError, TypeError, KeyError, IndexError, EOFError) as exc:
        raise ValueError(f"corrupt or unexpected CIFAR-10 batch file: {source}: {exc}") from None
    images = np.frombuffer(pixels, np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return images, np.asarray(labels, dtype=np.int64)


def _cifar_fields(batch: object) -> tuple[list[int], bytes]:
    """Validate a decoded batch dict; return its labels and raw pixel bytes."""
    if not isinstance(batch, dict):
        raise ValueError("top-level object is not a dict")
    fields = {_text(k): v for k, v in batch.items()}
    labels, array = fields.get("labels"), fields.get("data")
    if not isinstance(labels, list) or not all(type(v) is int and 0 <= v < 10 for v in labels):
        raise ValueError("'labels' is not a list of class ids 0..9")
    shape, pixels = _uint8_array(array)
    if shape != (len(labels), _CIFAR_ROW):
        raise ValueError(f"'data' has shape {shape}, expected ({len(labels)}, {_CIFAR_ROW})")
    return labels, pixels


def _uint8_array(array: object) -> tuple[tuple, bytes]:
    """Shape and bytes of a symbolically decoded C-order uint8 numpy array."""
    if not (isinstance(array, _Stub) and array.kind == "ndarray"):
        raise ValueError("'data' is not a pickled numpy array")
    if not (isinstance(array.state, tuple) and len(array.state) == 5):
        raise ValueError("unexpected numpy array state")
    _version, shape, dtype, fortran, pixels = array.state
    if not (isinstance(dtype, _Stub) and dtype.kind == "dtype" and _text(dtype.args[0]) == "u1"):
        raise ValueError("'data' is not a uint8 array")
    if fortran or not isinstance(pixels, bytes) or not isinstance(shape, tuple):
        raise ValueError("unexpected numpy array layout")
    size = int(np.prod(shape))
    if len(pixels) != size:
        raise ValueError(f"'data' holds {len(pixels)} bytes, shape {shape} needs {size}")
    return shape, pixels


def _text(value: object) -> str:
    """Python-2 str / bytes / str -> str (dict keys, dtype codes)."""
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if isinstance(value, str):
        return value
    raise ValueError(f"expected a string, got {type(value).__name__}")


@dataclass(eq=False)
class _Stub:
    """A call recorded but never executed: an allow-listed global applied to args."""

    kind: str
    args: tuple
    state: object = None


@dataclass(frozen=True)
class _Global:
    kind: str


_MARK = object()
_ALLOWED_GLOBALS = {
    ("_codecs", "encode"): "encode",
    ("numpy", "dtype"): "dtype",
    ("numpy", "ndarray"): "ndarray",
    ("numpy.core.multiarray", "_reconstruct"): "ndarray",
    ("numpy._core.multiarray", "_reconstruct"): "ndarray",
}


class _RestrictedPickle:
    """Evaluate a pickle opcode stream symbolically.

    Only containers, ints, strings and the few globals needed for a numpy
    uint8 array are accepted.  Globals are never imported and REDUCE/BUILD
    never call anything: they produce :class:`_Stub` records (``_codecs.encode``
    of a latin-1 str, how Python 3 pickles bytes at protocol 2, is evaluated
    directly).  Anything else raises ValueError.
    """

    _CONSTANTS = {"NONE": None, "NEWTRUE": True, "NEWFALSE": False}
    _EMPTY = {"EMPTY_DICT": dict, "EMPTY_LIST": list, "EMPTY_TUPLE": tuple}
    _INTS = {"BININT", "BININT1", "BININT2", "LONG1", "LONG4"}
    _PY2_STRINGS = {"BINSTRING", "SHORT_BINSTRING"}
    _BYTES = {"BINBYTES", "SHORT_BINBYTES", "BINBYTES8"}
    _UNICODE = {"BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8"}
    _TUPLE_N = {"TUPLE1": 1, "TUPLE2": 2, "TUPLE3": 3}
    _PUT = {"PUT", "BINPUT", "LONG_BINPUT"}
    _GET = {"GET", "BINGET", "LONG_BINGET"}
    _NO_OP = {"PROTO", "FRAME"}

    def __init__(self) -> None:
        self.stack: list[object] = []
        self.memo: dict[int, object] = {}

    def run(self, data: bytes) -> object:
        """Return the (symbolic) object the pickle describes."""
        for opcode, arg, _position in pickletools.genops(io.BytesIO(data)):
            if opcode.name == "STOP":
                if len(self.stack) != 1:
                    raise ValueError("malformed pickle stack at STOP")
                return self.stack[0]
            self._step(opcode.name, arg)
        raise ValueError("pickle has no STOP opcode")

    def _step(self, name: str, arg: Any) -> None:
        if name in self._NO_OP:
            return
        if name in self._CONSTANTS:
            self.stack.append(self._CONSTANTS[name])
        elif name in self._EMPTY:
            self.stack.append(self._EMPTY[name]())
        elif name in self._INTS or name in self._UNICODE:
            self.stack.append(arg)
        elif name in self._PY2_STRINGS:
            self.stack.append(arg.encode("latin-1"))  # pickletools decodes them as latin-1
        elif name in self._BYTES:
            self.stack.append(bytes(arg))
        elif name in self._PUT:
            self.memo[arg] = self.stack[-1]
        elif name == "MEMOIZE":
            self.memo[len(self.memo)] = self.stack[-1]
        elif name in self._GET:
            self.stack.append(self.memo[arg])
        else:
            self._structural(name, arg)

    def _structural(self, name: str, arg: Any) -> None:
        if name == "MARK":
            self.stack.append(_MARK)
        elif name == "TUPLE":
            self.stack.append(tuple(self._pop_mark()))
        elif name in self._TUPLE_N:
            items = [self._pop() for _ in range(self._TUPLE_N[name])]
            self.stack.append(tuple(reversed(items)))
        elif name in ("APPEND", "APPENDS"):
            items = [self._pop()] if name == "APPEND" else self._pop_mark()
            self._top(list).extend(items)
        elif name in ("SETITEM", "SETITEMS"):
            items = [self._pop(), self._pop()][::-1] if name == "SETITEM" else self._pop_mark()
            self._top(dict).update(zip(items[::2], items[1::2]))
        elif name == "GLOBAL":
            self.stack.append(self._global(*arg.split(" ", 1)))
        elif name == "STACK_GLOBAL":
            attribute, module = self._pop(), self._pop()
            self.stack.append(self._global(_text(module), _text(attribute)))
        elif name == "REDUCE":
            args, func = self._pop(), self._pop()
            self.stack.append(self._call(func, args))
        elif name == "BUILD":
            state = self._pop()
            self._top(_Stub).state = state
        else:
            raise ValueError(f"pickle opcode {name} is not allowed")

    def _pop(self) -> object:
        value = self.stack.pop()
        if value is _MARK:
            raise ValueError("unexpected MARK")
        return value

    def _pop_mark(self) -> list[object]:
        start = len(self.stack) - 1 - self.stack[::-1].index(_MARK)
        items = self.stack[start + 1:]
        del self.stack[start:]
        return items

    def _top(self, kind: type) -> Any:
        if not isinstance(self.stack[-1], kind):
            raise ValueError(f"expected a {kind.__name__} on the pickle stack")
        return self.stack[-1]

    @staticmethod
    def _global(module: str, attribute: str) -> _Global:
        kind = _ALLOWED_GLOBALS.get((module, attribute))
        if kind is None:
            raise ValueError(f"global {module}.{attribute} is not allowed")
        return _Global(kind)

    @staticmethod
    def _call(func: object, args: object) -> object:
        if not isinstance(func, _Global) or not isinstance(args, tuple):
            raise ValueError("unexpected REDUCE")
        if func.kind == "encode":
            text, encoding = args
            if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
                raise ValueError("unexpected _codecs.encode call")
            return text.encode("latin-1")
        if func.kind in ("ndarray", "dtype"):
            return _Stub(func.kind, args)
        raise ValueError(f"calling {func.kind} is not allowed")


# ------------------------------------------------------------------------- MNIST


def _load_mnist(pair: tuple[int, int], data_dir: Path) -> Dataset:
    """MNIST with its official split; default pair 3 vs 5, a classic hard pair."""
    arrays, source = _read_mnist(data_dir)
    _check_images(arrays, _MNIST_SHAPE, source)
    _check_present(arrays["y_train"], pair, source)
    x_train, y_train = _pick(arrays["x_train"], arrays["y_train"], pair)
    x_test, y_test = _pick(arrays["x_test"], arrays["y_test"], pair)
    return Dataset(
        "mnist", _divide(x_train, 255.0), y_train, _divide(x_test, 255.0), y_test,
        pair, _MNIST_SHAPE, source,
    )


def _read_mnist(data_dir: Path) -> tuple[dict[str, np.ndarray], str]:
    """``mnist.npz`` if present, else the four official idx files (optionally .gz)."""
    npz = data_dir / _MNIST_NPZ
    if npz.is_file():
        return _read_npz(npz, _SPLIT_KEYS), str(npz)
    found = {key: _find_idx(data_dir, stem) for key, (stem, _ndim) in _MNIST_IDX.items()}
    if None in found.values():
        stems = ", ".join(f"{stem}(.gz)" for stem, _ndim in _MNIST_IDX.values())
        raise FileNotFoundError(
            f"MNIST not found in {data_dir}: looked for {_MNIST_NPZ} or the idx files {stems}. "
            "Get mnist.npz (keys x_train, y_train, x_test, y_test; e.g. "
            "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz) or the "
            "official idx files, and put them there or pass --data-dir / set SCD_DATA_DIR."
        )
    arrays = {key: _read_idx(found[key], _MNIST_IDX[key][1]) for key in _MNIST_IDX}
    return arrays, ", ".join(str(found[key]) for key in _MNIST_IDX)


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


# --------------------------------------------------------------------------- ECG


def _load_ecg(
    pair: tuple[int, int], data_dir: Path, test_size: float, random_state: int
) -> Dataset:
    """PTB diagnostic ECG heartbeats: 187 samples per beat, normal=0, abnormal=1."""
    paths = [data_dir / name for name in _ECG_FILES]
    if not all(p.is_file() for p in paths):
        raise FileNotFoundError(
            f"PTB ECG data not found in {data_dir}: need {_ECG_FILES[0]} and {_ECG_FILES[1]} "
            "(Kaggle dataset shayanfazeli/heartbeat, "
            "https://www.kaggle.com/datasets/shayanfazeli/heartbeat); put them there or pass "
            "--data-dir / set SCD_DATA_DIR."
        )
    tables = [_read_ecg_table(p, label) for label, p in enumerate(paths)]
    table = np.concatenate(tables)
    x, y = table[:, :-1], table[:, -1].astype(np.int64)
    source = ", ".join(map(str, paths))
    _check_present(y, pair, source)
    x, y = _pick(x, y, pair)
    x_train, y_train, x_test, y_test = _split(x, y, test_size, random_state, source)
    x_train, x_test = _scale_unit(x_train, x_test)
    return Dataset("ecg", x_train, y_train, x_test, y_test, pair, (_ECG_FEATURES,), source)


def _read_ecg_table(path: Path, label: int) -> np.ndarray:
    table = _read_csv(path)
    if table.shape[1] != _ECG_FEATURES + 1:
        raise ValueError(f"{path}: expected {_ECG_FEATURES + 1} columns, found {table.shape[1]}")
    if not np.all(table[:, -1] == label):
        raise ValueError(f"{path}: expected every label (last column) to be {label}")
    return table


# ------------------------------------------------------------------- user files


def _load_user(
    kind: str, path: Path, pair: tuple[int, int] | None, test_size: float, random_state: int
) -> Dataset:
    """A user .npz (x_train/y_train/x_test/y_test or x/y) or CSV (label in the last column)."""
    if kind == "npz":
        arrays = _read_user_npz(path)
    else:
        table = _read_csv(path)
        arrays = {"x": table[:, :-1], "y": table[:, -1]}
    for key, value in arrays.items():
        check = _checked_labels if key.startswith("y") else _checked_features
        arrays[key] = check(value, path)
    labels = np.concatenate([arrays[k] for k in arrays if k.startswith("y")])
    pair = pair or _only_two(labels, path)
    if "x" in arrays:
        _check_present(arrays["y"], pair, str(path))
        x, y = _pick(arrays["x"], arrays["y"], pair)
        x_train, y_train, x_test, y_test = _split(x, y, test_size, random_state, str(path))
        input_shape = arrays["x"].shape[1:]
    else:
        _check_present(arrays["y_train"], pair, f"{path} (y_train)")
        _check_present(arrays["y_test"], pair, f"{path} (y_test)")
        x_train, y_train = _pick(arrays["x_train"], arrays["y_train"], pair)
        x_test, y_test = _pick(arrays["x_test"], arrays["y_test"], pair)
        input_shape = arrays["x_train"].shape[1:]
        if arrays["x_test"].shape[1:] != input_shape:
            raise ValueError(f"{path}: x_train and x_test samples differ in shape")
    x_train, x_test = _scale_unit(x_train, x_test)
    return Dataset(kind, x_train, y_train, x_test, y_test, pair, tuple(input_shape), str(path))


def _read_user_npz(path: Path) -> dict[str, np.ndarray]:
    with _open_npz(path) as archive:
        files = set(archive.files)
    if set(_SPLIT_KEYS) <= files:
        arrays = _read_npz(path, _SPLIT_KEYS)
    elif {"x", "y"} <= files:
        arrays = _read_npz(path, ("x", "y"))
    else:
        raise ValueError(
            f"{path}: expected arrays x_train, y_train, x_test, y_test or x, y; "
            f"found {sorted(files)}"
        )
    for part in ("", "_train", "_test"):
        if f"x{part}" in arrays and len(arrays[f"x{part}"]) != len(arrays[f"y{part}"]):
            raise ValueError(f"{path}: x{part} and y{part} differ in length")
    return arrays


def _read_csv(path: Path) -> np.ndarray:
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
            f"({values[:10].tolist()}); pass classes=(a, b) to choose two"
        )
    return int(values[0]), int(values[1])
