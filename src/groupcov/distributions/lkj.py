"""Batched LKJ prior on Cholesky factors of covariance matrices.

The LKJ(eta) density on correlation matrices factorizes over canonical partial
correlations (CPCs): the CPC of pair ``(i, j)``, ``j < i``, is independent
``Beta(b_j, b_j)`` on ``(-1, 1)`` with ``b_j = eta + (n - 2 - j) / 2``. Any CPC
vector in ``(-1, 1)^K`` maps to the Cholesky factor of a valid correlation matrix,
so the transform used here (log standard deviations and ``atanh`` of the CPCs) keeps
every covariance matrix positive definite wherever a sampler goes.

CPCs are stored column by column: ``(1, 0), (2, 0), ..., (n-1, 0), (2, 1), ...``.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
from pymc.distributions.distribution import (
    Distribution,
    SymbolicRandomVariable,
    _support_point,
    support_point,
)
from pymc.distributions.shape_utils import (
    _change_dist_size,
    change_dist_size,
    rv_size_is_none,
)
from pymc.distributions.transforms import _default_transform
from pymc.logprob.abstract import _logprob
from pymc.logprob.transforms import Transform
from pymc.util import check_dist_not_registered
from pytensor.tensor import TensorVariable
from pytensor.tensor.random.utils import normalize_size_param

__all__ = [
    "LKJCholeskyCov",
    "corr_and_stds",
    "corr_cholesky_from_unconstrained",
    "cpc_beta_parameter",
    "lkj_corr_cholesky_logp",
    "n_cpc",
]

_LOG2 = float(np.log(2.0))


def n_cpc(n: int) -> int:
    """Number of canonical partial correlations of an ``n x n`` correlation matrix."""
    return n * (n - 1) // 2


@lru_cache(maxsize=64)
def _layout(n: int) -> tuple[np.ndarray, np.ndarray]:
    """``rows, cols`` of the CPCs of an ``n x n`` matrix (column-major strict lower
    triangle)."""
    upper_r, upper_c = np.triu_indices(n, 1)
    return upper_c, upper_r


def cpc_beta_parameter(eta, n: int):
    """Beta parameter ``b_j = eta + (n - 2 - j) / 2`` of each CPC, shape ``(..., K)``.

    Parameters
    ----------
    eta : float or TensorVariable
        LKJ shape parameter (may carry leading batch dimensions).
    n : int
        Matrix dimension.

    Examples
    --------
    >>> cpc_beta_parameter(2.0, 3).tolist()
    [2.5, 2.5, 2.0]
    """
    _, cols = _layout(n)
    offset = (n - 2 - cols) / 2.0
    if isinstance(eta, int | float | np.ndarray):
        return np.asarray(eta, dtype=float)[..., None] + offset
    return pt.as_tensor_variable(eta)[..., None] + offset


@lru_cache(maxsize=64)
def _placement(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Constant linear maps from CPC-shaped vectors ``(K,)`` to flat ``n x n`` matrices.

    Returns ``place`` (K, n*n), which puts CPC k at its position below the diagonal;
    ``eye`` (n*n,), the identity matrix, flat; and ``exclusive`` (K, n*n), which maps
    ``h`` to the exclusive cumulative sum along each row of the matrix ``h`` fills
    (entry (i, j) holds ``sum_{k < j} h_ik``).
    """
    rows, cols = _layout(n)
    k = n_cpc(n)
    place = np.zeros((k, n * n))
    place[np.arange(k), rows * n + cols] = 1.0
    exclusive = np.zeros((k, n * n))
    for idx, (r, c) in enumerate(zip(rows, cols, strict=True)):
        exclusive[idx, r * n + np.arange(c + 1, n)] = 1.0
    return place, np.eye(n).ravel(), exclusive


def _corr_cholesky(z: TensorVariable, half_log1m_z2: TensorVariable, n: int) -> TensorVariable:
    """Cholesky factor of a correlation matrix from CPCs ``z`` and ``log(1 - z**2) / 2``.

    Entry (i, j) is ``z_ij * prod_{k<j} sqrt(1 - z_ik^2)`` (with ``z_ii = 1``). Placing the
    CPCs and summing the logs are constant linear maps, written as two matrix products:
    cheaper than gathers and a cumulative sum, and so are their gradients.
    """
    place, eye, exclusive = (pt.constant(a) for a in _placement(n))
    z_flat = pt.dot(z, place) + eye
    log_remaining = pt.dot(half_log1m_z2, exclusive)
    out = z_flat * pt.exp(log_remaining)
    batch = [out.shape[i] for i in range(out.ndim - 1)]
    out = out.reshape((*batch, n, n), ndim=out.ndim + 1)
    return pt.specify_shape(out, (*[None] * (out.ndim - 2), n, n))


def _half_log1m_tanh2(w: TensorVariable) -> TensorVariable:
    """``log(1 - tanh(w)**2) / 2``, stable for large ``|w|``."""
    a = pt.abs(w)
    return _LOG2 - a - pt.softplus(-2.0 * a)


def corr_cholesky_from_unconstrained(w: TensorVariable, n: int) -> TensorVariable:
    """Correlation Cholesky factor ``(..., n, n)`` from ``w = atanh(cpc)``, shape ``(..., K)``.

    Every real ``w`` gives a lower-triangular factor with unit-norm rows and a
    strictly positive diagonal, i.e. a positive definite correlation matrix.

    Examples
    --------
    >>> import numpy as np
    >>> c = corr_cholesky_from_unconstrained(pt.as_tensor(np.array([0.3, -1.0, 2.0])), 3).eval()
    >>> np.allclose((c**2).sum(-1), 1.0)
    True
    """
    w = pt.as_tensor_variable(w)
    return _corr_cholesky(pt.tanh(w), _half_log1m_tanh2(w), n)


def _corr_cholesky_from_cpc(z: TensorVariable, n: int) -> TensorVariable:
    return _corr_cholesky(z, 0.5 * pt.log1p(-(z**2)), n)


def _cpc_from_corr_cholesky(c: TensorVariable, n: int) -> TensorVariable:
    """Inverse of :func:`_corr_cholesky_from_cpc`: CPCs ``(..., K)`` of a correlation factor."""
    rows, cols = _layout(n)
    c2 = c**2
    remaining = 1.0 - (pt.cumsum(c2, axis=-1) - c2)
    z_mat = c / pt.sqrt(remaining)
    flat = z_mat.reshape((*[c.shape[i] for i in range(c.ndim - 2)], n * n), ndim=c.ndim - 1)
    return flat[..., rows * n + cols]


def _lkj_log_normalizer(eta, n: int):
    """Log normalizing constant of LKJ(eta) on the correlation Cholesky factor."""
    b = cpc_beta_parameter(eta, n)
    if isinstance(b, np.ndarray):
        b = pt.as_tensor_variable(b)
    log_beta_fn = 2.0 * pt.gammaln(b) - pt.gammaln(2.0 * b)
    return pt.sum(-log_beta_fn - (2.0 * b - 1.0) * _LOG2, axis=-1)


def lkj_corr_cholesky_logp(corr_chol: TensorVariable, eta, n: int) -> TensorVariable:
    """Log density of LKJ(eta) on a correlation Cholesky factor, shape ``(...)``.

    The density is with respect to Lebesgue measure on the strictly lower triangle
    of the factor (the same convention as ``pm.LKJCholeskyCov``).
    """
    log_diag = pt.log(pt.diagonal(corr_chol, axis1=-2, axis2=-1))
    exponent = (n - np.arange(n) - 3.0) + 2.0 * pt.as_tensor_variable(eta)[..., None]
    return _lkj_log_normalizer(eta, n) + pt.sum(exponent * log_diag, axis=-1)


class CPCCholeskyTransform(Transform):
    """Covariance Cholesky factor <-> (log standard deviations, atanh of CPCs).

    The unconstrained vector has ``n + n (n - 1) / 2`` entries per matrix: first the
    log standard deviations, then ``atanh`` of the CPCs in column-major order.
    """

    name = "cpc-cholesky"

    def __init__(self, n: int):
        self.n = int(n)

    def backward(self, value, *inputs):
        n = self.n
        log_sd = value[..., :n]
        corr = corr_cholesky_from_unconstrained(value[..., n:], n)
        return pt.exp(log_sd)[..., :, None] * corr

    def forward(self, value, *inputs):
        n = self.n
        sd = pt.sqrt(pt.sum(value**2, axis=-1))
        corr = value / sd[..., :, None]
        z = _cpc_from_corr_cholesky(corr, n)
        w = pt.arctanh(pt.clip(z, -1.0 + 1e-15, 1.0 - 1e-15))
        return pt.concatenate([pt.log(sd), w], axis=-1)

    def log_jac_det(self, value, *inputs):
        n = self.n
        rows, cols = _layout(n)
        log_sd = value[..., :n]
        h = _half_log1m_tanh2(value[..., n:])
        return pt.sum(np.arange(1.0, n + 1) * log_sd, axis=-1) + pt.sum(
            (rows - cols).astype(float) * h, axis=-1
        )


def _constant_int(x) -> int:
    try:
        return int(pt.get_underlying_scalar_constant_value(x))
    except pt.NotScalarConstantError as err:
        raise NotImplementedError("LKJCholeskyCov needs a constant integer `n`") from err


class _LKJCholeskyCovRV(SymbolicRandomVariable):
    extended_signature = "[rng],(),(),(n)->[rng],(n,n)"
    _print_name = ("BatchedLKJCholeskyCov", "\\operatorname{BatchedLKJCholeskyCov}")

    @classmethod
    def rv_op(cls, n, eta, sd_dist, *, size=None):
        n_int = _constant_int(n)
        n = pt.as_tensor(n_int, dtype="int64", ndim=0)
        eta = pt.as_tensor_variable(eta, ndim=0)
        rng = pytensor.shared(np.random.default_rng())
        size = normalize_size_param(size)

        sd_size = sd_dist.shape[:-1] if rv_size_is_none(size) else size
        if sd_dist.owner.op.ndim_supp == 0:
            sd_dist = change_dist_size(sd_dist, (*sd_size, n_int))
        else:
            sd_dist = change_dist_size(sd_dist, sd_size)

        sd = sd_dist.type(name="sd")
        k = n_cpc(n_int)
        b = cpc_beta_parameter(eta, n_int)
        beta_size = pt.concatenate([sd.shape[:-1], [k]])
        u = pt.random.beta(b, b, size=beta_size, rng=rng)
        next_rng = u.owner.outputs[0]
        corr = _corr_cholesky_from_cpc(2.0 * u - 1.0, n_int)
        chol = sd[..., :, None] * corr
        return _LKJCholeskyCovRV(
            inputs=[rng, n, eta, sd],
            outputs=[next_rng, chol],
        )(rng, n, eta, sd_dist)

    def update(self, node):
        return {node.inputs[0]: node.outputs[0]}


class _LKJCholeskyCov(Distribution):
    rv_type = _LKJCholeskyCovRV
    rv_op = _LKJCholeskyCovRV.rv_op

    @classmethod
    def dist(cls, n, eta, sd_dist, **kwargs):
        if not (
            isinstance(sd_dist, pytensor.graph.basic.Variable)
            and sd_dist.owner is not None
            and isinstance(
                sd_dist.owner.op, pt.random.op.RandomVariable | SymbolicRandomVariable
            )
            and sd_dist.owner.op.ndim_supp < 2
        ):
            raise TypeError(
                "sd_dist must be a scalar or vector distribution created with .dist(), "
                "for example pm.Exponential.dist(1.0, shape=(n_groups, n))"
            )
        check_dist_not_registered(sd_dist)
        return super().dist([n, eta, sd_dist], **kwargs)


@_change_dist_size.register(_LKJCholeskyCovRV)
def _change_size(op, dist, new_size, expand=False):
    n, eta, sd_dist = dist.owner.inputs[1:]
    if expand:
        new_size = tuple(new_size) + tuple(sd_dist.shape[:-1])
    return _LKJCholeskyCov.rv_op(n, eta, sd_dist, size=new_size)


@_support_point.register(_LKJCholeskyCovRV)
def _support(op, rv, rng, n, eta, sd_dist):
    # identity correlations with typical standard deviations; written without `rv`
    # so that the expression carries no random generator
    sd = support_point(sd_dist)
    return sd[..., :, None] * pt.eye(_constant_int(n))


@_default_transform.register(_LKJCholeskyCovRV)
def _transform(op, rv):
    return CPCCholeskyTransform(_constant_int(rv.owner.inputs[1]))


@_logprob.register(_LKJCholeskyCovRV)
def _logp(op, values, rng, n, eta, sd_dist, **kwargs):
    (value,) = values
    n_int = _constant_int(n)
    sd = pt.sqrt(pt.sum(value**2, axis=-1))
    corr = value / sd[..., :, None]
    log_corr_diag = pt.log(pt.diagonal(corr, axis1=-2, axis2=-1))
    logp_sd = pm.logp(sd_dist, sd).sum(axis=-1)
    # |d(sd, corr) / d(chol)|: row j of chol is sd_j times a point of a j-sphere
    log_jac = pt.sum(log_corr_diag - np.arange(n_int) * pt.log(sd), axis=-1)
    logp = lkj_corr_cholesky_logp(corr, eta, n_int) + logp_sd + log_jac
    diag = pt.diagonal(value, axis1=-2, axis2=-1)
    upper = pt.triu(value, k=1)
    valid = pt.all(diag > 0, axis=-1) & pt.all(pt.eq(upper, 0), axis=(-2, -1))
    return pt.switch(valid, logp, -np.inf)


def corr_and_stds(chol: TensorVariable) -> tuple[TensorVariable, TensorVariable]:
    """Correlation matrices and standard deviations of covariance Cholesky factors."""
    stds = pt.sqrt(pt.sum(chol**2, axis=-1))
    unit = chol / stds[..., :, None]
    corr = pt.sum(unit[..., :, None, :] * unit[..., None, :, :], axis=-1)
    return corr, stds


class LKJCholeskyCov:
    r"""Covariance matrices with LKJ(eta) correlations, batched over leading dimensions.

    Same call and return convention as :class:`pymc.LKJCholeskyCov`, but ``sd_dist``
    may carry any number of leading batch dimensions: ``sd_dist`` of shape
    ``(..., n)`` gives Cholesky factors and correlations of shape ``(..., n, n)`` and
    standard deviations of shape ``(..., n)``. Each matrix is independent, its
    correlation matrix LKJ(eta) distributed and its standard deviations drawn from
    ``sd_dist``.

    The random variable's value is the (unpacked) lower-triangular Cholesky factor
    ``L`` of the covariance. Samplers see it through an unconstrained transform
    (log standard deviations and ``atanh`` of canonical partial correlations), so
    every point a sampler can visit is a positive definite matrix.

    Parameters
    ----------
    name : str
        Name of the variable in the model.
    n : int
        Dimension of the matrices (n >= 1).
    eta : float
        LKJ shape parameter (eta > 0); 1 is uniform over correlation matrices.
    sd_dist : TensorVariable
        Unregistered distribution (``.dist()``) of the standard deviations, shape
        ``(..., n)``; scalar distributions are resized to ``(n,)``.
    compute_corr : bool, default True
        Return ``(chol, corr, stds)``; otherwise only ``chol``.
    store_in_trace : bool, default True
        Store ``{name}_corr`` and ``{name}_stds`` as deterministics.
    dims : tuple of str, optional
        Dims of ``chol``, for example ``("group", "feature", "feature_")``; the
        standard deviations use all but the last one.

    Returns
    -------
    chol, corr, stds : TensorVariable
        When ``compute_corr=True``; otherwise ``chol`` only.

    Examples
    --------
    >>> import numpy as np, pymc as pm, groupcov
    >>> with pm.Model(coords={"group": ["a", "b", "c"], "feature": ["x", "y"],
    ...                       "feature_": ["x", "y"]}) as model:
    ...     sd_dist = pm.Exponential.dist(1.0, shape=(3, 2))
    ...     chol, corr, stds = groupcov.LKJCholeskyCov(
    ...         "chol", n=2, eta=2.0, sd_dist=sd_dist,
    ...         dims=("group", "feature", "feature_"))
    >>> chol.shape.eval().tolist()
    [3, 2, 2]
    """

    def __new__(
        cls,
        name: str,
        n: int,
        eta: float,
        sd_dist: TensorVariable,
        *,
        compute_corr: bool = True,
        store_in_trace: bool = True,
        dims=None,
        **kwargs,
    ):
        chol = _LKJCholeskyCov(name, n=n, eta=eta, sd_dist=sd_dist, dims=dims, **kwargs)
        if not compute_corr:
            return chol
        corr, stds = corr_and_stds(chol)
        if store_in_trace:
            corr = pm.Deterministic(f"{name}_corr", corr, dims=dims)
            stds = pm.Deterministic(
                f"{name}_stds", stds, dims=None if dims is None else tuple(dims)[:-1]
            )
        return chol, corr, stds

    @classmethod
    def dist(cls, n: int, eta: float, sd_dist: TensorVariable, *, compute_corr=False, **kwargs):
        """Unregistered batched LKJ Cholesky covariance; see the class docstring."""
        chol = _LKJCholeskyCov.dist(n=n, eta=eta, sd_dist=sd_dist, **kwargs)
        if not compute_corr:
            return chol
        corr, stds = corr_and_stds(chol)
        return chol, corr, stds
