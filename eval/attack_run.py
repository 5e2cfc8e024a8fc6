"""One attack on one saved model: the computation behind ``scd attack``.

``run(config)`` loads the model and the dataset, picks the first ``n_samples`` test points the
model classifies correctly (or the given indices), attacks them through a query-counted
:class:`~attacks.oracle.Oracle`, and returns the :class:`~attacks.base.AttackResult`;
``main(config)`` also prints a table and writes the JSON record (and the adversarial
examples as ``.npz``) atomically.

Gradient attacks (``fgsm``, ``pgd``, ``ead``, ``cw``) use the model's own gradients when it
has them (the CNN and BNN baselines).  Otherwise ``surrogate`` must name where they come from:
``smooth`` (the SCD ensemble's own weights with sign replaced by tanh) or ``substitute`` (an
MLP trained on the model's labels of ``seed_size`` other test points, with Jacobian
augmentation); either way every label the attack asks for, and the final confirmation, come
from the real model.  ``method="substitute"`` is the transfer curve of the paper's Figure 2
instead: FGSM on the substitute at each L∞ budget of ``eps``, the target's accuracy on the
results and on Gaussian noise of the same size.
"""

from __future__ import annotations

import io
import json
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from attacks import ATTACKS
from attacks.base import AttackResult, nearest_other_class, norm_name, parse_norm

__all__ = ["AttackConfig", "build_attack", "format_table", "gradient_source", "main", "run", "select_points"]

_NORMS = {"hsj": (2.0, np.inf), "boundary": (2.0,), "rays": (np.inf,), "zoo": (2.0,), "ead": (1.0,), "cw": (2.0,),
          "fgsm": (np.inf,), "pgd": (np.inf, 2.0, 1.0)}
GRADIENT_METHODS = ("fgsm", "pgd", "ead", "cw")
"""Methods that follow a gradient: the model's own, or a ``surrogate``'s."""
SURROGATES = ("smooth", "substitute")
METHODS = (*sorted(ATTACKS), "substitute")
SUBSTITUTE_EPS = (0.0, 0.015625, 0.03125, 0.0625, 0.125, 0.25)


@dataclass
class AttackConfig:
    """Everything ``scd attack`` needs; ``None`` means the attack's own default."""

    model_path: str
    method: str = "hsj"
    data: str = "digits"
    classes: tuple[int, int] | None = None
    data_dir: str | None = None
    data_path: str | None = None
    n_samples: int = 10
    indices: tuple[int, ...] | None = None
    norm: str | None = None
    max_queries: int | None = None
    iters: int | None = None
    init_size: int | None = None
    theta: str | None = None
    target: int | None = None
    start: str = "uniform"
    eps: tuple[float, ...] | None = None
    surrogate: str | None = None
    seed_size: int = 200
    substitute_rounds: int = 20
    substitute_epochs: int = 20
    seed: int = 0
    batch_size: int = 1024
    out: str | None = None
    save_examples: str | None = None
    quiet: bool = False


def build_attack(method: str, norm: str | None = None, iters: int | None = None, init_size: int | None = None,
                 theta: str | None = None, max_queries: int | None = None, eps: tuple[float, ...] | None = None):
    """The attack object for ``method`` with the CLI's options (checked before any query)."""
    if method not in ATTACKS:
        raise ValueError(f"Unknown attack method {method!r}; choose from {list(METHODS)}.")
    allowed = _NORMS[method]
    chosen = allowed[0] if norm is None else parse_norm(norm)
    if chosen not in allowed:
        names = " or ".join({1.0: "L1", 2.0: "L2", np.inf: "Linf"}[a] for a in allowed)
        raise ValueError(f"{method} attacks the {names} norm only, not {norm!r}.")
    if eps is not None and method not in ("fgsm", "pgd"):
        raise ValueError(f"--eps is for fgsm, pgd and substitute; {method} finds its own distortion.")
    if init_size is not None and method not in ("hsj", "boundary"):
        raise ValueError(f"--init-size is for hsj and boundary, not {method}.")
    if theta is not None and method != "hsj":
        raise ValueError(f"--theta is for hsj, not {method}.")
    kwargs: dict[str, Any] = {}
    if init_size is not None:
        kwargs["init_size"] = init_size
    if method == "hsj":
        kwargs["norm"] = "inf" if chosen == np.inf else 2
        if iters is not None:
            kwargs["max_iter"] = iters
        if theta is not None:
            try:
                kwargs["theta"] = theta if theta in ("paper", "art") else float(theta)
            except ValueError:
                raise ValueError(f"theta must be 'paper', 'art' or a positive number, got {theta!r}.") from None
    elif method == "boundary":
        if iters is not None:
            kwargs["steps"] = iters
    elif method == "rays":
        if iters is not None:
            raise ValueError("rays has no iterations; bound it with --max-queries.")
        if max_queries is not None:
            kwargs["query_limit"] = max_queries
    elif method in ("fgsm", "pgd"):
        if eps is not None:
            if len(eps) != 1:
                raise ValueError(f"{method} takes one --eps, got {list(eps)}.")
            kwargs["eps"] = eps[0]
        if method == "pgd":
            kwargs["norm"] = norm_name(chosen)
            if iters is not None:
                kwargs["steps"] = iters
        elif iters is not None:
            raise ValueError("fgsm is one step; drop --iters.")
    elif iters is not None:  # zoo, ead, cw
        kwargs["max_iter"] = iters
    attack = ATTACKS[method](**kwargs)
    attack._check_params()
    return attack


def gradient_source(model: Any, method: str, surrogate: str | None, x_seed: np.ndarray | None = None, *,
                    rounds: int = 20, epochs: int = 20, seed: int = 0, progress: bool = False) -> tuple[Any, dict]:
    """The model a gradient attack runs on, and a record of where its gradients come from.

    Without ``surrogate`` the model must have gradients itself; ``smooth`` needs an SCD
    ensemble; ``substitute`` trains one on the model's labels of ``x_seed`` (counted queries).
    """
    from attacks import Oracle

    if method not in GRADIENT_METHODS:
        if surrogate is not None:
            raise ValueError(f"--surrogate is for the gradient attacks {GRADIENT_METHODS}; {method} does not use "
                             "gradients.")
        return model, {"source": "none (query-based attack)"}
    if surrogate is None:
        oracle = Oracle(model, bounds=(0.0, 1.0))
        has = oracle.has_logit_gradients if method in ("ead", "cw") else oracle.has_gradients
        if not has:
            raise ValueError(f"{type(model).__name__} has no gradients ({method} needs "
                             f"{'logit' if method in ('ead', 'cw') else 'loss'} gradients): choose where they come "
                             "from with --surrogate smooth (SCD ensembles: the same weights with sign relaxed to "
                             "tanh) or --surrogate substitute (a model trained on the target's labels).")
        return model, {"source": "model (white-box gradients)"}
    if surrogate not in SURROGATES:
        raise ValueError(f"surrogate must be one of {SURROGATES}, got {surrogate!r}.")
    from attacks.surrogate import SurrogateGradients, smooth_scd

    if surrogate == "smooth":
        if not hasattr(model, "W1_"):
            raise ValueError(f"--surrogate smooth relaxes an SCD ensemble; {type(model).__name__} is not one "
                             "(use --surrogate substitute).")
        module = smooth_scd(model)
        pair = SurrogateGradients(model, module, "smooth")
        return pair, {"source": "smooth", "hidden_temperature": module.hidden_temperature,
                      "vote_temperature": module.vote_temperature}
    from attacks.substitute import train_substitute

    oracle = Oracle(model, bounds=(0.0, 1.0))
    module, records = train_substitute(oracle, x_seed, rounds=rounds, epochs=epochs, seed=seed, progress=progress)
    pair = SurrogateGradients(model, module, "substitute")
    return pair, {"source": "substitute", "seed_points": len(x_seed), "rounds": rounds, "epochs": epochs,
                  "training_queries": int(oracle.summary()["rows"]), "final_set_size": records[-1]["set_size"]}


def _seed_set(n_test: int, attacked: np.ndarray, size: int, seed: int) -> np.ndarray:
    """``size`` test indices, not among the attacked ones, chosen with ``seed``."""
    rest = np.setdiff1d(np.arange(n_test), attacked)
    if len(rest) < 2:
        raise ValueError("no test points are left for the substitute's seed set.")
    return np.sort(np.random.default_rng([int(seed), 7]).permutation(rest)[:size])


def select_points(model: Any, x: np.ndarray, y: np.ndarray, n: int, indices=None, target=None) -> np.ndarray:
    """Indices of the points to attack: the given ones, or the first ``n`` that the model
    classifies correctly (and, for a targeted attack, whose label is not the target)."""
    if indices is not None:
        idx = np.asarray(indices, np.int64)
        if idx.ndim != 1 or len(idx) == 0 or idx.min() < 0 or idx.max() >= len(x):
            raise ValueError(f"indices must be in [0, {len(x)}), got {list(indices)[:5]}...")
        return idx
    correct = np.flatnonzero(np.asarray(model.predict(x)) == y)
    if target is not None:
        correct = correct[y[correct] != target]
    if len(correct) < n:
        raise ValueError(f"only {len(correct)} test points are classified correctly; asked for {n}.")
    return correct[:n]


def run(config: AttackConfig) -> tuple[Any, np.ndarray, Any, dict]:
    """Attack the chosen test points; returns (result, dataset indices, dataset, gradient source).

    The result is an :class:`~attacks.base.AttackResult`, or a
    :class:`~attacks.substitute.SubstituteResult` for ``method="substitute"``.
    """
    from eval.baselines import load_model
    from eval.datasets import load_dataset

    substitute_curve = config.method == "substitute"
    if substitute_curve:
        if config.surrogate is not None:
            raise ValueError("method substitute trains its own substitute; drop --surrogate.")
        if config.save_examples:
            raise ValueError("--save-examples is not available for method substitute (one set per budget).")
        eps = SUBSTITUTE_EPS if config.eps is None else config.eps
        if any(not (np.isfinite(e) and e >= 0) for e in eps):
            raise ValueError(f"--eps must be finite budgets >= 0, got {list(eps)}.")
        attack = None
    else:
        attack = build_attack(config.method, config.norm, config.iters, config.init_size, config.theta,
                              config.max_queries, config.eps)
        if config.surrogate is not None and config.method not in GRADIENT_METHODS:
            raise ValueError(f"--surrogate is for the gradient attacks {GRADIENT_METHODS}, not {config.method}.")
    if config.start not in ("uniform", "nearest"):
        raise ValueError(f"start must be 'uniform' or 'nearest', got {config.start!r}.")
    if config.start == "nearest" and not (attack is not None and attack.uses_starting_points):
        raise ValueError(f"{config.method} takes no starting points; drop --start nearest.")
    if config.seed_size < 2:
        raise ValueError(f"seed_size must be at least 2, got {config.seed_size}.")
    model = load_model(config.model_path)
    ds = load_dataset(config.data, classes=config.classes, data_dir=config.data_dir, path=config.data_path)
    if ds.x_test.shape[1] != model.n_features_in_:
        raise ValueError(f"the model takes {model.n_features_in_} features, but {ds.name} has {ds.x_test.shape[1]}.")
    idx = select_points(model, ds.x_test, ds.y_test, config.n_samples, config.indices, config.target)
    targets = None
    if config.target is not None:
        if substitute_curve:
            raise ValueError("method substitute is untargeted; drop --target.")
        if config.target not in set(np.asarray(model.classes_).tolist()):
            raise ValueError(f"target {config.target} is not one of the model's classes {model.classes_.tolist()}.")
        targets = np.full(len(idx), config.target)
    x, y = ds.x_test[idx], ds.y_test[idx]
    needs_seed_set = substitute_curve or config.surrogate == "substitute"
    seed_idx = _seed_set(len(ds.x_test), idx, config.seed_size, config.seed) if needs_seed_set else None
    if substitute_curve:
        from attacks.substitute import substitute_attack

        result = substitute_attack(model, ds.x_test[seed_idx], x, y, eps, bounds=(0.0, 1.0), seed=config.seed,
                                   rounds=config.substitute_rounds, epochs=config.substitute_epochs,
                                   progress=not config.quiet)
        return result, idx, ds, {"source": "substitute", "seed_indices": seed_idx.tolist()}
    target_model, source = gradient_source(
        model, config.method, config.surrogate, None if seed_idx is None else ds.x_test[seed_idx],
        rounds=config.substitute_rounds, epochs=config.substitute_epochs, seed=config.seed,
        progress=not config.quiet)
    if seed_idx is not None:
        source["seed_indices"] = seed_idx.tolist()
    starting_points = None
    if config.start == "nearest":
        # the closest training image of another (true) class, or of the target class: no model query
        starting_points = nearest_other_class(x, ds.x_train, y, ds.y_train, targets)
    result = attack(target_model, x, y, targets=targets, bounds=(0.0, 1.0), seed=config.seed,
                    max_queries=config.max_queries if config.method != "rays" else None, sample_ids=idx,
                    starting_points=starting_points, batch_size=config.batch_size, progress=not config.quiet)
    return result, idx, ds, source


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
        if source["source"] != "model (white-box gradients)":
            rows.append(("", "(queries above include the surrogate's gradient rows)"))
        if "training_queries" in source:
            rows.append(("substitute training queries", f"{source['training_queries']} (not in the counts above)"))
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
    curve = config.method == "substitute"
    print(result.table() if curve else format_table(result, source))
    if curve:
        print(f"target accuracy on {result.n_points} points; substitute trained with {result.queries} target "
              f"queries, agreement {result.agreement:.3f}")
    if config.out:
        record = result.to_dict()
        record["gradient_source"] = source
        record["config"] = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(config).items()}
        record["dataset"] = {"name": ds.name, "classes": list(ds.classes), "split": "test",
                             "indices": idx.tolist()}
        record["date"] = time.strftime("%Y-%m-%d %H:%M:%S")
        from importlib.metadata import version

        record["package_version"] = version("scd")
        atomic_write_bytes(config.out, json.dumps(record, indent=1, allow_nan=False).encode())
    if config.save_examples:
        buffer = io.BytesIO()
        np.savez_compressed(buffer, x=ds.x_test[idx], x_adv=result.x_adv, success=result.success,
                            labels=result.labels, indices=idx)
        atomic_write_bytes(config.save_examples, buffer.getvalue())
    return result
