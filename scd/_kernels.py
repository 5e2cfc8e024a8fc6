"""Fused CPU kernels for the node searches (numba).

The tensor path (:func:`scd._search.rank_window` then :func:`scd._search.best_cuts`) makes
about a dozen passes over the whole ``(C, m)`` candidate matrix, which on a CPU costs memory
traffic rather than arithmetic.  This kernel does the same search one candidate at a time:
it builds the candidate's projections ``base + delta * direction`` in a buffer that stays in
cache, finds the rank window around the incumbent's rank (a guessed value band corrected by
counting, widened until it holds the window; for directions in {0, 1/2, 1}, the output
node's, an exact merge instead), and scores the window's cuts.  Its results are
*identical* to the tensor path: the projections are rounded the same way (one fused
multiply-add, as ``torch.addcmul`` on CPUs with FMA), the gains are integers (0-1 counts,
or cross-entropy losses in integer units, :func:`scd._search.integer_losses`) whose sums
are exact in any order, and the score is the same float64 expression with the same tie
rule (first candidate, lowest cut).  The window's content, hence the result, does not
depend on how the window was found.

The cross-entropy output bias is not decomposable (every row's loss moves with it,
:func:`scd._search.ce_best_cuts`).  Its kernels (:func:`ce_output_search`,
:func:`ce_full_search`) sum the loss over the distinct values of the logits, with their
counts of positives and negatives, instead of over the rows: few values for binary output
weights, and fewer passes for real ones.  They pick the tensor path's thresholds; their
float64 scores agree with it to rounding, and a candidate equal to the incumbent scores
exactly the incumbent's score, since both are summed by the same code.

Only used on the CPU; CUDA keeps the tensor path.
"""

from __future__ import annotations

import numpy as np
import torch
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from ._search import Objective, near_rows

__all__ = ["ce_full_search", "ce_output_search", "window_search"]


@intrinsic
def _fma32(typingctx, a, b, c):
    """``a * b + c`` in float32 with one rounding (LLVM's fma), as ``torch.addcmul``."""
    sig = types.float32(types.float32, types.float32, types.float32)

    def codegen(context, builder, signature, args):
        f32 = ir.FloatType()
        fn = builder.module.declare_intrinsic("llvm.fma", [f32], ir.FunctionType(f32, [f32, f32, f32]))
        return builder.call(fn, args)

    return sig, codegen


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _count_below(v, c):
    n = 0
    for i in range(v.shape[0]):
        n += v[i] < c
    return n


@njit(cache=True, nogil=True, error_model="numpy")
def _insertion_sort(keys, vals, a, b):
    for i in range(a + 1, b):
        key, val = keys[i], vals[i]
        j = i
        while j > a and keys[j - 1] > key:
            keys[j], vals[j] = keys[j - 1], vals[j - 1]
            j -= 1
        keys[j], vals[j] = key, val


@njit(cache=True, nogil=True, error_model="numpy")
def _sort_pairs(keys, vals, n, tk, tv):
    """Sort ``keys[:n]`` ascending, carrying ``vals`` along (stable bottom-up merge sort,
    ``tk``/``tv`` scratch; numba's own sort and partition take long to compile)."""
    run = 16
    for a in range(0, n, run):  # insertion sort of short runs
        _insertion_sort(keys, vals, a, min(a + run, n))
    src_k, src_v, dst_k, dst_v = keys, vals, tk, tv
    swapped = False
    while run < n:
        for a in range(0, n, 2 * run):
            mid, b = min(a + run, n), min(a + 2 * run, n)
            i, j = a, mid
            for o in range(a, b):
                if j >= b or (i < mid and src_k[i] <= src_k[j]):
                    dst_k[o], dst_v[o] = src_k[i], src_v[i]
                    i += 1
                else:
                    dst_k[o], dst_v[o] = src_k[j], src_v[j]
                    j += 1
        src_k, src_v, dst_k, dst_v = dst_k, dst_v, src_k, src_v
        swapped = not swapped
        run *= 2
    if swapped:
        keys[:n] = tk[:n]
        vals[:n] = tv[:n]


@njit(cache=True, nogil=True, error_model="numpy")
def _sort_scratch(m):
    """Scratch arrays of :func:`_bucket_sort` for up to ``m`` keys: ``tk, tv, bucket, ends``."""
    return np.empty(m, np.float32), np.empty(m, np.int64), np.empty(m, np.int64), np.empty(m + 1, np.int64)


@njit(cache=True, nogil=True, error_model="numpy")
def _bucket_sort(keys, vals, n, tk, tv, bucket, ends):
    """Sort ``keys[:n]`` ascending, carrying ``vals`` along.

    The band's values are spread about evenly, so ``n`` equal-width buckets hold about one
    value each: one counting pass, one scatter, and an insertion sort per bucket (a merge
    sort for a crowded one) cost O(n) instead of the O(n log n) mispredicted comparisons of
    a comparison sort.  The bucket index is monotone in the value, so any spread of the
    values still sorts exactly; only the speed depends on it."""
    if n <= 32:
        _insertion_sort(keys, vals, 0, n)
        return
    lo, hi = keys[0], keys[0]
    for i in range(n):
        lo = min(lo, keys[i])
        hi = max(hi, keys[i])
    if not hi > lo:
        return
    scale = n / (np.float64(hi) - np.float64(lo))
    ends[: n + 1] = 0
    for i in range(n):
        bk = min(np.int64((np.float64(keys[i]) - lo) * scale), n - 1)
        bucket[i] = bk
        ends[bk + 1] += 1
    for bk in range(n):
        ends[bk + 1] += ends[bk]
    for i in range(n):  # scatter; afterwards ends[bk] is the end of bucket bk
        o = ends[bucket[i]]
        tk[o], tv[o] = keys[i], vals[i]
        ends[bucket[i]] = o + 1
    keys[:n] = tk[:n]
    vals[:n] = tv[:n]
    a = 0
    for bk in range(n):
        b = ends[bk]
        if b - a > 32:
            _sort_pairs(keys[a:b], vals[a:b], b - a, tk, tv)
        elif b - a > 1:
            _insertion_sort(keys, vals, a, b)
        a = b


@njit(cache=True, nogil=True, error_model="numpy")
def _collect(v, g0, g1, center, h_lo, h_hi, band_v, band_i):
    """Split the rows by ``d = v - center``: below the band (``d < -h_lo``: count and summed
    integer gains) and in it (``-h_lo <= d <= h_hi``: gathered).  ``h_lo``/``h_hi`` are equal
    or infinite, so the band test is one comparison, true for few rows (a predictable
    branch); the count is branch-free (about half the rows are below, in no order)."""
    m = v.shape[0]
    n_low = 0
    s0 = 0
    s1 = 0
    if np.isfinite(h_lo):
        for i in range(m):
            below = (v[i] - center) < -h_lo
            n_low += below
            s0 += g0[i] * below
            s1 += g1[i] * below
    nb = 0
    if np.isfinite(h_lo) and np.isfinite(h_hi):
        for i in range(m):
            if abs(v[i] - center) <= h_hi:
                band_v[nb] = v[i]
                band_i[nb] = i
                nb += 1
    elif np.isfinite(h_lo):
        for i in range(m):
            if (v[i] - center) >= -h_lo:
                band_v[nb] = v[i]
                band_i[nb] = i
                nb += 1
    elif np.isfinite(h_hi):
        for i in range(m):
            if (v[i] - center) <= h_hi:
                band_v[nb] = v[i]
                band_i[nb] = i
                nb += 1
    else:
        for i in range(m):
            band_v[i] = v[i]
            band_i[i] = i
        nb = m
    return n_low, nb, s0, s1


@njit(cache=True, nogil=True, error_model="numpy")
def _margin(x):
    return np.float32(0.01) * max(abs(x), np.float32(1.0))


@njit(cache=True, nogil=True, error_model="numpy")
def _cut_before(w, e, p):
    """``(valid, threshold)`` of the cut just below distinct value ``e`` (sorted position
    ``p``): the midpoint with the value before it, or "all above" before the smallest; valid
    only strictly between the two (:func:`scd._search.cut_thresholds`)."""
    if e > 0:
        theta = (w[e - 1] + w[e]) / np.float32(2.0)
        return w[e - 1] < theta < w[e] and np.isfinite(theta), theta
    theta = w[0] - _margin(w[0])
    return p == 0 and theta < w[0] and np.isfinite(theta), theta


@njit(cache=True, nogil=True, error_model="numpy")
def _cut_after(w, G, p, m, lo_p, hi_p):
    """``(valid, threshold)`` of "all below", after the largest of ``G`` values, which ends at
    sorted position ``p``: valid when that is the batch's end ``m``, inside the window."""
    if G == 0 or p != m or not lo_p <= m <= hi_p:
        return False, w[0]
    theta = w[G - 1] + _margin(w[G - 1])
    return w[G - 1] < theta and np.isfinite(theta), theta


@njit(cache=True, nogil=True, error_model="numpy")
def _score(tp, tn, n_pos, n_neg, plus, ce, unit):
    """The objective of a cut from its totals, as :meth:`scd._search.Objective.score`
    (``ce``: ``tp`` is the summed loss in multiples of ``unit``)."""
    if ce:
        return -(tp * unit) / (n_pos + n_neg)
    balanced = (tp / n_pos + tn / n_neg) / 2
    if plus:
        return (tp + tn) / (n_pos + n_neg) + balanced
    return balanced


@njit(cache=True, nogil=True, error_model="numpy")
def _best_cut(w, cnt, a0, a1, G, pos0, t0, t1, first, k, m, n_pos, n_neg, plus, ce, unit):
    """Best valid cut of the window of sorted positions ``first - k .. first + k - 1``.

    ``w[:G]`` are sorted values (ascending, ties allowed), each standing for ``cnt`` rows
    with summed gains ``a0``/``a1``, starting at sorted position ``pos0``; ``t0``/``t1`` are
    the totals with every row from ``pos0`` on above the cut.  The window's cuts are the
    boundaries at positions ``first - k + 1 .. first + k - 1``: between two distinct values
    (threshold: their midpoint), before the smallest value when ``pos0 == 0`` ("all above")
    and after the largest when it ends at ``m`` ("all below"), as
    :func:`scd._search.cut_thresholds` places them.  Ties go to the lowest cut.
    """
    lo_p, hi_p = first - k + 1, first + k - 1
    best = -np.inf
    best_theta = np.float32(np.nan)
    p = pos0
    for e in range(G):
        if p > hi_p:
            break
        if p >= lo_p:
            valid, theta = _cut_before(w, e, p)
            if valid:
                s = _score(t0, t1, n_pos, n_neg, plus, ce, unit)
                if s > best:
                    best, best_theta = s, theta
        p += cnt[e]
        t0 += a0[e]
        t1 += a1[e]
    valid, theta = _cut_after(w, G, p, m, lo_p, hi_p)
    if valid:
        s = _score(t0, t1, n_pos, n_neg, plus, ce, unit)
        if s > best:
            best, best_theta = s, theta
    return best, best_theta


@njit(cache=True, nogil=True, error_model="numpy")
def _search_one(v, g0, g1, start0, start1, r, guess, density, k, band_rows, n_pos, n_neg, plus, ce, unit,
                band_v, band_i, tk, tv, bucket, ends, ones, ga, gb):
    """Best cut of one candidate's window: ``(score, theta)`` (see :func:`window_search`)."""
    m = v.shape[0]
    inf = np.float32(np.inf)
    guessed = np.isfinite(density) and density > 0
    center = 0.0
    rho = 1.0
    if guessed:  # correct the guess by two counts: a Newton step on the density, then a secant step
        rho = max(density, 1e-12)
        c0 = np.float32(guess)
        n0 = _count_below(v, c0)
        c1 = c0 if n0 == r else np.float32(c0 + (r - n0) / rho)
        n1 = _count_below(v, c1)
        slope = (c1 - c0) / (n1 - n0) if n1 != n0 else 1 / rho
        center = c1 if n1 == r else c1 + (r - n1) * slope
    # the rows within ``reach`` rows (by the density) of the centre, widened 8 times until
    # they hold the window; without a guess, or at last, every row
    reach = band_rows if guessed else m
    c32 = np.float32(center)
    while True:
        half = np.float32(reach / rho)
        h_lo = inf if r - k < reach else half
        h_hi = inf if r + k > m - reach else half
        n_low, nb, s0, s1 = _collect(v, g0, g1, c32, h_lo, h_hi, band_v, band_i)
        at = r - n_low
        if at >= 0 and (at < nb or (r >= m and n_low + nb == m)):
            _bucket_sort(band_v, band_i, nb, tk, tv, bucket, ends)
            cv = band_v[at] if r < m else inf
            first = n_low
            while first - n_low < nb and band_v[first - n_low] < cv:
                first += 1
            if max(first - k, 0) >= n_low and min(first + k, m) <= n_low + nb:
                break
        reach *= 8
    for j in range(nb):
        ga[j] = g0[band_i[j]]
        gb[j] = g1[band_i[j]]
    return _best_cut(band_v, ones, ga, gb, nb, n_low, start0 + s0, start1 + s1, first, k, m, n_pos, n_neg, plus,
                     ce, unit)


@njit(cache=True, nogil=True, error_model="numpy")
def _window_search(base, src, coords, rows, delta, gains, start, rank, theta, near, density, k, band_rows,
                   n_pos, n_neg, plus, ce, unit, score, best_theta, lo, hi):
    """Candidates ``lo <= cc < hi`` (in the order below) of every vote, into ``score`` and
    ``best_theta``."""
    B, m = base.shape
    C = delta.shape[1]
    Cd = coords.shape[1]
    v = np.empty(m, np.float32)
    band_v = np.empty(m, np.float32)
    band_i = np.empty(m, np.int64)
    tk, tv, bucket, ends = _sort_scratch(m)
    ones = np.ones(m, np.int64)
    ga = np.empty(m, gains.dtype)
    gb = np.empty(m, gains.dtype)
    # the rows in the order of their source columns, so that reading a direction streams
    # through its source row (the search does not depend on the order of the rows)
    cols = np.empty(m, np.int64)
    base_o = np.empty(m, np.float32)
    g0 = np.empty(m, gains.dtype)
    g1 = np.empty(m, gains.dtype)
    n = src.shape[1]
    slot = np.empty(n + 1, np.int64)
    for b in range(B):
        slot[:] = 0  # counting sort of the rows by column
        for i in range(m):
            slot[rows[b, i] + 1] += 1
        for col in range(n):
            slot[col + 1] += slot[col]
        for i in range(m):
            t = slot[rows[b, i]]
            slot[rows[b, i]] = t + 1
            cols[t], base_o[t], g0[t], g1[t] = rows[b, i], base[b, i], gains[b, 0, i], gains[b, 1, i]
        for cc in range(lo, hi):
            c = (cc % (C // Cd)) * Cd + cc // (C // Cd)  # the candidates of one direction in turn
            x = src[coords[b, c % Cd]]
            dl = delta[b, c]
            for i in range(m):
                v[i] = _fma32(dl, x[cols[i]], base_o[i])
            guess = 0.0  # the centre moves by delta times the direction near the threshold
            for i in range(near.shape[1]):
                guess += x[rows[b, near[b, i]]]
            guess = theta[b] + dl * guess / max(near.shape[1], 1)
            score[b, c], best_theta[b, c] = _search_one(
                v, g0, g1, start[b, 0], start[b, 1], rank[b], guess, density[b], k, band_rows,
                n_pos, n_neg, plus, ce, unit, band_v, band_i, tk, tv, bucket, ends, ones, ga, gb)


@njit(cache=True, nogil=True, error_model="numpy")
def _softplus(x):
    """``log(1 + exp(x))`` as ``torch.nn.functional.softplus`` computes it (linear above 20)."""
    return x if x > 20.0 else np.log1p(np.exp(x))


@njit(cache=True, nogil=True, error_model="numpy")
def _ce_total(w, n1, n0, G, theta):
    """Summed cross-entropy of the logits ``w - theta`` of ``G`` distinct values, each held by
    ``n1`` positive and ``n0`` negative rows (float64, as :func:`scd._search.ce_loss`)."""
    t = np.float64(theta)
    total = 0.0
    for e in range(G):
        v = np.float64(w[e])
        if n1[e]:
            total += n1[e] * _softplus(t - v)
        if n0[e]:
            total += n0[e] * _softplus(v - t)
    return total


@njit(cache=True, nogil=True, error_model="numpy")
def _ce_slope(e, n1, n0, G, theta, center):
    """Derivative of :func:`_ce_total` in ``theta``: the positives minus the summed sigmoids,
    from ``e = exp(w - center)`` (one division per value instead of an exponential)."""
    et = np.exp(np.float64(theta) - center)
    s = 0.0
    for j in range(G):
        s += n1[j] - (n1[j] + n0[j]) * e[j] / (e[j] + et)
    return s


@njit(cache=True, nogil=True, error_model="numpy")
def _ce_best_cut(w, n1, n0, G, first, k, m, cuts, ew):
    """Best valid cut of the window of sorted positions ``first - k .. first + k - 1`` for the
    cross-entropy output bias, over ``G`` sorted distinct values held by ``n1``/``n0`` rows.

    The window's cuts are those of :func:`_best_cut`.  The loss is convex in the threshold,
    so a binary search on its derivative finds the first valid cut where it is not
    decreasing; the best valid cut is that one or the one before it (the tensor path,
    :func:`scd._search.ce_best_cuts`, whose float32 derivative is less exact, compares two
    cuts each side).  ``cuts`` and ``ew``: scratch for ``G + 1`` and ``G`` float values.
    Returns ``(score, theta)``: minus the mean loss, ties to the lowest cut.
    """
    lo_p, hi_p = first - k + 1, first + k - 1
    V = 0
    p = 0
    for e in range(G):
        if p > hi_p:
            break
        if p >= lo_p:
            valid, theta = _cut_before(w, e, p)
            if valid:
                cuts[V] = theta
                V += 1
        p += n1[e] + n0[e]
    valid, theta = _cut_after(w, G, p, m, lo_p, hi_p)
    if valid:
        cuts[V] = theta
        V += 1
    best = -np.inf
    best_theta = np.float32(np.nan)
    if V == 0:
        return best, best_theta
    center = np.float64(cuts[V // 2])  # the logits relative to a cut, so their exponentials stay finite
    for j in range(G):
        ew[j] = np.exp(min(max(np.float64(w[j]) - center, -700.0), 700.0))
    a, b = 0, V
    while a < b:
        mid = (a + b) // 2
        if _ce_slope(ew, n1, n0, G, cuts[mid], center) >= 0:
            b = mid
        else:
            a = mid + 1
    for j in range(max(a - 1, 0), min(a + 1, V)):
        s = -_ce_total(w, n1, n0, G, cuts[j]) / m
        if s > best:
            best, best_theta = s, cuts[j]
    return best, best_theta


@njit(cache=True, nogil=True, error_model="numpy")
def _sorted_runs(z, keys, order, run, tk, tv, bucket, ends):
    """Sort ``z`` into ``keys`` (row numbers in ``order``) and mark the runs of equal values:
    run ``j`` is ``keys[run[j]:run[j + 1]]``.  Returns the number of runs."""
    m = z.shape[0]
    keys[:] = z
    for i in range(m):
        order[i] = i
    _bucket_sort(keys, order, m, tk, tv, bucket, ends)
    D = 0
    for i in range(m):
        if i == 0 or keys[i] != keys[i - 1]:
            run[D] = i
            D += 1
    run[D] = m
    return D


@njit(cache=True, nogil=True, error_model="numpy")
def _ce_full_search(z, y, score, theta, lo, hi):
    """Full search of the cross-entropy output bias of votes ``lo <= b < hi``: the sorted
    distinct values of ``z (B, m)`` with their positives and negatives (labels ``y``)."""
    B, m = z.shape
    keys = np.empty(m, np.float32)
    order = np.empty(m, np.int64)
    tk, tv, bucket, ends = _sort_scratch(m)
    run = np.empty(m + 1, np.int64)
    w = np.empty(m, np.float32)
    n1 = np.zeros(m, np.int64)
    n0 = np.zeros(m, np.int64)
    cuts = np.empty(m + 1, np.float32)
    ew = np.empty(m, np.float64)
    for b in range(lo, hi):
        D = _sorted_runs(z[b], keys, order, run, tk, tv, bucket, ends)
        for j in range(D):
            w[j] = keys[run[j]]
            n1[j] = 0
            for p in range(run[j], run[j + 1]):
                n1[j] += y[order[p]]
            n0[j] = run[j + 1] - run[j] - n1[j]
        score[b, 0], theta[b, 0] = _ce_best_cut(w, n1, n0, D, 0, m + 1, m, cuts, ew)


@njit(cache=True, nogil=True, error_model="numpy")
def _level_search(z, src, coords, rows, delta, gains, start, rank, k, n_pos, n_neg, plus, ce, score, theta, lo,
                  hi):
    """:func:`_window_search` for directions in {0, 1/2, 1} (the output node's candidates,
    whose directions are hidden activations), for the 0-1 objective or (``ce``) the
    cross-entropy output bias, whose ``gains`` are then the labels and ``1 -`` the labels.

    A candidate moves the rows of each activation level by the same step, so its sorted
    values are a merge of three shifted copies of the incumbent's sorted distinct values:
    one sort per vote, then O(m) per candidate, however many ties there are; the
    cross-entropy is then summed over the distinct values, not the rows.  Candidates
    ``lo <= c < hi`` of every vote, into ``score`` and ``theta``.
    """
    B, m = z.shape
    Cd = coords.shape[1]
    keys = np.empty(m, np.float32)
    order = np.empty(m, np.int64)
    col = np.empty(m, np.int64)
    g0 = np.empty(m, gains.dtype)
    g1 = np.empty(m, gains.dtype)
    tk, tv, bucket, ends = _sort_scratch(m)
    run = np.empty(m + 1, np.int64)
    lv = np.empty((3, m), np.float32)  # per level: value, rows, summed gains of each distinct value
    ln = np.empty((3, m), np.int64)
    la = np.empty((3, m), np.int64)
    lb = np.empty((3, m), np.int64)
    w = np.empty(3 * m, np.float32)  # the merge
    wn = np.empty(3 * m, np.int64)
    wa = np.empty(3 * m, np.int64)
    wb = np.empty(3 * m, np.int64)
    cuts = np.empty(3 * m + 1, np.float32)
    ew = np.empty(3 * m, np.float64)
    level = np.array([0.0, 0.5, 1.0], np.float32)
    L = np.zeros(3, np.int64)
    i3 = np.zeros(3, np.int64)
    for b in range(B):
        _sorted_runs(z[b], keys, order, run, tk, tv, bucket, ends)
        for p in range(m):  # the rows' columns and gains in sorted order
            row = order[p]
            col[p], g0[p], g1[p] = rows[b, row], gains[b, 0, row], gains[b, 1, row]
        for c in range(lo, hi):
            x = src[coords[b, c % Cd]]
            dl = delta[b, c]
            L[:] = 0
            for p in range(m):  # split the sorted rows by level; each level stays sorted
                q = np.int64(x[col[p]] * 2)
                v = _fma32(dl, level[q], keys[p])
                t = L[q]
                if t > 0 and lv[q, t - 1] == v:  # equal values, or rounding made them equal
                    ln[q, t - 1] += 1
                    la[q, t - 1] += g0[p]
                    lb[q, t - 1] += g1[p]
                else:
                    lv[q, t], ln[q, t], la[q, t], lb[q, t] = v, 1, g0[p], g1[p]
                    L[q] = t + 1
            G = 0  # three-way merge, equal values combined
            i3[:] = 0
            while True:
                q = -1
                for u in range(3):
                    if i3[u] < L[u] and (q < 0 or lv[u, i3[u]] < lv[q, i3[q]]):
                        q = u
                if q < 0:
                    break
                v = lv[q, i3[q]]
                if G > 0 and w[G - 1] == v:
                    wn[G - 1] += ln[q, i3[q]]
                    wa[G - 1] += la[q, i3[q]]
                    wb[G - 1] += lb[q, i3[q]]
                else:
                    w[G], wn[G], wa[G], wb[G] = v, ln[q, i3[q]], la[q, i3[q]], lb[q, i3[q]]
                    G += 1
                i3[q] += 1
            r = rank[b]  # the window starts at the first row of the value at position r
            first = 0
            if r >= m:
                first = m
            else:
                for e in range(G):
                    if first + wn[e] > r:
                        break
                    first += wn[e]
            if ce:
                score[b, c], theta[b, c] = _ce_best_cut(w, wa, wb, G, first, k, m, cuts, ew)
            else:
                score[b, c], theta[b, c] = _best_cut(w, wn, wa, wb, G, 0, start[b, 0], start[b, 1], first, k, m,
                                                     n_pos, n_neg, plus, False, 1.0)


def window_search(
    base: torch.Tensor,
    theta: torch.Tensor,
    source: torch.Tensor,
    coords: torch.Tensor,
    rows: torch.Tensor,
    delta: torch.Tensor,
    gains: torch.Tensor,
    start: torch.Tensor,
    rank: torch.Tensor,
    half_width: int,
    objective: Objective,
    levels: bool = False,
    n_near: int = 64,
    band_rows: int = 64,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Best windowed cut of every candidate ``base + delta * direction`` for a decomposable
    ``objective`` (0-1, or the cross-entropy of a hidden node).

    ``base (B, m)`` incumbent projections with threshold ``theta (B,)`` and rank ``rank
    (B,)`` (rows below it); ``delta (B, C)``; candidate ``c`` of vote ``b`` moves along
    ``source[coords[b, c % C'], rows[b]]`` (``coords (B, C')``, ``rows (B, m)``), read in
    place.  ``gains (B, m, k)`` and ``start (B, k)`` as for :func:`scd._search.best_cuts`
    (with every row above).  ``levels`` (0-1 only): every direction is in {0, 1/2, 1}, which
    an exact merge handles whatever the ties; otherwise the ``n_near`` rows nearest each
    threshold guess where each window is, and a band of about ``band_rows`` rows each side
    of the corrected guess holds it.  Returns ``score (B, C)`` float64 (``-inf`` with no
    valid cut) and ``theta (B, C)``: the results of ``best_cuts(*rank_window(...))``, exactly.
    """
    ce = objective.kind == "ce"
    assert not (ce and levels), "the merge kernel is for 0-1 output nodes"
    if ce:  # one loss column: a zero second column keeps one code path
        gains = torch.cat([gains, torch.zeros_like(gains)], dim=-1)
        start = torch.cat([start, torch.zeros_like(start)], dim=-1)
    n_pos, n_neg, plus = objective.n_pos, objective.n_neg, objective.metric == "plus"
    B, C = delta.shape
    k = min(half_width + 1, base.shape[1])
    args = (_as_np(base, np.float32), _as_np(source, np.float32), _as_np(coords, np.int64), _as_np(rows, np.int64),
            _as_np(delta, np.float32), _as_np(gains.transpose(1, 2), np.int64 if ce else np.int32),
            _as_np(start, np.float64), _as_np(rank, np.int64))
    if levels:
        kernel, args = _level_search, (*args, k, n_pos, n_neg, plus, False)
    else:
        near, density = near_rows(base, theta, n_near)
        kernel = _window_search
        args = (*args, _as_np(theta, np.float64), _as_np(near, np.int64), _as_np(density, np.float64), k, band_rows,
                n_pos, n_neg, plus, ce, float(objective.unit))
    return _in_blocks(kernel, args, B, C)


def ce_output_search(
    z: torch.Tensor,
    source: torch.Tensor,
    coords: torch.Tensor,
    delta: torch.Tensor,
    y: torch.Tensor,
    rank: torch.Tensor,
    half_width: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Best windowed cut of every cross-entropy output candidate ``z + delta * direction``:
    the results of ``ce_best_cuts(values, y, rank_window(values, rank, None, half_width)[0])``.

    ``z (B, m)`` is the incumbent logit before the bias, ``rank (B,)`` its threshold's rank;
    candidate ``c`` moves along the hidden column ``source[coords[b, c % C']] (m,)``, whose
    entries are in {0, 1/2, 1}.  Binary search and picks are those of the tensor path; the
    losses are float64 sums over distinct values instead of rows, so scores agree with it to
    rounding.  Returns ``score (B, C)`` and ``theta (B, C)``.
    """
    B, m = z.shape
    C = delta.shape[1]
    labels = _labels(y, B)
    rows = np.ascontiguousarray(np.broadcast_to(np.arange(m, dtype=np.int64), (B, m)))
    args = (_as_np(z, np.float32), _as_np(source, np.float32), _as_np(coords, np.int64), rows,
            _as_np(delta, np.float32), labels, np.zeros((B, 2)), _as_np(rank, np.int64),
            min(half_width + 1, m), 0, 0, False, True)
    return _in_blocks(_level_search, args, B, C)


def ce_full_search(z: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Full search of the cross-entropy output bias of every vote (``z (B, m)``, labels
    ``y (m,)``): ``ce_best_cuts(z[:, None], y, full_sequence(z, None)[0])`` summed as
    :func:`ce_output_search` sums, so that a candidate equal to the incumbent ties with it.
    Returns ``score (B,)`` and ``theta (B,)``."""
    B = z.shape[0]
    score, theta = _in_blocks(_ce_full_search, (_as_np(z, np.float32), _labels(y, 1)[0, 0]), 1, B, by_vote=True)
    return score[0], theta[0]


def _as_np(t: torch.Tensor, dtype) -> np.ndarray:
    return np.ascontiguousarray(t.detach().cpu().numpy(), dtype=dtype)


def _labels(y: torch.Tensor, B: int) -> np.ndarray:
    """``(B, 2, m)`` int32: the labels and their complement, the gains layout of the kernels."""
    yi = _as_np(y, np.int32)
    return np.ascontiguousarray(np.broadcast_to(np.stack([yi, 1 - yi]), (B, 2, len(yi))))


def _in_blocks(kernel, args, B: int, C: int, by_vote: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``kernel(*args, score, theta, lo, hi)`` over blocks ``lo:hi`` of the ``C``
    candidates, one block per torch thread (the kernels release the GIL).  ``by_vote``: the
    blocks are of the ``C`` votes and the outputs are ``(C, 1)``, returned as ``(1, C)``."""
    shape = (C, 1) if by_vote else (B, C)
    score, theta = np.empty(shape, np.float64), np.empty(shape, np.float32)
    parts = max(1, min(torch.get_num_threads(), C))
    bounds = [C * p // parts for p in range(parts + 1)]
    if parts == 1:
        kernel(*args, score, theta, 0, C)
    else:
        jobs = [_pool(parts).submit(kernel, *args, score, theta, lo, hi) for lo, hi in zip(bounds, bounds[1:])]
        for job in jobs:
            job.result()
    score, theta = torch.from_numpy(score), torch.from_numpy(theta)
    return (score.T, theta.T) if by_vote else (score, theta)


_POOLS: dict = {}


def _pool(threads: int):
    """A thread pool of ``threads`` workers, kept between calls."""
    if threads not in _POOLS:
        from concurrent.futures import ThreadPoolExecutor

        _POOLS[threads] = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="scd-kernel")
    return _POOLS[threads]
