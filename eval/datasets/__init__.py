"""Classification datasets for the evaluation suite: a pair of classes by default, or more.

Every loader returns a :class:`Dataset` with flattened float32 features in
[0, 1] and int64 labels ``0 .. k-1``, so downstream code can treat all data sets
alike.  Label ``i`` is always class ``classes[i]`` (for a pair, label 1 is the
*second* class).

Data files are looked for in ``data_dir`` (default :func:`eval.io.default_data_dir`,
i.e. ``$SCD_DATA_DIR``).  Nothing is ever unpickled: ``.npz`` files are read
with ``allow_pickle=False`` and the official CIFAR-10 python batches (which are
pickles) are decoded by a restricted opcode walker that imports and calls
nothing.

One module per source: :mod:`~eval.datasets.digits`, :mod:`~eval.datasets.cifar`
(with the restricted pickle reader in ``_pickle``), :mod:`~eval.datasets.mnist`,
:mod:`~eval.datasets.ecg`, :mod:`~eval.datasets.text` (MR, IMDB, Yelp, AG News as averaged
word vectors) and :mod:`~eval.datasets.user` (npz/csv files).
:mod:`~eval.datasets.registry` is the one list of names, default classes and
file hints.  Importing this package imports no loader (so neither numpy nor
scikit-learn): a loader is imported when its dataset is first loaded.
"""
from __future__ import annotations

import operator
import os
from typing import Any, Iterable

from eval.datasets.dataset import Dataset
from eval.datasets.registry import (
    ALL_CLASSES, CIFAR10_CLASSES, CIFAR10_MD5, CIFAR10_URL, DATASETS, DIGITS_CLASSES, ECG_CLASSES, MNIST_CLASSES,
    REGISTRY, TEXT_DATASETS, DatasetInfo,
)

__all__ = [
    "ALL_CLASSES", "CIFAR10_CLASSES", "CIFAR10_MD5", "CIFAR10_URL", "DATASETS", "DIGITS_CLASSES", "Dataset",
    "DatasetInfo", "ECG_CLASSES", "MNIST_CLASSES", "REGISTRY", "TEXT_DATASETS", "check_classes", "load_dataset",
]


def load_dataset(
    name: str,
    *,
    classes: Iterable[int] | str | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    path: str | os.PathLike[str] | None = None,
    download: bool = True,
    test_size: float = 0.25,
    random_state: int = 0,
    embedding: Any = None,
) -> Dataset:
    """Load a dataset with features in [0, 1] and labels ``0 .. k-1`` (``{0, 1}`` for a pair).

    Parameters
    ----------
    name : str
        One of :data:`DATASETS`.  ``digits`` (sklearn, bundled), ``cifar10``,
        ``mnist``, ``ecg`` (PTB heartbeats), the text data ``mr``, ``imdb``,
        ``yelp``, ``ag`` (a :class:`~eval.datasets.text.TextDataset`) read from ``data_dir``;
        ``npz`` / ``csv`` read a user file given by ``path``.
    classes : sequence of int, or "all", optional
        The original class ids to keep, at least two and distinct; class
        ``classes[i]`` becomes label ``i`` (for a pair, the second one becomes
        label 1).  ``"all"`` (:data:`ALL_CLASSES`) keeps every label, sorted.
        Defaults: digits (1, 8), cifar10 (0, 1), mnist (3, 5), ecg (0, 1)
        (normal, abnormal), mr and imdb (0, 1) and yelp (1, 2) (negative, positive),
        ag (1, 2) (World, Sports); npz/csv: the file's two labels, sorted.
    data_dir : path-like, optional
        Where cifar10/mnist/ecg files are looked for (and CIFAR-10 downloaded
        to); defaults to :func:`eval.io.default_data_dir`.
    path : path-like, optional
        The user file for ``npz`` / ``csv``.
    download : bool
        Download CIFAR-10 or a text dataset's archive when no local copy is found.
    test_size, random_state : float, int
        Stratified train/test split for data without an official split
        (digits, ecg, mr, npz with only ``x``/``y``, csv).
    embedding : scd.text.Embedding, path-like or None
        Text data: the word vectors averaged into features (default: the GloVe 6B 50-d
        vectors of the ``text`` extra; see :func:`scd.text.load_embedding`).

    Returns
    -------
    Dataset

    Notes
    -----
    Images are divided by their maximum value (255, or 16 for digits).  User
    data (npz, csv, ecg) is kept as is when all values already lie in [0, 1];
    otherwise every feature is min-max scaled with the *training* minimum and
    maximum (so no test statistics leak into training) and the test features
    are clipped to [0, 1].
    """
    if name not in REGISTRY:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    chosen = REGISTRY[name].classes if classes is None else check_classes(classes)
    if name == "digits":
        from eval.datasets import digits

        return digits.load(chosen, test_size, random_state)
    if name == "cifar10":
        from eval.datasets import cifar

        return cifar.load(chosen, data_dir, download)
    if name == "mnist":
        from eval.datasets import mnist

        return mnist.load(chosen, data_dir)
    if name == "ecg":
        from eval.datasets import ecg

        return ecg.load(chosen, data_dir, test_size, random_state)
    if name in TEXT_DATASETS:
        from eval.datasets import text

        return text.load(name, chosen, data_dir, download, embedding, test_size, random_state)
    from eval.datasets import user

    return user.load(name, path, chosen, test_size, random_state)


def check_classes(classes: Iterable[Any] | str) -> tuple[int, ...] | str:
    """``classes`` as a tuple of at least two distinct integers, or :data:`ALL_CLASSES`;
    ValueError otherwise."""
    if isinstance(classes, str):
        if classes != ALL_CLASSES:
            raise ValueError(f"classes must be integers or {ALL_CLASSES!r}, got {classes!r}")
        return classes
    try:
        chosen = tuple(operator.index(c) for c in classes)
    except TypeError:
        raise ValueError(f"classes must be at least two distinct integers, got {classes!r}") from None
    if len(chosen) < 2 or len(set(chosen)) != len(chosen):
        raise ValueError(f"classes must be at least two distinct integers, got {classes!r}")
    return chosen
