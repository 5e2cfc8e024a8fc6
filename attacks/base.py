"""The shared base of every attack: validation at the boundary, seeding, the run, and the
confirmation of every success on the real model.

An attack is a small class whose constructor only stores hyperparameters and whose
:meth:`Attack.run` holds the algorithm.  :meth:`Attack.__call__` (the same for every attack)
validates everything *before the first query*, builds the :class:`~attacks.criteria.Probe`
the algorithm talks to, runs it, then re-queries each final, clipped example on the model (an
uncounted :meth:`~attacks.oracle.Oracle.confirm`) and reports success only where that query
agrees.  The vocabulary lives beside it: :mod:`attacks.criteria` (criterion, probe),
:mod:`attacks.distances`, :mod:`attacks.result` and :mod:`attacks.search` (search steps).

Conventions
-----------
- Inputs are flat rows ``(n, n_features)``; labels and target labels are the model's own labels.
  Image-shaped inputs ``(n, C, H, W)`` or ``(n, H, W)`` are flattened at the boundary (the
  oracle's ``input_shape``) and the returned examples have their shape again.
- Per-sample state: attacks keep ``(n,)`` arrays and an ``active`` mask, and run every phase
  (binary searches, step searches, gradient estimation) in lock-step for all active samples,
  so the model sees a few large batches instead of many single rows.
- Randomness: sample ``i`` draws from its own generator ``np.random.default_rng([seed,
  sample_ids[i]])``, so a sample's result does not depend on its batch-mates.
- Budgets: ``max_queries`` is enforced by the oracle, exactly; a refused row counts as "not
  adversarial", so an attack can only ever keep points the model really answered.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

import numpy as np

from .criteria import Criterion, Probe
from .distances import distances, norm_name, parse_norm
from .oracle import Oracle, _positive_int
from .result import AttackResult
from .search import Best, nearest_other_class

__all__ = ["NEEDS", "Attack", "AttackResult", "nearest_other_class", "norm_name", "parse_norm"]

NEEDS = ("labels", "scores", "gradients", "logit_gradients")
"""What an attack asks of the model (:attr:`Attack.needs`), from least to most."""


class Attack:
    """Base of every attack: subclasses set ``name`` and ``norm`` and implement :meth:`run`.

    Call an attack on a fitted model (or an :class:`~attacks.oracle.Oracle`) and inputs; see
    :meth:`__call__`.
    """

    name: ClassVar[str] = "attack"
    uses_starting_points: ClassVar[bool] = False
    needs: ClassVar[str] = "labels"
    """What the attack asks of the model: one of :data:`NEEDS`."""

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
        x : array (n, n_features), or (n, *input_shape) for images
            Inputs, inside ``bounds``.  Image-shaped ``x`` (more than two axes) is attacked as
            flat rows (C order) and ``x_adv`` (with any per-feature extra field) comes back in
            its shape; the model (a torch module or callable) receives its own shape.
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
        self.validate()
        seed = _positive_int("seed", seed, minimum=0)
        oracle = _make_oracle(model, bounds, max_queries, batch_size, x)
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
        clean = oracle.confirm(x, ids, checked=True)  # the model's own answers, uncounted
        labels = clean if given is None else given
        if given is None:  # with y given, the targets were checked before any query
            _check_targets(tgt, labels)

        criterion = Criterion(labels, tgt)
        probe = Probe(oracle, criterion, ids)
        done_clean = criterion(clean, np.arange(n))
        best = Best(x, self.norm, probe)
        best.dist[done_clean] = 0.0
        rngs = [np.random.default_rng([seed, int(s)]) for s in ids]
        t0 = time.perf_counter()
        active = ~done_clean
        if active.any():
            extra = self.run(probe, x, best, rngs, active=active, starting_points=start, early_stop=early_stop,
                             progress=progress) or {}
        else:
            extra = {}
        seconds = time.perf_counter() - t0

        x_adv = np.where(best.found[:, None], probe.clip(best.x_adv), x)
        success = np.zeros(n, bool)
        idx = np.flatnonzero(best.found)
        if len(idx):
            success[idx] = criterion(oracle.confirm(x_adv[idx], ids[idx], checked=True), idx)
        x_adv[~success] = x[~success]
        dist = distances(x, x_adv)
        for name in dist:
            dist[name][~success] = np.nan
        after = _counts(oracle, ids)
        if oracle.input_shape is not None and len(oracle.input_shape) > 1:
            x_adv = oracle.unflatten(x_adv)
            extra = {k: (oracle.unflatten(v) if isinstance(v, np.ndarray) and v.shape == x.shape else v)
                     for k, v in extra.items()}
        return AttackResult(
            attack=self.name, params=self.get_params(), x_adv=x_adv, success=success,
            labels=oracle.classes[labels], targets=None if tgt is None else oracle.classes[tgt], **dist,
            queries=after["rows"][ids] - before["rows"], calls=after["calls"][ids] - before["calls"],
            confirm_queries=after["confirm_rows"][ids] - before["confirm_rows"],
            seconds=seconds, seed=seed, sample_ids=ids,
            history=[np.asarray(h if ok else [], np.float64).reshape(-1, 2) for h, ok in zip(best.history, success)],
            already_adversarial=done_clean, extra=extra)

    # ------------------------------------------------------------------ subclass hooks
    def run(self, probe: Probe, x: np.ndarray, best: Best, rngs: list[np.random.Generator], *,
            active: np.ndarray, starting_points: np.ndarray | None, early_stop: float | None,
            progress: bool) -> dict[str, Any] | None:
        """The algorithm: improve ``best`` for the ``active`` samples; may return extra fields."""
        raise NotImplementedError

    def validate(self) -> None:
        """Raise ``ValueError`` for invalid hyperparameters; every call runs it before any query."""
        self._check_params()

    def _check_params(self) -> None:
        """Subclass hook of :meth:`validate`."""

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


def _make_oracle(model: Any, bounds: Any, max_queries: int | None, batch_size: int | None, x: Any) -> Oracle:
    if isinstance(model, Oracle):
        if bounds is not None or max_queries is not None or batch_size is not None:
            raise ValueError("model is an Oracle: set bounds, the query budget and the batch size on the Oracle, "
                             "not here.")
        return model
    if bounds is None:
        raise ValueError("bounds=(lower, upper) is required: the attack must know the input box.")
    # x's row shape tells the oracle the model's input shape: always for images, and for flat rows
    # when the model cannot say how many features it takes (a torch module or callable)
    shape = np.shape(x)[1:]
    if not shape or (len(shape) == 1 and getattr(model, "n_features_in_", None) is not None):
        shape = None
    return Oracle(model, bounds=bounds, budget=max_queries, batch_size=1024 if batch_size is None else batch_size,
                  input_shape=shape)


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
