"""Whitened group parameters: exact densities against independent oracles, prior draws."""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt
import pytest
from scipy import stats

from groupcov.distributions.lkj import LKJCholeskyCov
from groupcov.distributions.whitening import (
    scaled_halfnormal,
    whitened_lkj_cov,
    whitened_normal,
)
from groupcov.model.centering import (
    corr_cholesky_from_cpc,
    covariance_estimates,
    covariance_information,
    covariance_whitening,
    cpc_from_corr,
    group_estimates,
    log_tau_coordinates,
    mean_whitening,
)
from groupcov.stats import SufficientStats


def _random_factor(rng, g, d):
    """Cholesky factors of random correlation matrices (positive diagonal)."""
    a = rng.normal(size=(g, d, d + 2))
    cov = a @ np.swapaxes(a, -1, -2)
    sd = np.sqrt(np.diagonal(cov, axis1=-2, axis2=-1))
    return np.linalg.cholesky(cov / (sd[..., :, None] * sd[..., None, :]))


def _numeric_log_jac(fn, eps, step=1e-6):
    """log |det d fn / d eps| of a map R^d -> R^d by central differences."""
    d = eps.size
    jac = np.empty((d, d))
    for j in range(d):
        e = np.zeros(d)
        e[j] = step
        jac[:, j] = (fn(eps + e) - fn(eps - e)) / (2 * step)
    return np.linalg.slogdet(jac)[1]


def _unwhiten_reference(eps, loc, tau, est, var, factor):
    """The documented map, with ``R_w`` formed explicitly (NumPy)."""
    w = tau**2 / (tau**2 + var)
    s = tau * np.sqrt(1 - w)
    mixed = np.eye(len(eps)) + (factor - np.eye(len(eps))) * np.sqrt(np.outer(w, w))
    return w * est + (1 - w) * loc + s * (mixed @ eps)


def test_whitened_normal_density_is_the_normal_prior_times_the_jacobian():
    rng = np.random.default_rng(0)
    g, d = 4, 3
    loc, tau = rng.normal(size=d), np.exp(rng.normal(size=d))
    est = rng.normal(size=(g, d))
    var = np.exp(rng.normal(size=(g, d)) - 2)
    var[0] = 1e100  # a group without information: the non-centered form
    var[1, 2] = 1e-8  # a coordinate the data pin down
    factor = _random_factor(rng, g, d)
    factor[0] = np.eye(d)
    with pm.Model() as m:
        theta = whitened_normal("x", loc, tau, est, var, factor, None)
    eps = rng.normal(size=(g, d))
    got = pm.logp(m["x_eps"], eps).eval()
    theta_got = theta.eval({m["x_eps"]: eps})
    for i in range(g):
        ref = lambda e, i=i: _unwhiten_reference(e, loc, tau, est[i], var[i], factor[i])  # noqa: E731
        np.testing.assert_allclose(theta_got[i], ref(eps[i]), rtol=1e-10, atol=1e-12)
        expected = stats.norm(loc, tau).logpdf(ref(eps[i])).sum() + _numeric_log_jac(ref, eps[i])
        assert got[i] == pytest.approx(expected, rel=1e-7, abs=1e-6)


def test_whitened_normal_without_information_is_non_centered():
    loc, tau = np.array([0.5, -1.0]), np.array([2.0, 0.3])
    with pm.Model() as m:
        theta = whitened_normal(
            "x", loc, tau, np.ones((1, 2)), np.full((1, 2), 1e100), np.eye(2)[None], None
        )
    eps = np.array([[0.3, -1.2]])
    np.testing.assert_allclose(theta.eval({m["x_eps"]: eps}), loc + tau * eps, rtol=1e-12)


def test_whitened_normal_prior_draws_follow_the_normal_prior():
    rng = np.random.default_rng(1)
    loc, tau = np.array([0.5, -1.0, 2.0]), np.array([2.0, 0.3, 1.0])
    est, var = rng.normal(size=(2, 3)), np.array([[0.01, 0.02, 0.5], [1e100, 1e100, 1e100]])
    with pm.Model():
        theta = whitened_normal("x", loc, tau, est, var, _random_factor(rng, 2, 3), None)
        pm.Deterministic("theta", theta)
        draws = pm.sample_prior_predictive(draws=2000, random_seed=2).prior["theta"].values[0]
    for g in range(2):
        for j in range(3):
            assert stats.kstest(draws[:, g, j], stats.norm(loc[j], tau[j]).cdf).pvalue > 1e-3


def _packed_lower(chol):
    p = chol.shape[-1]
    return chol[np.tril_indices(p)]


def test_whitened_lkj_density_matches_lkj_cholesky_cov_with_jacobian():
    # oracles: groupcov's LKJCholeskyCov (absolute) and PyMC's own (density ratios:
    # PyMC 5.28's normalizing constant is off, see test_lkj.py), each on the factor,
    # plus the log Jacobian of eps -> packed factor by finite differences
    rng = np.random.default_rng(3)
    p, eta, log_sd_sigma = 3, 2.0, 0.8
    d = p + p * (p - 1) // 2
    center = rng.normal(size=d) * 0.3
    factor = _random_factor(rng, 1, d)[0] * np.exp(rng.normal(size=d))[:, None] * 0.5
    with pm.Model() as m:
        chol = whitened_lkj_cov("c", p, eta, log_sd_sigma, center, factor, None)
    sd_dist = pm.LogNormal.dist(0.0, log_sd_sigma, shape=p)
    pymc_lkj = pm.LKJCholeskyCov.dist(n=p, eta=eta, sd_dist=sd_dist, compute_corr=False)
    ours = LKJCholeskyCov.dist(n=p, eta=eta, sd_dist=sd_dist)
    chol_fn = pm.compile([m["c_eps"]], chol)
    got, ref = [], []
    for _ in range(4):
        eps = rng.normal(size=d) * 0.7
        c = chol_fn(eps)
        log_jac = _numeric_log_jac(lambda e: _packed_lower(chol_fn(e)), eps)
        got.append(float(pm.logp(m["c_eps"], eps).eval()))
        assert got[-1] == pytest.approx(float(pm.logp(ours, c).eval()) + log_jac, abs=1e-6)
        ref.append(float(pm.logp(pymc_lkj, _packed_lower(c)).eval()) + log_jac)
    np.testing.assert_allclose(np.diff(got), np.diff(ref), atol=1e-6)


def test_whitened_lkj_prior_draws_have_lkj_marginals():
    p, eta = 3, 2.0
    d = p + p * (p - 1) // 2
    rng = np.random.default_rng(4)
    with pm.Model():
        chol = whitened_lkj_cov(
            "c", p, eta, 1.0, rng.normal(size=(2, d)), _random_factor(rng, 2, d), None
        )
        pm.Deterministic("cov", chol @ pt.swapaxes(chol, -1, -2))
        cov = pm.sample_prior_predictive(draws=2000, random_seed=5).prior["cov"].values[0]
    sd = np.sqrt(np.diagonal(cov, axis1=-2, axis2=-1))
    corr01 = cov[..., 0, 1] / (sd[..., 0] * sd[..., 1])
    b = eta - 1 + p / 2
    for g in range(2):
        # LKJ marginal of a correlation: Beta(eta - 1 + p/2, same) on (-1, 1)
        assert stats.kstest((corr01[:, g] + 1) / 2, stats.beta(b, b).cdf).pvalue > 1e-3
        assert stats.kstest(np.log(sd[:, g, 2]), stats.norm(0, 1).cdf).pvalue > 1e-3


def test_corr_cholesky_from_cpc_round_trip():
    rng = np.random.default_rng(6)
    cpc = np.tanh(rng.normal(size=(5, 6)))
    chol = corr_cholesky_from_cpc(cpc, 4)
    np.testing.assert_allclose(cpc_from_corr(chol @ np.swapaxes(chol, -1, -2)), cpc, atol=1e-12)


def test_covariance_information_matches_monte_carlo_score_variance():
    # the Fisher information is the variance of the score: check by simulation
    rng = np.random.default_rng(7)
    p = 3
    theta = np.array([0.2, -0.1, 0.3, 0.5, -0.4, 0.6])
    info = covariance_information(theta[None], p)[0]

    def loglik(t, x):
        chol = np.exp(t[:p])[:, None] * corr_cholesky_from_cpc(np.tanh(t[p:]), p)
        return stats.multivariate_normal(np.zeros(p), chol @ chol.T).logpdf(x)

    chol = np.exp(theta[:p])[:, None] * corr_cholesky_from_cpc(np.tanh(theta[p:]), p)
    x = rng.normal(size=(20000, p)) @ chol.T
    score = np.empty((len(x), len(theta)))
    for j in range(len(theta)):
        e = np.zeros(len(theta))
        e[j] = 1e-5
        score[:, j] = (loglik(theta + e, x) - loglik(theta - e, x)) / 2e-5
    np.testing.assert_allclose(np.cov(score.T), info, atol=0.08 * np.abs(info).max())


def test_whitening_factors_identity_without_information():
    st = SufficientStats(
        ("a", "b"), ("x", "y"), np.array([2, 200]), np.zeros((2, 2)),
        np.array([[[1.0, 1.0], [1.0, 1.0]], [[200.0, 150.0], [150.0, 200.0]]]),
    )
    est = group_estimates(st)
    w = {"mu": mean_whitening(st, est), "cov": covariance_whitening(2, *covariance_estimates(est))}
    np.testing.assert_allclose(w["cov"][0], np.eye(3))
    assert np.abs(w["cov"][1] - np.eye(3)).max() > 0.05
    # the means' correlation: each group's scatter plus 4 rows' worth of the pooled
    # within-group covariance (2 rows perfectly correlated: mostly the pooled one;
    # 200 rows: nearly the group's own 0.75)
    pooled = st.scatter.sum(axis=0) / (1 + 199)
    for g, own in enumerate(st.scatter):
        shrunk = own + 4 * pooled
        want = shrunk[0, 1] / np.sqrt(shrunk[0, 0] * shrunk[1, 1])
        np.testing.assert_allclose((w["mu"][g] @ w["mu"][g].T)[0, 1], want, rtol=1e-12)
    assert abs((w["mu"][1] @ w["mu"][1].T)[0, 1] - 0.75) < 0.002
    # the means' sampling variances: the group's variance shrunk the same way
    var_a = (np.diag(st.scatter[0]) + 4 * np.diag(pooled)) / (1 + 4)
    np.testing.assert_allclose(est["mu"][1][0], var_a / 2, rtol=1e-12)


def test_scaled_halfnormal_density_is_the_halfnormal_times_the_jacobian():
    sigma, center, scale = np.array([0.5, 2.0]), np.array([-1.0, 0.3]), np.array([0.05, 0.7])
    with pm.Model() as m:
        tau = scaled_halfnormal("tau", sigma, center, scale)
    u = np.array([[0.0, 0.0], [1.3, -2.2], [-30.0, 4.0]])
    logp = m.compile_logp(sum=False)
    for value in u:
        t = np.exp(center + scale * value)
        # HalfNormal(tau) |d tau / d u| = HalfNormal(tau) tau scale
        expected = stats.halfnorm.logpdf(t, scale=sigma) + np.log(t * scale)
        np.testing.assert_allclose(logp({"tau_u": value})[0], expected, rtol=1e-12)
        np.testing.assert_allclose(tau.eval({m["tau_u"]: value}), t, rtol=1e-14)
    assert "tau" in {v.name for v in m.deterministics}
    np.testing.assert_array_equal(m.initial_point()["tau_u"], [0.0, 0.0])


def test_scaled_halfnormal_prior_draws_follow_the_halfnormal():
    with pm.Model():
        scaled_halfnormal("tau", 0.5, -2.0, 0.03)
        draws = pm.sample_prior_predictive(4000, random_seed=3).prior["tau"].values.ravel()
    assert stats.kstest(draws, stats.halfnorm(scale=0.5).cdf).pvalue > 0.01


@pytest.mark.parametrize(("tau", "g"), [(0.05, 300), (0.5, 300), (2.0, 300), (0.5, 6000)])
def test_log_tau_coordinates_locate_the_posterior_of_log_tau(tau, g):
    """Against the posterior of log tau on a fine grid, computed by brute force from
    every group: the estimates' marginal likelihood with the location integrated out
    under a flat prior (its profile in the function differs by O(1/G) in the
    curvature). With 6,000 groups the function uses an evenly spaced subset."""
    rng = np.random.default_rng(1)
    var = np.exp(rng.uniform(-4.0, 0.0, size=(g, 1)))
    est = rng.normal(0.4, np.sqrt(tau**2 + var))
    center, scale = log_tau_coordinates(est, var, 1.0)
    grid = np.linspace(np.log(tau) - 3.0, np.log(tau) + 3.0, 4001)
    total = np.exp(2 * grid)[:, None] + var[:, 0]
    w = 1.0 / total
    loc = (w * est[:, 0]).sum(1) / w.sum(1)
    log_post = (-0.5 * (np.log(total) + (est[:, 0] - loc[:, None]) ** 2 * w).sum(1)
                - 0.5 * np.log(w.sum(1)) - 0.5 * np.exp(2 * grid) + grid)
    post = np.exp(log_post - log_post.max())
    post /= post.sum()
    mean = (grid * post).sum()
    sd = np.sqrt(((grid - mean) ** 2 * post).sum())
    mode = grid[np.argmax(post)]
    # a sampler coordinate within a fraction of a posterior sd of the mode, about as
    # wide as the posterior (which is skewed when tau is small beside the variances)
    assert abs(center[0] - mode) < 0.2 * sd and abs(center[0] - mean) < sd
    assert 0.6 < scale[0] / sd < 1.25


def test_log_tau_coordinates_shared_and_without_information():
    rng = np.random.default_rng(2)
    est = rng.normal(0.0, np.sqrt(0.3**2 + 0.01), size=(500, 4))
    var = np.full((500, 4), 0.01)
    center, scale = log_tau_coordinates(est, var, 0.5, shared=True)
    assert center.shape == () and abs(np.exp(center) - 0.3) < 0.03
    # four columns share tau: half the per-column scale
    _, per_column = log_tau_coordinates(est, var, 0.5)
    np.testing.assert_allclose(scale, per_column.mean() / 2.0, rtol=0.15)
    # no group informs tau: the prior alone (scale capped at 1), finite centre
    center, scale = log_tau_coordinates(np.zeros((3, 2)), np.full((3, 2), 1e100), 0.5)
    assert np.all(np.isfinite(center)) and np.all(scale <= 1.0)


@pytest.mark.parametrize("tau", [1e-20, 1e-8, 0.3])
def test_eps_density_stays_standard_normal_as_tau_vanishes(tau):
    # as tau -> 0 theta equals its centre to machine precision; the density of eps must
    # still be N(0, 1) (a density that went flat in eps trapped chains at tau ~ 1e-20)
    import jax

    jax.config.update("jax_enable_x64", True)
    from groupcov.distributions.whitening import _normal_eps_logp
    from groupcov.model.density import _whitened_normal

    loc, taus = np.array([0.3, -0.2, 0.1]), np.full(3, tau)
    estimate = np.array([[0.5, 0.0, -1.0], [2.0, 0.4, 0.0]])
    variance = np.array([[0.25, 1e100, 0.04], [0.5, 0.1, 1e100]])
    factor = np.tile(np.linalg.cholesky([[1.0, 0.3, 0.0], [0.3, 1.0, 0.2],
                                         [0.0, 0.2, 1.0]]), (2, 1, 1))
    eps = np.array([[3.0, -5.0, 0.7], [-2.0, 4.0, 1.5]])

    def jax_logp(e):
        return float(_whitened_normal(e, loc, taus, estimate, variance, factor)[1])

    def pymc_logp(e):
        return float(_normal_eps_logp(pt.as_tensor(e), loc, taus, estimate, variance,
                                      factor).sum().eval())

    for logp in (jax_logp, pymc_logp):
        change = logp(eps) - logp(np.zeros_like(eps))
        if tau < 1e-6:  # w = 0: z is eps itself
            np.testing.assert_allclose(change, -0.5 * np.sum(eps**2), rtol=1e-9)
        else:  # against the density of theta times the Jacobian, computed directly
            one_minus_w = variance / (tau**2 + variance)
            root_w = tau / np.sqrt(tau**2 + variance)
            mixed = one_minus_w * eps + root_w * np.einsum("gij,gj->gi", factor, root_w * eps)
            centre = estimate + one_minus_w * (loc - estimate)
            theta = centre + root_w * np.sqrt(variance) * mixed
            want = (stats.norm.logpdf(theta, loc, tau).sum()
                    - stats.norm.logpdf(centre, loc, tau).sum())
            np.testing.assert_allclose(change, want, rtol=1e-9)
