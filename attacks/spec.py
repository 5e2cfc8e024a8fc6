"""One attack, named: the method and its settings as a frozen, serialisable value.

:class:`AttackSpec` is what the command line builds from the user's options and what an
evaluation carries, unchanged, into its config file and every work unit.  It answers what the
rest of the code needs to know without running anything (the norm, the distance field, what
the attack asks of the model, whether it takes starting points) and builds its attack object
once, on first use (:attr:`AttackSpec.attack`), checking its hyperparameters there.

The settings are the user-facing ones (``iters`` is HopSkipJump's and ZOO's ``max_iter``,
Boundary's and PGD's ``steps``; ``max_queries`` is RayS's ``query_limit`` and every other
attack's per-sample budget); :meth:`AttackSpec.to_dict` is their JSON form.
"""

from __future__ import annotations

import inspect
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import numpy as np

from .base import Attack
from .boundary import Boundary
from .carlini_wagner import CarliniWagnerL2
from .distances import distance_key, norm_name, parse_norm
from .ead import EAD
from .gradient import FGSM, PGD
from .hop_skip_jump import HopSkipJump
from .rays import _DEFAULT_QUERY_LIMIT, RayS
from .structure import StructureAttack
from .zoo import ZOO

__all__ = ["ATTACKS", "AttackSpec"]

ATTACKS: dict[str, type[Attack]] = {"hsj": HopSkipJump, "boundary": Boundary, "rays": RayS, "fgsm": FGSM, "pgd": PGD,
                                    "zoo": ZOO, "ead": EAD, "cw": CarliniWagnerL2, "structure": StructureAttack}
"""Attack classes by the name ``scd attack --method`` uses."""

_NORMS = {"hsj": (2.0, np.inf), "boundary": (2.0,), "rays": (np.inf,), "zoo": (2.0,), "ead": (1.0,), "cw": (2.0,),
          "fgsm": (np.inf,), "pgd": (np.inf, 2.0, 1.0), "structure": (np.inf, 2.0, 1.0)}
"""Norms each method attacks, its default first."""
_ITERS = {"hsj": "max_iter", "boundary": "steps", "pgd": "steps", "zoo": "max_iter", "ead": "max_iter",
          "cw": "max_iter"}
"""The constructor argument that ``iters`` sets."""


@dataclass(frozen=True)
class AttackSpec:
    """An attack method and its settings; ``None`` means the attack's own default.

    Invalid combinations raise ``ValueError`` when the spec is made; the attack's own
    hyperparameter checks run when :attr:`attack` is first built (:meth:`validate` builds it).
    """

    method: str = "hsj"
    norm: str | None = None
    iters: int | None = None
    init_size: int | None = None
    theta: str | None = None
    max_queries: int | None = None
    eps: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if self.method not in ATTACKS:
            raise ValueError(f"Unknown attack method {self.method!r}; choose from {sorted(ATTACKS)}.")
        if self.eps is not None:
            eps = tuple(sorted({float(e) for e in self.eps}))
            if not eps or any(not (np.isfinite(e) and e >= 0) for e in eps):
                raise ValueError(f"--eps must be finite budgets >= 0, got {list(self.eps)}.")
            object.__setattr__(self, "eps", eps)
        allowed = _NORMS[self.method]
        if self.norm is not None and parse_norm(self.norm) not in allowed:
            names = " or ".join({1.0: "L1", 2.0: "L2", np.inf: "Linf"}[a] for a in allowed)
            raise ValueError(f"{self.method} attacks the {names} norm only, not {self.norm!r}.")
        if self.eps is not None and self.method == "structure":
            raise ValueError("--eps is not for structure: it finds each point's own distortion.")
        if self.init_size is not None and self.method not in ("hsj", "boundary"):
            raise ValueError(f"--init-size is for hsj and boundary, not {self.method}.")
        if self.theta is not None and self.method != "hsj":
            raise ValueError(f"--theta is for hsj, not {self.method}.")
        if self.iters is not None and self.method in ("rays", "structure"):
            raise ValueError(f"{self.method} has no iterations" + (
                "; bound it with --max-queries." if self.method == "rays" else "."))
        if self.iters is not None and self.method == "fgsm":
            raise ValueError("fgsm is one step; drop --iters.")
        self._theta()

    # ------------------------------------------------------------------ what it is
    @property
    def norm_value(self) -> float:
        """The norm the attack minimises or bounds: 1.0, 2.0 or inf."""
        return _NORMS[self.method][0] if self.norm is None else parse_norm(self.norm)

    @property
    def distance(self) -> str:
        """The result field of that norm: ``"l1"``, ``"l2"`` or ``"linf"``."""
        return distance_key(self.norm_value)

    @property
    def needs(self) -> str:
        """What the attack asks of the model (:data:`attacks.base.NEEDS`)."""
        return ATTACKS[self.method].needs

    @property
    def bounded(self) -> bool:
        """Whether the attack works inside an ε-ball (fgsm, pgd); the others minimise the distance,
        and their ``eps`` are only the thresholds of the robust-accuracy curve."""
        return self.method in ("fgsm", "pgd")

    def at_eps(self, eps: float) -> AttackSpec:
        """This spec with the single budget ``eps`` (one run of a curve)."""
        return replace(self, eps=(float(eps),))

    def stronger(self, factor: int = 2) -> AttackSpec:
        """This spec with ``factor`` times its iterations and its query budget, counted from the
        attack's defaults where they are unset (HopSkipJump's 40 iterations, RayS's 10,000
        queries); an unbounded budget stays unbounded.  ``ValueError`` for an attack that has
        neither (fgsm, structure): nothing makes it stronger."""
        if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1:
            raise ValueError(f"factor must be an integer >= 1, got {factor!r}.")
        if self.method not in _ITERS and self.method != "rays":
            raise ValueError(f"{self.method} has no iterations or query budget to multiply.")
        changes: dict[str, int] = {}
        if self.method in _ITERS:
            name = _ITERS[self.method]
            default = inspect.signature(ATTACKS[self.method]).parameters[name].default
            changes["iters"] = factor * (default if self.iters is None else self.iters)
        if self.max_queries is not None or self.method == "rays":
            changes["max_queries"] = factor * (self.max_queries or _DEFAULT_QUERY_LIMIT)
        return replace(self, **changes)

    @property
    def uses_starting_points(self) -> bool:
        return ATTACKS[self.method].uses_starting_points

    @property
    def budget(self) -> int | None:
        """The per-sample query budget the attack is called with (RayS bounds itself)."""
        return None if self.method == "rays" else self.max_queries

    # ------------------------------------------------------------------ the attack
    @property
    def attack(self) -> Attack:
        """The attack object, built and checked once per spec (and shipped with it to workers)."""
        built = self.__dict__.get("_attack")
        if built is None:
            built = ATTACKS[self.method](**self._kwargs())
            built.validate()
            object.__setattr__(self, "_attack", built)
        return built

    def validate(self) -> None:
        """Raise ``ValueError`` for any invalid setting, the attack's own hyperparameters included."""
        self.attack  # noqa: B018  (building it runs the checks)

    def __call__(self, model: Any, x: Any, y: Any = None, **options: Any):
        """Run the attack on ``model`` with this spec's budget; ``options`` as for
        :meth:`attacks.base.Attack.__call__` (``bounds``, ``seed``, ``sample_ids``, ...).  A
        bounded attack with several ``eps`` is one run per ε: call :meth:`at_eps` for each."""
        if self.bounded and self.eps is not None and len(self.eps) > 1:
            raise ValueError(f"{self.method} runs at one ε at a time; call spec.at_eps(e) for each of "
                             f"{list(self.eps)}.")
        return self.attack(model, x, y, max_queries=self.budget, **options)

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``eps`` only when set)."""
        out = asdict(self)
        if out["eps"] is None:
            del out["eps"]
        else:
            out["eps"] = list(out["eps"])
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AttackSpec:
        """The spec of :meth:`to_dict` (also the ``attack`` entry of a run's ``config.json``)."""
        names = {f.name for f in fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown attack settings {sorted(unknown)}; expected some of {sorted(names)}.")
        return cls(**data)

    # ------------------------------------------------------------------ internals
    def _theta(self) -> Any:
        if self.theta is None or self.theta in ("paper", "art"):
            return self.theta
        try:
            return float(self.theta)
        except ValueError:
            raise ValueError(f"theta must be 'paper', 'art' or a positive number, got {self.theta!r}.") from None

    def _kwargs(self) -> dict[str, Any]:
        """The attack constructor's arguments for these settings."""
        kwargs: dict[str, Any] = {}
        if self.init_size is not None:
            kwargs["init_size"] = self.init_size
        if self.method in ("hsj", "pgd", "structure"):
            kwargs["norm"] = norm_name(self.norm_value)
        if self.iters is not None:
            kwargs[_ITERS[self.method]] = self.iters
        if self.theta is not None:
            kwargs["theta"] = self._theta()
        if self.method == "rays" and self.max_queries is not None:
            kwargs["query_limit"] = self.max_queries
        if self.eps is not None and self.bounded:
            kwargs["eps"] = self.eps[-1]
        return kwargs
