"""The SCD estimators' parameters, listed once.

Each entry gives a parameter's default, its allowed values (scikit-learn's constraint syntax,
checked when ``fit`` starts), its role and its documentation.  Everything else is derived from
this table: the estimators' ``__init__`` signatures (:func:`keyword_init`), their
``_parameter_constraints``, the per-vote ``TrainConfig`` of :mod:`scd._train`, the parameters a
checkpoint must match, and the Parameters section of the docstrings (:func:`parameters_doc`).

Roles:

* ``"variant"``: output loss and weight domain (a parameter of ``SCDClassifier`` only; the
  named classes fix them);
* ``"vote"``: a hyperparameter of every vote's training, a field of ``TrainConfig``;
* ``"ensemble"``: decides which votes are trained; with the vote ones, what resuming from a
  checkpoint must match;
* ``"run"``: how a fit runs or how the ensemble votes; free to change between a fit and its
  resumption.
"""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any, Callable

from sklearn.utils._param_validation import Interval, StrOptions

__all__ = ["CHECKPOINT_PARAMS", "PARAMS", "VARIANT_PARAMS", "VOTE_PARAMS", "Param", "constraints",
           "keyword_init", "parameters_doc"]


@dataclass(frozen=True)
class Param:
    """One estimator parameter: default, constraints, role, numpydoc type and description."""

    default: Any
    constraints: list
    role: str
    type: str
    doc: str


def _positive_int() -> list:
    return [Interval(Integral, 1, None, closed="left")]


VARIANT_PARAMS: dict[str, Param] = {
    "loss": Param("01", [StrOptions({"01", "ce"})], "variant", "{'01', 'ce'}",
                  "Output loss: 0-1 or cross-entropy."),
    "binary_weights": Param(False, ["boolean"], "variant", "bool", "Binary (+-1) instead of real weights."),
}

PARAMS: dict[str, Param] = {
    "n_votes": Param(100, _positive_int(), "ensemble", "int",
                     "Independent votes (sign networks) in the ensemble; combined by majority vote."),
    "hidden_nodes": Param(20, _positive_int(), "vote", "int", "Hidden sign units per vote (``H``)."),
    "n_iters": Param(1000, _positive_int(), "vote", "int", "Coordinate-descent iterations per vote (``T``)."),
    "nrows": Param(0.75, [Interval(Real, 0, 1, closed="right")], "vote", "float",
                   "Fraction of each class drawn (without replacement) into every iteration's batch."),
    "w_inc1": Param(0.17, [Interval(Real, 0, None, closed="neither")], "vote", "float",
                    "Step of a hidden weight candidate (real-weight variants; the binary variants "
                    "flip signs instead)."),
    "w_inc2": Param(0.2, [Interval(Real, 0, None, closed="neither")], "vote", "float",
                    "Step of an output weight candidate (real-weight variants)."),
    "updated_features": Param(128, _positive_int(), "vote", "int",
                              "Random input features tried per hidden-node update (capped at ``n_features``)."),
    "interval": Param(20, _positive_int(), "vote", "int",
                      "Half-width, in sorted batch rows, of the threshold window searched for every "
                      "weight candidate."),
    "b_ratio": Param(0.2, [Interval(Real, 0, 1, closed="both")], "vote", "float",
                     "Fraction of iterations that optimise balanced accuracy before switching to "
                     "accuracy + balanced accuracy (the reference's schedule)."),
    "voting": Param("auto", [StrOptions({"auto", "hard", "soft"})], "run", "{'auto', 'hard', 'soft'}",
                    "'hard': fraction of votes (0-1 variants' default); 'soft': mean sigmoid of the "
                    "votes' logits (cross-entropy variants' default).  Ties go to ``classes_[0]``."),
    "random_state": Param(None, ["random_state"], "ensemble", "int, RandomState or None",
                          "Vote ``v`` draws from its own stream seeded by ``(seed, v)``; an int seed gives "
                          "the same ensemble on every run and for any ``n_jobs``/``group_size``."),
    "device": Param("auto", [str], "run", "str",
                    "'auto' (every CUDA GPU, else the CPU), 'cpu', 'cuda' or 'cuda:N'."),
    "n_jobs": Param(None, [Integral, None], "run", "int or None",
                    "CPU only: vote groups trained as parallel joblib tasks (``None``: one group at a "
                    "time using every core).  Honours ``joblib.parallel_config`` (dask, ray)."),
    "group_size": Param(None, [*_positive_int(), None], "run", "int or None",
                        "Votes trained together as one batched program (and saved together in the "
                        "checkpoint).  ``None`` picks the largest group that fits the memory budget."),
    "checkpoint": Param(None, [str, os.PathLike, None], "run", "path or None",
                        "Save finished vote groups here, and the groups in flight every few hundred iterations "
                        "(not under dask or ray); ``fit(X, y, resume=True)`` continues from it."),
    "verbose": Param(0, ["verbose"], "run", "int", "Show a progress bar over vote-iterations."),
    "max_memory": Param(None, [Interval(Real, 0, None, closed="neither"), None], "run", "float or None",
                        "Most bytes ``fit`` may plan to use (its estimate from votes, hidden units, features "
                        "and rows is checked before anything is allocated); ``None``: the machine's memory."),
}

VOTE_PARAMS = tuple(name for name, p in PARAMS.items() if p.role == "vote")
CHECKPOINT_PARAMS = tuple(name for name, p in PARAMS.items() if p.role in ("ensemble", "vote"))


def constraints(table: dict[str, Param]) -> dict[str, list]:
    """``_parameter_constraints`` of an estimator whose parameters are ``table``."""
    return {name: p.constraints for name, p in table.items()}


def keyword_init(table: dict[str, Param], **defaults: Any) -> Callable[..., None]:
    """An ``__init__`` taking the parameters of ``table`` as keyword-only arguments (``defaults``
    overrides some defaults) and storing each one verbatim, as scikit-learn requires.

    Its ``__signature__`` lists every parameter, so ``get_params``, ``clone`` and ``repr`` see an
    ordinary explicit signature, and a wrong name raises the ``TypeError`` such a signature gives.
    """
    unknown = set(defaults) - set(table)
    if unknown:
        raise TypeError(f"defaults for unknown parameters {sorted(unknown)}")
    keyword = inspect.Parameter.KEYWORD_ONLY
    signature = inspect.Signature(
        [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
        + [inspect.Parameter(name, keyword, default=defaults.get(name, p.default)) for name, p in table.items()]
    )

    def __init__(self, **params: Any) -> None:
        bound = signature.bind(self, **params)
        bound.apply_defaults()
        for name in table:
            setattr(self, name, bound.arguments[name])

    __init__.__signature__ = signature  # type: ignore[attr-defined]
    return __init__


def parameters_doc(table: dict[str, Param], **defaults: Any) -> str:
    """The numpydoc Parameters section for ``table`` (with ``defaults`` overriding some)."""
    lines = ["    Parameters", "    ----------"]
    for name, p in table.items():
        lines.append(f"    {name} : {p.type}, default={defaults.get(name, p.default)!r}")
        lines.append(f"        {p.doc}")
    return "\n".join(lines) + "\n"
