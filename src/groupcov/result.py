"""Fitted results: InferenceData in the data's units, tables and diagnostics."""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr

from groupcov.distributions.mvnormal import scatter_root
from groupcov.stats import IncompleteCells, SufficientStats

__all__ = [
    "Diagnostics",
    "GroupCovResult",
    "group_log_likelihood",
    "stats_from_constant_data",
]

_LOG_2PI = float(np.log(2.0 * np.pi))


def _suffstat_loglik(n, mean, root_t, mu, chol) -> np.ndarray:
    """``sum_i log N(x_i | mu, L L^T)`` from n, mean and ``R^T`` (S = R^T R)."""
    p = mean.shape[-1]
    rhs = np.concatenate([(mean - mu)[..., None], np.broadcast_to(root_t, chol.shape)], axis=-1)
    solved = np.linalg.solve(chol, rhs)
    maha = (solved[..., 0] ** 2).sum(-1)
    trace = (solved[..., 1:] ** 2).sum((-2, -1))
    logdet = 2.0 * np.log(np.diagonal(chol, axis1=-2, axis2=-1)).sum(-1)
    return -0.5 * n * (p * _LOG_2PI + logdet) - 0.5 * trace - 0.5 * n * maha


def group_log_likelihood(stats: SufficientStats, mu: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """Exact log-likelihood of each group's rows, per draw, in the data's units.

    Rows with missing features contribute the likelihood of their observed features.

    Parameters
    ----------
    stats : SufficientStats
        Statistics of the rows.
    mu : numpy.ndarray, shape ``(..., G, p)``
        Means per draw.
    cov : numpy.ndarray, shape ``(..., G, p, p)``
        Covariances per draw.

    Returns
    -------
    numpy.ndarray, shape ``(..., G)``
    """
    chol = np.linalg.cholesky(cov)
    n = stats.n.astype(float)
    # solve L X = [xbar - mu, R^T] with S = R^T R: no inverse is formed
    root_t = np.swapaxes(scatter_root(stats.scatter), -1, -2)
    out = _suffstat_loglik(n, stats.mean, root_t, mu, chol)
    cells = stats.incomplete
    if cells.n_cells:
        p = stats.n_features
        mask = cells.observed.astype(float)
        outer = mask[:, :, None] * mask[:, None, :]
        masked_cov = cov[..., cells.group, :, :] * outer + np.eye(p) * (1.0 - mask)[:, None, :]
        cell_root_t = np.swapaxes(scatter_root(cells.scatter), -1, -2) * mask[:, :, None]
        cell = _suffstat_loglik(
            cells.n.astype(float), cells.mean * mask, cell_root_t,
            mu[..., cells.group, :] * mask, np.linalg.cholesky(masked_cov),
        ) + 0.5 * cells.n * (p - mask.sum(axis=1)) * _LOG_2PI
        groups = np.zeros((cells.n_cells, stats.n_groups))
        groups[np.arange(cells.n_cells), cells.group] = 1.0
        out = out + cell @ groups
    return out


class Diagnostics(NamedTuple):
    """Convergence summary of a fit."""

    max_r_hat: float
    min_ess_bulk: float
    min_ess_tail: float
    divergences: int
    draws: int
    chains: int

    @property
    def ok(self) -> bool:
        """R-hat <= 1.01, bulk and tail ESS >= 400 and no divergences."""
        return (
            self.max_r_hat <= 1.01
            and min(self.min_ess_bulk, self.min_ess_tail) >= 400
            and self.divergences == 0
        )


_PARAMETERS = ("mu", "sigma", "corr", "cov")


def _constant_data(stats: SufficientStats, group_dim: str, group_coord) -> xr.Dataset:
    """The statistics behind a fit, complete rows and (group, pattern) cells."""
    cells = stats.incomplete
    return xr.Dataset(
        {
            "n": ((group_dim,), stats.n),
            "sample_mean": ((group_dim, "feature"), stats.mean),
            "scatter": ((group_dim, "feature", "feature_"), stats.scatter),
            "empty_rows": ((group_dim,), stats.empty_rows),
            "cell_group": (("cell",), cells.group),
            "cell_observed": (("cell", "feature"), cells.observed),
            "cell_n": (("cell",), cells.n),
            "cell_mean": (("cell", "feature"), cells.mean),
            "cell_scatter": (("cell", "feature", "feature_"), cells.scatter),
        },
        coords={
            group_dim: group_coord,
            "feature": list(stats.features),
            "feature_": list(stats.features),
            "cell": np.arange(cells.n_cells),
        },
    )


def stats_from_constant_data(constant_data: xr.Dataset) -> SufficientStats:
    """The :class:`SufficientStats` stored by :meth:`GroupCovResult.from_posterior`."""
    cd = constant_data
    cells = IncompleteCells(
        cd["cell_group"].values.astype(np.int64), cd["cell_observed"].values.astype(bool),
        cd["cell_n"].values.astype(np.int64), cd["cell_mean"].values, cd["cell_scatter"].values,
    )
    return SufficientStats(
        tuple(cd["group"].values.tolist()), tuple(str(f) for f in cd["feature"].values),
        cd["n"].values.astype(np.int64), cd["sample_mean"].values, cd["scatter"].values,
        cells, cd["empty_rows"].values.astype(np.int64),
    )


class GroupCovResult:
    """Posterior of per-group means and covariances.

    Attributes
    ----------
    idata : arviz.InferenceData
        ``posterior`` with ``mu (group, feature)``, ``sigma (group, feature)``,
        ``corr`` and ``cov (group, feature, feature_)`` in the data's units plus the
        hyper-parameters of hierarchical modes; ``sample_stats``; ``log_likelihood``
        (``obs``: one value per group, for leave-one-group-out LOO); ``constant_data``
        with each group's ``n``, ``mean`` and ``scatter``.
    stats : SufficientStats
        The statistics the model was fitted to.
    """

    def __init__(self, idata: az.InferenceData, stats: SufficientStats, spec: dict | None = None):
        self.idata = idata
        self.stats = stats
        self.spec = dict(spec or {})

    @classmethod
    def from_posterior(cls, idata, stats: SufficientStats, spec: dict | None = None):
        """Add the group-level log-likelihood and the statistics to a sampled idata."""
        post = idata.posterior
        loglik = group_log_likelihood(stats, post["mu"].values, post["cov"].values)
        group_dim = post["mu"].dims[2]
        idata.add_groups(
            log_likelihood=xr.Dataset(
                {"obs": (("chain", "draw", group_dim), loglik)},
                coords={"chain": post.chain, "draw": post.draw, group_dim: post[group_dim]},
            ),
            constant_data=_constant_data(stats, group_dim, post[group_dim]),
        )
        return cls(idata, stats, spec)

    @property
    def groups(self) -> list:
        """Group labels."""
        return list(self.idata.posterior["group"].values)

    @property
    def features(self) -> list[str]:
        """Feature names."""
        return list(self.stats.features)

    def diagnostics(self) -> Diagnostics:
        """Worst R-hat and ESS over ``mu``, ``sigma``, ``corr`` and the hyper-parameters."""
        post = self.idata.posterior
        names = [v for v in post.data_vars if v != "cov"]
        with np.errstate(invalid="ignore", divide="ignore"):  # constant corr diagonals
            rhat = az.rhat(self.idata, var_names=names)
            ess_b = az.ess(self.idata, var_names=names, method="bulk")
            ess_t = az.ess(self.idata, var_names=names, method="tail")

        def worst(ds, fn):
            vals = np.concatenate([np.ravel(ds[v].values) for v in ds.data_vars])
            vals = vals[np.isfinite(vals)]
            return float(fn(vals)) if vals.size else float("nan")

        div = self.idata.sample_stats.get("diverging")
        return Diagnostics(
            max_r_hat=worst(rhat, np.max),
            min_ess_bulk=worst(ess_b, np.min),
            min_ess_tail=worst(ess_t, np.min),
            divergences=int(div.values.sum()) if div is not None else 0,
            draws=int(post.sizes["draw"]),
            chains=int(post.sizes["chain"]),
        )

    def summary(self, hdi_prob: float = 0.94) -> pd.DataFrame:
        """Tidy table: one row per group and parameter.

        Columns: ``group``, ``parameter`` (``mu[x]``, ``sigma[x]``, ``corr[x,y]``,
        ``cov[x,y]``; each matrix entry once), ``mean``, ``sd``, ``hdi_low``,
        ``hdi_high``, ``r_hat``, ``ess_bulk``, ``ess_tail``.
        """
        post = self.idata.posterior
        feats = self.features
        rows = []
        hdi_cache = {
            name: az.hdi(post[name], hdi_prob=hdi_prob)[name] for name in _PARAMETERS
        }
        with np.errstate(invalid="ignore", divide="ignore"):  # constant corr diagonals
            rhat = az.rhat(post[list(_PARAMETERS)])
            ess_b = az.ess(post[list(_PARAMETERS)], method="bulk")
            ess_t = az.ess(post[list(_PARAMETERS)], method="tail")
        mean = post[list(_PARAMETERS)].mean(("chain", "draw"))
        sd = post[list(_PARAMETERS)].std(("chain", "draw"), ddof=1)
        for g in self.groups:
            for name in _PARAMETERS:
                if name in ("mu", "sigma"):
                    entries = [((f,), f"{name}[{f}]") for f in feats]
                else:
                    lower = 1 if name == "corr" else 0
                    entries = [
                        ((feats[i], feats[j]), f"{name}[{feats[i]},{feats[j]}]")
                        for i in range(len(feats))
                        for j in range(i + 1 - lower)
                        if not (name == "corr" and i == j)
                    ]
                for key, label in entries:
                    sel = {"group": g, "feature": key[0]}
                    if len(key) == 2:
                        sel["feature_"] = key[1]
                    interval = hdi_cache[name].sel(sel).values
                    rows.append(
                        {
                            "group": g,
                            "parameter": label,
                            "mean": float(mean[name].sel(sel)),
                            "sd": float(sd[name].sel(sel)),
                            "hdi_low": float(interval[0]),
                            "hdi_high": float(interval[1]),
                            "r_hat": float(rhat[name].sel(sel)),
                            "ess_bulk": float(ess_b[name].sel(sel)),
                            "ess_tail": float(ess_t[name].sel(sel)),
                        }
                    )
        return pd.DataFrame(rows)

    def _posterior_mean(self, name: str, group) -> xr.DataArray:
        if group not in self.groups:
            raise KeyError(f"unknown group {group!r}; groups are {self.groups}")
        return self.idata.posterior[name].sel(group=group).mean(("chain", "draw"))

    def covariance(self, group) -> pd.DataFrame:
        """Posterior mean covariance matrix of ``group``, labeled by feature."""
        m = self._posterior_mean("cov", group)
        return pd.DataFrame(m.values, index=self.features, columns=self.features)

    def correlation(self, group) -> pd.DataFrame:
        """Posterior mean correlation matrix of ``group``, labeled by feature."""
        m = self._posterior_mean("corr", group)
        return pd.DataFrame(m.values, index=self.features, columns=self.features)

    def mean(self, group) -> pd.Series:
        """Posterior mean of the mean vector of ``group``."""
        return pd.Series(self._posterior_mean("mu", group).values, index=self.features)

    def save(self, path) -> Path:
        """Write the fit to one netCDF file that :meth:`load` reads back.

        The file is the InferenceData: posterior, sample stats, log-likelihood, the
        statistics in ``constant_data`` and the model spec as JSON in the posterior's
        ``groupcov_spec`` attribute.

        Parameters
        ----------
        path : str or os.PathLike
            A file name, or an existing directory (then ``posterior.nc`` inside it).

        Returns
        -------
        pathlib.Path
            The file written.
        """
        path = Path(path)
        if path.is_dir():
            path = path / "posterior.nc"
        self.idata.posterior.attrs["groupcov_spec"] = json.dumps(self.spec)
        self.idata.to_netcdf(str(path))
        return path

    @classmethod
    def load(cls, path) -> GroupCovResult:
        """Read a fit written by :meth:`save` (a file, or a directory with ``posterior.nc``)."""
        path = Path(path)
        if path.is_dir():
            path = path / "posterior.nc"
        with az.rc_context({"data.load": "eager"}):
            idata = az.from_netcdf(str(path))
        if "constant_data" not in idata.groups() or "posterior" not in idata.groups():
            raise KeyError(f"{path} has no posterior and constant_data groups")
        spec = json.loads(idata.posterior.attrs.get("groupcov_spec", "{}"))
        return cls(idata, stats_from_constant_data(idata.constant_data), spec)

    def __repr__(self) -> str:
        d = self.diagnostics()
        spec = ", ".join(f"{k}={v!r}" for k, v in self.spec.items())
        return (
            f"GroupCovResult({spec}; {self.stats.n_groups} groups, {self.stats.n_features} "
            f"features, {d.chains}x{d.draws} draws, max R-hat {d.max_r_hat:.3f}, "
            f"min ESS {d.min_ess_bulk:.0f}, {d.divergences} divergences)"
        )
