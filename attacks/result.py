"""The outcome of an attack run: per-sample examples, success, distances, queries and budget curves."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["AttackResult", "robust_accuracy"]


@dataclass
class AttackResult:
    """Per-sample outcome of one attack run; failures keep ``x_adv == x`` and ``success=False``.

    Distances are NaN where the attack failed, so every aggregate is over successes only.
    ``queries``/``calls`` are the counted model rows/calls per sample; the uncounted rows
    that asked the clean label and confirmed the final example are in ``confirm_queries``.
    ``history[i]`` is an ``(k, 2)`` array of (queries, best distance in the attack's norm)
    for budget curves; it is empty for a sample whose final example was not confirmed.
    """

    attack: str
    params: dict[str, Any]
    x_adv: np.ndarray
    success: np.ndarray
    labels: np.ndarray
    targets: np.ndarray | None
    l0: np.ndarray
    l1: np.ndarray
    l2: np.ndarray
    linf: np.ndarray
    queries: np.ndarray
    calls: np.ndarray
    confirm_queries: np.ndarray
    seconds: float
    seed: int
    sample_ids: np.ndarray
    history: list[np.ndarray] = field(repr=False)
    already_adversarial: np.ndarray = field(repr=False)
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.success)

    def distance_at(self, queries: Any) -> np.ndarray:
        """Each sample's best distance (in the attack's norm) within ``queries`` counted rows
        (a number or one per sample), read off its budget curve; inf where it had none yet."""
        budget = np.broadcast_to(np.asarray(queries, np.float64), (len(self),))
        out = np.full(len(self), np.inf)
        for i, (h, q) in enumerate(zip(self.history, budget)):
            within = h[h[:, 0] <= q, 1]
            if within.size:
                out[i] = within.min()
        out[self.already_adversarial] = 0.0
        return out

    def broken_at(self, distance: str, eps: float | None = None) -> np.ndarray:
        """Each sample's distance (``"l0"``, ``"l1"``, ``"l2"`` or ``"linf"``) to its confirmed
        adversarial example, inf where there is none; 0 for samples already misclassified.  With
        ``eps`` (a run bounded by that budget) a success counts at most ``eps``, so float32
        rounding of the projected example cannot push it past its own budget."""
        d = np.where(self.success, getattr(self, distance), np.inf)
        return d if eps is None else np.where(self.success, np.minimum(d, eps), np.inf)

    def summary(self) -> dict[str, Any]:
        """Success rate, mean and median distortions over successes, median queries, time."""
        ok = self.success
        out: dict[str, Any] = {"attack": self.attack, "n": len(ok), "success_rate": float(ok.mean()) if len(ok) else
                               float("nan"), "n_success": int(ok.sum()),
                               "already_adversarial": int(self.already_adversarial.sum())}
        for name in ("l0", "l1", "l2", "linf"):
            values = getattr(self, name)[ok]
            out[f"mean_{name}"] = float(values.mean()) if len(values) else float("nan")
            out[f"median_{name}"] = float(np.median(values)) if len(values) else float("nan")
        out["median_queries"] = float(np.median(self.queries)) if len(ok) else float("nan")
        out["mean_queries"] = float(np.mean(self.queries)) if len(ok) else float("nan")
        out["total_calls"] = int(self.calls.sum())
        out["confirm_queries"] = int(self.confirm_queries.sum())
        out["seconds"] = self.seconds
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: settings, summary and one record per sample (no arrays of inputs)."""
        samples = []
        for i in range(len(self)):
            rec = {"sample_id": int(self.sample_ids[i]), "label": _py(self.labels[i]), "success": bool(self.success[i]),
                   "queries": int(self.queries[i]), "calls": int(self.calls[i]),
                   "confirm_queries": int(self.confirm_queries[i]),
                   "history": self.history[i].tolist()}
            if self.targets is not None:
                rec["target"] = _py(self.targets[i])
            for name in ("l0", "l1", "l2", "linf"):
                value = float(getattr(self, name)[i])
                rec[name] = None if np.isnan(value) else value
            samples.append(rec)
        extra = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in self.extra.items()
                 if not (isinstance(v, np.ndarray) and v.ndim > 1)}  # per-feature arrays stay in .extra
        summary = {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in self.summary().items()}
        return {"attack": self.attack, "params": self.params, "seed": self.seed, "summary": summary,
                "extra": extra, "samples": samples}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, allow_nan=False, default=_py)


def _py(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def robust_accuracy(broken_at: list[np.ndarray] | np.ndarray, eps: Any) -> np.ndarray:
    """Robust accuracy at each of ``eps``: the fraction of samples with no adversarial example
    within that distance, given each sample's distance to one (:meth:`AttackResult.broken_at`; a
    list of such arrays, one per run on the same samples, takes each sample's closest).  Non-
    increasing in ε by construction: an example within ε is within every larger ε."""
    d = np.min(np.atleast_2d(np.asarray(broken_at, np.float64)), axis=0)
    return np.array([float(np.mean(~(d <= e))) for e in np.asarray(eps, np.float64)])
