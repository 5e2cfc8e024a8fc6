"""Certified lower bounds for the CNN baseline (:class:`eval.baselines.CNNEnsemble`, LeNet on
images): interval bound propagation (IBP) in float64 with a bisection on the radius.

Each member is ``conv -> ReLU -> max-pool`` blocks, then ``Linear -> ReLU`` layers and a final
``Linear`` to two logits.  For a radius, every layer's outputs get an interval (affine layers:
centre and radius through ``W`` and ``|W|``; ReLU and max-pooling are monotone), and every
interval carries an allowance for the model's own float32 arithmetic.  A member's vote is
certain when its logit difference keeps its sign over the whole interval.  IBP is sound but
loose on naturally trained networks: expect radii far below the attacks' distances.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from ._inputs import bisect_radius

__all__ = ["IntervalNet", "ibp_radius"]

_U32 = 2.0**-24


@dataclass(frozen=True)
class IntervalNet:
    """The fitted members of a :class:`~eval.baselines.CNNEnsemble` as float64 layer lists."""

    members: tuple[tuple[tuple, ...], ...]  # per member: ("conv", W, b, padding, dims) | ("relu",) | ...
    arch: dict
    soft: bool

    @classmethod
    def from_estimator(cls, model) -> IntervalNet:
        members = []
        for net in model.members_:
            layers: list[tuple] = []
            for module in list(net.features) + list(net.classifier):
                name = type(module).__name__
                if name in ("Conv1d", "Conv2d"):
                    layers.append(("conv", module.weight.detach().cpu().double(), module.bias.detach().cpu().double(),
                                   module.padding, 2 if name == "Conv2d" else 1))
                elif name == "Linear":
                    layers.append(("linear", module.weight.detach().cpu().double(), module.bias.detach().cpu().double()))
                elif name == "ReLU":
                    layers.append(("relu",))
                elif name in ("MaxPool1d", "MaxPool2d"):
                    layers.append(("pool", module.kernel_size, 2 if name == "MaxPool2d" else 1))
                elif name == "Flatten":
                    layers.append(("flatten",))
                else:
                    raise ValueError(f"interval bounds do not cover {name} layers.")
            members.append(tuple(layers))
        return cls(tuple(members), model.architecture_, model.voting == "soft")

    method = "ibp"

    def radius(self, x: np.ndarray, label: int, norm: str, box: tuple[np.ndarray, np.ndarray], upper: float) -> float:
        """:func:`ibp_radius` of this network."""
        return ibp_radius(self, x, label, norm, box, upper)

    def shape(self, x: torch.Tensor) -> torch.Tensor:
        """Flat rows ``(n, d)`` in the layout the members' first layer reads (HWC to CHW)."""
        arch = self.arch
        if arch["kind"] == "conv2d":
            h, w = arch["input_shape"][:2]
            return x.reshape(-1, h, w, arch["in_channels"]).permute(0, 3, 1, 2)
        return x.reshape(-1, 1, arch["input_shape"][0])


def _affine(layer: tuple, x: torch.Tensor, absolute: bool = False) -> torch.Tensor:
    W = layer[1].abs() if absolute else layer[1]
    b = None if absolute else layer[2]
    if layer[0] == "linear":
        return F.linear(x, W, b)
    conv = F.conv2d if layer[4] == 2 else F.conv1d
    return conv(x, W, b, padding=layer[3])


def _fan_in(layer: tuple) -> int:
    return int(layer[1][0].numel())


def _member_difference(net: IntervalNet, layers: tuple, first: tuple[torch.Tensor, torch.Tensor],
                       err: torch.Tensor) -> tuple[float, float]:
    """Range of ``logit_1 - logit_0`` of one member as the model computes it, from the range
    ``first`` of its first layer's outputs (exact arithmetic) and their rounding ``err``."""
    lo, hi = first
    i = 1
    while i < len(layers):
        layer = layers[i]
        kind = layer[0]
        if kind == "relu":
            lo, hi = lo.clamp(min=0), hi.clamp(min=0)  # 1-Lipschitz: the rounding carried stays
        elif kind == "pool":
            pool = F.max_pool2d if layer[2] == 2 else F.max_pool1d
            lo, hi, err = pool(lo, layer[1]), pool(hi, layer[1]), pool(err, layer[1])
        elif kind == "flatten":
            lo, hi, err = lo.flatten(1), hi.flatten(1), err.flatten(1)
        else:
            size = layer  # what rounds: the layer itself, or both output rows of the last one
            if i == len(layers) - 1:  # the difference of the two output rows, bounded as one row
                size = ("linear", (layer[1][1].abs() + layer[1][0].abs())[None],
                        (layer[2][1].abs() + layer[2][0].abs())[None])
                layer = ("linear", (layer[1][1] - layer[1][0])[None], (layer[2][1] - layer[2][0])[None])
            centre, radius = (hi + lo) / 2, (hi - lo) / 2
            mag = torch.maximum(lo.abs(), hi.abs()) + err
            out_c = _affine(layer, centre)
            out_r = _affine(layer, radius, absolute=True)
            n = _fan_in(layer) + 1
            gamma = n * _U32 / (1 - n * _U32)
            bias = size[2].abs().reshape([1, -1] + [1] * (centre.dim() - 2))
            new_err = _affine(size, err, absolute=True) + gamma * (_affine(size, mag, absolute=True) + bias)
            own = 1e-12 * (_affine(size, mag, absolute=True) + 1)
            lo, hi, err = out_c - out_r - own, out_c + out_r + own, new_err
        i += 1
    return float(lo.item() - err.item()), float(hi.item() + err.item())


class _Sample:
    def __init__(self, net: IntervalNet, x: np.ndarray, lo: np.ndarray, hi: np.ndarray, norm: str):
        self.net, self.norm = net, norm
        self.x = torch.from_numpy(x.astype(np.float64))[None]
        self.lo = torch.from_numpy(lo)[None]
        self.hi = torch.from_numpy(hi)[None]
        self.reach = torch.maximum(self.lo.abs(), self.hi.abs())
        q = {"inf": 1.0, "2": 2.0, "1": float("inf")}[norm]
        self.dual = []
        for layers in net.members:
            W = layers[0][1]
            self.dual.append(torch.linalg.vector_norm(W.reshape(W.shape[0], -1), ord=q, dim=1))

    def first_range(self, m: int, eps: float) -> tuple[tuple[torch.Tensor, torch.Tensor], torch.Tensor]:
        layer = self.net.members[m][0]
        shape = self.net.shape
        box_lo, box_hi = self.lo, self.hi
        if self.norm == "inf":
            box_lo, box_hi = torch.maximum(self.lo, self.x - eps), torch.minimum(self.hi, self.x + eps)
        c, r = _affine(layer, shape((box_hi + box_lo) / 2)), _affine(layer, shape((box_hi - box_lo) / 2), absolute=True)
        lo, hi = c - r, c + r
        if self.norm != "inf":
            centre = _affine(layer, shape(self.x))
            spread = (eps * self.dual[m]).reshape([1, -1] + [1] * (centre.dim() - 2))
            lo, hi = torch.maximum(lo, centre - spread), torch.minimum(hi, centre + spread)
        mag = _affine(layer, shape(self.reach), absolute=True)
        n = _fan_in(layer) + 1
        err = (n * _U32 / (1 - n * _U32)) * (mag + layer[2].abs().reshape([1, -1] + [1] * (mag.dim() - 2)))
        own = 1e-12 * (mag + 1)
        return (lo - own, hi + own), err

    def robust(self, eps: float, label: int) -> bool:
        V = len(self.net.members)
        ranges = [_member_difference(self.net, layers, *self.first_range(m, eps))
                  for m, layers in enumerate(self.net.members)]
        dl = np.array([r[0] for r in ranges])
        dh = np.array([r[1] for r in ranges])
        if not self.net.soft:  # float64 softmax of float32 logits: p1 > 1/2 if l1 - l0 > 2^-40, <= 1/2 if <= 0
            if label == 1:
                return 2 * int(np.sum(dl > 2.0**-40)) > V
            return 2 * int(np.sum(dh > 0)) <= V
        sig = lambda z: 0.5 * (1 + np.tanh(0.5 * z))
        slack = (2 * V * V + 4 * V) * 2.0**-52 + V * 1e-14
        if label == 1:
            return float(np.sum(sig(dl))) > V / 2 + slack
        return float(np.sum(sig(dh))) < V / 2 - slack


@torch.no_grad()
def ibp_radius(net: IntervalNet, x: np.ndarray, label: int, norm: str, box: tuple[np.ndarray, np.ndarray],
               upper: float, steps: int = 20) -> float:
    """The largest radius the bisection certifies by IBP (0 if not even ``x`` itself).

    Runs on one torch thread: one sample's layers are small, and on a busy machine torch's
    thread pool made the same bisection 100 times slower (10 s against 0.1 s on 8x8 digits)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        sample = _Sample(net, x, box[0], box[1], norm)
        return bisect_radius(lambda r: sample.robust(r, label), upper, steps)
    finally:
        torch.set_num_threads(threads)
