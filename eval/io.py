"""Small file-system helpers shared by the evaluation modules.

Atomic writes, locks and the zip read errors live in the core (:mod:`scd.files`) and are re-exported
here, so evaluation code keeps importing them from one place.
"""
from __future__ import annotations

import os
from pathlib import Path

from scd.files import (
    ZIP_READ_ERRORS,
    atomic_open,
    atomic_write_bytes,
    exclusive,
    sweep_temporary,
)

__all__ = ["ZIP_READ_ERRORS", "atomic_open", "atomic_write_bytes", "default_data_dir", "exclusive", "sweep_temporary"]


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
