"""Attacks on any classifier through one query-counted target interface.

:class:`Oracle` (in :mod:`attacks.oracle`) is that interface; every attack is a class over
the shared base in :mod:`attacks.base` (validation, criterion, confirmation, the
:class:`AttackResult`).  Decision-based: :class:`HopSkipJump` (L2/L∞), :class:`Boundary`
(L2), :class:`RayS` (L∞).  Score-based: :class:`ZOO` (L2).  Gradient-based: :class:`EAD`
(L1), :class:`CarliniWagnerL2` and :class:`CWL2EAD` (L2), :class:`FGM`, :class:`FGSM`,
:class:`IFGM`, :class:`PGD`; on models without gradients they take them from a surrogate
(:mod:`attacks.surrogate`, :mod:`attacks.substitute`).  :mod:`attacks.art_adapter` exposes
an oracle to ART (imported lazily, ART is optional).
"""

from .base import Attack, AttackResult
from .boundary import Boundary
from .carlini_wagner import CarliniWagnerL2
from .ead import CWL2EAD, EAD
from .gradient import FGM, FGSM, IFGM, PGD
from .hop_skip_jump import HopSkipJump
from .oracle import REFUSED, NoGradientError, NoScoresError, Oracle, QueryBudgetExceeded
from .rays import RayS
from .zoo import ZOO

ATTACKS: dict[str, type[Attack]] = {"hsj": HopSkipJump, "boundary": Boundary, "rays": RayS, "fgsm": FGSM, "pgd": PGD,
                                    "zoo": ZOO, "ead": EAD, "cw": CarliniWagnerL2}
"""Attack classes by the name ``scd attack --method`` uses."""

__all__ = ["ATTACKS", "CWL2EAD", "FGM", "FGSM", "IFGM", "PGD", "REFUSED", "ZOO", "Attack", "AttackResult", "Boundary",
           "CarliniWagnerL2", "EAD", "HopSkipJump", "NoGradientError", "NoScoresError", "Oracle", "QueryBudgetExceeded",
           "RayS"]
