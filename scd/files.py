"""Atomic file writes, and what reading a damaged zip file can raise.

Every file this package writes (model files, checkpoints, results) goes through
:func:`atomic_open`: a temporary file in the same folder, flushed and fsync'ed, then renamed
onto the target, so a reader never sees a partial file and an interrupted write keeps the old
content.  The evaluation layer re-exports these names from :mod:`eval.io`.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import zipfile
import zlib
from pathlib import Path
from typing import IO, Iterator

__all__ = ["ZIP_READ_ERRORS", "atomic_open", "atomic_write_bytes"]

_WRITE_MODES = ("wb", "w", "wt")

# What reading a truncated or corrupt zip file (.npz, model files) can raise: bad archive,
# bad compressed data, early end, an unsupported compression method, an encrypted entry.
ZIP_READ_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, RuntimeError)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file next to ``path``; move it onto ``path`` on success.

    The temporary file lives in the same directory (so ``os.replace`` is an
    atomic rename), is flushed and fsync'ed before the rename, and is deleted
    if the ``with`` body raises, so readers never see a partial file and an
    existing ``path`` keeps its old content.  Parent directories are created.

    Parameters
    ----------
    path : path-like
        Final destination.
    mode : {"wb", "w", "wt"}
        Binary or text (UTF-8) write mode.
    """
    if mode not in _WRITE_MODES:
        raise ValueError(f"atomic_open mode must be one of {_WRITE_MODES}, got {mode!r}")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(8)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    fd = os.open(tmp, flags, 0o666)
    try:
        with open(fd, mode, encoding=None if "b" in mode else "utf-8") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(target.parent)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_open`)."""
    with atomic_open(path, "wb") as fh:
        fh.write(data)


def _fsync_dir(directory: Path) -> None:
    """Persist a rename by fsync'ing its directory (POSIX only)."""
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
