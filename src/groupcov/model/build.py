"""Build the PyMC model: priors for each pooling mode and the exact likelihood.

The model works on the standardized scale (see :class:`~groupcov.stats.Standardization`)
and reports ``mu``, ``sigma``, ``corr`` and ``cov`` in the data's units as
deterministics. Each pooling mode is a small function returning standardized
parameters: means ``(G, p)`` and covariance Cholesky factors ``(G, p, p)``.

Hierarchical modes use a partially centered parameterization
(Papaspiliopoulos, Roberts & Sköld 2007): for ``theta ~ N(loc, scale)`` the sampler
sees ``raw ~ N(w * loc, scale**w)`` and ``theta = loc + scale**(1 - w) * (raw - w * loc)``.
``w = 1`` is the centered form (best for groups with much data), ``w = 0`` the
non-centered one (best for groups with little data). The model is the same for any
``w``; only the geometry the sampler sees changes. The default (``"auto"``) sets ``w``
per group and coordinate from the group's own data and also takes out the correlation
between a group's parameters (:mod:`groupcov.distributions.whitening`); unpooled and
pooled parameters are whitened the same way.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from groupcov._special import trigamma
from groupcov.distributions.lkj import (
    LKJCholeskyCov,
    corr_and_stds,
    corr_cholesky_from_unconstrained,
    cpc_beta_parameter,
)
from groupcov.distributions.mvnormal import MvNormalSuffStats, masked_suffstat_logp
from groupcov.distributions.whitening import (
    scaled_halfnormal,
    whitened_lkj_cov,
    whitened_normal,
    zeros_support_point,
)
from groupcov.model.inputs import (
    CELL,
    COV_PARAM,
    DATA_DIMS,
    FEATURE,
    FEATURE_,
    GROUP,
    PAIR,
    PARAMETERIZATIONS,
    POOLING,
    STAT,
    Pooling,
    check_same_structure,
    coords_for,
    model_data,
)
from groupcov.model.priors import Priors
from groupcov.stats import Standardization, SufficientStats

__all__ = [
    "DATA_DIMS",
    "PARAMETERIZATIONS",
    "POOLING",
    "ModelParts",
    "build_model",
    "check_same_structure",
    "coords_for",
    "model_data",
    "set_model_data",
]


class ModelParts(NamedTuple):
    """A built model together with what is needed to read it."""

    model: pm.Model
    standardization: Standardization
    priors: Priors
    data: dict


def _fixed_centering(name, loc, scale, weight: float, dims):
    """``theta ~ N(loc, scale)`` with a fixed centering weight (1 centered, 0 non-centered).

    ``raw ~ N(w * loc, scale**w)`` and ``theta = loc + scale**(1 - w) * (raw - w * loc)``.
    """
    log_scale = pt.log(scale)
    raw = pm.Normal(f"{name}_raw", mu=weight * loc, sigma=pt.exp(weight * log_scale), dims=dims)
    return loc + pt.exp((1.0 - weight) * log_scale) * (raw - weight * loc)


class LocPrior(NamedTuple):
    """Prior of a population location, for the data-informed parameterization.

    ``make(name, shift, scale, dims)`` registers ``xi`` such that ``shift + scale * xi``
    has the prior, with support point ``xi = 0`` (the location the data suggest; the
    prior's mean can be far from it); ``precision`` is the prior's precision in a normal
    approximation.
    """

    make: object
    plain: object
    precision: np.ndarray


def _normal_dist(mu, sigma, size):
    return pm.Normal.dist(mu, sigma, size=size)


def normal_loc(sigma) -> LocPrior:
    """``N(0, sigma)`` population location (``sigma`` an array or a tensor)."""
    sigma = pt.as_tensor_variable(sigma)

    def make(name, shift, scale, dims):
        return pm.CustomDist(
            name, -shift / scale, sigma / scale, dist=_normal_dist,
            support_point=zeros_support_point, dims=dims,
        )

    def plain(name, dims):
        return pm.Normal(name, 0.0, sigma, dims=dims)

    return LocPrior(make, plain, 1.0 / sigma**2)


def atanh_beta_loc(b: np.ndarray) -> LocPrior:
    """``atanh(2 u - 1)`` with ``u ~ Beta(b, b)``: the LKJ prior of each CPC, atanh scale."""

    def dist(b, shift, scale, size):
        return (pt.arctanh(2.0 * pm.Beta.dist(b, b, size=size) - 1.0) - shift) / scale

    def make(name, shift, scale, dims):
        return pm.CustomDist(
            name, b, shift, scale, dist=dist, support_point=zeros_support_point, dims=dims
        )

    def plain(name, dims):
        return pm.CustomDist(name, b, 0.0, 1.0, dist=dist, dims=dims)

    return LocPrior(make, plain, 2.0 / trigamma(b))


def population_loc(name, loc_prior: LocPrior, tau, estimate, variance, dims):
    """Population location ``loc`` of ``theta_g ~ N(loc, tau)``, data-informed.

    Sampled as ``m + s * xi`` with ``m`` and ``s`` the mean and sd of the Gaussian
    approximation of its conditional posterior given ``tau`` (each group's estimate
    weighted by ``1 / (v_g + tau^2)``); the prior is unchanged.
    """
    precision = 1.0 / (variance + tau**2)
    total = loc_prior.precision + pt.sum(precision, axis=0)
    shift = pt.sum(precision * estimate, axis=0) / total
    scale = 1.0 / pt.sqrt(total)
    return shift + scale * loc_prior.make(f"{name}_pop_xi", shift, scale, dims)


def _whitened(name, loc, tau, data, dims):
    """``theta_g ~ N(loc, tau)`` in the coordinates of the containers ``{name}_estimate``,
    ``{name}_variance`` and ``{name}_whiten`` (:func:`whitened_normal`)."""
    return whitened_normal(
        name, loc, tau, data[f"{name}_estimate"], data[f"{name}_variance"],
        data[f"{name}_whiten"], dims,
    )


def hierarchical_normal(name, loc_prior: LocPrior, tau, dims, param, data):
    """Population location ``loc`` and group values ``theta_g ~ N(loc, tau)``.

    ``param="auto"`` samples both through their Gaussian conditional posteriors given
    ``tau``, from each group's own estimates, their sampling variances and their
    correlation (:func:`population_loc`, :func:`whitened_normal`). The prior is
    unchanged; the sampler sees coordinates that are close to independent standard
    normals whether the groups are small or large, alike or different.
    ``"centered"`` and ``"noncentered"`` are the two fixed forms.

    Returns
    -------
    loc, theta : TensorVariable
    """
    loc_dims = dims[1:]
    if param != "auto":
        loc = loc_prior.plain(f"{name}_pop", loc_dims)
        weight = 1.0 if param == "centered" else 0.0
        return loc, _fixed_centering(name, loc, tau, weight, dims)
    loc = population_loc(
        name, loc_prior, tau, data[f"{name}_estimate"], data[f"{name}_variance"], loc_dims
    )
    return loc, _whitened(name, loc, tau, data, dims)


def _between_group_sd(name, key, sigma, dims, param, data):
    """``HalfNormal(sigma)`` between-group sd; with ``param="auto"`` sampled in the
    coordinates of the containers ``{key}_center`` and ``{key}_scale``
    (:func:`scaled_halfnormal`)."""
    if param != "auto":
        return pm.HalfNormal(name, sigma, dims=dims)
    return scaled_halfnormal(name, sigma, data[f"{key}_center"], data[f"{key}_scale"], dims)


# --- means --------------------------------------------------------------------------------


def _means_pooled(stats, priors, data, param):
    mu_pop = pm.Normal("mu_pop_z", 0.0, data["mu_sigma"], dims=FEATURE)
    return pt.broadcast_to(mu_pop, (stats.n_groups, stats.n_features)), {"mu_pop": mu_pop}


def _means_unpooled(stats, priors, data, param):
    if param == "auto":
        mu_sigma = data["mu_sigma"]
        return _whitened("mu_z", pt.zeros_like(mu_sigma), mu_sigma, data, (GROUP, FEATURE)), {}
    return pm.Normal("mu_z", 0.0, data["mu_sigma"], dims=(GROUP, FEATURE)), {}


def _means_hierarchical(stats, priors, data, param):
    mu_sigma = data["mu_sigma"]
    mu_tau = _between_group_sd(
        "mu_tau_z", "mu_tau", priors.mu_tau_scale(mu_sigma), FEATURE, param, data
    )
    mu_pop, mu = hierarchical_normal(
        "mu_z", normal_loc(mu_sigma), mu_tau, (GROUP, FEATURE), param, data
    )
    return mu, {"mu_pop": mu_pop, "mu_tau": mu_tau}


# --- covariances --------------------------------------------------------------------------


def _sd_dist(priors, shape):
    return pm.LogNormal.dist(mu=0.0, sigma=priors.log_sd_sigma, shape=shape)


def _cov_pooled(stats, priors, data, param):
    p = stats.n_features
    if param == "auto":
        chol = whitened_lkj_cov(
            "chol_pop_z", p, priors.eta, priors.log_sd_sigma, data["chol_pop_z_center"],
            data["chol_pop_z_whiten"], (COV_PARAM,),
        )
    else:
        chol = LKJCholeskyCov(
            "chol_pop_z", n=p, eta=priors.eta, sd_dist=_sd_dist(priors, (p,)),
            compute_corr=False, dims=(FEATURE, FEATURE_),
        )
    return pt.broadcast_to(chol, (stats.n_groups, p, p)), {}


def _cov_unpooled(stats, priors, data, param):
    p = stats.n_features
    if param == "auto":
        chol = whitened_lkj_cov(
            "chol_z", p, priors.eta, priors.log_sd_sigma, data["chol_z_center"],
            data["chol_z_whiten"], (GROUP, COV_PARAM),
        )
    else:
        chol = LKJCholeskyCov(
            "chol_z", n=p, eta=priors.eta, sd_dist=_sd_dist(priors, (stats.n_groups, p)),
            compute_corr=False, dims=(GROUP, FEATURE, FEATURE_),
        )
    return chol, {}


def _cov_hierarchical(stats, priors, data, param):
    g, p = stats.n_groups, stats.n_features
    sd_tau = _between_group_sd("sd_tau", "sd_tau", priors.sd_tau_sigma, FEATURE, param, data)
    sd_loc = normal_loc(np.full(p, priors.log_sd_sigma))
    b = cpc_beta_parameter(priors.eta, p)
    corr_tau = (
        _between_group_sd("corr_tau", "corr_tau", priors.corr_tau_sigma, None, param, data)
        if p > 1 else None
    )
    if param != "auto":
        log_sd_pop, log_sd = hierarchical_normal(
            "log_sd_z", sd_loc, sd_tau, (GROUP, FEATURE), param, data
        )
        hyper = {"log_sd_pop": log_sd_pop, "sd_tau": sd_tau}
        if p > 1:
            atanh_pop, atanh_cpc = hierarchical_normal(
                "cpc_z", atanh_beta_loc(b), corr_tau, (GROUP, PAIR), param, data
            )
            hyper.update(atanh_cpc_pop=atanh_pop, corr_tau=corr_tau)
        else:
            atanh_cpc = pt.zeros((g, 0))
    else:
        # log sds and atanh CPCs of a group in one vector, whitened together
        est, var = data["cov_z_estimate"], data["cov_z_variance"]
        log_sd_pop = population_loc(
            "log_sd_z", sd_loc, sd_tau, est[:, :p], var[:, :p], (FEATURE,)
        )
        hyper = {"log_sd_pop": log_sd_pop, "sd_tau": sd_tau}
        loc, tau = log_sd_pop, sd_tau
        if p > 1:
            atanh_pop = population_loc(
                "cpc_z", atanh_beta_loc(b), corr_tau, est[:, p:], var[:, p:], (PAIR,)
            )
            hyper.update(atanh_cpc_pop=atanh_pop, corr_tau=corr_tau)
            loc = pt.concatenate([log_sd_pop, atanh_pop])
            tau = pt.concatenate([sd_tau, pt.repeat(corr_tau[None], len(b))])
        theta = _whitened("cov_z", loc, tau, data, (GROUP, COV_PARAM))
        log_sd, atanh_cpc = theta[:, :p], theta[:, p:]
    corr_chol = corr_cholesky_from_unconstrained(atanh_cpc, p)
    return pt.exp(log_sd)[..., :, None] * corr_chol, hyper


_MEANS = {"pooled": _means_pooled, "unpooled": _means_unpooled, "hierarchical": _means_hierarchical}
_COVS = {"pooled": _cov_pooled, "unpooled": _cov_unpooled, "hierarchical": _cov_hierarchical}


def _report(stats, data, mu_z, chol_z, hyper) -> None:
    """Deterministics in the data's units."""
    p = stats.n_features
    center, scale = (pt.specify_shape(data[k], (p,)) for k in ("center", "scale"))
    corr, sd_z = corr_and_stds(chol_z)
    sigma = scale * sd_z
    pm.Deterministic("mu", center + scale * mu_z, dims=(GROUP, FEATURE))
    pm.Deterministic("sigma", sigma, dims=(GROUP, FEATURE))
    pm.Deterministic("corr", corr, dims=(GROUP, FEATURE, FEATURE_))
    pm.Deterministic(
        "cov", sigma[..., :, None] * sigma[..., None, :] * corr, dims=(GROUP, FEATURE, FEATURE_)
    )
    if "mu_pop" in hyper:
        pm.Deterministic("mu_pop", center + scale * hyper["mu_pop"], dims=FEATURE)
    if "mu_tau" in hyper:
        pm.Deterministic("mu_tau", scale * hyper["mu_tau"], dims=FEATURE)
    if "log_sd_pop" in hyper:
        pm.Deterministic("sigma_pop", scale * pt.exp(hyper["log_sd_pop"]), dims=FEATURE)
    if "atanh_cpc_pop" in hyper:
        pop_chol = corr_cholesky_from_unconstrained(hyper["atanh_cpc_pop"], p)
        pm.Deterministic("corr_pop", corr_and_stds(pop_chol)[0], dims=(FEATURE, FEATURE_))
        # population CPCs (atanh scale, unit-free): new groups are drawn around them
        pm.Deterministic("atanh_cpc_pop", hyper["atanh_cpc_pop"], dims=PAIR)


def _model_values(model: pm.Model) -> dict:
    return {name: model[name].get_value() for name in DATA_DIMS if name in model.named_vars}


def _model_stats_stub(model: pm.Model) -> SufficientStats:
    groups, features = list(model.coords[GROUP]), list(model.coords[FEATURE])
    g, p = len(groups), len(features)
    return SufficientStats(
        tuple(groups), tuple(features), np.zeros(g, dtype=np.int64), np.zeros((g, p)),
        np.zeros((g, p, p)),
    )


def set_model_data(
    model: pm.Model,
    stats: SufficientStats,
    means: Pooling,
    covariance: Pooling,
    priors: Priors,
    parameterization: str,
    standardization: Standardization | None = None,
) -> Standardization:
    """Put new statistics (same groups and features) into a built model, in place.

    Equivalent to building the model from ``stats``, but the graph is kept, so
    compiled samplers are reused.

    Returns
    -------
    Standardization
        The new data's standardization.
    """
    values, std = model_data(stats, means, covariance, priors, parameterization, standardization)
    check_same_structure(_model_values(model), _model_stats_stub(model), values, stats)
    coords = {CELL: np.arange(len(values["cell_n"]))} if "cell_n" in values else None
    pm.set_data(values, model=model, coords=coords)
    return std


def build_model(
    stats: SufficientStats,
    means: Pooling = "hierarchical",
    covariance: Pooling = "hierarchical",
    priors: Priors | None = None,
    parameterization: Literal["auto", "centered", "noncentered"] = "auto",
    standardization: Standardization | None = None,
) -> ModelParts:
    """Build the PyMC model of per-group means and covariances.

    Parameters
    ----------
    stats : SufficientStats
        Per-group statistics in the data's units; rows with missing features
        contribute the exact marginal likelihood of their observed features.
    means, covariance : {"pooled", "unpooled", "hierarchical"}
        Pooling of the group means and of the group covariance matrices.
    priors : Priors, optional
        Prior settings on the standardized scale.
    parameterization : {"auto", "centered", "noncentered"}
        Geometry the sampler sees. ``"auto"`` sets each group's centering weight
        from its own data and the spread between groups, and whitens each group's
        coordinates (:mod:`groupcov.distributions.whitening`); ``"centered"`` and
        ``"noncentered"`` are the plain forms, with the LKJ prior of
        :class:`~groupcov.distributions.lkj.LKJCholeskyCov` for unpooled and pooled
        covariances.
    standardization : Standardization, optional
        Fixed per-feature center and scale of the fitting scale (default: the data's
        pooled mean and within-group sd).

    Returns
    -------
    ModelParts

    Notes
    -----
    Everything computed from the data lives in ``pm.Data`` containers
    (:data:`DATA_DIMS`), so :func:`set_model_data` can swap in new statistics.
    """
    priors = priors or Priors()
    if parameterization not in PARAMETERIZATIONS:
        raise ValueError(
            f"parameterization must be one of {PARAMETERIZATIONS}, not {parameterization!r}"
        )
    values, std = model_data(stats, means, covariance, priors, parameterization, standardization)
    p = stats.n_features
    coords = coords_for(stats)
    if "cell_n" in values:
        coords[CELL] = np.arange(len(values["cell_n"]))
    # parameters are valid by construction: no run-time bound checks in the graph
    with pm.Model(coords=coords, check_bounds=False) as model:
        data = {name: pm.Data(name, v, dims=DATA_DIMS[name]) for name, v in values.items()}
        mu_z, hyper_mu = _MEANS[means](stats, priors, data, parameterization)
        chol_z, hyper_cov = _COVS[covariance](stats, priors, data, parameterization)
        chol_z = pt.specify_shape(chol_z, (stats.n_groups, p, p))
        MvNormalSuffStats(
            "obs", n=data["n_rows"], mu=mu_z, chol=chol_z, observed=data["suffstats"],
            dims=(GROUP, STAT, FEATURE),
        )
        if "cell_n" in data:
            idx = data["cell_group"]
            packed = data["cell_suffstats"]
            pm.Potential(
                "obs_incomplete",
                pt.sum(
                    masked_suffstat_logp(
                        data["cell_n"], packed[:, 0, :], packed[:, 1:, :], mu_z[idx],
                        chol_z[idx], data["cell_observed"],
                    )
                ),
            )
        _report(stats, data, mu_z, chol_z, {**hyper_mu, **hyper_cov})
    return ModelParts(model, std, priors, values)


