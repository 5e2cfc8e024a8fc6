"""scd: ensembles of sign-activation networks trained with 0-1 loss by stochastic coordinate descent."""

__version__ = "0.1.0"

from ._base import load  # noqa: E402
from .estimators import SCD01, SCD01BNN, SCDCE, SCDCEBNN, SCDClassifier  # noqa: E402
from .multiclass import OneVsRest

__all__ = ["SCD01", "SCD01BNN", "SCDCE", "SCDCEBNN", "OneVsRest", "SCDClassifier", "load", "__version__"]
