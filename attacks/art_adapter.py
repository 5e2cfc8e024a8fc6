"""Expose our models to the Adversarial Robustness Toolbox (ART), with every query counted.

:func:`to_art_classifier` wraps a model (or an :class:`~attacks.oracle.Oracle`) as an ART
``BlackBoxClassifier`` whose ``predict_fn`` asks the oracle, so ART's decision- and
score-based attacks (HopSkipJump, Boundary, ZOO, ...) run on SCD ensembles and every row
ART sends is counted.  ART is an optional extra (``pip install scd[art]``), imported only
inside :func:`to_art_classifier`.

ART attacks loop over samples internally and never say which sample a query is for, so
their rows count as *unattributed*.  :func:`art_generate` runs an ART attack one sample at
a time with attribution switched on, which gives per-sample counts and lets the oracle's
budget stop an ART attack: ART's requests are all-or-nothing (``strict=True``), and a
sample whose budget runs out comes back unchanged with ``completed=False``.

Gradient models are not exposed with gradients here (``BlackBoxClassifier`` has none); for
a white-box ART attack on a torch module use ART's own ``PyTorchClassifier`` (and cast
inputs to float32 in ``forward``: ART's HopSkipJump feeds float64 under numpy 2).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

import numpy as np

from .oracle import Oracle, QueryBudgetExceeded

__all__ = ["ArtPredictFn", "art_generate", "to_art_classifier"]


class ArtPredictFn:
    """The ``predict_fn`` given to ART: rows ``(n, *input_shape)`` to scores ``(n, n_classes)``.

    ``output="scores"`` returns the oracle's scores; ``"labels"`` returns one-hot hard labels
    (all that decision-based attacks use, and all a label-only model can give).  Binary
    models always get two columns (ART's HopSkipJump rejects a single one).
    """

    def __init__(self, oracle: Oracle, output: str):
        self.oracle = oracle
        self.output = output
        self.sample_id: int | None = None  # set by attribute_to; None: rows are unattributed

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = _snap(np.asarray(x).reshape(len(x), -1), self.oracle)
        if self.output == "scores":
            return np.asarray(self.oracle.scores(x, self.sample_id, strict=True), dtype=np.float32)
        y = self.oracle.labels(x, self.sample_id, strict=True)
        return np.eye(self.oracle.n_classes, dtype=np.float32)[y]

    @contextmanager
    def attribute_to(self, sample_id: int) -> Iterator[None]:
        """Count every row ART sends inside the block as a query of ``sample_id``."""
        previous, self.sample_id = self.sample_id, int(sample_id)
        try:
            yield
        finally:
            self.sample_id = previous


def to_art_classifier(model: Any, *, clip_values: tuple[Any, Any] | None = None, output: str = "auto",
                      **oracle_kwargs: Any):
    """An ART ``BlackBoxClassifier`` whose queries go through an :class:`Oracle`.

    Parameters
    ----------
    model : Oracle or any model :class:`Oracle` accepts
        An oracle is used as is (its counters keep counting); anything else is wrapped in
        ``Oracle(model, bounds=clip_values, **oracle_kwargs)``.
    clip_values : (lower, upper), optional
        Input box, scalars or ``(n_features,)`` arrays.  Required for a raw model; for an
        oracle it defaults to the oracle's bounds and must match them if given.
    output : {"auto", "scores", "labels"}, default="auto"
        What ``predict_fn`` returns: scores, or one-hot labels; "auto" picks scores when the
        model has them.
    **oracle_kwargs
        Passed to :class:`Oracle` (``n_features``, ``classes``, ``batch_size``, ``budget``, ...).

    Returns
    -------
    art.estimators.classification.BlackBoxClassifier
        With ``input_shape=(n_features,)``, ``nb_classes=oracle.n_classes``; the oracle is
        ``classifier.predict_fn.oracle``.
    """
    from art.estimators.classification import BlackBoxClassifier

    oracle = _as_oracle(model, clip_values, oracle_kwargs)
    if output == "auto":
        output = "scores" if oracle.has_scores else "labels"
    if output not in ("scores", "labels"):
        raise ValueError(f"output must be 'auto', 'scores' or 'labels', got {output!r}.")
    if output == "scores" and not oracle.has_scores:
        raise ValueError(f"{oracle!r} answers labels only; use output='labels'.")
    return BlackBoxClassifier(ArtPredictFn(oracle, output), input_shape=(oracle.n_features,),
                              nb_classes=oracle.n_classes, clip_values=_art_clip_values(oracle))


def art_generate(attack: Any, x: Any, y: Any = None, *, ids: Any = None,
                 x_adv_init: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """Run an ART evasion attack one sample at a time, attributing its queries per sample.

    Parameters
    ----------
    attack : art.attacks.EvasionAttack
        Built on a classifier from :func:`to_art_classifier`.
    x : ndarray of shape (n, n_features)
        Inputs, checked by the oracle.
    y : ndarray, optional
        ART's ``y`` (labels or one-hot targets), sliced per sample.
    ids : array-like of int, optional
        Sample id of each row of ``x`` for the counters; default ``arange(n)``.
    x_adv_init : ndarray of shape (n, n_features), optional
        Starting points for ART's HopSkipJump / BoundaryAttack, sliced per sample.

    Returns
    -------
    x_adv : ndarray of shape (n, n_features), float32
        ART's output; the input itself where ART was stopped by the budget.
    completed : ndarray of shape (n,), bool
        False where the sample's budget ran out before ART finished.
    """
    predict_fn = getattr(attack.estimator, "predict_fn", None)
    if not isinstance(predict_fn, ArtPredictFn):
        raise TypeError("art_generate needs an attack built on a classifier from to_art_classifier.")
    x = predict_fn.oracle.check(x)
    ids = np.arange(len(x)) if ids is None else np.asarray(ids)
    if ids.shape != (len(x),):
        raise ValueError(f"ids must have shape ({len(x)},), got {ids.shape}.")
    x_adv, completed = x.copy(), np.ones(len(x), bool)
    for i in range(len(x)):
        with predict_fn.attribute_to(ids[i]):
            try:
                extra = {} if x_adv_init is None else {"x_adv_init": np.asarray(x_adv_init, np.float32)[i : i + 1]}
                x_adv[i] = attack.generate(x[i : i + 1], y=None if y is None else np.asarray(y)[i : i + 1],
                                           **extra)[0]
            except QueryBudgetExceeded:
                completed[i] = False
    return x_adv, completed


def _as_oracle(model: Any, clip_values: Any, oracle_kwargs: dict) -> Oracle:
    if not isinstance(model, Oracle):
        if clip_values is None:
            raise ValueError("clip_values=(lower, upper) is required to wrap a model; ART otherwise infers the "
                             "box from each batch.")
        return Oracle(model, bounds=clip_values, **oracle_kwargs)
    if oracle_kwargs:
        raise TypeError(f"Oracle options {sorted(oracle_kwargs)} cannot be applied to an existing Oracle.")
    if clip_values is not None:
        lower, upper = (np.broadcast_to(np.asarray(b, np.float32), (model.n_features,)) for b in clip_values)
        if not (np.array_equal(lower, model.lower) and np.array_equal(upper, model.upper)):
            raise ValueError("clip_values differ from the oracle's bounds; leave clip_values out to use them.")
    return model


def _snap(x: np.ndarray, oracle: Oracle) -> np.ndarray:
    """Clip values that ART's float arithmetic pushed out of the box by rounding only (at most
    1e-6 of the box width); anything further out still fails the oracle's check."""
    lower, upper = oracle.bounds
    tol = 1e-6 * (upper - lower)
    near = (x >= lower - tol) & (x <= upper + tol)
    return np.where(near, np.clip(x, lower, upper), x)


def _art_clip_values(oracle: Oracle) -> tuple[Any, Any]:
    """Scalars when the box is the same for every feature (ART's common case), else arrays."""
    lower, upper = oracle.bounds
    if np.all(lower == lower[0]) and np.all(upper == upper[0]):
        return float(lower[0]), float(upper[0])
    return lower.copy(), upper.copy()
