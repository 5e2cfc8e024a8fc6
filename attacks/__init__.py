"""Attacks on any classifier through one query-counted interface.

:class:`Oracle` (:mod:`attacks.oracle`, over the model adapters of :mod:`attacks.adapters`)
is that interface; every attack is a class over the shared base in :mod:`attacks.base`
(validation, seeding, confirmation), with its vocabulary beside it: :mod:`attacks.criteria`
(the criterion and the :class:`~attacks.criteria.Probe` an attack queries),
:mod:`attacks.distances`, :mod:`attacks.result` (:class:`AttackResult`) and
:mod:`attacks.search` (shared search steps).  :class:`AttackSpec` (:mod:`attacks.spec`) names
an attack and its settings as one frozen, serialisable value.

Decision-based: :class:`HopSkipJump` (L2/L∞), :class:`Boundary` (L2), :class:`RayS` (L∞).
Score-based: :class:`ZOO` (L2).  Gradient-based: :class:`EAD` (L1), :class:`CarliniWagnerL2`
and :class:`CWL2EAD` (L2), :class:`FGM`, :class:`FGSM`, :class:`IFGM`, :class:`PGD`; on models
without gradients they take them from a surrogate (:mod:`attacks.surrogate`,
:mod:`attacks.substitute`; torch gradients in :mod:`attacks.autograd`).  White-box from the
weights of an SCD ensemble: :class:`StructureAttack` (L∞/L2/L1, :mod:`attacks.structure`).
:mod:`attacks.art_adapter` exposes an oracle to ART (imported lazily, ART is optional).
"""

from .base import NEEDS, Attack
from .boundary import Boundary
from .carlini_wagner import CarliniWagnerL2
from .distances import distance_key, distances, norm_name, parse_norm
from .ead import CWL2EAD, EAD
from .gradient import FGM, FGSM, IFGM, PGD
from .hop_skip_jump import HopSkipJump
from .oracle import REFUSED, NoGradientError, NoScoresError, Oracle, QueryBudgetExceeded
from .rays import RayS
from .result import AttackResult, robust_accuracy
from .search import nearest_other_class
from .spec import ATTACKS, AttackSpec
from .structure import StructureAttack
from .zoo import ZOO

__all__ = ["ATTACKS", "CWL2EAD", "FGM", "FGSM", "IFGM", "NEEDS", "PGD", "REFUSED", "ZOO", "Attack", "AttackResult",
           "AttackSpec", "Boundary", "CarliniWagnerL2", "EAD", "HopSkipJump", "NoGradientError", "NoScoresError",
           "Oracle", "QueryBudgetExceeded", "RayS", "StructureAttack", "distance_key", "distances",
           "nearest_other_class", "norm_name", "parse_norm", "robust_accuracy"]
