"""One-vs-rest: a multi-class classifier made of one binary ensemble per class.

:class:`OneVsRest` trains, for each class ``c``, a clone of a binary estimator of this package
(an SCD ensemble, or a baseline of :mod:`eval.baselines`) on ``y == c`` (1: class ``c``, 0: the
rest), exactly as scikit-learn's :class:`~sklearn.multiclass.OneVsRestClassifier` does, and
predicts the same labels as it: the class whose ensemble gives the highest
``decision_function`` (its fraction of votes for the class, minus 0.5), ties going to the
first such class.

Saved, it is one model file (:mod:`scd.persist`, kind ``one-vs-rest``) whose header names the
classes and which holds each class's ensemble as a complete model file of its own, the entry
``class_<i>.scd``: one format per estimator, read by that estimator's loader, never unpickled.
"""

from __future__ import annotations

import os
import time
from typing import Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.utils._param_validation import HasMethods
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from .ensemble import check_member, fit_or_keep
from .persist import (
    NESTED_SUFFIX,
    ModelFile,
    check_array,
    loader_for,
    meta_number,
    model_bytes,
    read_model_bytes,
    register_loader,
    savable_classes,
    save_bundle,
)

__all__ = ["OneVsRest"]

KIND = "one-vs-rest"
_ARRAY_KINDS = "iufUS"  # labels a one-vs-rest file may hold


def _entry(index: int) -> str:
    """The name of class ``index``'s model file inside a one-vs-rest file."""
    return f"class_{index}{NESTED_SUFFIX}"


class OneVsRest(ClassifierMixin, BaseEstimator):
    """One binary ensemble per class: class ``c``'s ensemble tells ``c`` from all the others.

    Parameters
    ----------
    estimator : estimator
        An unfitted binary ensemble of this package (e.g. ``SCD01(n_votes=32)``), cloned once
        per class; every clone gets the same parameters, ``random_state`` included (as in
        scikit-learn's ``OneVsRestClassifier``).

    Attributes
    ----------
    estimators_ : list
        The fitted binary ensembles, one per class, in the order of ``classes_``; each has
        ``classes_ == [0, 1]`` (1: its class).
    classes_ : ndarray of shape (n_classes,)
        The sorted labels, at least three (two classes need no one-vs-rest).
    n_features_in_ : int
    fit_time_ : float
        Seconds spent training all the ensembles.
    """

    _parameter_constraints: ClassVar[dict] = {"estimator": [HasMethods(["fit", "decision_function", "save"])]}

    def __init__(self, estimator: Any = None):
        self.estimator = estimator

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = True
        return tags

    @fit_or_keep
    def fit(self, X, y) -> OneVsRest:
        """Train one clone of ``estimator`` per class of ``y`` (at least three classes) on
        ``X (n_samples, n_features)``, class by class."""
        self._validate_params()
        X, y = validate_data(self, X, y)
        check_classification_targets(y)
        classes = np.unique(y)
        if len(classes) < 3:
            raise ValueError(f"OneVsRest needs at least 3 classes; y has {len(classes)}. Fit the binary "
                             f"{type(self.estimator).__name__} itself for two.")
        start = time.perf_counter()
        self.estimators_ = [clone(self.estimator).fit(X, (y == c).astype(np.int64)) for c in classes]
        self.fit_time_ = time.perf_counter() - start
        self.classes_ = classes
        return self

    # ------------------------------------------------------------------ predict
    def _n_members(self) -> int:
        check_is_fitted(self)
        return self.estimators_[0]._n_members()

    def decision_function(self, X, member: int | None = None) -> np.ndarray:
        """``(n_samples, n_classes)``: column ``i`` is ``estimators_[i].decision_function``, the
        fraction of class ``i``'s votes for it (or its mean probability, soft voting) minus 0.5;
        with ``member=j``, member ``j`` of each class's ensemble alone."""
        check_is_fitted(self)
        member = check_member(member, self._n_members())
        X = validate_data(self, X, reset=False)
        return np.column_stack([e.decision_function(X, member=member) for e in self.estimators_])

    def predict(self, X, member: int | None = None) -> np.ndarray:
        """The class with the highest :meth:`decision_function` (the first such class on a tie),
        as scikit-learn's ``OneVsRestClassifier`` predicts."""
        return self.classes_[np.argmax(self.decision_function(X, member), axis=1)]

    def predict_proba(self, X, member: int | None = None) -> np.ndarray:
        """``(n_samples, n_classes)``: each class's probability (``predict_proba(X)[:, 1]`` of its
        ensemble) normalised to sum 1, as scikit-learn's ``OneVsRestClassifier`` does, except
        that a row where every class has probability 0 (no vote for any class) is uniform, not
        zeros."""
        check_is_fitted(self)
        member = check_member(member, self._n_members())
        X = validate_data(self, X, reset=False)
        p = np.column_stack([e.predict_proba(X, member=member)[:, 1] for e in self.estimators_])
        total = p.sum(axis=1, keepdims=True)
        return np.divide(p, total, out=np.full_like(p, 1.0 / p.shape[1]), where=total > 0)

    @property
    def n_votes(self) -> int:
        """Members of each class's ensemble (member ``j`` of the model: member ``j`` of each)."""
        return self._n_members()

    def member(self, index: int) -> OneVsRest:
        """The one-vs-rest model of member ``index`` of each class's ensemble."""
        return self.members([index])

    def members(self, indices) -> OneVsRest:
        """A fitted one-vs-rest model of the members ``indices`` of each class's ensemble (see
        :meth:`scd.ensemble.VoteOutputs.members`)."""
        check_is_fitted(self)
        sub = clone(self)
        sub.estimators_ = [e.members(indices) for e in self.estimators_]
        sub.classes_, sub.n_features_in_, sub.fit_time_ = self.classes_, self.n_features_in_, self.fit_time_
        return sub

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike) -> None:
        """Save to ``path`` atomically: a header naming the classes and each class's ensemble as
        a model file of its own (no pickle)."""
        check_is_fitted(self)
        meta = {"estimator": type(self).__name__, "members": type(self.estimators_[0]).__name__,
                "n_features_in": int(self.n_features_in_), "fit_time": float(self.fit_time_)}
        blobs = {_entry(i): model_bytes(e) for i, e in enumerate(self.estimators_)}
        save_bundle(path, KIND, meta, {"classes": savable_classes(self.classes_)}, blobs=blobs)


def _from_file(file: ModelFile, **kwargs: Any) -> OneVsRest:
    """The one-vs-rest model in a model file read by :func:`scd.persist.read_model_file`;
    ``kwargs`` go to the loader of its ensembles (e.g. ``device`` for the CNN baseline)."""
    where = file.where
    classes = check_array(file.arrays, "classes", (None,), _ARRAY_KINDS, where, finite=True)
    if len(classes) < 3 or len(np.unique(classes)) != len(classes) or np.any(classes[:-1] >= classes[1:]):
        raise ValueError(f"{where} is corrupt: its classes {classes.tolist()[:20]} are not at least 3 sorted, "
                         "distinct labels")
    d = meta_number(file.header, "n_features_in", where, low=1, high=1 << 62)
    expected = {_entry(i) for i in range(len(classes))}
    if set(file.blobs) != expected:
        raise ValueError(f"{where} is corrupt: it holds {sorted(file.blobs)[:20]}, expected one model file per "
                         f"class, {sorted(expected)[:20]}")
    estimators = []
    for i in range(len(classes)):
        member = read_model_bytes(file.blobs[_entry(i)], f"{file.path}:{_entry(i)}")
        if member.kind == KIND:
            raise ValueError(f"{where} is corrupt: class {i}'s model is itself a one-vs-rest model")
        est = loader_for(member)(member, **kwargs)
        if est.n_features_in_ != d or np.asarray(est.classes_).tolist() != [0, 1]:
            raise ValueError(f"{member.where} does not fit its one-vs-rest model: {est.n_features_in_} features "
                             f"(expected {d}), classes {np.asarray(est.classes_).tolist()} (expected [0, 1])")
        estimators.append(est)
    if len({type(e) for e in estimators}) != 1 or len({e._n_members() for e in estimators}) != 1:
        raise ValueError(f"{where} is corrupt: its classes hold different kinds or sizes of models")
    model = OneVsRest(clone(estimators[0]))
    model.estimators_ = estimators
    model.classes_ = classes
    model.n_features_in_ = d
    model.fit_time_ = meta_number(file.header, "fit_time", where, float, low=0.0)
    return model


register_loader(KIND, _from_file)
