"""groupcov: Bayesian estimation of per-group means and covariance matrices with PyMC.

Names are imported on first use, so ``import groupcov`` (and the data layer, the
command line's ``--help``, Dask workers) does not load PyMC or JAX until a model
needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from groupcov._config import configure as _configure

_configure()

_LAZY = {
    "CollinearFeaturesWarning": "groupcov.data",
    "ConvergenceWarning": "groupcov.result",
    "DataError": "groupcov.data",
    "DefaultFeaturesWarning": "groupcov.data",
    "ManyFeaturesWarning": "groupcov.data",
    "reduce": "groupcov.data",
    "UnusedCategoriesWarning": "groupcov.data",
    "SufficientStats": "groupcov.stats",
    "GroupCovModel": "groupcov.api",
    "MissingValuesWarning": "groupcov.api",
    "LKJCholeskyCov": "groupcov.distributions",
    "MvNormalSuffStats": "groupcov.distributions",
    "Priors": "groupcov.model.priors",
    "GroupCovResult": "groupcov.result",
    "BayesianQDA": "groupcov.sklearn",
    "compare": "groupcov.comparison",
}

__all__ = [
    "BayesianQDA",
    "CollinearFeaturesWarning",
    "ConvergenceWarning",
    "DataError",
    "DefaultFeaturesWarning",
    "GroupCovModel",
    "GroupCovResult",
    "LKJCholeskyCov",
    "ManyFeaturesWarning",
    "MissingValuesWarning",
    "MvNormalSuffStats",
    "Priors",
    "SufficientStats",
    "UnusedCategoriesWarning",
    "compare",
    "reduce",
]
__version__ = "0.1.0"

if TYPE_CHECKING:  # pragma: no cover
    from groupcov.api import GroupCovModel, MissingValuesWarning
    from groupcov.comparison import compare
    from groupcov.data import (
        CollinearFeaturesWarning,
        DataError,
        DefaultFeaturesWarning,
        ManyFeaturesWarning,
        UnusedCategoriesWarning,
        reduce,
    )
    from groupcov.distributions import LKJCholeskyCov, MvNormalSuffStats
    from groupcov.model.priors import Priors
    from groupcov.result import ConvergenceWarning, GroupCovResult
    from groupcov.sklearn import BayesianQDA
    from groupcov.stats import SufficientStats


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'groupcov' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
