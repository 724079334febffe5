"""groupcov: Bayesian estimation of per-group means and covariance matrices with PyMC."""

from groupcov._config import configure as _configure

_configure()

from groupcov.api import GroupCovModel, MissingValuesWarning  # noqa: E402
from groupcov.data import (  # noqa: E402
    CollinearFeaturesWarning,
    DataError,
    ManyFeaturesWarning,
    reduce,
)
from groupcov.distributions import LKJCholeskyCov, MvNormalSuffStats  # noqa: E402
from groupcov.model.priors import Priors  # noqa: E402
from groupcov.result import GroupCovResult  # noqa: E402
from groupcov.stats import SufficientStats  # noqa: E402

__all__ = [
    "CollinearFeaturesWarning",
    "DataError",
    "GroupCovModel",
    "GroupCovResult",
    "LKJCholeskyCov",
    "ManyFeaturesWarning",
    "MissingValuesWarning",
    "MvNormalSuffStats",
    "Priors",
    "SufficientStats",
    "reduce",
]
__version__ = "0.1.0"
