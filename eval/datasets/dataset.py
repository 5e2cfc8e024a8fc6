"""The value every loader returns: one classification problem (two classes or more)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: importing the dataset list must not import numpy
    import numpy as np

__all__ = ["Dataset"]


@dataclass(frozen=True, eq=False)
class Dataset:
    """A classification problem, ready for training.

    Attributes
    ----------
    name : str
        Dataset name (one of :data:`eval.datasets.DATASETS`).
    x_train, x_test : np.ndarray
        float32, shape (n, d): samples flattened (images in HWC order),
        values in [0, 1].
    y_train, y_test : np.ndarray
        int64 labels ``0 .. len(classes) - 1``; label ``i`` means ``classes[i]``.
    classes : tuple
        The original class ids kept, e.g. ``(3, 8)``: mapped to 0 and 1.
    input_shape : tuple
        Shape of one sample before flattening, e.g. ``(32, 32, 3)``.
    source : str
        The file(s) the data was read from, or ``"sklearn"``.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: tuple
    input_shape: tuple
    source: str
