"""Ensemble of small convolutional networks (torch): the convolutional reference for image data.

``CNNEnsemble`` trains ``n_votes`` independent networks with Adam and combines them by soft
voting (mean softmax, the default) or hard voting.  The architecture follows the input:

==============================  =============================================================
input                           network (every conv: ReLU, then max-pooling while the
                                feature map is wide enough)
==============================  =============================================================
``(32, 32, 3)`` CIFAR (HWC)     LeNet-5: conv5x5(6) -> conv5x5(16) -> fc120 -> fc84 -> fc2
``(28, 28, 1)`` MNIST           LeNet-5 with the first conv padded by 2 (the original layout)
``(8, 8, 1)`` sklearn digits    conv3x3(8, pad 1) -> conv3x3(16, pad 1) -> fc64 -> fc2
``(n,)`` flat vectors (ECG)     the paper's ECG CNN: conv1d k16(64) -> pool 4 -> conv1d k16(128)
                                -> pool 4 -> conv1d k16(256) -> pool 2 -> fc128 -> fc2
==============================  =============================================================

Images arrive flattened in HWC order (``x.reshape(-1, H, W, C)``) and the module reshapes
them itself, so every module maps flat float32 input ``(n, n_features)`` to logits
``(n, 2)``; attacks can use them directly (:meth:`CNNEnsemble.torch_module`).

Member ``v`` draws its initial weights and its mini-batch order from one CPU
``torch.Generator`` seeded by ``(seed_, v)``, so an int ``random_state`` gives the same
weights on every CPU run with the same number of torch threads (and the same initial
weights on a GPU).  A different thread count changes the order of float additions in
the convolutions, hence the last bits of the trained weights.

Models are saved as a safe bundle (:mod:`scd.persist`, kind ``"baseline-cnn"``): weights
as ``.npy`` arrays, the architecture as JSON metadata; :func:`load` rebuilds the modules
and never unpickles.
"""

from __future__ import annotations

import math
import os
import time
from numbers import Integral, Real
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data
from torch import nn

from scd.ensemble import VoteOutputs, base_seed, binary_targets, fit_or_keep, resolve_devices
from scd.persist import ModelFile, check_array, meta_number, read_model_file, rebuild, register_loader, save_estimator

from ._common import _TorchDifferentiable

__all__ = ["CNNEnsemble", "load"]

_KIND = "baseline-cnn"
_PREDICT_ROWS = 4096


# --------------------------------------------------------------------------- architecture
def _default_input_shape(n_features: int) -> tuple[int, ...]:
    """The input shape assumed for ``n_features`` when ``input_shape=None``."""
    return {3072: (32, 32, 3), 784: (28, 28, 1), 64: (8, 8, 1)}.get(n_features, (n_features,))


def _architecture(input_shape: tuple[int, ...]) -> dict[str, Any]:
    """JSON description of the network for one sample of ``input_shape`` ((L,), (H, W) or (H, W, C)).

    ``convs`` lists ``[out_channels, kernel, padding, pool]``.  Vectors get the paper's ECG
    network (64, 128 and 256 kernels of width 16, max-pooling by 4, 4 and 2, one dense layer
    of 128 units: the paper does not give its width); 28x28 and larger images get LeNet-5;
    smaller images a small two-layer CNN.  Kernels and pools shrink for inputs too small
    for them, so any size works.
    """
    if len(input_shape) == 1:
        kind, channels, size = "conv1d", 1, [input_shape[0]]
        layers, hidden = [(64, 16, 8, 4), (128, 16, 8, 4), (256, 16, 8, 2)], [128]
    else:
        h, w = input_shape[:2]
        channels = input_shape[2] if len(input_shape) == 3 else 1
        kind, size = "conv2d", [h, w]
        if min(h, w) >= 28:  # LeNet-5; pad the first conv of a 28x28 image as LeNet did
            layers, hidden = [(6, 5, 2 if min(h, w) < 32 else 0, 2), (16, 5, 0, 2)], [120, 84]
        else:
            layers, hidden = [(8, 3, 1, 2), (16, 3, 1, 2)], [64]
    convs = []
    for out, k, pad, pool in layers:
        k = min(k, min(size) + 2 * pad)  # never larger than the (padded) map
        size = [s + 2 * pad - k + 1 for s in size]
        pool = pool if min(size) >= pool else 1
        size = [s // pool for s in size]
        convs.append([out, k, pad, pool])
    flat = layers[-1][0] * math.prod(size)
    return {"kind": kind, "input_shape": list(input_shape), "in_channels": channels, "convs": convs,
            "hidden": hidden, "flat": flat, "n_outputs": 2}


class _ConvNet(nn.Module):
    """One member: flat float32 ``(n, n_features)`` -> logits ``(n, 2)``."""

    def __init__(self, arch: dict[str, Any]):
        super().__init__()
        self.arch = arch
        two_d = arch["kind"] == "conv2d"
        conv, pool = (nn.Conv2d, nn.MaxPool2d) if two_d else (nn.Conv1d, nn.MaxPool1d)
        feats: list[nn.Module] = []
        channels = arch["in_channels"]
        for out, k, pad, p in arch["convs"]:
            feats += [conv(channels, out, k, padding=pad), nn.ReLU()]
            if p > 1:
                feats.append(pool(p))
            channels = out
        self.features = nn.Sequential(*feats)
        head: list[nn.Module] = [nn.Flatten()]
        width = arch["flat"]
        for h in arch["hidden"]:
            head += [nn.Linear(width, h), nn.ReLU()]
            width = h
        head.append(nn.Linear(width, arch["n_outputs"]))
        self.classifier = nn.Sequential(*head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = self.arch["input_shape"]
        if self.arch["kind"] == "conv2d":
            h, w = shape[:2]
            x = x.reshape(-1, h, w, self.arch["in_channels"]).permute(0, 3, 1, 2)  # HWC -> CHW
        else:
            x = x.reshape(-1, 1, shape[0])
        return self.classifier(self.features(x))


class _SoftVote(nn.Module):
    """Ensemble as one module: ``log(mean_v softmax(member_v(x)))``, shape ``(n, 2)``.

    These are log-probabilities of the soft vote, so ``softmax`` of the output (and
    cross-entropy on it) is exactly the ensemble's soft-vote probability.
    """

    def __init__(self, members: list[nn.Module]):
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logp = torch.stack([torch.log_softmax(m(x), dim=1) for m in self.members])
        return torch.logsumexp(logp, dim=0) - math.log(len(self.members))


def _init_weights(module: nn.Module, generator: torch.Generator) -> None:
    """torch's default Conv/Linear initialisation, drawn from ``generator`` (CPU) in a fixed order."""
    for layer in module.modules():
        if isinstance(layer, (nn.Conv1d, nn.Conv2d, nn.Linear)):
            nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
            fan_in = layer.weight[0].numel()
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
            with torch.no_grad():
                layer.bias.uniform_(-bound, bound, generator=generator)


def _train_member(arch, X, y, seed, *, epochs, batch_size, lr, weight_decay, device, network=_ConvNet) -> nn.Module:
    """Train one ``network(arch)`` on ``X`` (float32 ``(n, d)`` tensor on ``device``) and ``y`` (int64 0/1).
    The network may draw training-time randomness (dropout) from its ``generator`` attribute,
    the member's seeded CPU generator."""
    generator = torch.Generator().manual_seed(seed)
    net = network(arch)
    net.generator = generator
    _init_weights(net, generator)
    net.to(device).train()
    opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=weight_decay)
    loss_fn = nn.CrossEntropyLoss()
    n = X.shape[0]
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator).to(device)
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            opt.zero_grad(set_to_none=True)
            loss_fn(net(X[idx]), y[idx]).backward()
            opt.step()
    return net.eval().requires_grad_(False)


def _member_seeds(seed: int, n: int) -> list[int]:
    """Independent 63-bit seeds for members ``0..n-1`` derived from ``(seed, v)``."""
    return [int(np.random.SeedSequence([seed, v]).generate_state(2, np.uint64)[0] >> np.uint64(1))
            for v in range(n)]


# --------------------------------------------------------------------------- estimator
class CNNEnsemble(_TorchDifferentiable, VoteOutputs, ClassifierMixin, BaseEstimator):
    """Ensemble of ``n_votes`` small CNNs trained independently with Adam (binary only).

    Parameters
    ----------
    n_votes : int, default=10
        Independently initialised and shuffled networks.  10 is the paper's ECG CNN ensemble;
        its CIFAR-10 LeNet votes 100 times (pass ``n_votes=100, voting="hard"`` for that).
    input_shape : tuple of int or None, default=None
        Shape of one sample before flattening: ``(H, W, C)`` (HWC order), ``(H, W)``
        (grayscale) or ``(L,)`` (1-D CNN).  ``None``: 3072 features -> ``(32, 32, 3)``,
        784 -> ``(28, 28, 1)``, 64 -> ``(8, 8, 1)``, anything else -> ``(n_features,)``.
    epochs : int, default=20
        Passes over the training set per member.
    batch_size : int, default=64
    learning_rate : float, default=1e-3
        Adam step size.
    weight_decay : float, default=0.0
        Adam's L2 penalty.
    voting : {"soft", "hard"}, default="soft"
        "soft": mean of the members' softmax; "hard": fraction of members predicting
        ``classes_[1]``.  Ties go to ``classes_[0]``.
    random_state : int, RandomState or None
        Member ``v`` is seeded by ``(seed_, v)``.
    device : str, default="auto"
        "auto" (first CUDA GPU, else CPU), "cpu", "cuda" or "cuda:N".
    verbose : int, default=0
        Print one line per trained member.

    Attributes
    ----------
    classes_ : ndarray of shape (2,)
    n_features_in_ : int
    input_shape_ : tuple of int
    architecture_ : dict
        JSON description of the network (see ``_architecture``).
    members_ : list of torch.nn.Module
        Trained members in eval mode, on ``device_``; each maps ``(n, n_features)`` float32
        to logits ``(n, 2)``.
    device_ : str
    seed_ : int
        Base seed actually used.
    fit_time_ : float
        Seconds spent training.
    """

    _parameter_constraints: dict = {
        "n_votes": [Interval(Integral, 1, None, closed="left")],
        "input_shape": [tuple, list, None],
        "epochs": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "voting": [StrOptions({"soft", "hard"})],
        "random_state": ["random_state"],
        "device": [str],
        "verbose": ["verbose"],
    }
    _per_member = ("members_",)
    _kind = _KIND
    _network = _ConvNet

    def _build_architecture(self, shape: tuple[int, ...]) -> dict[str, Any]:
        """The JSON architecture of the members for one sample of ``shape``."""
        return _architecture(shape)

    def __init__(
        self,
        *,
        n_votes: int = 10,
        input_shape: tuple[int, ...] | None = None,
        epochs: int = 20,
        batch_size: int = 64,
        learning_rate: float = 1e-3,
        weight_decay: float = 0.0,
        voting: str = "soft",
        random_state=None,
        device: str = "auto",
        verbose: int = 0,
    ):
        self.n_votes = n_votes
        self.input_shape = input_shape
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.voting = voting
        self.random_state = random_state
        self.device = device
        self.verbose = verbose

    # ------------------------------------------------------------------ fit
    @fit_or_keep
    def fit(self, X, y):
        """Train ``n_votes`` CNNs on ``X (n_samples, n_features)`` and binary ``y``."""
        self._validate_params()
        device = resolve_devices(self.device)[0]
        X, y = validate_data(self, X, y, dtype=np.float32, order="C")
        classes, y01 = binary_targets(y, type(self).__name__)
        shape = self._resolve_input_shape(X.shape[1])
        arch = self._build_architecture(shape)
        seed = base_seed(self.random_state)
        Xt = torch.from_numpy(X.copy()).to(device)
        yt = torch.from_numpy(y01).to(device)
        start = time.perf_counter()
        members = []
        for v, s in enumerate(_member_seeds(seed, self.n_votes)):
            members.append(_train_member(arch, Xt, yt, s, epochs=self.epochs, batch_size=self.batch_size,
                                         lr=self.learning_rate, weight_decay=self.weight_decay, device=device,
                                         network=type(self)._network))
            if self.verbose:
                print(f"{type(self).__name__}: member {v + 1}/{self.n_votes} trained "
                      f"({time.perf_counter() - start:.1f} s)", flush=True)
        self.fit_time_ = time.perf_counter() - start
        self.classes_ = classes
        self.input_shape_ = shape
        self.architecture_ = arch
        self.members_ = members
        self.device_ = str(device)
        self.seed_ = seed
        return self

    def _resolve_input_shape(self, n_features: int) -> tuple[int, ...]:
        if self.input_shape is None:
            return _default_input_shape(n_features)
        shape = tuple(self.input_shape)
        if not (1 <= len(shape) <= 3 and all(isinstance(s, Integral) and s >= 1 for s in shape)):
            raise ValueError(
                f"input_shape must be (L,), (H, W) or (H, W, C) with positive ints, got {self.input_shape!r}."
            )
        if math.prod(shape) != n_features:
            raise ValueError(f"input_shape={self.input_shape!r} holds {math.prod(shape)} values but X has "
                             f"{n_features} features; pass a matching shape or input_shape=None.")
        return tuple(int(s) for s in shape)

    # ------------------------------------------------------------------ torch access
    def torch_module(self, member: int | None = None) -> nn.Module:
        """Differentiable module: float32 ``(n, n_features)`` on ``device_`` -> ``(n, 2)``.

        ``member=i``: that member's logits.  ``member=None``: the log of the soft-vote
        probabilities, ``log(mean_v softmax(logits_v))``, so ``softmax`` of the output
        equals :meth:`predict_proba` with ``voting="soft"``.  The modules are the fitted
        ones (not copies), in eval mode with ``requires_grad=False`` on the weights.
        """
        member = self._checked_member(member)
        if member is not None:
            return self.members_[member]
        return _SoftVote(self.members_).eval()

    def _valid(self, X) -> np.ndarray:
        return validate_data(self, X, reset=False, dtype=np.float32, order="C")

    def _tensor(self, X) -> torch.Tensor:
        return torch.from_numpy(self._valid(X).copy()).to(self.device_)

    def _member_probs(self, X, member) -> np.ndarray:
        """Class-1 probability of every member ``(n_samples, n_members)``."""
        Xt = self._tensor(X)
        members = self.members_ if member is None else [self.members_[member]]
        with torch.no_grad():
            parts = [torch.stack([torch.softmax(m(Xt[i : i + _PREDICT_ROWS]).double(), 1)[:, 1] for m in members], 1)
                     for i in range(0, len(Xt), _PREDICT_ROWS)]
        return torch.cat(parts).cpu().numpy() if parts else np.zeros((0, len(members)))

    # ------------------------------------------------------------------ predict
    def _positive_fraction(self, X, member) -> np.ndarray:
        p = self._member_probs(X, member)
        if self.voting == "hard":
            return (p > 0.5).mean(axis=1)
        return p.mean(axis=1)

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike) -> None:
        """Save to ``path`` as a safe bundle (weights as arrays, architecture as JSON; atomic)."""
        check_is_fitted(self)
        arrays = {f"m{v}.{name}": value.detach().cpu().numpy()
                  for v, m in enumerate(self.members_) for name, value in m.state_dict().items()}
        save_estimator(path, self._kind, self, arrays, architecture=self.architecture_, n_members=len(self.members_))

    @classmethod
    def load(cls, path: str | os.PathLike, *, device: str | None = None) -> "CNNEnsemble":
        """Same as :func:`load`."""
        return load(path, device=device)


def load(path: str | os.PathLike, *, device: str | None = None) -> CNNEnsemble:
    """Load a ``CNNEnsemble`` written by :meth:`CNNEnsemble.save`; never unpickles.

    ``device`` overrides the saved ``device`` parameter (a GPU-trained model loads on a
    CPU-only machine with ``device="cpu"``; "auto" falls back to the CPU by itself).
    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` for a corrupt one.
    """
    return _from_file(read_model_file(path, _KIND), device=device)


def _from_file(file: ModelFile, *, device: str | None = None, cls: type = CNNEnsemble,
               tuples: tuple[str, ...] = ("input_shape",)) -> CNNEnsemble:
    """The ensemble of class ``cls`` in a model file read by :func:`scd.persist.read_model_file`
    (``tuples``: its parameters saved as lists that are tuples)."""
    meta, arrays, name = file.header, file.arrays, file.path
    est = rebuild(file, [cls], tuples=tuples, **({} if device is None else {"device": device}))
    try:
        arch = meta["architecture"]
        shape = tuple(arch["input_shape"])
        if not 1 <= len(shape) <= 3 or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in shape):
            raise ValueError(f"input_shape {list(shape)} is not 1 to 3 positive integers")
        if math.prod(shape) != est.n_features_in_:
            raise ValueError("the architecture does not match n_features_in")
        # only the networks this code builds: an edited architecture could allocate anything
        if arch != est._build_architecture(shape):
            raise ValueError("the architecture is not the one built for its input shape")
        with torch.device("meta"):  # the parameter shapes, without allocating them
            shapes = {k: tuple(v.shape) for k, v in cls._network(arch).state_dict().items()}
    except (KeyError, TypeError, ValueError, AttributeError, RuntimeError) as exc:
        raise ValueError(f"{name!r} has corrupt metadata: {type(exc).__name__}: {exc}") from None
    n_members = meta_number(meta, "n_members", file.where, low=1)
    if n_members != est.n_votes:
        raise ValueError(f"{name!r} is corrupt: it holds {n_members} members for n_votes={est.n_votes}.")
    if n_members * len(shapes) + 1 != len(arrays):
        raise ValueError(f"{name!r} is corrupt: {len(arrays)} arrays for {n_members} members.")
    expected = {f"m{v}.{k}": s for v in range(n_members) for k, s in shapes.items()}
    if set(arrays) != set(expected) | {"classes"}:
        raise ValueError(f"{name!r} is corrupt: its arrays do not match the saved architecture.")
    for key, s in expected.items():
        check_array(arrays, key, s, "f", file.where, finite=True)
    try:
        target = resolve_devices(est.device)[0]
    except ValueError as exc:
        raise ValueError(f"{exc} To load {name!r} here, pass load(path, device='cpu').") from None
    members = []
    for v in range(n_members):
        net = cls._network(arch)
        net.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(arrays[f"m{v}.{k}"], np.float32))
                             for k in shapes}, strict=True)
        members.append(net.to(target).eval().requires_grad_(False))
    est.input_shape_ = tuple(arch["input_shape"])
    est.architecture_ = arch
    est.members_ = members
    est.device_ = str(target)
    return est


register_loader(_KIND, _from_file)
