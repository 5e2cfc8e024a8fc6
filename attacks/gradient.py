"""FGM, I-FGM (BIM) and PGD: white-box gradient attacks on one shared loop, L∞, L2 and L1.

FGM (Goodfellow, Shlens, Szegedy 2015, arXiv 1412.6572): one step of size ε along the
steepest-ascent direction of the loss.  I-FGM / BIM (Kurakin, Goodfellow, Bengio 2017, arXiv
1607.02533): ``steps`` such steps of size ``step``.  PGD (Madry et al. 2018, arXiv 1706.06083):
I-FGM from a uniform random point of the ε-ball.  As in foolbox's ``gradient_descent_base``,
all three are one loop (:meth:`_GradientAttack._attack`) with different defaults.

One step, for every active sample at once::

    g   = ∇x CE(f(x_t), y)                  (counted: one gradient row per sample and step)
    a   = g (untargeted) or -g (targeted: descend the loss of the target class)
    x'  = clip_box(x_t + step · N(a))       N = sign (L∞), a/‖a‖₂ (L2), sparse one-hot (L1)
    x_{t+1} = x + P_ε(x' - x)               projection onto the ε-ball, then the box again

then one counted label query on the final iterate decides success (it is offered to ``best``
only where the model answered "adversarial"), and the base re-queries it, uncounted, to confirm.

Norms
-----
- L∞: ``N(a) = sign(a)``; projection clips δ to ``[-ε, ε]``.
- L2: ``N(a) = a / ‖a‖₂`` (0 where ``a == 0``); projection rescales δ to norm ≤ ε.
- L1: the sparse steepest-ascent step: a one-hot ``sign(a_i) e_i`` at ``i = argmax |a_i|``
  (ART's L1 step), taken over the coordinates that can still move in that direction inside the
  box (ART's plain argmax gets stuck for good once that coordinate sits on the box edge);
  projection is the exact Euclidean projection onto the L1 ball (Duchi et al. 2008, sort-based;
  ART only rescales).

Minimal-ε search (``eps_search=True``)
--------------------------------------
Per sample: run the attack at ``eps``; if its final point is adversarial (a counted label
query), bisect ε in ``[0, eps]`` for ``search_steps`` rounds, each round a full attack run at the
mid-point ε, keeping the smallest ε whose run succeeded (the step size is scaled with ε, so
``step / eps`` stays fixed).  Success is not monotone in ε for iterative attacks, so this finds
*a* small successful ε, not necessarily the smallest.  ``extra["eps"]`` is that ε (-1 where
even ``eps`` failed, 0 for samples already misclassified); ``x_adv`` is the closest adversarial
point of all rounds in the attack's norm, which is almost always the one at that ε.  A round
is started only when the sample's budget covers it (``steps + 1`` rows).  The EAD repository sweeps a fixed ε grid and
ART's ``FastGradientMethod(minimal=True)`` raises ε by ``eps_step``; bisection needs far fewer
runs.

Zero gradients
--------------
Sign activations, trees and saturated soft-max outputs have a loss gradient that is exactly
zero, and ``sign(0) = 0`` turns every step into a silent no-op (ART and foolbox return ``x``
without a word).  Here each sample's zero-gradient steps are counted (``zero_gradient_steps``),
together with the fraction of exactly-zero gradient coordinates over all its gradient rows
(``zero_gradient_fraction``), and one ``UserWarning`` says how many samples were affected.
Non-finite gradient entries are set to 0 (as ART does) and counted in ``nonfinite_gradient_steps``.

Query counting
--------------
Every gradient row is counted by the oracle, like a label row; a fixed-ε run costs
``steps + 1`` rows per sample (``steps`` gradients and one label query), and the search costs
that per round.  Under a budget a sample stops stepping when only one row is left, which is kept
for the label query.

Differences from ART 1.20.1 (``FastGradientMethod``, ``ProjectedGradientDescent``)
-----------------------------------------------------------------------------------
- With the same ε, step, steps, no random start and the same labels, the iterates are ART's to
  float32 rounding (tested to 1e-5 on a torch MLP).  The order of a step is ART's: step, clip to
  the box, project onto the ball (then clip again, a no-op up to rounding).
- ART's ``PyTorchClassifier`` differentiates the *mean* loss of its batch, so its gradients are
  ours divided by the batch size; the step directions (sign, or normalised for L2, exact in both
  libraries) are the same.
- ART returns the last iterate whether or not it fools the model; here a failed sample returns
  ``x`` with ``success=False``.  In fixed-ε mode the last iterate of every sample is in
  ``extra["x_last"]``.
- The random start is seeded per sample (ART draws from the global generator) and uniform in the
  ball for every norm (L1: uniform in the cross-polytope).
- The model must be differentiable: :class:`~attacks.oracle.NoGradientError` is raised before any
  query otherwise (ART raises deep inside the estimator).

References
----------
Goodfellow et al., arXiv 1412.6572; Kurakin et al., arXiv 1607.02533; Madry et al., arXiv
1706.06083; Duchi et al., "Efficient projections onto the l1-ball", ICML 2008.
"""

from __future__ import annotations

import warnings
from numbers import Integral, Real
from typing import Any

import numpy as np

from .base import Attack
from .criteria import Probe
from .distances import parse_norm
from .search import Best, progress_bar
from .oracle import NoGradientError, Oracle

__all__ = ["FGM", "FGSM", "IFGM", "PGD"]


class _GradientAttack(Attack):
    """The loop behind FGM, I-FGM and PGD; subclasses fix the defaults.

    Parameters
    ----------
    norm : 1, 2 or "inf"
        Ball of the perturbation (and the distance reported).
    eps : float
        Radius of the ball (the largest ε tried when ``eps_search``).
    step : float or None
        Step size of each iteration in input units (ART's ``eps_step``); None: the class default.
    steps : int
        Iterations.
    random_start : bool
        Start from a uniform random point of the ε-ball (seeded per sample), clipped to the box.
    eps_search : bool
        Bisect ε per sample for the smallest successful one (see the module docstring).
    search_steps : int
        Bisection rounds after the run at ``eps`` (precision ``eps / 2**search_steps``).
    """

    needs = "gradients"

    def __init__(self, norm: Any = "inf", eps: float = 0.3, step: float | None = None, steps: int = 10,
                 random_start: bool = False, eps_search: bool = False, search_steps: int = 8):
        self.norm_name = norm
        self.eps = eps
        self.step = step
        self.steps = steps
        self.random_start = random_start
        self.eps_search = eps_search
        self.search_steps = search_steps

    def default_step(self) -> float:
        """Step size when ``step`` is None."""
        return self.eps / self.steps

    def step_size(self) -> float:
        return self.default_step() if self.step is None else float(self.step)

    def _check_params(self) -> None:
        parse_norm(self.norm_name)
        if isinstance(self.eps, bool) or not isinstance(self.eps, Real) or not (np.isfinite(self.eps) and self.eps > 0):
            raise ValueError(f"eps must be a finite number > 0, got {self.eps!r}.")
        if self.step is not None and (isinstance(self.step, bool) or not isinstance(self.step, Real)
                                      or not (np.isfinite(self.step) and self.step > 0)):
            raise ValueError(f"step must be a finite number > 0 or None (the default rule), got {self.step!r}.")
        for name in ("steps", "search_steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}.")
        for name in ("random_start", "eps_search"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}.")

    def _check_oracle(self, oracle: Oracle) -> None:
        if not oracle.has_gradients:
            raise NoGradientError(
                f"{type(self).__name__} needs the loss gradient, but {oracle.model_name} has none (sign-activation "
                "networks, trees and label-only models are not differentiable). Use a decision-based attack "
                "(HopSkipJump, Boundary, RayS), or run this attack on a differentiable surrogate (a substitute "
                "model or a straight-through relaxation) in its own Oracle and transfer the examples.")

    # ------------------------------------------------------------------ algorithm
    def run(self, probe: Probe, x: np.ndarray, best: Best, rngs: list[np.random.Generator], *,
            active: np.ndarray, starting_points: np.ndarray | None, early_stop: float | None,
            progress: bool) -> dict[str, Any]:
        n, d = x.shape
        stats = _GradientStats(n)
        idx = np.flatnonzero(active)
        eps_found = np.full(n, -1.0)
        eps_found[~active] = 0.0
        extra: dict[str, Any] = {}
        rounds = 1 + (self.search_steps if self.eps_search else 0)
        bar = progress_bar(progress, rounds, type(self).__name__, "run")

        # the run at eps (the whole attack in fixed-ε mode)
        eps = np.full(len(idx), float(self.eps))
        x_last, adv = self._attack(probe, x, idx, eps, rngs, stats)
        best.offer(idx, x_last, adv)
        best.record(idx)
        eps_found[idx[adv]] = self.eps
        if bar is not None:
            bar.update(1)
        if not self.eps_search:
            extra["x_last"] = x.copy()
            extra["x_last"][idx] = x_last
        else:
            lo, hi = np.zeros(len(idx)), eps.copy()
            live = np.flatnonzero(adv)
            for _ in range(self.search_steps):
                live = live[probe.remaining(idx[live]) >= self.steps + 1]
                if early_stop is not None:
                    live = live[best.dist[idx[live]] > early_stop]
                if not len(live):
                    break
                mid = (lo[live] + hi[live]) / 2
                points, ok = self._attack(probe, x, idx[live], mid, rngs, stats)
                best.offer(idx[live], points, ok)
                best.record(idx[live])
                hi[live[ok]] = mid[ok]
                lo[live[~ok]] = mid[~ok]
                if bar is not None:
                    bar.update(1)
            eps_found[idx[adv]] = hi[adv]
        if bar is not None:
            bar.close()
        extra.update(stats.extras(d))
        extra["eps"] = eps_found
        stats.warn(type(self).__name__, "loss", len(idx), "did not move the input")
        return extra

    def _attack(self, probe: Probe, x: np.ndarray, idx: np.ndarray, eps: np.ndarray,
                rngs: list[np.random.Generator], stats: _GradientStats) -> tuple[np.ndarray, np.ndarray]:
        """One run at radius ``eps[j]`` for each sample ``idx[j]``, in lock-step.

        Returns the final points ``(len(idx), d)`` float32 and whether the model answered
        "adversarial" for each (one counted label query; False where no budget was left).
        """
        norm = self.norm
        lower, upper = probe.lower, probe.upper
        x0 = x[idx]
        eps32 = eps.astype(np.float32)
        step = (self.step_size() * eps / self.eps).astype(np.float32)
        crit = probe.criterion
        classes = crit.targets[idx] if crit.targeted else crit.labels[idx]
        sign = np.float32(-1.0 if crit.targeted else 1.0)
        xa = x0.copy()
        if self.random_start:
            noise = np.stack([_ball_sample(rngs[i], x.shape[1], norm) for i in idx]) * eps32[:, None]
            xa = np.clip(x0 + noise.astype(np.float32), lower, upper)
        live = np.arange(len(idx))
        for _ in range(self.steps):
            live = live[probe.remaining(idx[live]) >= 2]  # keep one row for the label query
            if not len(live):
                break
            g = probe.oracle.loss_gradient(xa[live], classes[live], probe.ids[idx[live]], checked=True)
            g = stats.update(idx[live], g)
            direction = _direction(sign * g, norm, xa[live], lower, upper)
            moved = np.clip(xa[live] + step[live, None] * direction, lower, upper)
            moved = x0[live] + _project(moved - x0[live], eps32[live], norm)
            xa[live] = np.clip(moved, lower, upper)
        ask = np.flatnonzero(probe.remaining(idx) >= 1)
        adv = np.zeros(len(idx), bool)
        adv[ask] = probe.is_adversarial(xa[ask], idx[ask], clipped=True)
        return xa, adv


class _GradientStats:
    """Per-sample counts of gradient rows, zero-gradient steps and zero coordinates."""

    def __init__(self, n: int):
        self.rows = np.zeros(n, np.int64)
        self.zero_steps = np.zeros(n, np.int64)
        self.zero_coords = np.zeros(n, np.int64)
        self.nonfinite_steps = np.zeros(n, np.int64)

    def update(self, owners: np.ndarray, g: np.ndarray) -> np.ndarray:
        """Count ``g`` (rows of ``owners``, each sample once) and return it with non-finite entries set to 0."""
        bad = ~np.isfinite(g)
        if bad.any():
            self.nonfinite_steps[owners[bad.any(axis=1)]] += 1
            g = np.where(bad, np.float32(0), g)
        zero = g == 0
        self.rows[owners] += 1
        self.zero_coords[owners] += zero.sum(axis=1)
        self.zero_steps[owners[zero.all(axis=1)]] += 1
        return g

    def warn(self, attack: str, what: str, attacked: int, effect: str) -> None:
        """One ``UserWarning`` if any sample met an exactly-zero ``what`` gradient."""
        affected = int(np.count_nonzero(self.zero_steps))
        if affected:
            warnings.warn(
                f"{attack}: the {what} gradient was exactly zero for {affected} of {attacked} attacked samples "
                f"({int(self.zero_steps.sum())} steps in all); those steps {effect}. The model is probably not "
                "differentiable where it matters (sign activations, trees, saturated outputs): use a decision-based "
                "attack (HopSkipJump, Boundary, RayS) or a differentiable surrogate. See "
                "extra['zero_gradient_steps'] and extra['zero_gradient_fraction'].", UserWarning, stacklevel=4)

    def extras(self, d: int) -> dict[str, np.ndarray]:
        fraction = self.zero_coords / np.maximum(self.rows * d, 1)
        return {"gradient_rows": self.rows, "zero_gradient_steps": self.zero_steps,
                "zero_gradient_fraction": fraction, "nonfinite_gradient_steps": self.nonfinite_steps}


# ---------------------------------------------------------------------- public classes
class FGM(_GradientAttack):
    """Fast gradient method: one step of size ``eps`` (Goodfellow et al. 2015).

    Parameters
    ----------
    norm : 1, 2 or "inf", default="inf"
    eps : float, default=0.3
    eps_search : bool, default=False
        Bisect the smallest successful ε in ``[0, eps]`` per sample.
    search_steps : int, default=8
    """

    name = "fgm"

    def __init__(self, norm: Any = "inf", eps: float = 0.3, *, eps_search: bool = False, search_steps: int = 8):
        self.norm_name = norm
        self.eps = eps
        self.eps_search = eps_search
        self.search_steps = search_steps

    step = None
    steps = 1
    random_start = False

    def default_step(self) -> float:
        return self.eps


class FGSM(FGM):
    """FGM with the L∞ norm (the fast gradient *sign* method)."""

    name = "fgsm"

    def _check_params(self) -> None:
        super()._check_params()
        if self.norm != np.inf:
            raise ValueError(f"FGSM is the L∞ attack; got norm={self.norm_name!r}. Use FGM for other norms.")


class IFGM(_GradientAttack):
    """Iterative FGM / basic iterative method (Kurakin et al. 2017): ``steps`` steps of size
    ``step`` from ``x``, each projected onto the ε-ball and the box.

    Parameters
    ----------
    norm : 1, 2 or "inf", default="inf"
    eps : float, default=0.3
    step : float, optional
        Default ``eps / steps`` (the EAD repository's I-FGM).
    steps : int, default=10
    eps_search, search_steps : see :class:`FGM`.
    """

    name = "ifgm"

    def __init__(self, norm: Any = "inf", eps: float = 0.3, step: float | None = None, steps: int = 10, *,
                 eps_search: bool = False, search_steps: int = 8):
        self.norm_name = norm
        self.eps = eps
        self.step = step
        self.steps = steps
        self.eps_search = eps_search
        self.search_steps = search_steps

    random_start = False


class PGD(_GradientAttack):
    """Projected gradient descent (Madry et al. 2018): I-FGM from a random point of the ε-ball.

    Parameters
    ----------
    norm : 1, 2 or "inf", default="inf"
    eps : float, default=0.3
    step : float, optional
        Default ``2.5 · eps / steps`` (Madry et al.).
    steps : int, default=40
    random_start : bool, default=True
        Uniform in the ε-ball, from the sample's own generator.
    eps_search, search_steps : see :class:`FGM`.
    """

    name = "pgd"

    def __init__(self, norm: Any = "inf", eps: float = 0.3, step: float | None = None, steps: int = 40,
                 random_start: bool = True, *, eps_search: bool = False, search_steps: int = 8):
        self.norm_name = norm
        self.eps = eps
        self.step = step
        self.steps = steps
        self.random_start = random_start
        self.eps_search = eps_search
        self.search_steps = search_steps

    def default_step(self) -> float:
        return 2.5 * self.eps / self.steps


# ---------------------------------------------------------------------- pure helpers
def _direction(a: np.ndarray, norm: float, xa: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """Steepest-ascent direction of unit norm for ascent direction ``a`` ``(n, d)``; 0 where ``a`` is 0."""
    if norm == np.inf:
        return np.sign(a).astype(np.float32)
    if norm == 2:
        size = np.sqrt((a.astype(np.float64) ** 2).sum(axis=1, keepdims=True))
        return (a / np.where(size > 0, size, np.inf)).astype(np.float32)
    # L1: one-hot at the largest |a_i| among coordinates that can still move that way in the box
    movable = ((a > 0) & (xa < upper)) | ((a < 0) & (xa > lower))
    score = np.where(movable, np.abs(a), -1.0)
    i = np.argmax(score, axis=1)
    rows = np.arange(len(a))
    out = np.zeros(a.shape, np.float32)
    out[rows, i] = np.sign(a[rows, i]) * movable[rows, i]
    return out


def _project(delta: np.ndarray, eps: np.ndarray, norm: float) -> np.ndarray:
    """Euclidean projection of each row of ``delta`` onto the ball of radius ``eps[j]``, float32."""
    r = eps[:, None]
    if norm == np.inf:
        return np.clip(delta, -r, r).astype(np.float32)
    if norm == 2:
        size = np.sqrt((delta.astype(np.float64) ** 2).sum(axis=1, keepdims=True))
        factor = np.minimum(1.0, r / np.where(size > 0, size, 1.0))
        return (delta * factor).astype(np.float32)
    return _project_l1(delta, eps)


def _project_l1(delta: np.ndarray, eps: np.ndarray) -> np.ndarray:
    """Exact projection onto the L1 ball (Duchi et al. 2008): soft-threshold by the θ that makes
    the L1 norm ``eps``; rows already inside are unchanged."""
    a = np.abs(delta.astype(np.float64))
    out = delta.astype(np.float32, copy=True)
    outside = np.flatnonzero(a.sum(axis=1) > eps)
    if not len(outside):
        return out
    u = -np.sort(-a[outside], axis=1)
    css = np.cumsum(u, axis=1) - eps[outside, None]
    k = np.arange(1, a.shape[1] + 1)
    rho = np.count_nonzero(u - css / k > 0, axis=1)  # the condition holds on a prefix
    theta = css[np.arange(len(outside)), rho - 1] / rho
    out[outside] = (np.sign(delta[outside]) * np.maximum(a[outside] - theta[:, None], 0.0)).astype(np.float32)
    return out


def _ball_sample(rng: np.random.Generator, d: int, norm: float) -> np.ndarray:
    """One point uniform in the unit ball of ``norm`` in R^d (float64)."""
    if norm == np.inf:
        return rng.uniform(-1.0, 1.0, d)
    if norm == 2:
        v = rng.standard_normal(d)
        v /= max(np.linalg.norm(v), 1e-300)
        return v * rng.uniform() ** (1.0 / d)
    e = rng.exponential(size=d + 1)  # uniform in the simplex {y >= 0, sum y <= 1}, then random signs
    return (e[:d] / e.sum()) * rng.choice([-1.0, 1.0], size=d)
