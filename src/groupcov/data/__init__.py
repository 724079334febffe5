"""Data layer: reduce tables, files, queries and clusters to
:class:`~groupcov.stats.SufficientStats`."""

from __future__ import annotations

from groupcov.data.sources import input_kind, reduce
from groupcov.data.validate import (
    CollinearFeaturesWarning,
    DataError,
    DefaultFeaturesWarning,
    ManyFeaturesWarning,
    UnusedCategoriesWarning,
    warn_feature_problems,
)

__all__ = [
    "CollinearFeaturesWarning",
    "DataError",
    "DefaultFeaturesWarning",
    "ManyFeaturesWarning",
    "UnusedCategoriesWarning",
    "input_kind",
    "reduce",
    "warn_feature_problems",
]
