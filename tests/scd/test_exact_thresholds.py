"""Every threshold a search returns is realised by the model: no row lies on it, so the
objective the search reports is the objective of the node the trainer builds from it, even
where two projections are adjacent float32 values (whose midpoint rounds onto one of them).

The realised objective is recomputed by brute force from the model's own rule: a hidden
unit is ``(sign(v - theta) + 1) / 2`` (a half on the threshold), the 0-1 output predicts
``[z - theta > 0]``, the cross-entropy output's logit is ``z - theta``.
"""

import numpy as np
import pytest
import torch

from scd._kernels import ce_full_search, ce_output_search, window_search
from scd._network import hidden_units
from scd._search import (
    Objective,
    best_cuts,
    ce_best_cuts,
    full_sequence,
    integer_losses,
    rank_window,
)


def test_adjacent_float_reproduction():
    """The issue's case: two adjacent floats, labels 0 and 1, the output start [1, 0], the
    balanced 0-1 objective.  The cut between them cannot be realised (their midpoint rounds
    onto one of them), so the best realisable score is 0.5, not 1.0."""
    a = np.float32(1 + 2**-23)
    b = np.nextafter(a, np.float32(2))
    assert (a + b) / np.float32(2) in (a, b)  # no float32 strictly between them
    v = torch.tensor([[a, b]])
    y = torch.tensor([0.0, 1.0])
    gains = torch.stack([-y, 1 - y], -1)[None]
    seq, g = full_sequence(v, gains)
    score, theta = best_cuts(seq, g, torch.tensor([[[1.0, 0.0]]]), Objective("01", "balanced", 1, 1))
    pred = (v - theta.view(-1, 1)) > 0
    tp, tn = float((pred & (y == 1)).sum()), float((~pred & (y == 0)).sum())
    assert score.item() == (tp / 1 + tn / 1) / 2 == 0.5


def _adjacent(rng, shape, levels=5):
    """float32 values from a few levels, each moved by -1, 0 or +1 ulp: many ties and many
    adjacent-float pairs."""
    v = rng.integers(-levels, levels + 1, size=shape).astype(np.float32) * np.float32(0.75) + np.float32(40.0)
    step = rng.integers(-1, 2, size=shape)
    v = np.where(step > 0, np.nextafter(v, np.float32(np.inf)), v)
    v = np.where(step < 0, np.nextafter(v, np.float32(-np.inf)), v)
    return torch.from_numpy(v.astype(np.float32))


def _network_payoffs(rng, m, B):
    """Labels, the other nodes' logit ``s (B, m)`` and the node's output weight ``wj (B, 1)``."""
    y = torch.from_numpy((np.arange(m) % 3 == 0).astype(np.float32))
    s = torch.from_numpy(rng.normal(size=(B, m)).astype(np.float32))
    wj = torch.from_numpy(rng.choice([-1.5, 1.5], size=(B, 1)).astype(np.float32))
    return y, s, wj


def _hidden_01(y, s, wj):
    p0, p1 = (s > 0).float(), (s + wj > 0).float()
    gains = torch.stack([y * (p0 - p1), (1 - y) * (p1 - p0)], -1)
    start = torch.stack([(y * p1).sum(1), ((1 - y) * (1 - p1)).sum(1)], -1)
    return gains, start


def _realised_01(v, theta, y, s, wj, metric):
    """0-1 objective of the network whose hidden node has projections ``v (..., m)`` and
    threshold ``theta (...)`` (``s is None``: ``v`` is the output logit)."""
    if s is None:
        pred = (v - theta.unsqueeze(-1)) > 0
    else:
        h = hidden_units(v - theta.unsqueeze(-1))
        pred = (s.unsqueeze(1) + wj.unsqueeze(1) * h) > 0 if v.dim() == 3 else (s + wj * h) > 0
    yb = y > 0
    tp, tn = (pred & yb).sum(-1).double(), (~pred & ~yb).sum(-1).double()
    P, N = float(yb.sum()), float((~yb).sum())
    bal = (tp / P + tn / N) / 2
    return bal if metric == "balanced" else (tp + tn) / (P + N) + bal


def _realised_ce(v, theta, y, s, wj):
    """Mean cross-entropy of that network (float64 losses of its float32 logits)."""
    sign = 2 * y.double() - 1
    if s is None:
        logit = v.double() - theta.double().unsqueeze(-1)
    else:
        h = hidden_units(v - theta.unsqueeze(-1))
        logit = (s.unsqueeze(1) + wj.unsqueeze(1) * h) if v.dim() == 3 else s + wj * h
    return torch.nn.functional.softplus(-sign * logit.double()).mean(-1)


def _candidates(rng, B, Cd, m):
    """A windowed problem whose candidates keep adjacent-float pairs: directions in {0, 1/2, 1}."""
    base = _adjacent(rng, (B, m))
    n = m + 5
    source = torch.from_numpy(rng.integers(0, 3, size=(B * Cd, n)).astype(np.float32) / 2)
    coords = torch.arange(B * Cd).view(B, Cd)
    rows = torch.stack([torch.from_numpy(rng.permutation(n)[:m]) for _ in range(B)])
    delta = torch.from_numpy(rng.choice([-2.0, 2.0, 0.75, -0.75], size=(B, 2 * Cd)).astype(np.float32))
    theta = base[torch.arange(B), torch.from_numpy(rng.integers(0, m, B))] + 0.3
    rank = (base < theta.unsqueeze(-1)).sum(-1)
    direction = torch.gather(source[coords], 2, rows.unsqueeze(1).expand(-1, Cd, -1))
    values = torch.addcmul(base[:, None, None], delta.view(B, 2, Cd, 1), direction[:, None]).view(B, 2 * Cd, m)
    return base, theta, source, coords, rows, delta, rank, values


SEEDS = range(6)


@pytest.mark.parametrize("metric", ["balanced", "plus"])
@pytest.mark.parametrize("node", ["output", "hidden"])
def test_01_searches_realise_their_scores(metric, node):
    """SCD01 and SCD01BNN: full and windowed searches, tensor path and fused kernel."""
    B, Cd, m, half = 2, 3, 60, 4
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        y, s, wj = _network_payoffs(rng, m, B)
        if node == "output":
            s = wj = None
            gains = torch.stack([-y, 1 - y], -1).expand(B, -1, -1)
            start = torch.tensor([float(y.sum()), 0.0]).expand(B, 2)
        else:
            gains, start = _hidden_01(y, s, wj)
        obj = Objective("01", metric, int(y.sum()), int(m - y.sum()))
        base, theta, source, coords, rows, delta, rank, values = _candidates(rng, B, Cd, m)

        seq, g = full_sequence(base, gains)
        score, thr = best_cuts(seq, g, start.unsqueeze(1), obj)
        assert torch.equal(score[:, 0], _realised_01(base, thr[:, 0], y, s, wj, metric)), seed

        seq, sg, below = rank_window(values, rank, gains, half)
        ref_score, ref_thr = best_cuts(seq, sg, start.unsqueeze(1) + below, obj)
        ok = torch.isfinite(ref_score)
        assert ok.any()
        assert torch.equal(ref_score[ok], _realised_01(values, ref_thr, y, s, wj, metric)[ok]), seed
        for levels in (False, True):
            k_score, k_thr = window_search(base, theta, source, coords, rows, delta, gains, start, rank, half, obj,
                                           levels)
            assert torch.equal(k_score, ref_score) and torch.equal(k_thr[ok], ref_thr[ok]), (seed, levels)


def test_ce_hidden_searches_realise_their_scores():
    """SCDCE and SCDCEBNN hidden nodes (losses in integer units): full and windowed, tensor
    path and kernel; the realised mean loss matches to the units' rounding."""
    B, Cd, m, half = 2, 3, 60, 4
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        y, s, wj = _network_payoffs(rng, m, B)
        sign = 2 * y.double() - 1
        l0 = torch.nn.functional.softplus(-sign * s.double())
        l1 = torch.nn.functional.softplus(-sign * (s + wj).double())
        gains, start, unit = integer_losses(l0, l1)
        obj = Objective("ce", "balanced", int(y.sum()), int(m - y.sum()), unit)
        base, theta, source, coords, rows, delta, rank, values = _candidates(rng, B, Cd, m)
        tol = {"rel": 0, "abs": float(unit)}  # each row's loss is rounded to half a unit

        seq, g = full_sequence(base, gains)
        score, thr = best_cuts(seq, g, start.unsqueeze(1), obj)
        assert -score[:, 0].numpy() == pytest.approx(_realised_ce(base, thr[:, 0], y, s, wj).numpy(), **tol)

        seq, sg, below = rank_window(values, rank, gains, half)
        ref_score, ref_thr = best_cuts(seq, sg, start.unsqueeze(1) + below, obj)
        ok = torch.isfinite(ref_score)
        realised = _realised_ce(values, ref_thr, y, s, wj)
        assert -ref_score[ok].numpy() == pytest.approx(realised[ok].numpy(), **tol), seed
        k_score, k_thr = window_search(base, theta, source, coords, rows, delta, gains, start, rank, half, obj)
        assert torch.equal(k_score, ref_score) and torch.equal(k_thr[ok], ref_thr[ok]), seed


def test_ce_output_searches_put_no_row_on_the_threshold():
    """SCDCE and SCDCEBNN output nodes: the loss is continuous in the bias, so what must hold
    is that the vote's 0-1 side of every row is the side the cut chose (no row on the
    threshold), and the reported loss is the loss at the returned bias."""
    B, Cd, m, half = 2, 3, 60, 4
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        y = torch.from_numpy((np.arange(m) % 3 == 0).astype(np.float32))
        base, _, source, coords, _, delta, rank, _ = _candidates(rng, B, Cd, m)
        hidden = source[:, :m].contiguous()  # the output's directions are whole hidden columns
        cols = torch.arange(m).expand(B, m)
        direction = torch.gather(hidden[coords], 2, cols.unsqueeze(1).expand(-1, Cd, -1))
        values = torch.addcmul(base[:, None, None], delta.view(B, 2, Cd, 1), direction[:, None]).view(B, 2 * Cd, m)
        seq, _ = full_sequence(base, None)
        searches = [(base.unsqueeze(1), ce_best_cuts(base.unsqueeze(1), y, seq)),
                    (base.unsqueeze(1), tuple(t.unsqueeze(1) for t in ce_full_search(base, y))),
                    (values, ce_best_cuts(values, y, rank_window(values, rank, None, half)[0])),
                    (values, ce_output_search(base, hidden, coords, delta, y, rank, half))]
        for v, (score, thr) in searches:
            ok = torch.isfinite(score)
            assert ok.any() and not (v == thr.unsqueeze(-1))[ok].any(), seed
            realised = _realised_ce(v, thr, y, None, None)
            assert -score[ok].numpy() == pytest.approx(realised[ok].numpy(), rel=1e-12), seed
