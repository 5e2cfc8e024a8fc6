"""What counts as adversarial, and the counted question every attack asks the model.

:class:`Criterion` judges model answers (untargeted or targeted); :class:`Probe` puts it
together with the oracle and the attacked samples' ids: "is this row adversarial for sample
``i``?", one clipped, counted query per row.
"""

from __future__ import annotations

import numpy as np

from .oracle import REFUSED, Line, Oracle

__all__ = ["Criterion", "Probe"]


class Criterion:
    """Whether a model answer is adversarial for the sample it belongs to: untargeted, the
    label differs from the true label; targeted, it equals the sample's target label.  Labels
    are class indices; a refused row (:data:`~attacks.oracle.REFUSED`) is never adversarial."""

    def __init__(self, labels: np.ndarray, targets: np.ndarray | None = None):
        self.labels = labels
        self.targets = targets

    @property
    def targeted(self) -> bool:
        return self.targets is not None

    def __call__(self, predicted: np.ndarray, owners: np.ndarray) -> np.ndarray:
        answered = predicted != REFUSED
        if self.targets is not None:
            return answered & (predicted == self.targets[owners])
        return answered & (predicted != self.labels[owners])


class Probe:
    """The model as an attack sees it: "is this row adversarial for sample ``i``?", counted.

    ``owners`` are positions ``0 .. n-1`` in the attacked batch; the oracle counts rows under
    ``ids[owners]``.  Rows are clipped into the box here, once per query, and then sent
    without a second input check (the attack's inputs were checked when it was called).
    """

    def __init__(self, oracle: Oracle, criterion: Criterion, ids: np.ndarray):
        self.oracle = oracle
        self.criterion = criterion
        self.ids = ids
        self.lower, self.upper = oracle.bounds
        self.n_features = oracle.n_features

    def is_adversarial(self, rows: np.ndarray, owners: np.ndarray, *, clipped: bool = False) -> np.ndarray:
        """One counted query per row, clipped into the bounds first unless ``clipped`` says the
        rows are already this probe's :meth:`clip` output; ``(len(rows),)`` bool."""
        owners = np.asarray(owners, np.int64)
        if len(owners) == 0:
            return np.zeros(0, bool)
        predicted = self.oracle.labels(rows if clipped else self.clip(rows), self.ids[owners], checked=True)
        return self.criterion(predicted, owners)

    def on_line(self, line: Line, rows: np.ndarray, a: np.ndarray, owners: np.ndarray) -> np.ndarray:
        """:meth:`is_adversarial` of ``line.points(rows, a)`` (a :meth:`Oracle.line` of this probe's
        oracle), answered by the line: one counted query per row."""
        owners = np.asarray(owners, np.int64)
        if len(owners) == 0:
            return np.zeros(0, bool)
        return self.criterion(line.labels(rows, a, self.ids[owners]), owners)

    def clip(self, rows: np.ndarray) -> np.ndarray:
        return np.clip(np.asarray(rows, np.float32), self.lower, self.upper)

    def queries(self, owners: np.ndarray) -> np.ndarray:
        """Rows counted so far for each sample in ``owners``."""
        return self.oracle.queries(self.ids[np.asarray(owners, np.int64)])

    def remaining(self, owners: np.ndarray) -> np.ndarray:
        """Rows each sample may still use (a huge number without a budget)."""
        return self.oracle.remaining(self.ids[np.asarray(owners, np.int64)])
