"""Each group's own estimates of its parameters, with their sampling variances.

The data-informed parameterization of hierarchical models (``model/build.py``) samples
a group parameter ``theta_g ~ N(loc, tau)`` around the Gaussian approximation of its
conditional posterior, ``w * est_g + (1 - w) * loc`` with ``w = tau^2 / (tau^2 + v_g)``
(the optimal partial-centering weight of Papaspiliopoulos, Roberts & Sköld 2007,
evaluated at the current ``tau``). ``est_g`` and ``v_g`` come from the group's own rows
and large-sample theory:

- mean of feature j: the sample mean, ``v = s_gj^2 / n_gj`` (standardized units);
- log standard deviation: ``log s_gj``, ``v = 1 / (2 (n_gj - 1))``;
- ``atanh`` of the CPC in column j (a partial correlation given j variables): from the
  sample correlation matrix, ``v = 1 / (n_g - 3 - j)`` (Fisher).

Means and standard deviations use every observed value of a feature (``n_gj`` of them,
rows with missing features included); correlations use the complete rows. Where a group
has too few rows for an estimate, ``v_g = inf`` (non-centered form).
"""

from __future__ import annotations

import numpy as np

from groupcov.stats import SufficientStats

__all__ = ["cpc_from_corr", "group_estimates"]


def _positive_inverse(x: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.where(x > 0, 1.0 / np.where(x > 0, x, 1.0), np.inf)


def cpc_from_corr(corr: np.ndarray) -> np.ndarray:
    """Canonical partial correlations ``(..., K)`` of correlation matrices ``(..., p, p)``.

    NaN where a matrix is not positive definite.

    Examples
    --------
    >>> cpc_from_corr(np.array([[1.0, 0.5], [0.5, 1.0]])).tolist()
    [0.5]
    """
    corr = np.asarray(corr, dtype=float)
    p = corr.shape[-1]
    batch = corr.shape[:-2]
    flat = corr.reshape(-1, p, p)
    # not positive definite -> NaN, the others in one batched factorization
    pd_ok = np.all(np.isfinite(flat), axis=(1, 2))
    pd_ok[pd_ok] = np.linalg.eigvalsh(flat[pd_ok]).min(axis=1) > 0
    safe = np.where(pd_ok[:, None, None], flat, np.eye(p))
    try:
        chol = np.linalg.cholesky(safe)
    except np.linalg.LinAlgError:  # numerically borderline: factor one by one
        chol = np.full_like(flat, np.nan)
        for i in np.flatnonzero(pd_ok):
            try:
                chol[i] = np.linalg.cholesky(flat[i])
            except np.linalg.LinAlgError:
                pd_ok[i] = False
    chol = np.where(pd_ok[:, None, None], chol, np.nan)
    c2 = chol**2
    remaining = 1.0 - (np.cumsum(c2, axis=-1) - c2)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = chol / np.sqrt(remaining)
    upper_r, upper_c = np.triu_indices(p, 1)
    return z[:, upper_c, upper_r].reshape((*batch, len(upper_r)))


def group_estimates(z: SufficientStats) -> dict:
    """Each group's own estimates of its parameters, with their sampling variances.

    Parameters
    ----------
    z : SufficientStats
        Standardized statistics.

    Returns
    -------
    dict
        ``"mu"``, ``"sd"`` (log standard deviation) and ``"corr"`` (``atanh`` CPC),
        each an ``(estimate, variance)`` pair of arrays of shape ``(G, p)``, ``(G, p)``
        and ``(G, K)``; ``variance`` is ``inf`` where the group has too few rows.

    Examples
    --------
    >>> st = SufficientStats(("a",), ("x", "y"), np.array([11]), np.zeros((1, 2)),
    ...                      10.0 * np.eye(2)[None])
    >>> est = group_estimates(st)
    >>> est["sd"][1].tolist(), est["corr"][1].tolist()
    ([[0.05, 0.05]], [[0.125]])
    """
    g, p = z.n_groups, z.n_features
    n = z.n.astype(float)
    # means and sds from every observed value of a feature; correlations from complete rows
    count, mean, sum_sq = z.available()
    with np.errstate(invalid="ignore"):
        var = sum_sq * _positive_inverse(count - 1.0)
    usable = np.isfinite(var) & (var > 0)
    v_mu = np.where(usable, var, 1.0) * _positive_inverse(count)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_sd = np.where(usable, 0.5 * np.log(np.where(usable, var, 1.0)), 0.0)
    v_sd = np.where(usable, _positive_inverse(2.0 * (count - 1.0)), np.inf)
    diag = np.diagonal(z.scatter, axis1=1, axis2=2)
    upper_r, _ = np.triu_indices(p, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        sd = np.sqrt(diag)
        corr = z.scatter / (sd[:, :, None] * sd[:, None, :])
    corr = np.where(np.isfinite(corr), corr, 0.0)
    cpc = cpc_from_corr(corr) if p > 1 else np.zeros((g, 0))
    ok = np.isfinite(cpc) & (np.abs(cpc) < 1.0)
    atanh_cpc = np.where(ok, np.arctanh(np.where(ok, cpc, 0.0)), 0.0)
    v_corr = np.where(ok, _positive_inverse(n[:, None] - 3.0 - upper_r[None, :]), np.inf)
    return {"mu": (mean, v_mu), "sd": (log_sd, v_sd), "corr": (atanh_cpc, v_corr)}
