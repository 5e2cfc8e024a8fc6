"""Memory a fit will need, checked against the machine's (or a given) limit before any
allocation, so that impossible sizes end in a ``ValueError`` instead of a ``MemoryError`` or
a swapping machine: :func:`fit_memory` for the SCD ensembles, :func:`network_memory` for the
networks of the baselines."""

from __future__ import annotations

import os
from itertools import pairwise

__all__ = ["check_memory", "fit_memory", "machine_memory", "network_memory"]

_FLOAT = 4  # bytes of a float32


def fit_memory(n_votes: int, n_samples: int, n_features: int, hidden: int) -> int:
    """Bytes a fit needs at least: the trained weights about four times over (collected votes,
    the fitted ``W1_``, its prediction layout and a checkpoint being written), plus one vote's
    cached projections of every row (a few ``(n_samples, hidden)`` float32 arrays)."""
    weights = n_votes * hidden * (n_features + 3) * _FLOAT
    return 4 * weights + 4 * n_samples * hidden * _FLOAT


def network_memory(n_members: int, layers: list[int], itemsize: int) -> int:
    """Bytes a fit of ``n_members`` dense networks of layer widths ``layers`` (inputs first)
    needs at least: every member's weights, and four more copies for the one in training
    (gradients and the optimiser's moments), ``itemsize`` bytes each."""
    weights = sum((fan_in + 1) * fan_out for fan_in, fan_out in pairwise(layers))
    return (n_members + 4) * weights * itemsize


def machine_memory() -> int | None:
    """Physical memory of this machine in bytes, or ``None`` where it cannot be read."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def check_memory(needed: int, limit: float | None, what: str) -> None:
    """``ValueError`` when ``needed`` bytes exceed ``limit`` (``None``: the machine's memory)."""
    limit = machine_memory() if limit is None else limit
    if limit is not None and needed > limit:
        raise ValueError(f"{what} needs about {needed / 2**30:.1f} GiB, more than the {limit / 2**30:.1f} GiB "
                         "allowed; use fewer votes or hidden units (an SCD ensemble also takes max_memory, scd train "
                         "--max-memory, if the estimate is wrong for your machine).")
