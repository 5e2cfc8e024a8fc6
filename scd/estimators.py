"""The public SCD estimators: one generic class and the four named variants of the paper.

=============  ==============  ================  =======================================
class          output loss     weights           paper defaults (CIFAR-10)
=============  ==============  ================  =======================================
``SCD01``      0-1             real, unit norm   ``n_iters=1000``
``SCDCE``      cross-entropy   real              ``n_iters=1000``
``SCD01BNN``   0-1             binary (+-1)      ``n_iters=10000``
``SCDCEBNN``   cross-entropy   binary (+-1)      ``n_iters=10000``
=============  ==============  ================  =======================================

``SCDClassifier(loss=..., binary_weights=...)`` covers all four with one class (handy in a
``GridSearchCV`` over the variant).
"""

from __future__ import annotations

from ._base import _BaseSCD
from ._params import PARAMS, VARIANT_PARAMS, constraints, keyword_init, parameters_doc

__all__ = ["SCD01", "SCD01BNN", "SCDCE", "SCDCEBNN", "SCDClassifier"]

_ATTRIBUTES_DOC = """
    Attributes
    ----------
    classes_ : ndarray of shape (2,)
    n_features_in_ : int
    W1_ : ndarray of shape (n_votes, n_features, hidden_nodes)
    b1_ : ndarray of shape (n_votes, hidden_nodes)
    w2_ : ndarray of shape (n_votes, hidden_nodes)
    b2_ : ndarray of shape (n_votes,)
    vote_scores_ : ndarray of shape (n_votes,)
        Training accuracy + balanced accuracy of every vote (the reference's ``obj``).
    best_index_ : int
        The vote with the highest ``vote_scores_``.
    seed_ : int
        Base seed actually used.
    fit_time_ : float
        Seconds spent training the votes this ``fit`` trained (with ``resume=True``, not the
        ones restored from the checkpoint).
    n_votes_resumed_ : int
        Votes restored from the checkpoint by ``fit(resume=True)`` (0 otherwise).
"""

_BINARY_DEFAULTS = {"n_iters": 10000}  # the paper trains the binary-weight variants 10 times longer
_GENERIC_PARAMS = {**VARIANT_PARAMS, **PARAMS}


def _doc(summary: str, table: dict = PARAMS, **defaults) -> str:
    return f"{summary}\n\n" + parameters_doc(table, **defaults) + _ATTRIBUTES_DOC


class SCD01(_BaseSCD):
    __doc__ = _doc("SCD ensemble with 0-1 loss at the output and real unit-norm weights.")
    _loss, _binary_weights = "01", False


class SCDCE(_BaseSCD):
    __doc__ = _doc("SCD ensemble with a cross-entropy output and real weights.")
    _loss, _binary_weights = "ce", False


class SCD01BNN(_BaseSCD):
    __doc__ = _doc("SCD ensemble with 0-1 loss and binary (+-1) weights.", **_BINARY_DEFAULTS)
    __init__ = keyword_init(PARAMS, **_BINARY_DEFAULTS)
    _loss, _binary_weights = "01", True


class SCDCEBNN(_BaseSCD):
    __doc__ = _doc("SCD ensemble with a cross-entropy output and binary (+-1) weights.", **_BINARY_DEFAULTS)
    __init__ = keyword_init(PARAMS, **_BINARY_DEFAULTS)
    _loss, _binary_weights = "ce", True


class SCDClassifier(_BaseSCD):
    __doc__ = _doc("SCD ensemble of any variant: ``loss`` in {'01', 'ce'} and ``binary_weights``.",
                   _GENERIC_PARAMS)
    _parameter_constraints = constraints(_GENERIC_PARAMS)
    __init__ = keyword_init(_GENERIC_PARAMS)

    def _variant(self):
        return self.loss, bool(self.binary_weights)
