"""Attacks on any classifier through one query-counted target interface.

:class:`Oracle` (in :mod:`attacks.oracle`) is that interface; every attack is a class over
the shared base in :mod:`attacks.base` (validation, criterion, confirmation, the
:class:`AttackResult`).  Decision-based: :class:`HopSkipJump` (L2/L∞), :class:`Boundary`
(L2), :class:`RayS` (L∞).  :mod:`attacks.art_adapter` exposes an oracle to ART (imported
lazily, ART is optional).
"""

from .base import Attack, AttackResult
from .boundary import Boundary
from .hop_skip_jump import HopSkipJump
from .oracle import REFUSED, NoGradientError, NoScoresError, Oracle, QueryBudgetExceeded
from .rays import RayS

ATTACKS: dict[str, type[Attack]] = {"hsj": HopSkipJump, "boundary": Boundary, "rays": RayS}
"""Attack classes by the name ``scd attack --method`` uses."""

__all__ = ["ATTACKS", "REFUSED", "Attack", "AttackResult", "Boundary", "HopSkipJump", "NoGradientError",
           "NoScoresError", "Oracle", "QueryBudgetExceeded", "RayS"]
