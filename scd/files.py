"""Atomic file writes, exclusive locks, and what reading a damaged zip file can raise.

Every file this package writes (model files, checkpoints, results) goes through
:func:`atomic_open`: a temporary file in the same folder, flushed and fsync'ed, then renamed
onto the target, so a reader never sees a partial file and an interrupted write keeps the old
content.  A temporary file is deleted when its write fails or is interrupted; one left by a
killed process is swept by the next :func:`exclusive` holder of its target.  The evaluation
layer re-exports these names from :mod:`eval.io`.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import zipfile
import zlib
from pathlib import Path
from typing import IO, Iterator

__all__ = ["ZIP_READ_ERRORS", "atomic_open", "atomic_write_bytes", "exclusive", "sweep_temporary"]

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
    if target.is_dir():
        raise ValueError(f"cannot write {os.fspath(path)!r}: it is a directory; give a file path.")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(_temporary_name(target.name, secrets.token_hex(8)))
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


def _temporary_name(name: str, token: str) -> str:
    """The name of :func:`atomic_open`'s temporary file for target ``name``."""
    return f".{name}.{token}.tmp"


_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.[0-9a-f]{16}\.tmp$")


def sweep_temporary(folder: str | os.PathLike[str], names: list[str] | None = None) -> list[str]:
    """Delete the temporary files :func:`atomic_open` left in ``folder`` (a killed write), only
    those of targets ``names`` when given; returns the names deleted.  Call it only while no
    other process writes those targets (under :func:`exclusive`)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for entry in folder.iterdir():
        match = _TEMPORARY.match(entry.name)
        if match and (names is None or match["name"] in names) and entry.is_file():
            entry.unlink(missing_ok=True)
            removed.append(entry.name)
    return removed


@contextlib.contextmanager
def exclusive(path: str | os.PathLike[str], what: str) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (a file or a folder) for the ``with`` body: a second
    process (or a second holder in this one) gets a ``ValueError`` at once.

    The lock is :mod:`filelock`'s on ``PATH.lock`` beside it, which the holder deletes on leaving
    (filelock tolerates a lock file removed under a waiting peer); a lock left by a killed
    process is free again, as the kernel releases it with the process.  ``what`` names ``path``
    in the message, e.g. ``"model file"`` or ``"run directory"``.
    """
    from filelock import FileLock, Timeout

    lock_path = f"{Path(path).resolve()}.lock"
    created = [p for p in Path(lock_path).parents if not p.exists()]  # removed again if left empty
    Path(lock_path).parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(lock_path, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise ValueError(f"{what} {os.fspath(path)!r} is in use by another process (it holds {lock_path!r}); "
                         "wait for that run to end, or choose another path.") from None
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(lock_path)
        lock.release()
        for folder in created:  # deepest first; one that was written to stays
            with contextlib.suppress(OSError):
                folder.rmdir()


def _fsync_dir(directory: Path) -> None:
    """Persist a rename by fsync'ing its directory (POSIX only)."""
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
