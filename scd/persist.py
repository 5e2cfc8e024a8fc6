"""Model files: one reader, one writer and one registry for every model this package saves.

A model file is a zip archive (stored, not compressed) holding a JSON header, numpy arrays as
``<name>.npy`` and, where a format needs them, opaque member files.  Two formats share it:

======================  =================  ================================================
format                  header             written by
======================  =================  ================================================
``scd-bundle``          ``metadata.json``  SCD ensembles and checkpoints, MLP, RF and CNN;
                                           one-vs-rest models (:mod:`scd.multiclass`: one
                                           nested model file ``class_<i>.scd`` per class)
``scd-keras-bundle``    ``manifest.json``  the BNN baseline (one ``.keras`` file per member)
======================  =================  ================================================

The header carries ``format``, ``format_version``, ``kind`` and the package version, then what
the estimator saves (:func:`estimator_metadata`: class, parameters, seed, ...).  Arrays are read
with ``allow_pickle=False``, so loading a file cannot run code from it, and object arrays are
refused when saving.  Writes are atomic (:func:`scd.files.atomic_open`).  A file is read with
one ``open()``: :func:`read_model_file` decodes the header and arrays from those bytes and
hashes the same bytes into the file's :attr:`ModelFile.fingerprint`.

:func:`load_model` hands that read to the loader :func:`register_loader` recorded for the
file's ``kind``.  The SCD estimators register theirs when :mod:`scd` is imported, the
baselines when :mod:`eval.baselines` is.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import tempfile
import zipfile
from dataclasses import dataclass
from typing import IO, Any, Callable, NamedTuple, Sequence

import numpy as np

from .files import ZIP_READ_ERRORS, atomic_open, exclusive, sweep_temporary

__all__ = [
    "FORMAT", "FORMAT_VERSION", "KERAS_FORMAT", "MAX_EXPANSION", "MAX_HEADER_BYTES", "NESTED_SUFFIX", "LoadedModel",
    "ModelFile", "check_array", "check_npy_header", "check_zip_sizes", "checkpoint_path", "estimator_metadata",
    "fit_and_save", "json_params", "load_bundle", "load_model", "load_with_fingerprint", "loader_for", "meta_number",
    "model_bytes", "model_info", "read_model_bytes", "read_model_file", "read_zip", "rebuild", "register_loader",
    "savable_classes", "save_bundle", "save_estimator",
]

FORMAT = "scd-bundle"
FORMAT_VERSION = 1
KERAS_FORMAT = "scd-keras-bundle"
_HEADERS = {FORMAT: "metadata.json", KERAS_FORMAT: "manifest.json"}  # format -> header entry
MAX_EXPANSION = 4  # most bytes a model archive's entries may declare, per byte of the archive
MAX_HEADER_BYTES = 1 << 20  # largest metadata.json / manifest.json
_ARRAY_KINDS = "biufUS"  # dtype kinds a model file's arrays may have
NESTED_SUFFIX = ".scd"  # entries of a model file that are model files themselves

Loader = Callable[..., Any]
_LOADERS: dict[str, Loader] = {}


# ---------------------------------------------------------------------- reading
@dataclass(frozen=True)
class ModelFile:
    """Everything one read of a model file gives: its header, its arrays, its other entries
    (``blobs``, raw bytes by entry name) and ``fingerprint``, the first 16 hex digits of the
    SHA-256 of the file's bytes."""

    path: str
    header: dict[str, Any]
    arrays: dict[str, np.ndarray]
    blobs: dict[str, bytes]
    fingerprint: str

    @property
    def kind(self) -> Any:
        return self.header.get("kind")

    @property
    def where(self) -> str:
        """How error messages name the file."""
        return repr(self.path)


def read_model_file(path: str | os.PathLike, kind: str | None = None) -> ModelFile:
    """Read a model file of either format with one ``open()``.

    Raises ``FileNotFoundError`` when ``path`` does not exist and ``ValueError`` when it is not
    a model file, is truncated or corrupt, was written by a newer format version, or holds a
    different ``kind`` than requested.  Nothing is allocated from a declaration before it is
    checked: the archive's entries must decompress to at most :data:`MAX_EXPANSION` times the
    file's size, the header to at most :data:`MAX_HEADER_BYTES`, and each array's declared shape
    and dtype must account for exactly the bytes its entry holds (see :func:`read_zip`).
    """
    name = os.fspath(path)
    if not os.path.isfile(name):
        raise FileNotFoundError(f"model file not found: {name!r}")
    with open(name, "rb") as fh:
        data = fh.read()
    return read_model_bytes(data, name, kind)


def read_model_bytes(data: bytes, name: str, kind: str | None = None) -> ModelFile:
    """:func:`read_model_file` of a model file's bytes ``data`` (a file, or one nested in
    another model file); ``name`` says where they come from in error messages."""
    fingerprint = hashlib.sha256(data).hexdigest()[:16]
    try:
        header, arrays, blobs = _unzip(data)
    except (*ZIP_READ_ERRORS, KeyError, ValueError, TypeError, RecursionError) as exc:
        raise ValueError(f"{name!r} is not a readable scd model file (truncated or corrupt?): {exc}") from None
    version = header.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version > FORMAT_VERSION:
        raise ValueError(
            f"{name!r} was written with model format version {version!r}; this scd reads "
            f"versions up to {FORMAT_VERSION}. Upgrade scd to load it."
        )
    if not isinstance(header.get("kind"), str):
        raise ValueError(f"{name!r} is corrupt: metadata 'kind' is {header.get('kind')!r}, expected a string")
    if kind is not None and header.get("kind") != kind:
        raise ValueError(f"{name!r} holds a {header.get('kind')!r}, not a {kind!r}")
    return ModelFile(name, header, arrays, blobs, fingerprint)


def read_zip(data: bytes, *, arrays: bool = False) -> dict[str, Any]:
    """Every entry of the zip archive ``data``, by name; each is read whole, which checks its
    CRC.  Raises one of :data:`scd.files.ZIP_READ_ERRORS` for a damaged archive and
    ``ValueError`` for one that declares more than :data:`MAX_EXPANSION` times its own size
    (a zip bomb) or an entry twice.  With ``arrays=True`` the ``.npy`` entries come back as
    arrays (their headers checked first, see :func:`check_npy_header`)."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        infos = check_zip_sizes(zf, len(data), MAX_EXPANSION)
        out: dict[str, Any] = {}
        for info in infos:
            if arrays and info.filename.endswith(".npy"):
                buffer = io.BytesIO(zf.read(info))  # its size is bounded by check_zip_sizes
                check_npy_header(buffer, info.file_size, info.filename)
                buffer.seek(0)
                out[info.filename] = np.lib.format.read_array(buffer, allow_pickle=False)
            else:
                out[info.filename] = zf.read(info)
        return out


def check_zip_sizes(zf: zipfile.ZipFile, size: int, max_expansion: float) -> list[zipfile.ZipInfo]:
    """The entries of the open archive ``zf`` (``size`` bytes), after checking that none is
    named twice and that together they declare at most ``max_expansion`` times ``size`` bytes
    (plus 1 MiB), so that a zip bomb is refused before anything is decompressed.  A declared
    size also bounds what reading an entry yields (:mod:`zipfile` stops there)."""
    infos = zf.infolist()
    names = [info.filename for info in infos]
    if len(set(names)) != len(names):
        raise ValueError("the archive holds an entry twice")
    declared = sum(info.file_size for info in infos)
    if declared > max_expansion * size + (1 << 20):
        raise ValueError(f"its entries declare {declared} bytes, more than {max_expansion:g} times the "
                         f"archive's {size}")
    return infos


def check_npy_header(fh: IO[bytes], size: int, entry: str) -> None:
    """Check the header of the ``.npy`` entry open in ``fh`` (``size`` bytes) before its array is
    read: a dtype of kind ``b i u f U S``, or a record of such fields (a forest's node table), never
    objects, complex numbers or dates, whose declared shape accounts for exactly the bytes after
    the header."""
    version = np.lib.format.read_magic(fh)
    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, _, dtype = read(fh)
    parts = [dtype] if dtype.fields is None else [field[0] for field in dtype.fields.values()]
    if dtype.hasobject or any(p.fields is not None or p.subdtype is not None or p.kind not in _ARRAY_KINDS
                              for p in parts):
        raise ValueError(f"array {entry} has dtype {dtype}; only real numeric (or string) arrays are read")
    if any(not isinstance(s, int) or s < 0 for s in shape) or len(shape) > 8:
        raise ValueError(f"array {entry} declares shape {shape}")
    payload = size - fh.tell()
    if math.prod(shape) * dtype.itemsize != payload:
        raise ValueError(f"array {entry} declares shape {shape} of {dtype} ({math.prod(shape) * dtype.itemsize} "
                         f"bytes) but holds {payload} bytes")


def _unzip(data: bytes) -> tuple[dict[str, Any], dict[str, np.ndarray], dict[str, bytes]]:
    """``(header, arrays, other entries)`` of the model file ``data``.  A header that names
    another format is an error too: a truncated BNN file can look like one of its members (a
    Keras zip with a ``metadata.json`` of its own)."""
    entries = read_zip(data, arrays=True)
    header_name = next((h for h in _HEADERS.values() if h in entries), None)
    if header_name is None:
        raise KeyError(f"no {' or '.join(_HEADERS.values())}")
    raw = entries.pop(header_name)
    if len(raw) > MAX_HEADER_BYTES:
        raise ValueError(f"{header_name} has {len(raw)} bytes, more than {MAX_HEADER_BYTES}")
    header = json.loads(raw)
    found = header.get("format") if isinstance(header, dict) else None
    if _HEADERS.get(found) != header_name:
        raise ValueError(f"{header_name} names format {found!r}, not an scd model file")
    arrays = {name[:-4]: entries.pop(name) for name in [n for n in entries if n.endswith(".npy")]}
    return header, arrays, entries


def load_bundle(path: str | os.PathLike, kind: str | None = None) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """``(header, arrays)`` of a model file (see :func:`read_model_file`)."""
    file = read_model_file(path, kind)
    return file.header, file.arrays


# ---------------------------------------------------------------------- writing
def save_bundle(path: str | os.PathLike, kind: str, meta: dict[str, Any], arrays: dict[str, np.ndarray], *,
                blobs: dict[str, bytes] | None = None, format: str = FORMAT) -> None:
    """Write ``arrays``, JSON-serialisable ``meta`` and raw ``blobs`` to ``path`` atomically."""
    from . import __version__

    header = {"format": format, "format_version": FORMAT_VERSION, "kind": kind, "scd_version": __version__}
    entries = {_HEADERS[format]: json.dumps({**header, **meta}, indent=1, sort_keys=True).encode()}
    for name, array in arrays.items():
        array = np.asarray(array)
        if array.dtype.hasobject:
            raise ValueError(f"array {name!r} has dtype object, which cannot be saved safely")
        buf = io.BytesIO()
        np.lib.format.write_array(buf, array, allow_pickle=False)
        entries[f"{name}.npy"] = buf.getvalue()
    entries.update(blobs or {})
    with atomic_open(path, "wb") as fh:
        with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_STORED) as zf:
            for name, payload in entries.items():
                zf.writestr(name, payload)


def model_bytes(model: Any) -> bytes:
    """The bytes ``model.save`` writes: a complete model file, e.g. to nest in another one
    (written to a temporary folder, then read back)."""
    with tempfile.TemporaryDirectory(prefix="scd-model-") as folder:
        path = os.path.join(folder, "model.scd")
        model.save(path)
        with open(path, "rb") as fh:
            return fh.read()


def json_params(params: dict[str, Any]) -> dict[str, Any]:
    """``get_params()`` as JSON values: numpy scalars become Python numbers, tuples lists and
    paths strings; anything else (a RandomState) becomes None, as the seed actually used is
    saved separately."""
    out = {}
    for key, value in params.items():
        if isinstance(value, (np.integer, np.floating, np.bool_)):
            value = value.item()
        if isinstance(value, tuple):
            value = [v.item() if isinstance(v, np.generic) else v for v in value]
        elif isinstance(value, os.PathLike):
            value = os.fspath(value)
        elif not (value is None or isinstance(value, (bool, int, float, str))):
            value = None
        out[key] = value
    return out


def estimator_metadata(estimator: Any, n_members: int, /, **extra: Any) -> dict[str, Any]:
    """The metadata every fitted ensemble saves: its class, parameters (``n_votes`` as the
    members it holds), feature count, seed and training time, then ``extra``."""
    return {
        "estimator": type(estimator).__name__,
        "params": json_params({**estimator.get_params(), "n_votes": int(n_members)}),
        "n_features_in": int(estimator.n_features_in_),
        "seed": int(estimator.seed_),
        "fit_time": float(estimator.fit_time_),
        **extra,
    }


def save_estimator(path: str | os.PathLike, kind: str, estimator: Any, arrays: dict[str, np.ndarray], /, *,
                   blobs: dict[str, bytes] | None = None, format: str = FORMAT, **extra: Any) -> None:
    """Save a fitted ensemble: :func:`estimator_metadata` with ``extra``, its ``classes_`` and
    ``arrays`` (and ``blobs``), atomically."""
    meta = estimator_metadata(estimator, estimator._n_members(), **extra)
    arrays = {"classes": savable_classes(estimator.classes_), **arrays}
    save_bundle(path, kind, meta, arrays, blobs=blobs, format=format)


def savable_classes(classes: np.ndarray) -> np.ndarray:
    """``classes_`` in a form :func:`save_bundle` accepts: object arrays of strings become str
    arrays; other object labels cannot be saved without pickle."""
    if classes.dtype.hasobject:
        if not all(isinstance(c, str) for c in classes):
            raise ValueError("class labels of mixed or object types cannot be saved; use int or str labels.")
        return classes.astype(str)
    return classes


# ---------------------------------------------------------------------- checking what was read
def rebuild(file: ModelFile, classes: Sequence[type], *, tuples: tuple[str, ...] = (), **overrides: Any) -> Any:
    """The estimator a model file describes, before its members are restored.

    Its class is the one of ``classes`` the file names; its parameters are the saved ones
    (lists named in ``tuples`` become tuples, ``overrides`` replace some), checked by the
    class's own constraints; it holds the learned state every ensemble saves: ``classes_``,
    ``n_features_in_``, ``seed_`` and ``fit_time_``.  ``ValueError`` for anything unexpected.
    """
    meta, where = file.header, file.where
    for key in ("estimator", "params", "n_features_in", "seed", "fit_time"):
        if key not in meta:
            raise ValueError(f"{where} is corrupt: its metadata has no {key!r}")
    cls = {c.__name__: c for c in classes}.get(meta["estimator"]) if isinstance(meta["estimator"], str) else None
    if cls is None:
        raise ValueError(f"{where} names an unknown estimator {meta.get('estimator')!r}")
    params = meta.get("params")
    if not isinstance(params, dict):
        raise ValueError(f"{where} is corrupt: its metadata has no parameters")
    unknown = sorted(map(str, set(params) - set(cls().get_params())))
    if unknown:
        raise ValueError(f"{where} names unknown {cls.__name__} parameters {unknown}")
    params = {k: tuple(v) if k in tuples and isinstance(v, list) else v for k, v in params.items()}
    try:
        est = cls(**{**params, **overrides})
        est._validate_params()
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where} is corrupt: {exc}") from None
    est.classes_ = check_array(file.arrays, "classes", (2,), _ARRAY_KINDS, where, finite=True)
    if est.classes_[0] == est.classes_[1]:
        raise ValueError(f"{where} is corrupt: the two classes are equal")
    est.n_features_in_ = meta_number(meta, "n_features_in", where, low=1, high=1 << 62)
    est.seed_ = meta_number(meta, "seed", where, low=-(1 << 63), high=(1 << 63) - 1)
    est.fit_time_ = meta_number(meta, "fit_time", where, float, low=0.0)
    return est


_REQUIRED = object()


def meta_number(meta: dict[str, Any], key: str, where: str, kind: type = int, *, low: float | None = None,
                high: float | None = None, default: Any = _REQUIRED) -> Any:
    """``meta[key]`` as ``kind`` (int or float), finite and in ``[low, high]``, or a
    ``ValueError`` naming the file and the field; ``default`` when the key is absent, if given."""
    if key not in meta and default is not _REQUIRED:
        return default
    value = meta.get(key)
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    ok = number and (isinstance(value, int) or math.isfinite(value))
    if not ok or (kind is int and not isinstance(value, int)):
        raise ValueError(f"{where} is corrupt: metadata {key!r} is {value!r}, expected {kind.__name__}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{where} is corrupt: metadata {key!r} is {value!r}, outside [{low}, {high}]")
    return kind(value)


def check_array(
    arrays: dict[str, np.ndarray], name: str, shape: tuple, kinds: str, where: str, *, finite: bool = False
) -> np.ndarray:
    """``arrays[name]`` after checking it exists, has ``shape`` (``None`` matches any length)
    and a dtype kind in ``kinds`` (e.g. ``"f"``, ``"iu"``); ``ValueError`` otherwise."""
    if name not in arrays:
        raise ValueError(f"{where} is incomplete: array {name!r} is missing")
    array = arrays[name]
    same = array.ndim == len(shape) and all(s is None or s == a for s, a in zip(shape, array.shape))
    if not same or array.dtype.kind not in kinds or array.dtype.fields is not None:
        raise ValueError(f"{where} is corrupt: {name} has shape {array.shape} and dtype {array.dtype}, "
                         f"expected shape {shape} and dtype kind {kinds!r}")
    if finite and array.dtype.kind == "f" and not np.all(np.isfinite(array)):
        raise ValueError(f"{where} is corrupt: {name} holds NaN or infinite values")
    return array


# ---------------------------------------------------------------------- the registry
def register_loader(kind: str, loader: Loader) -> None:
    """Record ``loader(file: ModelFile, **kwargs)`` as the way to load files of ``kind``."""
    _LOADERS[kind] = loader


class LoadedModel(NamedTuple):
    """A loaded model and the fingerprint of the bytes it was loaded from."""

    model: Any
    fingerprint: str


def load_with_fingerprint(path: str | os.PathLike, **kwargs: Any) -> LoadedModel:
    """:func:`load_model`, together with the file's fingerprint (the first 16 hex digits of the
    SHA-256 of its bytes), computed from the same single read."""
    file = read_model_file(path)
    return LoadedModel(loader_for(file)(file, **kwargs), file.fingerprint)


def loader_for(file: ModelFile) -> Loader:
    """The loader :func:`register_loader` recorded for ``file``'s kind; ``ValueError`` if none."""
    loader = _LOADERS.get(file.kind)
    if loader is None:
        raise ValueError(f"{file.where} holds a {file.kind!r}, which is not a model this package can load.")
    return loader


def load_model(path: str | os.PathLike, **kwargs: Any) -> Any:
    """Load any registered model from ``path`` (keyword arguments go to its loader, e.g.
    ``device`` for the CNN baseline); never unpickles, and opens the file once."""
    return load_with_fingerprint(path, **kwargs).model


def model_info(path: str | os.PathLike) -> dict[str, Any]:
    """The header of a saved model (kind, estimator, parameters, seed, ...) with its classes and
    the shapes of its other arrays, read without building the model; a model file nested in it
    (one entry ``<name>.scd`` per class of a one-vs-rest model) is described under
    ``"nested"``, by entry name (one level deep: nothing nests further)."""
    return _info(read_model_file(path), nested=True)


def _info(file: ModelFile, nested: bool) -> dict[str, Any]:
    info = dict(file.header)
    info["arrays"] = {k: list(v.shape) for k, v in file.arrays.items() if k != "classes"}
    if "classes" in file.arrays:
        info["classes"] = file.arrays["classes"].tolist()
    inner = {name: _info(read_model_bytes(blob, f"{file.path}:{name}"), nested=False)
             for name, blob in file.blobs.items() if nested and name.endswith(NESTED_SUFFIX)}
    if inner:
        info["nested"] = inner
    return info


# ---------------------------------------------------------------------- checkpoints
def checkpoint_path(out: str | os.PathLike) -> str:
    """Where a model trained to be saved at ``out`` keeps its checkpoint: ``OUT.ckpt``."""
    return f"{os.fspath(out)}.ckpt"


def fit_and_save(model: Any, X: Any, y: Any, out: str | os.PathLike, *, resume: bool = False) -> Any:
    """Fit ``model`` and save it to ``out``; returns the fitted model.

    The model's parameters (and device) are checked first, before any file is touched; then
    ``out`` is locked (:func:`scd.files.exclusive`: a second fit to the same ``out`` fails at
    once) and temporary files a killed save left beside it are deleted.  A model with a
    ``checkpoint`` parameter (the SCD estimators) checkpoints to :func:`checkpoint_path`
    ``(out)``: with ``resume=True`` it continues from that file when it exists, otherwise the
    new fit's first finished votes replace a stale one.  The checkpoint is removed once the
    model is saved, and kept when the fit is interrupted.
    """
    ckpt = checkpoint_path(out) if "checkpoint" in model.get_params() else None
    if ckpt is None and resume:
        raise ValueError(f"{type(model).__name__} has no checkpoint to resume from.")
    _check_options(model)
    out = os.fspath(out)
    if os.path.isdir(out):
        raise ValueError(f"cannot save to {out!r}: it is a directory; give a file path.")
    with exclusive(out, "model file"):
        sweep_temporary(os.path.dirname(out) or ".", [os.path.basename(out), os.path.basename(ckpt or out)])
        if ckpt is None:
            model.fit(X, y)
        else:
            model.set_params(checkpoint=ckpt).fit(X, y, resume=resume)
        model.save(out)
        if ckpt is not None and os.path.exists(ckpt):
            os.remove(ckpt)
    return model


def _check_options(model: Any) -> None:
    """``ValueError`` for parameters ``model.fit`` would refuse that can be checked without data:
    scikit-learn's parameter constraints and a ``device`` this machine lacks."""
    from ._device import resolve_devices

    if hasattr(model, "_validate_params"):
        try:
            model._validate_params()
        except (TypeError, ValueError) as exc:  # scikit-learn raises InvalidParameterError, a ValueError
            raise ValueError(str(exc)) from None
    params = model.get_params(deep=False)
    if isinstance(params.get("device"), str):
        resolve_devices(params["device"])
    if hasattr(params.get("estimator"), "get_params"):  # a one-vs-rest model's binary estimator
        _check_options(params["estimator"])
