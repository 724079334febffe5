"""Sufficient-statistics likelihood against scipy's row-by-row density."""

import numpy as np
import pymc as pm
import pytest
from scipy import stats

from groupcov.data import reduce
from groupcov.datasets import simulate_groups
from groupcov.distributions.mvnormal import MvNormalSuffStats, pack_suffstats, scatter_root
from groupcov.result import group_log_likelihood


def grouped_rows(rng, p, sizes, offset=0.0):
    rows = [rng.normal(size=(n, p)) * 2.0 + offset for n in sizes]
    mean = np.stack([r.mean(0) for r in rows])
    scatter = np.stack([(r - r.mean(0)).T @ (r - r.mean(0)) for r in rows])
    return rows, mean, scatter


def random_cov(rng, g, p):
    a = rng.normal(size=(g, p, p))
    return a @ np.swapaxes(a, -1, -2) + 0.5 * np.eye(p)


@pytest.mark.parametrize(
    ("p", "sizes"),
    [(1, [1, 5, 40]), (2, [60, 3, 1]), (3, [2, 3, 4]), (5, [1, 2, 5, 9]), (4, [200])],
)
def test_logp_equals_sum_of_row_densities(p, sizes):
    rng = np.random.default_rng(p * 100 + len(sizes))
    rows, mean, scatter = grouped_rows(rng, p, sizes, offset=3.0)
    mu = rng.normal(size=(len(sizes), p)) + 3.0
    cov = random_cov(rng, len(sizes), p)
    dist = MvNormalSuffStats.dist(n=np.array(sizes), mu=mu, chol=np.linalg.cholesky(cov))
    ours = pm.logp(dist, pack_suffstats(mean, scatter)).eval()
    ref = [stats.multivariate_normal(mu[g], cov[g]).logpdf(r).sum() for g, r in enumerate(rows)]
    np.testing.assert_allclose(ours, ref, rtol=1e-9)
    # the NumPy implementation used for the log_likelihood group agrees too
    from groupcov.stats import SufficientStats

    st = SufficientStats(tuple(range(len(sizes))), tuple(f"f{j}" for j in range(p)),
                         np.array(sizes), mean, scatter)
    np.testing.assert_allclose(group_log_likelihood(st, mu, cov), ref, rtol=1e-9)


def test_scatter_root_is_a_square_root_also_when_singular():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 6))  # n = 3 < p = 6: rank 2
    c = x - x.mean(0)
    s = c.T @ c
    r = scatter_root(s)
    np.testing.assert_allclose(r.T @ r, s, atol=1e-12)


def test_statistics_from_reduction_give_exact_likelihood():
    sim = simulate_groups(3, [4, 30, 2], 3, seed=5)
    st = reduce(sim.data, "group", sim.features)
    rng = np.random.default_rng(1)
    mu = rng.normal(size=(3, 3))
    cov = random_cov(rng, 3, 3)
    dist = MvNormalSuffStats.dist(n=st.n, mu=mu, chol=np.linalg.cholesky(cov))
    ours = pm.logp(dist, pack_suffstats(st.mean, st.scatter)).eval()
    for g, label in enumerate(st.groups):
        x = sim.data.loc[sim.data.group == label, sim.features].to_numpy()
        ref = stats.multivariate_normal(mu[g], cov[g]).logpdf(x).sum()
        assert ours[g] == pytest.approx(ref, rel=1e-9)


def test_random_draws_are_statistics_of_normal_rows():
    n, p = 400, 2
    cov = np.array([[1.0, 0.6], [0.6, 2.0]])
    dist = MvNormalSuffStats.dist(n=n, mu=np.array([1.0, -1.0]), chol=np.linalg.cholesky(cov))
    draws = pm.draw(dist, draws=300, random_seed=3)
    assert draws.shape == (300, p + 1, p)
    means = draws[:, 0, :]
    np.testing.assert_allclose(means.mean(0), [1.0, -1.0], atol=0.02)
    np.testing.assert_allclose(np.cov(means.T), cov / n, rtol=0.25)
    roots = draws[:, 1:, :]
    scatter = np.swapaxes(roots, -1, -2) @ roots
    np.testing.assert_allclose(scatter.mean(0) / (n - 1), cov, rtol=0.03)
