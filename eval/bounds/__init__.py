"""Certified intervals ``[lower, upper]`` of the minimum distortion for every model the package
trains: the SCD ensembles (:mod:`scd.certify`) and the baselines of :mod:`eval.baselines`.

=========================  ===================================================================
model                      lower bound / upper bound
=========================  ===================================================================
SCD ensembles              :func:`scd.certify.certify` (sweep, joint crossing, branch and bound)
``RandomForestEnsemble``   ART's clique method and the exact MILP of Kantchelian et al. (HiGHS) /
                           the MILP's incumbent (:mod:`.forest`)
``MLPEnsemble``            linear bound propagation (CROWN-style) with bisection (:mod:`.mlp`) /
                           PGD with a search over its radius (white-box gradients)
``CNNEnsemble``            interval bound propagation with bisection (:mod:`.cnn`) / PGD
=========================  ===================================================================

Every result is a :class:`scd.certify.Bound`: ``lower`` is certified for float32 inputs in the
box, as the model really predicts (its rounding included); ``upper`` is the distance of an
example the model confirms; the methods name where each came from.  ``docs/certify_baselines.md``
has the arguments.

>>> from eval.bounds import certify_model
>>> [b.record() for b in certify_model(forest, X, y, norm="inf", time_limit=10)]
"""

from __future__ import annotations

import importlib.util
import time

import numpy as np

from scd.certify import Bound, certify, check_inputs, parse_norm

from ._inputs import distance, flips

__all__ = ["SUPPORTED", "certify_model", "model_kind"]

SUPPORTED = ("SCD ensembles (SCD01, SCDCE, SCD01BNN, SCDCEBNN, SCDClassifier), RandomForestEnsemble, "
             "MLPEnsemble (one hidden layer of logistic units) and CNNEnsemble")


def model_kind(model) -> str:
    """``"scd"``, ``"rf"``, ``"mlp"`` or ``"cnn"``; ``ValueError`` naming what is supported for
    any other model, or one that is not fitted."""
    from scd import SCD01, SCD01BNN, SCDCE, SCDCEBNN, OneVsRest, SCDClassifier

    from ..baselines import CNNEnsemble, MLPEnsemble, RandomForestEnsemble

    kinds = (((SCD01, SCD01BNN, SCDCE, SCDCEBNN, SCDClassifier), "scd"), (RandomForestEnsemble, "rf"), (MLPEnsemble, "mlp"), (CNNEnsemble, "cnn"))
    for cls, kind in kinds:
        if isinstance(model, cls):
            if not hasattr(model, "classes_"):
                raise ValueError(f"{type(model).__name__} is not fitted; fit or load it first.")
            if kind == "mlp":
                from .mlp import MLPNet

                MLPNet.from_estimator(model)  # refuses other architectures
            return kind
    if isinstance(model, OneVsRest):
        raise ValueError(f"certified bounds are implemented for the binary models ({SUPPORTED}), not yet for a "
                         "one-vs-rest model: its per-class models (estimators_) can be bounded one at a time (class "
                         "vs rest), which does not bound its multi-class label.")
    raise ValueError(f"certified bounds are implemented for {SUPPORTED}, not for {type(model).__name__}.")


def certify_model(model, X, y=None, *, norm="inf", bounds=(0.0, 1.0), time_limit: float | None = 10.0,
                  progress=None, seed: int = 0, attack_rounds: int = 10) -> list[Bound]:
    """Bounds on the minimum distortion of every row of ``X`` for any supported model.

    Arguments as :func:`scd.certify.certify`.  ``time_limit``: seconds per row for the search
    after the certificate (the forest's MILP; the SCD branch and bound); 0 gives the
    certificate alone (and, for the networks, no attack: ``upper`` is inf).  ``seed``: the
    attacks' seed; ``attack_rounds``: the rounds of PGD's bisection over its radius (the
    networks' upper bound).
    """
    kind = model_kind(model)
    norm = parse_norm(norm)
    if time_limit is not None and time_limit < 0:
        raise ValueError(f"time_limit must be >= 0 or None; got {time_limit!r}.")
    if kind == "scd":
        return certify(model, X, y, norm=norm, bounds=bounds, time_limit=time_limit, progress=progress)
    X, lo, hi = check_inputs(X, int(model.n_features_in_), bounds)
    truth = None if y is None else np.asarray(y)
    if truth is not None and truth.shape != (len(X),):
        raise ValueError(f"y must have shape ({len(X)},); got {truth.shape}.")
    predicted = model.predict(X)
    labels = (predicted == model.classes_[1]).astype(np.int64)
    if kind != "rf" and attack_rounds < 1:
        raise ValueError(f"attack_rounds must be >= 1; got {attack_rounds!r}.")
    one = {"rf": _forest_sample, "mlp": _network_sample, "cnn": _network_sample}[kind]
    context = _context(kind, model)
    out = []
    for i, x in enumerate(X):
        if truth is not None and predicted[i] != truth[i]:
            bound = Bound(0.0, 0.0, "misclassified", "misclassified", x.copy(), True)
        else:
            start = time.perf_counter()
            bound = one(model, context, x, int(labels[i]), norm, (lo, hi), time_limit, (seed, attack_rounds))
            bound.seconds = time.perf_counter() - start
        out.append(bound)
        if progress is not None:
            progress(bound)
    return out


def _context(kind: str, model):
    if kind == "rf":
        from .forest import Forest

        return Forest.from_estimator(model)
    if kind == "mlp":
        from .mlp import MLPNet

        return MLPNet.from_estimator(model)
    from .cnn import IntervalNet

    return IntervalNet.from_estimator(model)


def _forest_sample(model, forest, x, label, norm, box, time_limit, attack) -> Bound:
    from .forest import clique_bound, forest_milp

    clique = 0.0
    art = importlib.util.find_spec("art") is not None  # the `art` extra
    if art and x.min() >= 0 and x.max() <= 1:  # ART's clique method takes inputs in [0, 1] only
        clique = clique_bound(forest, x, label, norm)
    if time_limit == 0:
        return Bound(clique, np.inf, "art clique" if art else "none (no MILP; the art extra gives ART's clique bound)",
                     "")
    bound = forest_milp(model, forest, x, label, norm, box, time_limit, start=clique)
    if clique > bound.lower:
        bound.lower, bound.lower_method = min(clique, bound.upper), "art clique"
    return bound


def _network_sample(model, net, x, label, norm, box, time_limit, attack) -> Bound:
    """The MLP's or CNN's interval: the bisection on the certified radius, then the attack,
    whose search starts at 4 times that radius (then at the box's diameter if it fails there)."""
    diameter = distance(box[1] - box[0], norm)
    lower = net.radius(x, label, norm, box, diameter)
    if lower >= diameter:  # the ball covers the box: nothing in it changes the prediction
        return Bound(np.inf, np.inf, net.method, "", None, True)
    upper, x_adv = np.inf, None
    if time_limit != 0:
        for start in dict.fromkeys(e for e in (min(4 * lower, diameter), diameter) if e > 0):
            upper, x_adv = _attack_upper(model, x, label, norm, box, start, *attack)
            if x_adv is not None:
                break
    return Bound(min(lower, upper), upper, net.method, "pgd" if x_adv is not None else "", x_adv, lower >= upper)


def _attack_upper(model, x, label, norm, box, eps, seed, rounds) -> tuple[float, np.ndarray | None]:
    """PGD (white-box, exact gradients) with a bisection over its radius below ``eps``; its
    example is confirmed on the model here again."""
    from attacks import PGD

    attack = PGD(norm={"inf": "inf", "2": 2, "1": 1}[norm], eps=eps, steps=20,
                 eps_search=True, search_steps=rounds)
    result = attack(model, x[None], bounds=box, seed=seed)
    if not result.success[0]:
        return np.inf, None
    x_adv = np.asarray(result.x_adv[0], np.float32)
    if not flips(model, x_adv, label):
        return np.inf, None
    return distance(x_adv.astype(np.float64) - x, norm), x_adv
