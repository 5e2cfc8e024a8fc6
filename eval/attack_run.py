"""One attack on one saved model: the computation behind ``scd attack``.

``run(config)`` loads the model (a file this package saved, or any classifier as a ``.onnx``
file: :mod:`eval.onnx_model`) and the dataset, picks the first ``n_samples`` test points the
model classifies correctly (or the given indices), attacks them through a query-counted
:class:`~attacks.oracle.Oracle`, and returns the :class:`~attacks.result.AttackResult`;
``main(config)`` also prints a table and writes the JSON record (and the adversarial
examples as ``.npz``) atomically.

Gradient attacks (``fgsm``, ``pgd``, ``ead``, ``cw``) use the model's own gradients when it
has them (the MLP, CNN and BNN baselines).  ``surrogate`` names another source: ``smooth``
(the SCD ensemble's own weights with sign replaced by tanh; the default for SCD ensembles) or
``substitute`` (an MLP trained on the model's labels of ``seed_size`` other test points, with
Jacobian augmentation; forests and ONNX models need it); either way every label the attack
asks for, and the final confirmation, come from the real model.  With several ``eps`` the
run also gives the robust-accuracy curve (fgsm/pgd: one run per ε; other attacks: read off
their distances), and query-based attacks a query-budget table.  Without an attack
(``attack=None``, ``scd attack --method substitute``) the run is the transfer curve of the paper's Figure 2 instead: FGSM on the
substitute at each L∞ budget of ``substitute_eps``, the model's accuracy on the results and
on Gaussian noise of the same size.
"""

from __future__ import annotations

import io
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from attacks import AttackResult, AttackSpec, nearest_other_class, robust_accuracy

from .points import check_classes_match, choose_points, seed_set

__all__ = ["AttackConfig", "budget_curve", "format_table", "gradient_source", "main", "run"]

SURROGATES = ("smooth", "substitute")
QUERY_BUDGETS = (100, 1000, 10000)
"""Query counts at which ``scd attack`` reports each sample's best distance so far (budget curve)."""
SUBSTITUTE_EPS = (0.0, 0.015625, 0.03125, 0.0625, 0.125, 0.25)
_GRADIENTS = ("gradients", "logit_gradients")


@dataclass(frozen=True)
class AttackConfig:
    """Everything ``scd attack`` needs, checked when it is made.  ``attack`` is the attack's
    spec, or None for the substitute transfer curve (budgets ``substitute_eps``, default
    :data:`SUBSTITUTE_EPS`)."""

    model_path: str
    attack: AttackSpec | None = AttackSpec()
    data: str = "digits"
    classes: tuple[int, ...] | str | None = None
    data_dir: str | None = None
    data_path: str | None = None
    n_samples: int = 10
    indices: tuple[int, ...] | None = None
    target: int | None = None
    start: str = "uniform"
    surrogate: str | None = None
    seed_size: int = 200
    substitute_rounds: int = 20
    substitute_epochs: int = 20
    substitute_eps: tuple[float, ...] | None = None
    seed: int = 0
    batch_size: int = 1024
    out: str | None = None
    save_examples: str | None = None
    quiet: bool = False

    def __post_init__(self) -> None:
        spec = self.attack
        if spec is None:
            if self.surrogate is not None:
                raise ValueError("method substitute trains its own substitute; drop --surrogate.")
            if self.save_examples:
                raise ValueError("--save-examples is not available for method substitute (one set per budget).")
            if self.target is not None:
                raise ValueError("method substitute is untargeted; drop --target.")
            if any(not (np.isfinite(e) and e >= 0) for e in self.eps):
                raise ValueError(f"--eps must be finite budgets >= 0, got {list(self.eps)}.")
        else:
            spec.validate()
            if self.surrogate is not None and spec.needs not in _GRADIENTS:
                raise ValueError(f"--surrogate is for the gradient attacks (fgsm, pgd, ead, cw); {spec.method} does "
                                 "not use gradients.")
        if self.surrogate is not None and self.surrogate not in SURROGATES:
            raise ValueError(f"surrogate must be one of {SURROGATES}, got {self.surrogate!r}.")
        if self.start not in ("uniform", "nearest"):
            raise ValueError(f"start must be 'uniform' or 'nearest', got {self.start!r}.")
        if self.start == "nearest" and not (spec is not None and spec.uses_starting_points):
            raise ValueError(f"{self.method} takes no starting points; drop --start nearest.")
        if self.seed_size < 2:
            raise ValueError(f"seed_size must be at least 2, got {self.seed_size}.")

    @property
    def method(self) -> str:
        return "substitute" if self.attack is None else self.attack.method

    @property
    def eps(self) -> tuple[float, ...]:
        """The substitute curve's L∞ budgets."""
        return SUBSTITUTE_EPS if self.substitute_eps is None else tuple(self.substitute_eps)

    @property
    def seed_points(self) -> bool:
        """Whether the run draws a substitute's seed set."""
        return self.attack is None or self.surrogate == "substitute"

    def to_dict(self) -> dict[str, Any]:
        """The flat JSON form written with the record: the attack's settings beside the run's."""
        out = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items() if k != "attack"}
        attack = self.attack.to_dict() if self.attack is not None else {"method": "substitute"}
        return {**attack, **out}


SMOOTH_DEFAULT = "smooth relaxation (default for sign networks)"
"""The gradient source of a gradient attack on an SCD ensemble run without ``--surrogate``."""
WHITE_BOX = "model (white-box gradients)"


def gradient_source(model: Any, spec: AttackSpec, surrogate: str | None, x_seed: np.ndarray | None = None, *,
                    rounds: int = 20, epochs: int = 20, seed: int = 0, progress: bool = False) -> tuple[Any, dict]:
    """The model ``spec``'s attack runs on, and a record of where its gradients come from.

    Without ``surrogate`` a differentiable model gives its own gradients (a hard-voting
    ensemble: those of the soft vote of its members, recorded under ``differentiated``; a
    one-vs-rest model of MLP, CNN or BNN ensembles: those of its classes' log-odds), an SCD ensemble
    or a one-vs-rest model of them its smooth relaxation (:data:`SMOOTH_DEFAULT`), and anything
    else (a forest) is refused; ``smooth`` needs SCD ensembles; ``substitute`` trains one on the
    model's labels of ``x_seed`` (counted queries).
    """
    from attacks import Oracle
    from attacks.surrogate import (
        OneVsRestGradients,
        SurrogateGradients,
        is_sign_network,
        smooth_scd,
    )
    from scd import OneVsRest

    if spec.needs not in _GRADIENTS:
        return model, {"source": "none (query-based attack)"}
    sign_network = is_sign_network(model)
    if surrogate is None and isinstance(model, OneVsRest) and not sign_network:
        try:
            pair = OneVsRestGradients(model)
        except TypeError:
            raise ValueError(f"a one-vs-rest model of {type(model.estimators_[0]).__name__} has no gradients "
                             f"({spec.method} needs them): use --surrogate substitute, or a decision-based attack "
                             "(hsj, boundary, rays).") from None
        return pair, {"source": WHITE_BOX, "differentiated": "each class's log-odds, from its ensemble's soft vote"}
    if surrogate is None and not sign_network:
        oracle = Oracle(model, bounds=(0.0, 1.0))
        logit = spec.needs == "logit_gradients"
        if not (oracle.has_logit_gradients if logit else oracle.has_gradients):
            raise ValueError(f"{type(model).__name__} has no gradients ({spec.method} needs "
                             f"{'logit' if logit else 'loss'} gradients): choose where they come from with "
                             "--surrogate substitute (a model trained on the attacked model's labels), or use a "
                             "decision-based attack (hsj, boundary, rays).")
        source = {"source": WHITE_BOX}
        if getattr(model, "voting", None) == "hard":
            source["differentiated"] = "the soft vote of the members (the hard vote is piecewise constant)"
        return model, source
    if surrogate in (None, "smooth"):
        if not sign_network:
            raise ValueError(f"--surrogate smooth relaxes an SCD ensemble (or a one-vs-rest model of them); "
                             f"{type(model).__name__} is not one (use --surrogate substitute).")
        module = smooth_scd(model)
        pair = SurrogateGradients(model, module, "smooth")
        return pair, {"source": "smooth" if surrogate else SMOOTH_DEFAULT,
                      "hidden_temperature": module.hidden_temperature, "vote_temperature": module.vote_temperature}
    from attacks.substitute import train_substitute

    oracle = Oracle(model, bounds=(0.0, 1.0))
    module, records = train_substitute(oracle, x_seed, rounds=rounds, epochs=epochs, seed=seed, progress=progress)
    pair = SurrogateGradients(model, module, "substitute")
    return pair, {"source": "substitute", "seed_points": len(x_seed), "rounds": rounds, "epochs": epochs,
                  "training_queries": int(oracle.summary()["rows"]), "final_set_size": records[-1]["set_size"]}


def run(config: AttackConfig) -> tuple[Any, np.ndarray, Any, dict]:
    """Attack the chosen test points; returns (result, dataset indices, dataset, gradient source).

    The result is an :class:`~attacks.result.AttackResult`, or a
    :class:`~attacks.substitute.SubstituteResult` for the substitute curve (``attack=None``).
    """
    from eval.baselines import load_model
    from eval.datasets import load_dataset

    from .onnx_model import ONNXModel, is_onnx_path

    model = ONNXModel(config.model_path) if is_onnx_path(config.model_path) else load_model(config.model_path)
    ds = load_dataset(config.data, classes=config.classes, data_dir=config.data_dir, path=config.data_path)
    if ds.x_test.shape[1] != model.n_features_in_:
        raise ValueError(f"the model takes {model.n_features_in_} features, but {ds.name} has {ds.x_test.shape[1]}.")
    check_classes_match(model, ds)
    idx = choose_points([model], ds.x_test, ds.y_test, config.n_samples, indices=config.indices,
                        target=config.target)
    targets = None
    if config.target is not None:
        if config.target not in set(np.asarray(model.classes_).tolist()):
            raise ValueError(f"target {config.target} is not one of the model's classes {model.classes_.tolist()}.")
        targets = np.full(len(idx), config.target)
    x, y = ds.x_test[idx], ds.y_test[idx]
    seed_idx = seed_set(len(ds.x_test), idx, config.seed_size, config.seed) if config.seed_points else None
    if config.attack is None:
        from attacks.substitute import substitute_attack

        result = substitute_attack(model, ds.x_test[seed_idx], x, y, config.eps, bounds=(0.0, 1.0), seed=config.seed,
                                   rounds=config.substitute_rounds, epochs=config.substitute_epochs,
                                   progress=not config.quiet)
        return result, idx, ds, {"source": "substitute", "seed_indices": seed_idx.tolist()}
    attacked, source = gradient_source(
        model, config.attack, config.surrogate, None if seed_idx is None else ds.x_test[seed_idx],
        rounds=config.substitute_rounds, epochs=config.substitute_epochs, seed=config.seed,
        progress=not config.quiet)
    if seed_idx is not None:
        source["seed_indices"] = seed_idx.tolist()
    starting_points = None
    if config.start == "nearest":
        # the closest training image of another (true) class, or of the target class: no model query
        starting_points = nearest_other_class(x, ds.x_train, y, ds.y_train, targets)
    spec = config.attack
    runs = [spec.at_eps(e) for e in spec.eps] if spec.bounded and spec.eps else [spec]
    results = [one(attacked, x, y, targets=targets, bounds=(0.0, 1.0), seed=config.seed, sample_ids=idx,
                   starting_points=starting_points, batch_size=config.batch_size, progress=not config.quiet)
               for one in runs]
    result = results[-1]  # the run at the largest ε
    if isinstance(model, ONNXModel) and len(model.input_shape_) > 1:  # examples in the model's own shape
        result.x_adv = result.x_adv.reshape(len(x), *model.input_shape_)
    if spec.eps is not None:
        result.extra["robust_accuracy"] = _curve(spec, runs, results)
    return result, idx, ds, source


def _curve(spec: AttackSpec, runs: list[AttackSpec], results: list[AttackResult]) -> dict[str, Any]:
    """The robust-accuracy curve at ``spec.eps``: from one run per ε (bounded attacks; each
    sample's closest success of any run), or from the distances of the one run."""
    broken = [r.broken_at(spec.distance, one.eps[0] if spec.bounded else None) for one, r in zip(runs, results)]
    curve = {"eps": list(spec.eps), "norm": spec.distance, "robust_accuracy": robust_accuracy(broken, spec.eps).tolist(),
             "points": len(results[-1]),
             "from": "one run per eps" if spec.bounded else "the distances of one run"}
    if spec.bounded:
        curve["success_rate"] = [float(r.success.mean()) for r in results]
        curve["queries"] = [int(r.queries.sum()) for r in results]
    return curve


def budget_curve(result: AttackResult, budgets: tuple[int, ...] = QUERY_BUDGETS) -> dict[str, Any] | None:
    """Success rate and median best distance (the attack's norm; None when infinite) within each
    query budget, from the samples' budget curves; None when the attack records none (gradient
    attacks at a fixed ε)."""
    from .stats import budget_summary

    if not any(len(h) for h in result.history):
        return None
    return budget_summary([result.distance_at(q) for q in budgets], budgets)


def format_table(result: AttackResult, source: dict | None = None) -> str:
    """A short Markdown table of the aggregates (distortions over successes only)."""
    s = result.summary()
    rows = [("samples", f"{s['n']}"),
            ("success rate (on the real model)", f"{s['success_rate']:.3f} ({s['n_success']}/{s['n']})")]
    for name, label in (("l2", "L2"), ("linf", "Linf"), ("l1", "L1"), ("l0", "L0")):
        rows.append((f"{label} mean / median", f"{s['mean_' + name]:.4f} / {s['median_' + name]:.4f}"))
    rows += [("queries median / mean", f"{s['median_queries']:.0f} / {s['mean_queries']:.0f}"),
             ("model calls (all samples)", f"{s['total_calls']}"), ("time", f"{s['seconds']:.1f} s")]
    if s["already_adversarial"]:
        rows.append(("already misclassified", f"{s['already_adversarial']} (distance 0)"))
    if source is not None and source["source"] != "none (query-based attack)":
        rows.append(("gradient source", source["source"]))
        if "differentiated" in source:
            rows.append(("differentiated", source["differentiated"]))
        if source["source"] != WHITE_BOX:
            rows.append(("", "(queries above include the surrogate's gradient rows)"))
        if "training_queries" in source:
            rows.append(("substitute training queries", f"{source['training_queries']} (not in the counts above)"))
    budget = budget_curve(result)
    if budget is not None:
        for q, med, rate in zip(budget["queries"], budget["median_distance"], budget["success_rate"]):
            rows.append((f"within {q} queries: success / median dist.",
                         f"{rate:.3f} / {'inf' if med is None else f'{med:.4f}'}"))
    curve = result.extra.get("robust_accuracy")
    if curve is not None:
        norm = {"l1": "L1", "l2": "L2", "linf": "Linf"}[curve["norm"]]
        for e, acc in zip(curve["eps"], curve["robust_accuracy"]):
            rows.append((f"robust accuracy at {norm} eps={e:g}", f"{acc:.3f}"))
        if "success_rate" in curve:
            rows.append(("", f"(one run per eps; the rows above are the run at eps={curve['eps'][-1]:g})"))
    zero = result.extra.get("zero_gradient_steps")
    if zero is not None:
        rows.append(("samples with a zero-gradient step", f"{int(np.count_nonzero(zero))}"))
        fraction = np.asarray(result.extra.get("zero_gradient_fraction", []), np.float64)
        if fraction.size:
            rows.append(("zero gradient coordinates (mean)", f"{fraction.mean():.3f}"))
    width = max(len(r[0]) for r in rows)
    lines = [f"| {'':{width}} | {result.attack} |", f"|{'-' * (width + 2)}|---|"]
    lines += [f"| {k:{width}} | {v} |" for k, v in rows]
    return "\n".join(lines)


def main(config: AttackConfig) -> Any:
    """Run, print the table, and write the JSON record / adversarial examples if asked."""
    from eval.io import atomic_write_bytes

    result, idx, ds, source = run(config)
    curve = config.attack is None
    print(result.table() if curve else format_table(result, source))
    if curve:
        print(f"model accuracy on {result.n_points} points; substitute trained with {result.queries} model "
              f"queries, agreement {result.agreement:.3f}")
    if config.out:
        record = result.to_dict()
        budget = None if curve else budget_curve(result)
        if budget is not None:
            record["budget_curve"] = budget
        if "robust_accuracy" in record.get("extra", {}):
            record["robust_accuracy"] = record["extra"].pop("robust_accuracy")
        record["gradient_source"] = source
        record["config"] = config.to_dict()
        record["dataset"] = {"name": ds.name, "classes": list(ds.classes), "split": "test",
                             "indices": idx.tolist()}
        record["date"] = time.strftime("%Y-%m-%d %H:%M:%S")
        from importlib.metadata import version

        record["package_version"] = version("scd")
        atomic_write_bytes(config.out, json.dumps(record, indent=1, allow_nan=False).encode())
        from .report import plot_attack

        for path in plot_attack(record, Path(config.out).with_suffix("")):  # when matplotlib is installed
            print(f"plot written to {path}", file=sys.stderr)
    if config.save_examples:
        buffer = io.BytesIO()
        np.savez_compressed(buffer, x=ds.x_test[idx].reshape(result.x_adv.shape), x_adv=result.x_adv,
                            success=result.success,
                            labels=result.labels, indices=idx)
        atomic_write_bytes(config.save_examples, buffer.getvalue())
    return result
