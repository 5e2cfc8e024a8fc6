"""The fast threshold search must equal a brute-force evaluation of every threshold."""

import numpy as np
import pytest
import torch

from scd._search import Objective, best_cuts, ce_best_cuts, full_sequence, near_rows, rank_window, window_sequence

SEEDS = range(40)


def _problem(seed, m=None, ties=False):
    rng = np.random.default_rng(seed)
    m = m or int(rng.integers(2, 60))
    n_pos = int(rng.integers(1, m)) if m > 1 else 1
    y = np.r_[np.ones(n_pos), np.zeros(m - n_pos)]
    if ties:
        v = rng.integers(-3, 4, size=m).astype(np.float32) * 0.5
    else:
        v = rng.normal(size=m).astype(np.float32)
    return rng, v, y, n_pos


def _valid_cuts(v_sorted):
    """Every legal cut: number of sorted rows below it, at distinct-value boundaries."""
    m = len(v_sorted)
    return [t for t in range(m + 1) if t in (0, m) or v_sorted[t - 1] < v_sorted[t]]


def _score_01(pred, y, n_pos, n_neg, metric):
    tp = float(np.sum((pred == 1) & (y == 1)))
    tn = float(np.sum((pred == 0) & (y == 0)))
    bal = (tp / n_pos + tn / n_neg) / 2
    return bal if metric == "balanced" else (tp + tn) / (n_pos + n_neg) + bal


def _brute_01(v, y, yhat0, yhat1, cuts, metric, n_pos, n_neg):
    """Best score over ``cuts`` (rows below each cut predict ``yhat0``, the rest ``yhat1``)."""
    order = np.argsort(v, kind="stable")
    best = -np.inf
    for t in cuts:
        below = np.zeros(len(v), bool)
        below[order[:t]] = True
        pred = np.where(below, yhat0, yhat1)
        best = max(best, _score_01(pred, y, n_pos, n_neg, metric))
    return best


def _gains_01(y, yhat0, yhat1):
    gains = np.stack([y * (yhat0 - yhat1), (1 - y) * (yhat1 - yhat0)], -1)
    start = np.array([np.sum(y * yhat1), np.sum((1 - y) * (1 - yhat1))])
    return torch.tensor(gains, dtype=torch.float32)[None], torch.tensor(start, dtype=torch.float32)[None]


def _payoffs(rng, y, node):
    if node == "output":
        return np.zeros_like(y), np.ones_like(y)
    return rng.integers(0, 2, len(y)).astype(float), rng.integers(0, 2, len(y)).astype(float)


@pytest.mark.parametrize("metric", ["balanced", "plus"])
@pytest.mark.parametrize("node", ["output", "hidden"])
@pytest.mark.parametrize("ties", [False, True])
def test_full_search_01_equals_brute_force(metric, node, ties):
    for seed in SEEDS:
        rng, v, y, n_pos = _problem(seed, ties=ties)
        yhat0, yhat1 = _payoffs(rng, y, node)
        gains, start = _gains_01(y, yhat0, yhat1)
        obj = Objective("01", metric, n_pos, len(y) - n_pos)
        seq, g = full_sequence(torch.tensor(v)[None], gains)
        score, theta = best_cuts(seq, g, start[:, None], obj)
        cuts = _valid_cuts(np.sort(v))
        expected = _brute_01(v, y, yhat0, yhat1, cuts, metric, n_pos, len(y) - n_pos)
        assert score.item() == expected, seed
        # the returned threshold really achieves that score
        pred = np.where(v > theta.item(), yhat1, yhat0)
        assert _score_01(pred, y, n_pos, len(y) - n_pos, metric) == expected, seed


@pytest.mark.parametrize("metric", ["balanced", "plus"])
@pytest.mark.parametrize("ties", [False, True])
def test_window_search_01_equals_brute_force(metric, ties):
    half = 3
    for seed in SEEDS:
        rng, v0, y, n_pos = _problem(seed, ties=ties)
        C = 5
        values = (v0[None] + rng.normal(size=(C, len(y))).astype(np.float32) * (0 if ties else 0.3))
        if ties:
            values = values + rng.integers(-1, 2, size=(C, 1)).astype(np.float32) * 0.5
        center = rng.normal(size=C).astype(np.float32) * 0.5
        yhat0, yhat1 = _payoffs(rng, y, "hidden")
        gains, start = _gains_01(y, yhat0, yhat1)
        obj = Objective("01", metric, n_pos, len(y) - n_pos)
        seq, g, below = window_sequence(torch.tensor(values)[None], torch.tensor(center)[None], gains, half)
        score, theta = best_cuts(seq, g, start[:, None] + below, obj)
        for c in range(C):
            vs = np.sort(values[c])
            p = int(np.sum(values[c] < center[c]))
            k = half + 1
            cuts = [t for t in _valid_cuts(vs) if max(0, p - k + 1) <= t <= min(len(vs), p + k - 1)]
            expected = _brute_01(values[c], y, yhat0, yhat1, cuts, metric, n_pos, len(y) - n_pos)
            assert score[0, c].item() == expected, (seed, c)
            if cuts:
                pred = np.where(values[c] > theta[0, c].item(), yhat1, yhat0)
                assert _score_01(pred, y, n_pos, len(y) - n_pos, metric) == expected


def _rank_window_reference(v, rank, gains, half):
    """The positional window by sorting: centred on the value at sorted position ``rank``."""
    k = half + 1
    vs = np.sort(v)
    center = vs[rank] if rank < len(v) else np.inf
    below_rows, above_rows = np.sort(v[v < center]), np.sort(v[v >= center])
    seq = np.r_[np.full(k, -np.inf), below_rows][-k:]
    seq = np.r_[seq, np.r_[above_rows, np.full(k, np.inf)][:k]]
    return seq


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("how", ["selection", "good guess", "bad guess"])
def test_rank_window_is_the_positional_window(ties, how):
    """Every path of ``rank_window`` gives the window around each candidate's own sorted
    position ``rank``, and the objective at each of its cuts equals a direct count."""
    half = 4
    for seed in range(12):
        rng = np.random.default_rng(seed)
        B, C, m = 2, 6, int(rng.integers(150, 700))
        base = rng.normal(size=(B, 1, m))
        values = base + 0.3 * rng.normal(size=(B, C, m))
        if ties:
            values = np.round(values * 4) / 4
        values = values.astype(np.float32)
        rank = rng.integers(0, m + 1, size=B)
        rank[0] = [0, 1, m, m - 1, 2, m // 2][seed % 6]
        gains = torch.tensor(rng.integers(-1, 2, size=(B, m, 2)), dtype=torch.float32)
        vt = torch.tensor(values)
        if how == "selection":
            seq, g, below = rank_window(vt, torch.tensor(rank), gains, half)
        else:
            exact = np.array([[np.r_[np.sort(values[b, c]), np.inf][rank[b]] for c in range(C)] for b in range(B)])
            exact = np.where(np.isinf(exact), values.max() + 1, exact)
            guess = exact + (rng.normal(size=exact.shape) * (0.02 if how == "good guess" else 2.0))
            seq, g, below = rank_window(vt, torch.tensor(rank), gains, half, torch.tensor(guess, dtype=torch.float32),
                                        torch.full((B,), m / 4.0), band_rows=16)
        for b in range(B):
            for c in range(C):
                v = values[b, c]
                expected = _rank_window_reference(v, rank[b], gains[b], half)
                np.testing.assert_array_equal(seq[b, c].numpy(), expected)
                totals = below[b, c] + torch.cumsum(g[b, c], 0)
                for q in range(len(expected) - 1):
                    if expected[q] < expected[q + 1]:  # a valid cut: rows up to seq[q] are below
                        direct = gains[b][torch.tensor(v <= expected[q])].sum(0)
                        torch.testing.assert_close(totals[q], direct, rtol=0, atol=0)


def test_near_rows_density():
    v = torch.linspace(0, 1, 1001)[None]
    rows, density = near_rows(v, torch.tensor([0.5]), 101)
    assert sorted(rows[0].tolist()) == list(range(450, 551))
    assert abs(density.item() - 1000) < 15  # rows per unit: 1000 rows over [0, 1]


def test_window_fallback_for_lopsided_neighbourhoods():
    """All rows on one side of the center: the single nearest-rows selection is lopsided."""
    v = np.linspace(0, 1, 200, dtype=np.float32)[None].repeat(2, 0)
    y = (np.arange(200) % 3 == 0).astype(float)
    gains, start = _gains_01(y, np.zeros(200), np.ones(200))
    center = np.array([-5.0, 0.5], np.float32)
    seq, g, below = window_sequence(torch.tensor(v)[None], torch.tensor(center)[None], gains, 5)
    assert torch.isinf(seq[0, 0, :6]).all() and torch.equal(seq[0, 0, 6:], torch.tensor(v[0, :6]))
    assert torch.equal(seq[0, 1], torch.tensor(v[1, 94:106]))


def _bce(v, y, theta):
    z = v.astype(np.float64) - theta
    return np.sum(np.logaddexp(0, -np.where(y == 1, 1, -1) * z))


@pytest.mark.parametrize("ties", [False, True])
def test_hidden_ce_search_equals_brute_force(ties):
    for seed in SEEDS:
        rng, v, y, n_pos = _problem(seed, ties=ties)
        s = rng.normal(size=len(y))
        w = rng.normal()
        sign = np.where(y == 1, 1.0, -1.0)
        l0, l1 = np.logaddexp(0, -sign * s), np.logaddexp(0, -sign * (s + w))
        gains = torch.tensor(l0 - l1)[None, :, None]
        start = torch.tensor([l1.sum()])[None]
        obj = Objective("ce", "balanced", n_pos, len(y) - n_pos)
        seq, g = full_sequence(torch.tensor(v)[None], gains)
        score, _ = best_cuts(seq, g, start[:, None], obj)
        order = np.argsort(v, kind="stable")
        losses = [(l0[order[:t]].sum() + l1[order[t:]].sum()) / len(y) for t in _valid_cuts(v[order])]
        assert score.item() == pytest.approx(-min(losses), rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("ties", [False, True])
def test_output_ce_search_equals_brute_force(ties):
    for seed in SEEDS:
        rng, v, y, n_pos = _problem(seed, ties=ties)
        v = v * rng.uniform(0.5, 20)
        seq, _ = full_sequence(torch.tensor(v)[None], None)
        score, theta = ce_best_cuts(torch.tensor(v)[None, None], torch.tensor(y, dtype=torch.float32), seq)
        vs = np.sort(v)
        thetas = []
        for t in _valid_cuts(vs):
            if t == 0:
                thetas.append(vs[0] - 0.01 * max(1, abs(vs[0])))
            elif t == len(vs):
                thetas.append(vs[-1] + 0.01 * max(1, abs(vs[-1])))
            else:
                thetas.append((vs[t - 1] + vs[t]) / 2)
        best = min(_bce(v, y, np.float32(th)) for th in thetas) / len(y)
        assert -score.item() == pytest.approx(best, rel=1e-6), seed
        assert _bce(v, y, theta.item()) / len(y) == pytest.approx(best, rel=1e-6)
