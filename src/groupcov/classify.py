"""Row-level densities from posterior draws: classification and pointwise log-likelihood.

Every density is the multivariate normal of a row's observed features (the marginal
of the observed block, so rows with missing values need no imputation), evaluated per
posterior draw with the Cholesky factor of that draw's covariance and triangular solves.
Work is split into chunks of draws and rows whose temporaries stay below ``max_bytes``.

- :func:`classify_log` / :func:`classify`: posterior probability that a row belongs to
  each group (Bayesian quadratic discriminant analysis),
  ``P(g | x) ∝ w_g · (1/S) Σ_s N(x | μ_sg, Σ_sg)``, the average over draws taken in
  log space.
- :func:`row_log_likelihood`: ``log N(x_i | μ_s,g(i), Σ_s,g(i))`` per draw and row,
  shape ``(chain, draw, row)``, for users who want the full array.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import pandas as pd
import xarray as xr
from scipy.special import logsumexp

from groupcov.data.frame import index_rows_text, infinite_cells
from groupcov.data.validate import positions_text

if TYPE_CHECKING:
    from groupcov.result import GroupCovResult

__all__ = [
    "DEFAULT_MAX_BYTES",
    "Rows",
    "classify",
    "classify_log",
    "group_weights",
    "mvn_logpdf",
    "posterior_draws",
    "row_log_likelihood",
    "rows_from_data",
]

#: Default bound on the temporaries of one chunk (bytes).
DEFAULT_MAX_BYTES = 64 * 2**20
_LOG_2PI = float(np.log(2.0 * np.pi))


def mvn_logpdf(x: np.ndarray, mu: np.ndarray, chol: np.ndarray) -> np.ndarray:
    """Multivariate normal log density of rows ``x`` under batched parameters.

    Parameters
    ----------
    x : numpy.ndarray, shape ``(m, q)``
        Rows.
    mu : numpy.ndarray, shape ``(..., q)``
        Means.
    chol : numpy.ndarray, shape ``(..., q, q)``
        Lower Cholesky factors of the covariances.

    Returns
    -------
    numpy.ndarray, shape ``(..., m)``

    Examples
    --------
    >>> from scipy.stats import multivariate_normal
    >>> cov = np.array([[2.0, 0.5], [0.5, 1.0]])
    >>> x = np.array([[0.3, -1.0], [1.0, 2.0]])
    >>> out = mvn_logpdf(x, np.zeros(2), np.linalg.cholesky(cov))
    >>> np.allclose(out, multivariate_normal(np.zeros(2), cov).logpdf(x))
    True
    """
    x = np.asarray(x, dtype=float)
    q = x.shape[-1]
    batch = np.broadcast_shapes(np.shape(mu)[:-1], np.shape(chol)[:-2])
    if q == 0:
        return np.zeros((*batch, x.shape[0]))
    diff = x.T - np.asarray(mu)[..., :, None]  # (..., q, m)
    chol = np.broadcast_to(chol, (*batch, q, q))
    solved = np.linalg.solve(chol, np.broadcast_to(diff, (*batch, *diff.shape[-2:])))
    maha = np.einsum("...qm,...qm->...m", solved, solved)
    half_logdet = np.log(np.diagonal(chol, axis1=-2, axis2=-1)).sum(-1)
    return -0.5 * maha - half_logdet[..., None] - 0.5 * q * _LOG_2PI


class _Draws(NamedTuple):
    mu: np.ndarray  # (S, G, p)
    cov: np.ndarray | None  # (S, G, p, p) or None when rebuilt from sigma and corr
    sigma: np.ndarray | None
    corr: np.ndarray | None
    chains: int
    draws: int

    @property
    def n_samples(self) -> int:
        return self.chains * self.draws

    def covariance(self, sl: slice, group: int | None = None) -> np.ndarray:
        """Covariances of the draws ``sl``: ``(s, G, p, p)``, or ``(s, p, p)`` of one group."""
        pick = (sl,) if group is None else (sl, group)
        if self.cov is not None:
            return self.cov[pick]
        sigma = self.sigma[pick]
        return sigma[..., :, None] * sigma[..., None, :] * self.corr[pick]


def posterior_draws(result: GroupCovResult) -> _Draws:
    """Means and covariances of every draw, chains and draws flattened (views, no copy)."""
    post = result.idata.posterior
    if "mu" not in post:
        raise KeyError("the posterior does not keep 'mu'; refit without var_names= limits")
    chains, draws = post.sizes["chain"], post.sizes["draw"]

    def flat(name, ndim):
        arr = post[name].transpose("chain", "draw", "group", ...).values
        return arr.reshape(chains * draws, *arr.shape[2:]) if arr.ndim == ndim + 2 else None

    if "cov" in post:
        return _Draws(flat("mu", 2), flat("cov", 3), None, None, chains, draws)
    if {"sigma", "corr"} <= set(post.data_vars):
        return _Draws(flat("mu", 2), None, flat("sigma", 2), flat("corr", 3), chains, draws)
    raise KeyError("the posterior keeps neither 'cov' nor 'sigma' and 'corr'")


def _chunks(total: int, size: int) -> Iterator[slice]:
    size = max(1, int(size))
    for start in range(0, total, size):
        yield slice(start, min(start + size, total))


def _as_matrix(x, features: Sequence[str], what: str = "X") -> tuple[np.ndarray, pd.Index | None]:
    """Feature matrix ``(n, p)`` in model order from a DataFrame or an array."""
    features = list(features)
    if isinstance(x, pd.DataFrame):
        missing = [f for f in features if f not in x.columns]
        if missing:
            raise KeyError(
                f"{what} lacks feature column(s) {missing}; the model's features are {features}"
            )
        values = x[features].to_numpy(dtype=float, na_value=np.nan)
        index = x.index
    else:
        values = np.asarray(x, dtype=float)
        if values.ndim == 1 and values.shape[0] == len(features):
            values = values[None, :]
        if values.ndim != 2 or values.shape[1] != len(features):
            raise ValueError(
                f"{what} must have shape (n_rows, {len(features)}) with columns {features}, "
                f"got shape {values.shape}"
            )
        index = None
    for f, rows in zip(features, infinite_cells(values), strict=False):
        if rows.size:
            where = (positions_text(rows.tolist(), rows.size) if index is None
                     else index_rows_text(index, rows))
            raise ValueError(f"{what} has {rows.size} infinite value(s) in column {f!r} "
                             f"({where}); replace or remove them")
    return values, index


def _patterns(x: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(observed feature indices, row indices)`` for each missing-value pattern of ``x``."""
    observed = ~np.isnan(x)
    if observed.all():
        return [(np.arange(x.shape[1]), np.arange(x.shape[0]))]
    patterns, inverse = np.unique(observed, axis=0, return_inverse=True)
    inverse = np.ravel(inverse)
    return [(np.flatnonzero(pat), np.flatnonzero(inverse == k)) for k, pat in enumerate(patterns)]


def group_weights(result: GroupCovResult, weights=None) -> np.ndarray:
    """Prior probability of each group for classification, shape ``(G,)``, summing to 1.

    Parameters
    ----------
    result : GroupCovResult
        The fit.
    weights : mapping or sequence, optional
        Group -> weight (any positive scale), or one weight per group in model order.
        ``None`` uses the posterior mean of Dirichlet(1, ..., 1) updated with the rows
        of each group: ``(n_g + 1) / (N + G)``.
    """
    groups = list(result.groups)
    if weights is None:
        stats = result.stats
        counts = stats.rows_per_group() + stats.empty_rows
        counts = np.asarray(counts, dtype=float)
        return (counts + 1.0) / (counts.sum() + len(groups))
    if isinstance(weights, Mapping):
        unknown = [g for g in weights if g not in groups]
        if unknown:
            raise KeyError(f"weights name unknown group(s) {unknown}; groups are {groups}")
        absent = [g for g in groups if g not in weights]
        if absent:
            raise KeyError(f"weights lack group(s) {absent}; give a weight for every group")
        w = np.array([float(weights[g]) for g in groups])
    else:
        w = np.asarray(weights, dtype=float).ravel()
        if w.shape != (len(groups),):
            raise ValueError(
                f"weights must have one entry per group ({len(groups)}: {groups}), "
                f"got {w.shape[0]}"
            )
    if not np.all(np.isfinite(w)) or np.any(w < 0) or not w.sum() > 0:
        raise ValueError(f"weights must be non-negative, finite and not all zero, got {w}")
    return w / w.sum()


def _chunk_sizes(n_samples: int, n_groups: int, p: int, max_bytes: float) -> tuple[int, int]:
    """Draws per chunk (covariances and factors) and rows per chunk (solves)."""
    per_draw = 8.0 * n_groups * (3 * p * p + 2 * p)
    draw_chunk = int(max(1, min(n_samples, (max_bytes / 2) // per_draw)))
    per_row = 8.0 * draw_chunk * n_groups * (3 * p + 4)
    row_chunk = int(max(1, (max_bytes / 2) // per_row))
    return draw_chunk, row_chunk


def classify_log(
    result: GroupCovResult,
    x,
    weights=None,
    max_bytes: float = DEFAULT_MAX_BYTES,
) -> np.ndarray:
    """Log posterior probability of each group for each row, shape ``(n, G)``.

    See :func:`classify`; this returns a NumPy array in model group order.
    """
    values, _ = _as_matrix(x, result.features)
    log_w = np.log(group_weights(result, weights))
    draws = posterior_draws(result)
    s_total = draws.n_samples
    g = draws.mu.shape[1]
    n, p = values.shape
    draw_chunk, row_chunk = _chunk_sizes(s_total, g, p, max_bytes)
    acc = np.full((n, g), -np.inf)
    patterns = _patterns(values)
    for ds in _chunks(s_total, draw_chunk):
        mu = draws.mu[ds]
        cov = draws.covariance(ds)
        for obs, rows in patterns:
            if obs.size == 0:
                acc[rows] = np.logaddexp(acc[rows], np.log(ds.stop - ds.start))
                continue
            chol = np.linalg.cholesky(cov[..., obs[:, None], obs])
            sub_mu = mu[..., obs]
            for rs in _chunks(rows.size, row_chunk):
                idx = rows[rs]
                lp = mvn_logpdf(values[np.ix_(idx, obs)], sub_mu, chol)  # (s, G, m)
                acc[idx] = np.logaddexp(acc[idx], logsumexp(lp, axis=0).T)
    joint = acc - np.log(s_total) + log_w
    with np.errstate(divide="ignore"):
        return joint - logsumexp(joint, axis=1, keepdims=True)


def classify(
    result: GroupCovResult,
    x,
    weights=None,
    max_bytes: float = DEFAULT_MAX_BYTES,
) -> pd.DataFrame:
    """Posterior probability that each row belongs to each group (Bayesian QDA).

    For group ``g`` with weight ``w_g`` the probability is proportional to
    ``w_g · (1/S) Σ_s N(x | μ_sg, Σ_sg)``: the posterior predictive density of the
    row under the group, estimated by averaging the density over the ``S`` posterior
    draws (in log space, with ``logsumexp``). A row with missing features (NaN) is
    classified on its observed features; a row with none gets the weights.

    Parameters
    ----------
    result : GroupCovResult
        The fit.
    x : pandas.DataFrame or array-like, shape ``(n, p)``
        Rows; a DataFrame must hold the model's feature columns (others are ignored),
        an array has the features in model order.
    weights : mapping or sequence, optional
        Prior group probabilities (see :func:`group_weights`); default
        ``(n_g + 1) / (N + G)`` from the fitted rows.
    max_bytes : float
        Bound on the temporaries of one chunk of draws and rows.

    Returns
    -------
    pandas.DataFrame
        One row per input row (the DataFrame's index if ``x`` is one), one column per
        group; each row sums to 1.
    """
    _, index = _as_matrix(x, result.features)
    log_p = classify_log(result, x, weights=weights, max_bytes=max_bytes)
    out = pd.DataFrame(np.exp(log_p), columns=pd.Index(result.groups, name="group"))
    if index is not None:
        out.index = index
    return out


class Rows(NamedTuple):
    """Feature values and group positions of labeled rows."""

    values: np.ndarray  # (n, p), NaN where missing
    group: np.ndarray  # (n,) position of each row's group in the model
    index: pd.Index


def rows_from_data(result: GroupCovResult, data: pd.DataFrame, group: str) -> Rows:
    """Validate a table of labeled rows against a fit; rows of unknown groups are an error."""
    if not isinstance(data, pd.DataFrame):
        raise TypeError(
            f"row-level computations need the rows as a pandas DataFrame, got "
            f"{type(data).__name__}"
        )
    if group not in data.columns:
        raise KeyError(
            f"group column {group!r} not in the table (columns {list(data.columns)}); "
            "pass group="
        )
    values, _ = _as_matrix(data, result.features, what="the table")
    labels = data[group]
    if labels.isna().any():
        raise ValueError(f"group column {group!r} has missing labels; drop those rows")
    positions = {g: i for i, g in enumerate(result.groups)}
    try:
        codes = np.fromiter((positions.get(v, -1) for v in labels), dtype=np.int64,
                            count=len(labels))
    except TypeError:  # unhashable labels
        codes = np.full(len(labels), -1)
    if (codes < 0).any():
        unknown = sorted({str(v) for v in labels[codes < 0]})
        raise KeyError(
            f"group column {group!r} has label(s) {unknown[:5]} that the fit does not know; "
            f"its groups are {list(result.groups)}"
        )
    return Rows(values, codes, data.index)


def iter_row_log_likelihood(
    result: GroupCovResult, rows: Rows, max_bytes: float = DEFAULT_MAX_BYTES
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(row positions, log-likelihood (m, S))`` in chunks.

    Rows are visited by (group, missing-value pattern); ``S`` runs over chains then
    draws. Each chunk holds at most about ``max_bytes`` of temporaries.
    """
    draws = posterior_draws(result)
    s_total = draws.n_samples
    p = rows.values.shape[1]
    per_row = 8.0 * s_total * (2 * p + 4)
    row_chunk = int(max(1, max_bytes // per_row))
    draw_chunk = int(max(1, min(s_total, (max_bytes / 2) // (8.0 * 4 * p * p))))
    for g in np.unique(rows.group):
        in_group = np.flatnonzero(rows.group == g)
        for obs, local in _patterns(rows.values[in_group]):
            idx_all = in_group[local]
            if obs.size == 0:
                for rs in _chunks(idx_all.size, row_chunk):
                    yield idx_all[rs], np.zeros((rs.stop - rs.start, s_total))
                continue
            chol = np.empty((s_total, obs.size, obs.size))
            for ds in _chunks(s_total, draw_chunk):
                cov = draws.covariance(ds, g)
                chol[ds] = np.linalg.cholesky(cov[:, obs[:, None], obs])
            mu = draws.mu[:, g][:, obs]
            for rs in _chunks(idx_all.size, row_chunk):
                idx = idx_all[rs]
                yield idx, mvn_logpdf(rows.values[np.ix_(idx, obs)], mu, chol).T


def row_log_likelihood(
    result: GroupCovResult,
    data: pd.DataFrame,
    group: str = "group",
    max_bytes: float = DEFAULT_MAX_BYTES,
) -> xr.DataArray:
    """Log-likelihood of each row under its group's parameters, per posterior draw.

    Rows with missing features contribute the density of their observed features.
    The result holds ``chain * draw * rows`` float64 values: for large tables use
    :func:`groupcov.comparison.loo_rows`, which never holds them all.

    Parameters
    ----------
    result : GroupCovResult
        The fit.
    data : pandas.DataFrame
        Labeled rows (the group column and the model's features).
    group : str
        Name of the group column.
    max_bytes : float
        Bound on the temporaries of one chunk.

    Returns
    -------
    xarray.DataArray
        Dims ``(chain, draw, row)``; ``row`` holds the table's index.
    """
    rows = rows_from_data(result, data, group)
    post = result.idata.posterior
    chains, draws = post.sizes["chain"], post.sizes["draw"]
    out = np.empty((chains * draws, len(rows.index)))
    for idx, ll in iter_row_log_likelihood(result, rows, max_bytes):
        out[:, idx] = ll.T
    out = out.reshape(chains, draws, -1)
    return xr.DataArray(
        out,
        dims=("chain", "draw", "row"),
        coords={"chain": post.chain.values, "draw": post.draw.values, "row": rows.index},
        name="obs",
    )
