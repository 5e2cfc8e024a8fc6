"""Exact threshold search for one node of a sign network, batched over votes and candidates.

A node's output is ``h = [v > theta]`` for its projection ``v``.  Choosing ``theta`` means
choosing a *cut* in the sorted projections: every row below the cut gets ``h = 0``, every row
at or above it ``h = 1``.  Cuts are allowed only between *distinct* values, plus "all above"
and "all below" (this is the deliberate tie rule of the package; the reference also evaluates
impossible splits inside groups of equal values, see ``docs/algorithm.md``).

Every objective handled here (except the cross-entropy output bias, see :func:`ce_best_cuts`)
is *decomposable*: a row contributes a fixed payoff when it is below the cut and another
when it is above.  With per-row *gains* ``g = payoff_below - payoff_above`` and ``start`` =
the total payoff with every row above, the objective of a cut is ``start + sum of g over the
rows below it``: a prefix sum in sorted order.  That turns the reference's O(m^2) search into
a sort plus a cumulative sum, O(m log m), and the windowed candidate search into two
``topk`` selections, O(m) per candidate.

Conventions (all functions are pure; inputs are trusted, shapes are asserted):

* ``B`` votes, ``C`` candidates per vote, ``m`` batch rows, ``k`` gain columns.
* 0-1 gains have two columns (true positives, true negatives) holding small integers, so
  their float32 sums are exact; the score is computed in float64 from the exact counts.
* Cross-entropy gains have one column (a loss, float64) and the score is minus the mean loss.
* Every search returns the score to *maximise*; ties go to the first candidate and the
  lowest cut.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = [
    "Objective",
    "best_cuts",
    "ce_best_cuts",
    "cut_thresholds",
    "full_sequence",
    "window_sequence",
]

_NEG = float("-inf")
_POS = float("inf")


@dataclass(frozen=True)
class Objective:
    """The node objective on a batch with ``n_pos`` positives and ``n_neg`` negatives.

    ``kind="01"``: ``metric="balanced"`` scores ``(TP/P + TN/N) / 2``; ``metric="plus"``
    adds the plain accuracy ``(TP + TN) / (P + N)`` (the reference's schedule).
    ``kind="ce"``: scores ``-(total loss) / (P + N)``, i.e. minus the mean cross-entropy.
    """

    kind: str
    metric: str
    n_pos: int
    n_neg: int

    def score(self, totals: torch.Tensor) -> torch.Tensor:
        """Map summed payoffs ``(..., k)`` to scores ``(...)`` in float64."""
        totals = totals.to(torch.float64)
        if self.kind == "ce":
            return -totals[..., 0] / (self.n_pos + self.n_neg)
        tp, tn = totals[..., 0], totals[..., 1]
        balanced = (tp / self.n_pos + tn / self.n_neg) / 2
        if self.metric == "balanced":
            return balanced
        return (tp + tn) / (self.n_pos + self.n_neg) + balanced


def cut_margin(v: torch.Tensor) -> torch.Tensor:
    """Distance of an outermost threshold from the extreme projection (scale aware)."""
    return 0.01 * torch.clamp(v.abs(), min=1.0)


def cut_thresholds(seq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Thresholds and validity of the cuts between consecutive entries of sorted ``seq``.

    ``seq`` is ``(..., L)`` ascending and may start with ``-inf`` and end with ``+inf``
    (padding meaning "no row there").  Cut ``q`` lies between ``seq[q]`` and ``seq[q+1]``:
    its threshold is their midpoint, or a margin beyond the extreme value when one side is
    infinite.  A cut is valid only between distinct values.  Returns ``(theta, valid)``,
    both ``(..., L-1)``.
    """
    lo, hi = seq[..., :-1], seq[..., 1:]
    valid = lo < hi
    mid = (lo + hi) / 2
    theta = torch.where(torch.isinf(lo), hi - cut_margin(hi), mid)
    theta = torch.where(torch.isinf(hi), lo + cut_margin(lo), theta)
    return theta, valid & torch.isfinite(theta)


def full_sequence(
    values: torch.Tensor, gains: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Sorted sequence for a full search: ``values (B, m)`` and ``gains (B, m, k)`` or None.

    Returns ``seq (B, 1, m+2)`` = ``[-inf, sorted values, +inf]`` and the gains in that order
    ``(B, 1, m+2, k)`` (zero on the padding), so the ``m + 1`` cuts are "all above", every
    boundary between sorted rows, and "all below".
    """
    B, m = values.shape
    v, order = torch.sort(values, dim=1)
    seq = torch.cat([values.new_full((B, 1), _NEG), v, values.new_full((B, 1), _POS)], dim=1)
    if gains is None:
        return seq.unsqueeze(1), None
    assert gains.shape[:2] == (B, m), (gains.shape, values.shape)
    g = torch.gather(gains, 1, order.unsqueeze(-1).expand(-1, -1, gains.shape[-1]))
    zero = g.new_zeros((B, 1, g.shape[-1]))
    return seq.unsqueeze(1), torch.cat([zero, g, zero], dim=1).unsqueeze(1)


def window_sequence(
    values: torch.Tensor,
    center: torch.Tensor,
    gains: torch.Tensor | None,
    half_width: int,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """Sorted window of ``half_width + 1`` rows each side of ``center``, per candidate.

    ``values (B, C, m)`` are candidate projections, ``center (B, C)`` the incumbent
    threshold in each candidate's scale, ``gains (B, m, k)`` the per-row gains.  Returns
    ``seq (B, C, L)`` with ``L = 2 * (half_width + 1)`` (the rows just below ``center`` in
    ascending order, then the rows at or above it; ``-inf``/``+inf`` where there are fewer
    rows), the gains of those rows ``(B, C, L, k)``, and ``below (B, C, k)``: the summed
    gains of the rows below ``center`` that are *not* in the window.  The cuts of the window
    are the ``2 * half_width + 1`` boundaries between consecutive entries of ``seq``.

    One ``topk`` of the ``3 * (half_width + 1)`` rows nearest to ``center`` finds both
    sides at once for almost every candidate; candidates whose nearest rows are too
    lopsided fall back to one selection per side.
    """
    B, C, m = values.shape
    assert center.shape == (B, C), (center.shape, values.shape)
    k = min(half_width + 1, m)
    diff = values - center.unsqueeze(-1)
    is_below = torch.clamp(diff, max=0).sign_().neg_()  # 1.0 below center, 0.0 at or above
    n_below = is_below.sum(dim=-1) if gains is None else None
    if gains is not None:
        ones = gains.new_ones(gains.shape[:2] + (1,))
        sums = torch.bmm(is_below.to(gains.dtype), torch.cat([gains, ones], dim=-1))
        below_sum, n_below = sums[..., :-1], sums[..., -1].to(values.dtype)
    near = min(m, 3 * k)
    _, idx = torch.topk(diff.abs_(), near, dim=-1, largest=False, sorted=False)
    del diff
    near_v = torch.gather(values, -1, idx)
    near_below = torch.gather(is_below, -1, idx) > 0
    got_below = near_below.sum(-1)
    ok = (got_below >= torch.clamp(n_below, max=k)) & (near - got_below >= torch.clamp(m - n_below, max=k))
    seq, rows = _split_sides(near_v, idx, near_below, k)
    if not bool(ok.all()):
        bad = torch.nonzero(~ok.reshape(-1)).squeeze(-1)
        v_bad = values.reshape(B * C, m)[bad]
        b_bad = is_below.reshape(B * C, m)[bad] > 0
        all_idx = torch.arange(m, device=values.device).expand_as(v_bad)
        s_bad, r_bad = _split_sides(v_bad, all_idx, b_bad, k)
        seq = seq.reshape(B * C, -1).index_copy(0, bad, s_bad).reshape(B, C, -1)
        rows = rows.reshape(B * C, -1).index_copy(0, bad, r_bad).reshape(B, C, -1)
    if gains is None:
        return seq, None, None
    assert gains.shape[:2] == (B, m), (gains.shape, values.shape)
    g = _gather_rows(gains, rows) * torch.isfinite(seq).unsqueeze(-1)
    below = below_sum - g[:, :, :k].sum(dim=2)
    return seq, g, below


def _split_sides(v: torch.Tensor, idx: torch.Tensor, below: torch.Tensor, k: int):
    """The ``k`` largest of ``v`` where ``below`` and the ``k`` smallest elsewhere, ascending.

    Returns the values (``-inf``/``+inf`` where a side has fewer than ``k``) and the
    matching entries of ``idx``, both ``(..., 2k)``.
    """
    lo_v, lo_j = torch.topk(v.masked_fill(~below, _NEG), k, dim=-1, largest=True)
    hi_v, hi_j = torch.topk(v.masked_fill(below, _POS), k, dim=-1, largest=False)
    seq = torch.cat([lo_v.flip(-1), hi_v], dim=-1)
    rows = torch.gather(idx, -1, torch.cat([lo_j.flip(-1), hi_j], dim=-1))
    return seq, rows


def _gather_rows(gains: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """``gains (B, m, k)`` at row indices ``idx (B, C, L)`` -> ``(B, C, L, k)``."""
    B, C, L = idx.shape
    flat = torch.gather(gains, 1, idx.reshape(B, C * L, 1).expand(-1, -1, gains.shape[-1]))
    return flat.reshape(B, C, L, gains.shape[-1])


def best_cuts(
    seq: torch.Tensor,
    seq_gains: torch.Tensor,
    start: torch.Tensor,
    objective: Objective,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Best valid cut of every candidate for a decomposable objective.

    ``seq (B, C, L)`` sorted rows (with padding), ``seq_gains (B, C, L, k)``, ``start
    (B, C, k)``: summed payoffs with every row of the sequence above the cut (i.e. the
    total with all rows above plus the gains of the rows below ``seq[0]``).
    Returns ``score (B, C)`` (``-inf`` where no cut is valid) and ``theta (B, C)``.
    """
    theta, valid = cut_thresholds(seq)
    totals = start.unsqueeze(2) + torch.cumsum(seq_gains, dim=2)[:, :, :-1]
    score = objective.score(totals).masked_fill(~valid, _NEG)
    best, q = score.max(dim=-1)
    return best, torch.gather(theta, -1, q.unsqueeze(-1)).squeeze(-1)


def ce_loss(values: torch.Tensor, theta: torch.Tensor, sign: torch.Tensor) -> torch.Tensor:
    """Summed binary cross-entropy of logits ``values - theta`` (float64, stable)."""
    logits = values.to(torch.float64) - theta.to(torch.float64).unsqueeze(-1)
    return torch.nn.functional.softplus(-sign * logits).sum(dim=-1)


def ce_best_cuts(
    values: torch.Tensor,
    y: torch.Tensor,
    seq: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Best cut for the cross-entropy *output* node, where every row's loss depends on ``theta``.

    ``values (B, C, m)`` are the output logits before the bias, ``y (m,)`` the labels,
    ``seq (B, C, L)`` the sorted rows whose cuts are searched.  The mean loss is convex in
    ``theta`` with derivative ``sum(y - sigmoid(v - theta))``, non-decreasing in ``theta``,
    so a binary search over the sorted valid thresholds brackets the optimum and the exact
    float64 loss is evaluated at the two valid cuts each side of the bracket.
    Returns ``score (B, C)`` = minus the mean loss (``-inf`` with no valid cut) and ``theta``.
    """
    B, C, m = values.shape
    theta, valid = cut_thresholds(seq)
    K = theta.shape[-1]
    pos = torch.arange(K, device=seq.device).expand_as(theta)
    prev_valid = torch.cummax(torch.where(valid, pos, -1), dim=-1).values
    next_valid = torch.where(valid, pos, K).flip(-1).cummin(dim=-1).values.flip(-1)
    filled = torch.where(prev_valid >= 0, prev_valid, next_valid).clamp(max=K - 1)
    theta_ff = torch.gather(theta, -1, filled)
    sign = (2.0 * y.to(torch.float64) - 1.0).expand(B, C, m)
    n_pos = y.to(values.dtype).sum()

    lo = torch.zeros((B, C), dtype=torch.long, device=seq.device)
    hi = torch.full((B, C), K, dtype=torch.long, device=seq.device)
    for _ in range(max(1, int(K).bit_length())):
        mid = (lo + hi) // 2
        t = torch.gather(theta_ff, -1, mid.clamp(max=K - 1).unsqueeze(-1))
        grad = n_pos - torch.sigmoid(values - t).sum(dim=-1)
        up = (grad >= 0) & (mid < K)
        active = lo < hi
        hi = torch.where(active & up, mid, hi)
        lo = torch.where(active & ~up, mid + 1, lo)

    def prev_of(q: torch.Tensor) -> torch.Tensor:
        return torch.gather(prev_valid, -1, q.clamp(0, K - 1).unsqueeze(-1)).squeeze(-1).where(q >= 0, -1)

    def next_of(q: torch.Tensor) -> torch.Tensor:
        return torch.gather(next_valid, -1, q.clamp(0, K - 1).unsqueeze(-1)).squeeze(-1).where(q < K, K)

    before = prev_of(lo - 1)
    after = next_of(lo)
    picks = torch.stack([prev_of(before - 1), before, after, next_of(after + 1)], dim=-1)
    ok = (picks >= 0) & (picks < K)
    thetas = torch.gather(theta, -1, picks.clamp(0, K - 1))
    losses = torch.stack(
        [ce_loss(values, thetas[..., i], sign) for i in range(picks.shape[-1])], dim=-1
    )
    score = (-losses / m).masked_fill(~ok, _NEG)
    # ties: lowest cut index first
    order = torch.argsort(picks.where(ok, K + 1), dim=-1, stable=True)
    score, thetas = torch.gather(score, -1, order), torch.gather(thetas, -1, order)
    best, j = score.max(dim=-1)
    return best, torch.gather(thetas, -1, j.unsqueeze(-1)).squeeze(-1)
