"""Missing feature values: exact marginal likelihood, recovery, refits on new data."""

import warnings

import arviz as az
import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

import groupcov
from groupcov import inference
from groupcov.api import MissingValuesWarning
from groupcov.data import reduce
from groupcov.datasets import two_groups
from groupcov.result import group_log_likelihood


def _holes(df, features, fraction, seed, empty_rows=0):
    """Hide a fraction of the entries completely at random (and blank some rows)."""
    rng = np.random.default_rng(seed)
    df = df.copy()
    for f in features:
        df.loc[rng.random(len(df)) < fraction, f] = np.nan
    if empty_rows:
        df.loc[df.index[:empty_rows], features] = np.nan
    return df


def _rows_logpdf(df, group, features, mu, cov):
    """Brute force: sum of scipy log densities of each row's observed entries."""
    groups = sorted(df[group].unique())
    total = np.zeros(len(groups))
    for i, g in enumerate(groups):
        rows = df.loc[df[group] == g, features].to_numpy()
        for x in rows:
            obs = ~np.isnan(x)
            if obs.any():
                total[i] += sps.multivariate_normal(
                    mu[i][obs], cov[i][np.ix_(obs, obs)]
                ).logpdf(x[obs])
    return total


@pytest.fixture(scope="module")
def holey():
    rng = np.random.default_rng(7)
    features = ["a", "b", "c"]
    df = pd.DataFrame(rng.normal(size=(60, 3)) * [1.0, 2.0, 0.5] + [0.0, 5.0, 1e3],
                      columns=features)
    df["g"] = rng.choice(["u", "v", "w"], size=len(df))
    return _holes(df, features, 0.3, seed=1, empty_rows=2), features


def test_statistics_count_every_row(holey):
    df, features = holey
    st = reduce(df, "g", features)
    assert st.n_rows + st.n_empty_rows == len(df)
    assert st.n_empty_rows == int(df[features].isna().all(axis=1).sum()) >= 2
    # every feature's observed count is preserved
    count, _, _ = st.available()
    assert count.sum(axis=0).tolist() == df[features].notna().sum().tolist()


def test_marginal_likelihood_matches_scipy_rows(holey):
    df, features = holey
    st = reduce(df, "g", features)
    rng = np.random.default_rng(3)
    mu = rng.normal(size=(3, 3)) + np.array([0.0, 5.0, 1e3])
    a = rng.normal(size=(3, 3, 3))
    cov = a @ np.swapaxes(a, -1, -2) + np.eye(3)
    got = group_log_likelihood(st, mu, cov)
    np.testing.assert_allclose(got, _rows_logpdf(df, "g", features, mu, cov), rtol=1e-9)


def test_posterior_log_likelihood_in_jax_equals_numpy(holey):
    """The per-draw log-likelihood of a fit (one compiled JAX function, chunks of
    draws on threads, covariance rebuilt from sigma and corr) equals the NumPy one."""
    import xarray as xr

    from groupcov.result import _posterior_log_likelihood

    df, features = holey
    st = reduce(df, "g", features)
    rng = np.random.default_rng(4)
    chains, draws, g, p = 2, 7, st.n_groups, st.n_features
    mu = rng.normal(size=(chains, draws, g, p))
    a = rng.normal(size=(chains, draws, g, p, p))
    cov = a @ np.swapaxes(a, -1, -2) + 0.1 * np.eye(p)
    sigma = np.sqrt(np.einsum("...ii->...i", cov))
    dims = ("chain", "draw", "group", "feature")
    post = xr.Dataset({
        "mu": (dims, mu),
        "sigma": (dims, sigma),
        "corr": ((*dims, "feature_"), cov / sigma[..., :, None] / sigma[..., None, :]),
    })
    want = group_log_likelihood(st, mu, cov)
    for max_bytes in (1e9, 1.0):  # one chunk per chain; one draw per chunk
        got = _posterior_log_likelihood(st, post, max_bytes=max_bytes)
        np.testing.assert_allclose(got, want, rtol=1e-10)
    post_cov = xr.Dataset({"mu": (dims, mu), "cov": ((*dims, "feature_"), cov)})
    np.testing.assert_allclose(_posterior_log_likelihood(st, post_cov), want, rtol=1e-10)


@pytest.mark.parametrize("means,covariance", [("hierarchical", "hierarchical"),
                                              ("pooled", "unpooled")])
def test_model_likelihood_matches_scipy_rows(holey, means, covariance):
    """The PyMC model's likelihood terms equal the row-wise scipy oracle.

    The model works on the standardized scale, so its likelihood differs from the
    data-unit one by the Jacobian ``sum over observed entries of log scale_j``.
    """
    df, features = holey
    with pytest.warns(MissingValuesWarning, match="nothing is dropped"):
        m = groupcov.GroupCovModel(df, group="g", features=features, means=means,
                                   covariance=covariance)
    model = m.model
    point = model.initial_point()
    rng = np.random.default_rng(0)
    point = {k: v + rng.normal(scale=0.3, size=np.shape(v)) for k, v in point.items()}
    total = model.compile_logp()(point)
    prior = model.compile_logp(vars=model.free_RVs)(point)
    mu, cov = model.compile_fn(
        model.replace_rvs_by_values([model["mu"], model["cov"]]), inputs=model.value_vars,
        on_unused_input="ignore",
    )(point)
    scale = m.standardization.scale
    jacobian = (df[features].notna().to_numpy() * np.log(scale)).sum()
    oracle = _rows_logpdf(df, "g", features, mu, cov).sum() + jacobian
    np.testing.assert_allclose(total - prior, oracle, rtol=1e-9)


def test_missing_values_recovery_and_wider_intervals():
    sim = two_groups()
    full = groupcov.GroupCovModel(sim.data, group="group", features=sim.features)
    holey = _holes(sim.data, sim.features, 0.2, seed=11)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MissingValuesWarning)
        part = groupcov.GroupCovModel(holey, group="group", features=sim.features)
    widths = []
    for model in (full, part):
        res = model.fit(draws=1000, tune=600, random_seed=5, progressbar=False)
        hdi = az.hdi(res.idata.posterior[["mu", "cov"]], hdi_prob=0.94)
        for g in ("A", "B"):
            low, high = hdi["mu"].sel(group=g).values.T
            assert np.all((low <= sim.mean[g]) & (sim.mean[g] <= high))
            low, high = np.moveaxis(hdi["cov"].sel(group=g).values, -1, 0)
            assert np.all((low <= sim.cov[g]) & (sim.cov[g] <= high))
        widths.append(float((hdi["cov"].sel(hdi="higher") - hdi["cov"].sel(hdi="lower")).mean()
                            + (hdi["mu"].sel(hdi="higher") - hdi["mu"].sel(hdi="lower")).mean()))
        assert res.diagnostics().max_r_hat <= 1.01
    assert widths[1] > 1.05 * widths[0]


def test_set_data_equals_a_fresh_model():
    a = two_groups(n_per_group=40, seed=1)
    b = two_groups(n_per_group=40, seed=2)
    b.data["x"] *= 3.0  # a different standardization too
    m = groupcov.GroupCovModel(a.data, group="group", features=a.features)
    m.set_data(b.data)
    fresh = groupcov.GroupCovModel(b.data, group="group", features=b.features)
    rng = np.random.default_rng(0)
    logp_m, logp_f = m.model.compile_logp(), fresh.model.compile_logp()
    outs = ["mu", "cov"]
    fn_m, fn_f = (
        mod.compile_fn(mod.replace_rvs_by_values([mod[o] for o in outs]),
                       inputs=mod.value_vars, on_unused_input="ignore")
        for mod in (m.model, fresh.model)
    )
    for _ in range(3):
        point = {k: v + rng.normal(size=np.shape(v))
                 for k, v in fresh.model.initial_point().items()}
        np.testing.assert_allclose(logp_m(point), logp_f(point), rtol=1e-12)
        for x, y in zip(fn_m(point), fn_f(point), strict=True):
            np.testing.assert_allclose(x, y, rtol=1e-12)
    np.testing.assert_allclose(m.standardization.scale, fresh.standardization.scale)


def test_refit_reuses_the_compiled_sampler():
    a = two_groups(n_per_group=50, seed=1)
    b = two_groups(n_per_group=50, seed=2)
    m = groupcov.GroupCovModel(a.data, group="group", features=a.features)
    kw = dict(draws=100, tune=100, chains=2, random_seed=1, progressbar=False)
    first = m.fit(**kw)
    programs = dict(inference._PROGRAMS)
    m.set_data(b.data)
    second = m.fit(**kw)
    assert inference._PROGRAMS == programs  # nothing new was compiled
    # the second fit used the new data: its group means follow them
    for res, sim in ((first, a), (second, b)):
        sample = sim.data.groupby("group")[sim.features].mean().to_numpy()
        np.testing.assert_allclose(res.idata.posterior["mu"].mean(("chain", "draw")), sample,
                                   atol=0.2)
    assert not np.allclose(first.idata.posterior["mu"].mean(), second.idata.posterior["mu"].mean())


def test_saved_program_serves_a_new_process(monkeypatch):
    """A cached program is used without building the PyMC model, with identical draws."""
    sim = two_groups(n_per_group=50, seed=3)
    kw = dict(draws=100, tune=100, chains=2, random_seed=4, progressbar=False)
    first = groupcov.GroupCovModel(sim.data, group="group", features=sim.features).fit(**kw)
    monkeypatch.setattr(inference, "_PROGRAMS", {})  # as in a fresh process
    again = groupcov.GroupCovModel(sim.data, group="group", features=sim.features)

    def no_build():
        raise AssertionError("the model was built although a saved program exists")

    monkeypatch.setattr(again, "_built_model", no_build)
    second = again.fit(**kw)
    for name in ("mu", "cov"):
        np.testing.assert_array_equal(first.idata.posterior[name].values,
                                      second.idata.posterior[name].values)
    assert list(second.idata.posterior["mu"].dims) == ["chain", "draw", "group", "feature"]


def test_exposed_model_is_sampled_as_extended():
    """Accessing .model opts out of cached programs: additions to the model count."""
    import pymc as pm

    sim = two_groups(n_per_group=40, seed=5)
    m = groupcov.GroupCovModel(sim.data, group="group", features=sim.features)
    with m.model:
        pm.Deterministic("mu_diff", m.model["mu"][1] - m.model["mu"][0], dims="feature")
    res = m.fit(draws=100, tune=100, chains=2, random_seed=1, progressbar=False)
    post = res.idata.posterior
    np.testing.assert_allclose(post["mu_diff"].values,
                               post["mu"].values[:, :, 1] - post["mu"].values[:, :, 0])


def test_set_data_refuses_other_groups():
    a = two_groups(n_per_group=30, seed=1)
    m = groupcov.GroupCovModel(a.data, group="group", features=a.features)
    other = a.data.assign(group=a.data["group"].replace({"B": "C"}))
    with pytest.raises(ValueError, match="build a new model"):
        m.set_data(other)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MissingValuesWarning)
        with pytest.raises(ValueError, match="missing values appeared"):
            m.set_data(_holes(a.data, a.features, 0.2, seed=0))


@pytest.mark.parametrize("p", [1, 3, 12])
def test_jax_log_likelihood_unrolled_or_not_equals_numpy(p):
    """Both JAX branches (unrolled for few features, LAPACK beyond) match NumPy."""
    import jax
    import jax.numpy as jnp

    rng = np.random.default_rng(p)
    df = pd.DataFrame(rng.normal(size=(80, p)), columns=[f"f{j}" for j in range(p)])
    df["g"] = rng.choice(["a", "b"], size=len(df))
    st = reduce(df, "g", [f"f{j}" for j in range(p)])
    mu = rng.normal(size=(4, 2, p))
    a = rng.normal(size=(4, 2, p, p))
    cov = a @ np.swapaxes(a, -1, -2) + np.eye(p)
    jax.config.update("jax_enable_x64", True)
    got = jax.jit(lambda m, c: group_log_likelihood(st, m, c, xp=jnp))(mu, cov)
    np.testing.assert_allclose(np.asarray(got), group_log_likelihood(st, mu, cov), rtol=1e-10)


def test_a_feature_a_group_never_observes_is_named():
    rng = np.random.default_rng(4)
    df = pd.DataFrame(rng.normal(size=(150, 3)), columns=list("xyz"))
    df["g"] = np.repeat(["A", "B", "C"], 50)
    df.loc[df.g == "C", "z"] = np.nan
    # in group B, x and y are never observed in the same row
    df.loc[(df.g == "B") & (np.arange(150) % 2 == 0), "x"] = np.nan
    df.loc[(df.g == "B") & (np.arange(150) % 2 == 1), "y"] = np.nan
    with pytest.warns(MissingValuesWarning) as record:
        groupcov.GroupCovModel(df, group="g", features=list("xyz"))
    (message,) = [str(w.message) for w in record if w.category is MissingValuesWarning]
    assert "group 'C' has no observed value of z: its z mean, sd and correlations" in message
    assert "group 'B' never observes x-y in the same row" in message
    assert "group 'A'" not in message
    from groupcov.api import never_observed

    complete = groupcov.reduce(df.dropna(), "g", list("xyz"))
    assert never_observed(complete) == []
