"""The fused CPU kernels must give the tensor path's searches (exactly, or for the cross-entropy
output to rounding), and the same models."""

import numpy as np
import pytest
import torch

from scd import _train
from scd._kernels import ce_full_search, ce_output_search, window_search
from scd._search import Objective, best_cuts, ce_best_cuts, full_sequence, integer_losses, rank_window
from scd._train import TrainConfig, train_votes


def _problem(seed, B, Cd, m, ties, duplicate_rows=False):
    g = torch.Generator().manual_seed(seed)
    n = m + 7
    source = torch.rand(B * Cd + 3, n, generator=g)
    base = torch.randn(B, m, generator=g)
    if ties:  # directions in {0, 1/2, 1}, like the output node's hidden activations
        source, base = torch.round(source * 2) / 2, torch.round(base * 3) / 3
    coords = torch.randperm(B * Cd + 3, generator=g)[: B * Cd].view(B, Cd)
    if duplicate_rows:
        rows = torch.randint(0, n, (B, m), generator=g)
    else:
        rows = torch.stack([torch.randperm(n, generator=g)[:m] for _ in range(B)])
    delta = torch.randn(B, 2 * Cd, generator=g) * 0.2
    y = torch.arange(m) % 3 == 0
    h0, h1 = (torch.rand(2, B, m, generator=g) < 0.5).float()
    yf = y.float()
    gains = torch.stack([yf * (h0 - h1), (1 - yf) * (h1 - h0)], -1)
    start = torch.stack([(yf * h1).sum(1), ((1 - yf) * (1 - h1)).sum(1)], -1)
    theta = base[torch.arange(B), torch.randint(0, m, (B,), generator=g)] + 1e-3
    theta[0] = [base[0].min() - 1, base[0].max() + 1, theta[0]][seed % 3]  # the ends of the batch
    return base, theta, source, coords, rows, delta, gains, start, int(yf.sum()), int(m - yf.sum())


def _objective(plus, n_pos, n_neg):
    return Objective("01", "plus" if plus else "balanced", n_pos, n_neg)


def _ce_gains(seed, B, m):
    """Cross-entropy gains of a hidden node, in integer units, as the trainer forms them."""
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(B, m, generator=g, dtype=torch.float64) * 2
    wj = torch.randn(B, 1, generator=g, dtype=torch.float64)
    sign = (torch.arange(m) % 3 == 0).double() * 2 - 1
    l0 = torch.nn.functional.softplus(-sign * s)
    l1 = torch.nn.functional.softplus(-sign * (s + wj))
    return integer_losses(l0, l1), (l0, l1)


def _tensor_path(base, theta, source, coords, rows, delta, gains, start, n_pos, n_neg, half, plus,
                 objective=None):
    B, Cd = coords.shape
    direction = torch.gather(source[coords], 2, rows.unsqueeze(1).expand(-1, Cd, -1))
    values = torch.addcmul(base[:, None, None], delta.view(B, 2, Cd, 1), direction[:, None]).view(B, 2 * Cd, -1)
    rank = (base < theta.unsqueeze(-1)).sum(-1)
    seq, g, below = rank_window(values, rank, gains, half)
    score, thr = best_cuts(seq, g, start.unsqueeze(1) + below, objective or _objective(plus, n_pos, n_neg))
    return values, rank, score, thr


CASES = [(2, 4, 300, 20), (1, 3, 30, 20), (3, 2, 5, 3), (1, 8, 2500, 20), (2, 4, 41, 20)]


@pytest.fixture(params=[1, 3], ids=["1 thread", "3 threads"])
def threads(request):
    before = torch.get_num_threads()
    torch.set_num_threads(request.param)
    yield request.param
    torch.set_num_threads(before)


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("B,Cd,m,half", CASES)
def test_kernel_equals_the_tensor_search(B, Cd, m, half, ties, threads):
    """Identical scores and thresholds, for continuous values and heavy ties, both metrics,
    windows at the ends of the batch, good and poor guesses (one near row), both kernels
    (the merge for directions in {0, 1/2, 1}), on one thread and split over several."""
    for seed in range(8):
        problem = _problem(seed, B, Cd, m, ties, duplicate_rows=seed == 5)
        base, theta, source, coords, rows, delta, gains, start, n_pos, n_neg = problem
        plus = seed % 2 == 1
        _, rank, ref_score, ref_theta = _tensor_path(*problem, half, plus)
        finite = torch.isfinite(ref_score)
        for levels in [False, True] if ties else [False]:
            for n_near in (64, 1):
                score, thr = window_search(base, theta, source, coords, rows, delta, gains, start, rank, half,
                                           _objective(plus, n_pos, n_neg), levels, n_near=n_near)
                assert torch.equal(score, ref_score), (seed, levels, n_near)
                assert torch.equal(thr[finite], ref_theta[finite]), (seed, levels, n_near)


def test_kernel_thresholds_realise_their_scores():
    """Against a direct count: predicting with the returned threshold gives the returned score."""
    half = 6
    for seed in range(6):
        problem = _problem(seed, 2, 3, 200, ties=seed % 2 == 1)
        base, theta, source, coords, rows, delta, gains, start, n_pos, n_neg = problem
        values, rank, _, _ = _tensor_path(*problem, half, False)
        score, thr = window_search(base, theta, source, coords, rows, delta, gains, start, rank, half,
                                   _objective(False, n_pos, n_neg), levels=seed % 2 == 1)
        for b in range(2):
            for c in range(6):
                if not np.isfinite(score[b, c].item()):
                    continue
                below = values[b, c] < thr[b, c]  # rows below the cut take gains relative to "all above"
                tp, tn = (start[b] + gains[b][below].sum(0)).tolist()
                assert score[b, c].item() == (tp / n_pos + tn / n_neg) / 2


@pytest.mark.parametrize("B,Cd,m,half", CASES)
def test_cross_entropy_kernel_agrees_with_the_tensor_search(B, Cd, m, half, threads):
    """Hidden-node cross-entropy: identical scores and thresholds, and every returned
    threshold realises its score (a direct sum of the unrounded losses, to their rounding)."""
    for seed in range(8):
        problem = _problem(seed, B, Cd, m, ties=seed % 2 == 1, duplicate_rows=seed == 5)
        base, theta, source, coords, rows, delta, _, _, n_pos, n_neg = problem
        (gains, start, unit), (l0, l1) = _ce_gains(seed, B, m)
        objective = Objective("ce", "balanced", n_pos, n_neg, unit)
        problem = (base, theta, source, coords, rows, delta, gains, start, n_pos, n_neg)
        values, rank, ref_score, ref_theta = _tensor_path(*problem, half, False, objective)
        for n_near in (64, 1):
            score, thr = window_search(base, theta, source, coords, rows, delta, gains, start, rank, half,
                                       objective, n_near=n_near)
            assert torch.equal(score, ref_score)
            finite = torch.isfinite(score)
            assert torch.equal(thr[finite], ref_theta[finite])
            for b, c in torch.nonzero(finite).tolist():
                below = values[b, c] < thr[b, c]
                loss = (l0[b, below].sum() + l1[b, ~below].sum()).item()
                assert score[b, c].item() == pytest.approx(-loss / m, rel=1e-9)


@pytest.mark.parametrize("single_step", [False, True], ids=["+-step", "flips"])
@pytest.mark.parametrize("B,Cd,m,half", CASES)
def test_cross_entropy_output_kernel_agrees_with_the_tensor_search(B, Cd, m, half, single_step, threads):
    """Cross-entropy output bias: the same thresholds as the tensor path (rank window, then
    binary search and picks), scores equal to rounding, and every threshold realises its
    score (a direct float64 sum over the rows); continuous and heavily tied logits."""
    for seed in range(8):
        base, theta, source, coords, rows, delta, *_ = _problem(seed, B, Cd, m, ties=seed % 2 == 1)
        source = torch.round(torch.rand(source.shape, generator=torch.Generator().manual_seed(seed)) * 2) / 2
        if single_step:  # one candidate per direction, as the binary-weight flips
            delta = delta[:, :Cd]
        C = delta.shape[1]
        y = (torch.arange(m) % 3 == 0).float()
        direction = source[coords]  # rows are the batch positions 0..m-1
        values = torch.addcmul(base[:, None, None], delta.view(B, C // Cd, Cd, 1), direction[:, None, :, :m])
        values = values.view(B, C, m)
        rank = (base < theta.unsqueeze(-1)).sum(-1)
        ref_score, ref_theta = ce_best_cuts(values, y, rank_window(values, rank, None, half)[0])
        score, thr = ce_output_search(base, source[:, :m], coords, delta, y, rank, half)
        finite = torch.isfinite(ref_score)
        assert torch.equal(torch.isfinite(score), finite), seed
        assert torch.equal(thr[finite], ref_theta[finite]), seed
        torch.testing.assert_close(score[finite], ref_score[finite], rtol=1e-12, atol=0)
        sign = 2 * y.double() - 1
        for b, c in torch.nonzero(finite).tolist():
            logits = values[b, c].double() - thr[b, c].double()
            loss = torch.nn.functional.softplus(-sign * logits).sum().item()
            assert score[b, c].item() == pytest.approx(-loss / m, rel=1e-12)


@pytest.mark.parametrize("ties", [False, True])
def test_cross_entropy_full_search_kernel_agrees_with_the_tensor_search(ties, threads):
    """The output's full search: the tensor path's threshold, and the score of a candidate
    equal to the incumbent is exactly the full search's (it cannot be accepted)."""
    for seed in range(6):
        g = torch.Generator().manual_seed(seed)
        B, m = 3, [5, 300, 2500][seed % 3]
        z = torch.randn(B, m, generator=g)
        if ties:
            z = torch.round(z * 2) / 2
        y = (torch.rand(m, generator=g) < 0.4).float()
        ref_score, ref_theta = ce_best_cuts(z[:, None], y, full_sequence(z, None)[0])
        score, thr = ce_full_search(z, y)
        assert torch.equal(thr, ref_theta[:, 0])
        torch.testing.assert_close(score, ref_score[:, 0], rtol=1e-12, atol=0)
        # a candidate that moves no row, with a window wide enough to hold the best cut
        rank = (z < thr.unsqueeze(-1)).sum(-1)
        same, same_thr = ce_output_search(z, torch.zeros(1, m), torch.zeros(B, 1, dtype=torch.long),
                                          torch.ones(B, 1), y, rank, m)
        assert torch.equal(same[:, 0], score) and torch.equal(same_thr[:, 0], thr)


@pytest.mark.parametrize("loss", ["01", "ce"])
@pytest.mark.parametrize("binary_weights", [False, True])
def test_kernel_trains_the_same_votes(loss, binary_weights, monkeypatch):
    """A fit with the kernels and one with the tensor path give bit-identical votes.  For
    cross-entropy this needs the hidden losses in integer units; the output losses are
    summed in another order by the kernel, a rounding difference that changes no step here."""
    rng = np.random.default_rng(1)
    X = rng.random((3000, 40), dtype=np.float32)
    y = (X[:, :5].sum(1) + 0.3 * rng.standard_normal(3000) > 2.5).astype(int)
    XT = torch.from_numpy(np.ascontiguousarray(X.T))
    cfg = TrainConfig(loss=loss, binary_weights=binary_weights, hidden_nodes=6, n_iters=40, nrows=0.75,
                      w_inc1=0.17, w_inc2=0.2, updated_features=16, interval=20, b_ratio=0.2)
    fused = train_votes(XT, y, [0, 1], 3, cfg)
    monkeypatch.setattr(_train, "_fused_kernel", lambda device: False)
    tensor = train_votes(XT, y, [0, 1], 3, cfg)
    for name in fused:
        np.testing.assert_array_equal(fused[name], tensor[name], err_msg=name)
