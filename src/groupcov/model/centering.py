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

Within a group these estimates are correlated (the means through the correlations of
the data; log standard deviations and CPCs through each other), which a diagonal mass
matrix cannot undo. :func:`mean_whitening` and :func:`covariance_whitening` give, per
group, the Cholesky factor of the correlation matrix of their large-sample
distribution (for the covariance coordinates from the Fisher information, computed
exactly by complex-step differentiation), so the model can sample whitened
coordinates.

The between-group scales ``tau`` get the same treatment one level up:
:func:`log_tau_coordinates` locates and scales each ``log tau``'s posterior from the
estimates' marginal likelihood, ``est_g ~ N(loc, tau^2 + v_g)``. With many groups that
posterior is narrow (sd about ``1 / sqrt(2 G)``), far narrower than the group
coordinates, which a sampler starting from a unit mass matrix would otherwise have to
discover with tiny steps.
"""

from __future__ import annotations

import numpy as np

from groupcov.stats import SufficientStats

__all__ = [
    "corr_cholesky_from_cpc",
    "covariance_estimates",
    "covariance_information",
    "covariance_whitening",
    "cpc_beta",
    "cpc_from_corr",
    "group_estimates",
    "log_tau_coordinates",
    "mean_whitening",
]


def _positive_inverse(x: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.where(x > 0, 1.0 / np.where(x > 0, x, 1.0), np.inf)


def cpc_beta(eta: float, p: int) -> np.ndarray:
    """Beta(b, b) parameter of each CPC under LKJ(eta): ``b = eta + (p - 2 - j) / 2``.

    ``j`` is the CPC's column (CPCs ordered column by column).

    Examples
    --------
    >>> cpc_beta(2.0, 3).tolist()
    [2.5, 2.5, 2.0]
    """
    upper_r, _ = np.triu_indices(p, 1)
    return float(eta) + (p - 2 - upper_r) / 2.0


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
    # a mean's sampling variance from the group's variance shrunk toward the pooled one
    # (a few rows estimate a variance badly, and the whitening built on it then misfits)
    k = pseudo_rows(p)
    pooled = _pooled_variance(count, sum_sq)
    v_mu = (sum_sq + k * pooled) / (np.maximum(count - 1.0, 0.0) + k) * _positive_inverse(count)
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


def corr_cholesky_from_cpc(cpc: np.ndarray, p: int) -> np.ndarray:
    """Correlation Cholesky factors ``(..., p, p)`` from CPCs ``(..., K)``, vectorized.

    CPCs are ordered column by column like :func:`cpc_from_corr`; complex input is
    allowed (the map is analytic), which :func:`covariance_information` uses.

    Examples
    --------
    >>> c = corr_cholesky_from_cpc(np.array([0.5, 0.2, -0.3]), 3)
    >>> np.round(cpc_from_corr(c @ c.T), 12).tolist()
    [0.5, 0.2, -0.3]
    """
    cpc = np.asarray(cpc)
    batch = cpc.shape[:-1]
    dtype = np.result_type(cpc.dtype, float)
    z = np.zeros((*batch, p, p), dtype=dtype)
    upper_r, upper_c = np.triu_indices(p, 1)
    z[..., upper_c, upper_r] = cpc
    chol = np.zeros((*batch, p, p), dtype=dtype)
    remaining = np.ones((*batch, p), dtype=dtype)
    for j in range(p):
        chol[..., j, j] = np.sqrt(remaining[..., j])
        below = slice(j + 1, p)
        chol[..., below, j] = z[..., below, j] * np.sqrt(remaining[..., below])
        remaining[..., below] = remaining[..., below] - chol[..., below, j] ** 2
    return chol


def covariance_information(theta: np.ndarray, p: int) -> np.ndarray:
    """Fisher information of one observation for ``theta = (log sd, atanh CPC)``.

    ``I_ab = tr(S^-1 dS/da S^-1 dS/db) / 2`` for a multivariate normal with covariance
    ``S = L L^T``, ``L = diag(sd) C``. With ``A_a = L^-1 dL/da`` this is
    ``|A_a + A_a^T| . |A_b + A_b^T| / 2`` (Frobenius), where ``A = C^-1 E_a C`` for the
    log sd of feature ``a`` (``E_a`` the unit matrix at ``(a, a)``) and ``C^-1 dC/dw``
    for a CPC, whose derivative is a complex-step derivative (exact to rounding). The
    information does not depend on the sds.

    Parameters
    ----------
    theta : ndarray, shape (G, p + K)
    p : int

    Returns
    -------
    ndarray, shape (G, p + K, p + K)

    Examples
    --------
    A bivariate normal with correlation 0.5: ``I(log s1, log s1) = (2 - r^2) / (1 - r^2)``.

    >>> info = covariance_information(np.array([[0.0, 0.0, np.arctanh(0.5)]]), 2)
    >>> round(float(info[0, 0, 0]), 12) == round(1.75 / 0.75, 12)
    True
    """
    theta = np.asarray(theta, dtype=float)
    w = theta[..., p:]
    k = w.shape[-1]
    corr_chol = corr_cholesky_from_cpc(np.tanh(w), p)
    inverse = np.linalg.inv(corr_chol)
    a_sd = np.einsum("gia,gaj->gaij", inverse, corr_chol)  # (G, p, p, p)
    step = 1e-20
    shifted = w[:, None, :] + 1j * step * np.eye(k)
    d_chol = corr_cholesky_from_cpc(np.tanh(shifted), p).imag / step  # (G, K, p, p)
    a = np.concatenate([a_sd, inverse[:, None] @ d_chol], axis=1)
    sym = a + np.swapaxes(a, -1, -2)
    return 0.5 * np.einsum("gaij,gbij->gab", sym, sym)


def _correlation_cholesky(cov: np.ndarray, usable: np.ndarray) -> np.ndarray:
    """Cholesky factors of the correlation matrices of ``cov``; identity where unusable."""
    d = cov.shape[-1]
    eye = np.broadcast_to(np.eye(d), cov.shape)
    with np.errstate(invalid="ignore", divide="ignore"):
        sd = np.sqrt(np.diagonal(cov, axis1=-2, axis2=-1))
        corr = cov / (sd[..., :, None] * sd[..., None, :])
    ok = usable & np.all(np.isfinite(corr), axis=(-2, -1))
    corr = np.where(ok[:, None, None], corr, eye)
    try:  # the usual case: every matrix positive definite, one batched factorization
        return np.linalg.cholesky(corr)
    except np.linalg.LinAlgError:
        ok[ok] = np.linalg.eigvalsh(corr[ok]).min(axis=-1) > 1e-10
        return np.linalg.cholesky(np.where(ok[:, None, None], corr, eye))


def covariance_estimates(est: dict) -> tuple[np.ndarray, np.ndarray]:
    """A group's covariance coordinates ``(log sd, atanh CPC)`` and their variances.

    Parameters
    ----------
    est : dict
        :func:`group_estimates` output.

    Returns
    -------
    estimate, variance : ndarray, shape (G, p + K)
    """
    return (np.concatenate([est["sd"][0], est["corr"][0]], axis=-1),
            np.concatenate([est["sd"][1], est["corr"][1]], axis=-1))


def mean_whitening(z: SufficientStats, est: dict) -> np.ndarray:
    """Cholesky factors ``(G, p, p)`` of the correlation of each group's estimated means.

    That is the correlation of the group's scatter plus :func:`pseudo_rows` rows' worth
    of the pooled within-group covariance (the group's sample correlation when it has
    many rows, near the pooled one when it has a few); identity where a group has no
    rows or a feature without variance.

    Examples
    --------
    >>> st = SufficientStats(("a",), ("x", "y"), np.array([101]), np.zeros((1, 2)),
    ...                      100.0 * np.array([[[1.0, 0.5], [0.5, 1.0]]]))
    >>> f = mean_whitening(st, group_estimates(st))
    >>> np.round(f[0] @ f[0].T, 12)[0, 1].tolist()
    0.5
    """
    k = pseudo_rows(z.n_features)
    dof = np.maximum(z.n - 1.0, 0.0).sum()
    pooled = z.scatter.sum(axis=0) / dof if dof > 0 else np.eye(z.n_features)
    shrunk = z.scatter + k * pooled  # the same shrinkage as the means' variances
    return _correlation_cholesky(shrunk, np.all(np.isfinite(est["mu"][1]), axis=-1))


def pseudo_rows(p: int) -> int:
    """Rows' worth of the pooled within-group covariance added to a group's own scatter
    where its means are whitened (``p + 2``: negligible beside large groups, most of the
    estimate for groups of a few rows)."""
    return p + 2


def _pooled_variance(count: np.ndarray, sum_sq: np.ndarray) -> np.ndarray:
    """Pooled within-group variance of each feature ``(p,)`` (1 where nothing varies)."""
    dof = np.maximum(count - 1.0, 0.0).sum(axis=0)
    total = sum_sq.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((dof > 0) & (total > 0), total / np.where(dof > 0, dof, 1.0), 1.0)


def covariance_whitening(p: int, estimate: np.ndarray, variance: np.ndarray) -> np.ndarray:
    """Cholesky factors ``(G, d, d)``, ``d = p + K``, of the correlation of each group's
    covariance coordinates: the inverse Fisher information of ``(log sd, atanh CPC)``
    at the group's estimate (:func:`covariance_estimates`). Identity where a group has
    too few rows to tell (an infinite variance).
    """
    usable = np.all(np.isfinite(variance), axis=-1)
    d = estimate.shape[-1]
    inverse_info = np.broadcast_to(np.eye(d), (len(estimate), d, d)).copy()
    if usable.any():
        inverse_info[usable] = np.linalg.inv(covariance_information(estimate[usable], p))
    return _correlation_cholesky(inverse_info, usable)


#: At most this many groups locate a between-group sd's coordinates.
_TAU_GROUPS = 2000


def _profile_loglik(estimate: np.ndarray, variance: np.ndarray, log_tau) -> np.ndarray:
    """``sum_g log N(est_g | m, tau^2 + v_g)`` per column, ``m`` the weighted mean."""
    total = np.exp(2.0 * log_tau) + variance
    weight = 1.0 / total
    loc = np.sum(weight * estimate, axis=0) / np.sum(weight, axis=0)
    return -0.5 * np.sum(np.log(total) + (estimate - loc) ** 2 * weight, axis=0)


def _half_width(grid: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Half the width of ``{t: values(t) >= max - 1/2}`` per column (linear interpolation)."""
    out = np.empty(values.shape[1])
    for j in range(values.shape[1]):
        t, v = grid[:, j], values[:, j] - values[:, j].max() + 0.5
        above = np.flatnonzero(v >= 0)
        lo, hi = above[0], above[-1]
        left, right = t[lo], t[hi]
        if lo > 0:
            left = t[lo - 1] + (t[lo] - t[lo - 1]) * -v[lo - 1] / (v[lo] - v[lo - 1])
        if hi < len(t) - 1:
            right = t[hi] + (t[hi + 1] - t[hi]) * v[hi] / (v[hi] - v[hi + 1])
        out[j] = 0.5 * (right - left)
    return out


def log_tau_coordinates(
    estimate: np.ndarray, variance: np.ndarray, sigma, *, shared: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Mode and curvature scale of the posterior of ``log tau`` per column.

    For ``theta_g ~ N(loc, tau)`` with ``tau ~ HalfNormal(sigma)``, given each group's
    estimate ``est_g ~ N(theta_g, v_g)``: the density of ``log tau`` is approximated by
    the profile marginal likelihood of the estimates times the prior (with its
    Jacobian ``tau``), located on a grid and refined; the scale is the inverse square
    root of its curvature at the mode, or, where the density is wide and skewed (few
    groups, or ``tau`` small beside the sampling variances), its half-width at half a
    log unit below the mode; at most 1.

    Parameters
    ----------
    estimate, variance : ndarray, shape (G, d)
        Estimates and sampling variances (huge where a group has no information).
    sigma : float or ndarray, shape (d,)
        Half-normal prior scale of each ``tau``.
    shared : bool
        One ``tau`` for all ``d`` columns (then the results have shape ``()``).

    Returns
    -------
    center, scale : ndarray, shape (d,) or ()

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> est = rng.normal(0.0, np.sqrt(0.5**2 + 0.01), size=(400, 1))
    >>> center, scale = log_tau_coordinates(est, np.full((400, 1), 0.01), 1.0)
    >>> bool(abs(np.exp(center[0]) - 0.5) < 0.05), bool(0.03 < scale[0] < 0.05)
    (True, True)
    """
    estimate = np.asarray(estimate, dtype=float)
    variance = np.asarray(variance, dtype=float)
    g, d = estimate.shape
    # the search on an evenly spaced subset of the groups, its log-likelihood scaled
    # up (keeps the build fast); the final 9 points on every group
    keep = np.linspace(0, g - 1, min(g, _TAU_GROUPS)).astype(int)
    log_sigma = np.log(np.broadcast_to(np.asarray(sigma, dtype=float), (1,) if shared else (d,)))

    def density(log_tau, rows=slice(None)):
        est, var = estimate[rows], variance[rows]
        ll = g / len(est) * _profile_loglik(est, var, np.broadcast_to(log_tau, (d,)))
        if shared:
            ll = np.sum(ll, keepdims=True)
        return ll - 0.5 * np.exp(2.0 * (log_tau - log_sigma)) + log_tau

    coarse = log_sigma + np.linspace(-12.0, 2.0, 29)[:, None]  # steps of 0.5
    values = np.array([density(t, keep) for t in coarse])
    best = coarse[np.argmax(values, axis=0), np.arange(coarse.shape[1])]
    width = _half_width(coarse, values)
    offsets = np.arange(-4, 5)[:, None]
    # refine twice, 9 points around the best so far
    for step, rows in ((0.125, keep), (0.03125, slice(None))):
        around = best
        values = np.array([density(around + step * o, rows) for o in offsets])
        best = around + step * offsets[np.argmax(values, axis=0), 0]
    # quadratic fit of the last 9 points: curvature 2 a of a t^2 + b t + c, t - around
    a, b = np.polynomial.polynomial.polyfit(step * offsets[:, 0], values, 2)[::-1][:2]
    with np.errstate(divide="ignore", invalid="ignore"):
        center = np.where(a < 0, around - b / (2.0 * a), around)
        scale = np.where(a < 0, 1.0 / np.sqrt(-2.0 * np.minimum(a, -0.5)), 1.0)
    # a skewed (wide) density: its width where it is half a log unit below the mode
    scale = np.where(scale > 0.2, np.clip(width, scale, 1.0), scale)
    center = np.clip(center, around - 4 * step, around + 4 * step)
    if shared:
        return center[0], scale[0]
    return center, scale
