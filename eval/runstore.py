"""A run directory that survives interruption: the settings once, then one record per finished unit.

Layout of ``RUN_DIR``:

* ``config.json``: the evaluation's kind and settings (written atomically when the run
  starts; a restarted run must ask for the same settings, or it is refused);
* ``records.jsonl``: one JSON line per finished work unit, appended and fsync'ed as each
  unit finishes, so a killed run loses only the units in flight.  A torn last line (the
  process died while writing it) is ignored on reading and overwritten by the next append;
* ``arrays/<key>.npz``: per-unit arrays too large for JSON (adversarial examples), written
  atomically before the unit's record, so a record never points to a missing file;
* ``results.json``, ``report.md`` and ``*.png``: the summary, rebuilt from the records by
  ``scd eval report``.
"""

from __future__ import annotations

import io
import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from .io import atomic_write_bytes

__all__ = ["RunStore"]

_KEY = re.compile(r"^[A-Za-z0-9_.=+-]+$")


class RunStore:
    """The records of one evaluation run in ``run_dir``; see the module docstring."""

    def __init__(self, run_dir: str | os.PathLike, config: dict[str, Any] | None = None):
        self.dir = Path(run_dir)
        self.config_path = self.dir / "config.json"
        self.records_path = self.dir / "records.jsonl"
        if config is None:
            if not self.config_path.exists():
                raise FileNotFoundError(f"{os.fspath(self.dir)!r} is not an evaluation run: no config.json there.")
            self.config = self._read_config()
        else:
            self.config = json.loads(json.dumps(config))  # the JSON form, as it is compared on resume
            if self.config_path.exists():
                old = self._read_config()
                if old != self.config:
                    changed = sorted(k for k in set(old) | set(self.config) if old.get(k) != self.config.get(k))
                    raise ValueError(f"{os.fspath(self.dir)!r} holds a run with other settings (differing: "
                                     f"{', '.join(changed)}); use another --out or the same settings to resume.")
            else:
                self.dir.mkdir(parents=True, exist_ok=True)
                atomic_write_bytes(self.config_path, json.dumps(self.config, indent=1).encode())
        self.records: dict[str, dict[str, Any]] = self._read_records()

    def _read_config(self) -> dict[str, Any]:
        try:
            return json.loads(self.config_path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"{os.fspath(self.config_path)!r} is unreadable or corrupt: {exc}") from None

    def _read_records(self) -> dict[str, dict[str, Any]]:
        records: dict[str, dict[str, Any]] = {}
        if not self.records_path.exists():
            return records
        data = self.records_path.read_bytes()
        lines = data.split(b"\n")
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                if number == len(lines):  # torn last line of a killed run: drop it
                    self._truncate_to(len(data) - len(line))
                    return records
                raise ValueError(f"{os.fspath(self.records_path)!r} line {number} is corrupt.") from None
            records[record["key"]] = record
        if data and not data.endswith(b"\n"):  # a whole last record that lost its newline: end it
            with open(self.records_path, "ab") as fh:
                fh.write(b"\n")
        return records

    def _truncate_to(self, size: int) -> None:
        with open(self.records_path, "r+b") as fh:
            fh.truncate(size)

    def done(self, key: str) -> bool:
        return key in self.records

    def add(self, record: dict[str, Any], arrays: dict[str, np.ndarray] | None = None) -> None:
        """Persist one finished unit (``record["key"]`` names it) and its arrays."""
        key = record["key"]
        if not _KEY.match(key):
            raise ValueError(f"unit key {key!r} must be letters, digits and _.=+- only.")
        if arrays:
            buffer = io.BytesIO()
            np.savez_compressed(buffer, **arrays)
            atomic_write_bytes(self.dir / "arrays" / f"{key}.npz", buffer.getvalue())
        line = json.dumps(record, allow_nan=False, separators=(",", ":")).encode() + b"\n"
        with open(self.records_path, "ab") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())
        self.records[key] = record

    def arrays(self, key: str) -> dict[str, np.ndarray]:
        """The arrays stored with unit ``key`` (never unpickled)."""
        path = self.dir / "arrays" / f"{key}.npz"
        if not path.exists():
            raise FileNotFoundError(f"arrays of unit {key!r} not found: {os.fspath(path)!r}")
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}

    def write_json(self, name: str, payload: dict[str, Any]) -> Path:
        path = self.dir / name
        atomic_write_bytes(path, json.dumps(payload, indent=1, allow_nan=False).encode())
        return path
