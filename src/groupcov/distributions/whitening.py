"""Group parameters sampled in whitened coordinates chosen from each group's own data.

A reparameterization changes only the coordinates the sampler moves in, never the
model: each variable here is registered through its whitened value ``eps`` with the
density of the original parameter plus the log Jacobian, and the original parameter
is a deterministic function of ``eps``. The maps are affine per group, with factors
computed once from the data (``groupcov.model.centering``), so
NUTS sees coordinates close to independent standard normals: the correlations
between a group's parameters, which a diagonal mass matrix cannot undo, are taken out
before sampling.

- :func:`whitened_normal`, for ``theta ~ N(loc, tau)`` coordinate-wise with ``(..., d)``
  group blocks: the partially centered map (weights ``w = tau^2 / (tau^2 + v)`` from
  each estimate's sampling variance ``v``, Papaspiliopoulos, Roberts & Sköld 2007),
  extended with the correlation between a group's estimates. With ``R`` the Cholesky
  factor of that correlation and ``R_w = I + (R - I) * sqrt(w w^T)``,

  .. math:: \\theta = w\\,\\hat\\theta + (1 - w)\\,loc + s \\odot (R_w\\,\\epsilon),
            \\qquad s = tau \\sqrt{1 - w}.

  For well-informed groups (``w -> 1``) this is ``hat_theta + chol(V) eps``, the
  whitened likelihood; for groups without information (``w -> 0``) the non-centered
  form ``loc + tau * eps``.
- :func:`whitened_lkj_cov`, the LKJ(eta) correlation with log-normal standard
  deviations, whose unconstrained vector ``(log sd, atanh CPC)`` is
  ``center + C eps`` with a fixed lower-triangular ``C`` per matrix.
- :func:`scaled_halfnormal`, a half-normal scale sampled as ``log tau = center +
  scale * u``: with many groups the posterior of a between-group scale is far narrower
  than that of the group coordinates.
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt
from pymc.distributions.shape_utils import rv_size_is_none

from groupcov.distributions.lkj import (
    _half_log1m_tanh2,
    corr_cholesky_from_unconstrained,
    cpc_beta_parameter,
)

__all__ = [
    "atanh_cpc_logp",
    "conditional_whitening",
    "scaled_halfnormal",
    "whitened_lkj_cov",
    "whitened_normal",
    "zeros_support_point",
]

_LOG2 = float(np.log(2.0))
_HALF_LOG_2PI = float(0.5 * np.log(2.0 * np.pi))


def _matvec(factor, value):
    # a batched matrix product: XLA runs it several times faster than the same
    # product written as a broadcast multiply and a sum
    return pt.matmul(factor, value[..., None])[..., 0]


def _solve_lower(factor, value):
    """``factor^-1 value`` for lower-triangular ``factor (..., d, d)``, ``value (..., d)``."""
    return pt.linalg.solve_triangular(factor, value[..., None], lower=True, b_ndim=2)[..., 0]


def _log_diag(factor):
    return pt.log(pt.diagonal(factor, axis1=-2, axis2=-1))


def _zeros_like_param(index: int):
    """Support point ``eps = 0`` (the centre of the map), shaped like parameter ``index``.

    Written without the variable itself, so the expression carries no random generator.
    """

    def support_point(rv, size, *params):
        param = params[index]
        shape = param.shape if rv_size_is_none(size) else (*size, param.shape[-1])
        return pt.zeros(shape)

    return support_point


def _weights(tau, variance):
    """``1 - w``, ``sqrt(w)`` and ``1 / (tau^2 + v)`` with ``w = tau^2 / (tau^2 + v)``.

    Rational functions and one square root: no exponentials or logarithms per element
    (XLA's float64 transcendentals dominate the cost of a gradient otherwise). Exact
    also where ``v`` is huge (no information, ``w`` = 0).
    """
    inv_total = 1.0 / (tau**2 + variance)
    return variance * inv_total, tau * pt.sqrt(inv_total), inv_total


def conditional_whitening(loc, tau, estimate, variance, factor):
    """The map ``eps -> theta`` of :func:`whitened_normal` and its log Jacobian.

    Returns
    -------
    unwhiten : callable
        ``eps (..., d) -> theta (..., d)``.
    log_jac : TensorVariable, shape (...)
        ``log |d theta / d eps|`` (independent of ``eps``).
    """
    one_minus_w, root_w, inv_total = _weights(tau, variance)
    centre = estimate + one_minus_w * (loc - estimate)
    sd = pt.sqrt(variance)
    scale = root_w * sd  # tau * sqrt(1 - w)

    def unwhiten(eps):
        # R_w eps with R_w = I + (R - I) * sqrt(w w^T), without forming R_w
        mixed = one_minus_w * eps + root_w * _matvec(factor, root_w * eps)
        return centre + scale * mixed

    # log s_j + log diag(R_w)_j with diag(R_w) = 1 + (R_jj - 1) w_j, i.e.
    # log tau + log sd(v) + log(v + R_jj tau^2) - 3/2 log(tau^2 + v)
    diag = pt.diagonal(factor, axis1=-2, axis2=-1)
    ratio = (variance + diag * tau**2) * inv_total * pt.sqrt(inv_total)
    log_jac = pt.log(tau) + pt.log(sd) + pt.log(ratio)
    return unwhiten, pt.sum(log_jac, axis=-1)


def _mixed_factor(root_w, factor):
    """``R_w`` itself (for drawing from the prior only)."""
    eye = pt.eye(factor.shape[-1])
    return eye + (factor - eye) * (root_w[..., :, None] * root_w[..., None, :])


def _normal_eps_logp(value, loc, tau, estimate, variance, factor):
    _, log_jac = conditional_whitening(loc, tau, estimate, variance, factor)
    one_minus_w, root_w, inv_total = _weights(tau, variance)
    mixed = one_minus_w * value + root_w * _matvec(factor, root_w * value)
    # (theta - loc) / tau, written out: through theta, a small tau loses eps to
    # rounding (theta = centre to machine precision) and the density goes flat in eps
    z = tau * inv_total * (estimate - loc) + pt.sqrt(variance * inv_total) * mixed
    elementwise = -0.5 * z**2 - pt.log(tau) - _HALF_LOG_2PI
    return pt.sum(elementwise, axis=-1) + log_jac


def _normal_eps_dist(loc, tau, estimate, variance, factor, size):
    shape = estimate.shape if rv_size_is_none(size) else (*size, estimate.shape[-1])
    theta = pm.Normal.dist(pt.broadcast_to(loc, shape), tau)
    one_minus_w, root_w, _ = _weights(tau, variance)
    centre = estimate + one_minus_w * (loc - estimate)
    scale = root_w * pt.sqrt(variance)
    return _solve_lower(_mixed_factor(root_w, factor), (theta - centre) / scale)


def whitened_normal(name, loc, tau, estimate, variance, factor, dims):
    """``theta ~ N(loc, tau)`` per coordinate, sampled as ``{name}_eps``.

    Parameters
    ----------
    name : str
    loc, tau : TensorVariable, shape (d,)
        Location and scale of every group's coordinates.
    estimate, variance : TensorVariable, shape (G, d)
        Each group's own estimate of ``theta`` and its sampling variance (very large,
        e.g. 1e100, where the group has no information).
    factor : TensorVariable, shape (G, d, d)
        Lower-triangular Cholesky factor of the correlation matrix of the estimates
        (identity where unknown).
    dims : tuple of str

    Returns
    -------
    TensorVariable
        ``theta``, shape (G, d).

    Examples
    --------
    >>> est, var = np.zeros((2, 2)), np.full((2, 2), 0.01)
    >>> factor = np.tile(np.linalg.cholesky([[1.0, 0.9], [0.9, 1.0]]), (2, 1, 1))
    >>> with pm.Model() as m:
    ...     theta = whitened_normal("x", pt.zeros(2), pt.ones(2), est, var, factor, None)
    >>> sorted(m.named_vars)
    ['x_eps']
    """
    loc, tau = pt.as_tensor_variable(loc), pt.as_tensor_variable(tau)
    params = (loc, tau, estimate, variance, factor)
    eps = pm.CustomDist(
        f"{name}_eps", *params, dist=_normal_eps_dist, logp=_normal_eps_logp,
        support_point=_zeros_like_param(2),
        signature="(d),(d),(d),(d),(d,d)->(d)", dims=dims,
    )
    return conditional_whitening(*params)[0](eps)


_LOG_HALFNORMAL_NORM = float(0.5 * np.log(2.0 / np.pi))


def _halfnormal_u_logp(value, sigma, center, scale):
    log_tau = center + scale * value
    z = pt.exp(log_tau) / sigma
    # HalfNormal density of tau, times d tau / d log tau = tau, times d log tau / du
    return _LOG_HALFNORMAL_NORM - pt.log(sigma) - 0.5 * z**2 + log_tau + pt.log(scale)


def _halfnormal_u_dist(sigma, center, scale, size):
    shape = pt.broadcast_arrays(sigma, center, scale)[0].shape if rv_size_is_none(size) else size
    tau = pm.HalfNormal.dist(sigma, size=shape)
    return (pt.log(tau) - center) / scale


def zeros_support_point(rv, size, *params):
    """Support point 0 of an elementwise ``pm.CustomDist`` in centred coordinates.

    Where the coordinates are centred on the posterior (``u`` here, a population
    location's ``xi`` in the model), 0 is where the data put the parameter: every
    sampler starts there. The shape comes from ``size`` or the broadcast parameters,
    never from ``rv``, so the expression carries no random generator.
    """
    if rv_size_is_none(size):
        return pt.zeros_like(sum(pt.as_tensor_variable(p) for p in params))
    return pt.zeros(size)


def scaled_halfnormal(name, sigma, center, scale, dims=None):
    """``tau ~ HalfNormal(sigma)``, sampled as ``{name}_u`` with ``log tau = center + scale * u``.

    ``center`` and ``scale`` locate the posterior of ``log tau`` (for example from
    :func:`groupcov.model.centering.log_tau_coordinates`); they change the coordinates,
    not the prior. ``tau`` is registered as the deterministic ``name``.

    Parameters
    ----------
    name : str
    sigma, center, scale : tensor_like, shape (d,) or ()
    dims : str or tuple of str, optional

    Returns
    -------
    TensorVariable
        ``tau``.

    Examples
    --------
    >>> with pm.Model() as m:
    ...     tau = scaled_halfnormal("tau", 1.0, np.log(0.5), 0.1)
    >>> float(tau.eval({m["tau_u"]: 0.0}))
    0.5
    """
    sigma, center, scale = map(pt.as_tensor_variable, (sigma, center, scale))
    u = pm.CustomDist(
        f"{name}_u", sigma, center, scale, dist=_halfnormal_u_dist, logp=_halfnormal_u_logp,
        support_point=zeros_support_point, dims=dims,
    )
    return pm.Deterministic(name, pt.exp(center + scale * u), dims=dims)


def atanh_cpc_logp(w, b):
    """Log density of ``atanh(x)`` for ``x ~ Beta(b, b)`` on (-1, 1), elementwise.

    ``x = tanh(w)`` has density ``(1 - x^2)^(b - 1) / (2^(2b - 1) B(b, b))`` and
    ``dx/dw = 1 - x^2``.
    """
    log_beta = 2.0 * pt.gammaln(b) - pt.gammaln(2.0 * b)
    return 2.0 * b * _half_log1m_tanh2(w) - (2.0 * b - 1.0) * _LOG2 - log_beta


def _lkj_eps_logp(value, center, factor, eta, log_sd_sigma, *, p):
    theta = center + _matvec(factor, value)
    b = cpc_beta_parameter(eta, p)
    log_sd = theta[..., :p] / log_sd_sigma
    logp_sd = pt.sum(-0.5 * log_sd**2 - pt.log(log_sd_sigma) - _HALF_LOG_2PI, axis=-1)
    return logp_sd + pt.sum(atanh_cpc_logp(theta[..., p:], b), axis=-1) + pt.sum(
        _log_diag(factor), axis=-1
    )


def _lkj_eps_dist(center, factor, eta, log_sd_sigma, size, *, p):
    shape = center.shape[:-1] if rv_size_is_none(size) else size
    b = cpc_beta_parameter(eta, p)
    log_sd = pm.Normal.dist(0.0, log_sd_sigma, size=(*shape, p))
    k = p * (p - 1) // 2
    u = pm.Beta.dist(b, b, size=(*shape, k))
    theta = pt.concatenate([log_sd, pt.arctanh(2.0 * u - 1.0)], axis=-1)
    return _solve_lower(factor, theta - center)


def whitened_lkj_cov(name, p, eta, log_sd_sigma, center, factor, dims):
    """Covariance Cholesky factors under LKJ(eta) x LogNormal(0, log_sd_sigma) sds.

    The same prior as :class:`~groupcov.distributions.lkj.LKJCholeskyCov` with
    ``sd_dist=pm.LogNormal.dist(0, log_sd_sigma)``, sampled as ``{name}_eps`` with
    ``(log sd, atanh CPC) = center + factor @ eps``.

    Parameters
    ----------
    name : str
    p : int
        Matrix dimension.
    eta, log_sd_sigma : float
    center : TensorVariable, shape (..., p + K)
    factor : TensorVariable, shape (..., p + K, p + K)
        Lower triangular with a positive diagonal.
    dims : tuple of str
        Dims of ``eps`` (the batch dims and one for the ``p + K`` coordinates).

    Returns
    -------
    TensorVariable
        Cholesky factors, shape (..., p, p).

    Examples
    --------
    >>> d = 3
    >>> with pm.Model() as m:
    ...     chol = whitened_lkj_cov("c", 2, 2.0, 1.0, np.zeros(d), np.eye(d), None)
    >>> chol.shape.eval().tolist()
    [2, 2]
    """
    eps = pm.CustomDist(
        f"{name}_eps", center, factor, float(eta), float(log_sd_sigma),
        dist=lambda *a: _lkj_eps_dist(*a, p=p), logp=lambda v, *a: _lkj_eps_logp(v, *a, p=p),
        support_point=_zeros_like_param(0),
        signature="(d),(d,d),(),()->(d)", dims=dims,
    )
    theta = pt.as_tensor_variable(center) + _matvec(pt.as_tensor_variable(factor), eps)
    # static trailing shapes: JAX needs them concrete
    theta = pt.specify_shape(theta, (*[None] * (theta.ndim - 1), p + p * (p - 1) // 2))
    corr = corr_cholesky_from_unconstrained(theta[..., p:], p)
    chol = pt.exp(theta[..., :p])[..., :, None] * corr
    return pt.specify_shape(chol, (*[None] * (chol.ndim - 2), p, p))
