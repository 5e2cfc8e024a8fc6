"""Attacks on any classifier through one query-counted target interface.

:class:`Oracle` (in :mod:`attacks.oracle`) is that interface; every attack is a class over
the shared base in :mod:`attacks.base` (validation, criterion, confirmation, the
:class:`AttackResult`).  Decision-based: :class:`HopSkipJump` (L2/L∞), :class:`Boundary`
(L2), :class:`RayS` (L∞).  Gradient-based (for differentiable targets): :class:`FGM`,
:class:`FGSM`, :class:`IFGM`, :class:`PGD`.  :mod:`attacks.art_adapter` exposes an oracle to ART (imported
lazily, ART is optional).
"""

from .base import Attack, AttackResult
from .boundary import Boundary
from .gradient import FGM, FGSM, IFGM, PGD
from .hop_skip_jump import HopSkipJump
from .oracle import REFUSED, NoGradientError, NoScoresError, Oracle, QueryBudgetExceeded
from .rays import RayS

ATTACKS: dict[str, type[Attack]] = {"hsj": HopSkipJump, "boundary": Boundary, "rays": RayS}
"""Decision-based attack classes by the name ``scd attack --method`` uses."""

__all__ = ["ATTACKS", "FGM", "FGSM", "IFGM", "PGD", "REFUSED", "Attack", "AttackResult", "Boundary", "HopSkipJump",
           "NoGradientError", "NoScoresError", "Oracle", "QueryBudgetExceeded", "RayS"]
