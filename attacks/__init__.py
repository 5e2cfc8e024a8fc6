"""Attacks on any classifier through one query-counted target interface.

:class:`Oracle` (in :mod:`attacks.oracle`) is that interface; :mod:`attacks.art_adapter`
exposes an oracle to ART (imported lazily, ART is optional).
"""

from .oracle import REFUSED, NoGradientError, NoScoresError, Oracle, QueryBudgetExceeded

__all__ = ["REFUSED", "NoGradientError", "NoScoresError", "Oracle", "QueryBudgetExceeded"]
