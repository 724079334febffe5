"""What a model is built from, without PyMC: pooling modes, coordinates and the
data-derived arrays every model reads from its ``pm.Data`` containers.

Kept apart from :mod:`groupcov.model.build` so that fitting with a compiled program
saved by an earlier process needs neither PyMC nor PyTensor.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from groupcov.model.centering import group_estimates
from groupcov.model.priors import Priors
from groupcov.stats import Standardization, SufficientStats, pack_suffstats

__all__ = [
    "DATA_DIMS",
    "PARAMETERIZATIONS",
    "POOLING",
    "check_same_structure",
    "coords_for",
    "model_data",
    "pair_labels",
]

POOLING = ("pooled", "unpooled", "hierarchical")
PARAMETERIZATIONS = ("auto", "centered", "noncentered")
Pooling = Literal["pooled", "unpooled", "hierarchical"]

GROUP, FEATURE, FEATURE_, PAIR, STAT = "group", "feature", "feature_", "pair", "stat"
CELL = "cell"
_NO_INFORMATION = 1e100


def pair_labels(features) -> list[str]:
    """Labels of the canonical partial correlations, column by column."""
    p = len(features)
    cols, rows = np.triu_indices(p, 1)
    return [f"{features[i]}|{features[j]}" for i, j in zip(rows, cols, strict=True)]


def coords_for(stats: SufficientStats) -> dict:
    """Named coordinates of a model of these statistics."""
    features = list(stats.features)
    coords = {
        GROUP: list(stats.groups),
        FEATURE: features,
        FEATURE_: features,
        STAT: ["mean", *[f"root{j}" for j in range(len(features))]],
    }
    if len(features) > 1:
        coords[PAIR] = pair_labels(features)
    return coords


# --- data containers ----------------------------------------------------------------------

#: Dimensions of every data container a model may hold.
DATA_DIMS = {
    "center": (FEATURE,),
    "scale": (FEATURE,),
    "mu_sigma": (FEATURE,),
    "n_rows": (GROUP,),
    "suffstats": (GROUP, STAT, FEATURE),
    "cell_group": (CELL,),
    "cell_n": (CELL,),
    "cell_observed": (CELL, FEATURE),
    "cell_suffstats": (CELL, STAT, FEATURE),
    "mu_z_estimate": (GROUP, FEATURE),
    "mu_z_log_variance": (GROUP, FEATURE),
    "log_sd_z_estimate": (GROUP, FEATURE),
    "log_sd_z_log_variance": (GROUP, FEATURE),
    "cpc_z_estimate": (GROUP, PAIR),
    "cpc_z_log_variance": (GROUP, PAIR),
}


def model_data(
    stats: SufficientStats,
    means: Pooling,
    covariance: Pooling,
    priors: Priors,
    parameterization: str,
    standardization: Standardization | None = None,
) -> tuple[dict[str, np.ndarray], Standardization]:
    """Every data-derived array the model reads, by container name.

    The statistics, the standardization, data-scaled prior scales and (for the
    data-informed parameterization) each group's own estimates: everything that
    changes when the data change, so a built model can take new statistics with
    :func:`set_model_data` and keep its compiled functions.

    Parameters
    ----------
    standardization : Standardization, optional
        A fixed center and scale per feature instead of the data's own; with it and
        a fixed ``priors.mu_sigma`` the prior does not depend on the data.

    Returns
    -------
    values : dict
        Container name -> array (see :data:`DATA_DIMS` for the dims).
    standardization : Standardization
    """
    std = stats.standardization() if standardization is None else _fixed(standardization, stats)
    z = stats.standardize(std)
    p = stats.n_features
    mu_sigma = (
        np.full(p, float(priors.mu_sigma)) if priors.mu_sigma is not None
        else 2.0 * _spread(stats, std)
    )
    values = {
        "center": std.center,
        "scale": std.scale,
        "mu_sigma": mu_sigma,
        "n_rows": z.n.astype("float64"),
        "suffstats": pack_suffstats(z.mean, z.scatter),
    }
    cells = z.incomplete
    if cells.n_cells:
        values.update(
            cell_group=cells.group.astype("int64"),
            cell_n=cells.n.astype("float64"),
            cell_observed=cells.observed.astype("float64"),
            cell_suffstats=pack_suffstats(cells.mean, cells.scatter),
        )
    if parameterization == "auto":
        est = group_estimates(z)
        hierarchical = []
        if means == "hierarchical":
            hierarchical.append(("mu_z", "mu"))
        if covariance == "hierarchical":
            hierarchical.append(("log_sd_z", "sd"))
            if p > 1:
                hierarchical.append(("cpc_z", "corr"))
        for name, key in hierarchical:
            estimate, variance = est[key]
            informed = np.isfinite(variance)
            values[f"{name}_estimate"] = np.where(informed, estimate, 0.0)
            values[f"{name}_log_variance"] = np.log(np.where(informed, variance, _NO_INFORMATION))
    return {k: np.asarray(v, dtype="float64") if k != "cell_group" else v
            for k, v in values.items()}, std


def _fixed(std: Standardization, stats: SufficientStats) -> Standardization:
    center, scale = (np.broadcast_to(np.asarray(a, dtype="float64"), (stats.n_features,))
                     for a in std)
    if not np.all(np.isfinite(center)) or not np.all(scale > 0):
        raise ValueError(
            f"standardization needs finite centers and positive scales, got {std}"
        )
    return Standardization(center.copy(), scale.copy())


def check_same_structure(
    old_values: dict, old_stats: SufficientStats, values: dict, stats: SufficientStats
) -> None:
    """Raise unless new statistics fit a model built for the old ones.

    The same groups and features, and the same data containers (missing values may
    not appear or disappear; their number of cells may change).
    """
    if set(values) != set(old_values):
        extra = sorted(set(values) - set(old_values))
        gone = sorted(set(old_values) - set(values))
        raise ValueError(
            "the new statistics need a differently structured model "
            f"(new data containers {extra}, unused {gone}: e.g. missing values appeared "
            "or disappeared); build a new model"
        )
    if list(stats.groups) != list(old_stats.groups) or stats.features != old_stats.features:
        raise ValueError(
            f"the model was built for groups {list(old_stats.groups)} and features "
            f"{list(old_stats.features)}; the new statistics have groups "
            f"{list(stats.groups)} and features {list(stats.features)}: build a new model"
        )




def _spread(stats: SufficientStats, std: Standardization) -> np.ndarray:
    """Total sd over pooled within-group sd per feature (>= 1)."""
    return np.maximum(stats.feature_summary().total_sd / std.scale, 1.0)
