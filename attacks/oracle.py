"""The one query-counted interface between attacks and the model they attack.

:class:`Oracle` wraps a fitted classifier (an SCD ensemble, any scikit-learn-style classifier
with ``predict_proba`` or only ``predict``, a plain callable, or a ``torch.nn.Module``
returning logits) and gives attacks a hard-label oracle (:meth:`Oracle.labels`), a score
oracle (:meth:`Oracle.scores`) and, for differentiable models only, :meth:`Oracle.logits`,
:meth:`Oracle.loss_gradient` and :meth:`Oracle.logits_gradient` (the gradient of any weighted
sum of logits, a vector-Jacobian product: what margin losses such as C&W's and EAD's need).
Attacks never call the model themselves, so queries are counted, and budgets enforced, in this
one place (style guide, habit 7).

Conventions
-----------
- **Inputs** are 2-D numpy arrays ``(n_rows, n_features)``; they are cast to float32 and
  must be finite and inside ``bounds`` (:meth:`Oracle.check` raises ``ValueError``
  otherwise; :meth:`Oracle.clip` projects onto the box).  **Images**: with
  ``input_shape=(C, H, W)`` (or ``(H, W)``) :meth:`Oracle.check` also takes ``(n, C, H, W)``
  arrays and flattens them (C order); attacks work on the flat rows, and a torch module or
  plain callable receives them reshaped back to ``(n, *input_shape)``
  (:meth:`Oracle.unflatten`).  Attacks called on image-shaped ``x`` set ``input_shape`` from
  it and return image-shaped examples.
- **What the model is** is read from it where possible: ``classes`` from ``classes_``,
  ``n_features`` from ``n_features_in_``, per-feature bounds, ``input_shape``, or a torch
  module whose first layer with weights is ``torch.nn.Linear``.  A torch module or callable
  returning scores without ``classes_`` is asked **one probe query**, at the centre of the
  box, and its number of output columns gives the classes ``0 .. k-1`` (a single logit: two
  classes).  The probe is not counted anywhere; a label-only callable needs ``classes=``.
- **Labels are class indices** ``0 .. n_classes - 1``, positions in :attr:`Oracle.classes`
  (the model's own labels, e.g. ``classes_``); :meth:`Oracle.encode` maps model labels to
  indices.  Score and logit columns follow the same order.
- **Counting.**  A *row* is one input the model evaluates; a *call* is one batched request
  to the model (requests are cut into chunks of at most ``batch_size`` rows, and each chunk
  is one call).  Every answer is counted, gradients included, except :meth:`Oracle.confirm`.
  Attacks say which original sample each row belongs to with ``ids`` (an int for "all rows",
  or an int array of length ``n_rows``, e.g. ``np.repeat(active, k)`` for ``k`` rows per
  active sample in a batched binary search).  Rows without ids count only to the
  *unattributed* totals.  A sample's *calls* are the model calls that held at least one of
  its rows.
- **Budget.**  With ``budget=B`` every counted request must carry ids, and a sample gets
  exactly ``B`` rows answered: within a request its rows are answered in order until its
  budget is used up, and the rest are *refused*, never sent to the model, and marked in the
  output (label :data:`REFUSED` ``== -1``, or a row of NaN for float outputs).  Pass
  ``strict=True`` to raise :class:`QueryBudgetExceeded` instead, before anything is sent or
  counted (all or nothing).  :meth:`Oracle.remaining` tells an attack how much is left.
- **Line queries.**  :meth:`Oracle.line` gives the labels of the points
  ``clip(segment_points(x0, x1, a))`` of segments ``x0[i] -> x1[i]`` (a binary search's
  questions), counted exactly like :meth:`labels` of those points.  Models that have
  ``segments`` (SCD ensembles, :class:`scd.lines.Segments`) answer them from the endpoints'
  projections, bit-identical to ``predict``; ``line_queries=False`` turns that off.
- **Confirmation.**  :meth:`Oracle.confirm` re-queries final, clipped examples to confirm
  success; it ignores the budget and is reported separately (``confirm_rows``,
  ``confirm_calls``), never in ``rows``/``calls``.

Example
-------
>>> oracle = Oracle(model, bounds=(0.0, 1.0), budget=1000)   # doctest: +SKIP
>>> y = oracle.labels(x, ids=np.arange(len(x)))               # doctest: +SKIP
>>> oracle.queries(np.arange(len(x))), oracle.summary()["rows"]  # doctest: +SKIP
"""

from __future__ import annotations

from numbers import Integral
from typing import Any, Callable

import numpy as np
from sklearn import config_context

from scd.lines import segment_points

from .adapters import adapt, is_torch_module, softmax
from .counting import QueryCounts, rank_within

__all__ = ["REFUSED", "Line", "NoGradientError", "NoScoresError", "Oracle", "QueryBudgetExceeded"]

REFUSED = -1
"""Label returned for a row refused because its sample's budget is used up."""

class NoGradientError(TypeError):
    """The model has no logits or gradients (sign networks, trees, label-only callables)."""


class NoScoresError(TypeError):
    """The model answers labels only, so there are no scores to return."""


class QueryBudgetExceeded(RuntimeError):
    """A ``strict`` request asked for more rows than some sample's budget has left.

    Attributes
    ----------
    ids : ndarray of int64
        The samples whose budget the request would have exceeded.
    """

    def __init__(self, message: str, ids: np.ndarray):
        super().__init__(message)
        self.ids = ids


# ---------------------------------------------------------------------- the oracle
class Oracle:
    """Query-counted label/score/gradient oracle around a fitted classifier.

    Parameters
    ----------
    model : estimator, callable or torch.nn.Module
        - an object with ``predict_proba`` and/or ``predict`` (SCD ensembles, scikit-learn);
          labels come from ``predict`` when it exists (the deployed decision), else from the
          argmax of ``predict_proba``; if the object also has ``logits(x)``,
          ``loss_gradient(x, y)`` (``y`` its labels, values of ``classes``; returns
          ``(n, n_features)``) or
          ``logits_gradient(x, weights)`` (weights ``(n, n_classes)``, returns the gradient of
          each row's weighted logit sum, ``(n, n_features)``), those are used for the gradient
          oracle;
        - a ``torch.nn.Module`` returning logits (or one logit for a binary problem); inputs
          are moved to ``device``; gradients come from autograd;
        - a plain callable of ``x``, returning what ``output`` says.
    bounds : (lower, upper)
        The input box, each a scalar or an array of shape ``(n_features,)``.  Required: there
        is no safe default.
    n_features : int, optional
        Features per row; taken from ``model.n_features_in_``, per-feature bounds,
        ``input_shape`` or a leading ``torch.nn.Linear`` if omitted.
    classes : int or array-like, optional
        The model's class labels in column order (an int ``k`` means ``0 .. k-1``); taken
        from ``model.classes_`` if omitted, else from one uncounted probe query of a model
        returning scores (see the module docstring).
    output : {"proba", "logits", "labels"}, default="proba"
        What a plain callable returns; ignored for other models.
    batch_size : int, default=1024
        Most rows sent to the model in one call.
    budget : int, optional
        Hard per-sample limit on counted rows (see the module docstring).
    device : str or torch.device, optional
        Device of a torch module's inputs; default: where its parameters are.
    input_shape : tuple of int, optional
        The shape of one input as the model takes it, e.g. ``(1, 28, 28)``: rows are flat
        ``prod(input_shape)`` features, reshaped to it for a torch module or callable.
    line_queries : bool, default=True
        Answer :meth:`line` queries from the model's ``segments`` where it has them (the
        answers and counts are the same either way; off, every point is sent to ``predict``).
    """

    def __init__(self, model: Any, *, bounds: tuple[Any, Any], n_features: int | None = None,
                 classes: Any = None, output: str = "proba", batch_size: int = 1024,
                 budget: int | None = None, device: Any = None, input_shape: tuple[int, ...] | None = None,
                 line_queries: bool = True):
        self.input_shape = _resolve_input_shape(input_shape)
        self._model = adapt(model, output, device, self.input_shape)
        self.device = self._model.device
        self.model = model
        self.n_features = _resolve_n_features(model, n_features, bounds, self.input_shape)
        self.lower, self.upper = _resolve_bounds(bounds, self.n_features)
        self.batch_size = _positive_int("batch_size", batch_size)
        self.budget = None if budget is None else _positive_int("budget", budget)
        self.classes = _resolve_classes(model, classes, self._probe_width)
        self.n_classes = len(self.classes)
        self.line_queries = bool(line_queries)
        self._counts = QueryCounts()

    # ------------------------------------------------------------------ capabilities
    @property
    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """``(lower, upper)``, float32 arrays of shape ``(n_features,)``."""
        return self.lower, self.upper

    @property
    def has_scores(self) -> bool:
        """Whether :meth:`scores` works (the model gives probabilities or logits)."""
        return self._model.proba is not None or self._model.logits is not None

    @property
    def model_name(self) -> str:
        """The wrapped model's name, for messages."""
        return self._model.name

    @property
    def has_logits(self) -> bool:
        """Whether :meth:`logits` works."""
        return self._model.logits is not None

    @property
    def has_gradients(self) -> bool:
        """Whether :meth:`loss_gradient` works."""
        return self._model.grad is not None

    @property
    def has_logit_gradients(self) -> bool:
        """Whether :meth:`logits_gradient` works (a torch module, or an object with its own
        ``logits_gradient(x, weights)``)."""
        return self._model.vjp is not None

    # ------------------------------------------------------------------ input boundary
    def check(self, x: Any) -> np.ndarray:
        """``x`` as a float32 C-contiguous ``(n, n_features)`` array; ``ValueError`` if it has
        the wrong shape, NaN/inf, or values outside the bounds.  With an ``input_shape`` of two
        or more axes, ``(n, *input_shape)`` arrays are flattened first."""
        x = np.asarray(x)
        if self.input_shape is not None and len(self.input_shape) > 1 and x.shape[1:] == self.input_shape:
            x = x.reshape(len(x), self.n_features)
        if x.ndim != 2:
            raise ValueError(f"x must be 2-D (n_rows, n_features={self.n_features}), got shape {x.shape}; "
                             "pass one sample as x[None].")
        if x.shape[1] != self.n_features:
            raise ValueError(f"x has {x.shape[1]} features, but the model takes {self.n_features}.")
        if x.dtype.kind not in "fiu":
            raise ValueError(f"x must hold real numbers, got dtype {x.dtype}.")
        bad = ~np.isfinite(x)
        if bad.any():
            r, c = np.argwhere(bad)[0]
            raise ValueError(f"x has NaN or inf in {int(bad.any(axis=1).sum())} rows (first: row {r}, feature {c}).")
        x = np.ascontiguousarray(x, dtype=np.float32)
        out = (x < self.lower) | (x > self.upper)
        if out.any():
            r, c = np.argwhere(out)[0]
            raise ValueError(f"x is outside the bounds in {int(out.any(axis=1).sum())} rows (first: row {r}, "
                             f"feature {c}: {x[r, c]!r} not in [{self.lower[c]!r}, {self.upper[c]!r}]); "
                             "project it with oracle.clip(x).")
        return x

    def _checked(self, x: Any, checked: bool) -> np.ndarray:
        """``x`` itself when the caller vouches for it (``checked``), else :meth:`check` of it."""
        return x if checked else self.check(x)

    def unflatten(self, x: np.ndarray) -> np.ndarray:
        """Flat rows ``(n, n_features)`` in the model's input shape ``(n, *input_shape)``
        (unchanged without an ``input_shape``)."""
        return x if self.input_shape is None else x.reshape(len(x), *self.input_shape)

    def clip(self, x: Any) -> np.ndarray:
        """``x`` cast to float32 and clipped into the bounds (NaN stays NaN, so check catches it)."""
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ValueError(f"x must have shape (n_rows, {self.n_features}), got {x.shape}.")
        return np.clip(x, self.lower, self.upper)

    def encode(self, y: Any) -> np.ndarray:
        """Model labels (values of :attr:`classes`) as class indices ``(n,)`` int64."""
        y = np.asarray(y)
        idx = np.clip(np.searchsorted(self.classes, y), 0, self.n_classes - 1)
        unknown = self.classes[idx] != y
        if np.any(unknown):
            raise ValueError(f"labels {np.unique(y[unknown])[:5].tolist()} are not among the model's classes "
                             f"{self.classes.tolist()}.")
        return idx.astype(np.int64)

    # ------------------------------------------------------------------ counted queries
    def labels(self, x: Any, ids: Any = None, *, strict: bool = False, checked: bool = False) -> np.ndarray:
        """Hard labels as class indices ``(n,)`` int64; refused rows get :data:`REFUSED`.

        ``checked=True`` skips :meth:`check`: the caller promises a float32 ``(n, n_features)``
        array inside the bounds (an attack's own clipped rows; its inputs were checked once).
        """
        return self._ask(self._labels, (self._checked(x, checked),), ids, strict, np.int64, ())

    def scores(self, x: Any, ids: Any = None, *, strict: bool = False, checked: bool = False) -> np.ndarray:
        """Probabilities or vote fractions ``(n, n_classes)`` (the model's float precision, never
        downcast); refused rows are NaN.  ``NoScoresError`` for label-only models.  ``checked``
        as for :meth:`labels`."""
        if not self.has_scores:
            raise NoScoresError(f"{self._model.name} answers labels only, so there are no scores; use a "
                                "decision-based attack (HopSkipJump, Boundary, RayS) or oracle.labels.")
        return self._ask(self._scores, (self._checked(x, checked),), ids, strict, np.float64, (self.n_classes,))

    def logits(self, x: Any, ids: Any = None, *, strict: bool = False, checked: bool = False) -> np.ndarray:
        """Logits ``(n, n_classes)``; refused rows are NaN.  ``NoGradientError`` when the model has none.
        ``checked`` as for :meth:`labels`."""
        if self._model.logits is None:
            raise NoGradientError(self._no_gradient_message("logits"))
        return self._ask(self._logits, (self._checked(x, checked),), ids, strict, np.float64, (self.n_classes,))

    def loss_gradient(self, x: Any, y: Any, ids: Any = None, *, strict: bool = False,
                      checked: bool = False) -> np.ndarray:
        """Gradient of each row's own cross-entropy loss for class index ``y`` w.r.t. the row,
        ``(n, n_features)`` float32; refused rows are NaN.  ``NoGradientError`` when the model is
        not differentiable.  ``checked`` as for :meth:`labels`."""
        if self._model.grad is None:
            raise NoGradientError(self._no_gradient_message("loss_gradient"))
        x = self._checked(x, checked)
        y = np.asarray(y)
        if y.shape != (len(x),) or y.dtype.kind not in "iu" or np.any((y < 0) | (y >= self.n_classes)):
            raise ValueError(f"y must be {len(x)} class indices in [0, {self.n_classes}), got shape {y.shape}, "
                             f"dtype {y.dtype}.")
        return self._ask(self._grad, (x, y.astype(np.int64)), ids, strict, np.float32, (self.n_features,))

    def logits_gradient(self, x: Any, weights: Any, ids: Any = None, *, strict: bool = False,
                        checked: bool = False) -> np.ndarray:
        """Gradient w.r.t. each row of ``sum_c weights[i, c] * logits(x)[i, c]``, ``(n, n_features)``
        float32 (a vector-Jacobian product); refused rows are NaN.

        ``weights`` is a real ``(n, n_classes)`` array, one row of logit weights per input row, so
        any loss that is linear in the logits at a point, e.g. the C&W margin ``Z_y - Z_r``
        (``+1`` at ``y``, ``-1`` at ``r``), is one call.  Counted exactly like
        :meth:`loss_gradient`: one row per input row, the same budget and refusal rules.
        ``NoGradientError`` when the model gives no such gradient.  ``checked`` as for :meth:`labels`.
        """
        if self._model.vjp is None:
            raise NoGradientError(self._no_gradient_message("logits_gradient", "logits_gradient(x, weights)"))
        x = self._checked(x, checked)
        w = np.asarray(weights)
        if w.shape != (len(x), self.n_classes) or w.dtype.kind not in "fiu":
            raise ValueError(f"weights must be a real array of shape ({len(x)}, {self.n_classes}), one row of logit "
                             f"weights per row of x, got shape {w.shape}, dtype {w.dtype}.")
        if not np.all(np.isfinite(w)):
            raise ValueError("weights must be finite.")
        return self._ask(self._vjp, (x, np.ascontiguousarray(w, dtype=np.float64)), ids, strict, np.float32,
                         (self.n_features,))

    def line(self, x0: np.ndarray, x1: np.ndarray) -> Line:
        """Counted label queries along the segments ``x0[i] -> x1[i]`` (float32 rows inside the
        bounds, as an attack holds them): see :class:`Line`."""
        return Line(self, x0, x1)

    def confirm(self, x: Any, ids: Any = None, *, checked: bool = False) -> np.ndarray:
        """Labels ``(n,)`` for a final check of adversarial examples: ignores the budget and is
        counted only in the ``confirm_*`` counters.  ``checked`` as for :meth:`labels`."""
        return self._ask(self._labels, (self._checked(x, checked),), ids, False, np.int64, (), confirm=True)

    # ------------------------------------------------------------------ counts
    def queries(self, ids: Any) -> np.ndarray:
        """Counted rows used so far by each sample in ``ids`` ``(n,)`` (confirmations excluded)."""
        return self._counts.get("rows", self._id_array(ids))

    def remaining(self, ids: Any) -> np.ndarray:
        """Rows each sample in ``ids`` may still use; ``np.iinfo(np.int64).max`` without a budget."""
        ids = self._id_array(ids)
        if self.budget is None:
            return np.full(len(ids), np.iinfo(np.int64).max, np.int64)
        return np.maximum(self.budget - self._counts.get("rows", ids), 0)

    def sample_counts(self) -> dict[str, np.ndarray]:
        """Per-sample copies of ``rows``, ``calls``, ``confirm_rows``, ``confirm_calls`` and
        ``refused_rows``, indexed by id (length: largest id seen + 1)."""
        return {key: arr[: self._counts.size].copy() for key, arr in self._counts.per_sample.items()}

    def summary(self) -> dict[str, Any]:
        """Totals: ``rows``, ``calls``, ``unattributed_rows``/``_calls``, ``confirm_rows``/``_calls``,
        ``refused_rows``, ``n_samples`` (ids that were counted), ``budget`` and ``exhausted``
        (samples with no budget left)."""
        rows = self._counts.per_sample["rows"]
        out: dict[str, Any] = dict(self._counts.totals)
        out["n_samples"] = int(np.count_nonzero(rows))
        out["budget"] = self.budget
        out["exhausted"] = 0 if self.budget is None else int(np.count_nonzero(rows >= self.budget))
        return out

    def reset(self) -> None:
        """Zero every counter (and so every sample's used budget)."""
        self._counts = QueryCounts()

    def __repr__(self) -> str:
        return (f"Oracle({self._model.name}, n_features={self.n_features}, n_classes={self.n_classes}, "
                f"budget={self.budget}, rows={self._counts.totals['rows']})")

    # ------------------------------------------------------------------ internals
    def _ask(self, fn: Callable, arrays: tuple, ids: Any, strict: bool, dtype, width: tuple, *,
             confirm: bool = False) -> np.ndarray:
        """Admit rows under the budget (confirmations are not counted against it), call ``fn`` on
        chunks of at most ``batch_size`` rows, counting each call, and mark refused rows."""
        n = len(arrays[0])
        ids = self._ids(ids, n)
        if self.budget is not None and ids is None and not confirm:
            raise ValueError("This oracle has a per-sample budget, so every query must say which sample each "
                             "row belongs to: pass ids=.")
        admitted = None if confirm else self._admit(ids, strict)
        keep = None if admitted is None else np.flatnonzero(admitted)
        if keep is not None:
            arrays, ids = tuple(a[keep] for a in arrays), ids[keep]
        parts = []
        with config_context(assume_finite=True):  # rows were checked (or clipped) once already
            for start in range(0, len(arrays[0]), self.batch_size):
                stop = min(start + self.batch_size, len(arrays[0]))
                self._counts.call(None if ids is None else ids[start:stop], stop - start, confirm)
                parts.append(fn(*(a[start:stop] for a in arrays)))
        answers = np.concatenate(parts) if parts else np.zeros((0, *width), dtype)
        if keep is None:
            return answers
        out = np.full((n, *width), REFUSED if dtype == np.int64 else np.nan, dtype=answers.dtype)
        out[keep] = answers
        return out

    def _admit(self, ids: np.ndarray | None, strict: bool) -> np.ndarray | None:
        """Mask of rows within budget (None: all), recording refusals; strict raises instead."""
        if self.budget is None or ids is None:
            return None
        left = self.remaining(ids)
        admitted = rank_within(ids) < left
        if admitted.all():
            return None
        over = np.unique(ids[~admitted])
        if strict:
            raise QueryBudgetExceeded(
                f"{len(over)} samples would exceed their budget of {self.budget} rows (ids {over[:5].tolist()}"
                f"{'...' if len(over) > 5 else ''}); nothing was sent.", over)
        self._counts.refuse(ids[~admitted])
        return admitted

    def _ids(self, ids: Any, n: int) -> np.ndarray | None:
        """``ids`` as an int64 array of length ``n`` (an int means every row), or None."""
        if ids is None:
            return None
        if isinstance(ids, Integral) and not isinstance(ids, bool):
            ids = np.full(n, int(ids), np.int64)
        ids = self._id_array(ids)
        if ids.shape != (n,):
            raise ValueError(f"ids must give one sample id per row ({n}), got shape {ids.shape}.")
        return ids

    @staticmethod
    def _id_array(ids: Any) -> np.ndarray:
        ids = np.atleast_1d(np.asarray(ids))
        if ids.ndim != 1 or (ids.size and ids.dtype.kind not in "iu"):
            raise ValueError(f"ids must be non-negative integers (1-D), got dtype {ids.dtype}, shape {ids.shape}.")
        ids = ids.astype(np.int64)
        if ids.size and ids.min() < 0:
            raise ValueError(f"ids must be non-negative, got {int(ids.min())}.")
        return ids

    def _labels(self, x: np.ndarray) -> np.ndarray:
        m = self._model
        if m.labels is not None:
            y = np.asarray(m.labels(x))
            if y.shape != (len(x),):
                raise ValueError(f"{m.name} returned labels of shape {y.shape} for {len(x)} rows; expected "
                                 f"({len(x)},). (A callable returning scores needs output='proba'.)")
            return self.encode(y)
        return np.argmax(self._scores(x) if m.proba is not None else self._logits(x), axis=1).astype(np.int64)

    def _scores(self, x: np.ndarray) -> np.ndarray:
        if self._model.proba is not None:
            return self._matrix(self._model.proba(x), len(x), "probabilities")
        return softmax(self._logits(x).astype(np.float64))

    def _logits(self, x: np.ndarray) -> np.ndarray:
        return self._matrix(self._model.logits(x), len(x), "logits")

    def _grad(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        g = np.asarray(self._model.grad(x, self.classes[y] if self._model.grad_takes_labels else y), dtype=np.float32)
        if g.shape != x.shape:
            raise ValueError(f"{self._model.name}.loss_gradient returned shape {g.shape} for inputs {x.shape}.")
        return g

    def _vjp(self, x: np.ndarray, w: np.ndarray) -> np.ndarray:
        g = np.asarray(self._model.vjp(x, w), dtype=np.float32)
        if g.shape != x.shape:
            raise ValueError(f"{self._model.name}.logits_gradient returned shape {g.shape} for inputs {x.shape}.")
        return g

    def _matrix(self, out: Any, n: int, what: str) -> np.ndarray:
        out = np.asarray(out)
        if out.shape != (n, self.n_classes):
            hint = " (a callable returning labels needs output='labels')" if out.ndim == 1 else ""
            raise ValueError(f"{self._model.name} returned {what} of shape {out.shape} for {n} rows; expected "
                             f"({n}, {self.n_classes}){hint}.")
        return out if out.dtype.kind == "f" else out.astype(np.float64)

    def _no_gradient_message(self, what: str, needs: str = "logits(x)/loss_gradient(x, y)") -> str:
        return (f"{self._model.name} has no gradients, so oracle.{what} is unavailable: it needs a torch.nn.Module "
                f"or an object with {needs}. Sign-activation networks and trees are not "
                "differentiable; use a decision-based attack (HopSkipJump, Boundary, RayS), or attack a "
                "differentiable surrogate (a substitute model or a straight-through relaxation) in its own Oracle "
                "and transfer the examples.")


    def _probe_width(self) -> int | None:
        """Output columns of the model at the centre of the box: the one uncounted probe query
        (None for a label-only model, whose labels say nothing about the number of classes)."""
        m = self._model
        fn = m.proba or m.logits
        if fn is None:
            return None
        centre = ((self.lower.astype(np.float64) + self.upper) / 2).astype(np.float32)[None]
        out = np.asarray(fn(centre))
        return int(out.shape[1]) if out.ndim == 2 and out.shape[0] == 1 else None


class Line:
    """Label queries at the points ``clip(segment_points(x0[rows], x1[rows], a))`` of the segments
    ``x0[i] -> x1[i]``: what a binary search between two points asks.

    Counted, budgeted and refused exactly as :meth:`Oracle.labels` of those points (one row per
    query).  Where the model has ``segments`` (SCD ensembles) and the oracle's
    ``line_queries`` is on, the answers come from the endpoints' projections
    (:class:`scd.lines.Segments`, bit-identical to ``predict``); otherwise the points are formed
    and sent to the model.
    """

    def __init__(self, oracle: Oracle, x0: np.ndarray, x1: np.ndarray):
        self.oracle, self.x0, self.x1 = oracle, x0, x1
        make = oracle._model.segments
        inside = all(np.all((e >= oracle.lower) & (e <= oracle.upper)) for e in (x0, x1))
        self._segments = make(x0, x1, oracle.bounds) if oracle.line_queries and make and inside else None

    def points(self, rows: np.ndarray, a: np.ndarray) -> np.ndarray:
        """The float32 points asked about: segments ``rows`` at blend factors ``a``."""
        return self.oracle.clip(segment_points(self.x0[rows], self.x1[rows], a))

    def labels(self, rows: np.ndarray, a: np.ndarray, ids: Any = None, *, strict: bool = False) -> np.ndarray:
        """Class indices ``(len(rows),)`` at segments ``rows`` and blend factors ``a``; refused
        rows get :data:`REFUSED` (``ids`` and ``strict`` as for :meth:`Oracle.labels`)."""
        rows = np.asarray(rows, np.int64)
        a = np.asarray(a, np.float32)
        if self._segments is None:
            return self.oracle.labels(self.points(rows, a), ids, strict=strict, checked=True)
        return self.oracle._ask(self._answer, (rows, a), ids, strict, np.int64, ())

    def _answer(self, rows: np.ndarray, a: np.ndarray) -> np.ndarray:
        return self.oracle.encode(np.asarray(self._segments.predict(a, rows)))


# ---------------------------------------------------------------------- constructor helpers
def _resolve_classes(model: Any, classes: Any, probe: Callable[[], int | None]) -> np.ndarray:
    if classes is None:
        classes = getattr(model, "classes_", None)
    if classes is None:
        width = probe()
        if width is None or width < 2:
            raise ValueError(f"Cannot tell the classes of {type(model).__name__}"
                             f"{'' if width is None else f' (it returns {width} output column)'}: pass "
                             "classes=<number of classes> or classes=<labels in column order>.")
        classes = width
    if isinstance(classes, Integral) and not isinstance(classes, bool):
        classes = np.arange(int(classes))
    classes = np.asarray(classes)
    if classes.ndim != 1 or len(classes) < 2 or len(np.unique(classes)) != len(classes):
        raise ValueError(f"classes must be at least 2 distinct labels, got {classes!r}.")
    if np.any(classes[1:] < classes[:-1]):
        raise ValueError(f"classes must be sorted (as scikit-learn's classes_), got {classes.tolist()}.")
    return classes


def _resolve_input_shape(input_shape: Any) -> tuple[int, ...] | None:
    if input_shape is None:
        return None
    shape = tuple(input_shape) if isinstance(input_shape, (tuple, list)) else None
    if not shape or not all(isinstance(s, Integral) and not isinstance(s, bool) and s >= 1 for s in shape):
        raise ValueError(f"input_shape must be a non-empty tuple of positive ints, got {input_shape!r}.")
    return tuple(int(s) for s in shape)


def _resolve_n_features(model: Any, n_features: int | None, bounds: Any,
                        input_shape: tuple[int, ...] | None = None) -> int:
    fitted = getattr(model, "n_features_in_", None)
    shaped = None if input_shape is None else int(np.prod(input_shape))
    for name, value in (("the model was fitted on", fitted), ("input_shape holds", shaped)):
        if n_features is not None and value is not None and int(value) != n_features:
            raise ValueError(f"n_features={n_features} but {name} {int(value)} features.")
    if fitted is not None and shaped is not None and int(fitted) != shaped:
        raise ValueError(f"input_shape={input_shape} holds {shaped} features, but the model was fitted on "
                         f"{int(fitted)}.")
    if n_features is None:
        n_features = fitted if fitted is not None else shaped
    if n_features is None:
        sizes = {np.size(b) for b in bounds if np.ndim(b) == 1} if _is_pair(bounds) else set()
        n_features = sizes.pop() if len(sizes) == 1 else None
    linear = _leading_linear_inputs(model)
    if n_features is not None and linear is not None and linear != n_features:
        raise ValueError(f"rows have {n_features} features, but the first layer of {type(model).__name__} "
                         f"(torch.nn.Linear) takes {linear}.")
    if n_features is None:
        n_features = linear
    if n_features is None:
        raise ValueError(f"Cannot tell how many features {type(model).__name__} takes: pass n_features= (or "
                         "input_shape=).")
    return _positive_int("n_features", n_features)


def _leading_linear_inputs(model: Any) -> int | None:
    """``in_features`` of a torch module whose first layer with weights is ``torch.nn.Linear``."""
    if not is_torch_module(model):
        return None
    import torch

    for layer in model.modules():
        if next(layer.parameters(recurse=False), None) is not None:
            return int(layer.in_features) if isinstance(layer, torch.nn.Linear) else None
    return None


def _is_pair(bounds: Any) -> bool:
    return isinstance(bounds, (tuple, list)) and len(bounds) == 2


def _resolve_bounds(bounds: Any, d: int) -> tuple[np.ndarray, np.ndarray]:
    if not _is_pair(bounds):
        raise ValueError(f"bounds must be a pair (lower, upper) of scalars or ({d},) arrays, got {bounds!r}.")
    out = []
    for name, b in zip(("lower", "upper"), bounds):
        b = np.asarray(b, dtype=np.float64)
        if b.ndim > 1 or (b.ndim == 1 and b.shape != (d,)):
            raise ValueError(f"{name} bound must be a scalar or shape ({d},), got shape {b.shape}.")
        if not np.all(np.isfinite(b)):
            raise ValueError(f"{name} bound must be finite.")
        out.append(np.ascontiguousarray(np.broadcast_to(b, (d,)), dtype=np.float32))
    if np.any(out[0] > out[1]):
        raise ValueError("lower bound exceeds upper bound for some features.")
    return out[0], out[1]


def _positive_int(name: str, value: Any, minimum: int = 1) -> int:
    if not isinstance(value, Integral) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")
    return int(value)
