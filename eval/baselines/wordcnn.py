"""WordCNN (Kim 2014): the paper's convolutional baseline for text, as an ensemble in torch.

A member reads one document as its matrix of word vectors ``(length, dim)`` (flattened to
``length * dim`` features, row-major: :meth:`eval.datasets.text.TextDataset.word_matrices`),
convolves it with ``filters`` kernels of each width in ``widths`` spanning whole word vectors,
takes ReLU and the maximum over positions, applies dropout while training and maps the
concatenated maxima to two logits: Kim's CNN-static (the vectors are inputs, not trained),
with Adam instead of Adadelta and without the max-norm constraint.  Training, voting, the
seeding (dropout masks too come from the member's generator), gradients and the safe model file
(kind ``"baseline-wordcnn"``) are :class:`~eval.baselines.cnn.CNNEnsemble`'s.
"""

from __future__ import annotations

import os
from numbers import Integral, Real
from typing import Any, ClassVar

import torch
from sklearn.utils._param_validation import Interval
from torch import nn

from scd.persist import ModelFile, read_model_file, register_loader

from .cnn import CNNEnsemble, _from_file

__all__ = ["WordCNNEnsemble", "load"]

_KIND = "baseline-wordcnn"


class _KimNet(nn.Module):
    """One member: flat float32 ``(n, length * dim)`` -> logits ``(n, 2)``."""

    def __init__(self, arch: dict[str, Any]):
        super().__init__()
        self.arch = arch
        dim = arch["input_shape"][1]
        self.convs = nn.ModuleList(nn.Conv1d(dim, arch["filters"], k) for k in arch["widths"])
        self.output = nn.Linear(arch["filters"] * len(arch["widths"]), arch["n_outputs"])
        self.generator: torch.Generator | None = None  # set while training: the dropout masks' source

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        length, dim = self.arch["input_shape"]
        words = x.reshape(-1, length, dim).transpose(1, 2)  # (n, dim, length): channels are vector components
        pooled = torch.cat([torch.relu(conv(words)).amax(dim=2) for conv in self.convs], dim=1)
        p = self.arch["dropout"]
        if self.training and p > 0:
            keep = torch.rand(pooled.shape, generator=self.generator).to(pooled.device) >= p
            pooled = pooled * keep / (1 - p)
        return self.output(pooled)


class WordCNNEnsemble(CNNEnsemble):
    """Ensemble of ``n_votes`` Kim (2014) CNNs over stacked word vectors (binary only).

    Parameters
    ----------
    n_votes : int, default=8
        Independently initialised, shuffled and dropped-out networks (the paper's Table 7: 8).
    input_shape : (int, int)
        ``(length, dim)``: words per document and values per word vector; required.
    filters : int, default=100
        Kernels per width (Kim: 100).
    widths : tuple of int, default=(3, 4, 5)
        Kernel widths in words (Kim: 3, 4, 5); a width longer than ``length`` is shortened to it.
    dropout : float, default=0.5
        Dropout rate on the pooled features while training (Kim: 0.5).
    epochs : int, default=10
    batch_size : int, default=50
        (Kim: 50.)
    learning_rate, weight_decay, voting, random_state, device, verbose
        As for :class:`~eval.baselines.cnn.CNNEnsemble`.
    """

    _parameter_constraints: ClassVar[dict] = {
        **CNNEnsemble._parameter_constraints,
        "filters": [Interval(Integral, 1, None, closed="left")],
        "widths": [tuple, list],
        "dropout": [Interval(Real, 0, 1, closed="left")],
    }
    _kind = _KIND
    _network = _KimNet

    def __init__(
        self,
        *,
        n_votes: int = 8,
        input_shape: tuple[int, int] | None = None,
        filters: int = 100,
        widths: tuple[int, ...] = (3, 4, 5),
        dropout: float = 0.5,
        epochs: int = 10,
        batch_size: int = 50,
        learning_rate: float = 1e-3,
        weight_decay: float = 0.0,
        voting: str = "soft",
        random_state=None,
        device: str = "auto",
        verbose: int = 0,
    ):
        super().__init__(n_votes=n_votes, input_shape=input_shape, epochs=epochs, batch_size=batch_size,
                         learning_rate=learning_rate, weight_decay=weight_decay, voting=voting,
                         random_state=random_state, device=device, verbose=verbose)
        self.filters = filters
        self.widths = widths
        self.dropout = dropout

    def _resolve_input_shape(self, n_features: int) -> tuple[int, ...]:
        if self.input_shape is None or len(tuple(self.input_shape)) != 2:
            raise ValueError(f"WordCNNEnsemble needs input_shape=(length, dim), got {self.input_shape!r}.")
        return super()._resolve_input_shape(n_features)

    def _build_architecture(self, shape: tuple[int, ...]) -> dict[str, Any]:
        widths = [int(w) for w in self.widths]
        if not widths or any(isinstance(w, bool) or w < 1 for w in widths):
            raise ValueError(f"widths must be positive integers, got {self.widths!r}.")
        return {"kind": "kim", "input_shape": list(shape), "filters": int(self.filters),
                "widths": [min(w, shape[0]) for w in widths], "dropout": float(self.dropout), "n_outputs": 2}

    @classmethod
    def load(cls, path: str | os.PathLike, *, device: str | None = None) -> WordCNNEnsemble:
        """Same as :func:`load`."""
        return load(path, device=device)


def load(path: str | os.PathLike, *, device: str | None = None) -> WordCNNEnsemble:
    """Load a ``WordCNNEnsemble`` written by its ``save``; never unpickles (see
    :func:`eval.baselines.cnn.load`)."""
    return _load_file(read_model_file(path, _KIND), device=device)


def _load_file(file: ModelFile, *, device: str | None = None) -> WordCNNEnsemble:
    return _from_file(file, device=device, cls=WordCNNEnsemble, tuples=("input_shape", "widths"))


register_loader(_KIND, _load_file)
