"""What every attack shares: validation at the boundary, the adversarial criterion, seeding,
best-so-far tracking, confirmation on the real target, and the result object.

An attack is a small class whose constructor only stores hyperparameters and whose
:meth:`Attack.run` holds the algorithm.  :meth:`Attack.__call__` (the same for every attack)
validates everything *before the first query*, builds the :class:`Target` the algorithm
talks to, runs it, then re-queries each final, clipped example on the model (an uncounted
:meth:`~attacks.oracle.Oracle.confirm`) and reports success only where that query agrees.

Conventions
-----------
- Inputs are flat rows ``(n, n_features)``; labels and targets are the model's own labels.
- Per-sample state: attacks keep ``(n,)`` arrays and an ``active`` mask, and run every phase
  (binary searches, step searches, gradient estimation) in lock-step for all active samples,
  so the model sees a few large batches instead of many single rows.
- Randomness: sample ``i`` draws from its own generator ``np.random.default_rng([seed,
  sample_ids[i]])``, so a sample's result does not depend on its batch-mates.
- Budgets: ``max_queries`` is enforced by the oracle, exactly; a refused row counts as "not
  adversarial", so an attack can only ever keep points the model really answered.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from .oracle import REFUSED, Oracle, _positive_int

__all__ = ["Attack", "AttackResult", "Criterion", "Target", "distances", "nearest_other_class", "norm_name",
           "norm_of", "parse_norm"]

L0_TOLERANCE = 1e-6
"""A feature counts towards L0 when it moved by more than this."""


def parse_norm(norm: Any) -> float:
    """``1.0``, ``2.0`` or ``np.inf`` from the usual spellings (1, "l1", 2, "l2", inf, "inf", "linf")."""
    key = str(norm).lower().replace("_", "")
    if key in ("1", "1.0", "l1"):
        return 1.0
    if key in ("2", "2.0", "l2"):
        return 2.0
    if key in ("inf", "linf", "l-inf"):
        return np.inf
    raise ValueError(f"Unknown norm {norm!r}; use 1, 2 or 'inf'.")


def norm_name(norm: float) -> Any:
    """The JSON/CLI spelling of a parsed norm: 1, 2 or "inf"."""
    return "inf" if norm == np.inf else int(norm)


def distances(x: np.ndarray, x_adv: np.ndarray) -> dict[str, np.ndarray]:
    """Per-row L0 (features moved by more than :data:`L0_TOLERANCE`), L1, L2 and L∞ of ``x_adv - x``."""
    delta = np.asarray(x_adv, np.float64) - np.asarray(x, np.float64)
    a = np.abs(delta)
    return {"l0": (a > L0_TOLERANCE).sum(axis=1).astype(np.float64), "l1": a.sum(axis=1),
            "l2": np.sqrt((delta * delta).sum(axis=1)), "linf": a.max(axis=1, initial=0.0)}


def norm_of(delta: np.ndarray, norm: float) -> np.ndarray:
    """Row norms of ``delta`` (L1, L2 or L∞) in float64."""
    delta = np.asarray(delta, np.float64)
    if norm == 2:
        return np.sqrt((delta * delta).sum(axis=1))
    if norm == 1:
        return np.abs(delta).sum(axis=1)
    return np.abs(delta).max(axis=1, initial=0.0)


class Criterion:
    """Whether a model answer is adversarial for the sample it belongs to: untargeted, the
    label differs from the true label; targeted, it equals the target.  Labels are class
    indices; a refused row (:data:`~attacks.oracle.REFUSED`) is never adversarial."""

    def __init__(self, labels: np.ndarray, targets: np.ndarray | None = None):
        self.labels = labels
        self.targets = targets

    @property
    def targeted(self) -> bool:
        return self.targets is not None

    def __call__(self, predicted: np.ndarray, owners: np.ndarray) -> np.ndarray:
        answered = predicted != REFUSED
        if self.targets is not None:
            return answered & (predicted == self.targets[owners])
        return answered & (predicted != self.labels[owners])


class Target:
    """The model as an attack sees it: "is this row adversarial for sample ``i``?", counted.

    ``owners`` are positions ``0 .. n-1`` in the attacked batch; the oracle counts rows under
    ``ids[owners]``.
    """

    def __init__(self, oracle: Oracle, criterion: Criterion, ids: np.ndarray):
        self.oracle = oracle
        self.criterion = criterion
        self.ids = ids
        self.lower, self.upper = oracle.bounds
        self.n_features = oracle.n_features

    def is_adversarial(self, rows: np.ndarray, owners: np.ndarray) -> np.ndarray:
        """One counted query per row (clipped into the bounds first); ``(len(rows),)`` bool."""
        owners = np.asarray(owners, np.int64)
        if len(owners) == 0:
            return np.zeros(0, bool)
        predicted = self.oracle.labels(self.clip(rows), self.ids[owners])
        return self.criterion(predicted, owners)

    def clip(self, rows: np.ndarray) -> np.ndarray:
        return np.clip(np.asarray(rows, np.float32), self.lower, self.upper)

    def queries(self, owners: np.ndarray) -> np.ndarray:
        """Rows counted so far for each sample in ``owners``."""
        return self.oracle.queries(self.ids[np.asarray(owners, np.int64)])

    def remaining(self, owners: np.ndarray) -> np.ndarray:
        """Rows each sample may still use (a huge number without a budget)."""
        return self.oracle.remaining(self.ids[np.asarray(owners, np.int64)])


class Best:
    """The closest adversarial point found so far for every sample, and its history.

    Only points the model answered as adversarial are ever offered, so ``found`` never
    claims more than the oracle said.  ``record`` appends ``(queries used, best distance)``
    for budget curves.
    """

    def __init__(self, x: np.ndarray, norm: float, target: Target):
        self.x = x
        self.norm = norm
        self.target = target
        self.x_adv = x.copy()
        self.dist = np.full(len(x), np.inf)
        self.history: list[list[tuple[int, float]]] = [[] for _ in range(len(x))]

    @property
    def found(self) -> np.ndarray:
        return np.isfinite(self.dist)

    def offer(self, owners: np.ndarray, candidates: np.ndarray, is_adv: np.ndarray) -> np.ndarray:
        """Keep the adversarial candidates that beat their sample's best; returns the rows kept.
        ``owners`` may repeat (several candidates per sample): the closest one wins."""
        owners = np.asarray(owners, np.int64)
        d = norm_of(candidates - self.x[owners], self.norm)
        d[~is_adv] = np.inf
        best_rows = closest_per_owner(owners, d)
        better = d[best_rows] < self.dist[owners[best_rows]]
        rows = best_rows[better]
        self.x_adv[owners[rows]] = candidates[rows]
        self.dist[owners[rows]] = d[rows]
        return rows

    def close(self, owners: np.ndarray) -> None:
        """End the budget curves of ``owners`` at their final state, where the last point is out of date."""
        owners = np.asarray(owners, np.int64)
        used = self.target.queries(owners)
        stale = [k for k, i in enumerate(owners)
                 if not self.history[i] or self.history[i][-1] != (int(used[k]), float(self.dist[i]))]
        if stale:
            self.record(owners[stale])

    def record(self, owners: np.ndarray) -> None:
        """Append a budget-curve point for each sample in ``owners`` that has found a point."""
        owners = np.asarray(owners, np.int64)
        owners = owners[np.isfinite(self.dist[owners])]
        used = self.target.queries(owners)
        for i, q in zip(owners, used):
            self.history[i].append((int(q), float(self.dist[i])))


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


class Attack:
    """Base of every attack: subclasses set ``name`` and ``norm`` and implement :meth:`run`.

    Call an attack on a fitted model (or an :class:`~attacks.oracle.Oracle`) and inputs; see
    :meth:`__call__`.
    """

    name: ClassVar[str] = "attack"
    uses_starting_points: ClassVar[bool] = False

    @property
    def norm(self) -> float:
        """The distance this attack minimises or bounds (1, 2 or inf): the constructor's ``norm``
        (stored as ``norm_name``); attacks of one fixed norm override this."""
        return parse_norm(self.norm_name)

    def __call__(self, model: Any, x: Any, y: Any = None, *, targets: Any = None, bounds: Any = None,
                 seed: int = 0, max_queries: int | None = None, starting_points: Any = None,
                 early_stop: float | None = None, sample_ids: Any = None, batch_size: int | None = None,
                 progress: bool = False) -> AttackResult:
        """Attack every row of ``x`` and return an :class:`AttackResult`.

        Parameters
        ----------
        model : fitted classifier, torch module, callable or Oracle
            Wrapped in an :class:`~attacks.oracle.Oracle` unless it is one (then its budget
            and bounds apply, and ``bounds``/``max_queries``/``batch_size`` must be left unset).
        x : array (n, n_features)
            Inputs, inside ``bounds``.
        y : array (n,), optional
            True labels (model labels); default: the model's own predictions (asked with an
            uncounted query).  Samples the model already gets wrong are not attacked: they are
            reported as successes at distance 0 and counted in ``already_adversarial``.
        targets : array (n,), optional
            Target labels for a targeted attack; each must differ from ``y``.
        bounds : (lower, upper)
            Input box (scalars or per-feature arrays); required unless ``model`` is an Oracle.
        seed : int
            Seed of every random choice; sample ``i`` uses ``default_rng([seed, sample_ids[i]])``.
        max_queries : int, optional
            Exact per-sample budget of counted model rows.
        starting_points : array (n, n_features), optional
            Adversarial points to start from (decision-based attacks); rows that are not
            adversarial fall back to the attack's own initialisation.
        early_stop : float, optional
            Stop a sample once its distance (in the attack's norm) is at most this.
        sample_ids : array (n,) of distinct ints, optional
            Names of the samples for seeding and query counting (default ``0 .. n-1``); pass
            dataset indices to make results independent of how samples are batched.
        """
        self._check_params()
        seed = _positive_int("seed", seed, minimum=0)
        oracle = _make_oracle(model, bounds, max_queries, batch_size)
        self._check_oracle(oracle)
        x = oracle.check(x)
        n = len(x)
        ids = _sample_ids(sample_ids, n)
        given = None if y is None else oracle.encode(_vector(y, n, "y"))
        tgt = None if targets is None else oracle.encode(_vector(targets, n, "targets"))
        if given is not None:
            _check_targets(tgt, given)
        start = None
        if starting_points is not None:
            if not self.uses_starting_points:
                raise ValueError(f"{type(self).__name__} does not take starting_points.")
            start = oracle.check(starting_points)
            if start.shape != x.shape:
                raise ValueError(f"starting_points must have the shape of x {x.shape}, got {start.shape}.")
        if early_stop is not None and not (np.isfinite(early_stop) and early_stop >= 0):
            raise ValueError(f"early_stop must be a finite distance >= 0, got {early_stop!r}.")
        before = {k: v[ids] for k, v in _counts(oracle, ids).items()}
        clean = oracle.confirm(x, ids)  # the model's own answers, uncounted
        labels = clean if given is None else given
        _check_targets(tgt, labels)

        criterion = Criterion(labels, tgt)
        target = Target(oracle, criterion, ids)
        done_clean = criterion(clean, np.arange(n))
        best = Best(x, self.norm, target)
        best.dist[done_clean] = 0.0
        rngs = [np.random.default_rng([seed, int(s)]) for s in ids]
        t0 = time.perf_counter()
        active = ~done_clean
        if active.any():
            extra = self.run(target, x, best, rngs, active=active, starting_points=start, early_stop=early_stop,
                             progress=progress) or {}
        else:
            extra = {}
        seconds = time.perf_counter() - t0

        x_adv = np.where(best.found[:, None], target.clip(best.x_adv), x)
        success = np.zeros(n, bool)
        idx = np.flatnonzero(best.found)
        if len(idx):
            success[idx] = criterion(oracle.confirm(x_adv[idx], ids[idx]), idx)
        x_adv[~success] = x[~success]
        dist = distances(x, x_adv)
        for name in dist:
            dist[name][~success] = np.nan
        after = _counts(oracle, ids)
        return AttackResult(
            attack=self.name, params=self.get_params(), x_adv=x_adv, success=success,
            labels=oracle.classes[labels], targets=None if tgt is None else oracle.classes[tgt], **dist,
            queries=after["rows"][ids] - before["rows"], calls=after["calls"][ids] - before["calls"],
            confirm_queries=after["confirm_rows"][ids] - before["confirm_rows"],
            seconds=seconds, seed=seed, sample_ids=ids,
            history=[np.asarray(h if ok else [], np.float64).reshape(-1, 2) for h, ok in zip(best.history, success)],
            already_adversarial=done_clean, extra=extra)

    # ------------------------------------------------------------------ subclass hooks
    def run(self, target: Target, x: np.ndarray, best: Best, rngs: list[np.random.Generator], *,
            active: np.ndarray, starting_points: np.ndarray | None, early_stop: float | None,
            progress: bool) -> dict[str, Any] | None:
        """The algorithm: improve ``best`` for the ``active`` samples; may return extra fields."""
        raise NotImplementedError

    def _check_params(self) -> None:
        """Raise ``ValueError`` for invalid hyperparameters (called before any query)."""

    def _check_oracle(self, oracle: Oracle) -> None:
        """Raise if the attack cannot work on this model (called before any query)."""

    def get_params(self) -> dict[str, Any]:
        """Constructor arguments (JSON-friendly), recorded in every result."""
        params = {k: (v if not isinstance(v, np.generic) else v.item()) for k, v in vars(self).items()
                  if not k.startswith("_")}
        if "norm_name" in params:
            raw = params.pop("norm_name")
            try:
                params["norm"] = norm_name(parse_norm(raw))
            except ValueError:  # repr of an invalid attack must still work; _check_params raises
                params["norm"] = raw
        return params

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"


def nearest_other_class(x: np.ndarray, pool: np.ndarray, x_labels: np.ndarray, pool_labels: np.ndarray,
                        targets: np.ndarray | None = None) -> np.ndarray:
    """For each row of ``x``, the nearest (L2) row of ``pool`` whose label differs from the row's
    (or equals its target): starting points for decision-based attacks where uniform noise
    always falls in one class.  Labels are the model's answers, obtained by the caller."""
    d = (x * x).sum(1)[:, None] - 2.0 * x @ pool.T + (pool * pool).sum(1)[None, :]
    wrong = x_labels[:, None] == pool_labels[None, :] if targets is None else targets[:, None] != pool_labels[None, :]
    d[wrong] = np.inf
    if np.isinf(d.min(axis=1)).any():
        raise ValueError("the pool has no point of the required class for some rows of x.")
    return pool[np.argmin(d, axis=1)]


def _make_oracle(model: Any, bounds: Any, max_queries: int | None, batch_size: int | None) -> Oracle:
    if isinstance(model, Oracle):
        if bounds is not None or max_queries is not None or batch_size is not None:
            raise ValueError("model is an Oracle: set bounds, the query budget and the batch size on the Oracle, "
                             "not here.")
        return model
    if bounds is None:
        raise ValueError("bounds=(lower, upper) is required: the attack must know the input box.")
    return Oracle(model, bounds=bounds, budget=max_queries, batch_size=1024 if batch_size is None else batch_size)


def _counts(oracle: Oracle, ids: np.ndarray) -> dict[str, np.ndarray]:
    counts = oracle.sample_counts()
    size = int(ids.max(initial=-1)) + 1
    return {k: np.pad(counts[k], (0, max(0, size - len(counts[k])))) for k in ("rows", "calls", "confirm_rows")}


def _sample_ids(sample_ids: Any, n: int) -> np.ndarray:
    if sample_ids is None:
        return np.arange(n, dtype=np.int64)
    ids = np.asarray(sample_ids)
    if ids.shape != (n,) or (n and ids.dtype.kind not in "iu") or (n and ids.min() < 0):
        raise ValueError(f"sample_ids must be {n} non-negative integers, got shape {ids.shape}, dtype {ids.dtype}.")
    if len(np.unique(ids)) != n:
        raise ValueError("sample_ids must be distinct: each sample has its own query count and generator.")
    return ids.astype(np.int64)


def _check_targets(targets: np.ndarray | None, labels: np.ndarray) -> None:
    if targets is not None and np.any(targets == labels):
        bad = np.flatnonzero(targets == labels)
        raise ValueError(f"targets equal the true labels for {len(bad)} samples (first: row {bad[0]}); a "
                         "targeted attack needs a different class.")


def _vector(values: Any, n: int, what: str) -> np.ndarray:
    values = np.asarray(values)
    if values.shape != (n,):
        raise ValueError(f"{what} must have shape ({n},), one per row of x, got {values.shape}.")
    return values


# ---------------------------------------------------------------------- shared search steps
def bisect(target: Target, owners: np.ndarray, point, lo: np.ndarray, hi: np.ndarray,
           tol: np.ndarray | float) -> np.ndarray:
    """Batched binary search for the boundary along a one-parameter path per row.

    ``point(rows, a)`` gives the inputs at parameter ``a`` for the rows ``rows`` (positions in
    ``owners``); ``point(rows, hi)`` must be adversarial and ``point(rows, lo)`` not.  All rows
    bisect in lock-step (one model call per round for the whole batch) until ``hi - lo <= tol``
    or their sample's budget is spent.  ``owners`` may repeat (several searches for one
    sample); a row is only sent while its sample's budget covers it, so no answer is ever a
    refusal.  Returns the final ``hi`` (the adversarial end).
    """
    owners = np.asarray(owners, np.int64)
    lo = np.array(lo, np.float64)
    hi = np.array(hi, np.float64)
    tol = np.broadcast_to(np.asarray(tol, np.float64), lo.shape)
    live = np.flatnonzero(hi - lo > tol)
    while len(live):
        live = live[_rank_within(owners[live]) < target.remaining(owners[live])]  # rows the budget still covers
        if not len(live):
            break
        mid = (lo[live] + hi[live]) / 2
        adv = target.is_adversarial(point(live, mid), owners[live])
        hi[live[adv]] = mid[adv]
        lo[live[~adv]] = mid[~adv]
        live = live[hi[live] - lo[live] > tol[live]]
    return hi


def closest_per_owner(owners: np.ndarray, d: np.ndarray) -> np.ndarray:
    """For each distinct owner, the row with the smallest ``d`` (ties: the first row)."""
    order = np.lexsort((d, owners))
    first = np.ones(len(order), bool)
    first[1:] = owners[order][1:] != owners[order][:-1]
    return order[first]


def _rank_within(owners: np.ndarray) -> np.ndarray:
    """For each entry, how many earlier entries have the same owner (0 for the first)."""
    order = np.argsort(owners, kind="stable")
    sorted_owners = owners[order]
    starts = np.flatnonzero(np.r_[True, sorted_owners[1:] != sorted_owners[:-1]])
    counts = np.diff(np.r_[starts, len(owners)])
    rank = np.empty(len(owners), np.int64)
    rank[order] = np.arange(len(owners)) - np.repeat(starts, counts)
    return rank


def blend(x0: np.ndarray, x1: np.ndarray, a: np.ndarray) -> np.ndarray:
    """``(1 - a) x0 + a x1`` row by row, in float32."""
    a = np.asarray(a, np.float32)[:, None]
    return ((1 - a) * x0 + a * x1).astype(np.float32)


def uniform_init(target: Target, x: np.ndarray, rngs: list[np.random.Generator], idx: np.ndarray,
                 size: int) -> tuple[np.ndarray, np.ndarray]:
    """Draw up to ``size`` uniform points in the box per sample until one is adversarial.

    Draws come in rounds of 1, 2, 4, ... per sample (so few model calls are needed, and few
    rows are wasted after the first hit); each sample takes the first adversarial draw of
    its own stream.  Returns ``(points (len(idx), d), found mask)``.
    """
    lower, upper = target.lower, target.upper
    points = x[idx].copy()
    found = np.zeros(len(idx), bool)
    drawn = np.zeros(len(idx), np.int64)
    batch = 1
    while True:
        todo = np.flatnonzero(~found & (drawn < size))
        todo = todo[target.remaining(idx[todo]) > 0]
        if not len(todo):
            break
        counts = np.minimum(batch, size - drawn[todo])
        rows = np.concatenate([rngs[idx[j]].uniform(lower, upper, (c, len(lower))).astype(np.float32)
                               for j, c in zip(todo, counts)])
        owners = np.repeat(todo, counts)
        adv = target.is_adversarial(rows, idx[owners])
        first = np.flatnonzero(adv)
        first = first[np.unique(owners[first], return_index=True)[1]]
        points[owners[first]] = rows[first]
        found[owners[first]] = True
        drawn[todo] += counts
        batch *= 2
    return points, found


def still_active(target: Target, best: Best, idx: np.ndarray, early_stop: float | None) -> np.ndarray:
    """The samples of ``idx`` with budget left and, under ``early_stop``, not yet close enough."""
    keep = target.remaining(idx) > 0
    if early_stop is not None:
        keep &= best.dist[idx] > early_stop
    return idx[keep]


def progress_bar(progress: bool, total: int, desc: str, unit: str):
    """A tqdm bar, or None when ``progress`` is off."""
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit)
