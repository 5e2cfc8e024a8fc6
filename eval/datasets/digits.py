"""scikit-learn's bundled 8x8 digits: no file to find, always available."""
from __future__ import annotations

from sklearn.datasets import load_digits

from eval.datasets._common import divide, pick, resolve_classes, split
from eval.datasets.dataset import Dataset

__all__ = ["load"]


def load(classes: tuple[int, ...] | str, test_size: float, random_state: int) -> Dataset:
    """sklearn's bundled 8x8 digits (values 0..16), split stratified.

    The default pair, 1 vs 8, is the hardest one for a linear model (see
    :data:`eval.datasets.registry.DIGITS_CLASSES`), so accuracies stay
    informative instead of ~100 %.
    """
    bunch = load_digits()
    classes = resolve_classes(bunch.target, classes, "digits")
    x, y = pick(divide(bunch.data, 16.0), bunch.target, classes)
    parts = split(x, y, test_size, random_state, "sklearn digits")
    return Dataset("digits", *parts, classes, (8, 8), "sklearn")
