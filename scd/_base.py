"""The scikit-learn estimator around the SCD trainer.

``_BaseSCD`` owns validation, seeding, vote grouping, checkpoints, prediction and
persistence; the public classes in :mod:`scd.estimators` only fix the variant (output loss
and weight domain) and its defaults, like ``RandomForestClassifier`` over ``BaseForest``.
"""

from __future__ import annotations

import os
import time
import weakref
from numbers import Integral, Real
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from ._device import resolve_devices
from ._members import VoteOutputs, binary_targets, fit_or_keep, member_indices
from ._network import stack_units, unit_norms, vote_logits
from ._parallel import auto_group_size, fingerprint, run_groups, split_groups
from ._persist import load_bundle, save_bundle
from ._train import TrainConfig, train_scores

__all__ = ["_BaseSCD", "load"]

_MODEL_KIND = "scd-ensemble"
_CHECKPOINT_KIND = "scd-checkpoint"
_WEIGHTS = ("W1", "b1", "w2", "b2")
_PREDICT_ELEMENTS = 1 << 24  # rows x votes x hidden units per prediction chunk


class _BaseSCD(VoteOutputs, ClassifierMixin, BaseEstimator):
    """Ensemble of single-hidden-layer sign networks trained by stochastic coordinate descent.

    Binary classifier: ``fit`` accepts any two class labels and raises ``ValueError`` for
    more.  See :class:`scd.SCDClassifier` for the parameters.
    """

    _parameter_constraints: dict = {
        "n_votes": [Interval(Integral, 1, None, closed="left")],
        "hidden_nodes": [Interval(Integral, 1, None, closed="left")],
        "n_iters": [Interval(Integral, 1, None, closed="left")],
        "nrows": [Interval(Real, 0, 1, closed="right")],
        "w_inc1": [Interval(Real, 0, None, closed="neither")],
        "w_inc2": [Interval(Real, 0, None, closed="neither")],
        "updated_features": [Interval(Integral, 1, None, closed="left")],
        "interval": [Interval(Integral, 1, None, closed="left")],
        "b_ratio": [Interval(Real, 0, 1, closed="both")],
        "voting": [StrOptions({"auto", "hard", "soft"})],
        "random_state": ["random_state"],
        "device": [str],
        "n_jobs": [Integral, None],
        "group_size": [Interval(Integral, 1, None, closed="left"), None],
        "checkpoint": [str, os.PathLike, None],
        "verbose": ["verbose"],
    }

    # subclasses set these two, or override _variant()
    _loss = "01"
    _binary_weights = False

    def __init__(
        self,
        *,
        n_votes: int = 100,
        hidden_nodes: int = 20,
        n_iters: int = 1000,
        nrows: float = 0.75,
        w_inc1: float = 0.17,
        w_inc2: float = 0.2,
        updated_features: int = 128,
        interval: int = 20,
        b_ratio: float = 0.2,
        voting: str = "auto",
        random_state=None,
        device: str = "auto",
        n_jobs: int | None = None,
        group_size: int | None = None,
        checkpoint: str | os.PathLike | None = None,
        verbose: int = 0,
    ):
        self.n_votes = n_votes
        self.hidden_nodes = hidden_nodes
        self.n_iters = n_iters
        self.nrows = nrows
        self.w_inc1 = w_inc1
        self.w_inc2 = w_inc2
        self.updated_features = updated_features
        self.interval = interval
        self.b_ratio = b_ratio
        self.voting = voting
        self.random_state = random_state
        self.device = device
        self.n_jobs = n_jobs
        self.group_size = group_size
        self.checkpoint = checkpoint
        self.verbose = verbose

    # ------------------------------------------------------------------ variant
    def _variant(self) -> tuple[str, bool]:
        """``(loss, binary_weights)`` of this estimator."""
        return self._loss, self._binary_weights

    def _voting(self) -> str:
        if self.voting != "auto":
            return self.voting
        return "soft" if self._variant()[0] == "ce" else "hard"

    def _config(self) -> TrainConfig:
        loss, binary = self._variant()
        return TrainConfig(
            loss=loss,
            binary_weights=binary,
            hidden_nodes=self.hidden_nodes,
            n_iters=self.n_iters,
            nrows=self.nrows,
            w_inc1=self.w_inc1,
            w_inc2=self.w_inc2,
            updated_features=self.updated_features,
            interval=self.interval,
            b_ratio=self.b_ratio,
        )

    # ------------------------------------------------------------------ fit
    @fit_or_keep
    def fit(self, X, y, *, resume: bool = False):
        """Train ``n_votes`` votes on ``X (n_samples, n_features)`` and binary ``y``.

        With ``checkpoint`` set, finished vote groups are saved there as they complete;
        ``resume=True`` continues from that file (same parameters, seed and data) instead of
        starting over.  Ctrl-C stops training and leaves the checkpoint in place.
        """
        self._validate_params()
        loss, _ = self._variant()
        if loss not in ("01", "ce"):
            raise ValueError(f"loss={loss!r} is not supported; use '01' or 'ce'.")
        devices = resolve_devices(self.device)
        if resume and self.checkpoint is None:
            raise ValueError("resume=True needs the checkpoint parameter set to a file path.")
        if self.checkpoint is not None:
            _check_writable(self.checkpoint)
        X, y = validate_data(self, X, y, dtype=np.float32, order="C")
        classes, y01 = binary_targets(y, type(self).__name__)
        if not X.flags.writeable:
            X = X.copy()
        seed = self._base_seed()
        cfg = self._config()
        state = _VoteStore(self.n_votes, X.shape[1], self.hidden_nodes)
        prints = fingerprint(X, y01)
        if resume:
            seed = state.restore(self.checkpoint, self._checkpoint_meta(seed, prints))
        gpu = devices[0].type == "cuda"
        workers = len(devices) if gpu else joblib.effective_n_jobs(self.n_jobs or 1)
        size = self.group_size or auto_group_size(self.n_votes, X.shape[0], X.shape[1], cfg, workers, gpu)
        groups = split_groups(state.missing(), size)
        meta = self._checkpoint_meta(seed, prints)

        def on_group(votes, arrays):
            state.add(votes, arrays)
            if self.checkpoint is not None:
                save_bundle(self.checkpoint, _CHECKPOINT_KIND, meta, state.arrays())

        resumed = state.done_count()
        start = time.perf_counter()
        with _progress(self.n_votes * self.n_iters, resumed * self.n_iters, self.verbose) as bar:
            run_groups(X, y01, groups, seed, cfg, devices, self.n_jobs, on_group,
                       bar.update if self.verbose else None)
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

    def _base_seed(self) -> int:
        if isinstance(self.random_state, Integral):
            return int(self.random_state)
        return int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))

    def _checkpoint_meta(self, seed: int, prints: str) -> dict[str, Any]:
        params = {k: v for k, v in _json_params(self.get_params()).items() if k in _TRAINING_PARAMS}
        return {"estimator": type(self).__name__, "variant": list(self._variant()), "params": params,
                "seed": seed, "data": prints}

    # ------------------------------------------------------------------ predict
    def _logits(self, X, member: int | None) -> np.ndarray:
        """Vote logits ``(n_samples, n_votes)`` (or ``(n_samples, 1)`` for one member)."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float32, order="C")
        votes = slice(None)
        if member is not None:
            if not isinstance(member, Integral) or not 0 <= member < self.W1_.shape[0]:
                raise ValueError(f"member must be an integer in [0, {self.W1_.shape[0]}), got {member!r}.")
            votes = slice(int(member), int(member) + 1)
        units, norms = _stacked(self.W1_) if member is None else _stack(self.W1_[votes])
        weights = [units, norms, *(torch.from_numpy(getattr(self, f"{n}_")[votes]) for n in _WEIGHTS[1:])]
        V, H = self.b1_[votes].shape
        step = max(1, _PREDICT_ELEMENTS // (V * H))
        Xt = torch.from_numpy(X if X.flags.writeable else X.copy())
        with torch.no_grad():
            parts = [vote_logits(Xt[i : i + step], *weights) for i in range(0, len(Xt), step)]
        return torch.cat(parts).numpy() if parts else np.zeros((0, V))

    def _positive_fraction(self, X, member: int | None) -> np.ndarray:
        z = self._logits(X, member)
        if self._voting() == "soft":
            return (1.0 / (1.0 + np.exp(-z))).mean(axis=1)
        return (z > 0).mean(axis=1)

    def members(self, indices) -> "_BaseSCD":
        """A fitted estimator holding the votes ``indices`` in that order (e.g. ``range(k)``: the
        first ``k`` votes, for robustness against ensemble size)."""
        check_is_fitted(self)
        idx = member_indices(indices, self.W1_.shape[0])
        sub = type(self)(**{**self.get_params(), "n_votes": len(idx)})
        for name in ("classes_", "n_features_in_", "seed_", "fit_time_", "n_votes_resumed_"):
            setattr(sub, name, getattr(self, name))
        for name in (*_WEIGHTS, "vote_scores"):
            setattr(sub, f"{name}_", getattr(self, f"{name}_")[idx].copy())
        sub.W1_.flags.writeable = False
        sub.best_index_ = int(np.argmax(sub.vote_scores_))
        return sub

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike) -> None:
        """Save the fitted ensemble to ``path`` (arrays + JSON, no pickle; atomic)."""
        check_is_fitted(self)
        meta = {
            "estimator": type(self).__name__,
            "params": _json_params({**self.get_params(), "n_votes": int(self.W1_.shape[0])}),
            "n_features_in": int(self.n_features_in_),
            "seed": int(self.seed_),
            "fit_time": float(self.fit_time_),
            "n_votes_resumed": int(self.n_votes_resumed_),
            "best_index": int(self.best_index_),
        }
        arrays = {n: getattr(self, f"{n}_") for n in _WEIGHTS}
        arrays.update(vote_scores=self.vote_scores_, classes=self.classes_)
        save_bundle(path, _MODEL_KIND, meta, arrays)


_TRAINING_PARAMS = (
    "n_votes", "hidden_nodes", "n_iters", "nrows", "w_inc1", "w_inc2", "updated_features",
    "interval", "b_ratio", "random_state",
)


def _check_writable(path: str | os.PathLike) -> None:
    """Refuse a checkpoint path that cannot be written before any training is spent on it."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"checkpoint {os.fspath(path)!r} is a directory; give a file path.")
    folder = path.parent
    while not folder.exists():
        folder = folder.parent
    if not (folder.is_dir() and os.access(folder, os.W_OK | os.X_OK)):
        raise ValueError(f"checkpoint {os.fspath(path)!r} cannot be written: {os.fspath(folder)!r} is not a "
                         "writable folder.")


def _json_params(params: dict[str, Any]) -> dict[str, Any]:
    """Parameters as JSON values (random_state objects and paths become their string form)."""
    out = {}
    for key, value in params.items():
        if isinstance(value, (np.integer, np.floating)):
            value = value.item()
        if not (value is None or isinstance(value, (bool, int, float, str))):
            value = None if key == "random_state" else os.fspath(value) if isinstance(value, os.PathLike) else str(value)
        out[key] = value
    return out


def load(path: str | os.PathLike) -> _BaseSCD:
    """Load an ensemble saved with ``save``; never unpickles."""
    from . import estimators

    meta, arrays = load_bundle(path, _MODEL_KIND)
    cls = getattr(estimators, meta.get("estimator", ""), None)
    if not (isinstance(cls, type) and issubclass(cls, _BaseSCD)):
        raise ValueError(f"{os.fspath(path)!r} names an unknown estimator {meta.get('estimator')!r}")
    missing = {*_WEIGHTS, "vote_scores", "classes"} - arrays.keys()
    if missing:
        raise ValueError(f"{os.fspath(path)!r} is incomplete: missing arrays {sorted(missing)}")
    est = cls(**{k: v for k, v in meta["params"].items() if k in cls().get_params()})
    V, d, H = arrays["W1"].shape
    shapes = {"b1": (V, H), "w2": (V, H), "b2": (V,), "vote_scores": (V,), "classes": (2,)}
    for name, shape in shapes.items():
        if arrays[name].shape != shape:
            raise ValueError(f"{os.fspath(path)!r} is corrupt: {name} has shape {arrays[name].shape}, expected {shape}")
    if d != meta.get("n_features_in"):
        raise ValueError(f"{os.fspath(path)!r} is corrupt: W1 has {d} features, metadata says {meta.get('n_features_in')}")
    for name in _WEIGHTS:
        setattr(est, f"{name}_", np.ascontiguousarray(arrays[name], dtype=np.float32))
    est.W1_.flags.writeable = False
    est.vote_scores_ = arrays["vote_scores"]
    est.classes_ = arrays["classes"]
    est.n_features_in_ = d
    est.seed_ = int(meta["seed"])
    est.fit_time_ = float(meta.get("fit_time", 0.0))
    est.n_votes_resumed_ = int(meta.get("n_votes_resumed", 0))
    est.best_index_ = int(meta.get("best_index", int(np.argmax(est.vote_scores_))))
    return est


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


class _VoteStore:
    """Trained votes collected group by group (and restored from a checkpoint)."""

    def __init__(self, n_votes: int, d: int, H: int):
        self.n_votes = n_votes
        self.weights = {
            "W1": np.zeros((n_votes, d, H), np.float32),
            "b1": np.zeros((n_votes, H), np.float32),
            "w2": np.zeros((n_votes, H), np.float32),
            "b2": np.zeros(n_votes, np.float32),
        }
        self.done = np.zeros(n_votes, bool)

    def add(self, votes: list[int], arrays: dict[str, np.ndarray]) -> None:
        for name, value in arrays.items():
            self.weights[name][votes] = value
        self.done[votes] = True

    def missing(self) -> list[int]:
        return [int(v) for v in np.flatnonzero(~self.done)]

    def done_count(self) -> int:
        return int(self.done.sum())

    def arrays(self) -> dict[str, np.ndarray]:
        return {**self.weights, "done": self.done}

    def restore(self, path, expected: dict[str, Any]) -> int:
        """Load finished votes from checkpoint ``path``; returns the seed it was trained with
        (for ``random_state=None`` the checkpoint's drawn seed is kept)."""
        if not os.path.exists(path):
            return expected["seed"]
        meta, arrays = load_bundle(path, _CHECKPOINT_KIND)
        differ = [k for k in ("estimator", "variant", "params", "data") if meta.get(k) != expected[k]]
        if differ:
            raise ValueError(f"checkpoint {os.fspath(path)!r} does not match this fit ({', '.join(differ)} "
                             "differ); delete it or fit without resume.")
        for name in self.weights:
            if arrays[name].shape != self.weights[name].shape:
                raise ValueError(f"checkpoint {os.fspath(path)!r} is corrupt: {name} has shape {arrays[name].shape}")
            self.weights[name][...] = arrays[name]
        self.done[...] = arrays["done"]
        return int(meta["seed"])


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
