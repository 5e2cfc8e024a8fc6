"""The substitute-model attack (Papernot et al. 2017): learn a copy of the attacked model from its
labels, then transfer white-box examples crafted on the copy.

Training (:func:`train_substitute`), round ``ρ = 0 .. rounds-1``:

1. ask the model (a counted :class:`~attacks.oracle.Oracle`) for the labels of the points
   of the substitute set it has not labelled yet (the model is deterministic, so labels of
   old points are kept; the reference code re-asks for all of them every round);
2. train the substitute on the whole set (Adam, cross-entropy, ``epochs`` passes; the
   network persists across rounds and the optimiser is re-created, as in the reference);
3. unless it is the last round, Jacobian-based augmentation: for every point ``x`` with
   label ``y``, ``x' = clip(x + λ_ρ · sign(∂ z_y(x) / ∂x))`` (``z_y``: the substitute's logit of
   the label), added to the set.  ``λ_ρ = λ`` flipped to ``-λ`` by a seeded coin each round
   (``sign_schedule="random"``, the reference's ``--random-sign 1``), every ``tau`` rounds
   (``"periodic"``, Papernot's ``λ·(-1)^⌊ρ/τ⌋``), or never (``"fixed"``).  Points are
   clipped to the box (the reference does not clip).  When the set would exceed
   ``max_size`` it is cut to a uniformly random subset of ``max_size`` (a reservoir), so
   the set stays bounded and old and new points are kept with equal probability.

Transfer (:func:`substitute_attack`): for each L∞ budget ε, FGSM (or PGD) on the substitute
with the *true* labels, clipped to the box, then the model's accuracy on the result (the
reference's and the paper's Figure 2 protocol); as a control, Gaussian noise rescaled per
image to the same L2 norm as that image's FGSM perturbation (then clipped).  If the model is
robust only because its decision is hard to copy, the adversarial curve stays near the
noise curve.

Reference settings (``scd-reference.md`` section 5, CIFAR-10 0 vs 1): seed set 200 test
images, the other 1800 as targets, 3072-200-200-2 ReLU MLP (xavier-normal weights, zero
bias), Adam lr 1e-4, batch 128, 20 epochs per round, 20 rounds, λ = 0.1, random sign,
6400 points at most.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from .search import progress_bar
from .autograd import TorchGradients
from .oracle import Oracle

__all__ = ["SubstituteMLP", "SubstituteResult", "substitute_attack", "train_substitute"]

_SIGN_SCHEDULES = ("random", "periodic", "fixed")


class SubstituteMLP(torch.nn.Module):
    """ReLU MLP ``d -> hidden... -> n_classes`` with xavier-normal weights and zero biases,
    initialised from ``seed`` (the reference's ``LinearModel`` for ``hidden=(200, 200)``)."""

    def __init__(self, n_features: int, n_classes: int, hidden: Sequence[int] = (200, 200), seed: int = 0):
        super().__init__()
        sizes = [n_features, *hidden, n_classes]
        layers: list[torch.nn.Module] = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
        self.net = torch.nn.Sequential(*layers[:-1])
        generator = torch.Generator().manual_seed(int(seed))
        with torch.no_grad():
            for layer in self.net:
                if isinstance(layer, torch.nn.Linear):
                    std = (2.0 / (layer.in_features + layer.out_features)) ** 0.5
                    layer.weight.copy_(torch.randn(layer.weight.shape, generator=generator) * std)
                    layer.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@dataclass
class SubstituteResult:
    """Oracle accuracy against L∞ budget for the transferred examples and the noise control.

    Per budget ``eps[k]``: ``adversarial_accuracy[k]`` and ``noise_accuracy[k]`` (the model's
    accuracy on the transferred examples and on the noise of the same L2 norm),
    ``substitute_accuracy[k]`` (the substitute's own accuracy on its examples: how well the
    white-box attack worked before transfer), ``mean_l2[k]`` (realised perturbation norm).
    ``clean_accuracy``: the model on the unperturbed points; ``agreement``: how often the
    substitute agrees with the model on them; ``queries``: model rows spent on training.
    """

    eps: list[float]
    adversarial_accuracy: list[float]
    noise_accuracy: list[float]
    substitute_accuracy: list[float]
    mean_l2: list[float]
    clean_accuracy: float
    agreement: float
    queries: int
    n_points: int
    method: str
    settings: dict[str, Any]
    rounds: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, allow_nan=False)

    def table(self) -> str:
        """Markdown: one row per budget."""
        lines = ["| L∞ ε | model acc. (transfer) | model acc. (noise) | substitute acc. | mean L2 |",
                 "|---|---|---|---|---|"]
        for k, e in enumerate(self.eps):
            lines.append(f"| {e:.4g} | {self.adversarial_accuracy[k]:.3f} | {self.noise_accuracy[k]:.3f} | "
                         f"{self.substitute_accuracy[k]:.3f} | {self.mean_l2[k]:.3f} |")
        return "\n".join(lines)


def _lambda_for_round(rho: int, lam: float, schedule: str, tau: int, rng: np.random.Generator) -> float:
    if schedule == "random":
        return lam * (1.0 if rng.random() < 0.5 else -1.0)
    if schedule == "periodic":
        return lam * (-1.0) ** (rho // tau)
    return lam


def _fit(module: torch.nn.Module, x: np.ndarray, y: np.ndarray, *, epochs: int, lr: float, batch_size: int,
         generator: torch.Generator) -> float:
    """``epochs`` passes of Adam on cross-entropy over shuffled mini-batches; returns the last loss."""
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    optimiser = torch.optim.Adam(module.parameters(), lr=lr)
    module.train()
    loss = torch.zeros(())
    for _ in range(epochs):
        order = torch.randperm(len(xt), generator=generator)
        for start in range(0, len(xt), batch_size):
            batch = order[start:start + batch_size]
            optimiser.zero_grad()
            loss = torch.nn.functional.cross_entropy(module(xt[batch]), yt[batch])
            loss.backward()
            optimiser.step()
    module.eval()
    return float(loss.detach())


def _label_gradient_sign(module: torch.nn.Module, x: np.ndarray, y: np.ndarray, n_classes: int,
                         chunk: int = 4096) -> np.ndarray:
    """``sign(∂ z_y(x) / ∂x)`` row by row (the Jacobian column Papernot's augmentation uses)."""
    gradients = TorchGradients(module)
    one_hot = np.eye(n_classes, dtype=np.float32)
    out = np.empty_like(x)
    for s in range(0, len(x), chunk):
        out[s:s + chunk] = np.sign(gradients.logits_gradient(x[s:s + chunk], one_hot[y[s:s + chunk]]))
    return out


def train_substitute(oracle: Oracle, x_seed: np.ndarray, *, rounds: int = 20, epochs: int = 20, lam: float = 0.1,
                     sign_schedule: str = "random", tau: int = 2, max_size: int = 6400,
                     hidden: Sequence[int] = (200, 200), lr: float = 1e-4, batch_size: int = 128, seed: int = 0,
                     x_eval: np.ndarray | None = None, y_eval: np.ndarray | None = None,
                     progress: bool = False) -> tuple[SubstituteMLP, list[dict[str, float]]]:
    """Train a substitute of the model behind ``oracle`` from the seed set ``x_seed``.

    Returns the substitute (eval mode; logits in the oracle's class order) and one record per
    round (set size, model rows used so far, last loss, and the substitute's accuracy on
    ``x_eval``/``y_eval`` class indices when given).  See the module docstring.
    """
    _check_training(rounds, epochs, lam, sign_schedule, tau, max_size, lr, batch_size)
    x_set = oracle.check(x_seed)
    if len(x_set) < 2:
        raise ValueError(f"the seed set needs at least 2 points, got {len(x_set)}.")
    rng = np.random.default_rng([int(seed), 1])
    torch_gen = torch.Generator().manual_seed(int(seed))
    module = SubstituteMLP(oracle.n_features, oracle.n_classes, hidden, seed=int(seed))
    y_set = np.empty(0, np.int64)
    used = 0
    records = []
    bar = progress_bar(progress, rounds, "substitute", "round")
    for rho in range(rounds):
        new = x_set[len(y_set):]
        y_set = np.concatenate([y_set, oracle.labels(new)])
        used += len(new)
        loss = _fit(module, x_set, y_set, epochs=epochs, lr=lr, batch_size=batch_size, generator=torch_gen)
        record = {"round": rho, "set_size": len(x_set), "queries": used, "loss": loss}
        if x_eval is not None:
            with torch.no_grad():
                pred = module(torch.from_numpy(np.ascontiguousarray(x_eval, np.float32))).argmax(1).numpy()
            record["eval_accuracy"] = float(np.mean(pred == y_eval))
        records.append(record)
        if rho < rounds - 1:
            step = _lambda_for_round(rho, lam, sign_schedule, tau, rng)
            x_new = oracle.clip(x_set + np.float32(step) * _label_gradient_sign(module, x_set, y_set, oracle.n_classes))
            x_set = np.concatenate([x_set, x_new])
            if len(x_set) > max_size:
                # reservoir: a uniform subset; labelled points first so their labels stay aligned
                keep_old = rng.choice(len(x_set), max_size, replace=False)
                keep_old.sort()
                labelled = keep_old[keep_old < len(y_set)]
                fresh = keep_old[keep_old >= len(y_set)]
                x_set = np.concatenate([x_set[labelled], x_set[fresh]])
                y_set = y_set[labelled]
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return module, records


def _check_training(rounds, epochs, lam, sign_schedule, tau, max_size, lr, batch_size) -> None:
    for name, value in (("rounds", rounds), ("epochs", epochs), ("tau", tau), ("max_size", max_size),
                        ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}.")
    for name, value in (("lam", lam), ("lr", lr)):
        if not (isinstance(value, (int, float)) and np.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a finite number > 0, got {value!r}.")
    if sign_schedule not in _SIGN_SCHEDULES:
        raise ValueError(f"sign_schedule must be one of {_SIGN_SCHEDULES}, got {sign_schedule!r}.")


def _transfer_examples(module: torch.nn.Module, oracle: Oracle, x: np.ndarray, y: np.ndarray, eps: float,
                       method: str, pgd_steps: int, seed: int, ids: np.ndarray) -> np.ndarray:
    """FGSM (one step, every point) or PGD (our :class:`~attacks.gradient.PGD`, last iterate;
    points the substitute already gets wrong are left as they are) at L∞ radius ``eps`` on the
    substitute, with the true class indices ``y``."""
    if eps == 0:
        return x.copy()
    sub = Oracle(module, bounds=(oracle.lower, oracle.upper), classes=oracle.n_classes)
    if method == "fgsm":
        return oracle.clip(x + np.float32(eps) * np.sign(sub.loss_gradient(x, y)))
    from .gradient import PGD

    return PGD(norm="inf", eps=eps, steps=pgd_steps)(sub, x, y, seed=seed, sample_ids=ids).extra["x_last"]


def substitute_attack(model: Any, x_seed: np.ndarray, x: np.ndarray, y: np.ndarray, eps: Sequence[float], *,
                      bounds: tuple[Any, Any], method: str = "fgsm", pgd_steps: int = 10, seed: int = 0,
                      progress: bool = False, **training: Any) -> SubstituteResult:
    """Train a substitute of ``model`` from ``x_seed``, transfer FGSM/PGD examples of ``(x, y)``
    at every L∞ budget in ``eps``, and measure the model's accuracy against the noise control.

    ``y`` are the model's own labels (true labels of the attacked points); ``training`` goes to
    :func:`train_substitute`.  Accuracy checks on the model are uncounted confirmation queries;
    ``queries`` counts the training labels only.
    """
    if method not in ("fgsm", "pgd"):
        raise ValueError(f"method must be 'fgsm' or 'pgd', got {method!r}.")
    budgets = [float(e) for e in eps]
    if not budgets or any(not np.isfinite(e) or e < 0 for e in budgets):
        raise ValueError(f"eps must be a non-empty list of finite budgets >= 0, got {list(eps)!r}.")
    oracle = Oracle(model, bounds=bounds)
    x = oracle.check(x)
    y_idx = oracle.encode(np.asarray(y))
    if len(y_idx) != len(x):
        raise ValueError(f"y has {len(y_idx)} labels for {len(x)} points.")
    t0 = time.perf_counter()
    module, rounds = train_substitute(oracle, x_seed, seed=seed, progress=progress, x_eval=x,
                                      y_eval=y_idx, **training)
    ids = np.arange(len(x))
    clean = oracle.confirm(x, ids) == y_idx
    with torch.no_grad():
        sub_clean = module(torch.from_numpy(x)).argmax(1).numpy()
    agreement = float(np.mean(sub_clean == oracle.confirm(x, ids)))
    noise_rng = np.random.default_rng([int(seed), 2])
    noise = noise_rng.standard_normal(x.shape).astype(np.float32)
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    adv_acc, noise_acc, sub_acc, mean_l2 = [], [], [], []
    for e in budgets:
        x_adv = _transfer_examples(module, oracle, x, y_idx, e, method, pgd_steps, seed, ids)
        size = np.linalg.norm((x_adv - x).astype(np.float64), axis=1, keepdims=True).astype(np.float32)
        x_noise = oracle.clip(x + noise * size)
        adv_acc.append(float(np.mean(oracle.confirm(x_adv, ids) == y_idx)))
        noise_acc.append(float(np.mean(oracle.confirm(x_noise, ids) == y_idx)))
        with torch.no_grad():
            sub_acc.append(float(np.mean(module(torch.from_numpy(x_adv)).argmax(1).numpy() == y_idx)))
        mean_l2.append(float(size.mean()))
    settings = {"seed": int(seed), "pgd_steps": pgd_steps if method == "pgd" else None, "n_seed": len(x_seed),
                **{k: (list(v) if isinstance(v, tuple) else v) for k, v in training.items()}}
    return SubstituteResult(eps=budgets, adversarial_accuracy=adv_acc, noise_accuracy=noise_acc,
                            substitute_accuracy=sub_acc, mean_l2=mean_l2, clean_accuracy=float(clean.mean()),
                            agreement=agreement, queries=int(oracle.summary()["rows"]), n_points=len(x),
                            method=method, settings=settings, rounds=rounds, seconds=time.perf_counter() - t0)
