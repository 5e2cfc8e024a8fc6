"""Safe model files: numpy arrays plus JSON metadata in one zip, never pickle.

A bundle is a zip archive holding ``metadata.json`` and one ``<name>.npy`` per array.
Arrays are read with ``allow_pickle=False``, so loading a bundle cannot run code from the
file; object arrays are refused when saving.  Files are written atomically (a temporary
file in the same folder, then a rename), so an interrupted save never leaves a partial
model.  ``metadata.json`` carries ``format``, ``format_version``, ``kind`` and the package
version; a file written by a newer format version is refused with a clear error.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from typing import Any

import numpy as np

from eval.io import ZIP_READ_ERRORS, atomic_open

__all__ = ["FORMAT", "FORMAT_VERSION", "load_bundle", "save_bundle"]

FORMAT = "scd-bundle"
FORMAT_VERSION = 1
_META = "metadata.json"


def save_bundle(path: str | os.PathLike, kind: str, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` and JSON-serialisable ``meta`` to ``path`` atomically."""
    from . import __version__

    header = {"format": FORMAT, "format_version": FORMAT_VERSION, "kind": kind, "scd_version": __version__}
    payload = json.dumps({**header, **meta}, indent=1, sort_keys=True).encode()
    with atomic_open(path, "wb") as fh:
        with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_STORED) as zf:
            zf.writestr(_META, payload)
            for name, array in arrays.items():
                array = np.asarray(array)
                if array.dtype.hasobject:
                    raise ValueError(f"array {name!r} has dtype object, which cannot be saved safely")
                buf = io.BytesIO()
                np.lib.format.write_array(buf, array, allow_pickle=False)
                zf.writestr(f"{name}.npy", buf.getvalue())


def load_bundle(path: str | os.PathLike, kind: str | None = None) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read a bundle written by :func:`save_bundle`: ``(metadata, arrays)``.

    Raises ``FileNotFoundError`` when ``path`` does not exist and ``ValueError`` when it is
    not a bundle, is truncated or corrupt, was written by a newer format version, or holds
    a different ``kind`` than requested.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"model file not found: {os.fspath(path)!r}")
    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
            if bad is not None:
                raise ValueError(f"member {bad!r} fails its checksum")
            meta = json.loads(zf.read(_META))
            arrays = {}
            for name in zf.namelist():
                if name.endswith(".npy"):
                    with zf.open(name) as fh:
                        arrays[name[:-4]] = np.lib.format.read_array(fh, allow_pickle=False)
    except (*ZIP_READ_ERRORS, KeyError, ValueError, json.JSONDecodeError) as exc:
        raise ValueError(f"{os.fspath(path)!r} is not a readable scd model file (truncated or corrupt?): {exc}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{os.fspath(path)!r} is not an scd model file (format {meta.get('format')!r})")
    version = meta.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ValueError(
            f"{os.fspath(path)!r} was written with model format version {version}; this scd reads "
            f"versions up to {FORMAT_VERSION}. Upgrade scd to load it."
        )
    if kind is not None and meta.get("kind") != kind:
        raise ValueError(f"{os.fspath(path)!r} holds a {meta.get('kind')!r}, not a {kind!r}")
    return meta, arrays
