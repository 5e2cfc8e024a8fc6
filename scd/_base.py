"""The scikit-learn estimator around the SCD trainer.

``_BaseSCD`` owns validation, seeding, vote grouping, checkpoints, prediction and
persistence; the public classes in :mod:`scd.estimators` only fix the variant (output loss
and weight domain) and its defaults, like ``RandomForestClassifier`` over ``BaseForest``.
"""

from __future__ import annotations

import os
import time
import weakref
from typing import TYPE_CHECKING

import joblib
import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from ._checkpoint import CheckpointWriter, VoteStore, check_writable, fit_identity
from ._device import resolve_devices
from .resources import check_memory, fit_memory
from ._network import stack_units, unit_norms, vote_logits
from ._parallel import auto_group_size, fingerprint, run_groups
from ._params import PARAMS, VOTE_PARAMS, constraints, keyword_init
from ._train import TrainConfig, train_scores
from .ensemble import VoteOutputs, base_seed, binary_targets, fit_or_keep
from .persist import ModelFile, check_array, meta_number, read_model_file, rebuild, register_loader, save_estimator

if TYPE_CHECKING:
    from .lines import Segments

__all__ = ["_BaseSCD", "load"]

_MODEL_KIND = "scd-ensemble"
_WEIGHTS = ("W1", "b1", "w2", "b2")
_PREDICT_ELEMENTS = 1 << 24  # rows x votes x hidden units per prediction chunk


class _BaseSCD(VoteOutputs, ClassifierMixin, BaseEstimator):
    """Ensemble of single-hidden-layer sign networks trained by stochastic coordinate descent.

    Binary classifier: ``fit`` accepts any two class labels and raises ``ValueError`` for
    more.  See :class:`scd.SCDClassifier` for the parameters (:mod:`scd._params` lists them).
    """

    _parameter_constraints: dict = constraints(PARAMS)
    __init__ = keyword_init(PARAMS)
    _per_member = ("W1_", "b1_", "w2_", "b2_", "vote_scores_")

    # subclasses set these two, or override _variant()
    _loss = "01"
    _binary_weights = False

    # ------------------------------------------------------------------ variant
    def _variant(self) -> tuple[str, bool]:
        """``(loss, binary_weights)`` of this estimator."""
        return self._loss, self._binary_weights

    @property
    def voting_(self) -> str:
        """How the votes are combined, ``"hard"`` or ``"soft"``: the ``voting`` parameter with
        ``"auto"`` resolved (soft for the cross-entropy variants)."""
        if self.voting != "auto":
            return self.voting
        return "soft" if self._variant()[0] == "ce" else "hard"

    def _config(self) -> TrainConfig:
        loss, binary = self._variant()
        return TrainConfig(loss=loss, binary_weights=binary, **{name: getattr(self, name) for name in VOTE_PARAMS})

    # ------------------------------------------------------------------ fit
    @fit_or_keep
    def fit(self, X, y, *, resume: bool = False):
        """Train ``n_votes`` votes on ``X (n_samples, n_features)`` and binary ``y``.

        With ``checkpoint`` set, finished vote groups are saved there as they complete, and
        the state of the groups in flight every few hundred iterations; ``resume=True``
        continues from that file (same parameters, seed and data) instead of starting over,
        with the result of an uninterrupted fit.  Ctrl-C stops training and leaves the
        checkpoint in place.
        """
        self._validate_params()
        loss, _ = self._variant()
        if loss not in ("01", "ce"):
            raise ValueError(f"loss={loss!r} is not supported; use '01' or 'ce'.")
        devices = resolve_devices(self.device)
        if resume and self.checkpoint is None:
            raise ValueError("resume=True needs the checkpoint parameter set to a file path.")
        if self.checkpoint is not None:
            check_writable(self.checkpoint)
        X, y = validate_data(self, X, y, dtype=np.float32, order="C")
        classes, y01 = binary_targets(y, type(self).__name__)
        if not X.flags.writeable:
            X = X.copy()
        seed = base_seed(self.random_state)
        cfg = self._config()
        check_memory(fit_memory(self.n_votes, X.shape[0], X.shape[1], self.hidden_nodes), self.max_memory,
                     f"fitting {self.n_votes} votes of {self.hidden_nodes} hidden units on {X.shape[1]} features")
        state = VoteStore(self.n_votes, X.shape[1], self.hidden_nodes)
        prints = fingerprint(X, y01)
        if resume:
            seed = state.restore(self.checkpoint, fit_identity(self, seed, prints))
        gpu = devices[0].type == "cuda"
        workers = len(devices) if gpu else joblib.effective_n_jobs(self.n_jobs or 1)
        size = self.group_size or auto_group_size(self.n_votes, X.shape[0], X.shape[1], cfg, workers, gpu)
        groups = state.groups(size)
        writer = CheckpointWriter(state, self.checkpoint, fit_identity(self, seed, prints))
        resumed = state.done_count()
        start = time.perf_counter()
        with _progress(self.n_votes * self.n_iters, state.iterations_done(self.n_iters), self.verbose) as bar:
            try:
                run_groups(X, y01, groups, seed, cfg, devices, self.n_jobs, writer.group_done,
                           bar.update if self.verbose else None, [state.start_of(g) for g in groups],
                           None if self.checkpoint is None else writer.snapshot)
            except BaseException:  # Ctrl-C or a failure: keep the latest mid-vote state
                writer.flush()
                raise
        self.fit_time_ = time.perf_counter() - start
        self.n_votes_resumed_ = resumed
        self.classes_ = classes
        self.seed_ = seed
        for name in _WEIGHTS:
            setattr(self, f"{name}_", state.weights[name])
        self.W1_.flags.writeable = False
        # scored by the model's own (exact) predictions, which the training's cached float32
        # projections can miss by a few rows for the binary-weight variants
        pred = torch.from_numpy(np.ascontiguousarray((self._logits(X, None) > 0).T))
        self.vote_scores_ = train_scores(pred, torch.from_numpy(y01 == 1))[0].numpy()
        self.best_index_ = int(np.argmax(self.vote_scores_))
        return self

    # ------------------------------------------------------------------ predict
    def _logits(self, X, member: int | None) -> np.ndarray:
        """Vote logits ``(n_samples, n_votes)`` (or ``(n_samples, 1)`` for one member, which
        the caller has checked)."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float32, order="C")
        votes = slice(None) if member is None else slice(member, member + 1)
        units, norms = _stacked(self.W1_) if member is None else _stack(self.W1_[votes])
        weights = [units, norms, *(torch.from_numpy(getattr(self, f"{n}_")[votes]) for n in _WEIGHTS[1:])]
        V, H = self.b1_[votes].shape
        step = max(1, _PREDICT_ELEMENTS // (V * H))
        Xt = torch.from_numpy(X if X.flags.writeable else X.copy())
        with torch.no_grad():
            parts = [vote_logits(Xt[i : i + step], *weights) for i in range(0, len(Xt), step)]
        return torch.cat(parts).numpy() if parts else np.zeros((0, V))

    def _positive_fraction(self, X, member: int | None) -> np.ndarray:
        return self._vote_fraction(self._logits(X, member))

    def _vote_fraction(self, z: np.ndarray) -> np.ndarray:
        """The vote for ``classes_[1]`` from vote logits ``z (n_samples, n_votes)``."""
        if self.voting_ == "soft":
            return (1.0 / (1.0 + np.exp(-z))).mean(axis=1)
        return (z > 0).mean(axis=1)

    def segments(self, x0, x1, bounds) -> Segments:
        """Exact, cheap label queries along the segments ``x0[i] -> x1[i]`` inside the box
        ``bounds``: a :class:`scd.lines.Segments`, whose ``predict(a, rows)`` equals
        :meth:`predict` of the points a binary search forms (:func:`scd.lines.segment_points`)."""
        from .lines import Segments

        return Segments(self, x0, x1, bounds)

    def members(self, indices) -> "_BaseSCD":
        """As :meth:`VoteOutputs.members`: the votes ``indices`` in that order; the copy's
        ``best_index_`` is the best of its own votes."""
        sub = super().members(indices)
        sub.W1_.flags.writeable = False
        sub.best_index_ = int(np.argmax(sub.vote_scores_))
        return sub

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike) -> None:
        """Save the fitted ensemble to ``path`` (arrays + JSON, no pickle; atomic)."""
        check_is_fitted(self)
        arrays = {n: getattr(self, f"{n}_") for n in (*_WEIGHTS, "vote_scores")}
        save_estimator(path, _MODEL_KIND, self, arrays, n_votes_resumed=int(self.n_votes_resumed_),
                       best_index=int(self.best_index_))


def load(path: str | os.PathLike) -> _BaseSCD:
    """Load an ensemble saved with ``save``; never unpickles."""
    return _from_file(read_model_file(path, _MODEL_KIND))


def _from_file(file: ModelFile) -> _BaseSCD:
    """The SCD ensemble in a model file read by :func:`scd.persist.read_model_file`."""
    from . import estimators

    est = rebuild(file, [getattr(estimators, name) for name in estimators.__all__])
    where, arrays = file.where, file.arrays
    W1 = check_array(arrays, "W1", (est.n_votes, est.n_features_in_, est.hidden_nodes), "f", where, finite=True)
    V, _, H = W1.shape
    shapes = {"b1": (V, H), "w2": (V, H), "b2": (V,), "vote_scores": (V,)}
    for name, shape in shapes.items():
        check_array(arrays, name, shape, "f", where, finite=True)
    for name in _WEIGHTS:
        setattr(est, f"{name}_", np.ascontiguousarray(arrays[name], dtype=np.float32))
    est.W1_.flags.writeable = False
    est.vote_scores_ = arrays["vote_scores"]
    est.n_votes_resumed_ = meta_number(file.header, "n_votes_resumed", where, low=0, high=V, default=0)
    est.best_index_ = meta_number(file.header, "best_index", where, low=0, high=V - 1,
                                  default=int(np.argmax(est.vote_scores_)))
    return est


register_loader(_MODEL_KIND, _from_file)


_STACKED: dict[int, tuple[weakref.ref, tuple[torch.Tensor, torch.Tensor]]] = {}


def _stack(W1: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """The hidden units of ``W1 (V, d, H)`` in the prediction layout, with their norms."""
    units = stack_units(torch.tensor(W1))
    return units, unit_norms(units)


def _stacked(W1: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`_stack` of a fitted ``W1_``, computed once per read-only array (``fit`` and
    ``load`` make it read-only): the re-layout copies the whole ensemble, which would otherwise
    dominate small prediction calls (attacks make thousands).  Kept outside the estimator so
    that predicting leaves it unchanged; a writeable ``W1_`` is re-laid out on every call."""
    if W1.flags.writeable:  # someone may edit it in place: no caching
        return _stack(W1)
    key = id(W1)
    hit = _STACKED.get(key)
    if hit is not None and hit[0]() is W1:
        return hit[1]
    stacked = _stack(W1)
    _STACKED[key] = (weakref.ref(W1, lambda _, key=key: _STACKED.pop(key, None)), stacked)
    return stacked


class _progress:
    """A tqdm bar over vote-iterations when ``verbose`` is on, a no-op otherwise."""

    def __init__(self, total: int, initial: int, verbose: int):
        self.bar = None
        if verbose:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=initial, unit="vote-it", desc="SCD", smoothing=0.05)

    def update(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.close()
