"""Exact threshold search for one node of a sign network, batched over votes and candidates.

A node's output is ``h = [v > theta]`` for its projection ``v``.  Choosing ``theta`` means
choosing a *cut* in the sorted projections: every row below the cut gets ``h = 0``, every row
at or above it ``h = 1``.  Cuts are allowed only between values that have a float32 strictly
between them, plus "all above" and "all below" (this is the deliberate tie rule of the
package: no row lies on a threshold, so every cut is realised by the model; the reference
also evaluates impossible splits inside groups of equal values, see ``docs/algorithm.md``).

Every objective handled here (except the cross-entropy output bias, see :func:`ce_best_cuts`)
is *decomposable*: a row contributes a fixed payoff when it is below the cut and another
when it is above.  With per-row *gains* ``g = payoff_below - payoff_above`` and ``start`` =
the total payoff with every row above, the objective of a cut is ``start + sum of g over the
rows below it``: a prefix sum in sorted order.  That turns the reference's O(m^2) search into
a sort plus a cumulative sum, O(m log m), and the windowed candidate search into a few
O(m) passes per candidate (:func:`rank_window`).

Conventions (all functions are pure; inputs are trusted, shapes are asserted):

* ``B`` votes, ``C`` candidates per vote, ``m`` batch rows, ``k`` gain columns.
* 0-1 gains have two columns (true positives, true negatives) holding small integers, so
  their float32 sums are exact; the score is computed in float64 from the exact counts.
* Cross-entropy gains have one column: losses in integer multiples of a small power of two
  (:func:`integer_losses`), held in float64, so their sums too are exact in any order; the
  score is minus the mean loss.
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
    "integer_losses",
    "near_rows",
    "rank_window",
    "window_sequence",
]

_NEG = float("-inf")
_POS = float("inf")


@dataclass(frozen=True)
class Objective:
    """The node objective on a batch with ``n_pos`` positives and ``n_neg`` negatives.

    ``kind="01"``: ``metric="balanced"`` scores ``(TP/P + TN/N) / 2``; ``metric="plus"``
    adds the plain accuracy ``(TP + TN) / (P + N)`` (the reference's schedule).
    ``kind="ce"``: scores ``-(total loss * unit) / (P + N)``, i.e. minus the mean
    cross-entropy of losses counted in multiples of ``unit`` (:func:`integer_losses`).
    """

    kind: str
    metric: str
    n_pos: int
    n_neg: int
    unit: float | torch.Tensor = 1.0

    def score(self, totals: torch.Tensor) -> torch.Tensor:
        """Map summed payoffs ``(..., k)`` to scores ``(...)`` in float64."""
        totals = totals.to(torch.float64)
        if self.kind == "ce":
            return -(totals[..., 0] * self.unit) / (self.n_pos + self.n_neg)
        tp, tn = totals[..., 0], totals[..., 1]
        balanced = (tp / self.n_pos + tn / self.n_neg) / 2
        if self.metric == "balanced":
            return balanced
        return (tp + tn) / (self.n_pos + self.n_neg) + balanced


_LOSS_BITS = 32  # fractional bits of the integer losses, at most


def integer_losses(l0: torch.Tensor, l1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Cross-entropy gains of a hidden node as integers, so that every sum of them is exact.

    ``l0``/``l1 (B, m)`` are each row's float64 loss with the node at 0 and at 1.  Both are
    rounded to multiples of ``unit = 2**-k`` (``k <= 32``, smaller only if the summed losses
    would reach 2**52), so a cut's total loss is a sum of integers below 2**53: the same in
    any order.  The full search, the windowed search and the fused kernel therefore agree
    exactly, and a candidate that keeps the incumbent's partition of the rows ties with it
    (it is not accepted) instead of winning or losing by the rounding of one sum.
    Returns ``gains (B, m, 1)`` (``l0 - l1``, in units), ``start (B, 1)`` (the total of
    ``l1``, in units) and ``unit`` (a float64 scalar tensor on the losses' device: computed
    there, so that the host does not wait for the GPU).
    """
    total = (l0.sum(1) + l1.sum(1)).max()
    # total < 2**e for frexp's exponent e (0 for a zero total)
    k = torch.clamp(52 - torch.frexp(total).exponent, max=_LOSS_BITS).to(l0.dtype)
    q0, q1 = torch.round(torch.ldexp(l0, k)), torch.round(torch.ldexp(l1, k))  # scaling by 2**k is exact
    return (q0 - q1).unsqueeze(-1), q1.sum(dim=1, keepdim=True), torch.ldexp(torch.ones_like(k), -k)


def cut_margin(v: torch.Tensor) -> torch.Tensor:
    """Distance of an outermost threshold from the extreme projection (scale aware)."""
    return 0.01 * torch.clamp(v.abs(), min=1.0)


def cut_thresholds(seq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Thresholds and validity of the cuts between consecutive entries of sorted ``seq``.

    ``seq`` is ``(..., L)`` ascending and may start with ``-inf`` and end with ``+inf``
    (padding meaning "no row there").  Cut ``q`` lies between ``seq[q]`` and ``seq[q+1]``:
    its threshold is their midpoint, or a margin beyond the extreme value when one side is
    infinite.  A cut is valid only where its threshold lies *strictly* between the two
    values: not inside a group of equal values, and not between two adjacent floats, whose
    midpoint rounds onto one of them (a row there would get ``sign(0)``, a half unit, not
    the side the search counted).  Returns ``(theta, valid)``, both ``(..., L-1)``.
    """
    lo, hi = seq[..., :-1], seq[..., 1:]
    mid = (lo + hi) / 2
    theta = torch.where(torch.isinf(lo), hi - cut_margin(hi), mid)
    theta = torch.where(torch.isinf(hi), lo + cut_margin(lo), theta)
    return theta, (lo < theta) & (theta < hi) & torch.isfinite(theta)


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
        # (B, k+1, m) contiguous, used transposed: far faster than a skinny (m, k+1) operand
        cols = torch.cat([gains.transpose(1, 2), gains.new_ones((B, 1, m))], dim=1)
        sums = torch.bmm(is_below.to(gains.dtype), cols.transpose(1, 2))
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


def rank_window(
    values: torch.Tensor,
    rank: torch.Tensor,
    gains: torch.Tensor | None,
    half_width: int,
    guess: torch.Tensor | None = None,
    density: torch.Tensor | None = None,
    band_rows: int = 64,
    workspace: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """The window of :func:`window_sequence` centred, in every candidate's own sorted order,
    on the incumbent threshold's *rank* (the reference's positional window).

    ``rank (B,)`` is the number of batch rows below the incumbent threshold.  Candidate
    ``c`` of vote ``b`` is centred on its value at sorted position ``rank[b]`` (``+inf``
    past the end): the window holds the ``half_width + 1`` rows below that value and the
    ``half_width + 1`` rows at or above it (for distinct values: sorted positions
    ``rank - half_width - 1 .. rank + half_width``).  Same outputs as
    :func:`window_sequence`.

    Without a guess, every candidate's rows are sorted and the window is read off at its
    rank (:func:`_sorted_window`).  With a ``guess (B, C)`` of each centre value and the
    incumbent's row ``density (B,)`` (rows per unit near its threshold), two counting passes
    correct the guess (a Newton step on that density, then a secant step); the rows within
    about ``band_rows`` rows of the corrected value are gathered (at most ``8 * band_rows +
    2 * (half_width + 1)`` of them) and sorted, and their exact ranks follow from the count
    of rows below the band.  A candidate whose band misses part of its window, or holds too
    many rows (rare for continuous projections), is redone with a band 8 times as wide, and
    at last by sorting.  Every path gives the same window.  The host waits for the device
    once per call with a guess (to find the candidates to redo), and never without one.

    ``workspace``: optional scratch memory of at least ``2 * values.numel()`` elements of
    ``values.dtype``; reusing it across calls avoids the page faults of fresh allocations,
    which cost more on a CPU than the arithmetic here.
    """
    B, C, m = values.shape
    k = min(half_width + 1, m)
    device = values.device
    V = values.reshape(B * C, m)
    r = rank.to(torch.long).reshape(B, 1).expand(B, C).reshape(-1)
    if guess is None:
        return _sorted_window(values, rank, gains, k)
    rho = density.reshape(B, 1).expand(B, C).reshape(-1).clamp(min=1e-12)
    if workspace is None or workspace.numel() < 2 * V.numel():
        workspace = V.new_empty(2 * V.numel())
    buf = workspace[: V.numel()].view(B * C, m)  # float 0/1 masks: the fastest comparisons on CPU
    diff = workspace[V.numel() : 2 * V.numel()].view(B * C, m)

    def count_below(c: torch.Tensor) -> torch.Tensor:
        return torch.lt(V, c.unsqueeze(-1), out=buf).sum(-1).long()

    center = guess.reshape(-1)
    n = count_below(center)
    prev, n_prev = center, n  # one Newton step on the incumbent's density, then one secant step
    center = torch.where(n == r, center, center + (r - n).to(V.dtype) / rho)
    n = count_below(center)
    slope = torch.where(n != n_prev, (center - prev) / (n - n_prev).to(V.dtype), 1 / rho)
    center = torch.where(n == r, center, center + (r - n).to(V.dtype) * slope)
    # the band: about band_rows rows each side of the centre, reaching the end of the batch
    # when the window is that close to it
    half = band_rows / rho
    lo = torch.where(r - k < band_rows, _POS, half).unsqueeze(-1)
    hi = torch.where(r + k > m - band_rows, _POS, half).unsqueeze(-1)
    torch.sub(V, center.unsqueeze(-1), out=diff)
    torch.lt(diff, -lo, out=buf)  # rows below the band
    if gains is None:
        n_low = buf.sum(-1).long()
    else:
        kc = gains.shape[-1]
        # (B, k+1, m) contiguous, used transposed: far faster than a skinny (m, k+1) operand
        cols = torch.cat([gains.transpose(1, 2), gains.new_ones((B, 1, m))], dim=1)
        sums = torch.bmm(buf.view(B, C, m).to(gains.dtype), cols.transpose(1, 2)).reshape(B * C, kc + 1)
        below, n_low = sums[:, :kc], sums[:, kc].long()
    band = torch.le(diff, hi, out=diff).sub_(buf)  # rows in the band (0/1, in place of diff)
    count = band.sum(-1).long()
    width = min(m, 8 * band_rows + 2 * k)  # a fixed width: no host synchronisation to size it
    ok = (n_low <= (r - k).clamp(min=0)) & (n_low + count >= (r + k).clamp(max=m)) & (count <= width)

    # the band's rows of every candidate, sorted, padded with +inf: each band row goes to its
    # place among the band's rows (a running count), every other row (and any row past the
    # width, in a candidate that is redone below) to a spare last column
    slot = torch.cumsum(band, dim=-1, out=buf)  # exact: counts below 2**24
    dest = torch.where(band > 0, slot - 1, width).clamp_(max=width).long()
    band_v = V.new_full((B * C, width + 1), _POS).scatter_(1, dest, V)[:, :width]
    band_v, order = torch.sort(band_v, dim=-1)
    row_index = torch.arange(m, device=device).expand(B * C, m)
    band_col = torch.zeros((B * C, width + 1), dtype=torch.long, device=device).scatter_(1, dest, row_index)
    band_col = torch.gather(band_col[:, :width], 1, order)

    # centre value, first row at or above it, and the window's ranks
    at = (r - n_low).clamp(0, width - 1)
    c_star = torch.where(r < m, torch.gather(band_v, 1, at.unsqueeze(-1)).squeeze(-1), _POS)
    first = n_low + (band_v < c_star.unsqueeze(-1)).sum(-1)
    ok &= ((first - k).clamp(min=0) >= n_low) & ((first + k).clamp(max=m) <= n_low + count)
    ranks = (first - k).unsqueeze(-1) + torch.arange(2 * k, device=device)
    inside = (ranks >= 0) & (ranks < m)
    j = (ranks - n_low.unsqueeze(-1)).clamp(0, width - 1)
    seq = torch.gather(band_v, 1, j).masked_fill(ranks < 0, _NEG).masked_fill(ranks >= m, _POS)
    out_g = None
    if gains is not None:
        vote = torch.arange(B * C, device=device) // C
        rows_w = torch.gather(band_col, 1, j)
        out_g = gains[vote.unsqueeze(-1), rows_w] * inside.unsqueeze(-1)
        # rows below the window: those below the band, then the band's first entries
        n_skip = (first - k - n_low).clamp(min=0)
        skip = torch.arange(width, device=device) < n_skip.unsqueeze(-1)
        below = below + (gains[vote.unsqueeze(-1), band_col] * skip.unsqueeze(-1)).sum(1)
    if not bool(ok.all()):  # again with a band 8 times as wide, then by sorting
        bad = torch.nonzero(~ok).squeeze(-1)
        again = {"guess": center[bad].unsqueeze(1), "density": rho[bad], "band_rows": 8 * band_rows} \
            if band_rows < m else {}
        s, gb, bl = rank_window(V[bad].unsqueeze(1), r[bad], None if gains is None else gains[bad // C],
                                half_width, workspace=workspace, **again)
        seq[bad] = s[:, 0]
        if gains is not None:
            out_g[bad] = gb[:, 0]
            below[bad] = bl[:, 0]
    seq = seq.reshape(B, C, 2 * k)
    if gains is None:
        return seq, None, None
    return seq, out_g.reshape(B, C, 2 * k, -1), below.reshape(B, C, -1)


def _sorted_window(
    values: torch.Tensor, rank: torch.Tensor, gains: torch.Tensor | None, k: int
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """:func:`rank_window` by sorting every candidate's rows: the window is the sorted
    positions ``first - k .. first + k - 1``, ``first`` being the number of rows below the
    value at position ``rank`` (just above the largest value when ``rank == m``).  Rows
    tied with a window's end may be taken in any order: only cuts between distinct values
    are valid, and the integer gains sum exactly in any order."""
    B, C, m = values.shape
    sv, order = torch.sort(values, dim=-1)
    r = rank.to(torch.long).view(B, 1, 1).expand(B, C, 1)
    top = sv[..., -1:]
    center = torch.where(r < m, torch.gather(sv, -1, r.clamp(max=m - 1)), torch.nextafter(top, top.new_tensor(_POS)))
    first = torch.searchsorted(sv, center)
    pos = first - k + torch.arange(2 * k, device=values.device)
    at = pos.clamp(0, m - 1)
    seq = torch.gather(sv, -1, at).masked_fill(pos < 0, _NEG).masked_fill(pos >= m, _POS)
    if gains is None:
        return seq, None, None
    g = _gather_rows(gains, torch.gather(order, -1, at)) * ((pos >= 0) & (pos < m)).unsqueeze(-1)
    # the gains of the rows below the window: those below the centre, less the window's lower half
    cols = gains.transpose(1, 2).contiguous()  # (B, k, m), used transposed: as in window_sequence
    below = torch.bmm((values < center).to(gains.dtype), cols.transpose(1, 2)) - g[:, :, :k].sum(dim=2)
    return seq, g, below


def near_rows(values: torch.Tensor, theta: torch.Tensor, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``count`` rows of ``values (B, m)`` nearest to ``theta (B,)`` and the row density
    there (rows per unit), for :func:`rank_window`'s guesses."""
    count = min(count, values.shape[1])
    _, rows = torch.topk((values - theta.unsqueeze(-1)).abs(), count, dim=-1, largest=False, sorted=False)
    near = torch.gather(values, 1, rows)
    spread = near.amax(-1) - near.amin(-1)
    density = torch.where(spread > 0, count / spread, torch.full_like(spread, float("inf")))
    return rows, density


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


def ce_loss(neg_margins: torch.Tensor, theta: torch.Tensor, sign: torch.Tensor) -> torch.Tensor:
    """Summed binary cross-entropy of logits ``values - theta`` (float64, stable), from
    ``neg_margins = -sign * values`` in float64: ``-sign * (values - theta)`` is exactly
    ``neg_margins + sign * theta``, as ``sign`` is +-1."""
    return torch.nn.functional.softplus(neg_margins + sign * theta.to(torch.float64).unsqueeze(-1)).sum(dim=-1)


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
    neg_margins = -sign * values.to(torch.float64)
    losses = torch.stack(
        [ce_loss(neg_margins, thetas[..., i], sign) for i in range(picks.shape[-1])], dim=-1
    )
    score = (-losses / m).masked_fill(~ok, _NEG)
    # ties: lowest cut index first
    order = torch.argsort(picks.where(ok, K + 1), dim=-1, stable=True)
    score, thetas = torch.gather(score, -1, order), torch.gather(thetas, -1, order)
    best, j = score.max(dim=-1)
    return best, torch.gather(thetas, -1, j.unsqueeze(-1)).squeeze(-1)
