"""Transferability inside an ensemble (the SCD paper's Table 6).

For each member ``i`` of an ensemble of ``M``, attack member ``i`` alone and count how many of
the other ``M - 1`` members misclassify the resulting example; the transfer probability of an
image is ``p = sum_i k_i / (M_a (M - 1))`` over the ``M_a`` members whose attack succeeded
(``M_a = M`` when every attack succeeds, which is the paper's ``sum k_i / (M (M - 1))``).  A low
``p`` means an example crafted for one member rarely fools the others, so the vote is hard to
move by attacking members one at a time.

Members that already misclassify an image are not attacked on it (their example would be the
image itself, and counting it would measure disagreement, not transfer); they and the members
whose attack failed are left out of that image's ``p`` and counted in the result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["TransferResult", "checked_points", "combine_transfer", "member_predictions", "transfer_from_member",
           "within_ensemble_transfer"]


def checked_points(model: Any, x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    """``x`` as float32 ``(n, d)`` and ``y`` as ``(n,)`` labels the model knows, or ``ValueError``."""
    x = np.asarray(x, np.float32)
    y = np.asarray(y)
    if x.ndim != 2 or y.shape != (len(x),):
        raise ValueError(f"x must be 2-D and y one label per row; got {x.shape} and {y.shape}.")
    unknown = ~np.isin(y, model.classes_)
    if unknown.any():
        raise ValueError(f"y holds labels {np.unique(y[unknown])[:5].tolist()} that are not among the model's "
                         f"classes {np.asarray(model.classes_).tolist()}.")
    return x, y


def member_predictions(model: Any, x: np.ndarray) -> np.ndarray:
    """Every member's label for every row: ``(n_rows, n_members)`` in ``model.classes_``."""
    return np.column_stack([model.predict(x, member=j) for j in range(model.n_votes)])


@dataclass
class TransferResult:
    """Per image ``n`` and attacked member ``i``: ``fooled[n, i]`` other members fooled by the
    example crafted on member ``i`` (NaN where member ``i`` was not attacked or its attack
    failed), ``attacked[n, i]`` and ``success[n, i]``; ``probability[n]`` the image's transfer
    probability (NaN when no member's attack succeeded); ``l2[n, i]`` the example's L2."""

    fooled: np.ndarray
    attacked: np.ndarray
    success: np.ndarray
    l2: np.ndarray
    probability: np.ndarray
    n_members: int

    @property
    def mean_probability(self) -> float:
        """The mean over images of the transfer probability (the paper's Table 6 figure)."""
        valid = np.isfinite(self.probability)
        return float(self.probability[valid].mean()) if valid.any() else float("nan")

    def to_dict(self) -> dict[str, Any]:
        def plain(a: np.ndarray) -> list:
            return [[None if not np.isfinite(v) else float(v) for v in row] for row in np.atleast_2d(a)]

        return {"n_members": self.n_members, "mean_probability": self.mean_probability,
                "probability": plain(self.probability[None])[0], "fooled": plain(self.fooled),
                "attacked": self.attacked.tolist(), "success": self.success.tolist(), "l2": plain(self.l2)}


def within_ensemble_transfer(model: Any, x: np.ndarray, y: np.ndarray, attack: Any, *,
                             bounds: tuple[Any, Any] = (0.0, 1.0), seed: int = 0, max_queries: int | None = None,
                             sample_ids: np.ndarray | None = None, members: Any = None) -> TransferResult:
    """Attack each member (``members``: indices, default all) of ``model`` on ``(x, y)`` with
    ``attack`` (any :class:`~attacks.base.Attack`) and count the others it fools.

    ``model`` needs ``n_votes``, ``member(i)`` and ``predict(x, member=j)`` (every ensemble
    of this package has them).  ``y`` are true labels (model labels).
    """
    x, y = checked_points(model, x, y)
    M = int(model.n_votes)
    if M < 2:
        raise ValueError(f"transfer inside an ensemble needs at least 2 members, got {M}.")
    chosen = np.arange(M) if members is None else np.asarray(members, np.int64)
    if chosen.ndim != 1 or len(chosen) == 0 or chosen.min() < 0 or chosen.max() >= M:
        raise ValueError(f"members must be indices in [0, {M}), got {members!r}.")
    ids = np.arange(len(x)) if sample_ids is None else np.asarray(sample_ids)
    n = len(x)
    fooled = np.full((n, M), np.nan)
    l2 = np.full((n, M), np.nan)
    attacked = np.zeros((n, M), bool)
    success = np.zeros((n, M), bool)
    clean = member_predictions(model, x)
    for i in chosen:
        part = transfer_from_member(model, int(i), x, y, attack, bounds=bounds, seed=seed, max_queries=max_queries,
                                    sample_ids=ids, clean=clean)
        attacked[:, i], success[:, i], fooled[:, i], l2[:, i] = (part[k] for k in ("attacked", "success", "fooled",
                                                                                    "l2"))
    return combine_transfer(fooled, attacked, success, l2, M)


def transfer_from_member(model: Any, member: int, x: np.ndarray, y: np.ndarray, attack: Any, *,
                         bounds: tuple[Any, Any] = (0.0, 1.0), seed: int = 0, max_queries: int | None = None,
                         sample_ids: np.ndarray | None = None, clean: np.ndarray | None = None,
                         **attack_options: Any) -> dict[str, np.ndarray]:
    """Attack member ``member`` alone on the rows it classifies correctly and count, per row,
    the other members its example fools: ``attacked``, ``success`` (bool), ``fooled`` and
    ``l2`` (NaN where not attacked or failed), one entry per row of ``x``.  ``clean`` are the
    members' labels of ``x`` when the caller has them (:func:`member_predictions`)."""
    clean = member_predictions(model, x) if clean is None else clean
    ids = np.arange(len(x)) if sample_ids is None else np.asarray(sample_ids)
    n = len(x)
    out = {"attacked": clean[:, member] == y, "success": np.zeros(n, bool), "fooled": np.full(n, np.nan),
           "l2": np.full(n, np.nan)}
    rows = np.flatnonzero(out["attacked"])
    if not len(rows):
        return out
    result = attack(model.member(member), x[rows], y[rows], bounds=bounds, seed=seed, max_queries=max_queries,
                    sample_ids=ids[rows], **attack_options)
    ok = rows[result.success]
    out["success"][ok] = True
    if len(ok):
        others = member_predictions(model, result.x_adv[result.success]) != y[ok][:, None]
        others[:, member] = False
        out["fooled"][ok] = others.sum(axis=1)
        out["l2"][ok] = result.l2[result.success]
    return out


def combine_transfer(fooled: np.ndarray, attacked: np.ndarray, success: np.ndarray, l2: np.ndarray,
                     n_members: int) -> TransferResult:
    """The :class:`TransferResult` of per-(image, member) parts ``(n_images, n_members)``."""
    M = n_members
    counted = success.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        probability = np.where(counted > 0, np.nansum(fooled, axis=1) / (counted * (M - 1)), np.nan)
    return TransferResult(fooled=fooled, attacked=attacked, success=success, l2=l2, probability=probability,
                          n_members=M)
