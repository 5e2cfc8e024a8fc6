"""A white-box attack that knows a sign network's structure (SCD ensembles only).

It asks no gradients and no scores: from the weights it picks the votes to flip and, in each,
the cheapest hidden units to cross, solves the LP (L∞, L1) or QP (L2) for the smallest
perturbation that realises that sign pattern, and improves by local search
(:func:`scd.certify.structure_search`).  Each candidate is then asked of the model through the
oracle (one counted query) and confirmed like every other attack's final example.  Its
distances are upper bounds that meet the certified lower bounds of :mod:`scd.certify` where
those are exact.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from scd.certify import SignEnsemble, parse_norm, structure_search

from .base import Attack
from .oracle import Oracle

__all__ = ["StructureAttack"]


class StructureAttack(Attack):
    """Structure-aware white-box attack on SCD ensembles.

    Parameters
    ----------
    norm : {"inf", 2, 1}
        The distance minimised.
    time_limit : float
        Seconds of search per sample.
    """

    name = "structure"

    def __init__(self, norm: Any = "inf", time_limit: float = 10.0):
        self.norm_name = norm
        self.time_limit = time_limit

    def _check_params(self) -> None:
        parse_norm(self.norm_name)
        if not (isinstance(self.time_limit, (int, float)) and self.time_limit > 0):
            raise ValueError(f"time_limit must be a positive number of seconds, got {self.time_limit!r}.")

    def _check_oracle(self, oracle: Oracle) -> None:
        SignEnsemble.from_estimator(oracle.model)  # ValueError naming what is supported

    def run(self, probe, x, best, rngs, *, active, starting_points, early_stop, progress):
        if probe.criterion.targeted:
            raise ValueError("StructureAttack is untargeted (two classes: the other class is the target).")
        ensemble = SignEnsemble.from_estimator(probe.oracle.model)
        box = (np.broadcast_to(probe.lower, x.shape[1]).astype(np.float64),
               np.broadcast_to(probe.upper, x.shape[1]).astype(np.float64))
        norm = parse_norm(self.norm)
        for i in np.flatnonzero(active):
            label = int(probe.criterion.labels[i])
            x_adv, _ = structure_search(ensemble, x[i], label, norm, box, self.time_limit)
            if x_adv is not None:
                owners = np.array([i])
                best.offer(owners, x_adv[None], probe.is_adversarial(x_adv[None], owners))
                best.record(owners)
        return {"time_limit": self.time_limit}
