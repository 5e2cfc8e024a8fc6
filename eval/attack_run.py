"""One attack on one saved model: the computation behind ``scd attack``.

``run(config)`` loads the model and the dataset, picks the first ``n_samples`` test points the
model classifies correctly (or the given indices), attacks them through a query-counted
:class:`~attacks.oracle.Oracle`, and returns the :class:`~attacks.base.AttackResult`;
``main(config)`` also prints a table and writes the JSON record (and the adversarial
examples as ``.npz``) atomically.
"""

from __future__ import annotations

import io
import json
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from attacks import ATTACKS
from attacks.base import AttackResult, nearest_other_class, parse_norm

__all__ = ["AttackConfig", "build_attack", "format_table", "main", "run", "select_points"]

_NORMS = {"hsj": (2.0, np.inf), "boundary": (2.0,), "rays": (np.inf,)}


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
    seed: int = 0
    batch_size: int = 1024
    out: str | None = None
    save_examples: str | None = None
    quiet: bool = False


def build_attack(method: str, norm: str | None = None, iters: int | None = None, init_size: int | None = None,
                 theta: str | None = None, max_queries: int | None = None):
    """The attack object for ``method`` with the CLI's options (checked before any query)."""
    if method not in ATTACKS:
        raise ValueError(f"Unknown attack method {method!r}; choose from {sorted(ATTACKS)}.")
    allowed = _NORMS[method]
    chosen = allowed[0] if norm is None else parse_norm(norm)
    if chosen not in allowed:
        names = " or ".join("Linf" if a == np.inf else "L2" for a in allowed)
        raise ValueError(f"{method} attacks the {names} norm only, not {norm!r}.")
    kwargs: dict[str, Any] = {}
    if method == "hsj":
        kwargs["norm"] = "inf" if chosen == np.inf else 2
        if iters is not None:
            kwargs["max_iter"] = iters
        if init_size is not None:
            kwargs["init_size"] = init_size
        if theta is not None:
            try:
                kwargs["theta"] = theta if theta in ("paper", "art") else float(theta)
            except ValueError:
                raise ValueError(f"theta must be 'paper', 'art' or a positive number, got {theta!r}.") from None
    elif method == "boundary":
        if iters is not None:
            kwargs["steps"] = iters
        if init_size is not None:
            kwargs["init_size"] = init_size
    else:
        if iters is not None:
            raise ValueError("rays has no iterations; bound it with --max-queries.")
        if max_queries is not None:
            kwargs["query_limit"] = max_queries
    attack = ATTACKS[method](**kwargs)
    attack._check_params()
    return attack


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


def run(config: AttackConfig) -> tuple[AttackResult, np.ndarray, Any]:
    """Attack the chosen test points; returns (result, dataset indices, dataset)."""
    from eval.baselines import load_model
    from eval.datasets import load_dataset

    attack = build_attack(config.method, config.norm, config.iters, config.init_size, config.theta,
                          config.max_queries)
    if config.start not in ("uniform", "nearest"):
        raise ValueError(f"start must be 'uniform' or 'nearest', got {config.start!r}.")
    if config.start == "nearest" and not attack.uses_starting_points:
        raise ValueError(f"{config.method} takes no starting points; drop --start nearest.")
    model = load_model(config.model_path)
    ds = load_dataset(config.data, classes=config.classes, data_dir=config.data_dir, path=config.data_path)
    if ds.x_test.shape[1] != model.n_features_in_:
        raise ValueError(f"the model takes {model.n_features_in_} features, but {ds.name} has {ds.x_test.shape[1]}.")
    idx = select_points(model, ds.x_test, ds.y_test, config.n_samples, config.indices, config.target)
    targets = None
    if config.target is not None:
        if config.target not in set(np.asarray(model.classes_).tolist()):
            raise ValueError(f"target {config.target} is not one of the model's classes {model.classes_.tolist()}.")
        targets = np.full(len(idx), config.target)
    x, y = ds.x_test[idx], ds.y_test[idx]
    starting_points = None
    if config.start == "nearest":
        # the closest training image of another (true) class, or of the target class: no model query
        starting_points = nearest_other_class(x, ds.x_train, y, ds.y_train, targets)
    result = attack(model, x, y, targets=targets, bounds=(0.0, 1.0), seed=config.seed,
                    max_queries=config.max_queries if config.method != "rays" else None, sample_ids=idx,
                    starting_points=starting_points, batch_size=config.batch_size, progress=not config.quiet)
    return result, idx, ds


def format_table(result: AttackResult) -> str:
    """A short Markdown table of the aggregates (distortions over successes only)."""
    s = result.summary()
    rows = [("samples", f"{s['n']}"), ("success rate", f"{s['success_rate']:.3f} ({s['n_success']}/{s['n']})")]
    for name, label in (("l2", "L2"), ("linf", "Linf"), ("l1", "L1"), ("l0", "L0")):
        rows.append((f"{label} mean / median", f"{s['mean_' + name]:.4f} / {s['median_' + name]:.4f}"))
    rows += [("queries median / mean", f"{s['median_queries']:.0f} / {s['mean_queries']:.0f}"),
             ("model calls (all samples)", f"{s['total_calls']}"), ("time", f"{s['seconds']:.1f} s")]
    if s["already_adversarial"]:
        rows.append(("already misclassified", f"{s['already_adversarial']} (distance 0)"))
    width = max(len(r[0]) for r in rows)
    lines = [f"| {'':{width}} | {result.attack} |", f"|{'-' * (width + 2)}|---|"]
    lines += [f"| {k:{width}} | {v} |" for k, v in rows]
    return "\n".join(lines)


def main(config: AttackConfig) -> AttackResult:
    """Run, print the table, and write the JSON record / adversarial examples if asked."""
    from eval.io import atomic_write_bytes

    result, idx, ds = run(config)
    print(format_table(result))
    if config.out:
        record = result.to_dict()
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
