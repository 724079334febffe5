"""The default model's log density written directly in JAX.

:func:`groupcov.model.build.build_model` states the model in PyMC; with the default
(``"auto"``) parameterization this module computes the same log density, term for term,
and the same posterior variables, as plain JAX functions of the data containers of
:func:`groupcov.model.inputs.model_data`. The NumPyro sampler runs on it without
importing PyMC or PyTensor: no graph rewrites and no translation before XLA compiles,
and a program with a few fused loops over the groups instead of hundreds of small
operations per gradient. Tests check it against the PyMC model's log density and
deterministics at random points (``tests/test_density.py``).

Up to :data:`UNROLL_MAX_P` features (fewer for few groups) matrices are handled entry by
entry, each entry an array over the groups: the correlation factor (``p (p - 1) / 2``
entries), Cholesky factors and triangular solves (``p^3`` operations). That code becomes
a few fused elementwise loops, where batched linear algebra would call LAPACK once per
group, but its size, and its compile time, grow with ``p``. Beyond, the factor is a few
array operations on ``(G, p, p)`` matrices and the solves are batched LAPACK calls.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from groupcov._special import gammaln, trigamma
from groupcov.model.centering import cpc_beta
from groupcov.model.inputs import (
    COV_PARAM,
    FEATURE,
    FEATURE_,
    GROUP,
    PAIR,
)
from groupcov.model.priors import Priors

__all__ = [
    "UNROLL_MAX_P",
    "UNROLL_MAX_P_FEW_GROUPS",
    "UNROLL_MIN_GROUPS",
    "DensitySpec",
    "Evaluation",
    "cholesky",
    "forward_substitution",
    "log_density_and_outputs",
    "masked_loglik",
    "output_dims",
    "parameter_shapes",
    "suffstat_loglik",
]

#: Up to this many features matrices are handled entry by entry (code grows as p^3)...
UNROLL_MAX_P = 10
#: ...for models of at least :data:`UNROLL_MIN_GROUPS` groups; with fewer groups only up
#: to :data:`UNROLL_MAX_P_FEW_GROUPS`: there the array form's gradient is as fast (at 20
#: groups and 7-10 features) and compiles in a fraction of the time (2.4 s against 12 s
#: at p = 10), while at 200 groups the entry-by-entry gradient is 1.5-2.5 times faster.
UNROLL_MIN_GROUPS = 50
UNROLL_MAX_P_FEW_GROUPS = 6

_LOG2 = float(np.log(2.0))
_LOG_2PI = float(np.log(2.0 * np.pi))
_HALF_LOG_2PI = 0.5 * _LOG_2PI
_LOG_HALFNORMAL_NORM = float(0.5 * np.log(2.0 / np.pi))


class DensitySpec(NamedTuple):
    """What fixes the density besides the data: pooling modes, size and priors."""

    means: str
    covariance: str
    n_groups: int
    n_features: int
    priors: Priors


# --- small-matrix linear algebra ----------------------------------------------------------


def cholesky(a, xp=None):
    """Lower Cholesky factor of ``(..., p, p)`` matrices, entry by entry.

    For small p this compiles to fused loops over the batch instead of one LAPACK call
    per matrix. NaN where a matrix is not positive definite, like
    ``jax.numpy.linalg.cholesky``. ``xp`` is the array module (default ``jax.numpy``).
    """
    xp = _jnp() if xp is None else xp
    p = a.shape[-1]
    low = [[None] * p for _ in range(p)]
    zero = xp.zeros_like(a[..., 0, 0])
    for j in range(p):
        pivot = a[..., j, j] - sum((low[j][k] ** 2 for k in range(j)), zero)
        low[j][j] = xp.sqrt(pivot)
        for i in range(j + 1, p):
            dot = sum((low[i][k] * low[j][k] for k in range(j)), zero)
            low[i][j] = (a[..., i, j] - dot) / low[j][j]
    rows = [xp.stack([low[i][j] if j <= i else zero for j in range(p)], axis=-1) for i in range(p)]
    return xp.stack(rows, axis=-2)


def forward_substitution(chol, rhs, xp=None):
    """``L^{-1} B`` for lower-triangular ``L`` ``(..., p, p)`` and ``B`` ``(..., p, k)``,
    row by row (fused loops over the batch for small p)."""
    xp = _jnp() if xp is None else xp
    rows = []
    for i in range(chol.shape[-1]):
        acc = rhs[..., i, :]
        for k in range(i):
            acc = acc - chol[..., i, k, None] * rows[k]
        rows.append(acc / chol[..., i, i, None])
    return xp.stack(rows, axis=-2)


def _jnp():
    import jax.numpy as jnp

    return jnp


def _factor(cov, xp, entrywise: bool | None = None):
    """Lower Cholesky factors: LAPACK in NumPy, in JAX entry by entry when ``entrywise``
    (default: up to :data:`UNROLL_MAX_P` features), batched LAPACK otherwise."""
    if xp is np:
        return np.linalg.cholesky(cov)
    if entrywise is None:
        entrywise = cov.shape[-1] <= UNROLL_MAX_P
    if entrywise:
        return cholesky(cov, xp)
    return xp.linalg.cholesky(cov)


def _loglik_from_factor(n, mean, root_t, mu, chol, xp, entrywise: bool | None = None):
    """``sum_i log N(x_i | mu, L L^T)`` from n, mean and ``R^T`` (``S = R^T R``), solving
    ``L X = [xbar - mu, R^T]`` (no inverse is formed); with JAX entry by entry when
    ``entrywise`` (default: up to :data:`UNROLL_MAX_P` features)."""
    p = mean.shape[-1]
    rhs = xp.concatenate([(mean - mu)[..., None], xp.broadcast_to(root_t, chol.shape)], axis=-1)
    if entrywise is None:
        entrywise = p <= UNROLL_MAX_P
    if xp is np:
        solved = np.linalg.solve(chol, rhs)
    elif entrywise:
        solved = forward_substitution(chol, rhs, xp)
    else:  # unrolled code would grow as p^3 and compile slowly
        from jax.scipy.linalg import solve_triangular

        solved = solve_triangular(chol, rhs, lower=True)
    maha = (solved[..., 0] ** 2).sum(-1)
    trace = (solved[..., 1:] ** 2).sum((-2, -1))
    logdet = 2.0 * xp.log(xp.diagonal(chol, axis1=-2, axis2=-1)).sum(-1)
    return -0.5 * n * (p * _LOG_2PI + logdet) - 0.5 * trace - 0.5 * n * maha


def suffstat_loglik(n, mean, root_t, mu, cov, xp=np, entrywise: bool | None = None):
    """Exact log-likelihood of each batch entry's rows from its statistics.

    ``n`` rows with mean ``mean`` and centered scatter ``R^T R`` (``root_t`` is ``R^T``),
    under ``N(mu, cov)``; the NumPy twin of ``groupcov.distributions.mvnormal.suffstat_logp``.
    ``xp`` is the array module: ``numpy`` or ``jax.numpy`` (inside a JAX function).

    Examples
    --------
    >>> from scipy import stats
    >>> x = np.random.default_rng(0).normal(size=(6, 2))
    >>> c = x - x.mean(0)
    >>> root_t = np.linalg.cholesky(c.T @ c)
    >>> cov = np.array([[2.0, 0.3], [0.3, 1.0]])
    >>> ours = suffstat_loglik(6, x.mean(0), root_t, np.zeros(2), cov)
    >>> bool(np.isclose(ours, stats.multivariate_normal(np.zeros(2), cov).logpdf(x).sum()))
    True
    """
    return _loglik_from_factor(n, mean, root_t, mu, _factor(cov, xp, entrywise), xp, entrywise)


def masked_loglik(n, mean, root_t, mu, cov, observed, xp=np, entrywise: bool | None = None):
    """:func:`suffstat_loglik` of rows that observe only the features where ``observed``
    (``(..., p)``, 0/1) is 1: the exact likelihood of their observed sub-vectors.

    With ``M`` the 0/1 mask the covariance is replaced by ``M Sigma M + (I - M)``, whose
    factor is the factor of the observed block with unit rows elsewhere, so every cell
    is handled by one batched expression (``groupcov.distributions.mvnormal.
    masked_suffstat_logp`` in PyMC).
    """
    mask = observed
    p = mask.shape[-1]
    outer = mask[..., :, None] * mask[..., None, :]
    masked_cov = cov * outer + np.eye(p) * (1.0 - mask)[..., None, :]
    full = suffstat_loglik(
        n, mean * mask, root_t * mask[..., :, None], mu * mask, masked_cov, xp, entrywise
    )
    return full + 0.5 * n * (1.0 - mask).sum(-1) * _LOG_2PI


# --- pieces of the prior ------------------------------------------------------------------


def _half_log1m_tanh2(w):
    """``log(1 - tanh(w)**2) / 2``, stable for large ``|w|``."""
    jnp = _jnp()
    a = jnp.abs(w)
    return _LOG2 - a - jnp.logaddexp(0.0, -2.0 * a)


def _atanh_cpc_logp(w, b):
    """Log density of ``atanh(x)``, ``x ~ Beta(b, b)`` on (-1, 1), elementwise."""
    log_beta = 2.0 * gammaln(b) - gammaln(2.0 * b)
    return 2.0 * b * _half_log1m_tanh2(w) - (2.0 * b - 1.0) * _LOG2 - log_beta


def _corr_and_stds(chol):
    jnp = _jnp()
    stds = jnp.sqrt(jnp.sum(chol**2, axis=-1))
    unit = chol / stds[..., :, None]
    return unit @ jnp.swapaxes(unit, -1, -2), stds


def _normal_logp(x, mu, sigma):
    jnp = _jnp()
    return -0.5 * ((x - mu) / sigma) ** 2 - jnp.log(sigma) - _HALF_LOG_2PI


def _scaled_halfnormal(u, sigma, center, scale):
    """``tau`` and the log density of ``u`` (``log tau = center + scale * u``)."""
    jnp = _jnp()
    log_tau = center + scale * u
    tau = jnp.exp(log_tau)
    logp = (_LOG_HALFNORMAL_NORM - jnp.log(sigma) - 0.5 * (tau / sigma) ** 2 + log_tau
            + jnp.log(scale))
    return tau, jnp.sum(logp)


def _population_loc(xi, tau, estimate, variance, prior_precision, xi_logp):
    """Population location ``shift + scale * xi`` and the log density of ``xi``."""
    jnp = _jnp()
    precision = 1.0 / (variance + tau**2)
    total = prior_precision + jnp.sum(precision, axis=0)
    shift = jnp.sum(precision * estimate, axis=0) / total
    scale = 1.0 / jnp.sqrt(total)
    return shift + scale * xi, jnp.sum(xi_logp(xi, shift, scale))


def _normal_loc(sigma):
    """Prior precision and ``xi`` log density of a ``N(0, sigma)`` location."""

    def logp(xi, shift, scale):
        return _normal_logp(xi, -shift / scale, sigma / scale)

    return 1.0 / sigma**2, logp


def _atanh_beta_loc(b):
    """The same for ``atanh(2 u - 1)``, ``u ~ Beta(b, b)`` (the LKJ prior of a CPC)."""
    jnp = _jnp()

    def logp(xi, shift, scale):
        return _atanh_cpc_logp(shift + scale * xi, b) + jnp.log(scale)

    return 2.0 / trigamma(b), logp


def _whitened_normal(eps, loc, tau, estimate, variance, factor):
    """``theta ~ N(loc, tau)`` from whitened ``eps`` (:func:`groupcov.distributions.
    whitening.whitened_normal`): ``theta`` and the log density of ``eps``."""
    jnp = _jnp()
    inv_total = 1.0 / (tau**2 + variance)
    root_inv_total = jnp.sqrt(inv_total)
    one_minus_w, root_w = variance * inv_total, tau * root_inv_total
    centre = estimate + one_minus_w * (loc - estimate)
    sd = jnp.sqrt(variance)
    mixed = one_minus_w * eps + root_w * _matvec(factor, root_w * eps)
    theta = centre + (root_w * sd) * mixed
    diag = jnp.diagonal(factor, axis1=-2, axis2=-1)
    ratio = (variance + diag * tau**2) * inv_total * root_inv_total
    log_jac = jnp.log(tau) + jnp.log(sd) + jnp.log(ratio)
    # (theta - loc) / tau, written out: through theta, a small tau loses eps to
    # rounding (theta = centre to machine precision) and the density goes flat in eps
    z = tau * inv_total * (estimate - loc) + (sd * root_inv_total) * mixed
    return theta, jnp.sum(-0.5 * z**2 - jnp.log(tau) - _HALF_LOG_2PI + log_jac)


def _matvec(factor, value):
    return (factor @ value[..., None])[..., 0]


def _whitened_lkj(eps, center, factor, priors: Priors, p: int):
    """``(log sd, atanh CPC) = center + factor @ eps`` and the log density of ``eps``."""
    jnp = _jnp()
    theta = center + _matvec(factor, eps)
    log_sd = theta[..., :p] / priors.log_sd_sigma
    logp = (
        jnp.sum(-0.5 * log_sd**2 - np.log(priors.log_sd_sigma) - _HALF_LOG_2PI)
        + jnp.sum(_atanh_cpc_logp(theta[..., p:], cpc_beta(priors.eta, p)))
        + jnp.sum(jnp.log(jnp.diagonal(factor, axis1=-2, axis2=-1)))
    )
    return theta, logp


# --- the model ----------------------------------------------------------------------------


def parameter_shapes(spec: DensitySpec) -> dict[str, tuple[int, ...]]:
    """The sampler's coordinates, by name (as in the PyMC model), with their shapes."""
    g, p = spec.n_groups, spec.n_features
    k = p * (p - 1) // 2
    shapes: dict[str, tuple[int, ...]] = {}
    if spec.means == "pooled":
        shapes["mu_pop_z"] = (p,)
    elif spec.means == "unpooled":
        shapes["mu_z_eps"] = (g, p)
    else:
        shapes.update(mu_tau_z_u=(p,), mu_z_pop_xi=(p,), mu_z_eps=(g, p))
    if spec.covariance == "pooled":
        shapes["chol_pop_z_eps"] = (p + k,)
    elif spec.covariance == "unpooled":
        shapes["chol_z_eps"] = (g, p + k)
    else:
        shapes["sd_tau_u"] = (p,)
        if p > 1:
            shapes["corr_tau_u"] = ()
        shapes["log_sd_z_pop_xi"] = (p,)
        if p > 1:
            shapes["cpc_z_pop_xi"] = (k,)
        shapes["cov_z_eps"] = (g, p + k)
    return shapes


def output_dims(spec: DensitySpec) -> list[tuple[str, list[str]]]:
    """Posterior variables of :func:`log_density_and_outputs`, in order, with their dims
    (the PyMC model's free variables and deterministics)."""
    p = spec.n_features
    dims: dict[str, list[str]] = {
        "mu_pop_z": [FEATURE], "mu_z_eps": [GROUP, FEATURE], "mu_tau_z_u": [FEATURE],
        "mu_z_pop_xi": [FEATURE], "chol_pop_z_eps": [COV_PARAM],
        "chol_z_eps": [GROUP, COV_PARAM], "sd_tau_u": [FEATURE], "corr_tau_u": [],
        "log_sd_z_pop_xi": [FEATURE], "cpc_z_pop_xi": [PAIR], "cov_z_eps": [GROUP, COV_PARAM],
    }
    names = list(parameter_shapes(spec))
    out = [(n, dims[n]) for n in names]
    if spec.means == "hierarchical":
        out.append(("mu_tau_z", [FEATURE]))
    if spec.covariance == "hierarchical":
        out.append(("sd_tau", [FEATURE]))
        if p > 1:
            out.append(("corr_tau", []))
    matrix = [GROUP, FEATURE, FEATURE_]
    out += [("mu", [GROUP, FEATURE]), ("sigma", [GROUP, FEATURE]), ("corr", matrix),
            ("cov", matrix)]
    if spec.means != "unpooled":
        out.append(("mu_pop", [FEATURE]))
    if spec.means == "hierarchical":
        out.append(("mu_tau", [FEATURE]))
    if spec.covariance == "hierarchical":
        out.append(("sigma_pop", [FEATURE]))
        if p > 1:
            out += [("corr_pop", [FEATURE, FEATURE_]), ("atanh_cpc_pop", [PAIR])]
    return out


def _means(params, data, spec: DensitySpec):
    """Standardized group means ``(G, p)``, their prior's log density, hyper-parameters."""
    jnp = _jnp()
    mu_sigma = data["mu_sigma"]
    if spec.means == "pooled":
        x = params["mu_pop_z"]
        mu = jnp.broadcast_to(x, (spec.n_groups, spec.n_features))
        return mu, jnp.sum(_normal_logp(x, 0.0, mu_sigma)), {"mu_pop": x}
    est, var, factor = (data[f"mu_z_{k}"] for k in ("estimate", "variance", "whiten"))
    if spec.means == "unpooled":
        mu, logp = _whitened_normal(
            params["mu_z_eps"], jnp.zeros_like(mu_sigma), mu_sigma, est, var, factor
        )
        return mu, logp, {}
    tau, logp_tau = _scaled_halfnormal(
        params["mu_tau_z_u"], spec.priors.mu_tau_scale(mu_sigma), data["mu_tau_center"],
        data["mu_tau_scale"],
    )
    loc, logp_loc = _population_loc(
        params["mu_z_pop_xi"], tau, est, var, *_normal_loc(mu_sigma)
    )
    mu, logp = _whitened_normal(params["mu_z_eps"], loc, tau, est, var, factor)
    return mu, logp_tau + logp_loc + logp, {"mu_pop": loc, "mu_tau": tau}


def _covariances(params, data, spec: DensitySpec):
    """Each group's unconstrained covariance ``(log sd, atanh CPC)`` ``(G, p + K)``,
    their prior's log density and the hyper-parameters."""
    jnp = _jnp()
    p, priors = spec.n_features, spec.priors
    if spec.covariance == "pooled":
        theta, logp = _whitened_lkj(
            params["chol_pop_z_eps"], data["chol_pop_z_center"], data["chol_pop_z_whiten"],
            priors, p,
        )
        return jnp.broadcast_to(theta, (spec.n_groups, theta.shape[-1])), logp, {}
    if spec.covariance == "unpooled":
        theta, logp = _whitened_lkj(
            params["chol_z_eps"], data["chol_z_center"], data["chol_z_whiten"], priors, p
        )
        return theta, logp, {}
    est, var = data["cov_z_estimate"], data["cov_z_variance"]
    sd_tau, logp = _scaled_halfnormal(
        params["sd_tau_u"], priors.sd_tau_sigma, data["sd_tau_center"], data["sd_tau_scale"]
    )
    log_sd_pop, logp_loc = _population_loc(
        params["log_sd_z_pop_xi"], sd_tau, est[:, :p], var[:, :p],
        *_normal_loc(np.full(p, priors.log_sd_sigma)),
    )
    logp = logp + logp_loc
    hyper = {"log_sd_pop": log_sd_pop, "sd_tau": sd_tau}
    loc, tau = log_sd_pop, sd_tau
    if p > 1:
        b = cpc_beta(priors.eta, p)
        corr_tau, logp_tau = _scaled_halfnormal(
            params["corr_tau_u"], priors.corr_tau_sigma, data["corr_tau_center"],
            data["corr_tau_scale"],
        )
        atanh_pop, logp_loc = _population_loc(
            params["cpc_z_pop_xi"], corr_tau, est[:, p:], var[:, p:], *_atanh_beta_loc(b)
        )
        logp = logp + logp_tau + logp_loc
        hyper.update(atanh_cpc_pop=atanh_pop, corr_tau=corr_tau)
        loc = jnp.concatenate([log_sd_pop, atanh_pop])
        tau = jnp.concatenate([sd_tau, jnp.repeat(corr_tau[None], len(b))])
    theta, logp_theta = _whitened_normal(
        params["cov_z_eps"], loc, tau, est, var, data["cov_z_whiten"]
    )
    return theta, logp + logp_theta, hyper


def _chol(theta, p: int, entrywise: bool):
    """Covariance Cholesky factors ``(..., p, p)`` from ``(log sd, atanh CPC)``."""
    if entrywise:
        return _stack_lower(_chol_entries(theta, p)[0])
    return _chol_matrix(theta, p)


def _entrywise(spec: DensitySpec) -> bool:
    """Whether the model's matrices are handled entry by entry (see :data:`UNROLL_MAX_P`)."""
    p = spec.n_features
    if spec.n_groups < UNROLL_MIN_GROUPS:
        return p <= UNROLL_MAX_P_FEW_GROUPS
    return p <= UNROLL_MAX_P


def _stack_lower(entries):
    """A lower-triangular matrix ``(..., p, p)`` from its entries (arrays over the batch)."""
    jnp = _jnp()
    p = len(entries)
    zero = jnp.zeros_like(entries[0][0])
    return jnp.stack(
        [jnp.stack([entries[i][j] if j <= i else zero for j in range(p)], axis=-1)
         for i in range(p)], axis=-2,
    )


def _chol_entries(theta, p: int):
    """The lower triangle of the covariance Cholesky factor from ``(log sd, atanh CPC)``,
    entry by entry (arrays over the batch), and the log of its diagonal.

    With ``z = tanh(w)`` the CPCs and ``r_ij = prod_{k<j} (1 - z_ik^2)`` the squared norm
    a row has left: ``L_ij = sd_i z_ij sqrt(r_ij)``, ``L_ii = sd_i sqrt(r_ii)``. Each
    ``1 - z^2`` is computed as ``4 e / (1 + e)^2`` with ``e = exp(-2 |w|)``: exact also
    where ``z`` rounds to +-1.
    """
    jnp = _jnp()
    pairs = [(i, j) for j in range(p) for i in range(j + 1, p)]
    column = {pair: p + k for k, pair in enumerate(pairs)}
    entries = [[None] * p for _ in range(p)]
    log_diag = []
    # one split instead of a slice per column: the gradient is one concatenation
    columns = jnp.unstack(theta, axis=-1)
    for i in range(p):
        sd = jnp.exp(columns[i])
        remaining = None
        for j in range(i):
            w = columns[column[i, j]]
            e = jnp.exp(-2.0 * jnp.abs(w))
            z = jnp.tanh(w)
            left = 4.0 * e / (1.0 + e) ** 2
            if remaining is None:
                entries[i][j] = sd * z
                remaining = left
            else:
                entries[i][j] = sd * z * jnp.sqrt(remaining)
                remaining = remaining * left
        if remaining is None:
            entries[i][i] = sd
            log_diag.append(columns[i])
        else:
            entries[i][i] = sd * jnp.sqrt(remaining)
            log_diag.append(columns[i] + 0.5 * jnp.log(remaining))
    return entries, log_diag


def _chol_matrix(theta, p: int):
    """:func:`_chol_entries` as a few array operations on ``(..., p, p)`` matrices, for
    many features (the entry-by-entry code grows as ``p^2`` operations and compiles
    slowly). ``r_ij`` is an exclusive cumulative sum of ``log(1 - z_ik^2)`` along each
    row, computed from ``w`` directly, so it is exact also where ``z`` rounds to +-1."""
    jnp = _jnp()
    # the CPCs' places in the strict lower triangle, column by column as in
    # _chol_entries; 0 picks a zero put in front (upper triangle and diagonal)
    place = np.zeros((p, p), dtype=np.int32)
    pairs = [(i, j) for j in range(p) for i in range(j + 1, p)]
    for k, (i, j) in enumerate(pairs):
        place[i, j] = k + 1
    log_sd, w = theta[..., :p], theta[..., p:]
    w = jnp.concatenate([jnp.zeros_like(w[..., :1]), w], axis=-1)[..., place]
    log_left = 2.0 * _half_log1m_tanh2(w)  # log(1 - z^2); 0 off the strict lower part
    log_r = jnp.cumsum(log_left, axis=-1) - log_left
    unit = jnp.where(np.eye(p, dtype=bool), 1.0, jnp.tanh(w)) * jnp.exp(0.5 * log_r)
    return jnp.exp(log_sd)[..., :, None] * unit


def _unrolled_loglik(n, mean, root, mu, entries, log_diag):
    """:func:`suffstat_loglik` with the factor given entry by entry: every term is an
    elementwise expression over the groups, so XLA fuses the whole likelihood and its
    gradient into a few loops."""
    jnp = _jnp()
    p = len(entries)
    mu = jnp.unstack(mu, axis=-1)
    solved = []  # rows of L^-1 [xbar - mu, R^T], each a list of p + 1 arrays
    for i in range(p):
        acc = [mean[..., i] - mu[i], *(root[..., j, i] for j in range(p))]
        for k in range(i):
            acc = [a - entries[i][k] * s for a, s in zip(acc, solved[k], strict=True)]
        solved.append([a / entries[i][i] for a in acc])
    maha = sum(row[0] ** 2 for row in solved)
    trace = sum(x**2 for row in solved for x in row[1:])
    logdet = 2.0 * sum(log_diag)
    return -0.5 * n * (p * _LOG_2PI + logdet) - 0.5 * trace - 0.5 * n * maha


def _incomplete_loglik(data, mu, chol):
    """Rows that observe only some features (:func:`masked_loglik`), per cell: entry by
    entry up to :data:`UNROLL_MAX_P_FEW_GROUPS` features (each cell refactors its
    masked covariance, and beyond that the unrolled factorization and solves of the
    cells cost more than batched LAPACK: 0.67 against about 0.3 ms per gradient for 67
    cells at p = 8, and 9.5 against 3 s to compile)."""
    jnp = _jnp()
    idx, packed = data["cell_group"], data["cell_suffstats"]
    chol = chol[idx]
    return masked_loglik(
        data["cell_n"], packed[:, 0, :], jnp.swapaxes(packed[:, 1:, :], -1, -2), mu[idx],
        chol @ jnp.swapaxes(chol, -1, -2), data["cell_observed"], jnp,
        entrywise=chol.shape[-1] <= UNROLL_MAX_P_FEW_GROUPS,
    )


class Evaluation(NamedTuple):
    """The model at one point of the sampler's coordinates.

    Attributes
    ----------
    logp : scalar
        Log posterior density (the PyMC model's ``logp``).
    outputs : list of arrays
        The posterior variables of :func:`output_dims`, in order.
    group_loglik : array, shape (G,)
        Log-likelihood of each group's rows in the data's units (the standardized
        likelihood minus the log Jacobian of the standardization).
    """

    logp: Any
    outputs: list
    group_loglik: Any


def log_density_and_outputs(params: dict, data: dict, spec: DensitySpec) -> Evaluation:
    """Log posterior density (the PyMC model's ``logp``), the posterior variables of
    :func:`output_dims` and each group's log-likelihood, at one point.

    Parameters
    ----------
    params : dict
        Sampler coordinates by name, shaped as :func:`parameter_shapes`.
    data : dict
        The data containers of :func:`groupcov.model.inputs.model_data` (``"auto"``
        parameterization) as arrays.
    spec : DensitySpec

    Returns
    -------
    Evaluation

    Notes
    -----
    Evaluate it with JAX's 64-bit mode on (the samplers turn it on): in 32 bits the
    likelihood of large groups loses most of its digits.

    Examples
    --------
    >>> import jax
    >>> jax.config.update("jax_enable_x64", True)
    >>> import groupcov
    >>> from groupcov.datasets import two_groups
    >>> sim = two_groups(n_per_group=50, seed=0)
    >>> gm = groupcov.GroupCovModel(sim.data, group="group", features=sim.features)
    >>> spec = gm._density_spec()
    >>> start = {k: np.zeros(s) for k, s in parameter_shapes(spec).items()}
    >>> ev = log_density_and_outputs(start, gm._values, spec)
    >>> dict(zip([n for n, _ in output_dims(spec)], ev.outputs))["cov"].shape
    (2, 2, 2)
    >>> ev.group_loglik.shape, str(ev.logp.dtype)
    ((2,), 'float64')
    """
    jnp = _jnp()
    p = spec.n_features
    mu_z, logp_mu, hyper = _means(params, data, spec)
    theta, logp_cov, hyper_cov = _covariances(params, data, spec)
    hyper.update(hyper_cov)
    packed, n_rows = data["suffstats"], data["n_rows"]
    entrywise = _entrywise(spec)
    if entrywise:
        entries, log_diag = _chol_entries(theta, p)
        chol_z = _stack_lower(entries)
        per_group = _unrolled_loglik(
            n_rows, packed[:, 0, :], packed[:, 1:, :], mu_z, entries, log_diag
        )
    else:
        chol_z = _chol_matrix(theta, p)
        per_group = _loglik_from_factor(
            n_rows, packed[:, 0, :], jnp.swapaxes(packed[:, 1:, :], -1, -2), mu_z, chol_z, jnp,
            entrywise=False,
        )
    center, scale = data["center"], data["scale"]
    log_scale = jnp.log(scale)
    # the same in the data's units: log |d z / d x| = -sum log scale per observed value
    group_loglik = per_group - data["n_rows"] * jnp.sum(log_scale)
    logp = logp_mu + logp_cov + jnp.sum(per_group)
    if "cell_n" in data:
        cells = _incomplete_loglik(data, mu_z, chol_z)
        logp = logp + jnp.sum(cells)
        cells = cells - data["cell_n"] * (data["cell_observed"] @ log_scale)
        group_loglik = group_loglik + _group_sum(cells, data["cell_group"], spec.n_groups)

    corr, sd_z = _corr_and_stds(chol_z)
    sigma = scale * sd_z
    values = {
        **params,
        "mu": center + scale * mu_z,
        "sigma": sigma,
        "corr": corr,
        "cov": sigma[..., :, None] * sigma[..., None, :] * corr,
    }
    if "mu_tau" in hyper:
        values.update(mu_tau_z=hyper["mu_tau"], mu_tau=scale * hyper["mu_tau"])
    if "mu_pop" in hyper:
        values["mu_pop"] = center + scale * hyper["mu_pop"]
    if "sd_tau" in hyper:
        values.update(sd_tau=hyper["sd_tau"], sigma_pop=scale * jnp.exp(hyper["log_sd_pop"]))
    if "corr_tau" in hyper:
        unit_sds = jnp.zeros(p)  # a correlation matrix's factor: unit standard deviations
        pop_chol = _chol(jnp.concatenate([unit_sds, hyper["atanh_cpc_pop"]]), p, entrywise)
        pop = _corr_and_stds(pop_chol)[0]
        values.update(
            corr_tau=hyper["corr_tau"], corr_pop=pop, atanh_cpc_pop=hyper["atanh_cpc_pop"]
        )
    return Evaluation(logp, [values[name] for name, _ in output_dims(spec)], group_loglik)


def _group_sum(values, group, n_groups: int):
    import jax

    return jax.ops.segment_sum(values, group, num_segments=n_groups)
