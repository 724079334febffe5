"""Exact multivariate normal likelihood from sufficient statistics.

For ``n`` rows with mean ``xbar`` and centered scatter ``S = R^T R`` (any square
root ``R``, also when ``S`` is singular because ``n <= p``), and ``Sigma = L L^T``:

.. math::

    \\log p = -\\tfrac{n}{2}(p \\log 2\\pi + 2 \\sum \\log L_{ii})
              - \\tfrac12 \\lVert L^{-1} R^T \\rVert_F^2
              - \\tfrac{n}{2} \\lVert L^{-1} (\\bar x - \\mu) \\rVert^2

which equals the sum of the row-wise normal log densities exactly. The observed
value of :class:`MvNormalSuffStats` packs one group's statistics into a
``(p + 1, p)`` matrix: row 0 is the mean, rows ``1..p`` are ``R``.
"""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt
from pymc.distributions.distribution import Continuous
from pytensor.tensor import TensorVariable
from pytensor.tensor.random.op import RandomVariable

from groupcov.stats import pack_suffstats, scatter_root

__all__ = [
    "MvNormalSuffStats",
    "masked_suffstat_logp",
    "pack_suffstats",
    "scatter_root",
    "solve_lower",
    "suffstat_logp",
]

_LOG_2PI = float(np.log(2.0 * np.pi))

UNROLL_MAX_P = 12


def solve_lower(chol, rhs) -> TensorVariable:
    """``chol^{-1} rhs`` for lower-triangular ``chol`` ``(..., p, p)``, ``rhs`` ``(..., p, k)``.

    For ``p <= UNROLL_MAX_P`` the forward substitution is written out row by row with
    elementwise operations only: every back-end (C without BLAS, Numba, JAX) runs it
    fast, and XLA compiles it much faster than its generic triangular solve. Larger
    matrices use ``pt.linalg.solve_triangular``.
    """
    p = chol.type.shape[-1]
    if p is None or p > UNROLL_MAX_P:
        return pt.linalg.solve_triangular(chol, rhs, lower=True, b_ndim=2)
    rows = []
    for i in range(p):
        acc = rhs[..., i, :]
        for k in range(i):
            acc = acc - chol[..., i, k, None] * rows[k]
        rows.append(acc / chol[..., i, i, None])
    return pt.stack(rows, axis=-2)


def suffstat_logp(n, mean, root, mu, chol) -> TensorVariable:
    """Log-likelihood of grouped normal data from its sufficient statistics.

    Parameters
    ----------
    n : tensor_like, shape ``(...)``
        Rows per group.
    mean : tensor_like, shape ``(..., p)``
        Row mean per group.
    root : tensor_like, shape ``(..., p, p)``
        ``R`` with ``R^T R`` the centered scatter matrix.
    mu : tensor_like, shape ``(..., p)``
        Mean parameter.
    chol : tensor_like, shape ``(..., p, p)``
        Lower Cholesky factor of the covariance.

    Returns
    -------
    TensorVariable, shape ``(...)``
    """
    n = pt.as_tensor_variable(n)
    mean, root, mu, chol = map(pt.as_tensor_variable, (mean, root, mu, chol))
    rhs = pt.concatenate([(mean - mu)[..., :, None], pt.swapaxes(root, -1, -2)], axis=-1)
    solved = solve_lower(chol, rhs)
    maha = pt.sum(solved[..., :, 0] ** 2, axis=-1)
    trace = pt.sum(solved[..., :, 1:] ** 2, axis=(-2, -1))
    logdet = 2.0 * pt.sum(pt.log(pt.diagonal(chol, axis1=-2, axis2=-1)), axis=-1)
    p = mean.shape[-1].astype("float64")
    return -0.5 * n * (p * _LOG_2PI + logdet) - 0.5 * trace - 0.5 * n * maha


def masked_suffstat_logp(n, mean, root, mu, chol, observed) -> TensorVariable:
    """Marginal log-likelihood of rows that observe only some features.

    Each batch entry (a cell of rows sharing a pattern of observed features) contributes
    the exact normal log-likelihood of its observed sub-vectors. With ``M`` the 0/1
    mask, the covariance is replaced by ``M Sigma M + (I - M)``: its Cholesky factor is
    the factor of the observed block with unit rows and columns elsewhere, so the
    observed part is computed exactly and the unobserved part contributes nothing.

    Parameters
    ----------
    n : tensor_like, shape ``(...)``
        Rows per cell.
    mean : tensor_like, shape ``(..., p)``
        Mean of the observed features (any value where unobserved).
    root : tensor_like, shape ``(..., p, p)``
        ``R`` with ``R^T R`` the scatter of the observed features (zero elsewhere).
    mu : tensor_like, shape ``(..., p)``
        Mean parameter of the full vector.
    chol : tensor_like, shape ``(..., p, p)``
        Cholesky factor of the full covariance.
    observed : tensor_like, shape ``(..., p)``
        1 where the cell observes a feature, 0 where not.

    Returns
    -------
    TensorVariable, shape ``(...)``
    """
    mask = pt.as_tensor_variable(observed).astype("float64")
    chol = pt.as_tensor_variable(chol)
    cov = chol @ pt.swapaxes(chol, -1, -2)
    outer = mask[..., :, None] * mask[..., None, :]
    eye = pt.eye(mask.shape[-1], dtype="float64")
    masked_cov = cov * outer + eye * (1.0 - mask)[..., None, :]
    masked_chol = pt.linalg.cholesky(masked_cov, check_finite=False, on_error="nan")
    full = suffstat_logp(
        n, mean * mask, root * mask[..., None, :], mu * mask, masked_chol
    )
    missing = pt.sum(1.0 - mask, axis=-1)
    return full + 0.5 * pt.as_tensor_variable(n) * missing * _LOG_2PI


class _MvNormalSuffStatsRV(RandomVariable):
    name = "mvnormal_suffstats"
    signature = "(),(p),(p,p)->(q,p)"
    dtype = "floatX"
    _print_name = ("MvNormalSuffStats", "\\operatorname{MvNormalSuffStats}")

    def _supp_shape_from_params(self, dist_params, param_shapes=None):
        mu_shape = param_shapes[1] if param_shapes is not None else dist_params[1].shape
        p = mu_shape[-1]
        return (p + 1, p)

    @classmethod
    def rng_fn(cls, rng, n, mu, chol, size):
        n, mu, chol = np.asarray(n), np.asarray(mu), np.asarray(chol)
        if size is None:
            size = np.broadcast_shapes(n.shape, mu.shape[:-1], chol.shape[:-2])
        size = tuple(size)
        p = mu.shape[-1]
        n = np.broadcast_to(n, size).reshape(-1)
        mu = np.broadcast_to(mu, (*size, p)).reshape(-1, p)
        chol = np.broadcast_to(chol, (*size, p, p)).reshape(-1, p, p)
        out = np.empty((n.size, p + 1, p))
        for i in range(n.size):
            rows = mu[i] + rng.standard_normal((int(n[i]), p)) @ chol[i].T
            centered = rows - rows.mean(axis=0)
            out[i] = pack_suffstats(rows.mean(axis=0), centered.T @ centered)
        return out.reshape((*size, p + 1, p))


class MvNormalSuffStats(Continuous):
    """Multivariate normal groups observed through their sufficient statistics.

    The value of one group is a ``(p + 1, p)`` matrix from :func:`pack_suffstats`:
    its mean in row 0 and a square root of its centered scatter matrix below. The
    log density is the exact log-likelihood of the group's rows (see module docstring),
    so pointwise log-likelihoods are per group (leave-one-group-out).

    Parameters
    ----------
    n : tensor_like
        Rows per group, shape ``(...)``.
    mu : tensor_like
        Means, shape ``(..., p)``.
    chol : tensor_like
        Lower Cholesky factors of the covariances, shape ``(..., p, p)``.

    Examples
    --------
    >>> import numpy as np, pymc as pm
    >>> x = np.random.default_rng(0).normal(size=(5, 2))
    >>> c = x - x.mean(0)
    >>> value = pack_suffstats(x.mean(0), c.T @ c)
    >>> with pm.Model():
    ...     obs = MvNormalSuffStats("obs", n=5, mu=np.zeros(2), chol=np.eye(2), observed=value)
    """

    rv_op = _MvNormalSuffStatsRV()

    @classmethod
    def dist(cls, n, mu, chol, **kwargs):
        return super().dist([n, mu, chol], **kwargs)

    def support_point(rv, size, n, mu, chol):
        p = mu.shape[-1]
        zeros = pt.zeros((*[rv.shape[i] for i in range(rv.ndim - 2)], p, p))
        mean = pt.broadcast_to(mu, (*[rv.shape[i] for i in range(rv.ndim - 2)], p))
        return pt.concatenate([mean[..., None, :], zeros], axis=-2)

    def logp(value, n, mu, chol):
        return suffstat_logp(n, value[..., 0, :], value[..., 1:, :], mu, chol)
