"""Ensemble of larq binarized networks: the paper's BNN baseline (TensorFlow + larq).

Each member is the reference's network (``binary/train_binarynn.py``)::

    QuantDense(H, kernel_quantizer="ste_sign", kernel_constraint="weight_clip")   # real inputs, bias
    BatchNormalization(momentum=0.9, scale=False)
    QuantDense(2, input_quantizer=<input_quantizer>, kernel_quantizer="ste_sign",
               kernel_constraint="weight_clip", use_bias=False)                    # +-1 hidden units
    Activation("softmax")

trained with Adam and categorical cross-entropy; the ensemble predicts
``round(mean_v argmax_v)`` with ties going to ``classes_[0]`` (``core/bnn.py``).

Differences from the reference implementation
---------------------------------------------
- ``input_quantizer`` is a parameter.  The reference code says ``"ste_sign"`` but the paper
  and the checkpoint name (``cifar10_mlpbnn_approx``) say ``"approx_sign"``, the default here.
- The reference seeds nothing.  Here member ``v`` gets three seeds derived from
  ``(seed_, v)``: one per ``GlorotUniform`` kernel initializer and one for a numpy
  generator that draws every epoch's shuffling order.  No global seed (numpy, Python,
  TF) is touched, and an int ``random_state`` reproduces the weights exactly on CPU.
- Training is a small ``tf.function`` loop (one Adam step per mini-batch, partial last
  batch kept), the same computation as ``model.fit(shuffle=True)`` without Keras' callbacks
  and metrics.

TensorFlow and larq are imported only inside the functions that use them, so importing
this module stays cheap.  Install them with the ``bnn`` extra
(``tensorflow-cpu==2.15.1``, ``larq==0.14.0``; larq needs Keras 2, i.e. TF <= 2.15).

Model files are :mod:`scd.persist` files of format ``scd-keras-bundle``: ``manifest.json``,
``classes.npy`` and one Keras ``.keras`` file per member, written atomically; :func:`load`
reads the members with ``safe_mode=True`` (no Python lambdas) and checks the layer structure.
"""

from __future__ import annotations

import io
import json
import math
import os
import tempfile
import time
from numbers import Integral, Real
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from scd.ensemble import VoteOutputs, base_seed, binary_targets, fit_or_keep
from scd.files import ZIP_READ_ERRORS
from scd.persist import KERAS_FORMAT, ModelFile, read_model_file, read_zip, rebuild, register_loader, save_estimator
from scd.resources import check_memory, network_memory

from ._common import label_indices

__all__ = ["BNNEnsemble", "load"]

_KIND = "baseline-bnn"
_QUANTIZERS = ("approx_sign", "ste_sign", "swish_sign")
_PREDICT_ROWS = 8192


# --------------------------------------------------------------------------- TF helpers
def _tf():
    """``(tensorflow, larq)``, imported on first use."""
    try:
        import larq
        import tensorflow as tf
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "BNNEnsemble needs TensorFlow and larq: pip install 'tensorflow-cpu==2.15.1' 'larq==0.14.0' "
            f"(or the scd 'bnn' extra). Import failed with: {exc}"
        ) from exc
    return tf, larq


def _custom_objects() -> dict[str, Any]:
    """The larq classes a saved member may reference (passed to ``load_model``)."""
    _, lq = _tf()
    return {
        "QuantDense": lq.layers.QuantDense,
        "SteSign": lq.quantizers.SteSign,
        "ApproxSign": lq.quantizers.ApproxSign,
        "SwishSign": lq.quantizers.SwishSign,
        "weight_clip": lq.constraints.WeightClip,
        "WeightClip": lq.constraints.WeightClip,
    }


def _build_member(n_features: int, hidden: int, input_quantizer: str, init_seeds=(None, None)):
    """An untrained member (Keras ``Sequential``) with seeded kernel initializers."""
    tf, lq = _tf()
    glorot = tf.keras.initializers.GlorotUniform
    return tf.keras.Sequential([
        tf.keras.Input((n_features,)),
        lq.layers.QuantDense(hidden, kernel_quantizer="ste_sign", kernel_constraint="weight_clip",
                             kernel_initializer=glorot(seed=init_seeds[0])),
        tf.keras.layers.BatchNormalization(momentum=0.9, scale=False),
        lq.layers.QuantDense(2, input_quantizer=input_quantizer, kernel_quantizer="ste_sign",
                             kernel_constraint="weight_clip", use_bias=False,
                             kernel_initializer=glorot(seed=init_seeds[1])),
        tf.keras.layers.Activation("softmax"),
    ])


def _train_member(X, Y, *, hidden, input_quantizer, seeds, epochs, batch_size, lr):
    """Train one member on float32 ``X (n, d)`` and one-hot float32 ``Y (n, 2)``; returns the model.

    ``seeds``: ``(init_seed_1, init_seed_2, shuffle_seed)``.
    """
    tf, _ = _tf()
    model = _build_member(X.shape[1], hidden, input_quantizer, seeds[:2])
    opt = tf.keras.optimizers.Adam(learning_rate=lr)
    loss_fn = tf.keras.losses.CategoricalCrossentropy()
    variables = model.trainable_variables

    @tf.function(input_signature=[tf.TensorSpec([None, X.shape[1]], tf.float32),
                                  tf.TensorSpec([None, 2], tf.float32)])
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        opt.apply_gradients(zip(tape.gradient(loss, variables), variables))  # applies weight_clip
        return loss

    rng = np.random.default_rng(seeds[2])
    n = X.shape[0]
    for _ in range(epochs):
        order = rng.permutation(n)
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            step(X[idx], Y[idx])
    return model


def _train_member_weights(X, Y, threads, **kwargs) -> list[np.ndarray]:
    """joblib task: train one member in a worker and return its weights (models do not travel)."""
    tf, _ = _tf()
    if threads:
        try:  # only possible before the worker's TF runtime starts; a reused worker keeps its setting
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        except RuntimeError:
            pass
    return _train_member(X, Y, **kwargs).get_weights()


def _member_seeds(seed: int, v: int) -> tuple[int, int, int]:
    """Three 31-bit seeds of member ``v`` derived from ``(seed, v)``."""
    s = np.random.SeedSequence([seed, v]).generate_state(3) >> np.uint32(1)
    return tuple(int(x) for x in s)


def _pre_softmax(model, x):
    """Logits of one member (the input of its final softmax), inference mode."""
    for layer in model.layers[:-1]:
        x = layer(x, training=False)
    return x


# --------------------------------------------------------------------------- estimator
class BNNEnsemble(VoteOutputs, ClassifierMixin, BaseEstimator):
    """Ensemble of ``n_votes`` larq binarized networks, the paper's BNN baseline (binary only).

    Parameters
    ----------
    n_votes : int, default=100
        Independently seeded networks.
    hidden_nodes : int, default=20
        Hidden (+-1 after quantization) units ``H``.
    epochs : int, default=20
        Reference default (``FL``); the BR example used 100.
    batch_size : int, default=100
    learning_rate : float, default=1e-3
        Adam step size.
    input_quantizer : {"approx_sign", "ste_sign", "swish_sign"}, default="approx_sign"
        larq quantizer of the output layer's input (the hidden activations).  All map
        0 to +1 in the forward pass; they differ in the pseudo-gradient.
    voting : {"hard", "soft"}, default="hard"
        "hard": ``round(mean_v argmax_v)`` as in the reference, ties to ``classes_[0]``;
        ``predict_proba`` is then the fraction of members voting ``classes_[1]``.
        "soft": mean of the members' softmax.
    random_state : int, RandomState or None
        Member ``v`` is seeded by ``(seed_, v)``.
    n_jobs : int or None, default=None
        ``None``: members are trained one after another in this process.  Otherwise the
        number of joblib workers (honours ``joblib.parallel_config``); every worker pays
        TensorFlow's import (~3 s) and each member's graph tracing, so on a 2-core machine
        8 members x 20 epochs on sklearn digits took 3.9-6.6 s in process and 11.6-22 s
        with ``n_jobs=2``.  Both give identical weights.
    worker_threads : int or None, default=1
        TensorFlow intra/inter-op threads in each joblib worker (``n_jobs`` set only).
    verbose : int, default=0
        Print one line per trained member.

    Attributes
    ----------
    classes_ : ndarray of shape (2,)
    n_features_in_ : int
    members_ : list of tf.keras.Model
        Members ``(n, n_features) -> softmax (n, 2)``.
    seed_ : int
    fit_time_ : float
    """

    _parameter_constraints: dict = {
        "n_votes": [Interval(Integral, 1, None, closed="left")],
        "hidden_nodes": [Interval(Integral, 1, None, closed="left")],
        "epochs": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "input_quantizer": [StrOptions(set(_QUANTIZERS))],
        "voting": [StrOptions({"hard", "soft"})],
        "random_state": ["random_state"],
        "n_jobs": [Integral, None],
        "worker_threads": [Interval(Integral, 1, None, closed="left"), None],
        "verbose": ["verbose"],
    }
    _per_member = ("members_",)

    def __init__(
        self,
        *,
        n_votes: int = 100,
        hidden_nodes: int = 20,
        epochs: int = 20,
        batch_size: int = 100,
        learning_rate: float = 1e-3,
        input_quantizer: str = "approx_sign",
        voting: str = "hard",
        random_state=None,
        n_jobs: int | None = None,
        worker_threads: int | None = 1,
        verbose: int = 0,
    ):
        self.n_votes = n_votes
        self.hidden_nodes = hidden_nodes
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.input_quantizer = input_quantizer
        self.voting = voting
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.worker_threads = worker_threads
        self.verbose = verbose

    # ------------------------------------------------------------------ fit
    @fit_or_keep
    def fit(self, X, y):
        """Train ``n_votes`` binarized networks on ``X (n_samples, n_features)`` and binary ``y``."""
        self._validate_params()
        X, y = validate_data(self, X, y, dtype=np.float32, order="C")
        layers = [X.shape[1], self.hidden_nodes, 2]
        check_memory(network_memory(self.n_votes, layers, 4), None, f"fitting {self.n_votes} BNNs of layers {layers}")
        classes, y01 = binary_targets(y, type(self).__name__)
        seed = base_seed(self.random_state)
        Y = np.eye(2, dtype=np.float32)[y01]
        settings = dict(hidden=self.hidden_nodes, input_quantizer=self.input_quantizer,
                        epochs=self.epochs, batch_size=self.batch_size, lr=self.learning_rate)
        start = time.perf_counter()
        if self.n_jobs is None:
            members = []
            for v in range(self.n_votes):
                members.append(_train_member(X, Y, seeds=_member_seeds(seed, v), **settings))
                if self.verbose:
                    print(f"BNNEnsemble: member {v + 1}/{self.n_votes} trained "
                          f"({time.perf_counter() - start:.1f} s)", flush=True)
        else:
            from joblib import Parallel, delayed

            weights = Parallel(n_jobs=self.n_jobs, verbose=10 if self.verbose else 0)(
                delayed(_train_member_weights)(X, Y, self.worker_threads, seeds=_member_seeds(seed, v), **settings)
                for v in range(self.n_votes)
            )
            members = []
            for w in weights:
                model = _build_member(X.shape[1], self.hidden_nodes, self.input_quantizer)
                model.set_weights(w)
                members.append(model)
        self.fit_time_ = time.perf_counter() - start
        self.classes_ = classes
        self.members_ = members
        self.seed_ = seed
        return self

    # ------------------------------------------------------------------ outputs
    def _input(self, X):
        return validate_data(self, X, reset=False, dtype=np.float32, order="C")

    def _member_probs(self, X, member) -> np.ndarray:
        """Softmax of every member ``(n_members, n_samples, 2)`` (float32)."""
        tf, _ = _tf()
        X = self._input(X)
        members = self.members_ if member is None else [self.members_[member]]
        out = np.zeros((len(members), len(X), 2), np.float32)
        for i in range(0, len(X), _PREDICT_ROWS):
            x = tf.convert_to_tensor(X[i : i + _PREDICT_ROWS])
            for v, model in enumerate(members):
                out[v, i : i + _PREDICT_ROWS] = model(x, training=False).numpy()
        return out

    def _ensemble_logits(self, x, member, tf):
        """Differentiable logits ``(n, 2)`` of member ``member``, or ``log(mean softmax)``."""
        if member is not None:
            return _pre_softmax(self.members_[member], x)
        logp = tf.stack([tf.nn.log_softmax(_pre_softmax(m, x)) for m in self.members_])
        return tf.reduce_logsumexp(logp, axis=0) - math.log(len(self.members_))

    def logits(self, X, member: int | None = None) -> np.ndarray:
        """``(n_samples, 2)`` float32: member ``member``'s pre-softmax outputs, or for
        ``member=None`` the log of the soft-vote probabilities ``log(mean_v softmax_v)``
        (a differentiable surrogate; the default hard vote has no useful gradient)."""
        member = self._checked_member(member)
        tf, _ = _tf()
        x = tf.convert_to_tensor(self._input(X))
        return self._ensemble_logits(x, member, tf).numpy()

    def loss_gradient(self, X, y, member: int | None = None) -> np.ndarray:
        """Gradient w.r.t. ``X`` of the cross-entropy of :meth:`logits` (summed over samples,
        so row ``i`` is the gradient of sample ``i``'s loss), through larq's pseudo-gradients
        (straight-through ``ste_sign`` kernels, the chosen ``input_quantizer``).

        ``y``: labels from ``classes_`` ``(n_samples,)`` or one-hot ``(n_samples, 2)``.
        Returns float32 ``(n_samples, n_features)``.
        """
        member = self._checked_member(member)
        tf, _ = _tf()
        X = self._input(X)
        target = tf.convert_to_tensor(label_indices(self.classes_, y, len(X)))
        x = tf.convert_to_tensor(X)
        with tf.GradientTape() as tape:
            tape.watch(x)
            z = self._ensemble_logits(x, member, tf)
            loss = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=target, logits=z))
        return tape.gradient(loss, x).numpy()

    def logits_gradient(self, X, weights, member: int | None = None) -> np.ndarray:
        """Gradient w.r.t. each row of ``sum_c weights[i, c] * logits[i, c]`` (:meth:`logits`,
        larq's straight-through pseudo-gradients), float32 ``(n_samples, n_features)``: the
        margin gradient EAD and C&W need."""
        member = self._checked_member(member)
        tf, _ = _tf()
        X = self._input(X)
        w = np.asarray(weights, np.float32)
        if w.shape != (len(X), 2):
            raise ValueError(f"weights must have shape ({len(X)}, 2), got {w.shape}.")
        x = tf.convert_to_tensor(X)
        with tf.GradientTape() as tape:
            tape.watch(x)
            total = tf.reduce_sum(self._ensemble_logits(x, member, tf) * tf.convert_to_tensor(w))
        return tape.gradient(total, x).numpy()

    def _positive_fraction(self, X, member) -> np.ndarray:
        probs = self._member_probs(X, member).astype(np.float64)
        if self.voting == "hard":
            return (np.argmax(probs, axis=2) == 1).mean(axis=0)  # argmax ties -> class 0
        return probs[:, :, 1].mean(axis=0)

    def _copy_member(self, model):
        """A new Keras model with ``model``'s weights (Keras models do not deep-copy)."""
        copy = _build_member(self.n_features_in_, self.hidden_nodes, self.input_quantizer)
        copy.set_weights(model.get_weights())
        return copy

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike) -> None:
        """Save to one zip file: ``manifest.json``, ``classes.npy`` and a ``.keras`` file per
        member (written atomically)."""
        check_is_fitted(self)
        tf, lq = _tf()
        names = _member_files(len(self.members_))
        blobs = {}
        with tempfile.TemporaryDirectory() as tmp:
            for name, model in zip(names, self.members_):
                model.save(os.path.join(tmp, name))
                with open(os.path.join(tmp, name), "rb") as fh:
                    blobs[name] = fh.read()
        save_estimator(path, _KIND, self, {}, blobs=blobs, format=KERAS_FORMAT, members=names,
                       tensorflow_version=tf.__version__, larq_version=lq.__version__)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "BNNEnsemble":
        """Same as :func:`load`."""
        return load(path)


def _member_files(n: int) -> list[str]:
    """Entry names of the members in a model file: chosen by us, never read from the manifest
    (no path games)."""
    return [f"member_{v:03d}.keras" for v in range(n)]


def load(path: str | os.PathLike) -> BNNEnsemble:
    """Load a ``BNNEnsemble`` written by :meth:`BNNEnsemble.save`.

    Members are read with ``tf.keras.models.load_model(safe_mode=True)`` (Python lambdas
    refused) and must have exactly the BNN layer structure and weight shapes.  Raises
    ``FileNotFoundError`` for a missing file and ``ValueError`` for anything else wrong.
    """
    return _from_file(read_model_file(path, _KIND))


def _from_file(file: ModelFile) -> BNNEnsemble:
    """The ensemble in a model file read by :func:`scd.persist.read_model_file`."""
    name = file.path
    est = rebuild(file, [BNNEnsemble])
    saved = file.header.get("members")
    n_members = len(saved) if isinstance(saved, list) else 0
    files = _member_files(n_members)
    if n_members < 1 or n_members != est.n_votes or not all(f in file.blobs for f in files):
        raise ValueError(f"{name!r} is corrupt: {n_members} members for n_votes={est.n_votes}, member files "
                         f"{sorted(f for f in file.blobs)[:5]}.")
    tf, _ = _tf()
    d = est.n_features_in_
    reference = _build_member(d, est.hidden_nodes, est.input_quantizer)
    allowed = _config_objects(tf.keras.saving.serialize_keras_object(reference))
    weight_bytes = sum(math.prod(w.shape) * 4 for w in reference.get_weights())
    members = []
    with tempfile.TemporaryDirectory() as tmp:
        for v, member_file in enumerate(files):
            blob = file.blobs[member_file]
            _check_keras_file(blob, allowed, weight_bytes, name, v)
            path = os.path.join(tmp, member_file)
            with open(path, "wb") as fh:
                fh.write(blob)
            try:
                model = tf.keras.models.load_model(path, custom_objects=_custom_objects(), compile=False,
                                                   safe_mode=True)
            except Exception as exc:  # Keras raises many types for bad files; never run on
                raise ValueError(f"{name!r}: member {v} cannot be loaded safely: {type(exc).__name__}: {exc}") from None
            _check_structure(model, reference, name, v)
            members.append(model)
    est.members_ = members
    return est


register_loader(_KIND, _from_file)


_KERAS_ENTRIES = {"config.json", "metadata.json", "model.weights.h5"}
_KERAS_NEEDED = {"config.json", "model.weights.h5"}


def _config_objects(node) -> set[tuple]:
    """Every ``(module, class_name, registered_name)`` named in a Keras config."""
    found: set[tuple] = set()
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if "class_name" in item:
                found.add((item.get("module"), item["class_name"], item.get("registered_name")))
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def _check_keras_file(blob: bytes, allowed: set[tuple], weight_bytes: int, name: str, v: int) -> None:
    """Refuse a member ``.keras`` file that names any object a BNN member does not use, or whose
    weights file is not plain HDF5 data of at most about ``weight_bytes`` (:func:`_check_weights`).

    Needed on top of ``safe_mode=True``: Keras 2.15 imports whatever ``module`` a config
    names (and a module's import runs its code) before it checks the class.
    """
    try:
        entries = read_zip(blob)
        config = json.loads(entries["config.json"])
    except (*ZIP_READ_ERRORS, KeyError, ValueError, RecursionError) as exc:
        raise ValueError(f"{name!r}: member {v} is not a readable .keras file: {exc}") from None
    unknown = sorted(map(str, _config_objects(config) - allowed))
    if not _KERAS_NEEDED <= set(entries) <= _KERAS_ENTRIES or unknown:
        extra = sorted(set(entries) - _KERAS_ENTRIES)
        raise ValueError(f"{name!r}: member {v} cannot be loaded safely: it is not a BNN member "
                         f"(unexpected objects {unknown[:5]}, files {extra[:5]}).")
    _check_weights(entries["model.weights.h5"], 2 * weight_bytes + (1 << 16), f"{name!r}: member {v}")


def _check_weights(data: bytes, limit: int, where: str) -> None:
    """Refuse an HDF5 weights file that Keras could not read from its own bytes alone (external
    storage, external or soft links, virtual datasets: they name other files, which the load
    would copy in, or hang on) or whose datasets declare more than ``limit`` bytes in all.
    Inspected with h5py, which reads only the file's metadata here."""
    import h5py

    found: list[str] = []
    declared = 0

    def visit(path: str, obj: Any) -> None:
        nonlocal declared
        if isinstance(obj, h5py.Dataset):
            if obj.external or obj.is_virtual:
                found.append(f"{path} stores its data in other files")
            declared += math.prod(obj.shape or ()) * obj.dtype.itemsize
        elif isinstance(obj, h5py.Group):
            for key in obj:
                if not isinstance(obj.get(key, getlink=True), h5py.HardLink):
                    found.append(f"{path}/{key} is a link to elsewhere")

    try:
        with h5py.File(io.BytesIO(data), "r") as f:
            visit("", f)
            f.visititems(visit)
    except (OSError, ValueError, TypeError, KeyError, RuntimeError) as exc:
        raise ValueError(f"{where} has an unreadable weights file: {exc}") from None
    if found:
        raise ValueError(f"{where} cannot be loaded safely: {found[0]}.")
    if declared > limit:
        raise ValueError(f"{where} is not a BNN member: its weights declare {declared} bytes, expected about "
                         f"{limit // 2}.")


def _check_structure(model, reference, name: str, v: int) -> None:
    """Raise ``ValueError`` unless ``model`` has the BNN layers and weight shapes of ``reference``."""
    types = [type(layer).__name__ for layer in getattr(model, "layers", [])]
    expected = [type(layer).__name__ for layer in reference.layers]
    shapes = [w.shape for w in model.get_weights()] if types == expected else None
    if types != expected or shapes != [w.shape for w in reference.get_weights()]:
        raise ValueError(f"{name!r}: member {v} is not a BNN member of the saved shape "
                         f"(layers {types}, expected {expected}).")
    if not all(np.all(np.isfinite(w)) for w in model.get_weights()):
        raise ValueError(f"{name!r}: member {v} holds NaN or infinite weights.")
    if model.layers[-1].get_config().get("activation") != "softmax":
        raise ValueError(f"{name!r}: member {v} does not end in a softmax.")
