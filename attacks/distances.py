"""Norms and per-sample distances, shared by every attack and result.

A norm is ``1.0``, ``2.0`` or ``np.inf`` once parsed (:func:`parse_norm`); its JSON/CLI
spelling is ``1``, ``2`` or ``"inf"`` (:func:`norm_name`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["L0_TOLERANCE", "distance_key", "distances", "norm_name", "norm_of", "parse_norm"]

L0_TOLERANCE = 1e-6
"""A feature counts towards L0 when it moved by more than this."""


def parse_norm(norm: Any) -> float:
    """``1.0``, ``2.0`` or ``np.inf`` from the usual spellings (1, "l1", 2, "l2", inf, "inf", "linf")."""
    key = str(norm).lower().replace("_", "")
    if key in ("1", "1.0", "l1"):
        return 1.0
    if key in ("2", "2.0", "l2"):
        return 2.0
    if key in ("inf", "linf", "l-inf"):
        return np.inf
    raise ValueError(f"Unknown norm {norm!r}; use 1, 2 or 'inf'.")


def norm_name(norm: float) -> Any:
    """The JSON/CLI spelling of a parsed norm: 1, 2 or "inf"."""
    return "inf" if norm == np.inf else int(norm)


def distance_key(norm: float) -> str:
    """The field of :func:`distances` (and of an attack result) that holds ``norm``: l1, l2 or linf."""
    return {1.0: "l1", 2.0: "l2"}.get(norm, "linf")


def distances(x: np.ndarray, x_adv: np.ndarray) -> dict[str, np.ndarray]:
    """Per-row L0 (features moved by more than :data:`L0_TOLERANCE`), L1, L2 and L∞ of ``x_adv - x``."""
    delta = np.asarray(x_adv, np.float64) - np.asarray(x, np.float64)
    a = np.abs(delta)
    return {"l0": (a > L0_TOLERANCE).sum(axis=1).astype(np.float64), "l1": a.sum(axis=1),
            "l2": np.sqrt((delta * delta).sum(axis=1)), "linf": a.max(axis=1, initial=0.0)}


def norm_of(delta: np.ndarray, norm: float) -> np.ndarray:
    """Row norms of ``delta`` (L1, L2 or L∞) in float64."""
    delta = np.asarray(delta, np.float64)
    if norm == 2:
        return np.sqrt((delta * delta).sum(axis=1))
    if norm == 1:
        return np.abs(delta).sum(axis=1)
    return np.abs(delta).max(axis=1, initial=0.0)
