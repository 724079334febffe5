"""What a model is built from, without PyMC: pooling modes, coordinates and the
data-derived arrays every model reads from its ``pm.Data`` containers.

Kept apart from :mod:`groupcov.model.build` so that fitting with a compiled program
saved by an earlier process needs neither PyMC nor PyTensor.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from groupcov.data.validate import DataError, collinear_features, precision_note
from groupcov.model.centering import (
    covariance_estimates,
    covariance_whitening,
    cpc_beta,
    group_estimates,
    log_tau_coordinates,
    mean_whitening,
)
from groupcov.model.priors import Priors
from groupcov.stats import Standardization, SufficientStats, pack_suffstats, plain_label

__all__ = [
    "DATA_DIMS",
    "PARAMETERIZATIONS",
    "POOLING",
    "check_group_covariances",
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
#: Unconstrained covariance coordinates of a group: log sds, then atanh of the CPCs.
COV_PARAM, COV_PARAM_ = "cov_param", "cov_param_"
_NO_INFORMATION = 1e100


#: Separators of the two features in a pair's label, the first that no feature name holds
PAIR_SEPARATORS = ("|", "~", "::", " & ", " / ")


def pair_labels(features) -> list[str]:
    """Labels of the canonical partial correlations, column by column: ``"y|x"``.

    The separator is the first of :data:`PAIR_SEPARATORS` that no feature's name
    contains, so that labels are distinct ("a|b" with "c" and "a" with "b|c" would both
    read "a|b|c"); names holding every one are labelled as tuples.

    Examples
    --------
    >>> pair_labels(["x", "y", "z"])
    ['y|x', 'z|x', 'z|y']
    >>> pair_labels(["c", "b|c", "a|b", "a"])[:2]
    ['b|c~c', 'a|b~c']
    """
    names = [str(f) for f in features]
    cols, rows = np.triu_indices(len(names), 1)
    pairs = list(zip(rows, cols, strict=True))
    sep = next((s for s in PAIR_SEPARATORS if not any(s in n for n in names)), None)
    if sep is None:
        return [repr((names[i], names[j])) for i, j in pairs]
    return [f"{names[i]}{sep}{names[j]}" for i, j in pairs]


# a group's sd of a feature below this fraction of the feature's overall sd is zero
CONSTANT_RTOL = 1e-10


def check_group_covariances(stats: SufficientStats, covariance: str, group: str) -> None:
    """Refuse data whose modelled covariance matrices would be singular.

    Rows may span fewer dimensions than their number allows: a feature that takes one
    value in a group (over more than ``p`` observed values), or features that are exact
    linear combinations of each other over more than ``p`` complete rows. The
    likelihood then grows without bound as the covariance collapses onto that
    subspace, and the posterior piles up against a singular matrix where no sampler can
    follow it. A group of at most ``p`` rows always lies in such a subspace and is fine:
    the prior keeps its covariance away from it. With ``"unpooled"`` or
    ``"hierarchical"`` covariances each group is checked; with ``"pooled"`` the rows'
    deviations from their group means, all groups together.

    Raises
    ------
    DataError
        Naming the groups and features, and what to do.

    Examples
    --------
    >>> import pandas as pd
    >>> import groupcov
    >>> df = pd.DataFrame({"g": ["a"] * 5 + ["b"] * 5,
    ...                    "x": [1.0, 2, 3, 4, 5, 2, 1, 4, 3, 5],
    ...                    "y": [0.5, 1, 0, 2, 1, 3, 3, 3, 3, 3]})
    >>> check_group_covariances(groupcov.reduce(df, "g", ["x", "y"]), "unpooled", "g")
    Traceback (most recent call last):
    ...
    groupcov.data.validate.DataError: feature 'y' takes a single value in group 'b' (always 3) ...
    """
    p = stats.n_features
    if p == 0 or stats.n_groups == 0:
        return
    count, mean, ss = stats.available()
    overall = stats.feature_summary().total_sd
    scatter, n = stats.scatter, stats.n
    if covariance == "pooled":
        dof = np.maximum(count - 1.0, 0.0).sum(axis=0, keepdims=True)
        count, ss = dof + 1.0, ss.sum(axis=0, keepdims=True)
        scatter = scatter.sum(axis=0, keepdims=True)
        n = np.maximum(n - 1, 0).sum(keepdims=True)[None] + 1
    constant = (
        (count > p) & (overall > 0)
        & (ss <= np.maximum(count - 1.0, 0.0) * (CONSTANT_RTOL * overall) ** 2)
    )
    # what is wrong -> [(group index, what the group shows)], one entry per feature
    problems: dict[str, list[tuple[int, str]]] = {}
    for j in range(p):
        for g in np.flatnonzero(constant[:, j]):
            value = f" (always {mean[g, j]:.6g})" if covariance != "pooled" else ""
            problems.setdefault(f"feature {stats.features[j]!r} takes a single value",
                                []).append((g, value))
    # a zero variance left here is a feature constant over all rows: the
    # standardization names it
    varies = (np.diagonal(scatter, axis1=1, axis2=2) > 0).all(axis=1)
    full = np.flatnonzero((n > p) & varies & ~constant.any(axis=1)) if p > 1 else []
    if len(full):
        d = np.sqrt(np.diagonal(scatter[full], axis1=1, axis2=2))
        corr = scatter[full] / (d[:, :, None] * d[:, None, :])
        smallest = np.linalg.eigvalsh(corr)[:, 0]
        for g in full[smallest < 1e-12 * p]:
            names = collinear_features(scatter[g], stats.features)
            problems.setdefault(f"features {names} are exact linear combinations of each "
                                "other", []).append((g, ""))
    if not problems:
        return
    big = [mean[g, j] for g, j in zip(*np.nonzero(constant), strict=True)]
    note = precision_note(max(np.abs(big))) if big else ""
    where = []
    for what, groups in problems.items():
        if covariance == "pooled":
            where.append(f"{what} within every group")
            continue
        labels = [repr(plain_label(stats.groups[g])) + shows for g, shows in groups]
        shown = ", ".join(labels[:5]) + (f" and {len(labels) - 5} more" if len(labels) > 5
                                         else "")
        where.append(f"{what} in group{'s' if len(labels) > 1 else ''} {shown}")
    advice = "leave out the feature(s)"
    if covariance != "pooled" and _pooled_is_regular(stats, group):
        advice += ", or model one covariance for all groups (covariance='pooled')"
    raise DataError(
        f"{'; '.join(where)} of column {group!r}{note}. The "
        f"{'pooled covariance' if covariance == 'pooled' else 'covariance of such a group'} "
        f"would be singular, which a multivariate normal model with covariance="
        f"{covariance!r} cannot represent (its likelihood grows without bound as the "
        f"matrix collapses, and no sampler can follow it): {advice}"
    )


def _pooled_is_regular(stats: SufficientStats, group: str) -> bool:
    try:
        check_group_covariances(stats, "pooled", group)
    except DataError:
        return False
    return True



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
    coords[COV_PARAM] = coords[COV_PARAM_] = cov_param_labels(features)
    return coords


def cov_param_labels(features) -> list[str]:
    """Labels of a group's unconstrained covariance coordinates."""
    return [*(f"log_sd[{f}]" for f in features),
            *(f"atanh_cpc[{pair}]" for pair in pair_labels(features))]


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
    "mu_z_variance": (GROUP, FEATURE),
    "mu_z_whiten": (GROUP, FEATURE, FEATURE_),
    "cov_z_estimate": (GROUP, COV_PARAM),
    "cov_z_variance": (GROUP, COV_PARAM),
    "cov_z_whiten": (GROUP, COV_PARAM, COV_PARAM_),
    "chol_z_center": (GROUP, COV_PARAM),
    "chol_z_whiten": (GROUP, COV_PARAM, COV_PARAM_),
    "chol_pop_z_center": (COV_PARAM,),
    "chol_pop_z_whiten": (COV_PARAM, COV_PARAM_),
    "mu_tau_center": (FEATURE,),
    "mu_tau_scale": (FEATURE,),
    "sd_tau_center": (FEATURE,),
    "sd_tau_scale": (FEATURE,),
    "corr_tau_center": (),
    "corr_tau_scale": (),
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
        values.update(_whitening_data(z, means, covariance, priors, mu_sigma))
    return {k: np.asarray(v, dtype="float64") if k != "cell_group" else v
            for k, v in values.items()}, std


def _whitening_data(
    z: SufficientStats, means: str, covariance: str, priors: Priors, mu_sigma: np.ndarray
) -> dict:
    """Containers of the whitened parameterization (``distributions/whitening.py``).

    Hierarchical and unpooled means and hierarchical covariances: each group's
    estimates, their sampling variances (huge where a group has no
    information) and the Cholesky factor of their correlation; for hierarchical
    modes also the centre and scale of each between-group sd's ``log tau``
    coordinate. Unpooled and pooled covariances: a fixed centre and lower-triangular
    factor per matrix, from the Gaussian approximation of the posterior (the
    estimates' precision plus the prior's curvature at its mode).
    """
    est = group_estimates(z)
    p = z.n_features
    out = {}
    if means in ("unpooled", "hierarchical"):
        estimate, variance = est["mu"]
        out.update(_centred("mu_z", estimate, variance), mu_z_whiten=mean_whitening(z, est))
    if means == "hierarchical":
        out.update(_tau_coordinates(
            "mu_tau", out["mu_z_estimate"], out["mu_z_variance"], priors.mu_tau_scale(mu_sigma)
        ))
    if covariance == "pooled":
        # one matrix: the groups' scatter about their own means, n - G + 1 rows
        dof = float(z.n.sum() - np.count_nonzero(z.n))
        z = SufficientStats(
            ("pooled",), z.features, np.array([int(dof) + 1]), np.zeros((1, p)),
            z.scatter.sum(axis=0)[None],
        )
        est = group_estimates(z)
    estimate, variance = covariance_estimates(est)
    factor = covariance_whitening(p, estimate, variance)
    if covariance == "hierarchical":
        out.update(_centred("cov_z", estimate, variance), cov_z_whiten=factor)
        known, var = out["cov_z_estimate"], out["cov_z_variance"]
        out.update(_tau_coordinates("sd_tau", known[:, :p], var[:, :p], priors.sd_tau_sigma))
        if p > 1:
            out.update(_tau_coordinates(
                "corr_tau", known[:, p:], var[:, p:], priors.corr_tau_sigma, shared=True
            ))
        return out
    centre, factor = _gaussian_posterior(
        estimate, variance, factor, _cov_prior_precision(p, priors)
    )
    if covariance == "unpooled":
        out.update(chol_z_center=centre, chol_z_whiten=factor)
    else:
        out.update(chol_pop_z_center=centre[0], chol_pop_z_whiten=factor[0])
    return out


def _centred(name: str, estimate: np.ndarray, variance: np.ndarray) -> dict:
    informed = np.isfinite(variance)
    return {
        f"{name}_estimate": np.where(informed, estimate, 0.0),
        f"{name}_variance": np.where(informed, variance, _NO_INFORMATION),
    }


def _tau_coordinates(name: str, estimate, variance, sigma, shared: bool = False) -> dict:
    center, scale = log_tau_coordinates(estimate, variance, sigma, shared=shared)
    return {f"{name}_center": center, f"{name}_scale": scale}


def _cov_prior_precision(p: int, priors: Priors) -> np.ndarray:
    """Curvature at the mode of the LKJ-LogNormal prior in ``(log sd, atanh CPC)``.

    Log sds are ``N(0, log_sd_sigma)``; ``atanh`` of a CPC with density Beta(b, b) on
    (-1, 1) has density proportional to ``cosh(w)^(-2 b)``, curvature ``2 b`` at 0.
    """
    return np.concatenate([np.full(p, priors.log_sd_sigma**-2.0), 2.0 * cpc_beta(priors.eta, p)])


def _gaussian_posterior(estimate, variance, corr_factor, prior_precision):
    """Mean and lower Cholesky factor of ``N(estimate, V) x N(0, diag(1 / prior))``.

    ``V = D^1/2 R R^T D^1/2`` with ``D = variance`` (infinite: no information) and
    ``R = corr_factor``.
    """
    d = estimate.shape[-1]
    with np.errstate(divide="ignore"):
        inv_sd = np.where(np.isfinite(variance), 1.0 / np.sqrt(variance), 0.0)
    # A = R^-1 D^-1/2, so V^-1 = A^T A (rows of an uninformed coordinate vanish)
    a = np.linalg.solve(corr_factor, np.eye(d) * inv_sd[..., None, :])
    data_precision = np.swapaxes(a, -1, -2) @ a
    covariance = np.linalg.inv(data_precision + np.eye(d) * prior_precision)
    covariance = 0.5 * (covariance + np.swapaxes(covariance, -1, -2))
    known = np.where(np.isfinite(variance), estimate, 0.0)
    centre = np.einsum("...ij,...jk,...k->...i", covariance, data_precision, known)
    return centre, np.linalg.cholesky(covariance)


def _fixed(std: Standardization, stats: SufficientStats) -> Standardization:
    if len(std) != 2:
        raise ValueError(f"standardization must be a (center, scale) pair, got {std!r}")
    parts = []
    for name, a in zip(("center", "scale"), std, strict=True):
        a = np.asarray(a, dtype="float64")
        if a.ndim > 1 or a.size not in (1, stats.n_features):
            raise ValueError(
                f"standardization {name} must be one number or one per feature "
                f"({stats.n_features}: {list(stats.features)}), got shape {a.shape}"
            )
        parts.append(np.broadcast_to(a.reshape(-1), (stats.n_features,)))
    center, scale = parts
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
