"""Batched LKJ Cholesky covariance prior against independent oracles."""

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
import pytest
from pymc.distributions.multivariate import _lkj_normalizing_constant
from scipy import integrate, stats

import groupcov
from groupcov.datasets import _cpc_to_chol
from groupcov.distributions.lkj import (
    CPCCholeskyTransform,
    _LKJCholeskyCov,
    corr_cholesky_from_unconstrained,
    cpc_beta_parameter,
    lkj_corr_cholesky_logp,
    n_cpc,
)


def random_chol(rng, n, batch=()):
    chol = np.tril(rng.normal(size=(*batch, n, n)))
    idx = np.arange(n)
    chol[..., idx, idx] = np.abs(chol[..., idx, idx]) + 0.2
    return chol


def pymc_logp(chol, n, eta, sd_dist):
    dist = pm.LKJCholeskyCov.dist(n=n, eta=eta, sd_dist=sd_dist, compute_corr=False)
    return float(pm.logp(dist, chol[np.tril_indices(n)]).eval())


def ours_logp(chol, n, eta, sd_dist):
    return pm.logp(_LKJCholeskyCov.dist(n=n, eta=eta, sd_dist=sd_dist), chol).eval()


@pytest.mark.parametrize("n", [2, 3, 5, 8])
@pytest.mark.parametrize("eta", [0.7, 1.0, 2.0, 5.0])
def test_matches_pymc_up_to_its_normalizing_constant(n, eta):
    # PyMC 5.28 adds its LKJ log-normalizer with the wrong sign and in float32
    # (its LKJCorr density at n=2, eta=1 is 2 on (-1, 1)); density ratios are exact.
    rng = np.random.default_rng(n * 10 + int(eta * 10))
    points = [random_chol(rng, n) for _ in range(4)]
    ours = [float(ours_logp(c, n, eta, pm.Exponential.dist(1.3, shape=n))) for c in points]
    ref = [pymc_logp(c, n, eta, pm.Exponential.dist(1.3, shape=n)) for c in points]
    for i in range(1, len(points)):
        assert abs((ours[i] - ours[0]) - (ref[i] - ref[0])) < 1e-8
    pymc_norm = float(_lkj_normalizing_constant(eta, n).eval())
    # float32 rounding of PyMC's constant: a few ulp of float32 at its magnitude
    assert ours[0] == pytest.approx(ref[0] - 2 * pymc_norm, abs=1e-6 * (1 + 2 * abs(pymc_norm)))


def test_pymc_normalizer_sign_is_what_we_correct_for():
    # the uniform LKJ on 2x2 correlation matrices has density 1/2 on r in (-1, 1)
    assert pm.logp(pm.LKJCorr.dist(n=2, eta=1.0), np.array([0.3])).eval() == pytest.approx(
        np.log(2.0), abs=1e-6
    )
    ours = lkj_corr_cholesky_logp(
        pt.as_tensor(np.array([[1.0, 0.0], [0.3, np.sqrt(1 - 0.09)]])), 1.0, 2
    ).eval()
    assert ours == pytest.approx(-np.log(2.0), abs=1e-12)


@pytest.mark.parametrize("eta", [0.8, 1.0, 2.5])
def test_corr_cholesky_density_integrates_to_one_n2(eta):
    def density(r):
        c = np.array([[1.0, 0.0], [r, np.sqrt(1 - r * r)]])
        return np.exp(lkj_corr_cholesky_logp(pt.as_tensor(c), eta, 2).eval())

    total, _err = integrate.quad(density, -1, 1)
    assert total == pytest.approx(1.0, abs=1e-7)


def test_corr_cholesky_density_integrates_to_one_n3():
    # Monte Carlo over the free entries (c10, c20, c21) of a 3x3 correlation factor
    eta, size = 1.7, 400_000
    rng = np.random.default_rng(0)
    c10, c20 = rng.uniform(-1, 1, size), rng.uniform(-1, 1, size)
    half = np.sqrt(1 - c20**2)
    c21 = rng.uniform(-1, 1, size) * half
    c = np.zeros((size, 3, 3))
    c[:, 0, 0] = 1.0
    c[:, 1, 0], c[:, 1, 1] = c10, np.sqrt(1 - c10**2)
    c[:, 2, 0], c[:, 2, 1] = c20, c21
    c[:, 2, 2] = np.sqrt(np.clip(1 - c20**2 - c21**2, 1e-300, None))
    density = np.exp(lkj_corr_cholesky_logp(pt.as_tensor(c), eta, 3).eval())
    weights = density * 8.0 * half  # volume of the sampling box
    estimate, se = weights.mean(), weights.std() / np.sqrt(size)
    assert abs(estimate - 1.0) < 5 * se
    assert se < 0.01


def test_batched_logp_is_sum_of_per_group_logps():
    rng = np.random.default_rng(3)
    g, n, eta = 4, 3, 2.0
    chols = random_chol(rng, n, (g,))
    sds = np.array([0.5, 1.0, 2.0])
    batched = ours_logp(chols, n, eta, pm.HalfNormal.dist(sds, shape=(g, n)))
    assert batched.shape == (g,)
    single = [float(ours_logp(c, n, eta, pm.HalfNormal.dist(sds, shape=n))) for c in chols]
    np.testing.assert_allclose(batched, single, rtol=0, atol=1e-10)
    # two leading dimensions
    chols2 = random_chol(rng, n, (2, 3))
    lp2 = ours_logp(chols2, n, eta, pm.Exponential.dist(1.0, shape=(2, 3, n)))
    assert lp2.shape == (2, 3)
    assert lp2[1, 2] == pytest.approx(float(ours_logp(chols2[1, 2], n, eta,
                                                       pm.Exponential.dist(1.0, shape=n))))


def test_invalid_values_have_zero_density():
    chol = np.array([[1.0, 0.0], [0.3, -0.5]])
    assert ours_logp(chol, 2, 2.0, pm.Exponential.dist(1.0, shape=2)) == -np.inf
    upper = np.array([[1.0, 0.1], [0.3, 0.5]])
    assert ours_logp(upper, 2, 2.0, pm.Exponential.dist(1.0, shape=2)) == -np.inf


@pytest.mark.parametrize("n", [1, 2, 4, 6])
def test_transform_log_jacobian_matches_autodiff(n):
    tr = CPCCholeskyTransform(n)
    y = pt.dvector("y")
    chol = tr.backward(y)
    rows, cols = np.tril_indices(n)
    free = chol[rows, cols]
    jac = pytensor.gradient.jacobian(free, y)
    fn = pytensor.function([y], [pt.log(pt.abs(pt.linalg.det(jac))), tr.log_jac_det(y)])
    rng = np.random.default_rng(n)
    for _ in range(3):
        point = rng.normal(size=n + n_cpc(n))
        numeric, analytic = fn(point)
        assert analytic == pytest.approx(numeric, abs=1e-9)


@pytest.mark.parametrize("n", [2, 5])
def test_transform_round_trip(n):
    tr = CPCCholeskyTransform(n)
    rng = np.random.default_rng(0)
    y = rng.normal(size=(3, n + n_cpc(n)))
    back = tr.forward(tr.backward(pt.as_tensor(y))).eval()
    np.testing.assert_allclose(back, y, atol=1e-10)


def test_positive_definite_at_extreme_unconstrained_points():
    n = 20
    rng = np.random.default_rng(1)
    w = rng.choice([-30.0, 30.0], size=(5, n_cpc(n))) * rng.uniform(0.5, 1, size=(5, n_cpc(n)))
    corr_chol = corr_cholesky_from_unconstrained(pt.as_tensor(w), n).eval()
    assert np.all(np.isfinite(corr_chol))
    assert np.all(np.diagonal(corr_chol, axis1=-2, axis2=-1) > 0)
    np.testing.assert_allclose((corr_chol**2).sum(-1), 1.0, atol=1e-12)
    # moderate values (large ones make C C^T too ill-conditioned to refactor in
    # floating point, although C itself is a valid factor): LAPACK returns C again
    w = rng.normal(scale=0.5, size=(5, n_cpc(n)))
    corr_chol = corr_cholesky_from_unconstrained(pt.as_tensor(w), n).eval()
    corr = corr_chol @ np.swapaxes(corr_chol, -1, -2)
    np.testing.assert_allclose(np.linalg.cholesky(corr), corr_chol, atol=1e-8)


def test_cpc_construction_matches_numpy_reference():
    p = 5
    rng = np.random.default_rng(2)
    cpc = rng.uniform(-0.9, 0.9, size=n_cpc(p))
    ours = corr_cholesky_from_unconstrained(pt.as_tensor(np.arctanh(cpc)), p).eval()
    np.testing.assert_allclose(ours, _cpc_to_chol(cpc, p), atol=1e-12)


@pytest.mark.parametrize(("n", "eta"), [(2, 1.0), (3, 2.0), (5, 0.8)])
def test_prior_draws_follow_lkj_marginal(n, eta):
    sd_dist = pm.Exponential.dist(1.0, shape=(2000, n))
    chol, corr, _stds = groupcov.LKJCholeskyCov.dist(
        n=n, eta=eta, sd_dist=sd_dist, compute_corr=True
    )
    draws_corr, draws_chol = pm.draw([corr, chol], random_seed=11)
    a = eta - 1 + n / 2
    for i, j in [(1, 0), (n - 1, 0), (n - 1, n - 2)]:
        r = draws_corr[:, i, j]
        assert stats.kstest((r + 1) / 2, stats.beta(a, a).cdf).pvalue > 1e-3
    assert np.allclose(np.triu(draws_chol, 1), 0.0)
    assert np.all(np.diagonal(draws_chol, axis1=-2, axis2=-1) > 0)


def test_beta_parameters_of_cpcs():
    np.testing.assert_allclose(cpc_beta_parameter(2.0, 4), [3.0, 3.0, 3.0, 2.5, 2.5, 2.0])


def test_model_registration_dims_and_prior_predictive():
    coords = {"group": ["a", "b", "c"], "feature": ["x", "y", "z"], "feature_": ["x", "y", "z"]}
    with pm.Model(coords=coords) as model:
        _chol, _corr, _stds = groupcov.LKJCholeskyCov(
            "chol", n=3, eta=2.0, sd_dist=pm.Exponential.dist(1.0, shape=(3, 3)),
            dims=("group", "feature", "feature_"),
        )
        prior = pm.sample_prior_predictive(draws=50, random_seed=1)
    assert prior.prior["chol"].dims[2:] == ("group", "feature", "feature_")
    assert prior.prior["chol_stds"].dims[2:] == ("group", "feature")
    np.testing.assert_allclose(
        prior.prior["chol_corr"].values[..., [0, 1, 2], [0, 1, 2]], 1.0, atol=1e-12
    )
    # free variable on the unconstrained scale has n + n(n-1)/2 entries per group
    (value,) = model.value_vars
    assert value.name == "chol_cpc-cholesky__"
    point = model.initial_point()
    assert point["chol_cpc-cholesky__"].shape == (3, 6)
    assert np.isfinite(model.compile_logp()(point))
