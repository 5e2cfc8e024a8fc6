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
    "DatasetInfo", "ECG_CLASSES", "MNIST_CLASSES", "REGISTRY", "TEXT_ARCHIVES", "TEXT_DATASETS",
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

# The text datasets' archives: (url, sha256).  The sha256 and sizes are those TensorFlow
# Datasets records (url_checksums/imdb_reviews.txt, yelp_polarity_reviews.txt and, for AG News,
# ag_news_subset.txt: 11,784,327 bytes, recorded for the Google Drive original of the same
# Zhang et al. archive that fast.ai mirrors).  rt-polaritydata.tar.gz has no published checksum:
# its two files' md5s are checked instead (eval.datasets.text).
TEXT_ARCHIVES = MappingProxyType({
    "mr": ("https://www.cs.cornell.edu/people/pabo/movie-review-data/rt-polaritydata.tar.gz", None),
    "imdb": ("https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz",
             "c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe"),
    "yelp": ("https://s3.amazonaws.com/fast-ai-nlp/yelp_review_polarity_csv.tgz",
             "528f22e286cad085948acbc3bea7e58188416546b0e364d0ae4ca0ce666abe35"),
    "ag": ("https://s3.amazonaws.com/fast-ai-nlp/ag_news_csv.tgz",
           "4e2fc37d369e6e317a8b62d0d2f11d379f8c3dde60c07c35a46b069a246498ad"),
})


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
    DatasetInfo("mr", (0, 1), ("mr_polarity.npz", "rt-polaritydata/", "rt-polaritydata.tar.gz"),
                f"{TEXT_ARCHIVES['mr'][0]} (the files' md5s are checked), downloaded when missing"),
    DatasetInfo("imdb", (0, 1), ("aclImdb/", "aclImdb_v1.tar.gz"),
                f"{TEXT_ARCHIVES['imdb'][0]} (sha256 {TEXT_ARCHIVES['imdb'][1]}), downloaded when missing"),
    DatasetInfo("yelp", (1, 2), ("yelp_review_polarity_csv/", "yelp_review_polarity_csv.tgz"),
                f"{TEXT_ARCHIVES['yelp'][0]} (sha256 {TEXT_ARCHIVES['yelp'][1]}), downloaded when missing"),
    DatasetInfo("ag", (1, 2), ("ag_news_csv/", "ag_news_csv.tgz"),
                f"{TEXT_ARCHIVES['ag'][0]} (sha256 {TEXT_ARCHIVES['ag'][1]}), downloaded when missing"),
    DatasetInfo("npz", None, (), "your own .npz file (path=)"),
    DatasetInfo("csv", None, (), "your own .csv file (path=)"),
)})
"""Every dataset by name, in the order the command line lists them."""

DATASETS = tuple(REGISTRY)
"""The dataset names: ``("digits", "cifar10", "mnist", "ecg", "mr", "imdb", "yelp", "ag", "npz", "csv")``."""

TEXT_DATASETS = ("mr", "imdb", "yelp", "ag")
"""The datasets of documents (:mod:`eval.datasets.text`): features are averaged word vectors."""
