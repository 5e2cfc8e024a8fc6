"""ZOO (Chen, Zhang, Sharma, Yi, Hsieh 2017, arXiv 1708.03999): the C&W-L2 attack run on
model *scores* only, by zeroth-order stochastic coordinate descent.

Objective, per sample, over a perturbation variable ``y`` of the *attack space*::

    min_y  ‖x(y) − x0‖₂² + c · f(x(y))
    f = max(z_l − max_{i≠l} z_i, −κ)        untargeted (l: the true label)
    f = max(max_{i≠t} z_i − z_t, −κ)        targeted (t: the target label, from the base's criterion)

with ``z = log(max(p, 1e-30))`` (``loss="logprob"``, the thesis' black-box loss, eq. 10/11),
the logits (``loss="logits"``, models that have them) or the probabilities themselves
(``loss="prob"``, ART's hinge).  Probabilities and vote fractions are floored at
:data:`PROB_FLOOR` = 1e-30 before the log (as the original code adds 1e-30): SCD ensembles
return vote fractions that are often exactly 0 or 1, and ``log 0`` would make the loss -inf and
its differences NaN.

One iteration, for every active sample at once
----------------------------------------------
- pick ``B = min(batch_size, m)`` of the ``m`` attack-space coordinates, without replacement,
  from the sample's own generator (uniformly, or by importance sampling, below);
- ask the model about ``2B + 1`` rows: the centre ``x(y)`` and ``x(y ± h e_i)`` for each chosen
  ``i`` (all samples' rows in one :meth:`~attacks.oracle.Oracle.scores` call, or
  :meth:`~attacks.oracle.Oracle.logits` for ``loss="logits"``; very large batches are cut so
  that one call holds at most ~4M input values);
- symmetric differences of the whole objective (distance term included, which also makes the
  box projection and the tanh map exact) give ``ĝ_i = (L₊ − L₋) / 2h`` and
  ``ĥ_i = (L₊ − 2 L₀ + L₋) / h²`` (eq. 12, 13);
- update the ``B`` coordinates: ZOO-Adam (Algorithm 2; β1 0.9, β2 0.999, ε 1e-8, per-coordinate
  step counts), ZOO-Newton (Algorithm 3: ``y_i −= η ĝ_i / ĥ_i``; ``ĥ_i ≤ 0`` takes the gradient
  step ``−η ĝ_i`` as in the thesis, and ``0 < ĥ_i < 0.1`` is floored at 0.1 as in the original
  code, so a flat direction cannot throw the iterate away) or "newton_adam" (the original's
  ``adam_newton``: Newton where ``ĥ_i > 0``, Adam elsewhere).

Label check
-----------
Every one of the ``2B + 1`` rows is a counted model answer, so no extra query is needed: a row
is adversarial when its scores (logits for ``loss="logits"``) put the target *strictly* above
every other class (untargeted: some other class strictly above the true class) and its loss
margin reaches ``-κ``.  Ties never count, so a row is never called adversarial where ``argmax``
with any tie rule could disagree.  The closest such row of each sample (if any) is offered to
``best`` and makes the step a success for the binary search over c; the base re-queries
the final example with ``predict`` and reports success only where it agrees (a model whose
``predict`` disagrees with the argmax of its scores, such as ``SVC(probability=True)``, can
therefore lose a success, never gain a false one).

Box
---
``space="box"`` (default): ``x(y) = clip(x0 + D(y), lower, upper)``: the box projection is on
``x``, so features move in both directions (ART clips the *perturbation* into the box, so with
bounds (0, 1) it can only increase features).  Each coordinate ``y_i`` is also kept within the
widest range in which it still moves some feature of its block (exact projection without
dimension reduction), so it cannot drift where the objective is flat.  ``space="tanh"``:
``x(y) = lower + (upper − lower)(tanh(w0 + D(y)) + 1)/2`` with ``w0`` the point of ``x0``
(clipped to ±(1 − 1e-6) before ``arctanh``, as C&W do, so a feature on a bound starts 1e-6 of its
range inside).  The thesis notes that tanh makes gradients vanish near the bounds (MNIST).

Binary search over c, early abort
---------------------------------
Each sample runs ``binary_steps`` optimisations from ``y = 0`` with its own ``c`` (first
``c_init``).  A step ends after ``max_iter`` iterations, or when the centre loss has not
improved (by a relative 1e-4) for ``abort_patience`` iterations.  Then, C&W's rule: the step
found an adversarial row → ``ub = min(ub, c)``, ``c = (lb + ub)/2``; else ``lb = max(lb, c)`` and
``c = (lb + ub)/2`` if an upper bound exists, ``10 c`` otherwise.  Samples move through their
steps independently (a sample that aborts early starts its next step at once).

Attack-space dimension reduction, hierarchical attack, importance sampling (images)
-----------------------------------------------------------------------------------
With ``image_shape=(C, H, W)`` (rows are the flattened image in C order, torch's
``x.reshape(n, -1)``), ``y`` has ``C × h × w`` coordinates, ``(h, w) = init_size``, and
``D`` is *nearest-neighbour* upsampling: feature ``(c, p, q)`` follows coordinate
``(c, ⌊p h / H⌋, ⌊q w / W⌋)``, so ``D(e_i)`` is a block of ones (the ``±h`` rows move a whole
block), the range that keeps a coordinate useful in box space is simple, and growing the space
is exact for nested grids.  (The thesis suggests bilinear upsampling; nearest keeps the blocks independent.)
``resize_schedule=((it1, s1), (it2, s2), ...)`` grows the attack space to ``s_k`` at
iteration ``it_k`` of each binary step: ``y ← D_new⁺ D_old y`` (the block mean, exact for
nested grids), and the Adam state is reset, as in the original.  ``importance=True`` draws the
coordinates with probability proportional to the max-pooled ``|y|`` over 8 × 8 regions per
channel (thesis §3.2.4), refreshed every iteration; weights are floored at 1 % of the largest
so that no coordinate becomes unreachable, and are uniform while ``y = 0``.  For flat tabular
inputs (``image_shape=None``) the attack space is the input space; asking for reduction,
a schedule or importance sampling without ``image_shape`` raises ``ValueError``.

Zero gradients
--------------
Sign-activation ensembles (SCD), trees and other piecewise-constant models return the same
scores at ``x ± h e_i`` almost everywhere, so the model term of almost every estimate is exactly
0 and only the distance term moves ``y`` (back to ``x0``).  Per sample, ``zero_gradient_fraction``
is the fraction of estimated coordinates whose loss margin was identical at ``+h`` and ``−h``,
and ``zero_gradient_steps`` the iterations where that held for all ``B`` coordinates; one
``UserWarning`` says how many samples had at least half of their estimates zero.

Query counting
--------------
Rows, not coordinates: an iteration costs ``2B + 1`` rows per sample (the original ZOO counts
``B``).  A sample stops, exactly within its budget, when fewer than ``2B + 1`` rows are left.

Differences from ART 1.20.1 ``ZooAttack`` and the original (huanzhang12/ZOO-Attack)
------------------------------------------------------------------------------------
- Box projection on ``x``, not on the perturbation (see Box); ART cannot decrease a feature
  with ``clip_values=(0, 1)``.
- Log-probability loss by default (ART: the probability hinge, available as ``loss="prob"``);
  Newton and tanh solvers (ART: Adam and box only).
- ``B = min(batch_size, m)``, so tabular inputs with fewer than 128 features work (ART raises).
- All samples in lock-step, ``2B + 1`` rows per model call per sample (ART with its default
  ``batch_size=1`` makes one model call per row), per-sample ``c``, steps and early abort,
  per-sample seeded coordinate draws, a per-sample query budget.
- Early abort with a patience on the best loss instead of comparing with the loss
  ``max_iter // 10`` iterations earlier (which, with ART's ``max_iter=10``, stops after two).
- ``x_adv`` is the closest row the model answered as adversarial, never clipped afterwards.

References
----------
Chen, Zhang, Sharma, Yi, Hsieh, "ZOO: Zeroth order optimization based black-box attacks to
deep neural networks without training substitute models", AISec 2017, arXiv 1708.03999;
Carlini & Wagner, arXiv 1608.04644; Efraimidis & Spirakis, "Weighted random sampling with a
reservoir", IPL 2006 (the weighted draw without replacement).
"""

from __future__ import annotations

import warnings
from numbers import Integral, Real
from typing import Any

import numpy as np

from .base import Attack
from .criteria import Probe
from .search import Best, progress_bar
from .oracle import NoGradientError, NoScoresError, Oracle

__all__ = ["ZOO"]

PROB_FLOOR = 1e-30
"""Probabilities and vote fractions are floored here before the log (``loss="logprob"``)."""

ZERO_GRADIENT_WARN = 0.5
"""A sample counts as "zero-gradient" in the warning when at least this fraction of its
estimated coordinates were exactly zero."""

IMPORTANCE_FLOOR = 0.01
"""Importance weights are at least this fraction of the largest weight of their sample."""

_MAX_ELEMENTS = 1 << 22  # input values per model call (each float64 temporary is 32 MB)
_BETA1, _BETA2, _ADAM_EPS = 0.9, 0.999, 1e-8
_NO_UPPER = 1e10  # "no successful c yet" (C&W's 1e10)
_TANH_CLIP = 1.0 - 1e-6
_IMPROVE = 1e-4  # relative decrease of the loss that counts as an improvement


class ZOO(Attack):
    """ZOO: score-based black-box L2 attack by zeroth-order coordinate descent (see the module docstring).

    Parameters
    ----------
    confidence : float, default=0.0
        κ: the loss margin a row must reach to count as adversarial (in the units of ``loss``).
    loss : {"logprob", "logits", "prob"}, default="logprob"
        What ``z`` is in the hinge: floored log-probabilities (the thesis), logits (needs a
        model with logits, e.g. a torch module) or probabilities (ART).
    solver : {"adam", "newton", "newton_adam"}, default="adam"
        Coordinate update: ZOO-Adam, ZOO-Newton, or Newton where the Hessian estimate is
        positive and Adam elsewhere.
    learning_rate : float, default=1e-2
        η of every solver.
    batch_size : int, default=128
        Coordinates estimated per iteration (capped at the attack-space size); each iteration
        costs ``2 · batch_size + 1`` rows per sample.  Not the oracle's chunk size (that is
        the ``batch_size`` of the call).
    h : float, default=1e-4
        Step of the symmetric differences, in attack-space units (tanh space: in ``w``).
    max_iter : int, default=1000
        Iterations per binary-search step.
    binary_steps : int, default=9
        Binary-search steps over ``c`` (the thesis: 9 from 0.01).
    c_init : float, default=1e-2
        First ``c``.
    abort_patience : int or None, default=100
        End a step when the loss has not improved for this many iterations (None: never).
    space : {"box", "tanh"}, default="box"
        Box projection of ``x`` or the tanh change of variables.
    image_shape : (C, H, W) or None
        Declare rows as flattened images (C order) to enable the options below.
    init_size : int or (h, w), optional
        Side(s) of the reduced attack space per channel (default: the full image).
    resize_schedule : sequence of (iteration, size), default=()
        Grow the attack space to ``size`` (int or (h, w)) at ``iteration`` of each step,
        e.g. ``((2000, 16), (10000, 32))``.
    importance : bool, default=False
        Importance sampling of coordinates (images only).

    ``extra`` of the result: ``const`` (smallest successful c; -1 where no step succeeded, 0 for
    samples not attacked), ``iterations``, ``binary_steps_done``, ``early_aborts``,
    ``coordinates`` (coordinate estimates made), ``zero_gradient_fraction``,
    ``zero_gradient_steps`` (per sample) and ``attack_dims`` (attack-space size of each level).
    """

    needs = "scores"

    name = "zoo"

    def __init__(self, confidence: float = 0.0, loss: str = "logprob", solver: str = "adam",
                 learning_rate: float = 1e-2, batch_size: int = 128, h: float = 1e-4, max_iter: int = 1000,
                 binary_steps: int = 9, c_init: float = 1e-2, abort_patience: int | None = 100, space: str = "box",
                 image_shape: Any = None, init_size: Any = None, resize_schedule: Any = (),
                 importance: bool = False):
        self.confidence = confidence
        self.loss = loss
        self.solver = solver
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.h = h
        self.max_iter = max_iter
        self.binary_steps = binary_steps
        self.c_init = c_init
        self.abort_patience = abort_patience
        self.space = space
        self.image_shape = image_shape
        self.init_size = init_size
        self.resize_schedule = resize_schedule
        self.importance = importance

    @property
    def norm(self) -> float:
        return 2.0

    # ------------------------------------------------------------------ validation
    def _check_params(self) -> None:
        if not _is_real(self.confidence) or not (np.isfinite(self.confidence) and self.confidence >= 0):
            raise ValueError(f"confidence must be a finite number >= 0, got {self.confidence!r}.")
        for name in ("learning_rate", "h", "c_init"):
            value = getattr(self, name)
            if not _is_real(value) or not (np.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {value!r}.")
        for name in ("batch_size", "max_iter", "binary_steps"):
            if not _is_int(getattr(self, name), 1):
                raise ValueError(f"{name} must be an integer >= 1, got {getattr(self, name)!r}.")
        if self.abort_patience is not None and not _is_int(self.abort_patience, 1):
            raise ValueError(f"abort_patience must be an integer >= 1 or None (no early abort), got "
                             f"{self.abort_patience!r}.")
        for name, allowed in (("loss", ("logprob", "logits", "prob")), ("solver", ("adam", "newton", "newton_adam")),
                              ("space", ("box", "tanh"))):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}.")
        if not isinstance(self.importance, (bool, np.bool_)):
            raise ValueError(f"importance must be True or False, got {self.importance!r}.")
        self._levels()  # image_shape, init_size and resize_schedule

    def _levels(self) -> list[tuple[int, int]] | None:
        """The attack-space sides ``(h, w)`` of each level (None for flat inputs); validates."""
        if self.image_shape is None:
            asked = [name for name, value in (("init_size", self.init_size is not None),
                                              ("resize_schedule", _nonempty(self.resize_schedule)),
                                              ("importance", bool(self.importance))) if value]
            if asked:
                raise ValueError(f"{', '.join(asked)} need image_shape=(channels, height, width): attack-space "
                                 "dimension reduction, the hierarchical schedule and importance sampling work on "
                                 "images. For flat tabular inputs the attack space is the input space; leave "
                                 "them unset.")
            return None
        shape = self.image_shape
        if (not isinstance(shape, (tuple, list)) or len(shape) != 3 or not all(_is_int(s, 1) for s in shape)):
            raise ValueError(f"image_shape must be (channels, height, width), three integers >= 1, got {shape!r}.")
        _, height, width = (int(s) for s in shape)
        start = (height, width) if self.init_size is None else _side(self.init_size, "init_size")
        levels = [start]
        schedule = () if self.resize_schedule is None else self.resize_schedule
        if not isinstance(schedule, (tuple, list)):
            raise ValueError(f"resize_schedule must be a sequence of (iteration, size) pairs, got {schedule!r}.")
        last_it = 0
        for entry in schedule:
            if not isinstance(entry, (tuple, list)) or len(entry) != 2 or not _is_int(entry[0], 1):
                raise ValueError(f"resize_schedule entries must be (iteration >= 1, size), got {entry!r}.")
            size = _side(entry[1], "a resize_schedule size")
            if entry[0] <= last_it or not (size[0] >= levels[-1][0] and size[1] >= levels[-1][1]
                                           and size != levels[-1]):
                raise ValueError(f"resize_schedule must grow: iterations strictly increasing and each size larger "
                                 f"than the one before (starting from init_size {levels[0]}); got {schedule!r}.")
            last_it = int(entry[0])
            levels.append(size)
        for size in levels:
            if size[0] > height or size[1] > width:
                raise ValueError(f"attack-space size {size} exceeds the image ({height}, {width}) of image_shape "
                                 f"{tuple(shape)!r}.")
        return levels

    def _check_oracle(self, oracle: Oracle) -> None:
        if not oracle.has_scores:
            raise NoScoresError(
                f"ZOO needs the model's scores (probabilities, vote fractions or logits), but {oracle.model_name} "
                "answers labels only. Use a decision-based attack (HopSkipJump, Boundary, RayS) on label-only "
                "models.")
        if self.loss == "logits" and not oracle.has_logits:
            raise NoGradientError(
                f"loss='logits' needs a model with logits (a torch module, or an object with logits(x)), but "
                f"{oracle.model_name} gives probabilities only: use loss='logprob' (the log of the probabilities "
                "differs from the logits by a per-row constant, so the hinge is the same).")
        if self.image_shape is not None and int(np.prod(self.image_shape)) != oracle.n_features:
            raise ValueError(f"image_shape {tuple(self.image_shape)!r} has {int(np.prod(self.image_shape))} values, "
                             f"but the model takes {oracle.n_features} features.")

    # ------------------------------------------------------------------ algorithm
    def run(self, probe: Probe, x: np.ndarray, best: Best, rngs: list[np.random.Generator], *,
            active: np.ndarray, starting_points: np.ndarray | None, early_stop: float | None,
            progress: bool) -> dict[str, Any]:
        n, d = x.shape
        sides = self._levels()
        shape = (1, 1, d) if sides is None else tuple(int(s) for s in self.image_shape)
        levels = [_Level(shape, side) for side in (sides or [(1, d)])]
        switch = np.array([int(it) for it, _ in self.resize_schedule or ()] if sides is not None else [], np.int64)
        rows_at = 2 * np.array([lv.coords(self.batch_size) for lv in levels]) + 1  # per sample and iteration
        state = _State(self, probe, x, levels)
        idx = np.flatnonzero(active)
        state.start_step(idx)
        live = idx
        bar = progress_bar(progress, self.binary_steps * self.max_iter, "ZOO", "it")
        while len(live):
            grow = live[np.searchsorted(switch, state.it[live], side="right") > state.level[live]]
            if len(grow):
                state.grow(grow, np.searchsorted(switch, state.it[grow], side="right"))
            keep = probe.remaining(live) >= rows_at[state.level[live]]
            if early_stop is not None:
                keep &= best.dist[live] > early_stop
            live = live[keep]
            if not len(live):
                break
            for call in _packed(_plan(state, live, rngs, d), d):
                state.ask(call)
                for part in call:
                    state.iterate(part, best)
            live = live[state.step[live] < self.binary_steps]
            if bar is not None:
                bar.update(1)
                found = best.dist[idx][np.isfinite(best.dist[idx])]
                bar.set_postfix(active=len(live), median_l2=f"{np.median(found):.4g}" if len(found) else "-",
                                refresh=False)
        if bar is not None:
            bar.close()
        best.close(idx[best.found[idx]])
        return state.extras(idx, self, levels)


# ---------------------------------------------------------------------- per-sample state
class _State:
    """Per-sample optimisation state, ``(n,)`` and ``(n, m_max)`` arrays indexed by sample position."""

    def __init__(self, attack: ZOO, probe: Probe, x: np.ndarray, levels: list[_Level]):
        n, d = x.shape
        self.a = attack
        self.probe = probe
        self.levels = levels
        self.x0 = x.astype(np.float64)
        self.lower = probe.lower.astype(np.float64)
        self.upper = probe.upper.astype(np.float64)
        m = max(lv.m for lv in levels)
        self.y = np.zeros((n, m))
        self.adam_m = np.zeros((n, m))
        self.adam_v = np.zeros((n, m))
        self.adam_t = np.zeros((n, m), np.int64)
        self.y_lo = np.full((n, m), -np.inf)
        self.y_hi = np.full((n, m), np.inf)
        self.level = np.zeros(n, np.int64)
        self.it = np.zeros(n, np.int64)
        self.step = np.zeros(n, np.int64)
        self.const = np.full(n, float(attack.c_init))
        self.c_lo = np.zeros(n)
        self.c_hi = np.full(n, _NO_UPPER)
        self.best_loss = np.full(n, np.inf)
        self.stall = np.zeros(n, np.int64)
        self.succeeded = np.zeros(n, bool)  # in the current step
        self.iterations = np.zeros(n, np.int64)
        self.aborts = np.zeros(n, np.int64)
        self.coordinates = np.zeros(n, np.int64)
        self.zero_coords = np.zeros(n, np.int64)
        self.zero_steps = np.zeros(n, np.int64)
        crit = probe.criterion
        self.classes = (crit.targets if crit.targeted else crit.labels).astype(np.int64)
        self.targeted = crit.targeted
        if attack.space == "tanh":
            span = self.upper - self.lower
            unit = np.where(span > 0, 2 * (self.x0 - self.lower) / np.where(span > 0, span, 1) - 1, 0.0)
            self.w0 = np.arctanh(np.clip(unit, -_TANH_CLIP, _TANH_CLIP))

    # -------------------------------------------------------------- step and level changes
    def start_step(self, s: np.ndarray) -> None:
        """Reset samples ``s`` to ``y = 0`` at the first level, for a new binary-search step."""
        for arr in (self.y, self.adam_m, self.adam_v, self.adam_t):
            arr[s] = 0
        self.level[s] = 0
        self.it[s] = 0
        self.best_loss[s] = np.inf
        self.stall[s] = 0
        self.succeeded[s] = False
        self._set_range(s)

    def grow(self, s: np.ndarray, new_level: np.ndarray) -> None:
        """Move samples ``s`` to a larger attack space: ``y ← D_new⁺ D_old y``, Adam state reset."""
        for lv in np.unique(self.level[s]):
            for nl in np.unique(new_level[self.level[s] == lv]):
                g = s[(self.level[s] == lv) & (new_level == nl)]
                old, new = self.levels[lv], self.levels[nl]
                full = old.upsample(self.y[g, :old.m])
                self.y[g] = 0
                self.y[g, :new.m] = new.reduce(full, np.add) / new.counts
                self.level[g] = nl
        for arr in (self.adam_m, self.adam_v, self.adam_t):
            arr[s] = 0
        self._set_range(s)

    def _set_range(self, s: np.ndarray) -> None:
        """Box space: each coordinate's widest useful range (some feature of its block still moves)."""
        if self.a.space != "box" or not len(s):
            return
        for lv in np.unique(self.level[s]):
            g = s[self.level[s] == lv]
            level = self.levels[lv]
            self.y_lo[g] = -np.inf
            self.y_hi[g] = np.inf
            self.y_lo[g, :level.m] = level.reduce(self.lower - self.x0[g], np.minimum)
            self.y_hi[g, :level.m] = level.reduce(self.upper - self.x0[g], np.maximum)

    def end_step(self, s: np.ndarray, aborted: np.ndarray) -> None:
        """C&W's binary-search update of ``c`` for samples ``s`` whose step ended."""
        self.aborts[s[aborted]] += 1
        ok = self.succeeded[s]
        c = self.const[s]
        hi = np.where(ok, np.minimum(self.c_hi[s], c), self.c_hi[s])
        lo = np.where(ok, self.c_lo[s], np.maximum(self.c_lo[s], c))
        self.const[s] = np.where(ok | (hi < 1e9), (lo + hi) / 2, c * 10)
        self.c_hi[s], self.c_lo[s] = hi, lo
        self.step[s] += 1
        again = s[self.step[s] < self.a.binary_steps]
        self.start_step(again)

    # -------------------------------------------------------------- one iteration
    def point(self, s: np.ndarray, pix: Any, w: np.ndarray) -> np.ndarray:
        """Inputs (float32) at features ``pix`` of samples ``s`` for attack variables mapped to input
        space ``w`` (box: ``clip(x0 + w)``; tanh: ``lower + span (tanh(w0 + w) + 1)/2``).
        ``s`` and ``pix`` index ``x0`` as a pair (broadcast to the shape of ``w``)."""
        lower, upper = self.lower[pix], self.upper[pix]
        if self.a.space == "box":
            out = np.clip(self.x0[s, pix] + w, lower, upper)
        else:
            out = lower + (upper - lower) * (np.tanh(self.w0[s, pix] + w) + 1) / 2
        return np.clip(out.astype(np.float32), self.probe.lower[pix], self.probe.upper[pix])

    def rows(self, part: _Part) -> None:
        """The ``2B + 1`` rows of each sample of ``part`` (centre, ``+h e_i``, ``−h e_i``;
        ``(k, 2B+1, d)`` float32) and their squared distances to ``x0`` ``(k, 2B+1)``.

        The ``±h`` rows are copies of the centre with only the block of coordinate ``i``
        recomputed, and their distances are the centre's corrected on that block, so an
        iteration costs one copy of the rows rather than several full passes over them."""
        lv = self.levels[part.level]
        s, coords = part.s, part.coords
        k, b = coords.shape
        d = len(lv.owner)
        w = lv.upsample(self.y[s, :lv.m])  # (k, d)
        centre = self.point(s[:, None], np.arange(d)[None, :], w)
        offset = centre.astype(np.float64) - self.x0[s]
        rows = np.repeat(centre[:, None, :], 2 * b + 1, axis=1)
        dist2 = np.repeat((offset * offset).sum(axis=1)[:, None], 2 * b + 1, axis=1)
        pix = lv.members[coords]  # (k, b, P): the features of each chosen coordinate's block
        real = lv.member_mask[coords]  # padding repeats a member: written twice, counted once
        r = np.arange(k)[:, None, None]
        j = np.arange(b)[None, :, None]
        old = offset[r, pix] ** 2
        for first, sign in ((1, 1.0), (1 + b, -1.0)):
            values = self.point(s[r], pix, w[r, pix] + sign * self.a.h)
            rows[r, first + j, pix] = values
            new = (values.astype(np.float64) - self.x0[s[r], pix]) ** 2
            dist2[:, first:first + b] += ((new - old) * real).sum(axis=2)
        part.rows, part.dist2 = rows, dist2

    def ask(self, parts: list[_Part]) -> None:
        """One counted model call for the rows of ``parts``: scores (or logits) per row."""
        for part in parts:
            self.rows(part)
        flat = np.concatenate([p.rows.reshape(-1, p.rows.shape[2]) for p in parts])
        ids = self.probe.ids[np.concatenate([np.repeat(p.s, p.rows.shape[1]) for p in parts])]
        oracle = self.probe.oracle
        answers = (oracle.logits(flat, ids, checked=True) if self.a.loss == "logits"
                   else oracle.scores(flat, ids, checked=True))
        start = 0
        for part in parts:
            size = part.rows.shape[0] * part.rows.shape[1]
            part.scores = answers[start:start + size]
            start += size

    def iterate(self, part: _Part, best: Best) -> None:
        """Losses, label check, coordinate estimates and the solver update for the samples of ``part``."""
        a = self.a
        s, coords = part.s, part.coords
        k, b = coords.shape
        rows, dist2 = part.rows, part.dist2
        scores = part.scores.reshape(k, 2 * b + 1, -1)
        answered = np.isfinite(scores).all(axis=(1, 2))  # refusals cannot happen (budget checked); never use one
        if not answered.all():
            self.step[s[~answered]] = a.binary_steps
            s, coords, rows, dist2 = s[answered], coords[answered], rows[answered], dist2[answered]
            scores = scores[answered]
            k = len(s)
            if not k:
                return
        z = scores if a.loss != "logprob" else np.log(np.maximum(scores, PROB_FLOOR))
        margin = _margin(z, self.classes[s], self.targeted)
        raw = margin if a.loss != "logprob" else _margin(scores, self.classes[s], self.targeted)
        adv = (raw < 0) & (margin <= -a.confidence)
        loss = dist2 + self.const[s][:, None] * np.maximum(margin, -a.confidence)

        # keep the closest adversarial row of each sample
        hit = np.flatnonzero(adv.any(axis=1))
        if len(hit):
            self.succeeded[s[hit]] = True
            closest = np.argmin(np.where(adv[hit], dist2[hit], np.inf), axis=1)
            kept = best.offer(s[hit], rows[hit, closest], np.ones(len(hit), bool))
            if len(kept):
                best.record(s[hit[kept]])

        # coordinate estimates
        centre, plus, minus = loss[:, 0], loss[:, 1:b + 1], loss[:, b + 1:]
        grad = (plus - minus) / (2 * a.h)
        hess = (plus - 2 * centre[:, None] + minus) / (a.h * a.h)
        zero = margin[:, 1:b + 1] == margin[:, b + 1:]
        self.coordinates[s] += b
        self.zero_coords[s] += zero.sum(axis=1)
        self.zero_steps[s] += zero.all(axis=1)
        self._update(s, coords, grad, hess)

        # early abort and the end of the step
        last = self.best_loss[s]
        finite = np.isfinite(last)
        improved = ~finite | (centre < np.where(finite, last - _IMPROVE * np.abs(np.where(finite, last, 0)), np.inf))
        self.best_loss[s] = np.where(improved, centre, last)
        self.stall[s] = np.where(improved, 0, self.stall[s] + 1)
        self.it[s] += 1
        self.iterations[s] += 1
        aborted = np.zeros(k, bool) if a.abort_patience is None else self.stall[s] >= a.abort_patience
        over = aborted | (self.it[s] >= a.max_iter)
        if over.any():
            self.end_step(s[over], aborted[over] & (self.it[s[over]] < a.max_iter))

    def _update(self, s: np.ndarray, coords: np.ndarray, grad: np.ndarray, hess: np.ndarray) -> None:
        """One solver step on the chosen coordinates (then the box projection of ``y``)."""
        a = self.a
        lr = a.learning_rate
        r = s[:, None]
        y = self.y[r, coords]
        if a.solver == "adam":
            use_adam = np.ones(grad.shape, bool)
        else:
            curv = hess > 0 if a.solver == "newton_adam" else np.ones(grad.shape, bool)
            safe = np.where(hess <= 0, 1.0, np.maximum(hess, 0.1))  # thesis: ĥ ≤ 0 → gradient step
            y = np.where(curv, y - lr * grad / safe, y)
            use_adam = ~curv
        if use_adam.any():
            m = np.where(use_adam, _BETA1 * self.adam_m[r, coords] + (1 - _BETA1) * grad, self.adam_m[r, coords])
            v = np.where(use_adam, _BETA2 * self.adam_v[r, coords] + (1 - _BETA2) * grad * grad,
                         self.adam_v[r, coords])
            t = self.adam_t[r, coords] + use_adam
            tt = np.maximum(t, 1)
            corr = np.sqrt(1 - _BETA2 ** tt) / (1 - _BETA1 ** tt)
            y = np.where(use_adam, y - lr * corr * m / (np.sqrt(v) + _ADAM_EPS), y)
            self.adam_m[r, coords], self.adam_v[r, coords], self.adam_t[r, coords] = m, v, t
        self.y[r, coords] = np.clip(y, self.y_lo[r, coords], self.y_hi[r, coords])

    def extras(self, idx: np.ndarray, attack: ZOO, levels: list[_Level]) -> dict[str, Any]:
        n = len(self.const)
        # a step cut short (budget, early stop) after a success still lowers the upper bound of c
        cut_short = (self.step < attack.binary_steps) & self.succeeded
        c_hi = np.where(cut_short, np.minimum(self.c_hi, self.const), self.c_hi)
        const = np.zeros(n)
        const[idx] = np.where(c_hi[idx] < 1e9, c_hi[idx], -1.0)
        fraction = self.zero_coords / np.maximum(self.coordinates, 1)
        extra = {"const": const, "iterations": self.iterations,
                 "binary_steps_done": np.minimum(self.step, attack.binary_steps), "early_aborts": self.aborts,
                 "coordinates": self.coordinates, "zero_gradient_fraction": fraction,
                 "zero_gradient_steps": self.zero_steps, "attack_dims": [int(lv.m) for lv in levels]}
        estimated = idx[self.coordinates[idx] > 0]
        flat = estimated[fraction[estimated] >= ZERO_GRADIENT_WARN]
        if len(flat):
            overall = self.zero_coords[estimated].sum() / self.coordinates[estimated].sum()
            warnings.warn(
                f"ZOO: the estimated coordinate gradients of the loss were exactly zero for at least "
                f"{ZERO_GRADIENT_WARN:.0%} of the coordinates of {len(flat)} of {len(estimated)} attacked samples "
                f"({overall:.1%} of all {int(self.coordinates[estimated].sum())} estimates): the model's scores did "
                f"not change within ±h={attack.h:g}. The model is probably piecewise constant (sign-activation "
                "ensembles, trees, vote fractions), so ZOO only moved back towards x. Use a decision-based attack "
                "(HopSkipJump, Boundary, RayS) or a larger h. See extra['zero_gradient_fraction'] and "
                "extra['zero_gradient_steps'].", UserWarning, stacklevel=4)
        return extra


# ---------------------------------------------------------------------- attack-space geometry
class _Level:
    """One attack-space size ``(h, w)`` per channel: which coordinate each input feature follows
    (nearest-neighbour upsampling), and the 8 × 8 importance regions of the coordinates."""

    def __init__(self, shape: tuple[int, int, int], side: tuple[int, int]):
        channels, height, width = shape
        sh, sw = side
        self.m = channels * sh * sw
        self.owner = _grid(channels, (np.arange(height) * sh) // height, (np.arange(width) * sw) // width, sh, sw)
        self.order, self.starts, self.counts = _groups(self.owner)
        width = np.arange(self.counts.max())
        self.members = self.order[self.starts[:, None] + np.minimum(width[None, :], self.counts[:, None] - 1)]
        self.member_mask = (width[None, :] < self.counts[:, None]).astype(np.float64)
        rh, rw = min(8, sh), min(8, sw)
        self.region = _grid(channels, (np.arange(sh) * rh) // sh, (np.arange(sw) * rw) // sw, rh, rw)
        self.region_order, self.region_starts, _ = _groups(self.region)

    def coords(self, batch_size: int) -> int:
        """B: coordinates per iteration at this level."""
        return min(batch_size, self.m)

    def upsample(self, y: np.ndarray) -> np.ndarray:
        """``D(y)``: ``(k, m)`` attack-space rows to ``(k, d)`` input-space rows."""
        return y[:, self.owner]

    def reduce(self, full: np.ndarray, ufunc: np.ufunc) -> np.ndarray:
        """Reduce ``(k, d)`` input-space rows over each coordinate's block with ``ufunc``: ``(k, m)``."""
        return ufunc.reduceat(full[:, self.order], self.starts, axis=1)

    def importance(self, y: np.ndarray) -> np.ndarray:
        """Sampling weights ``(k, m)``: max-pooled ``|y|`` over each coordinate's region, scaled
        to a largest weight of 1 and floored at :data:`IMPORTANCE_FLOOR`; 1 where ``y == 0``."""
        pooled = np.maximum.reduceat(np.abs(y)[:, self.region_order], self.region_starts, axis=1)[:, self.region]
        top = pooled.max(axis=1, keepdims=True)
        return np.where(top > 0, np.maximum(pooled / np.where(top > 0, top, 1), IMPORTANCE_FLOOR), 1.0)


def _grid(channels: int, rows: np.ndarray, cols: np.ndarray, n_rows: int, n_cols: int) -> np.ndarray:
    """Flat index ``c·n_rows·n_cols + rows[p]·n_cols + cols[q]`` for every ``(c, p, q)``, C order."""
    c = np.arange(channels)[:, None, None] * (n_rows * n_cols)
    return (c + rows[None, :, None] * n_cols + cols[None, None, :]).ravel().astype(np.int64)


def _groups(owner: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stable order that groups equal ``owner`` values, the group starts and sizes (every value
    ``0 .. max`` occurs)."""
    order = np.argsort(owner, kind="stable")
    sorted_owner = owner[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_owner)) + 1]
    return order, starts, np.diff(np.r_[starts, len(owner)])


# ---------------------------------------------------------------------- batching an iteration
class _Part:
    """Samples ``s`` of one level with their chosen coordinates ``(k, B)``; rows and scores once asked."""

    def __init__(self, level: int, s: np.ndarray, coords: np.ndarray):
        self.level = level
        self.s = s
        self.coords = coords
        self.rows: np.ndarray | None = None
        self.dist2: np.ndarray | None = None
        self.scores: np.ndarray | None = None

    def size(self, d: int) -> int:
        return len(self.s) * (2 * self.coords.shape[1] + 1) * d


def _plan(state: _State, live: np.ndarray, rngs: list[np.random.Generator], d: int) -> list[_Part]:
    """Choose each live sample's coordinates and split the samples into parts of one level and
    at most :data:`_MAX_ELEMENTS` input values."""
    parts = []
    for lv in np.unique(state.level[live]):
        s = live[state.level[live] == lv]
        level = state.levels[lv]
        b = level.coords(state.a.batch_size)
        weights = level.importance(state.y[s, :level.m]) if state.a.importance else None
        coords = _choose(s, level.m, b, rngs, weights)
        per = max(1, _MAX_ELEMENTS // ((2 * b + 1) * d))
        parts.extend(_Part(int(lv), s[i:i + per], coords[i:i + per]) for i in range(0, len(s), per))
    return parts


def _choose(s: np.ndarray, m: int, b: int, rngs: list[np.random.Generator],
            weights: np.ndarray | None) -> np.ndarray:
    """``b`` distinct coordinates of ``0 .. m-1`` per sample, from each sample's own generator:
    uniform, or weighted by ``weights`` ``(k, m)`` (Efraimidis-Spirakis keys ``log(u)/w``)."""
    if b == m:
        return np.broadcast_to(np.arange(m), (len(s), m)).copy()
    keys = np.stack([rngs[i].random(m) for i in s])
    if weights is not None:
        keys = np.log(np.maximum(keys, 1e-300)) / weights
    chosen = np.argpartition(-keys, b - 1, axis=1)[:, :b]
    return np.sort(chosen, axis=1)


def _packed(parts: list[_Part], d: int) -> list[list[_Part]]:
    """Consecutive parts grouped into model calls of at most :data:`_MAX_ELEMENTS` input values
    (one call per iteration unless the batch is very large)."""
    calls: list[list[_Part]] = []
    size = 0
    for part in parts:
        if calls and size + part.size(d) <= _MAX_ELEMENTS:
            calls[-1].append(part)
            size += part.size(d)
        else:
            calls.append([part])
            size = part.size(d)
    return calls


def _margin(z: np.ndarray, classes: np.ndarray, targeted: bool) -> np.ndarray:
    """The hinge's argument per row: ``z_l − max_{i≠l} z_i`` (untargeted) or
    ``max_{i≠t} z_i − z_t`` (targeted); ``z`` is ``(k, r, C)``, ``classes`` ``(k,)``."""
    own = np.take_along_axis(z, classes[:, None, None], axis=2)[:, :, 0]
    others = z.copy()
    np.put_along_axis(others, classes[:, None, None], -np.inf, axis=2)
    best_other = others.max(axis=2)
    return best_other - own if targeted else own - best_other


def _is_real(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, (bool, np.bool_))


def _is_int(value: Any, minimum: int) -> bool:
    return isinstance(value, Integral) and not isinstance(value, (bool, np.bool_)) and value >= minimum


def _nonempty(schedule: Any) -> bool:
    try:
        return len(schedule) > 0
    except TypeError:
        return schedule is not None


def _side(size: Any, what: str) -> tuple[int, int]:
    """An int ``s`` as ``(s, s)`` or a pair ``(h, w)`` of ints >= 1."""
    if _is_int(size, 1):
        return int(size), int(size)
    if isinstance(size, (tuple, list)) and len(size) == 2 and all(_is_int(v, 1) for v in size):
        return int(size[0]), int(size[1])
    raise ValueError(f"{what} must be an integer >= 1 or a pair (height, width), got {size!r}.")
