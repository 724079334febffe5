"""Validation machinery: SBC that passes on the model and fails on a wrong posterior,
prior draws against an independent NumPy prior, loss functions and baselines."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from groupcov.data import reduce
from groupcov.datasets import simulate_groups
from groupcov.model.priors import Priors
from groupcov.validate import SBCConfig, SBCSettings, run_sbc
from groupcov.validate.__main__ import main
from groupcov.validate.batch import stats_from_rows
from groupcov.validate.pooling import (
    REG_GRID,
    frobenius_loss,
    qda_cv_scores,
    sklearn_estimates,
    stein_bayes,
    stein_loss,
    summarize,
)
from groupcov.validate.sbc import (
    _reference_prior,
    build_sbc_model,
    chi2_uniformity,
    loglik,
    prior_check,
    prior_draws,
    ranks_of,
)


def test_sbc_passes_on_the_model_and_flags_a_narrowed_posterior():
    """40 simulations of the hierarchical model (p = 2, 3 groups x 20 rows)."""
    config = SBCConfig("hierarchical", "hierarchical", 2)
    settings = SBCSettings(sims=40, draws=200, tune=200, thin=4, batch=40, bins=5, seed=1)
    res = run_sbc(config, settings, log=None)
    k = len(res.labels)
    assert k == 6 + 6 + 3 + 4 + 4 + 2 + 1  # mu, sigma, corr, 4 hyper vectors, 2 scalars, loglik
    assert res.ranks.shape == (40, k) and res.n_draws == 100
    assert res.ranks.min() >= 0 and res.ranks.max() <= 100
    # calibrated: no parameter fails at the Bonferroni 0.1% level
    assert res.pvalues.min() * k > 1e-3, dict(zip(res.labels, res.pvalues.round(4), strict=True))
    # a posterior half as wide must be flagged for most parameters (5% when calibrated)
    assert (res.pvalues_narrow < 0.05).mean() > 0.5, res.pvalues_narrow.round(4)
    assert res.divergences.sum() <= 5


@pytest.mark.parametrize("mode", ["unpooled", "hierarchical"])
def test_model_prior_draws_match_an_independent_numpy_prior(mode):
    pvalues = prior_check(SBCConfig(mode, mode, 4), n=1000, seed=3)
    assert min(pvalues.values()) * len(pvalues) > 1e-3, pvalues


def test_prior_check_detects_a_wrong_lkj_shape():
    config = SBCConfig("unpooled", "unpooled", 4)
    gcm = build_sbc_model(config)
    model = prior_draws(gcm, 3000, ["corr"], seed=0)["corr"][:, 0, 1, 0]
    wrong = _reference_prior(config, Priors(eta=1.0), 3000, np.random.default_rng(0))
    right = _reference_prior(config, Priors(), 3000, np.random.default_rng(0))
    assert sps.ks_2samp(model, wrong["corr"][:, 0, 1, 0]).pvalue < 1e-4
    assert sps.ks_2samp(model, right["corr"][:, 0, 1, 0]).pvalue > 1e-3
    # LKJ(eta) marginal of one correlation: (r + 1) / 2 ~ Beta(eta - 1 + p/2, same)
    a = 2.0 - 1.0 + 4 / 2
    assert sps.kstest((model + 1) / 2, sps.beta(a, a).cdf).pvalue > 1e-3


def test_chi2_uniformity_matches_scipy():
    rng = np.random.default_rng(0)
    ranks = rng.integers(0, 100, size=(200, 3))  # 0..99 with L = 99: 10 equal bins
    chi2, p = chi2_uniformity(ranks, 99, 10)
    for k in range(3):
        counts = np.histogram(ranks[:, k], bins=np.arange(0, 101, 10))[0]
        ref = sps.chisquare(counts)
        assert np.isclose(chi2[k], ref.statistic) and np.isclose(p[k], ref.pvalue)
    # unequal bins: 11 rank values in 2 bins of 6 and 5 values
    chi2, _ = chi2_uniformity(np.array([[0], [5], [6], [10]]), 10, 2)
    expected = 4 * np.array([6, 5]) / 11
    assert np.isclose(chi2[0], (((np.array([2, 2]) - expected) ** 2) / expected).sum())


def test_ranks_and_loglik_against_brute_force():
    rng = np.random.default_rng(1)
    draws, truth = rng.normal(size=(50, 4)), rng.normal(size=4)
    assert ranks_of(draws, truth).tolist() == [sum(d < t for d in draws[:, k])
                                               for k, t in enumerate(truth)]
    x = rng.normal(size=(2, 7, 3))
    st = stats_from_rows(x, ["a", "b"], ["u", "v", "w"])
    mu = rng.normal(size=(2, 3))
    a = rng.normal(size=(2, 3, 3))
    cov = a @ np.swapaxes(a, -1, -2) + np.eye(3)
    ref = sum(sps.multivariate_normal(mu[g], cov[g]).logpdf(x[g]).sum() for g in range(2))
    assert np.isclose(loglik(st.mean, st.scatter, st.n, mu, cov), ref)
    frame = pd.DataFrame(x.reshape(-1, 3), columns=["u", "v", "w"]).assign(
        group=np.repeat(["a", "b"], 7))
    red = reduce(frame, group="group", features=["u", "v", "w"])
    assert np.allclose(red.scatter, st.scatter) and np.allclose(red.mean, st.mean)


def test_losses():
    truth = np.array([[2.0, 0.5], [0.5, 1.0]])
    assert np.isclose(stein_loss(truth, truth), 0.0)
    assert np.isclose(frobenius_loss(truth, truth), 0.0)
    est = np.array([[1.0, 0.0], [0.0, 3.0]])
    m = np.linalg.solve(truth, est)
    assert np.isclose(stein_loss(est, truth), np.trace(m) - np.log(np.linalg.det(m)) - 2)
    assert stein_loss(np.zeros((2, 2)), truth) == np.inf


def test_stein_bayes_minimizes_expected_stein_loss():
    """``(E[Sigma^-1])^-1`` over draws ``(chain, draw, G, p, p)``: equal to a per-group
    brute-force loop, and lower expected Stein loss over the draws than the posterior
    mean or any perturbation of it (the defining property of the Bayes estimate)."""
    rng = np.random.default_rng(3)
    a = rng.normal(size=(2, 40, 3, 3, 6))
    draws = a @ np.swapaxes(a, -1, -2) / 6 + 0.1 * np.eye(3)
    got = stein_bayes(draws)
    for g in range(3):
        flat = draws[:, :, g].reshape(-1, 3, 3)
        expect = np.linalg.inv(np.mean([np.linalg.inv(d) for d in flat], axis=0))
        np.testing.assert_allclose(got[g], expect, rtol=1e-10)

        def risk(est, flat=flat):
            return stein_loss(est, flat).mean()

        assert risk(got[g]) < risk(flat.mean(axis=0))
        for _ in range(20):
            b = rng.normal(scale=0.05, size=(3, 3))
            assert risk(got[g]) <= risk(got[g] + b @ b.T) + 1e-12


def test_sklearn_baselines_match_sklearn():
    from sklearn.discriminant_analysis import QuadraticDiscriminantAnalysis as QDA
    from sklearn.model_selection import GridSearchCV, StratifiedKFold

    sim = simulate_groups(4, 8, 3, seed=2)
    x, y = sim.data[sim.features].to_numpy(), sim.data["group"].to_numpy()
    labels = list(sim.cov)
    est = sklearn_estimates(x, y, labels, seed=0)
    for g, label in enumerate(labels):
        rows = x[y == label]
        assert np.allclose(est["QDA"][g], np.cov(rows.T, bias=True))
        assert np.allclose(est["sample covariance (n-1)"][g], np.cov(rows.T))
    # the log-loss criterion picks what GridSearchCV picks (same folds)
    search = GridSearchCV(
        QDA(), {"reg_param": REG_GRID}, scoring="neg_log_loss",
        cv=StratifiedKFold(4, shuffle=True, random_state=0),
    ).fit(x, np.array([labels.index(v) for v in y]))
    _, logloss = qda_cv_scores(x, y, labels, seed=0)
    # equal where scikit-learn does not clip tiny probabilities (reg_param >= 0.1 here)
    unclipped = REG_GRID >= 0.1
    assert np.allclose(logloss[unclipped] / len(y),
                       search.cv_results_["mean_test_score"][unclipped], rtol=1e-6)
    assert est["_reg"][1] == search.best_params_["reg_param"]


def test_summary_paired_differences():
    losses = pd.DataFrame({
        "data_set": [0, 1, 0, 1], "method": ["groupcov hierarchical"] * 2 + ["other"] * 2,
        "frobenius": [1.0, 2.0, 2.0, 4.0], "stein": [0.1, 0.2, 0.1, 0.1],
    })
    row = summarize(losses).set_index("method").loc["other"]
    assert row["frobenius mean"] == 3.0 and row["frobenius diff vs hier."] == 1.5
    assert row["frobenius hier. wins"] == "2/2" and row["stein hier. wins"] == "0/2"


def test_cli_rejects_unknown_configuration():
    with pytest.raises(SystemExit, match="unknown configuration"):
        main(["sbc", "--configs", "nope", "--out", "unused"])
