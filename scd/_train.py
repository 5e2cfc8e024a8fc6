"""Stochastic coordinate descent for a group of votes, as one batched tensor program.

Follows the reference algorithm (``docs/algorithm.md`` lists every difference): per
iteration each vote draws a fresh class-balanced batch, updates its output node (full
threshold search, then one round of single-coordinate candidates with a windowed search),
then one random hidden node the same way, and keeps the best snapshot on the full training
set.  All votes of the group advance together; each has its own random stream, so a vote's
result does not depend on which other votes share its group.

Inputs are trusted (validated by the estimator): ``XT`` is the *feature-major* float32
training matrix ``(d, n)`` (``X.T`` made contiguous, so a candidate feature's column is one
contiguous row) on the target device, ``y`` an int array of 0/1 with both classes present.
"""

from __future__ import annotations

from dataclasses import field, make_dataclass, replace
from typing import Callable, Sequence

import numpy as np
import torch

from ._network import hidden_units, project
from ._params import PARAMS, VARIANT_PARAMS, VOTE_PARAMS
from ._search import Objective, best_cuts, ce_best_cuts, full_sequence, integer_losses, near_rows, rank_window

__all__ = ["SNAPSHOT_STATE", "TrainConfig", "train_scores", "train_votes", "vote_rng"]

_REFRESH_EVERY = 64  # iterations between exact recomputations of the cached projections
_SNAPSHOT_EVERY = 256  # iterations between mid-vote snapshots (a multiple of _REFRESH_EVERY)
_NEAR_ROWS = 64  # rows near the incumbent threshold that guess where each candidate's window is
_GUESS_FROM_ROWS = 2048  # smaller batches find their windows by sorting: fewer, larger steps


TrainConfig = make_dataclass(
    "TrainConfig",
    [*((name, type(p.default)) for name, p in VARIANT_PARAMS.items()),
     *((name, type(PARAMS[name].default)) for name in VOTE_PARAMS),
     ("memory_elements", int, field(default=1 << 24))],
    frozen=True,
    namespace={"__doc__": "Hyperparameters of one vote: the variant and the ``vote`` parameters of "
                          ":mod:`scd._params` (names as in the reference), plus a memory budget."},
)
TrainConfig.__module__ = __name__  # where pickle (joblib workers) finds it


def train_scores(pred: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Full-train scores of the votes' predictions ``pred (V, n)`` against ``y (n,)`` (booleans):
    accuracy + balanced accuracy (the reference's ``obj``) and balanced accuracy, float64."""
    tp = (pred & y).sum(-1).double()
    tn = (~pred & ~y).sum(-1).double()
    n_pos, n_neg = y.sum().double(), (~y).sum().double()
    balanced = (tp / n_pos + tn / n_neg) / 2
    return (tp + tn) / (n_pos + n_neg) + balanced, balanced


def vote_rng(seed: int, vote: int) -> np.random.Generator:
    """The random stream of vote ``vote`` of an ensemble whose base seed is ``seed``."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(vote,)))


_WEIGHTS = ("W1", "b1", "w2", "b2")
SNAPSHOT_STATE = ("W1", "b1", "w2", "b2", "best_select", "rng", "iters")
"""The arrays of a mid-vote snapshot besides the best snapshot's weights: the current weights,
the best snapshot's selection score, the random streams' states and the iterations done."""


def _rng_state(rng: np.random.Generator) -> np.ndarray:
    """The state of a PCG64 stream as six uint64 words (exact: its 128-bit state and increment
    in two words each, then its cached 32-bit half)."""
    st = rng.bit_generator.state
    words = [st["state"]["state"] >> 64, st["state"]["state"], st["state"]["inc"] >> 64, st["state"]["inc"],
             st["has_uint32"], st["uinteger"]]
    return np.array([w & 0xFFFFFFFFFFFFFFFF for w in words], dtype=np.uint64)


def _set_rng_state(rng: np.random.Generator, words: np.ndarray) -> None:
    """Restore a state written by :func:`_rng_state`."""
    w = [int(x) for x in words]
    rng.bit_generator.state = {"bit_generator": "PCG64", "state": {"state": w[0] << 64 | w[1], "inc": w[2] << 64 | w[3]},
                               "has_uint32": w[4], "uinteger": w[5]}


def _fused_kernel(device: torch.device) -> bool:
    """Whether the node searches use the fused CPU kernels (:mod:`scd._kernels`) where they
    have one (the windowed searches, and the cross-entropy output's full search): on a CPU
    always (they give the tensor path's results, several times faster)."""
    return device.type == "cpu"


class _Batch:
    """Random draws of one iteration for every vote of the group, drawn from each vote's numpy
    stream (the same on every device) and sent to the device in one copy, which on a GPU is
    asynchronous (from pinned memory), so the host does not wait for the GPU."""

    def __init__(self, rngs, pos, neg, P, N, H, d, uf, device, first):
        draws = []
        for rng in rngs:
            rows = [rng.choice(pos, P, replace=False), rng.choice(neg, N, replace=False)]
            init = [rng.permutation(H)] if first else []
            draws.append(np.concatenate([*rows, *init, rng.permutation(H), [rng.integers(H)],
                                         rng.choice(d, uf, replace=False)]))
        table = torch.from_numpy(np.stack(draws).astype(np.int64))
        if device.type == "cuda":
            table = table.pin_memory().to(device, non_blocking=True)
        widths = [P + N, H if first else 0, H, 1, uf]
        self.rows, init, self.perm, node, self.feats = torch.split(table, widths, dim=1)
        self.node = node[:, 0]
        self.init_order = init if first else None


class _Group:
    """Weights, cached projections and best snapshots of a group of votes."""

    def __init__(self, XT, y, votes, seed, cfg: TrainConfig):
        self.XT, self.X, self.cfg = XT, XT.T, cfg
        n, d = self.X.shape
        H = cfg.hidden_nodes
        self.device = XT.device
        self.rngs = [vote_rng(seed, v) for v in votes]
        y_np = np.asarray(y)
        self.pos, self.neg = np.flatnonzero(y_np == 1), np.flatnonzero(y_np == 0)
        self.P = min(len(self.pos), max(1, int(len(self.pos) * cfg.nrows)))
        self.N = min(len(self.neg), max(1, int(len(self.neg) * cfg.nrows)))
        self.y_full = torch.as_tensor(y_np == 1, device=self.device)
        yb = torch.cat([torch.ones(self.P), torch.zeros(self.N)]).to(self.device)
        self.yb = yb
        self.sign_b = (2 * yb - 1).to(torch.float64)
        self.out_gains = torch.stack([-yb, 1 - yb], dim=-1).expand(len(votes), -1, -1)
        self.out_start = yb.new_tensor([self.P, 0.0]).expand(len(votes), 2)
        self.uf = min(cfg.updated_features, d)

        W1 = np.stack([r.standard_normal((d, H)) for r in self.rngs]).astype(np.float32)
        w2 = np.stack([r.standard_normal(H) for r in self.rngs]).astype(np.float32)
        if cfg.binary_weights:
            W1, w2 = np.where(W1 >= 0, 1.0, -1.0), np.where(w2 >= 0, 1.0, -1.0)
        else:
            W1 = W1 / np.linalg.norm(W1, axis=1, keepdims=True)
            w2 = w2 / np.linalg.norm(w2, axis=1, keepdims=True)
        as_t = lambda a: torch.as_tensor(a, dtype=torch.float32, device=self.device)  # noqa: E731
        self.W1, self.w2 = as_t(W1), as_t(w2)
        self.b1 = torch.zeros((len(votes), H), device=self.device)
        self.b2 = torch.zeros(len(votes), device=self.device)
        self.U = project(self.X, self.W1)
        self._buffers: dict[int, torch.Tensor] = {}
        self.best = {k: v.clone() for k, v in self.weights().items()}
        self.best_select = torch.full((len(votes),), -np.inf, dtype=torch.float64, device=self.device)

    def weights(self) -> dict[str, torch.Tensor]:
        return {"W1": self.W1, "b1": self.b1, "w2": self.w2, "b2": self.b2}

    def snapshot(self, iters: int) -> dict[str, np.ndarray]:
        """Everything that decides the rest of the votes' training after ``iters`` iterations
        (a multiple of ``_REFRESH_EVERY``, so the cached projections are recomputed from the
        weights on resuming): the best snapshot's weights under their own names, and
        :data:`SNAPSHOT_STATE`."""
        arrays = {k: v.cpu().numpy() for k, v in self.best.items()}
        state = {k: v.cpu().numpy() for k, v in self.weights().items()}
        return {**arrays, **{f"state_{k}": v for k, v in state.items()},
                "state_best_select": self.best_select.cpu().numpy(),
                "state_rng": np.stack([_rng_state(r) for r in self.rngs]),
                "state_iters": np.full(len(self.rngs), iters, dtype=np.int64)}

    def restore(self, arrays: dict[str, np.ndarray]) -> int:
        """Continue from :meth:`snapshot`'s ``arrays``; returns the iterations already done."""
        for name in _WEIGHTS:
            self.best[name] = torch.tensor(arrays[name], device=self.device)
            setattr(self, name, torch.tensor(arrays[f"state_{name}"], device=self.device))
        self.best_select = torch.tensor(arrays["state_best_select"], dtype=torch.float64, device=self.device)
        for rng, words in zip(self.rngs, arrays["state_rng"]):
            _set_rng_state(rng, words)
        return int(arrays["state_iters"][0])  # a multiple of _REFRESH_EVERY: step() recomputes U

    # ----------------------------------------------------------------- node gains
    def _objective(self, metric: str) -> Objective:
        return Objective(self.cfg.loss, metric, self.P, self.N)

    def _hidden_gains(self, s: torch.Tensor, wj: torch.Tensor, obj: Objective):
        """Per-row gains of hidden node j given the other nodes' logit ``s`` and ``w2[j]``,
        their total with every row above, and the objective that scores them."""
        above = s + wj.unsqueeze(-1)
        if self.cfg.loss == "ce":
            l0 = torch.nn.functional.softplus(-self.sign_b * s.to(torch.float64))
            l1 = torch.nn.functional.softplus(-self.sign_b * above.to(torch.float64))
            gains, start, unit = integer_losses(l0, l1)
            return gains, start, replace(obj, unit=unit)
        y = self.yb
        p0, p1 = (s > 0).float(), (above > 0).float()
        gains = torch.stack([y * (p0 - p1), (1 - y) * (p1 - p0)], dim=-1)
        start = torch.stack([(y * p1).sum(1), ((1 - y) * (1 - p1)).sum(1)], dim=-1)
        return gains, start, obj

    def _full_search(self, values, gains, start, obj):
        """Full search of one node per vote: ``(score (B,), theta (B,))``."""
        if gains is None and _fused_kernel(self.device):
            from ._kernels import ce_full_search

            return ce_full_search(values, self.yb)
        seq, g = full_sequence(values, gains)
        if gains is None:
            best, theta = ce_best_cuts(values.unsqueeze(1), self.yb, seq)
        else:
            best, theta = best_cuts(seq, g, start.unsqueeze(1), obj)
        return best.squeeze(1), theta.squeeze(1)

    def _window_search(self, base, theta, delta, source, coords, rows, gains, start, obj, guess=_NEAR_ROWS,
                       levels=False):
        """Windowed search of the candidates ``base + delta * direction``, each centred on the
        incumbent threshold's rank in its own order, in vote chunks that fit the memory budget.

        ``base (B, m)`` and ``theta (B,)`` are the incumbent projection and threshold,
        ``delta (B, C)`` the candidates' steps.  Their directions are rows of ``source (S, n)``
        at the batch columns: ``direction[b, j] = source[coords[b, j], rows[b]]`` for
        ``coords (B, C')`` and ``rows (B, m)``, with ``C`` a multiple of ``C'`` (``+step``
        candidates, then ``-step``); the fused kernel reads them in place.  ``levels``: every
        direction is in {0, 1/2, 1} (hidden activations).  ``guess`` rows nearest the
        incumbent threshold guess where each window is (see :func:`rank_window`); ``guess=0``
        finds the windows by sorting, which is faster for projections with many ties and
        for small batches.
        """
        B, C = delta.shape
        Cd, m = coords.shape[1], rows.shape[1]
        rank = (base < theta.unsqueeze(-1)).sum(-1)
        if _fused_kernel(self.device) and (gains is not None or levels):
            from ._kernels import ce_output_search, window_search

            if gains is None:
                return ce_output_search(base, source, coords, delta, self.yb, rank, self.cfg.interval)
            return window_search(base, theta, source, coords, rows, delta, gains, start, rank, self.cfg.interval,
                                 obj, levels)
        direction = torch.gather(source[coords], 2, rows.unsqueeze(1).expand(-1, Cd, -1))  # (B, C', m)
        guess = guess if m >= _GUESS_FROM_ROWS else 0
        if guess:  # the number of rows near the threshold that guess each window's centre
            near_at, density = near_rows(base, theta, guess)
            near = torch.gather(direction, 2, near_at.unsqueeze(1).expand(-1, Cd, -1)).mean(-1)
            centers = theta.unsqueeze(-1) + delta * near.repeat(1, C // Cd)
        step = max(1, self.cfg.memory_elements // (C * m))
        out = []
        for a in range(0, B, step):
            sl = slice(a, a + step)
            b = len(rank[sl])
            values = self._scratch(0, b * C * m).view(b, C // Cd, Cd, m)
            torch.addcmul(base[sl, None, None], delta[sl].view(b, C // Cd, Cd, 1), direction[sl, None], out=values)
            values = values.view(b, C, m)
            g = None if gains is None else gains[sl]
            if guess:
                seq, sg, below = rank_window(values, rank[sl], g, self.cfg.interval, centers[sl], density[sl],
                                             workspace=self._scratch(1, 2 * values.numel()))
            else:
                seq, sg, below = rank_window(values, rank[sl], g, self.cfg.interval)
            if gains is None:
                out.append(ce_best_cuts(values, self.yb, seq))
            else:
                out.append(best_cuts(seq, sg, start[sl].unsqueeze(1) + below, obj))
        return torch.cat([o[0] for o in out]), torch.cat([o[1] for o in out])

    def _scratch(self, slot: int, numel: int) -> torch.Tensor:
        """Reusable float32 scratch memory (fresh large tensors cost page faults on a CPU)."""
        buf = self._buffers.get(slot)
        if buf is None or buf.numel() < numel:
            buf = self._buffers[slot] = torch.empty(numel, device=self.device)
        return buf[:numel]

    def _logit_parts(self, hb, node):
        """Logit without node ``node`` (bias included) and the node's output weight."""
        ar = torch.arange(hb.shape[0], device=self.device)
        wj = self.w2[ar, node]
        z = (hb * self.w2.unsqueeze(1)).sum(-1)
        return z - wj.unsqueeze(-1) * hb[ar, :, node] + self.b2.unsqueeze(-1), wj

    # ----------------------------------------------------------------- updates
    def init_biases(self, Ub, order, obj):
        """Reference bias initialisation: +mean seed, then greedy per-node threshold search."""
        ar = torch.arange(Ub.shape[0], device=self.device)
        self.b1 = Ub.mean(dim=1)
        hb = hidden_units(Ub + self.b1.unsqueeze(1))
        z = (hb * self.w2.unsqueeze(1)).sum(-1)
        J, theta = self._full_search(z, self._out_gains(), self.out_start, obj)
        self.b2 = -theta
        for q in range(order.shape[1]):
            node = order[:, q]
            self.b1[ar, node] = 0.0
            hb = hidden_units(Ub + self.b1.unsqueeze(1))
            s, wj = self._logit_parts(hb, node)
            gains, start, hidden_obj = self._hidden_gains(s, wj, obj)
            Jq, theta = self._full_search(Ub[ar, :, node], gains, start, hidden_obj)
            better = Jq > J
            self.b1[ar, node] = torch.where(better, -theta, 0.0)
            J = torch.where(better, Jq, J)

    def _out_gains(self):
        return None if self.cfg.loss == "ce" else self.out_gains

    def update_output(self, hb, perm, obj):
        cfg = self.cfg
        ar = torch.arange(hb.shape[0], device=self.device)
        z = (hb * self.w2.unsqueeze(1)).sum(-1)
        J, theta = self._full_search(z, self._out_gains(), self.out_start, obj)
        B, m, H = hb.shape
        source = hb.transpose(1, 2).reshape(B * H, m)  # the candidates' directions: hidden columns
        hk_at = perm + H * ar.unsqueeze(-1)
        if cfg.binary_weights:
            coords, delta = perm, -2 * torch.gather(self.w2, 1, perm)
        else:
            coords = torch.cat([perm, perm], dim=1)
            up = torch.full(perm.shape, cfg.w_inc2, device=self.device)
            delta = torch.cat([up, -up], dim=1)
        norm = self._norm(delta, torch.gather(self.w2, 1, coords))
        # the output's projections take few distinct values: windows by sorting
        rows = torch.arange(m, device=self.device).expand(B, m)
        best, thr = self._window_search(z, theta, delta, source, hk_at, rows, self._out_gains(), self.out_start,
                                        obj, guess=0, levels=True)
        score, c = best.max(dim=1)
        accept = score > J
        k, d, nc = coords[ar, c], delta[ar, c], norm[ar, c]
        new_w2 = self.w2.clone()
        new_w2[ar, k] += d
        new_w2 = new_w2 / nc.unsqueeze(-1)
        self.w2 = torch.where(accept.unsqueeze(-1), new_w2, self.w2)
        self.b2 = torch.where(accept, -thr[ar, c] / nc, -theta)

    def update_hidden(self, hb, Ub, rows, node, feats, obj):
        cfg = self.cfg
        ar = torch.arange(hb.shape[0], device=self.device)
        s, wj = self._logit_parts(hb, node)
        gains, start, obj = self._hidden_gains(s, wj, obj)
        u = Ub[ar, :, node]
        J, theta = self._full_search(u, gains, start, obj)
        self.b1[ar, node] = -theta
        w_f = self.W1[ar.unsqueeze(-1), feats, node.unsqueeze(-1)]  # (B, uf)
        if cfg.binary_weights:
            coords, delta = feats, -2 * w_f
        else:
            coords = torch.cat([feats, feats], dim=1)
            up = torch.full_like(w_f, cfg.w_inc1)
            delta = torch.cat([up, -up], dim=1)
            w_f = torch.cat([w_f, w_f], dim=1)
        norm = self._norm(delta, w_f)
        best, thr = self._window_search(u, theta, delta, self.XT, feats, rows, gains, start, obj)
        score, c = best.max(dim=1)
        # every vote updated, the rejected ones by a step of 0 and a norm of 1 (no host
        # synchronisation to find the accepted ones)
        accept = score > J
        fa = coords[ar, c]
        da = torch.where(accept, delta[ar, c], 0.0)
        na = torch.where(accept, norm[ar, c], 1.0)
        self.W1[ar, fa, node] += da
        self.W1[ar, :, node] /= na.unsqueeze(-1)
        self.b1[ar, node] = torch.where(accept, -thr[ar, c] / na, -theta)
        u_old = self.U[ar, :, node]
        u_new = (u_old + da.unsqueeze(-1) * self.XT[fa]) / na.unsqueeze(-1)
        self.U[ar, :, node] = torch.where(accept.unsqueeze(-1), u_new, u_old)

    def _norm(self, delta, w):
        """Norm of a unit weight vector after adding ``delta`` to coordinate ``w`` (SCD01 only)."""
        if self.cfg.loss == "01" and not self.cfg.binary_weights:
            return torch.sqrt(1 + 2 * delta * w + delta * delta)
        return torch.ones_like(delta)

    def select(self, iteration: int):
        """Keep each vote's best snapshot on the full training set (reference schedule)."""
        cfg = self.cfg
        hf = hidden_units(self.U + self.b1.unsqueeze(1))
        pred = ((hf * self.w2.unsqueeze(1)).sum(-1) + self.b2.unsqueeze(-1)) > 0
        score, bal = train_scores(pred, self.y_full)
        select = bal if iteration < int(cfg.n_iters * cfg.b_ratio) else score
        better = select > self.best_select
        for name, value in self.weights().items():  # no host synchronisation (no better.any())
            self.best[name] = torch.where(better.view(-1, *[1] * (value.dim() - 1)), value, self.best[name])
        self.best_select = torch.where(better, select, self.best_select)

    def step(self, iteration: int):
        cfg = self.cfg
        first = iteration == 0
        n, d = self.X.shape
        draw = _Batch(self.rngs, self.pos, self.neg, self.P, self.N, cfg.hidden_nodes, d, self.uf,
                      self.device, first)
        if iteration and iteration % _REFRESH_EVERY == 0:
            self.U = project(self.X, self.W1)
        H = cfg.hidden_nodes
        Ub = torch.gather(self.U, 1, draw.rows.unsqueeze(-1).expand(-1, -1, H))
        obj = self._objective("balanced" if iteration <= int(cfg.n_iters * cfg.b_ratio) else "plus")
        if first:
            self.init_biases(Ub, draw.init_order, obj)
        hb = hidden_units(Ub + self.b1.unsqueeze(1))
        self.update_output(hb, draw.perm, obj)
        self.update_hidden(hb, Ub, draw.rows, draw.node, draw.feats, obj)
        self.select(iteration)


def train_votes(
    XT: torch.Tensor,
    y: np.ndarray,
    votes: Sequence[int],
    seed: int,
    cfg: TrainConfig,
    progress: Callable[[int], None] | None = None,
    start: dict[str, np.ndarray] | None = None,
    on_snapshot: Callable[[list[int], dict[str, np.ndarray]], None] | None = None,
) -> dict[str, np.ndarray]:
    """Train votes ``votes`` of the ensemble with base seed ``seed`` on ``XT = X.T (d, n)``.

    Returns the best snapshot of every vote as numpy arrays ``W1 (B, d, H)``, ``b1 (B, H)``,
    ``w2 (B, H)`` and ``b2 (B,)``.  ``progress(k)`` is called after every iteration with the
    number of vote-iterations done.  ``on_snapshot(votes, arrays)`` is called every
    ``_SNAPSHOT_EVERY`` iterations (not after the last) with the group's state; training
    from ``start=arrays`` continues from there and ends with the uninterrupted result.
    """
    every = _SNAPSHOT_EVERY
    assert every % _REFRESH_EVERY == 0, (every, _REFRESH_EVERY)
    with torch.no_grad():
        group = _Group(XT, y, list(votes), seed, cfg)
        done = 0 if start is None else group.restore(start)
        for iteration in range(done, cfg.n_iters):
            group.step(iteration)
            if progress is not None:
                progress(len(votes))
            if on_snapshot is not None and (iteration + 1) % every == 0 and iteration + 1 < cfg.n_iters:
                on_snapshot(list(votes), group.snapshot(iteration + 1))
        return {k: v.cpu().numpy() for k, v in group.best.items()}
