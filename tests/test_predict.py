"""Posterior predictive rows, new groups, conditional normals and imputation."""

import arviz as az
import numpy as np
import pandas as pd
import pytensor.tensor as pt
import pytest

import groupcov
from groupcov.datasets import _cpc_to_chol, two_groups
from groupcov.distributions.lkj import corr_cholesky_from_unconstrained
from groupcov.predict import (
    conditional,
    corr_cholesky_from_cpc,
    group_parameters,
    impute,
    predict,
)
from groupcov.result import GroupCovResult
from groupcov.stats import SufficientStats


def fake_result(p=3, chains=2, draws=50, seed=0, spec=("unpooled", "unpooled"), hyper=None):
    """Random per-group posteriors of groups a, b (no sampling), plus given hyper draws."""
    rng = np.random.default_rng(seed)
    feats = [f"x{j}" for j in range(p)]
    mu = rng.normal(0.0, 1.0, (chains, draws, 2, p))
    a = rng.normal(size=(chains, draws, 2, p, p + 3))
    cov = a @ np.swapaxes(a, -1, -2) / (p + 3) + 0.2 * np.eye(p)
    post = {"mu": mu, "cov": cov}
    dims = {"mu": ["group", "feature"], "cov": ["group", "feature", "feature_"]}
    hyper_dims = {"mu_pop": ["feature"], "mu_tau": ["feature"], "sigma_pop": ["feature"],
                  "sd_tau": ["feature"], "atanh_cpc_pop": ["pair"], "corr_tau": []}
    for name, value in (hyper or {}).items():
        shape = (chains, draws, *np.shape(value))
        post[name] = np.broadcast_to(value, shape).copy()
        dims[name] = hyper_dims[name]
    idata = az.from_dict(
        posterior=post,
        coords={"group": ["a", "b"], "feature": feats, "feature_": feats,
                "pair": [f"pair{k}" for k in range(p * (p - 1) // 2)]},
        dims=dims,
    )
    stats = SufficientStats(("a", "b"), tuple(feats), np.array([10, 10]), np.zeros((2, p)),
                            np.repeat(np.eye(p)[None], 2, 0))
    return GroupCovResult(idata, stats, {"means": spec[0], "covariance": spec[1]})


@pytest.fixture(scope="module")
def fit():
    sim = two_groups(n_per_group=200, seed=11)
    model = groupcov.GroupCovModel(sim.data, group="group", features=sim.features)
    return model.fit(draws=300, tune=300, chains=2, random_seed=4, progressbar=False)


def test_known_group_draws_have_the_posterior_mean_covariance(fit):
    n = 40
    pp = predict(fit, "B", n=n, random_seed=1).posterior_predictive
    rows = pp["obs"]
    assert rows.dims == ("chain", "draw", "row", "feature")
    assert list(rows["feature"].values) == ["x", "y"]
    assert pp.attrs["new_group"] == 0
    x = rows.values.reshape(-1, n, 2)
    cov = fit.idata.posterior["cov"].sel(group="B").values.reshape(-1, 2, 2)
    mu = fit.idata.posterior["mu"].sel(group="B").values.reshape(-1, 2)
    # per draw, the sample covariance of its rows is unbiased for that draw's covariance
    dev = x - x.mean(axis=1, keepdims=True)
    sample_cov = np.einsum("sni,snj->sij", dev, dev) / (n - 1)
    err = sample_cov - cov
    mcse = err.std(axis=0, ddof=1) / np.sqrt(err.shape[0])
    assert np.all(np.abs(err.mean(axis=0)) < 4 * mcse)
    np.testing.assert_allclose(
        sample_cov.mean(axis=0), fit.covariance("B").values, atol=float(4 * mcse.max())
    )
    # rows pooled over draws: E[cov] + Cov(mu), mean E[mu]
    flat = x.reshape(-1, 2)
    total = cov.mean(axis=0) + np.cov(mu.T)
    np.testing.assert_allclose(np.cov(flat.T), total, atol=0.06)
    np.testing.assert_allclose(flat.mean(axis=0), mu.mean(axis=0), atol=0.03)


def test_new_group_under_hierarchical_fit(fit):
    post = fit.idata.posterior
    # the stored population CPCs rebuild the model's population correlation exactly
    chol = corr_cholesky_from_cpc(np.tanh(post["atanh_cpc_pop"].values), 2)
    np.testing.assert_allclose(chol @ np.swapaxes(chol, -1, -2), post["corr_pop"].values,
                               atol=1e-12)
    new = predict(fit, "C", n=5, random_seed=2, new_group=True).posterior_predictive
    assert new.attrs == {"group": "C", "new_group": 1}
    mu_new = new["mu"].values
    # a new group's mean scatters around mu_pop by mu_tau
    z = (mu_new - post["mu_pop"].values) / post["mu_tau"].values
    assert abs(z.mean()) < 0.15 and abs(z.std() - 1) < 0.1
    assert np.all(np.linalg.eigvalsh(new["cov"].values) > 0)
    again = predict(fit, "C", n=5, random_seed=2, new_group=True).posterior_predictive
    np.testing.assert_array_equal(again["obs"].values, new["obs"].values)


def test_new_group_draws_follow_the_population():
    p = 3
    w = np.array([0.4, -0.3, 0.8])
    hyper = {"mu_pop": np.array([1.0, -2.0, 0.5]), "mu_tau": np.array([0.5, 1.0, 2.0]),
             "sigma_pop": np.array([1.0, 2.0, 3.0]), "sd_tau": np.array([0.2, 0.0, 0.4]),
             "atanh_cpc_pop": w, "corr_tau": 0.3}
    res = fake_result(p=p, chains=2, draws=2000, spec=("hierarchical", "hierarchical"),
                      hyper=hyper)
    params = group_parameters(res, "new", random_seed=0, new_group=True)
    assert params.new
    mu = params.mu.reshape(-1, p)
    np.testing.assert_allclose(mu.mean(0), hyper["mu_pop"], atol=4 * 2 / np.sqrt(4000))
    np.testing.assert_allclose(mu.std(0), hyper["mu_tau"], rtol=0.05)
    sd = np.sqrt(np.diagonal(params.cov, axis1=-2, axis2=-1)).reshape(-1, p)
    np.testing.assert_allclose(np.log(sd).mean(0), np.log(hyper["sigma_pop"]), atol=0.03)
    np.testing.assert_allclose(np.log(sd).std(0), hyper["sd_tau"], atol=0.02)
    # the first column of CPCs is the correlation with feature 0 itself
    corr = params.cov / (sd.reshape(2, -1, p)[..., :, None] * sd.reshape(2, -1, p)[..., None, :])
    atanh_first = np.arctanh(corr.reshape(-1, p, p)[:, [1, 2], [0, 0]])
    np.testing.assert_allclose(atanh_first.mean(0), w[:2], atol=0.03)
    np.testing.assert_allclose(atanh_first.std(0), 0.3, rtol=0.06)
    # with no spread around the population, the new group is the population
    still = fake_result(p=p, spec=("hierarchical", "hierarchical"),
                        hyper={**hyper, "mu_tau": np.zeros(p), "sd_tau": np.zeros(p),
                               "corr_tau": 0.0})
    params = group_parameters(still, "new", random_seed=0, new_group=True)
    ref = _cpc_to_chol(np.tanh(w), p)
    ref = np.diag(hyper["sigma_pop"]) @ ref @ ref.T @ np.diag(hyper["sigma_pop"])
    np.testing.assert_allclose(params.cov, np.broadcast_to(ref, params.cov.shape), atol=1e-12)
    np.testing.assert_allclose(params.mu[0, 0], hyper["mu_pop"])


def test_cpc_construction_matches_the_model():
    rng = np.random.default_rng(3)
    w = rng.normal(0.0, 1.0, (4, 10))
    mine = corr_cholesky_from_cpc(np.tanh(w), 5)
    model = corr_cholesky_from_unconstrained(pt.as_tensor(w), 5).eval()
    np.testing.assert_allclose(mine, model, atol=1e-12)


def test_new_group_under_pooled_and_unpooled_modes():
    pooled = fake_result(spec=("pooled", "pooled"))
    params = group_parameters(pooled, "zz", new_group=True)
    post = pooled.idata.posterior
    np.testing.assert_array_equal(params.mu, post["mu"].isel(group=0).values)
    np.testing.assert_array_equal(params.cov, post["cov"].isel(group=0).values)
    for spec, arg in ((("unpooled", "pooled"), "means"), (("pooled", "unpooled"), "covariance")):
        with pytest.raises(ValueError, match=f"{arg}='unpooled'.*new group"):
            predict(fake_result(spec=spec), "zz", new_group=True)
    with pytest.raises(KeyError, match="mu_pop"):
        group_parameters(fake_result(spec=("hierarchical", "pooled")), "zz", new_group=True)
    with pytest.raises(ValueError, match="at least 1"):
        predict(pooled, "a", n=0)


def _conditional_oracle(mu, cov, a, b, x_a):
    """Textbook formula with an explicit inverse (fine for a test oracle)."""
    gain = cov[np.ix_(b, a)] @ np.linalg.inv(cov[np.ix_(a, a)])
    return mu[b] + gain @ (x_a - mu[a]), cov[np.ix_(b, b)] - gain @ cov[np.ix_(a, b)]


def test_conditional_matches_the_textbook_formula():
    res = fake_result(p=3, draws=30)
    out = conditional(res, "b", given={"x2": 0.7, "x0": -1.0}, random_seed=1)
    assert out.draws["mean"].dims == ("chain", "draw", "feature")
    assert list(out.draws["feature"].values) == ["x1"]
    post = res.idata.posterior.sel(group="b")
    for c in range(2):
        for d in range(30):
            m, v = _conditional_oracle(post["mu"].values[c, d], post["cov"].values[c, d],
                                       np.array([0, 2]), np.array([1]), np.array([-1.0, 0.7]))
            np.testing.assert_allclose(out.draws["mean"].values[c, d], m, rtol=1e-10)
            np.testing.assert_allclose(out.draws["cov"].values[c, d], v, rtol=1e-10)
    means = out.draws["mean"].values.ravel()
    row = out.summary.iloc[0]
    assert row["feature"] == "x1"
    assert row["mean"] == pytest.approx(means.mean())
    var = out.draws["cov"].values.ravel().mean() + means.var()
    assert row["sd"] == pytest.approx(np.sqrt(var))
    assert row["hdi_low"] < row["mean"] < row["hdi_high"]
    with pytest.raises(KeyError, match="unknown feature"):
        conditional(res, "b", given={"nope": 1.0})
    with pytest.raises(ValueError, match="every feature"):
        conditional(res, "b", given={"x0": 1.0, "x1": 1.0, "x2": 1.0})


def test_conditional_on_fit(fit):
    out = conditional(fit, "B", given={"x": 1.2}, random_seed=0)
    cov, mu = fit.covariance("B"), fit.mean("B")
    plug_in = mu["y"] + cov.loc["y", "x"] / cov.loc["x", "x"] * (1.2 - mu["x"])
    assert out.summary["mean"].iloc[0] == pytest.approx(plug_in, abs=0.03)
    # the truth: y | x = 1.2 in N((1, -1), [[1, -.5], [-.5, 1]]) has mean -1.1, sd sqrt(.75)
    assert out.summary["mean"].iloc[0] == pytest.approx(-1.1, abs=0.15)
    assert out.summary["sd"].iloc[0] == pytest.approx(np.sqrt(0.75), abs=0.1)


def test_impute_fills_missing_entries_with_conditional_means():
    res = fake_result(p=3, draws=40)
    frame = pd.DataFrame(
        {"g": ["a", "b", "b", "a"], "x0": [0.1, np.nan, 1.0, np.nan],
         "x1": [np.nan, np.nan, 2.0, np.nan], "x2": [0.4, 0.5, 3.0, np.nan]},
        index=[10, 11, 12, 13],
    )
    out = impute(res, frame, group="g", prob=0.9, random_seed=0, max_bytes=1)
    assert list(out.index) == [10, 11, 12, 13]
    assert not out[["x0", "x1", "x2"]].isna().any().any()
    pd.testing.assert_frame_equal(out.loc[[12], frame.columns], frame.loc[[12]])
    assert (out.loc[12, ["x0_low", "x0_high"]] == 1.0).all()
    post = res.idata.posterior
    for idx, g, a, b in ((10, "a", [0, 2], [1]), (11, "b", [2], [0, 1]), (13, "a", [], [0, 1, 2])):
        mu = post["mu"].sel(group=g).values.reshape(-1, 3)
        cov = post["cov"].sel(group=g).values.reshape(-1, 3, 3)
        x_a = frame.loc[idx, ["x0", "x1", "x2"]].to_numpy(float)[a]
        expect = np.mean(
            [_conditional_oracle(m, c, np.array(a, int), np.array(b), x_a)[0]
             for m, c in zip(mu, cov, strict=True)], axis=0,
        ) if a else mu.mean(0)
        np.testing.assert_allclose(out.loc[idx, [f"x{j}" for j in b]].to_numpy(float), expect)
        for j in b:
            assert out.loc[idx, f"x{j}_low"] < out.loc[idx, f"x{j}"] < out.loc[idx, f"x{j}_high"]
    with pytest.raises(KeyError, match="does not know"):
        impute(res, frame.assign(g="c"), group="g")
    with pytest.raises(ValueError, match="prob"):
        impute(res, frame, group="g", prob=1.5)


def test_result_methods_delegate(fit):
    pp = fit.predict("A", n=3, random_seed=0)
    assert pp.posterior_predictive["obs"].shape[2:] == (3, 2)
    probs = fit.classify(pd.DataFrame({"x": [1.0, 0.0], "y": [-1.0, np.nan]}))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    assert probs.loc[0, "B"] > 0.5
    assert isinstance(fit.conditional("A", given={"y": 0.0}).summary, pd.DataFrame)
    filled = fit.impute(pd.DataFrame({"group": ["A"], "x": [np.nan], "y": [0.0]}))
    assert np.isfinite(filled.loc[0, "x"])


def test_an_unknown_label_is_an_error_unless_a_new_group_is_asked_for():
    res = fake_result(spec=("pooled", "pooled"))
    with pytest.raises(KeyError, match=r"unknown group 'bb'; the fit's groups are a, b; "
                                       r"pass new_group=True"):
        predict(res, "bb")
    with pytest.raises(KeyError, match="unknown group 'bb'"):
        conditional(res, "bb", given={"x0": 1.0})
    with pytest.raises(ValueError, match="'a' is a group of the fit; new_group=True"):
        group_parameters(res, "a", new_group=True)
    assert not group_parameters(res, np.str_("a")).new  # a NumPy label is the same group
    assert group_parameters(res, "bb", new_group=True).new
    assert predict(res, "bb", n=1, new_group=True).posterior_predictive.attrs == {
        "group": "bb", "new_group": 1}


def test_groups_are_plain_python_values():
    res = fake_result()
    assert res.groups == ["a", "b"] and all(type(g) is str for g in res.groups)


def test_row_methods_default_to_the_fitted_group_column(fit, tmp_path):
    sim = two_groups(n_per_group=60, seed=3)
    data = sim.data.rename(columns={"group": "species"})
    res = groupcov.GroupCovModel(data, group="species", features=sim.features).fit(
        draws=60, tune=60, chains=1, random_seed=0, progressbar=False
    )
    assert res.group_column == "species"
    rows = pd.DataFrame({"species": ["A", "B"], "x": [np.nan, 1.0], "y": [0.0, -1.0]})
    filled = res.impute(rows)
    assert np.isfinite(filled.loc[0, "x"])
    assert res.log_likelihood_rows(rows).shape == (1, 60, 2)
    with pytest.raises(KeyError, match="'group'"):
        res.impute(rows, group="group")  # an explicit column still wins
    # kept by save and load
    loaded = type(res).load(res.save(tmp_path / "fit.nc"))
    assert loaded.group_column == "species"
    assert np.isfinite(loaded.impute(rows).loc[0, "x"])
    assert fit.group_column == "group"
