"""Row-level densities: classification and pointwise log-likelihood against scipy."""

import arviz as az
import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from scipy.special import logsumexp

from groupcov.classify import (
    classify,
    classify_log,
    group_weights,
    mvn_logpdf,
    row_log_likelihood,
)
from groupcov.result import GroupCovResult
from groupcov.stats import SufficientStats


def fake_result(groups=("a", "b", "c"), p=3, chains=2, draws=40, seed=0, counts=None):
    """A posterior of random means and covariances (no sampling), with named dims."""
    rng = np.random.default_rng(seed)
    g = len(groups)
    feats = [f"x{j}" for j in range(p)]
    mu = rng.normal(0.0, 1.5, (chains, draws, g, p))
    a = rng.normal(size=(chains, draws, g, p, p + 2))
    cov = a @ np.swapaxes(a, -1, -2) / (p + 2) + 0.3 * np.eye(p)
    sigma = np.sqrt(np.diagonal(cov, axis1=-2, axis2=-1))
    corr = cov / (sigma[..., :, None] * sigma[..., None, :])
    dims = ("chain", "draw", "group", "feature", "feature_")
    idata = az.from_dict(
        posterior={"mu": mu, "cov": cov, "sigma": sigma, "corr": corr},
        coords={"group": list(groups), "feature": feats, "feature_": feats},
        dims={"mu": list(dims[2:4]), "sigma": list(dims[2:4]), "cov": list(dims[2:]),
              "corr": list(dims[2:])},
    )
    counts = np.arange(5, 5 + g) if counts is None else np.asarray(counts)
    stats = SufficientStats(tuple(groups), tuple(feats), counts.astype(np.int64),
                            np.zeros((g, p)), np.repeat(np.eye(p)[None], g, 0))
    return GroupCovResult(idata, stats, {"means": "unpooled", "covariance": "unpooled"})


def brute_force_probabilities(result, x, weights):
    """P(g | x) from scipy densities, one draw and one row at a time."""
    post = result.idata.posterior
    mu = post["mu"].values.reshape(-1, *post["mu"].shape[2:])
    cov = post["cov"].values.reshape(-1, *post["cov"].shape[2:])
    out = []
    for row in x:
        obs = ~np.isnan(row)
        dens = np.zeros(len(weights))
        for g in range(len(weights)):
            for s in range(mu.shape[0]):
                if obs.any():
                    dens[g] += sps.multivariate_normal(
                        mu[s, g, obs], cov[s, g][np.ix_(obs, obs)]
                    ).pdf(row[obs])
                else:
                    dens[g] += 1.0
        joint = weights * dens / mu.shape[0]
        out.append(joint / joint.sum())
    return np.array(out)


def test_mvn_logpdf_matches_scipy_batched():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(4, 2, 3, 3))
    cov = a @ np.swapaxes(a, -1, -2) + np.eye(3)
    mu = rng.normal(size=(4, 2, 3))
    x = rng.normal(size=(5, 3))
    out = mvn_logpdf(x, mu, np.linalg.cholesky(cov))
    assert out.shape == (4, 2, 5)
    expect = np.array(
        [[sps.multivariate_normal(mu[i, j], cov[i, j]).logpdf(x) for j in range(2)]
         for i in range(4)]
    )
    np.testing.assert_allclose(out, expect, rtol=1e-10)


def test_classify_matches_brute_force_scipy_and_sums_to_one():
    res = fake_result()
    rng = np.random.default_rng(2)
    x = rng.normal(0.0, 2.0, (6, 3))
    x[1, 0] = np.nan  # classified on x1, x2
    x[2, [0, 2]] = np.nan  # on x1 alone
    x[3, :] = np.nan  # on nothing: the weights
    frame = pd.DataFrame(x, columns=["x0", "x1", "x2"], index=list("uvwxyz"))
    probs = classify(res, frame.assign(other="ignored"))
    assert list(probs.columns) == ["a", "b", "c"]
    assert list(probs.index) == list("uvwxyz")
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-12)
    weights = group_weights(res)
    expect = brute_force_probabilities(res, x, weights)
    np.testing.assert_allclose(probs.values, expect, rtol=1e-9)
    np.testing.assert_allclose(probs.values[3], weights, rtol=1e-12)


def test_classify_is_the_same_in_tiny_chunks_and_without_cov():
    res = fake_result(seed=3)
    x = np.random.default_rng(4).normal(0.0, 2.0, (7, 3))
    x[0, 1] = np.nan
    full = classify_log(res, x)
    tiny = classify_log(res, x, max_bytes=1)
    np.testing.assert_allclose(tiny, full, rtol=1e-12)
    res.idata.posterior = res.idata.posterior.drop_vars("cov")
    np.testing.assert_allclose(classify_log(res, x), full, rtol=1e-12)


def test_weights_default_user_given_and_errors():
    res = fake_result(counts=[10, 0, 30])
    np.testing.assert_allclose(group_weights(res), [11 / 43, 1 / 43, 31 / 43])
    np.testing.assert_allclose(group_weights(res, {"a": 1, "b": 1, "c": 2}), [0.25, 0.25, 0.5])
    np.testing.assert_allclose(group_weights(res, [2, 2, 4]), [0.25, 0.25, 0.5])
    x = np.zeros((2, 3))
    equal = classify(res, x, weights=[1, 1, 1]).values
    unequal = classify(res, x, weights=[1, 1, 3]).values
    # the odds change by exactly the ratio of the weights
    np.testing.assert_allclose(unequal[:, 2] / unequal[:, 0], 3 * equal[:, 2] / equal[:, 0])
    with pytest.raises(KeyError, match="lack group"):
        group_weights(res, {"a": 1})
    with pytest.raises(KeyError, match="unknown group"):
        group_weights(res, {"a": 1, "b": 1, "c": 1, "d": 1})
    with pytest.raises(ValueError, match="non-negative"):
        group_weights(res, [1, -1, 1])
    with pytest.raises(ValueError, match="one entry per group"):
        group_weights(res, [1, 1])


def test_classify_input_errors():
    res = fake_result()
    with pytest.raises(KeyError, match=r"lacks feature column\(s\) \['x2'\]"):
        classify(res, pd.DataFrame({"x0": [1.0], "x1": [2.0]}))
    with pytest.raises(ValueError, match="shape"):
        classify(res, np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"1 infinite value\(s\) in column 'x1' \(rows 0, "
                       r"counting from 0\)"):
        classify(res, np.array([[0.0, np.inf, 0.0]]))
    frame = pd.DataFrame({"x0": [0.0, 1, 2], "x1": [0.0, 1, 2], "x2": [-np.inf, 1, np.inf]},
                         index=["r0", "r1", "r2"])
    with pytest.raises(ValueError, match=r"2 infinite value\(s\) in column 'x2' \(rows with "
                       r"index labels 'r0', 'r2'\)"):
        classify(res, frame)


def test_row_log_likelihood_matches_scipy():
    res = fake_result(chains=2, draws=5)
    rng = np.random.default_rng(5)
    x = rng.normal(size=(5, 3))
    x[2, 1] = np.nan
    frame = pd.DataFrame(x, columns=["x0", "x1", "x2"]).assign(g=["c", "a", "a", "b", "c"])
    ll = row_log_likelihood(res, frame, group="g", max_bytes=1)
    assert ll.dims == ("chain", "draw", "row")
    post = res.idata.posterior
    for i, (row, g) in enumerate(zip(x, frame["g"], strict=True)):
        obs = ~np.isnan(row)
        for c in range(2):
            for d in range(5):
                mu = post["mu"].sel(group=g).values[c, d, obs]
                cov = post["cov"].sel(group=g).values[c, d][np.ix_(obs, obs)]
                expect = sps.multivariate_normal(mu, cov).logpdf(row[obs])
                assert ll.values[c, d, i] == pytest.approx(expect, rel=1e-10)
    # the per-row predictive density also gives the classification numerator
    lp = logsumexp(ll.values.reshape(-1, 5), axis=0) - np.log(10)
    assert np.all(np.isfinite(lp))
    res.idata.posterior = post.drop_vars("cov")  # rebuilt from sigma and corr
    np.testing.assert_allclose(
        row_log_likelihood(res, frame, group="g").values, ll.values, rtol=1e-12
    )
    with pytest.raises(KeyError, match=r"label\(s\) \['zz'\]"):
        row_log_likelihood(res, frame.assign(g="zz"), group="g")
    with pytest.raises(KeyError, match="group column 'group'"):
        row_log_likelihood(res, frame)
