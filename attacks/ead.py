"""EAD, the elastic-net attack (Chen, Sharma, Zhang, Yi, Hsieh 2018, arXiv 1709.04114), and C&W L2
as its special case β = 0.

EAD solves, for each sample ``x0`` with label ``y`` (or target ``t``)::

    minimise   c · f(x) + β ‖x - x0‖₁ + ‖x - x0‖₂²     subject to  lower <= x <= upper
    f(x) = max(Z_y(x) - max_{j≠y} Z_j(x), -κ)            untargeted (Z: logits)
    f(x) = max(max_{j≠t} Z_j(x) - Z_t(x), -κ)            targeted

by projected FISTA (Beck & Teboulle 2009) on ``g = c·f + ‖x - x0‖₂²``, with the L1 term handled
by the projected shrinkage-thresholding operator ``S_β`` (elementwise, ``δ = z - x0``)::

    S_β(z) = min(z - β, upper)   if δ > β
             x0                  if |δ| <= β
             max(z + β, lower)   if δ < -β

    x_{k+1} = S_β(y_k - α_k ∇g(y_k)),   α_k = lr · (1 - k / max_iter)^½
    y_{k+1} = x_{k+1} + k / (k + 3) · (x_{k+1} - x_k)         (ISTA, ``fista=False``: y = x)

and a per-sample binary search over ``c`` (``binary_steps`` rounds from ``c_init``: halve the
gap after a round that found an adversarial point, ×10 while none has been found, bisect once
an upper bound is known).  The iterate ``x_{k+1}`` of every iteration is a candidate; the
decision rule picks the final example among the successful ones over all rounds: the smallest
elastic-net distance ``β‖δ‖₁ + ‖δ‖₂²`` (``decision_rule="EN"``) or the smallest L1 (``"L1"``).

The gradient of the margin ``f`` is one vector-Jacobian product per row,
:meth:`~attacks.oracle.Oracle.logits_gradient` with weights ``+1`` on the true class and ``-1``
on the current runner-up (the signs swap for a targeted attack), and zero weights where the
hinge is inactive (``f = -κ``), so binary (one-logit) and multi-class models are treated alike.

With β = 0 the problem is C&W's L2 objective solved by projected FISTA instead of C&W's
tanh + Adam; :class:`CWL2EAD` is exactly that (``EAD(beta=0, decision_rule="EN")``, reported
in L2).  The original formulation is :class:`~attacks.carlini_wagner.CarliniWagnerL2`.

Success and selection
---------------------
A candidate counts only when the model's *label* answer (a counted query through
``probe.is_adversarial``) says adversarial and, for κ > 0, its logit margin is at most -κ (the
reference's κ-adjusted ``compare``).  Only such points reach ``best``.  ``EAD`` reports L1
(``norm = 1``): under rule "L1" the kept point is the smallest-L1 success; under rule "EN" the
attack keeps its own per-sample elastic-net best and writes that point into ``best`` whenever it
improves, so ``best.dist`` (and the budget curve) is the L1 of the EN-best point, which can rise
when the EN distance falls.  ``CWL2EAD`` reports L2, and its EN distance is L2², so its curve is
monotone.  ``early_stop`` compares that reported distance.

Queries per iteration (all active samples in lock-step, one call each)
----------------------------------------------------------------------
1. logits at ``y_k`` (to choose the runner-up and the hinge weights; skipped where ``y_k`` is
   an ``x_k`` whose logits were already asked: ISTA, and FISTA's first step);
2. ``logits_gradient`` at ``y_k``;
3. labels at ``x_{k+1}`` (the success check);
4. logits at ``x_{k+1}``, only when κ > 0 (margin check), on early-abort checks (the loss),
   and under ISTA (where they are step 1 of the next iteration).

So FISTA with κ = 0 costs 3 rows per iteration and sample (+1 every ``max_iter // 10``
iterations).  A sample stops, for good, when its budget (``probe.remaining``) cannot cover its
next iteration; the rows it leaves unused are never spent.

Early abort (``abort_early``)
-----------------------------
As in the reference: every ``max(1, max_iter // 10)`` iterations (a fixed patience) the total
loss ``c·max(margin + κ, 0) + ‖δ‖₂² + β‖δ‖₁`` at ``x_{k+1}`` is compared with its value at
the previous check, and the round ends *for that sample only* when it is above 0.9999 times it
(foolbox decides this on the batch sum, so one sample can stop another).

Zero gradients
--------------
As in :mod:`attacks.gradient`: gradient rows where the hinge is active but the margin gradient is
exactly zero (sign activations, saturated models) are counted per sample
(``zero_gradient_steps``, ``zero_gradient_fraction``) and one ``UserWarning`` names how many
samples were affected; non-finite entries are set to 0 and counted.  Rows where the hinge is
inactive have a zero margin gradient by design and are not counted.  Models without
``logits_gradient`` raise :class:`~attacks.oracle.NoGradientError` before any query.

Differences from the reference (``EAD_Attack/en_attack.py``, ``l1_attack.py``) and from ART
---------------------------------------------------------------------------------------------
- Per-feature box ``[lower, upper]`` from the oracle (reference: [-0.5, 0.5]; ART: [0, 1]
  hard-coded).  The shrinkage threshold is β, not α_k·β, as in the reference, ART and foolbox.
- The FISTA point ``y_k`` is clipped into the box before it is queried (the oracle only answers
  inside the box); ``x_k`` is in the box by construction of ``S_β``.  The reference lets ``y_k``
  leave the box.
- The L2 gradient term is kept when the hinge is inactive (reference, foolbox); ART zeroes the
  whole gradient there, so only its shrinkage moves the iterate.
- κ enters the success check (reference, foolbox); ART ignores it there.  Early abort is per
  sample (foolbox: batch-global; ART: none).  ART's ``ElasticNet`` also runs ``max_iter=100`` and
  ``beta=1e-3`` by default.
- After a round without success while no upper bound is known, ``c`` is multiplied by 10
  (C&W's rule; the transcribed ``en_attack.py`` sets it to 10).  The reference's extra final round
  at the upper bound when ``binary_steps >= 10`` is not done.
- The momentum weight is the paper's ``k / (k + 3)`` with ``k`` counted from 0 in every round.
- Failed samples return ``x`` with ``success=False`` (foolbox returns zeros, ART ``x``).
- Deterministic: no random choice is made (the seed is unused).

Extras
------
``c`` (the constant of the last round each sample ran; -1 where no round ran, e.g. samples
already misclassified), ``c_success`` (the smallest ``c`` whose round found a success; -1 where
none did), ``iterations`` (iterations run, all rounds), ``rounds`` (binary-search rounds run),
and the gradient statistics
``gradient_rows``, ``zero_gradient_steps``, ``zero_gradient_fraction``,
``nonfinite_gradient_steps``.

References
----------
Chen et al., "EAD: Elastic-Net Attacks to Deep Neural Networks via Adversarial Examples", AAAI
2018, arXiv 1709.04114; Carlini & Wagner, "Towards Evaluating the Robustness of Neural
Networks", IEEE S&P 2017, arXiv 1608.04644; Beck & Teboulle, "A fast iterative
shrinkage-thresholding algorithm", SIAM J. Imaging Sci. 2009.
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any

import numpy as np

from .base import Attack
from .criteria import Probe
from .distances import norm_of
from .search import Best, progress_bar
from .gradient import _GradientStats
from .oracle import NoGradientError, Oracle

__all__ = ["CWL2EAD", "EAD"]

_NO_BOUND = 1e10
"""The binary search's "no upper bound on c yet" (the reference's initial upper bound)."""


class _MarginAttack(Attack):
    """Shared frame of EAD and C&W: the binary search over ``c`` in lock-step, the success
    check, the kept best and the gradient statistics; subclasses implement :meth:`_round`."""

    needs = "logit_gradients"

    kappa: float
    c_init: float
    binary_steps: int
    max_iter: int
    lr: float
    abort_early: bool

    def _check_params(self) -> None:
        _check_real("kappa", self.kappa, minimum=0.0, strict=False)
        _check_real("c_init", self.c_init, minimum=0.0, strict=True)
        _check_real("lr", self.lr, minimum=0.0, strict=True)
        for name in ("binary_steps", "max_iter"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}.")
        if not isinstance(self.abort_early, (bool, np.bool_)):
            raise ValueError(f"abort_early must be True or False, got {self.abort_early!r}.")

    def _check_oracle(self, oracle: Oracle) -> None:
        if not (oracle.has_logit_gradients and oracle.has_logits):
            raise NoGradientError(
                f"{type(self).__name__} needs the model's logits and their gradients (oracle.logits and "
                f"oracle.logits_gradient), but {oracle.model_name} has none (sign-activation networks, trees and "
                "label-only models are not differentiable; estimator-like objects plug in with logits(x) and "
                "logits_gradient(x, weights)). Use a decision-based attack (HopSkipJump, Boundary, RayS), or run "
                "this attack on a differentiable surrogate (a substitute model or a straight-through relaxation) "
                "in its own Oracle and transfer the examples.")

    def _score(self, delta: np.ndarray) -> np.ndarray:
        """Selection score of candidates ``x0 + delta`` (smaller is better)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ the binary search
    def run(self, probe: Probe, x: np.ndarray, best: Best, rngs: list[np.random.Generator], *,
            active: np.ndarray, starting_points: np.ndarray | None, early_stop: float | None,
            progress: bool) -> dict[str, Any]:
        n = len(x)
        p = _Problem(self, probe, x, best, np.flatnonzero(active), early_stop)
        m = len(p.idx)
        c = np.full(m, float(self.c_init))
        lo, hi = np.zeros(m), np.full(m, _NO_BOUND)
        c_last = np.full(n, -1.0)
        rounds = np.zeros(n, np.int64)
        alive = np.ones(m, bool)
        bar = progress_bar(progress, self.binary_steps, type(self).__name__, "round")
        for _ in range(self.binary_steps):
            alive &= probe.remaining(p.idx) >= self._rows_first_iteration()
            if early_stop is not None:
                alive &= best.dist[p.idx] > early_stop
            run = np.flatnonzero(alive)
            if not len(run):
                break
            found = self._round(p, run, c[run])
            c_last[p.idx[run]] = c[run]
            rounds[p.idx[run]] += 1
            best.record(p.idx[run])
            c[run], lo[run], hi[run] = _update_c(c[run], lo[run], hi[run], found)
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
        c_success = np.full(n, -1.0)  # JSON has no NaN: -1 marks "none"
        c_success[p.idx] = np.where(hi < _NO_BOUND, hi, -1.0)
        extra: dict[str, Any] = {"c": c_last, "c_success": c_success, "iterations": p.iterations,
                                 "rounds": rounds}
        extra.update(p.stats.extras(x.shape[1]))
        p.stats.warn(type(self).__name__, "margin", m, "only moved the input by the distance terms")
        return extra

    def _rows_first_iteration(self) -> int:
        """Counted rows a sample needs for the first iteration of a round."""
        raise NotImplementedError

    def _round(self, p: _Problem, run: np.ndarray, c: np.ndarray) -> np.ndarray:
        """One round at constants ``c`` for the samples at positions ``run``; whether each found a success."""
        raise NotImplementedError


class _Problem:
    """The attacked samples (positions ``idx`` in the batch) and what every round shares."""

    def __init__(self, attack: _MarginAttack, probe: Probe, x: np.ndarray, best: Best, idx: np.ndarray,
                 early_stop: float | None):
        crit = probe.criterion
        self.attack = attack
        self.probe = probe
        self.oracle = probe.oracle
        self.best = best
        self.idx = idx
        self.ids = probe.ids[idx]
        self.x0 = x[idx]
        self.targeted = crit.targeted
        self.classes = (crit.targets if crit.targeted else crit.labels)[idx]
        self.kappa = float(attack.kappa)
        self.early_stop = early_stop
        self.score = np.full(len(idx), np.inf)
        self.stats = _GradientStats(len(x))
        self.iterations = np.zeros(len(x), np.int64)

    def margin_gradient(self, points: np.ndarray, rows: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Margins at ``points`` (rows ``rows`` of the problem, logits ``z``) and the gradient of the
        hinge ``max(margin, -κ)`` there (one counted gradient row each; zero where the hinge is flat).
        ``points`` are float32 rows inside the box (every iterate is projected), sent unchecked."""
        margin, weights = hinge_weights(z, self.classes[rows], self.targeted, self.kappa)
        g = self.oracle.logits_gradient(points, weights, self.ids[rows], checked=True)
        on = np.flatnonzero(weights.any(axis=1))
        g[on] = self.stats.update(self.idx[rows[on]], g[on])
        g[weights.any(axis=1) == 0] = 0.0
        return margin, g

    def succeeded(self, points: np.ndarray, rows: np.ndarray, margin: np.ndarray | None) -> np.ndarray:
        """Counted label query: adversarial, and (κ > 0) a logit margin of at most -κ."""
        ok = self.probe.is_adversarial(points, self.idx[rows], clipped=True)
        if self.kappa > 0:
            ok &= margin <= -self.kappa
        return ok

    def keep(self, points: np.ndarray, rows: np.ndarray, ok: np.ndarray) -> None:
        """Offer the successful ``points`` to the per-sample best under the attack's decision rule."""
        if not ok.any():
            return
        points, rows = points[ok], rows[ok]
        s = self.attack._score(points.astype(np.float64) - self.x0[rows])
        better = s < self.score[rows]
        if not better.any():
            return
        points, rows, s = points[better], rows[better], s[better]
        owners = self.idx[rows]
        self.score[rows] = s
        self.best.x_adv[owners] = points
        self.best.dist[owners] = norm_of(points - self.best.x[owners], self.best.norm)

    def can_go_on(self, rows: np.ndarray, need: np.ndarray | int) -> np.ndarray:
        """Mask of the ``rows`` whose budget covers ``need`` more rows and that are not yet close enough."""
        owners = self.idx[rows]
        ok = self.probe.remaining(owners) >= need
        if self.early_stop is not None:
            ok &= self.best.dist[owners] > self.early_stop
        return ok


# ---------------------------------------------------------------------- EAD
class EAD(_MarginAttack):
    """Elastic-net attack (Chen et al. 2018): projected FISTA/ISTA on ``c·f + β‖δ‖₁ + ‖δ‖₂²``
    with a per-sample binary search over ``c``; reports L1.  See the module docstring.

    Parameters
    ----------
    beta : float, default=1e-2
        Weight β of the L1 term (and the shrinkage threshold); 0 gives C&W's L2 objective.
    kappa : float, default=0
        Confidence κ: a success needs a logit margin of at least κ.
    c_init : float, default=1e-3
        First constant ``c`` of the binary search.
    binary_steps : int, default=9
        Rounds of the binary search over ``c``.
    max_iter : int, default=1000
        (F)ISTA iterations per round.
    lr : float, default=1e-2
        Initial step α₀ (square-root decay to 0 over ``max_iter``).
    fista : bool, default=True
        FISTA momentum; False runs ISTA.
    decision_rule : {"EN", "L1"}, default="EN"
        Keep the success of smallest elastic-net distance, or of smallest L1.
    abort_early : bool, default=True
        End a sample's round when its loss stopped falling (checked every ``max_iter // 10``).
    """

    name = "ead"
    _rules = ("EN", "L1")

    def __init__(self, beta: float = 1e-2, kappa: float = 0.0, c_init: float = 1e-3, binary_steps: int = 9,
                 max_iter: int = 1000, lr: float = 1e-2, fista: bool = True, decision_rule: str = "EN",
                 abort_early: bool = True):
        self.beta = beta
        self.kappa = kappa
        self.c_init = c_init
        self.binary_steps = binary_steps
        self.max_iter = max_iter
        self.lr = lr
        self.fista = fista
        self.decision_rule = decision_rule
        self.abort_early = abort_early

    @property
    def norm(self) -> float:
        return 1.0

    def _check_params(self) -> None:
        super()._check_params()
        _check_real("beta", self.beta, minimum=0.0, strict=False)
        if not isinstance(self.fista, (bool, np.bool_)):
            raise ValueError(f"fista must be True or False, got {self.fista!r}.")
        if self.decision_rule not in self._rules:
            raise ValueError(f"decision_rule must be one of {self._rules}, got {self.decision_rule!r}.")

    def _score(self, delta: np.ndarray) -> np.ndarray:
        l1 = np.abs(delta).sum(axis=1)
        if self.decision_rule == "L1":
            return l1
        return float(self.beta) * l1 + (delta * delta).sum(axis=1)

    def _rows_first_iteration(self) -> int:
        return 3 + int(self.kappa > 0 or self.abort_early or not self.fista)

    def _round(self, p: _Problem, run: np.ndarray, c: np.ndarray) -> np.ndarray:
        """One round of projected (F)ISTA for the samples ``run`` in lock-step."""
        probe, oracle = p.probe, p.oracle
        lower, upper = probe.lower, probe.upper
        beta = np.float32(self.beta)
        r = len(run)
        x0 = p.x0[run]
        xk, yk = x0.copy(), x0.copy()
        zy = np.zeros((r, oracle.n_classes))
        zy_known = np.zeros(r, bool)
        prev = np.full(r, np.inf)
        found = np.zeros(r, bool)
        period = max(1, self.max_iter // 10)
        live = np.arange(r)
        for k in range(self.max_iter):
            check = self.abort_early and k % period == 0
            want_zx = self.kappa > 0 or check or not self.fista
            need = (~zy_known[live]).astype(np.int64) + 2 + int(want_zx)  # logits at y, gradient, label, logits at x
            live = live[p.can_go_on(run[live], need)]
            if not len(live):
                break
            rows = run[live]
            ask = live[~zy_known[live]]
            if len(ask):
                zy[ask] = oracle.logits(yk[ask], p.ids[run[ask]], checked=True)
                zy_known[ask] = True
            _, g = p.margin_gradient(yk[live], rows, zy[live])
            p.iterations[p.idx[rows]] += 1
            grad = c[live, None] * g + 2.0 * (yk[live] - x0[live])
            step = np.float32(self.lr * np.sqrt(1.0 - k / self.max_iter))
            x_new = shrink(yk[live] - step * grad.astype(np.float32), x0[live], beta, lower, upper)
            if self.fista:
                y_new = np.clip(x_new + np.float32(k / (k + 3)) * (x_new - xk[live]), lower, upper)
            else:
                y_new = x_new
            xk[live], yk[live] = x_new, y_new
            zy_known[live] = False

            margin = None
            if want_zx:
                zx = oracle.logits(x_new, p.ids[rows], checked=True)
                margin = hinge_weights(zx, p.classes[rows], p.targeted, p.kappa)[0]
                same = np.all(y_new == x_new, axis=1)  # ISTA, or FISTA's first step: next logits known
                zy[live[same]], zy_known[live[same]] = zx[same], True
            ok = p.succeeded(x_new, rows, margin)
            found[live[ok]] = True
            p.keep(x_new, rows, ok)
            if check:
                delta = x_new.astype(np.float64) - x0[live]
                loss_x = (c[live] * np.maximum(margin + p.kappa, 0.0) + (delta * delta).sum(axis=1)
                          + float(self.beta) * np.abs(delta).sum(axis=1))
                stop = loss_x > prev[live] * 0.9999
                prev[live] = loss_x
                live = live[~stop]
        return found


class CWL2EAD(EAD):
    """C&W's L2 attack solved as EAD with β = 0 (Chen et al. 2018): projected FISTA on
    ``c·f + ‖δ‖₂²`` with the same binary search, keeping the smallest-L2 success; reports L2.

    Equivalent to ``EAD(beta=0, decision_rule="EN")`` but for the reported norm (L2 here, L1
    there).  The original tanh + Adam formulation is
    :class:`~attacks.carlini_wagner.CarliniWagnerL2`.

    Parameters
    ----------
    kappa, c_init, binary_steps, max_iter, lr, fista, abort_early : see :class:`EAD`.
    """

    name = "cwl2_ead"
    beta = 0.0
    decision_rule = "EN"

    def __init__(self, kappa: float = 0.0, c_init: float = 1e-3, binary_steps: int = 9, max_iter: int = 1000,
                 lr: float = 1e-2, fista: bool = True, abort_early: bool = True):
        self.kappa = kappa
        self.c_init = c_init
        self.binary_steps = binary_steps
        self.max_iter = max_iter
        self.lr = lr
        self.fista = fista
        self.abort_early = abort_early

    @property
    def norm(self) -> float:
        return 2.0


# ---------------------------------------------------------------------- pure helpers
def hinge_weights(z: np.ndarray, classes: np.ndarray, targeted: bool, kappa: float) -> tuple[np.ndarray, np.ndarray]:
    """C&W margin and the logit weights of its hinge's gradient, for logits ``z`` ``(n, C)``.

    Untargeted (``classes`` = true labels): ``margin = Z_y - max_{j≠y} Z_j``; targeted
    (``classes`` = targets): ``margin = max_{j≠t} Z_j - Z_t``.  The hinge ``max(margin, -κ)``
    has gradient ``Σ_c w_c ∇Z_c`` with ``w = ±(e_y - e_r)`` (``r`` the runner-up) where
    ``margin > -κ`` and ``w = 0`` elsewhere.  Returns ``(margin (n,), weights (n, C))``.
    """
    z = np.asarray(z, np.float64)
    rows = np.arange(len(z))
    other = z.copy()
    other[rows, classes] = -np.inf
    runner = np.argmax(other, axis=1)
    own, best_other = z[rows, classes], z[rows, runner]
    margin = best_other - own if targeted else own - best_other
    on = margin > -kappa
    sign = -1.0 if targeted else 1.0
    weights = np.zeros_like(z)
    weights[rows[on], classes[on]] = sign
    weights[rows[on], runner[on]] = -sign
    return margin, weights


def shrink(z: np.ndarray, x0: np.ndarray, beta: float, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """Projected shrinkage-thresholding ``S_β`` (the proximal map of ``β‖· - x0‖₁`` plus the box), float32."""
    z = np.asarray(z, np.float32)
    d = z - x0
    out = np.where(d > beta, np.minimum(z - beta, upper), np.where(d < -beta, np.maximum(z + beta, lower), x0))
    return out.astype(np.float32)


def _update_c(c: np.ndarray, lo: np.ndarray, hi: np.ndarray, found: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """C&W's binary-search step: shrink towards the bracket after a success, ×10 until one is known."""
    hi = np.where(found, np.minimum(hi, c), hi)
    lo = np.where(found, lo, np.maximum(lo, c))
    bounded = hi < _NO_BOUND
    c = np.where(bounded, (lo + hi) / 2, np.where(found, c, c * 10))
    return c, lo, hi


def _check_real(name: str, value: Any, minimum: float, strict: bool) -> None:
    ok = not isinstance(value, bool) and isinstance(value, Real) and np.isfinite(value)
    ok = ok and (value > minimum if strict else value >= minimum)
    if not ok:
        raise ValueError(f"{name} must be a finite number {'>' if strict else '>='} {minimum:g}, got {value!r}.")
