"""Boundary Attack (Brendel, Rauber, Bethge 2018, arXiv 1712.04248): decision-based, L2.

Starting from an adversarial point, every step proposes one candidate per sample: a random
"spherical" step orthogonal to the direction towards the original (length
``spherical_step · ‖x − x̃‖``, then put back on the sphere of radius ``‖x − x̃‖`` around the
original by dividing by ``√(1 + spherical_step²)``), followed by a "source" step of
``source_step · ‖x − x̃‖`` towards the original.  A candidate replaces the current point when
the model says it is adversarial and it is closer.  Both step sizes adapt to the success
rates of recent proposals; a sample has converged once ``source_step`` falls below
``source_step_convergance``.

This follows foolbox 3's ``BoundaryAttack`` (``draw_proposals``, ``ArrayQueue`` statistics,
defaults), which is the authors' own re-implementation.

Differences from foolbox 3
--------------------------
- Per-sample randomness: sample ``i`` draws its noise from its own generator (foolbox draws
  one Gaussian vector per step and shares it across the batch, so batch-mates influence each
  other); a sample's result does not depend on which samples it is attacked with.
- Per-sample stopping: a sample stops when it has converged, when its query budget is
  spent, or when it reaches ``early_stop``; it is then never queried again (foolbox keeps
  querying converged samples until the whole batch has converged).  Success windows are
  per-sample ring buffers, filled only by that sample's own steps.
- Initialisation: usable (adversarial, checked with one counted query each) rows of
  ``starting_points`` are used as given, like foolbox.  Other samples draw up to
  ``init_size`` uniform points in the box and then move towards the original by a binary
  search over the blend factor ``a`` of ``(1 − a)·x + a·x_init`` with tolerance 1e-3 in
  ``a`` (ART and HopSkipJump do the same; foolbox runs a linear search over 50 blends),
  asked as line queries (:meth:`~attacks.oracle.Oracle.line`).  A failed initialisation is a per-sample flag (``init_failed``), not an error for the
  whole batch.
- Points are float32 (the model's dtype), norms and step lengths float64.  Like foolbox
  there is no float64 internal mode and no extra convergence confirmation of the original
  implementation.  The spherical and the final candidate of a statistics step are sent to
  the model in one call (candidates first, so under a tight budget the candidate is the
  row that gets answered).

Differences from ART (``art.attacks.evasion.BoundaryAttack``)
-------------------------------------------------------------
ART implements a trust-region variant: each iteration runs up to ``num_trial=25`` trials of
``sample_size=20`` orthogonal candidates, adapts δ and ε by ``step_adapt=0.667`` from the
success ratio of each trial batch, and keeps the closest successful candidate.  It is
targeted by default (``targeted=True``) and its random initialisation is unseeded.  Here the
criterion (targeted or not) comes only from whether ``targets`` are passed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import Attack
from .criteria import Probe
from .distances import norm_of
from .search import Best, bisect_segments, blend, progress_bar, still_active, uniform_init

__all__ = ["Boundary"]

INIT_TOL = 1e-3
"""Tolerance of the initial binary search, in blend-factor units."""

RECORD_EVERY = 10
"""Steps between two history points (plus one after initialisation and one at the end)."""

SPHERICAL_WINDOW = 100
STEP_WINDOW = 30


class Boundary(Attack):
    """Boundary attack (L2, untargeted or targeted), with foolbox 3's step adaptation.

    Parameters
    ----------
    steps : int, default=25000
        Most steps per sample (one counted row each, plus one every
        ``update_stats_every_k`` steps); a sample may converge or run out of budget first.
    spherical_step : float, default=1e-2
        Initial size of the orthogonal step, relative to the current distance.
    source_step : float, default=1e-2
        Initial size of the step towards the original, relative to the current distance.
    source_step_convergance : float, default=1e-7
        A sample has converged, and stops, once its ``source_step`` is below this (spelling
        as in foolbox).  0 means "never converge".
    step_adaptation : float, default=1.5
        Factor by which step sizes are multiplied or divided; must be >= 1 (1 disables the
        adaptation).
    update_stats_every_k : int, default=10
        Every k-th step the spherical candidate is queried too and the success statistics
        (windows of the last 100 spherical and 30 full steps) are updated: spherical success
        rate > 0.5 → both steps × ``step_adaptation``, < 0.2 → both ÷; full-step success rate
        > 0.25 → ``source_step`` ×, < 0.1 → ÷.  A window is cleared when it caused a change.
    init_size : int, default=100
        Uniform random draws per sample to find an adversarial starting point.

    Notes
    -----
    ``run`` returns, per sample: ``init_failed`` (no adversarial start found), ``converged``
    (stopped by ``source_step_convergance``), ``steps`` (steps taken) and the final
    ``spherical_step`` and ``source_step`` (0 where the sample never started: already
    adversarial, or no adversarial start found).
    """

    name = "boundary"
    uses_starting_points = True

    def __init__(self, steps: int = 25000, spherical_step: float = 1e-2, source_step: float = 1e-2,
                 source_step_convergance: float = 1e-7, step_adaptation: float = 1.5,
                 update_stats_every_k: int = 10, init_size: int = 100):
        self.steps = steps
        self.spherical_step = spherical_step
        self.source_step = source_step
        self.source_step_convergance = source_step_convergance
        self.step_adaptation = step_adaptation
        self.update_stats_every_k = update_stats_every_k
        self.init_size = init_size

    @property
    def norm(self) -> float:
        return 2.0

    def _check_params(self) -> None:
        for name, minimum in (("steps", 0), ("update_stats_every_k", 1), ("init_size", 1)):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < minimum:
                raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")
        for name in ("spherical_step", "source_step"):
            value = getattr(self, name)
            if not _is_real(value) or not (np.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {value!r}.")
        value = self.source_step_convergance
        if not _is_real(value) or not (np.isfinite(value) and value >= 0):
            raise ValueError(f"source_step_convergance must be a finite number >= 0, got {value!r}.")
        value = self.step_adaptation
        if not _is_real(value) or not (np.isfinite(value) and value >= 1):
            raise ValueError(f"step_adaptation must be a finite number >= 1 (steps are multiplied by it when "
                             f"proposals succeed often and divided when they rarely do), got {value!r}.")

    # ------------------------------------------------------------------ algorithm
    def run(self, probe: Probe, x: np.ndarray, best: Best, rngs: list[np.random.Generator], *,
            active: np.ndarray, starting_points: np.ndarray | None, early_stop: float | None,
            progress: bool) -> dict[str, Any]:
        n = len(x)
        init_failed = np.zeros(n, bool)
        converged = np.zeros(n, bool)
        steps_taken = np.zeros(n, np.int64)
        spherical_steps = np.zeros(n)  # 0: never started (JSON has no NaN)
        source_steps = np.zeros(n)

        idx = np.flatnonzero(active)
        current = self._initialise(probe, x, rngs, idx, starting_points, init_failed)
        idx = idx[~init_failed[idx]]
        best.offer(idx, current[idx], np.ones(len(idx), bool))
        best.record(idx)
        spherical_steps[idx] = self.spherical_step
        source_steps[idx] = self.source_step
        spherical_stats = _Window(SPHERICAL_WINDOW, n)
        step_stats = _Window(STEP_WINDOW, n)

        live = idx
        bar = progress_bar(progress, self.steps, type(self).__name__, "step")
        for step in range(1, self.steps + 1):
            live = live[~converged[live]]
            live = still_active(probe, best, live, early_stop)
            if not len(live):
                break
            check = step % self.update_stats_every_k == 0
            originals = x[live]
            candidates, spherical, source_norms = _draw_proposals(
                probe, originals, current[live], spherical_steps[live], source_steps[live],
                [rngs[i] for i in live])
            if check:
                answers = probe.is_adversarial(np.concatenate([candidates, spherical]), np.r_[live, live],
                                               clipped=True)
                is_adv, spherical_adv = answers[:len(live)], answers[len(live):]
            else:
                is_adv = probe.is_adversarial(candidates, live, clipped=True)
            steps_taken[live] += 1

            # closer by construction, but rounding (and clipping) may break it
            closer = norm_of(candidates - originals, 2) < source_norms
            accept = is_adv & closer
            current[live[accept]] = candidates[accept]
            best.offer(live, candidates, accept)

            if check:
                spherical_stats.append(live, spherical_adv)
                step_stats.append(live, is_adv)
                self._adapt(live, spherical_stats, step_stats, spherical_steps, source_steps)
                converged[live] = source_steps[live] < self.source_step_convergance
            if step % RECORD_EVERY == 0:
                best.record(live)
            if bar is not None:
                bar.update(1)
                found = np.isfinite(best.dist[idx])
                bar.set_postfix(median_dist=f"{np.median(best.dist[idx][found]):.4g}" if found.any() else "-",
                                active=len(live))
        if bar is not None:
            bar.close()
        best.close(idx)
        return {"init_failed": init_failed, "converged": converged, "steps": steps_taken,
                "spherical_step": spherical_steps, "source_step": source_steps}

    def _initialise(self, probe: Probe, x: np.ndarray, rngs: list[np.random.Generator], idx: np.ndarray,
                    starting_points: np.ndarray | None, init_failed: np.ndarray) -> np.ndarray:
        """Adversarial starting points ``(n, d)`` for the samples ``idx``; sets ``init_failed``."""
        current = x.copy()
        have = np.zeros(len(idx), bool)
        if starting_points is not None and len(idx):
            have = probe.is_adversarial(starting_points[idx], idx)
            current[idx[have]] = probe.clip(starting_points[idx[have]])
        need = idx[~have]
        if len(need):
            points, found = uniform_init(probe, x, rngs, need, self.init_size)
            init_failed[need[~found]] = True
            need, points = need[found], points[found]
            x0 = x[need]
            current[need] = blend(x0, points, bisect_segments(probe, need, x0, points, INIT_TOL))
        return current

    def _adapt(self, live: np.ndarray, spherical_stats: _Window, step_stats: _Window,
               spherical_steps: np.ndarray, source_steps: np.ndarray) -> None:
        """foolbox's step-size rules, applied to the samples ``live`` whose windows are full."""
        f = self.step_adaptation
        full = spherical_stats.full(live)
        if full.any():
            p = spherical_stats.mean(live)
            up = full & (p > 0.5)
            down = full & (p < 0.2)
            spherical_steps[live[up]] *= f
            source_steps[live[up]] *= f
            spherical_steps[live[down]] /= f
            source_steps[live[down]] /= f
            spherical_stats.clear(live[up | down])
        full = step_stats.full(live)
        if full.any():
            p = step_stats.mean(live)
            up = full & (p > 0.25)
            down = full & (p < 0.1)
            source_steps[live[up]] *= f
            source_steps[live[down]] /= f
            step_stats.clear(live[up | down])


class _Window:
    """Per-sample ring buffers of the last ``maxlen`` successes (NaN marks an empty slot), like
    foolbox's ``ArrayQueue`` but with a write position per sample."""

    def __init__(self, maxlen: int, n: int):
        self.data = np.full((maxlen, n), np.nan)
        self.next = np.zeros(n, np.int64)

    def append(self, owners: np.ndarray, values: np.ndarray) -> None:
        self.data[self.next[owners], owners] = values
        self.next[owners] = (self.next[owners] + 1) % len(self.data)

    def clear(self, owners: np.ndarray) -> None:
        self.data[:, owners] = np.nan

    def full(self, owners: np.ndarray) -> np.ndarray:
        return ~np.isnan(self.data[:, owners]).any(axis=0)

    def mean(self, owners: np.ndarray) -> np.ndarray:
        """Success rate of each owner's window (meaningful where :meth:`full`)."""
        return self.data[:, owners].mean(axis=0)


def _draw_proposals(probe: Probe, originals: np.ndarray, perturbed: np.ndarray, spherical_steps: np.ndarray,
                    source_steps: np.ndarray, rngs: list[np.random.Generator]
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """foolbox's ``draw_proposals`` with one Gaussian draw per row from that row's generator.

    ``originals``, ``perturbed``: ``(N, D)`` float32; step sizes ``(N,)`` float64.  Returns the
    candidates and the spherical candidates ``(N, D)`` float32, both clipped into the box, and
    the current distances ``‖originals − perturbed‖`` ``(N,)`` float64.
    """
    n, d = originals.shape
    assert perturbed.shape == (n, d) and spherical_steps.shape == (n,) and source_steps.shape == (n,)
    unnormalized = originals - perturbed  # float32
    source_norms = norm_of(unnormalized, 2)
    safe = np.where(source_norms > 0, source_norms, 1.0)
    directions = (unnormalized / safe[:, None].astype(np.float32)).astype(np.float32)

    eta = np.stack([rng.standard_normal(d, dtype=np.float32) for rng in rngs])
    along = np.einsum("ij,ij->i", directions.astype(np.float64), eta.astype(np.float64))
    eta = eta - along[:, None].astype(np.float32) * directions  # orthogonal to the source direction
    eta_norms = norm_of(eta, 2)
    scale = np.where(eta_norms > 0, spherical_steps * source_norms / np.where(eta_norms > 0, eta_norms, 1.0), 0.0)
    eta = eta * scale[:, None].astype(np.float32)

    # back on the sphere of radius source_norm around the original (Pythagoras)
    shrink = np.sqrt(spherical_steps * spherical_steps + 1.0)
    spherical = originals + (eta - unnormalized) / shrink[:, None].astype(np.float32)
    spherical = np.clip(spherical, probe.lower, probe.upper).astype(np.float32)

    # step towards the original, correcting for the distance lost or gained by rounding/clipping
    new_directions = originals - spherical
    new_norms = norm_of(new_directions, 2)
    lengths = np.maximum(source_steps * source_norms + new_norms - source_norms, 0.0)
    lengths = np.where(new_norms > 0, lengths / np.where(new_norms > 0, new_norms, 1.0), 0.0)
    candidates = spherical + lengths[:, None].astype(np.float32) * new_directions
    candidates = np.clip(candidates, probe.lower, probe.upper).astype(np.float32)
    return candidates, spherical, source_norms


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)

