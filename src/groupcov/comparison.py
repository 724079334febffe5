"""Compare pooling choices by leave-one-out cross-validation (PSIS-LOO).

Two kinds of pointwise log-likelihood are offered:

- ``"group"``: leave one *group* out, from the per-group log-likelihood every fit
  stores in ``idata.log_likelihood["obs"]`` (how well the model predicts a whole new
  group's rows);
- ``"row"``: leave one *row* out. The per-row log-likelihood is computed after
  sampling, from the posterior draws, and Pareto-smoothed importance sampling runs on
  chunks of rows: the ``(draws, rows)`` array is never held whole, so a million rows
  and 4,000 draws (32 GB as one float64 array) stay within about ``max_bytes`` of
  temporaries. PSIS smooths each row's weights separately, so chunking changes
  nothing: the pointwise values, their sum and its standard error are those of
  :func:`arviz.loo` on the full array.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr
from scipy.special import logsumexp

from groupcov.classify import iter_row_log_likelihood, rows_from_data
from groupcov.model.inputs import POOLING

if TYPE_CHECKING:
    from groupcov.result import GroupCovResult

__all__ = ["DEFAULT_CANDIDATES", "compare", "loo_rows", "relative_efficiency"]

#: Pooling combinations compared by default: ``(means, covariance)``.
DEFAULT_CANDIDATES = (
    ("hierarchical", "hierarchical"),
    ("pooled", "pooled"),
    ("unpooled", "unpooled"),
)
#: Default bound on the temporaries of one chunk of rows in :func:`loo_rows` (bytes).
LOO_MAX_BYTES = 256 * 2**20
# PSIS holds about this many (rows, draws) float64 arrays at once (measured)
_PSIS_COPIES = 6


def relative_efficiency(result: GroupCovResult) -> float:
    """Mean relative effective sample size of the posterior, as :func:`arviz.loo` uses it."""
    post = result.idata.posterior
    n_samples = post.sizes["chain"] * post.sizes["draw"]
    if post.sizes["chain"] == 1:
        return 1.0
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        ess = az.ess(post, method="mean")
    values = np.hstack([ess[v].values.ravel() for v in ess.data_vars])
    return float(np.nanmean(values) / n_samples)


def loo_rows(
    result: GroupCovResult,
    data: pd.DataFrame,
    group: str = "group",
    max_bytes: float = LOO_MAX_BYTES,
    reff: float | None = None,
) -> az.ELPDData:
    """Leave-one-row-out PSIS-LOO of a fit, computed in bounded memory.

    Parameters
    ----------
    result : GroupCovResult
        The fit.
    data : pandas.DataFrame
        The rows it was fitted to (the group column and the features). Rows with
        missing features count with the density of their observed features; rows
        with no observed feature carry no information and are left out.
    group : str
        Name of the group column.
    max_bytes : float
        Bound on the temporaries of one chunk of rows (the draws of a chunk are held
        together: PSIS needs all draws of a row).
    reff : float, optional
        Relative efficiency of the draws; by default computed from the posterior as
        :func:`arviz.loo` does.

    Returns
    -------
    arviz.ELPDData
        As :func:`arviz.loo` with ``pointwise=True`` (``elpd_loo``, ``se``, ``p_loo``,
        ``loo_i`` and ``pareto_k`` over dim ``row``), usable in :func:`arviz.compare`.
    """
    rows = rows_from_data(result, data, group)
    keep = ~np.isnan(rows.values).all(axis=1)
    if not keep.all():
        rows = rows._replace(
            values=rows.values[keep], group=rows.group[keep], index=rows.index[keep]
        )
    post = result.idata.posterior
    n_samples = post.sizes["chain"] * post.sizes["draw"]
    reff = relative_efficiency(result) if reff is None else float(reff)
    n = len(rows.index)
    if n == 0:
        raise ValueError("no row has an observed feature: nothing to cross-validate")
    loo_i = np.empty(n)
    lppd_i = np.empty(n)
    pareto_k = np.empty(n)
    p = rows.values.shape[1]
    chunk_bytes = max_bytes * (2 * p + 4) / (2 * p + 4 + _PSIS_COPIES)
    for idx, ll in iter_row_log_likelihood(result, rows, chunk_bytes):
        lppd_i[idx] = logsumexp(ll, axis=1) - np.log(n_samples)
        log_weights, k = az.psislw(-ll, reff)
        log_weights += ll
        loo_i[idx] = logsumexp(log_weights, axis=1)
        pareto_k[idx] = k
        del log_weights, ll
    good_k = min(1 - 1 / np.log10(n_samples), 0.7)
    bad = int(np.sum(pareto_k > good_k))
    warn = bad > 0
    if warn:
        warnings.warn(
            f"Estimated shape parameter of Pareto distribution is greater than {good_k:.2f} "
            f"for {bad} of {len(pareto_k)} rows: importance sampling is unreliable for them "
            "(highly influential rows, or a model that fits them poorly)",
            UserWarning,
            stacklevel=2,
        )
    elpd = float(loo_i.sum())
    coords = {"row": rows.index}
    return az.ELPDData(
        data=[
            elpd,
            float(np.sqrt(n * np.var(loo_i))),
            float(lppd_i.sum() - elpd),
            n_samples,
            n,
            warn,
            xr.DataArray(loo_i, dims=("row",), coords=coords, name="loo_i"),
            xr.DataArray(pareto_k, dims=("row",), coords=coords),
            "log",
            good_k,
        ],
        index=[
            "elpd_loo", "se", "p_loo", "n_samples", "n_data_points", "warning", "loo_i",
            "pareto_k", "scale", "good_k",
        ],
    )


def _candidates(candidates) -> list[tuple[str, str]]:
    out = []
    for cand in DEFAULT_CANDIDATES if candidates is None else candidates:
        if isinstance(cand, str) and cand in POOLING:
            cand = (cand, cand)  # one word: the same pooling of means and covariances
        if isinstance(cand, str) or len(cand) != 2:
            raise ValueError(
                f"each candidate is a (means, covariance) pair such as "
                f"('hierarchical', 'pooled'), or one of {POOLING} for both, got {cand!r}"
            )
        means, cov = cand
        for arg, value in (("means", means), ("covariance", cov)):
            if value not in POOLING:
                raise ValueError(f"candidate {cand!r}: {arg} must be one of {POOLING}")
        out.append((means, cov))
    if len(set(out)) != len(out) or len(out) < 2:
        raise ValueError(f"give at least two distinct candidates, got {out}")
    return out


def compare(
    data,
    group: str = "group",
    features: Sequence[str] | None = None,
    candidates: Sequence[tuple[str, str]] | None = None,
    pointwise: str = "row",
    method: str = "stacking",
    priors=None,
    max_bytes: float = LOO_MAX_BYTES,
    return_fits: bool = False,
    **fit_kwargs,
):
    """Fit several pooling choices and compare them by PSIS-LOO.

    Parameters
    ----------
    data : pandas.DataFrame
        One row per observation (``pointwise="group"`` also accepts anything
        :class:`groupcov.GroupCovModel` does, e.g. statistics).
    group : str
        Name of the group column.
    features : sequence of str, optional
        Feature columns; default: every numeric column except ``group``.
    candidates : sequence of (means, covariance) or str, optional
        Pooling combinations to fit; default :data:`DEFAULT_CANDIDATES`. One word
        (``"pooled"``) stands for the same pooling of means and covariances.
    pointwise : {"row", "group"}
        Leave one row out (predicting new rows of the groups) or one group out
        (predicting a new group's rows).
    method : str
        Weighting method of :func:`arviz.compare`.
    priors : dict or Priors, optional
        Prior settings shared by every candidate.
    max_bytes : float
        Memory bound of row-level LOO (see :func:`loo_rows`).
    return_fits : bool
        Also return the fits, keyed like the table's index.
    **fit_kwargs
        Passed to each :meth:`GroupCovModel.fit` (``draws``, ``chains``, ``random_seed``...).

    Returns
    -------
    pandas.DataFrame or (pandas.DataFrame, dict)
        :func:`arviz.compare`'s table, indexed by ``"means=..., covariance=..."``.
    """
    from groupcov.api import GroupCovModel

    if pointwise not in ("row", "group"):
        raise ValueError(f"pointwise must be 'row' or 'group', not {pointwise!r}")
    if pointwise == "row" and not isinstance(data, pd.DataFrame):
        raise TypeError(
            "pointwise='row' needs the rows as a pandas DataFrame; with statistics or "
            "files use pointwise='group'"
        )
    fit_kwargs.setdefault("progressbar", False)
    fits, elpd = {}, {}
    for means, cov in _candidates(candidates):
        name = f"means={means}, covariance={cov}"
        # each warning says which candidate it is about
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = GroupCovModel(
                data, group=group, features=features, means=means, covariance=cov,
                priors=priors,
            )
            fit = model.fit(**fit_kwargs)
            fits[name] = fit
            if pointwise == "row":
                elpd[name] = loo_rows(fit, data, group=group, max_bytes=max_bytes)
            else:
                warnings.filterwarnings("ignore", message="Estimated shape parameter")
                elpd[name] = az.loo(fit.idata, var_name="obs", pointwise=True)
        # where each was raised, so the caller's filters treat it as they would have
        # (a library's DeprecationWarning stays hidden)
        for caught_warning in caught:
            warnings.warn_explicit(f"candidate {name}: {caught_warning.message}",
                                   caught_warning.category, caught_warning.filename,
                                   caught_warning.lineno)
    with warnings.catch_warnings():
        # ArviZ 0.23 sorts with pandas' deprecated inplace=True; not the user's concern
        warnings.filterwarnings("ignore", message=r"The inplace keyword in DataFrame\.sort_values")
        table = az.compare(elpd, ic="loo", method=method, scale="log")
    return (table, fits) if return_fits else table
