"""Small file-system helpers shared by the evaluation modules."""
from __future__ import annotations

import contextlib
import os
import secrets
import zipfile
import zlib
from pathlib import Path
from typing import IO, Iterator

_WRITE_MODES = ("wb", "w", "wt")

# What reading a truncated or corrupt zip file (.npz, model files) can raise: bad archive,
# bad compressed data, early end, an unsupported compression method, an encrypted entry.
ZIP_READ_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, RuntimeError)


def default_data_dir() -> Path:
    """Return the directory where datasets are looked for and downloaded to.

    ``$SCD_DATA_DIR`` if set, else ``$XDG_CACHE_HOME/scd/data`` (when
    ``XDG_CACHE_HOME`` is an absolute path, as the XDG spec requires), else
    ``~/.cache/scd/data``.  One overridable location lets all tools share a
    single copy of the (large) data files.
    """
    explicit = os.environ.get("SCD_DATA_DIR")
    if explicit:
        return Path(explicit).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME")
    if cache and Path(cache).is_absolute():
        return Path(cache) / "scd" / "data"
    return Path.home() / ".cache" / "scd" / "data"


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
