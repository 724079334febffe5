"""Posterior predictions: new rows of known and new groups, conditional normals, imputation.

A *known* group's parameters are its posterior draws. A *new* group (asked for with
``new_group=True``; its label is only a name) draws its mean and covariance from the
fitted population, once per posterior draw:

- means ``"hierarchical"``: ``μ_new = μ_pop + μ_tau · z``; ``"pooled"``: ``μ_pop``;
- covariance ``"hierarchical"``: ``σ_new = σ_pop · exp(sd_tau · z)`` per feature and
  canonical partial correlations ``tanh(atanh(cpc_pop) + corr_tau · e)``;
  ``"pooled"``: the shared covariance;
- ``"unpooled"`` says nothing about a new group: asking for one is an error.

A label that is not a group of the fit, without ``new_group=True``, is an error (a typo
must not quietly turn into a new group).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, NamedTuple

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr

from groupcov.classify import DEFAULT_MAX_BYTES, posterior_draws, rows_from_data

if TYPE_CHECKING:
    from groupcov.result import GroupCovResult

__all__ = [
    "Conditional",
    "GroupParameters",
    "conditional",
    "corr_cholesky_from_cpc",
    "group_parameters",
    "impute",
    "predict",
]


class GroupParameters(NamedTuple):
    """Mean ``(chain, draw, p)`` and covariance ``(chain, draw, p, p)`` draws of a group."""

    mu: np.ndarray
    cov: np.ndarray
    new: bool


def corr_cholesky_from_cpc(cpc: np.ndarray, p: int) -> np.ndarray:
    """Cholesky factors ``(..., p, p)`` of correlation matrices from CPCs ``(..., K)``.

    CPCs are ordered column by column, ``(1, 0), (2, 0), ..., (p-1, 0), (2, 1), ...``
    (the order of the model's ``pair`` dimension).

    Examples
    --------
    >>> c = corr_cholesky_from_cpc(np.array([0.5, -0.2, 0.3]), 3)
    >>> np.allclose((c**2).sum(-1), 1.0)
    True
    >>> float(round((c @ c.T)[1, 0], 6))
    0.5
    """
    cpc = np.asarray(cpc, dtype=float)
    cols, rows = np.triu_indices(p, 1)
    z = np.zeros((*cpc.shape[:-1], p, p))
    z[..., rows, cols] = cpc
    chol = np.zeros_like(z)
    for i in range(p):
        remaining = np.ones(cpc.shape[:-1])
        for j in range(i):
            chol[..., i, j] = z[..., i, j] * np.sqrt(remaining)
            remaining = remaining - chol[..., i, j] ** 2
        chol[..., i, i] = np.sqrt(np.maximum(remaining, 0.0))
    return chol


def _require(post, names, mode_text):
    missing = [n for n in names if n not in post]
    if missing:
        raise KeyError(
            f"a new group under {mode_text} needs the posterior variables {missing}, "
            "which this fit does not keep; refit without var_names= limits"
        )


def _new_group(result: GroupCovResult, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    post = result.idata.posterior
    means = result.spec.get("means")
    covariance = result.spec.get("covariance")
    for arg, mode in (("means", means), ("covariance", covariance)):
        if mode == "unpooled":
            raise ValueError(
                f"{arg}='unpooled' gives each group its own independent parameters, so the "
                f"fit says nothing about a new group; refit with {arg}='hierarchical' "
                f"(or 'pooled') to predict groups it has not seen, or pick one of "
                f"{result.groups}"
            )
        if mode not in ("pooled", "hierarchical"):
            raise ValueError(
                f"the fit's spec does not record the {arg}= pooling ({mode!r}); "
                "cannot predict a new group"
            )
    chains, draws = post.sizes["chain"], post.sizes["draw"]
    p = len(result.features)
    shape = (chains, draws, p)
    if means == "pooled":
        mu = post["mu"].isel(group=0).transpose("chain", "draw", "feature").values
    else:
        _require(post, ["mu_pop", "mu_tau"], "means='hierarchical'")
        mu_pop = post["mu_pop"].transpose("chain", "draw", "feature").values
        mu_tau = post["mu_tau"].transpose("chain", "draw", "feature").values
        mu = mu_pop + mu_tau * rng.standard_normal(shape)
    if covariance == "pooled":
        cov = posterior_draws(result).covariance(slice(None), 0)
        return mu, cov.reshape(chains, draws, p, p)
    names = ["sigma_pop", "sd_tau"] + (["atanh_cpc_pop", "corr_tau"] if p > 1 else [])
    _require(post, names, "covariance='hierarchical'")
    sigma_pop = post["sigma_pop"].transpose("chain", "draw", "feature").values
    sd_tau = post["sd_tau"].transpose("chain", "draw", "feature").values
    sigma = sigma_pop * np.exp(sd_tau * rng.standard_normal(shape))
    if p > 1:
        w_pop = post["atanh_cpc_pop"].transpose("chain", "draw", ...).values
        corr_tau = post["corr_tau"].values[..., None]
        w = w_pop + corr_tau * rng.standard_normal(w_pop.shape)
        corr_chol = corr_cholesky_from_cpc(np.tanh(w), p)
        corr = corr_chol @ np.swapaxes(corr_chol, -1, -2)
    else:
        corr = np.ones((chains, draws, 1, 1))
    cov = sigma[..., :, None] * sigma[..., None, :] * corr
    return mu, cov


def group_parameters(result: GroupCovResult, group, random_seed=None, *,
                     new_group: bool = False) -> GroupParameters:
    """Posterior draws of a group's mean and covariance; a new group's from the population.

    Parameters
    ----------
    result : GroupCovResult
        The fit.
    group : hashable
        A group label of the fit; with ``new_group=True`` the name of a new group.
    random_seed : int or numpy.random.Generator, optional
        Seed of the draws of a new group's parameters.
    new_group : bool
        Draw a group the fit has not seen from the population (see the module
        description) instead of one of the fit's groups.

    Returns
    -------
    GroupParameters

    Raises
    ------
    KeyError
        If ``group`` is not a group of the fit and ``new_group`` is false.
    ValueError
        If ``new_group`` is true and ``group`` is a group of the fit, or the fit's
        modes say nothing about a new group.
    """
    post = result.idata.posterior
    known = _known_label(result, group)
    if new_group and known is not None:
        raise ValueError(
            f"{str(group)!r} is a group of the fit; new_group=True draws a group the fit has not "
            "seen: give it another name"
        )
    if not new_group and known is None:
        from groupcov.result import unknown_group_message

        raise KeyError(unknown_group_message(
            group, result.groups, "; pass new_group=True to draw from a new group"))
    if known is not None:
        group = known
        sel = post[[n for n in ("mu", "cov", "sigma", "corr") if n in post]].sel(group=group)
        mu = sel["mu"].transpose("chain", "draw", "feature").values
        if "cov" in post:
            cov = sel["cov"].transpose("chain", "draw", "feature", "feature_").values
        else:
            sigma = sel["sigma"].transpose("chain", "draw", "feature").values
            corr = sel["corr"].transpose("chain", "draw", "feature", "feature_").values
            cov = sigma[..., :, None] * sigma[..., None, :] * corr
        return GroupParameters(mu, cov, False)
    rng = np.random.default_rng(random_seed)
    mu, cov = _new_group(result, rng)
    return GroupParameters(mu, cov, True)


def _known_label(result: GroupCovResult, group):
    """The fit's label equal to ``group`` (compared as given, then as text), or None."""
    groups = result.groups
    if any(group == g and type(group) is type(g) for g in groups):
        return group
    text = str(group)
    matches = [g for g in groups if str(g) == text]
    return matches[0] if len(matches) == 1 else None


def _coords(result: GroupCovResult, extra: dict | None = None) -> dict:
    post = result.idata.posterior
    coords = {
        "chain": post.chain.values,
        "draw": post.draw.values,
        "feature": list(result.features),
        "feature_": list(result.features),
    }
    coords.update(extra or {})
    return coords


def predict(result: GroupCovResult, group, n: int = 100, random_seed=None, *,
            new_group: bool = False) -> az.InferenceData:
    """Posterior predictive rows of a known or a new group.

    For each posterior draw ``s`` the group's ``(μ_s, Σ_s)`` is taken (for a new group,
    drawn from the population first) and ``n`` rows are drawn from ``N(μ_s, Σ_s)``.

    Parameters
    ----------
    result : GroupCovResult
        The fit.
    group : hashable
        A group label of the fit; with ``new_group=True`` the name of the new group.
    n : int
        Rows per posterior draw.
    random_seed : int, optional
        Seed; the same seed gives the same rows.
    new_group : bool
        Rows of a new group of the population (hierarchical or pooled modes only).

    Returns
    -------
    arviz.InferenceData
        ``posterior_predictive`` with ``obs (chain, draw, row, feature)`` (the rows),
        ``mu (chain, draw, feature)`` and ``cov (chain, draw, feature, feature_)`` (the
        group's parameters behind them); attributes ``group`` and ``new_group``.
    """
    n = int(n)
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    rng = np.random.default_rng(random_seed)
    params = group_parameters(result, group, rng, new_group=new_group)
    chol = np.linalg.cholesky(params.cov)
    noise = rng.standard_normal((*params.mu.shape[:2], n, params.mu.shape[-1]))
    rows = params.mu[..., None, :] + np.einsum("cdij,cdnj->cdni", chol, noise)
    ds = xr.Dataset(
        {
            "obs": (("chain", "draw", "row", "feature"), rows),
            "mu": (("chain", "draw", "feature"), params.mu),
            "cov": (("chain", "draw", "feature", "feature_"), params.cov),
        },
        coords=_coords(result, {"row": np.arange(n)}),
        attrs={"group": str(group), "new_group": int(params.new)},
    )
    return az.InferenceData(posterior_predictive=ds)


def _conditional_normal(mu, cov, a, b, x_a):
    """Per draw ``N(mean, cov)`` of features ``b`` given features ``a`` equal ``x_a``.

    ``mu (..., p)``, ``cov (..., p, p)``, ``x_a (m, |a|)`` -> ``mean (..., m, |b|)``,
    ``cov (..., |b|, |b|)``; only triangular-factor solves, no inverse.
    """
    mu_b = mu[..., b]
    cov_bb = cov[..., b[:, None], b]
    if a.size == 0:
        return np.broadcast_to(mu_b[..., None, :], (*mu_b.shape[:-1], x_a.shape[0], b.size)), cov_bb
    chol_a = np.linalg.cholesky(cov[..., a[:, None], a])
    w = np.linalg.solve(chol_a, cov[..., a[:, None], b])  # (..., |a|, |b|)
    r = np.linalg.solve(chol_a, x_a.T - mu[..., a, None])  # (..., |a|, m)
    mean = mu_b[..., None, :] + np.swapaxes(np.swapaxes(w, -1, -2) @ r, -1, -2)
    cond_cov = cov_bb - np.swapaxes(w, -1, -2) @ w
    return mean, cond_cov


class Conditional(NamedTuple):
    """The conditional distribution of some features given the others.

    Attributes
    ----------
    draws : xarray.Dataset
        Per posterior draw: ``mean (chain, draw, feature)`` and
        ``cov (chain, draw, feature, feature_)`` of the conditional normal, and
        ``predictive (chain, draw, feature)``, one draw from it; ``feature`` runs over
        the features not given.
    summary : pandas.DataFrame
        One row per predicted feature: ``mean`` and ``sd`` of the posterior
        predictive, its ``hdi_low`` and ``hdi_high``, and ``mean_sd``, the posterior sd
        of the conditional mean (the uncertainty of the parameters alone).
    """

    draws: xr.Dataset
    summary: pd.DataFrame


def _cholesky_psd(cov: np.ndarray) -> np.ndarray:
    """Cholesky factor of a covariance that rounding may have made slightly indefinite."""
    scale = np.sqrt(np.clip(np.diagonal(cov, axis1=-2, axis2=-1), 1e-300, None))
    jitter = 1e-12 * np.eye(cov.shape[-1])
    corr = cov / (scale[..., :, None] * scale[..., None, :])
    return scale[..., :, None] * np.linalg.cholesky(corr + jitter)


def conditional(
    result: GroupCovResult,
    group,
    given: Mapping[str, float],
    hdi_prob: float = 0.94,
    random_seed=None,
    *,
    new_group: bool = False,
) -> Conditional:
    """Posterior of the other features of a group's row given some of its features.

    For each posterior draw the conditional normal
    ``x_b | x_a ~ N(μ_b + Σ_ba Σ_aa⁻¹ (x_a - μ_a), Σ_bb - Σ_ba Σ_aa⁻¹ Σ_ab)``, computed
    with the Cholesky factor of ``Σ_aa``.

    Parameters
    ----------
    result : GroupCovResult
        The fit.
    group : hashable
        A group of the fit; with ``new_group=True`` the name of a new group.
    given : mapping
        Feature -> observed value, for at least one and not all features.
    hdi_prob : float
        Probability of the predictive interval in the summary.
    random_seed : int, optional
        Seed of the predictive draws (and of a new group's parameters).
    new_group : bool
        Condition a new group of the population (hierarchical or pooled modes).

    Returns
    -------
    Conditional
    """
    features = list(result.features)
    unknown = [f for f in given if f not in features]
    if unknown:
        raise KeyError(f"given= names unknown feature(s) {unknown}; features are {features}")
    if not given:
        raise ValueError("given= is empty: name at least one feature and its value")
    if len(given) == len(features):
        raise ValueError("given= fixes every feature: leave out the ones to predict")
    x_a = np.array([[float(given[f]) for f in features if f in given]])
    if not np.isfinite(x_a).all():
        raise ValueError(f"given= values must be finite numbers, got {dict(given)}")
    a = np.array([j for j, f in enumerate(features) if f in given], dtype=int)
    b = np.array([j for j, f in enumerate(features) if f not in given], dtype=int)
    rng = np.random.default_rng(random_seed)
    params = group_parameters(result, group, rng, new_group=new_group)
    mean, cov = _conditional_normal(params.mu, params.cov, a, b, x_a)
    mean = mean[..., 0, :]
    noise = rng.standard_normal(mean.shape)
    predictive = mean + np.einsum("cdij,cdj->cdi", _cholesky_psd(cov), noise)
    names = [features[j] for j in b]
    draws = xr.Dataset(
        {
            "mean": (("chain", "draw", "feature"), mean),
            "cov": (("chain", "draw", "feature", "feature_"), cov),
            "predictive": (("chain", "draw", "feature"), predictive),
        },
        coords=_coords(result, {"feature": names, "feature_": names}),
        attrs={"group": str(group), "given": str(dict(given))},
    )
    flat_mean = mean.reshape(-1, b.size)
    variance = np.diagonal(cov, axis1=-2, axis2=-1).reshape(-1, b.size)
    interval = az.hdi(draws["predictive"], hdi_prob=hdi_prob)["predictive"].values
    summary = pd.DataFrame(
        {
            "feature": names,
            "mean": flat_mean.mean(0),
            "sd": np.sqrt(variance.mean(0) + flat_mean.var(0)),
            "hdi_low": interval[:, 0],
            "hdi_high": interval[:, 1],
            "mean_sd": flat_mean.std(0, ddof=1) if flat_mean.shape[0] > 1 else np.nan,
        }
    )
    return Conditional(draws, summary)


def impute(
    result: GroupCovResult,
    data: pd.DataFrame,
    group: str = "group",
    prob: float = 0.94,
    random_seed=None,
    max_bytes: float = DEFAULT_MAX_BYTES,
) -> pd.DataFrame:
    """Fill missing feature values of labeled rows from the posterior predictive.

    Each missing entry gets the mean of its posterior predictive given the row's
    observed features and group (per draw the conditional normal, then averaged over
    draws), and a central interval of probability ``prob`` from one predictive draw
    per posterior draw.

    Parameters
    ----------
    result : GroupCovResult
        The fit.
    data : pandas.DataFrame
        Rows with the group column and the model's features; NaN marks a missing value.
    group : str
        Name of the group column; every label must be a group of the fit.
    prob : float
        Probability of the interval.
    random_seed : int, optional
        Seed of the predictive draws behind the intervals.
    max_bytes : float
        Bound on the temporaries of one chunk of rows.

    Returns
    -------
    pandas.DataFrame
        A copy of ``data`` with missing feature values filled in, and for each feature
        columns ``{feature}_low`` and ``{feature}_high``: the interval of an imputed
        entry, the value itself where it was observed.
    """
    if not 0 < prob < 1:
        raise ValueError(f"prob must be in (0, 1), got {prob}")
    rows = rows_from_data(result, data, group)
    values = rows.values
    filled = values.copy()
    low = values.copy()
    high = values.copy()
    features = list(result.features)
    p = len(features)
    q_lo, q_hi = (1 - prob) / 2, (1 + prob) / 2
    rng = np.random.default_rng(random_seed)
    missing = np.isnan(values)
    for g in np.unique(rows.group[missing.any(axis=1)]):
        params = group_parameters(result, result.groups[g])
        mu = params.mu.reshape(-1, p)
        cov = params.cov.reshape(-1, p, p)
        s_total = mu.shape[0]
        in_group = np.flatnonzero((rows.group == g) & missing.any(axis=1))
        patterns, inverse = np.unique(missing[in_group], axis=0, return_inverse=True)
        for k, pat in enumerate(patterns):
            idx_all = in_group[np.ravel(inverse) == k]
            b = np.flatnonzero(pat)
            a = np.flatnonzero(~pat)
            per_row = 8.0 * s_total * (3 * b.size + a.size + 2)
            step = int(max(1, max_bytes // per_row))
            for start in range(0, idx_all.size, step):
                idx = idx_all[start : start + step]
                mean, cond_cov = _conditional_normal(mu, cov, a, b, values[np.ix_(idx, a)])
                noise = rng.standard_normal(mean.shape)
                draws = mean + np.einsum("sij,smj->smi", _cholesky_psd(cond_cov), noise)
                cells = np.ix_(idx, b)
                filled[cells] = mean.mean(axis=0)
                low[cells] = np.quantile(draws, q_lo, axis=0)
                high[cells] = np.quantile(draws, q_hi, axis=0)
    out = data.copy()
    out[features] = filled
    for j, f in enumerate(features):
        out[f"{f}_low"] = low[:, j]
        out[f"{f}_high"] = high[:, j]
    return out
