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

from sklearn.utils._param_validation import StrOptions

from ._base import _BaseSCD

__all__ = ["SCD01", "SCD01BNN", "SCDCE", "SCDCEBNN", "SCDClassifier"]

_COMMON_DOC = """
    Parameters
    ----------
    n_votes : int, default=100
        Independent votes (sign networks) in the ensemble; combined by majority vote.
    hidden_nodes : int, default=20
        Hidden sign units per vote (``H``).
    n_iters : int
        Coordinate-descent iterations per vote (``T``).
    nrows : float, default=0.75
        Fraction of each class drawn (without replacement) into every iteration's batch.
    w_inc1, w_inc2 : float, default=0.17, 0.2
        Step of a hidden / output weight candidate (real-weight variants; the binary
        variants flip signs instead).
    updated_features : int, default=128
        Random input features tried per hidden-node update (capped at ``n_features``).
    interval : int, default=20
        Half-width, in sorted batch rows, of the threshold window searched for every
        weight candidate.
    b_ratio : float, default=0.2
        Fraction of iterations that optimise balanced accuracy before switching to
        accuracy + balanced accuracy (the reference's schedule).
    voting : {"auto", "hard", "soft"}, default="auto"
        "hard": fraction of votes (0-1 variants' default); "soft": mean sigmoid of the
        votes' logits (cross-entropy variants' default).  Ties go to ``classes_[0]``.
    random_state : int, RandomState or None
        Vote ``v`` draws from its own stream seeded by ``(seed, v)``; an int seed gives the
        same ensemble on every run and for any ``n_jobs``/``group_size``.
    device : str, default="auto"
        "auto" (every CUDA GPU, else the CPU), "cpu", "cuda" or "cuda:N".
    n_jobs : int or None
        CPU only: vote groups trained as parallel joblib tasks (``None``: one group at a
        time using every core).  Honours ``joblib.parallel_config`` (dask, ray).
    group_size : int or None
        Votes trained together as one batched program (and saved together in the
        checkpoint).  ``None`` picks the largest group that fits the memory budget.
    checkpoint : path or None
        Save finished vote groups here; ``fit(X, y, resume=True)`` continues from it.
    verbose : int, default=0
        Show a progress bar over vote-iterations.

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


class SCD01(_BaseSCD):
    __doc__ = "SCD ensemble with 0-1 loss at the output and real unit-norm weights.\n" + _COMMON_DOC
    _loss, _binary_weights = "01", False


class SCDCE(_BaseSCD):
    __doc__ = "SCD ensemble with a cross-entropy output and real weights.\n" + _COMMON_DOC
    _loss, _binary_weights = "ce", False


class _BinaryDefaults(_BaseSCD):
    """Binary-weight variants: the paper trains them for 10,000 iterations."""

    def __init__(self, *, n_votes=100, hidden_nodes=20, n_iters=10000, nrows=0.75, w_inc1=0.17,
                 w_inc2=0.2, updated_features=128, interval=20, b_ratio=0.2, voting="auto",
                 random_state=None, device="auto", n_jobs=None, group_size=None, checkpoint=None,
                 verbose=0):
        super().__init__(n_votes=n_votes, hidden_nodes=hidden_nodes, n_iters=n_iters, nrows=nrows,
                         w_inc1=w_inc1, w_inc2=w_inc2, updated_features=updated_features,
                         interval=interval, b_ratio=b_ratio, voting=voting,
                         random_state=random_state, device=device, n_jobs=n_jobs,
                         group_size=group_size, checkpoint=checkpoint, verbose=verbose)


class SCD01BNN(_BinaryDefaults):
    __doc__ = "SCD ensemble with 0-1 loss and binary (+-1) weights.\n" + _COMMON_DOC
    _loss, _binary_weights = "01", True


class SCDCEBNN(_BinaryDefaults):
    __doc__ = "SCD ensemble with a cross-entropy output and binary (+-1) weights.\n" + _COMMON_DOC
    _loss, _binary_weights = "ce", True


class SCDClassifier(_BaseSCD):
    __doc__ = (
        "SCD ensemble of any variant: ``loss`` in {'01', 'ce'} and ``binary_weights``.\n"
        + _COMMON_DOC.replace("    Parameters\n    ----------\n", "    Parameters\n    ----------\n"
                              "    loss : {'01', 'ce'}, default='01'\n"
                              "    binary_weights : bool, default=False\n", 1)
    )
    _parameter_constraints = {
        **_BaseSCD._parameter_constraints,
        "loss": [StrOptions({"01", "ce"})],
        "binary_weights": ["boolean"],
    }

    def __init__(self, *, loss="01", binary_weights=False, n_votes=100, hidden_nodes=20, n_iters=1000,
                 nrows=0.75, w_inc1=0.17, w_inc2=0.2, updated_features=128, interval=20, b_ratio=0.2,
                 voting="auto", random_state=None, device="auto", n_jobs=None, group_size=None,
                 checkpoint=None, verbose=0):
        super().__init__(n_votes=n_votes, hidden_nodes=hidden_nodes, n_iters=n_iters, nrows=nrows,
                         w_inc1=w_inc1, w_inc2=w_inc2, updated_features=updated_features,
                         interval=interval, b_ratio=b_ratio, voting=voting,
                         random_state=random_state, device=device, n_jobs=n_jobs,
                         group_size=group_size, checkpoint=checkpoint, verbose=verbose)
        self.loss = loss
        self.binary_weights = binary_weights

    def _variant(self):
        return self.loss, bool(self.binary_weights)
