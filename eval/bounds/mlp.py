"""Certified lower bounds for the MLP baseline (:class:`eval.baselines.MLPEnsemble`): linear
bound propagation through one hidden layer of logistic units (CROWN-style), with the model's
own floating-point rounding folded into the bounds, and a bisection on the radius.

For a radius ``eps``, every member's output unit ``z_m`` (before its sigmoid) is bounded over
the inputs of the ``eps``-ball that lie in the box: the hidden pre-activations by interval
reasoning, each hidden sigmoid between two parallel lines (the chord's slope, offsets from the
exact extremes of ``sigmoid(h) - a h`` on the interval), and the resulting linear function of
``x`` minimised and maximised over the ball and the box.  Interval propagation gives a second
range; the tighter end of each is kept.  The votes then decide: hard voting, the members whose
vote is certain; soft voting, the range of the mean probability.  ``docs/certify_baselines.md``
gives the argument and the rounding allowances.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._inputs import bisect_radius

__all__ = ["MLPNet", "mlp_radius"]

_U64 = 2.0**-53
_OWN = 1e-11  # relative allowance for the rounding of this module's own float64 sums (d 2^-53 is 3e-13 at d = 3072)


def _sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(z, np.float64)))


@dataclass(frozen=True)
class MLPNet:
    """The members of a fitted one-hidden-layer logistic :class:`~eval.baselines.MLPEnsemble`
    in float64: ``W (V, H, d)``, ``b (V, H)``, output weights ``w2 (V, H)`` and biases
    ``c (V,)``; ``u``: the unit roundoff of the arithmetic the model predicts in (its weights'
    dtype)."""

    W: np.ndarray
    b: np.ndarray
    w2: np.ndarray
    c: np.ndarray
    soft: bool
    u: float

    @classmethod
    def from_estimator(cls, model) -> MLPNet:
        """``ValueError`` for other architectures than one hidden layer of logistic units."""
        first = model.estimators_[0]
        if len(first.coefs_) != 2 or first.activation != "logistic":
            raise ValueError(
                f"certified MLP bounds need one hidden layer of logistic units; this ensemble has "
                f"{len(first.coefs_) - 1} hidden layers of {first.activation!r} units.")
        dtype = first.coefs_[0].dtype
        W = np.stack([m.coefs_[0].T for m in model.estimators_]).astype(np.float64)
        b = np.stack([m.intercepts_[0] for m in model.estimators_]).astype(np.float64)
        w2 = np.stack([m.coefs_[1][:, 0] for m in model.estimators_]).astype(np.float64)
        c = np.array([m.intercepts_[1][0] for m in model.estimators_], np.float64)
        return cls(W, b, w2, c, model.voting == "soft", float(np.finfo(dtype).eps) / 2)

    method = "crown"

    def radius(self, x: np.ndarray, label: int, norm: str, box: tuple[np.ndarray, np.ndarray], upper: float) -> float:
        """:func:`mlp_radius` of this network."""
        return mlp_radius(self, x, label, norm, box, upper)

    def gamma(self, n: int) -> float:
        """``gamma_n = n u / (1 - n u)``: the relative error bound of an ``n``-term dot product."""
        return n * self.u / (1 - n * self.u)


class _Sample:
    """What does not change with the radius, for one input."""

    def __init__(self, net: MLPNet, x: np.ndarray, lo: np.ndarray, hi: np.ndarray, norm: str):
        V, H, d = net.W.shape
        self.net, self.x, self.lo, self.hi, self.norm = net, x.astype(np.float64), lo, hi, norm
        self.Wf = net.W.reshape(V * H, d)
        reach = np.maximum(np.abs(lo), np.abs(hi))
        self.reach = reach
        scale = np.abs(self.Wf) @ reach + np.abs(net.b.ravel())
        # the model's pre-activation is within E1 of the exact one (gamma_{d+1}); ours within _OWN
        self.E1 = ((net.gamma(d + 1) + _OWN) * scale).reshape(V, H)
        self.h0 = (self.Wf @ self.x).reshape(V, H) + net.b
        q = {"inf": 1, "2": 2, "1": np.inf}[norm]
        self.dual = np.linalg.norm(self.Wf, ord=q, axis=1).reshape(V, H) if norm != "inf" else None
        self.box_min = (np.minimum(self.Wf * lo, self.Wf * hi).sum(axis=1)).reshape(V, H)
        self.box_max = (np.maximum(self.Wf * lo, self.Wf * hi).sum(axis=1)).reshape(V, H)
        # a computed sigmoid (float32 or float64 exp, add, divide) is within 16 u of the exact one
        self.ds = 16 * net.u
        w_abs = np.abs(net.w2)
        # the model's output unit sums H products and the bias: gamma_{H+1} of its magnitudes
        self.E2 = net.gamma(H + 1) * (w_abs.sum(axis=1) + np.abs(net.c)) + _OWN * (w_abs.sum(axis=1) + np.abs(net.c))

    def linear_range(self, A: np.ndarray, eps: float) -> tuple[np.ndarray, np.ndarray]:
        """``min`` and ``max`` of ``A x`` (rows of ``A``) over the ``eps``-ball of ``x`` in the
        box, rounded outwards."""
        x, lo, hi = self.x, self.lo, self.hi
        slack = _OWN * (np.abs(A) @ np.maximum(self.reach, np.abs(x) + eps))
        if self.norm == "inf":
            bl, bh = np.maximum(lo, x - eps), np.minimum(hi, x + eps)
            mn = np.minimum(A * bl, A * bh).sum(axis=1)
            mx = np.maximum(A * bl, A * bh).sum(axis=1)
            return mn - slack, mx + slack
        q = {"2": 2, "1": np.inf}[self.norm]
        centre = A @ x
        radius = eps * np.linalg.norm(A, ord=q, axis=1)
        mn = np.maximum(centre - radius, np.minimum(A * lo, A * hi).sum(axis=1))
        mx = np.minimum(centre + radius, np.maximum(A * lo, A * hi).sum(axis=1))
        return mn - slack, mx + slack

    def pre_range(self, eps: float) -> tuple[np.ndarray, np.ndarray]:
        """Ranges ``(V, H)`` of the model's computed pre-activations over the region."""
        net = self.net
        V, H, _ = net.W.shape
        if self.norm == "inf":
            mn, mx = self.linear_range(self.Wf, eps)
            mn, mx = mn.reshape(V, H) + net.b, mx.reshape(V, H) + net.b
        else:
            mn = np.maximum(self.h0 - eps * self.dual, self.box_min + net.b)
            mx = np.minimum(self.h0 + eps * self.dual, self.box_max + net.b)
        return mn - self.E1, mx + self.E1

    def output_range(self, eps: float) -> tuple[np.ndarray, np.ndarray]:
        """Ranges ``(V,)`` of every member's computed output unit over the region."""
        net = self.net
        l, u = self.pre_range(eps)
        sl, su = _sigmoid(l), _sigmoid(u)
        w = net.w2
        pos = w > 0
        # interval propagation
        ibp_lo = np.where(pos, w * sl, w * su).sum(axis=1) - np.abs(w).sum(axis=1) * self.ds + net.c - self.E2
        ibp_hi = np.where(pos, w * su, w * sl).sum(axis=1) + np.abs(w).sum(axis=1) * self.ds + net.c + self.E2
        a, cmin, cmax = _parallel_lines(l, u)
        # sigma(h~) >= a h(x) + cmin - a E1 (a >= 0, |h~ - h(x)| <= E1), and the computed
        # sigmoid is within ds of the exact one
        Lam = np.einsum("vh,vhd->vd", w * a, net.W)
        base = (w * a * net.b).sum(axis=1) + net.c
        loose = (np.abs(w) * (a * self.E1 + self.ds)).sum(axis=1) + self.E2
        off_lo = np.where(pos, w * cmin, w * cmax).sum(axis=1)
        off_hi = np.where(pos, w * cmax, w * cmin).sum(axis=1)
        mn, mx = self.linear_range(Lam, eps)
        own = _OWN * ((np.abs(w) * (np.abs(cmin) + np.abs(cmax) + a * np.abs(net.b))).sum(axis=1) + np.abs(net.c))
        lo_const, hi_const = base + off_lo - loose - own, base + off_hi + loose + own
        self.linear = (Lam, lo_const, hi_const)  # z~_m between Lam_m . x + lo_const_m and ... + hi_const_m
        return np.maximum(ibp_lo, mn + lo_const), np.minimum(ibp_hi, mx + hi_const)

    def robust(self, eps: float, label: int) -> bool:
        """Whether no input of the region changes the prediction ``label`` (class index)."""
        net = self.net
        V = len(net.c)
        zl, zh = self.output_range(eps)
        if not net.soft:
            # a computed sigmoid is > 1/2 when its input exceeds 2^-16 and <= 1/2 when it is <= 0
            if label == 1:
                return 2 * int(np.sum(zl > 2.0**-16)) > V
            return 2 * int(np.sum(zh > 0)) <= V
        dp = 16 * net.u + 1e-15
        slack = (2 * V * V + 4 * V) * _U64 * 2
        if label == 1 and float(np.sum(_sigmoid(zl) - dp)) > V / 2 + slack:
            return True
        if label == 0 and float(np.sum(_sigmoid(zh) + dp)) < V / 2 - slack:
            return True
        # jointly: sigmoid(z~_m) >= al_m z~_m + cmin_m on [zl, zh] (al_m >= 0), and z~_m above
        # its linear lower bound, so the sum is above one linear function of x (and likewise above)
        al, cmin, cmax = _parallel_lines(zl, zh)
        Lam, lo_const, hi_const = self.linear
        mn, mx = self.linear_range((al[:, None] * Lam).sum(axis=0)[None], eps)
        own = _OWN * float(np.sum(al * (np.abs(lo_const) + np.abs(hi_const)) + np.abs(cmin) + np.abs(cmax)))
        if label == 1:
            return float(mn[0] + np.sum(al * lo_const + cmin - dp)) - own > V / 2 + slack
        return float(mx[0] + np.sum(al * hi_const + cmax + dp)) + own < V / 2 - slack


def _parallel_lines(l: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``a h + cmin <= sigmoid(h) <= a h + cmax`` on ``[l, u]`` (elementwise): ``a`` the chord's
    slope, ``cmin``/``cmax`` the extremes of ``sigmoid(h) - a h``, found among the ends and the
    two points where ``sigmoid'(h) = a``, widened by their rounding."""
    sl, su = _sigmoid(l), _sigmoid(u)
    width = u - l
    a = np.where(width > 1e-9, (su - sl) / np.where(width > 1e-9, width, 1.0), sl * (1 - sl))
    a = np.clip(a, 0.0, 0.25)
    cands = [l, u]
    disc = np.sqrt(np.clip(1 - 4 * a, 0.0, 1.0))
    for sgn in (1.0, -1.0):
        s = np.clip((1 + sgn * disc) / 2, 1e-300, 1 - 1e-16)
        cands.append(np.clip(np.log(s) - np.log1p(-s), l, u))
    g = np.stack([_sigmoid(h) - a * h for h in cands])
    g_slack = 1e-12 + 4 * _U64 * np.max(np.abs(np.stack(cands)), axis=0) * a
    return a, g.min(axis=0) - g_slack, g.max(axis=0) + g_slack


def mlp_radius(net: MLPNet, x: np.ndarray, label: int, norm: str, box: tuple[np.ndarray, np.ndarray],
               upper: float, steps: int = 30) -> float:
    """The largest radius the bisection certifies for input ``x`` predicted as ``label``
    (class index): no input of the box within that distance changes the prediction.  The
    search runs between 0 and ``upper`` (a distance at which the prediction is known to
    change, or the box's diameter); 0 when not even the point itself is certified (a tie
    within rounding)."""
    sample = _Sample(net, x, box[0], box[1], norm)
    return bisect_radius(lambda r: sample.robust(r, label), upper, steps)
