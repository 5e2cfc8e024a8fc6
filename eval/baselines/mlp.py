"""The MLP baseline of the paper: an ensemble of scikit-learn ``MLPClassifier`` members.

Reference: ``binary/train_mlp_major_.py`` trains ``round`` members
``MLPClassifier((20,), activation='logistic', solver='sgd', alpha=1e-4, batch_size='auto',
learning_rate='constant', learning_rate_init=0.01, max_iter=1000, shuffle=True,
random_state=i, tol=1e-4, momentum=0.9, nesterovs_momentum=True, n_iter_no_change=10)``
and combines them in ``VotingClassifier(voting='soft')`` (mean ``predict_proba``).

Differences from the reference: member ``i`` is seeded from ``(random_state, i)`` through
``numpy.random.SeedSequence`` instead of ``random_state=i``, so two ensembles with
different seeds share no member; ``voting='hard'`` (a majority of member labels) is offered
as well; members are trained on 0/1 targets, so any two labels work.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from numbers import Integral

import joblib
import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from scd.ensemble import base_seed, binary_targets, fit_or_keep
from scd.persist import ModelFile, check_array, read_model_file, rebuild, register_loader, save_estimator
from scd.resources import check_memory, network_memory

from ._common import _TorchDifferentiable, _VotingBaseline, member_seeds

__all__ = ["MLPEnsemble", "load"]

_KIND = "baseline-mlp"
# MLPClassifier parameters every member receives, checked by MLPClassifier's own constraints
_MLP_PARAMS = (
    "hidden_layer_sizes", "activation", "solver", "alpha", "batch_size", "learning_rate",
    "learning_rate_init", "max_iter", "shuffle", "tol", "momentum", "nesterovs_momentum",
    "n_iter_no_change",
)


class MLPEnsemble(_TorchDifferentiable, _VotingBaseline):
    """Ensemble of ``n_votes`` one-hidden-layer MLPs (the paper's MLP baseline).

    Binary classifier: ``fit`` accepts any two labels and raises ``ValueError`` otherwise.

    Parameters
    ----------
    n_votes : int, default=100
        Number of members (``round`` in the reference).
    hidden_layer_sizes, activation, solver, alpha, batch_size, learning_rate, \
learning_rate_init, max_iter, shuffle, tol, momentum, nesterovs_momentum, n_iter_no_change
        Passed to every :class:`~sklearn.neural_network.MLPClassifier`; the defaults are the
        reference's (``batch_size="auto"`` is ``min(200, n_samples)``).
    voting : {"soft", "hard"}, default="soft"
        "soft": mean member probability of ``classes_[1]`` (the reference's
        ``VotingClassifier``); "hard": fraction of members predicting ``classes_[1]``.
        A probability of exactly 0.5 predicts ``classes_[0]``.
    random_state : int, RandomState or None
        Member ``i`` is seeded from ``(seed, i)``; an int gives the same ensemble on every run
        and for any ``n_jobs``.
    n_jobs : int or None
        Members trained in parallel with joblib (honours ``joblib.parallel_config``).
    warm_start : bool, default=False
        Like scikit-learn's forests: when fitted already, ``fit`` keeps the existing members
        and trains only members ``len(estimators_) .. n_votes-1``, with the seeds a fresh fit
        would give them (so growing 20 members to 100 equals fitting 100).  It must see the
        same data; only the feature count and labels are checked.

    Attributes
    ----------
    estimators_ : list of MLPClassifier
        The fitted members, trained on 0/1 targets (1 = ``classes_[1]``).
    classes_ : ndarray of shape (2,)
    n_features_in_ : int
    seed_ : int
        Base seed actually used.
    member_seeds_ : ndarray of shape (n_votes,)
        ``random_state`` of each member.
    n_iter_ : ndarray of shape (n_votes,)
        Epochs each member ran; members that reached ``max_iter`` did not converge (one
        summary ``ConvergenceWarning`` is issued for them, not one per member).
    fit_time_ : float
        Seconds spent training.

    Notes
    -----
    The ensemble is differentiable: :meth:`torch_module` is its forward pass in torch, built
    from the fitted weights, and :meth:`logits`, :meth:`loss_gradient` and
    :meth:`logits_gradient` are that module's outputs and exact input gradients, so every
    gradient attack runs on it white-box.
    """

    _parameter_constraints: dict = {
        "n_votes": [Interval(Integral, 1, None, closed="left")],
        **{name: MLPClassifier._parameter_constraints[name] for name in _MLP_PARAMS},
        "voting": [StrOptions({"soft", "hard"})],
        "random_state": ["random_state"],
        "n_jobs": [Integral, None],
        "warm_start": ["boolean"],
    }
    _dtype = (np.float64, np.float32)
    _per_member = ("estimators_", "member_seeds_", "n_iter_")

    def __init__(
        self,
        *,
        n_votes: int = 100,
        hidden_layer_sizes: tuple[int, ...] = (20,),
        activation: str = "logistic",
        solver: str = "sgd",
        alpha: float = 1e-4,
        batch_size: int | str = "auto",
        learning_rate: str = "constant",
        learning_rate_init: float = 0.01,
        max_iter: int = 1000,
        shuffle: bool = True,
        tol: float = 1e-4,
        momentum: float = 0.9,
        nesterovs_momentum: bool = True,
        n_iter_no_change: int = 10,
        voting: str = "soft",
        random_state=None,
        n_jobs: int | None = None,
        warm_start: bool = False,
    ):
        self.n_votes = n_votes
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.tol = tol
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.n_iter_no_change = n_iter_no_change
        self.voting = voting
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.warm_start = warm_start

    def _mlp_params(self) -> dict:
        return {name: getattr(self, name) for name in _MLP_PARAMS}

    @fit_or_keep
    def fit(self, X, y) -> "MLPEnsemble":
        """Train ``n_votes`` members on ``X (n_samples, n_features)`` and binary ``y``."""
        self._validate_params()
        kept = self._warm_members()
        X, y = validate_data(self, X, y, dtype=(np.float64, np.float32), reset=not kept)
        hidden = self.hidden_layer_sizes
        layers = [X.shape[1], *(hidden if np.iterable(hidden) else [hidden]), 1]
        check_memory(network_memory(self.n_votes, layers, X.dtype.itemsize), None,
                     f"fitting {self.n_votes} MLPs of layers {layers}")
        classes, y01 = binary_targets(y, type(self).__name__)
        if kept and not np.array_equal(classes, self.classes_):
            raise ValueError(f"warm_start: y has classes {classes.tolist()}, the fitted members "
                             f"{self.classes_.tolist()}.")
        seed = self.seed_ if kept else base_seed(self.random_state)
        seeds = member_seeds(seed, self.n_votes)
        start = time.perf_counter()
        members = joblib.Parallel(n_jobs=self.n_jobs)(
            joblib.delayed(_fit_member)(X, y01, self._mlp_params(), int(s)) for s in seeds[len(kept):]
        )
        self.fit_time_ = time.perf_counter() - start + (self.fit_time_ if kept else 0.0)
        self.estimators_ = kept + list(members)
        self.classes_ = classes
        self.seed_ = seed
        self.member_seeds_ = seeds
        self.n_iter_ = np.array([m.n_iter_ for m in self.estimators_], dtype=np.int64)
        _warn_unconverged(self.n_iter_, self.max_iter)
        return self

    def _warm_members(self) -> list:
        """The members ``fit`` keeps: all of them under ``warm_start`` (none otherwise)."""
        if not (self.warm_start and hasattr(self, "estimators_")):
            return []
        if len(self.estimators_) > self.n_votes:
            raise ValueError(f"warm_start: n_votes={self.n_votes} is fewer than the {len(self.estimators_)} members "
                             "already fitted.")
        return list(self.estimators_)

    def _member_positive(self, X: np.ndarray, index: int) -> np.ndarray:
        return _stacked_positive([self.estimators_[index]], X)[:, 0]

    def _positive_fraction(self, X, member: int | None) -> np.ndarray:
        """As the base class, but the whole ensemble runs as one stacked forward pass (one
        matrix product for every member's first layer) instead of a scikit-learn call per
        member: the attacks query 100-member ensembles millions of times."""
        if member is not None:
            return super()._positive_fraction(X, member)
        X = validate_data(self, X, reset=False, dtype=self._dtype)
        if not len(X):
            return np.zeros(0)
        p = np.concatenate([_stacked_positive(self.estimators_, X[i:i + _STACK_ROWS])
                            for i in range(0, len(X), _STACK_ROWS)])
        return p.mean(axis=1) if self.voting == "soft" else (p > 0.5).mean(axis=1)

    def torch_module(self, member: int | None = None) -> torch.nn.Module:
        """The fitted forward pass as a torch module: ``(n, n_features) -> (n, 2)`` logits.

        The logits are ``[log(1 - p), log(p)]``, where ``p`` is the mean member probability
        of ``classes_[1]`` (``member=i``: member ``i``'s), so ``softmax`` of the output is
        :meth:`predict_proba` with ``voting="soft"``, and the difference of the two logits is
        the log-odds of ``p``.  With ``voting="hard"`` the ensemble's output, the fraction of
        members voting for ``classes_[1]``, is piecewise constant (its gradient is zero almost
        everywhere), so the module is the soft vote of the same members: attacks follow its
        gradient, while labels and success still come from the hard vote (``predict``).
        The module holds copies of the weights as buffers in their fitted dtype, in eval mode.
        """
        check_is_fitted(self)
        member = self._checked_member(member)
        members = self.estimators_ if member is None else [self.estimators_[member]]
        return _TorchMLPVote(members).eval()

    def _valid(self, X) -> np.ndarray:
        return validate_data(self, X, reset=False, dtype=self._dtype, order="C")

    def save(self, path: str | os.PathLike) -> None:
        """Save the fitted ensemble to ``path``: weights as arrays plus JSON, no pickle."""
        check_is_fitted(self)
        arrays = {"member_seeds": self.member_seeds_, "n_iter": self.n_iter_}
        for j in range(len(self.estimators_[0].coefs_)):
            arrays[f"coefs_{j}"] = np.stack([m.coefs_[j] for m in self.estimators_])
            arrays[f"intercepts_{j}"] = np.stack([m.intercepts_[j] for m in self.estimators_])
        save_estimator(path, _KIND, self, arrays)


_STACK_ROWS = 4096
_ACTIVATIONS = {"identity": lambda z: z, "logistic": lambda z: 1.0 / (1.0 + np.exp(-z)), "tanh": np.tanh,
                "relu": lambda z: np.maximum(z, 0)}


def _stacked_positive(members: list, X: np.ndarray) -> np.ndarray:
    """Every member's probability of class 1 for ``X``: ``(n, V)``, the forward pass of
    scikit-learn's ``MLPClassifier`` (hidden ``activation``, logistic output unit; equal to its
    ``predict_proba`` to float rounding) with the members' first layers side by side and the
    later ones batched over members."""
    V = len(members)
    act = _ACTIVATIONS[members[0].activation]
    first = np.concatenate([m.coefs_[0] for m in members], axis=1)
    h = X.astype(first.dtype, copy=False) @ first + np.concatenate([m.intercepts_[0] for m in members])
    if members[0].n_layers_ > 2:  # otherwise (no hidden layer) that was the output unit
        h = act(h)
    h = h.reshape(len(X), V, -1)
    for layer in range(1, members[0].n_layers_ - 1):
        W = np.stack([m.coefs_[layer] for m in members])
        b = np.stack([m.intercepts_[layer] for m in members])
        z = np.einsum("nvh,vhk->nvk", h, W) + b
        h = z if layer == members[0].n_layers_ - 2 else act(z)
    return _ACTIVATIONS["logistic"](h[:, :, 0]).astype(np.float64)


_TORCH_ACTIVATIONS = {"identity": lambda z: z, "logistic": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu}


class _TorchMLPVote(torch.nn.Module):
    """The soft vote of fitted ``MLPClassifier`` members (binary, one logistic output unit) in
    torch, with the forward pass of :func:`_stacked_positive`: ``(n, d) -> (n, 2)`` logits
    ``[log(1 - p), log(p)]``, ``p`` the mean member probability, computed in log space
    (``logsumexp`` of each member's ``logsigmoid``) so neither logit underflows."""

    def __init__(self, members: list):
        super().__init__()
        self.activation = members[0].activation
        for j in range(len(members[0].coefs_)):
            self.register_buffer(f"W{j}", torch.from_numpy(np.stack([m.coefs_[j] for m in members])))
            self.register_buffer(f"b{j}", torch.from_numpy(np.stack([m.intercepts_[j] for m in members])))
        self.n_layers = len(members[0].coefs_)

    def member_outputs(self, x: torch.Tensor) -> torch.Tensor:
        """Each member's output unit before its sigmoid, ``(n, V)``."""
        act = _TORCH_ACTIVATIONS[self.activation]
        h = x.to(self.W0.dtype).unsqueeze(0)  # (1, n, d), broadcast over the V members
        for j in range(self.n_layers):
            h = torch.matmul(h, getattr(self, f"W{j}")) + getattr(self, f"b{j}").unsqueeze(1)
            if j < self.n_layers - 1:
                h = act(h)
        return h[:, :, 0].T

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.member_outputs(x)
        log_v = math.log(z.shape[1])
        log_p = torch.logsumexp(torch.nn.functional.logsigmoid(z), dim=1) - log_v
        log_q = torch.logsumexp(torch.nn.functional.logsigmoid(-z), dim=1) - log_v
        return torch.stack([log_q, log_p], dim=1)


def _fit_member(X: np.ndarray, y01: np.ndarray, params: dict, seed: int) -> MLPClassifier:
    """One member on validated data; its convergence warning is left to the caller's summary."""
    mlp = MLPClassifier(**params, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return mlp.fit(X, y01)


def _warn_unconverged(n_iter: np.ndarray, max_iter: int) -> None:
    """One ``ConvergenceWarning`` for all members that stopped at ``max_iter``."""
    stuck = int(np.sum(n_iter >= max_iter))
    if stuck:
        warnings.warn(
            f"{stuck} of {len(n_iter)} MLP members reached max_iter={max_iter} without converging; "
            "increase max_iter if that matters.", ConvergenceWarning, stacklevel=3,
        )


def load(path: str | os.PathLike) -> MLPEnsemble:
    """Load an :class:`MLPEnsemble` saved with ``save``; checks every array and never unpickles."""
    return _from_file(read_model_file(path, _KIND))


def _from_file(file: ModelFile) -> MLPEnsemble:
    """The ensemble in a model file read by :func:`scd.persist.read_model_file`."""
    where, arrays = file.where, file.arrays
    est = rebuild(file, [MLPEnsemble], tuples=("hidden_layer_sizes",))
    d = est.n_features_in_
    V = est.n_votes
    hidden = est.hidden_layer_sizes
    sizes = [d, *(hidden if np.iterable(hidden) else [hidden]), 1]
    coefs, intercepts = [], []
    for j, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        coefs.append(check_array(arrays, f"coefs_{j}", (V, fan_in, fan_out), "f", where, finite=True))
        intercepts.append(check_array(arrays, f"intercepts_{j}", (V, fan_out), "f", where, finite=True))
    if len({a.dtype for a in coefs + intercepts}) != 1 or f"coefs_{len(coefs)}" in arrays:
        raise ValueError(f"{where} is corrupt: its layers do not match hidden_layer_sizes and one dtype")
    est.member_seeds_ = check_array(arrays, "member_seeds", (V,), "iu", where)
    est.n_iter_ = check_array(arrays, "n_iter", (V,), "iu", where)
    est.estimators_ = [
        _fitted_member(est, [c[v] for c in coefs], [b[v] for b in intercepts], int(est.member_seeds_[v]),
                       int(est.n_iter_[v]))
        for v in range(V)
    ]
    return est


register_loader(_KIND, _from_file)


def _fitted_member(est: MLPEnsemble, coefs: list, intercepts: list, seed: int, n_iter: int) -> MLPClassifier:
    """An ``MLPClassifier`` in the state ``fit`` leaves it in, as far as prediction reads it."""
    mlp = MLPClassifier(**est._mlp_params(), random_state=seed)
    mlp.coefs_ = [np.ascontiguousarray(c) for c in coefs]
    mlp.intercepts_ = [np.ascontiguousarray(b) for b in intercepts]
    mlp.n_features_in_ = coefs[0].shape[0]
    mlp.n_layers_ = len(coefs) + 1
    mlp.n_outputs_ = 1
    mlp.n_iter_ = n_iter
    mlp.out_activation_ = "logistic"
    mlp._label_binarizer = LabelBinarizer().fit(np.array([0, 1], dtype=np.int64))
    mlp.classes_ = mlp._label_binarizer.classes_
    return mlp
