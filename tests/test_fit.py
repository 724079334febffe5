"""End-to-end fits against known truth (sampling; a few seconds each once compiled)."""

import sys

import arviz as az
import numpy as np
import pandas as pd
import pymc as pm
import pytest

import groupcov
from groupcov.datasets import simulate_groups, two_groups
from groupcov.inference import run_sampler


@pytest.fixture(scope="module")
def two_group_fit():
    sim = two_groups()
    model = groupcov.GroupCovModel(sim.data, group="group", features=sim.features)
    return sim, model.fit(draws=1000, tune=1000, random_seed=3, progressbar=False)


def test_two_groups_recovers_truth(two_group_fit):
    sim, result = two_group_fit
    post = result.idata.posterior
    hdi = az.hdi(post[["mu", "cov"]], hdi_prob=0.94)
    for g in ("A", "B"):
        low, high = hdi["mu"].sel(group=g).values.T
        assert np.all((low <= sim.mean[g]) & (sim.mean[g] <= high))
        low, high = np.moveaxis(hdi["cov"].sel(group=g).values, -1, 0)
        assert np.all((low <= sim.cov[g]) & (sim.cov[g] <= high))
    diag = result.diagnostics()
    assert diag.max_r_hat <= 1.01
    assert diag.divergences == 0
    assert diag.min_ess_bulk > 400


# leaving out one of two groups is highly influential: Pareto k is expected to be large
@pytest.mark.filterwarnings("ignore:Estimated shape parameter of Pareto")
def test_result_tables_and_loo(two_group_fit):
    _sim, result = two_group_fit
    post = result.idata.posterior
    assert post["cov"].dims == ("chain", "draw", "group", "feature", "feature_")
    assert {"mu_pop", "mu_tau", "sigma_pop", "corr_pop", "sd_tau", "corr_tau"} <= set(post)
    table = result.summary()
    assert list(table.columns) == [
        "group", "parameter", "mean", "sd", "hdi_low", "hdi_high", "r_hat", "ess_bulk",
        "ess_tail",
    ]
    assert len(table) == 2 * (2 + 2 + 1 + 3)
    cov_b = result.covariance("B")
    assert list(cov_b.index) == ["x", "y"]
    np.testing.assert_allclose(cov_b.values, post["cov"].sel(group="B").mean(("chain", "draw")))
    assert cov_b.loc["x", "y"] == pytest.approx(-0.5, abs=0.1)
    with pytest.raises(KeyError, match="unknown group"):
        result.covariance("C")
    # group-level log-likelihood: leave-one-group-out LOO runs
    assert result.idata.log_likelihood["obs"].dims == ("chain", "draw", "group")
    loo = az.loo(result.idata)
    assert np.isfinite(loo.elpd_loo)


def test_scaling_a_feature_scales_its_posterior():
    sim = simulate_groups(3, 40, 2, seed=2)
    scaled = sim.data.assign(x0=sim.data.x0 * 1000.0)
    fits = [
        groupcov.GroupCovModel(d, features=sim.features).fit(
            draws=500, tune=500, random_seed=5, progressbar=False
        )
        for d in (sim.data, scaled)
    ]
    a, b = (f.idata.posterior for f in fits)
    mcse = az.mcse(a[["mu", "sigma", "corr"]])

    def close(name, factor, **sel):
        ma = a[name].sel(**sel).mean(("chain", "draw"))
        mb = b[name].sel(**sel).mean(("chain", "draw")) / factor
        tol = 4 * float(mcse[name].sel(**sel).max())
        np.testing.assert_allclose(mb, ma, atol=tol)
        sa = a[name].sel(**sel).std(("chain", "draw"))
        sb = b[name].sel(**sel).std(("chain", "draw")) / factor
        np.testing.assert_allclose(sb, sa, rtol=0.1)

    for name in ("mu", "sigma"):
        close(name, 1000.0, feature="x0")
        close(name, 1.0, feature="x1")
    close("corr", 1.0, feature="x1", feature_="x0")


@pytest.mark.parametrize(("means", "covariance"), [("pooled", "pooled"),
                                                   ("unpooled", "unpooled"),
                                                   ("hierarchical", "unpooled")])
def test_pooling_modes_fit(means, covariance):
    sim = simulate_groups(3, [8, 30, 100], 3, seed=4)
    m = groupcov.GroupCovModel(sim.data, features=sim.features, means=means,
                               covariance=covariance)
    # 4 x 300 draws: split R-hat of ~40 quantities fluctuates up to ~1.015 in a sampler
    # that mixes well (the same model at 4 x 3000 draws: 1.002)
    res = m.fit(draws=600, tune=300, random_seed=1, progressbar=False)
    d = res.diagnostics()
    # the 8-row group (p = 3) reaches |corr| > 0.95 in its posterior tail, where an
    # isolated divergence is possible (about 1 run in 6 of 2,400 draws, unpooled)
    assert d.max_r_hat < 1.02 and d.divergences <= 1
    cov = res.idata.posterior["cov"]
    if covariance == "pooled":
        np.testing.assert_allclose(cov.sel(group="g0"), cov.sel(group="g2"))
    else:
        big = res.covariance("g2").values
        np.testing.assert_allclose(big, sim.cov["g2"], atol=0.5 * np.abs(sim.cov["g2"]).max())


def test_one_feature_is_a_variance():
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"g": np.repeat(["a", "b", "c"], 200),
                       "v": np.concatenate([rng.normal(0, s, 200) for s in (1.0, 2.0, 3.0)])})
    res = groupcov.GroupCovModel(df, group="g", features=["v"]).fit(
        draws=300, tune=300, random_seed=2, progressbar=False)
    var = res.idata.posterior["cov"].mean(("chain", "draw")).values[:, 0, 0]
    np.testing.assert_allclose(var, [1.0, 4.0, 9.0], rtol=0.2)
    np.testing.assert_allclose(res.idata.posterior["corr"].values, 1.0)


def test_batched_prior_in_a_users_own_model():
    sim = simulate_groups(3, 150, 2, seed=9)
    codes, labels = pd.factorize(sim.data.group, sort=True)
    coords = {"group": list(labels), "feature": sim.features, "feature_": sim.features}
    with pm.Model(coords=coords) as model:
        x = pm.Data("x", sim.data[sim.features].to_numpy())
        idx = pm.Data("idx", codes)
        mu = pm.Normal("mu", 0.0, 3.0, dims=("group", "feature"))
        chol, _corr, _stds = groupcov.LKJCholeskyCov(
            "chol", n=2, eta=2.0, sd_dist=pm.Exponential.dist(1.0, shape=(3, 2)),
            dims=("group", "feature", "feature_"),
        )
        pm.MvNormal("obs", mu=mu[idx], chol=chol[idx], observed=x)
    for sampler in ("numpyro", "nutpie"):
        idata = run_sampler(model, sampler, draws=300, tune=300, random_seed=1,
                            progressbar=False)
        chol = idata.posterior["chol"].values
        cov_mean = (chol @ np.swapaxes(chol, -1, -2)).mean((0, 1))
        sample_cov = groupcov.reduce(sim.data, "group", sim.features).covariance()
        # 150 rows per group and a weak prior: the posterior mean is near the sample one
        np.testing.assert_allclose(cov_mean, sample_cov, atol=0.1 * np.abs(sample_cov).max())
        assert idata.posterior["chol_corr"].dims[2:] == ("group", "feature", "feature_")
    # PyMC's own NUTS on the same model
    with model:
        idata = pm.sample(draws=300, tune=300, chains=2, cores=1, random_seed=2,
                          progressbar=False, compute_convergence_checks=False,
                          compile_kwargs={"mode": "FAST_RUN"})
    chol = idata.posterior["chol"].values
    cov_mean = (chol @ np.swapaxes(chol, -1, -2)).mean((0, 1))
    np.testing.assert_allclose(cov_mean, sample_cov, atol=0.1 * np.abs(sample_cov).max())


def test_fit_warns_about_sampling_problems(monkeypatch):
    import groupcov.api

    sim = two_groups(n_per_group=30, seed=4)
    m = groupcov.GroupCovModel(sim.data, features=sim.features)
    seen = []

    def problems(sample_stats, posterior, moments):
        seen.append((int(sample_stats["diverging"].sizes["chain"]), "sd_tau" in posterior,
                     moments))
        return ["3 divergent transitions after warm-up"]

    monkeypatch.setattr(groupcov.api, "sampling_problems", problems)
    with pytest.warns(groupcov.ConvergenceWarning, match="3 divergent transitions"):
        m.fit(draws=50, tune=50, chains=2, random_seed=0, progressbar=False)
    assert seen == [(2, True, None)]  # no moments: nothing was thinned away


def test_fit_reports_draws_stopped_at_the_maximum_tree_depth():
    sim = two_groups(n_per_group=30, seed=4)
    m = groupcov.GroupCovModel(sim.data, features=sim.features, means="pooled",
                               covariance="pooled")
    # depth 1: every tree is one leapfrog step, never long enough for a U-turn
    with pytest.warns(groupcov.ConvergenceWarning, match="maximum tree depth") as record:
        r = m.fit(draws=100, tune=100, chains=2, random_seed=0, progressbar=False,
                  max_tree_depth=1)
    stopped = r.sample_stats["reached_max_treedepth"].values
    assert (r.sample_stats["n_steps"].values == 1).all() and stopped.all()
    assert any(f"{stopped.size} of {stopped.size} draws" in str(w.message) for w in record)


def test_missing_backend_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "nutpie", None)
    sim = two_groups(n_per_group=20, seed=0)
    m = groupcov.GroupCovModel(sim.data, features=sim.features)
    with pytest.raises(ImportError, match=r"groupcov\[nutpie\]"):
        m.fit(sampler="nutpie", draws=10, tune=10, chains=1)
    with pytest.raises(ValueError, match="unknown sampler"):
        m.fit(sampler="gibbs")


def test_a_misspelled_sampler_option_is_named_before_compiling():
    sim = two_groups(n_per_group=20, seed=0)
    m = groupcov.GroupCovModel(sim.data, features=sim.features)
    with pytest.raises(TypeError, match=r"'targetaccept' for the numpyro sampler \(did you "
                                        r"mean 'target_accept'\?\)"):
        m.fit(draws=10, tune=10, chains=1, targetaccept=0.9)
    with pytest.raises(TypeError, match=r"'max_treedepth' .*did you mean 'max_tree_depth'"):
        m.fit(draws=10, tune=10, chains=1, max_treedepth=5)


def test_parameterizations_give_the_same_posterior():
    # "auto" changes only the coordinates the sampler sees, not the model: its
    # posterior must match the plain non-centered form within Monte Carlo error
    sim = simulate_groups(6, [3, 5, 8, 8, 20, 40], 2, seed=8)
    fits = {
        param: groupcov.GroupCovModel(sim.data, features=sim.features,
                                      parameterization=param).fit(
            draws=1000, tune=1000, random_seed=4, progressbar=False)
        for param in ("auto", "noncentered")
    }
    names = ["mu", "sigma", "corr", "mu_tau", "sigma_pop", "sd_tau", "corr_tau"]
    post = {k: f.idata.posterior for k, f in fits.items()}
    mcse = {k: az.mcse(p[names]) for k, p in post.items()}
    for name in names:
        a = post["auto"][name].mean(("chain", "draw")).values
        b = post["noncentered"][name].mean(("chain", "draw")).values
        se = np.sqrt(mcse["auto"][name].values ** 2 + mcse["noncentered"][name].values ** 2)
        se = np.nan_to_num(se)  # constant diagonal of corr: no Monte Carlo error
        assert np.all(np.abs(a - b) <= 5 * se + 1e-9), name


def test_default_model_samples_with_nutpie():
    # every sampler must accept the default (whitened) model: its support points,
    # custom distributions and data containers
    sim = simulate_groups(4, 200, 2, seed=5)
    m = groupcov.GroupCovModel(sim.data, features=sim.features)
    res = m.fit(sampler="nutpie", draws=200, tune=200, chains=2, random_seed=2,
                progressbar=False)
    post = res.idata.posterior
    assert post.attrs["sampler"] == "nutpie"
    assert {"mu", "cov", "mu_tau", "sd_tau", "corr_tau"} <= set(post)
    # the statistics fit's own checks read, under the names the NumPyro path uses
    assert {"lp", "diverging", "n_steps"} <= set(res.sample_stats)
    # 200 rows per group: posterior means near the sample means
    sample = groupcov.reduce(sim.data, "group", sim.features)
    np.testing.assert_allclose(post["mu"].mean(("chain", "draw")).values, sample.mean,
                               atol=0.15)
