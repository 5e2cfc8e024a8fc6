"""The one list of datasets: each name with its default classes and file hints.

Pure data (standard library only), so the command line can offer the names
and the docs can describe them without importing numpy or scikit-learn.  The
loaders read their file names from here too, so a hint can never drift from
what is actually looked for.
"""
from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

__all__ = [
    "ALL_CLASSES", "CIFAR10_CLASSES", "CIFAR10_MD5", "CIFAR10_URL", "DATASETS", "DIGITS_CLASSES",
    "DatasetInfo", "ECG_CLASSES", "MNIST_CLASSES", "REGISTRY",
]

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"

# 1 vs 8 is the hardest pair of sklearn's 8x8 digits for a linear model
# (logistic regression: 97.4 % mean test accuracy over 20 stratified 75/25
# splits, vs. >= 99 % for most pairs), so results are not saturated.
DIGITS_CLASSES = (1, 8)
CIFAR10_CLASSES = (0, 1)
# 3 vs 5 is a classic hard MNIST pair (logistic regression ~96 % test accuracy,
# with 5/8, 7/9, 4/9 the hardest; most pairs are > 98 %).
MNIST_CLASSES = (3, 5)
ECG_CLASSES = (0, 1)
ALL_CLASSES = "all"
"""``classes=`` value that keeps every label of a dataset (a multi-class problem)."""


@dataclass(frozen=True)
class DatasetInfo:
    """One dataset the suite can load.

    Attributes
    ----------
    name : str
        The name given to :func:`eval.datasets.load_dataset` and ``--data``.
    classes : (int, int) or None
        The default pair of original class ids (the second becomes label 1);
        None for user files, whose two labels are used.
    files : tuple of str
        The files looked for in the data directory, in the order tried
        (a name ending in ``/`` is a folder); empty when nothing is read from it.
    origin : str
        Where the data comes from or how to get it, for help texts and errors.
    """

    name: str
    classes: tuple[int, int] | None
    files: tuple[str, ...]
    origin: str


REGISTRY = MappingProxyType({info.name: info for info in (
    DatasetInfo("digits", DIGITS_CLASSES, (), "ships with scikit-learn"),
    DatasetInfo(
        "cifar10", CIFAR10_CLASSES,
        ("cifar10_01.npz", "cifar-10-batches-py/", "cifar-10-python.tar.gz"),
        f"{CIFAR10_URL} (md5 {CIFAR10_MD5}), downloaded when missing",
    ),
    DatasetInfo(
        "mnist", MNIST_CLASSES,
        ("mnist.npz", "train-images-idx3-ubyte", "train-labels-idx1-ubyte",
         "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
        "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz",
    ),
    DatasetInfo(
        "ecg", ECG_CLASSES, ("ptbdb_normal.csv", "ptbdb_abnormal.csv"),
        "Kaggle dataset shayanfazeli/heartbeat, https://www.kaggle.com/datasets/shayanfazeli/heartbeat",
    ),
    DatasetInfo("npz", None, (), "your own .npz file (path=)"),
    DatasetInfo("csv", None, (), "your own .csv file (path=)"),
)})
"""Every dataset by name, in the order the command line lists them."""

DATASETS = tuple(REGISTRY)
"""The dataset names: ``("digits", "cifar10", "mnist", "ecg", "npz", "csv")``."""
