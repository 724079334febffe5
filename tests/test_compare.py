"""PSIS-LOO by row in bounded memory, and the comparison of pooling choices."""

import tracemalloc
import warnings

import arviz as az
import numpy as np
import pandas as pd
import pytest

import groupcov
from groupcov.classify import row_log_likelihood
from groupcov.comparison import compare, loo_rows, relative_efficiency
from groupcov.datasets import two_groups
from groupcov.result import GroupCovResult
from groupcov.stats import SufficientStats


def fake_result(chains=2, draws=100, p=2, seed=0):
    """Posterior draws near the truth of groups a, b (no sampling)."""
    rng = np.random.default_rng(seed)
    feats = [f"x{j}" for j in range(p)]
    mu = np.array([np.zeros(p), np.ones(p)]) + 0.05 * rng.normal(size=(chains, draws, 2, p))
    a = rng.normal(size=(chains, draws, 2, p, 50))
    cov = a @ np.swapaxes(a, -1, -2) / 50
    idata = az.from_dict(
        posterior={"mu": mu, "cov": cov},
        coords={"group": ["a", "b"], "feature": feats, "feature_": feats},
        dims={"mu": ["group", "feature"], "cov": ["group", "feature", "feature_"]},
    )
    stats = SufficientStats(("a", "b"), tuple(feats), np.array([1, 1]), np.zeros((2, p)),
                            np.zeros((2, p, p)))
    return GroupCovResult(idata, stats, {"means": "unpooled", "covariance": "unpooled"})


def rows(n, p=2, seed=1):
    rng = np.random.default_rng(seed)
    group = np.where(rng.random(n) < 0.5, "a", "b")
    x = rng.normal(size=(n, p)) + (group == "b")[:, None]
    return pd.DataFrame(x, columns=[f"x{j}" for j in range(p)]).assign(g=group)


# the fake draws are not a posterior of these rows: large Pareto k are expected
@pytest.mark.filterwarnings("ignore:Estimated shape parameter")
@pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame.sort_values")
def test_chunked_row_loo_equals_arviz_on_the_full_array():
    res = fake_result()
    data = rows(300)
    data.loc[5, "x1"] = np.nan  # observed-block density
    data.loc[7, ["x0", "x1"]] = np.nan  # no information: left out
    ll = row_log_likelihood(res, data.drop(index=7), group="g")
    idata = az.InferenceData(posterior=res.idata.posterior,
                             log_likelihood=ll.to_dataset(name="obs"))
    reff = relative_efficiency(res)
    expect = az.loo(idata, pointwise=True, reff=reff)
    got = loo_rows(res, data, group="g", max_bytes=20_000)  # chunks of a few rows
    assert got["n_data_points"] == 299 and got["n_samples"] == 200
    for key in ("elpd_loo", "se", "p_loo"):
        assert got[key] == pytest.approx(expect[key], rel=1e-10)
    np.testing.assert_allclose(got["loo_i"].values, expect["loo_i"].values, rtol=1e-10)
    np.testing.assert_allclose(got["pareto_k"].values, expect["pareto_k"].values, rtol=1e-8)
    assert list(got["loo_i"]["row"].values) == list(data.index.drop(7))
    # arviz's own relative efficiency, and a table that arviz.compare accepts
    assert az.loo(idata)["elpd_loo"] == pytest.approx(got["elpd_loo"], rel=1e-10)
    table = az.compare({"m1": got, "m2": expect})
    assert table.loc["m2", "elpd_diff"] == pytest.approx(0.0, abs=1e-8)


@pytest.mark.filterwarnings("ignore:Estimated shape parameter")
def test_row_loo_memory_stays_bounded():
    # 10,000 rows x 1,000 draws: 80 MB as one float64 array (PSIS copies it several times)
    res = fake_result(chains=2, draws=500, seed=2)
    data = rows(10_000, seed=3)
    budget = 4 * 2**20
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        out = loo_rows(res, data, group="g", max_bytes=budget, reff=1.0)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert out["n_data_points"] == 10_000 and np.isfinite(out["elpd_loo"])
    assert peak < budget, f"peak {peak / 2**20:.1f} MiB for a {budget / 2**20:.0f} MiB bound"


def test_bad_candidates_and_inputs():
    sim = two_groups(n_per_group=20, seed=0)
    with pytest.raises(ValueError, match="must be one of"):
        compare(sim.data, candidates=[("hierarchical", "shared"), ("pooled", "pooled")])
    with pytest.raises(ValueError, match="at least two distinct"):
        compare(sim.data, candidates=[("pooled", "pooled")])
    # one word is both poolings: here the same candidate twice
    with pytest.raises(ValueError, match=r"at least two distinct.*\('pooled', 'pooled'\)"):
        compare(sim.data, candidates=["pooled", ("pooled", "pooled")])
    with pytest.raises(ValueError, match="or one of"):
        compare(sim.data, candidates=["shared", "pooled"])
    with pytest.raises(ValueError, match="pointwise"):
        compare(sim.data, pointwise="cell")
    with pytest.raises(TypeError, match="pointwise='group'"):
        compare(groupcov.reduce(sim.data, "group", ["x", "y"]))


@pytest.fixture(scope="module")
def compared():
    sim = two_groups(n_per_group=200, seed=11)
    table, fits = compare(
        sim.data, group="group", features=["x", "y"],
        candidates=[("hierarchical", "hierarchical"), ("pooled", "pooled")],
        draws=300, tune=300, chains=2, random_seed=4, return_fits=True,
    )
    return sim, table, fits


def test_compare_ranks_pooling_choices_by_row_loo(compared):
    sim, table, fits = compared
    best, worst = "means=hierarchical, covariance=hierarchical", "means=pooled, covariance=pooled"
    assert list(table.index) == [best, worst]
    assert {"rank", "elpd_loo", "p_loo", "elpd_diff", "weight", "se", "dse"} <= set(table)
    # the two groups differ in mean and covariance: one shared normal fits far worse
    assert table.loc[worst, "elpd_diff"] > 5 * table.loc[worst, "dse"]
    # the table's numbers are row-level LOO of each fit
    for name, fit in fits.items():
        ll = row_log_likelihood(fit, sim.data)
        idata = az.InferenceData(posterior=fit.idata.posterior,
                                 log_likelihood=ll.to_dataset(name="obs"))
        assert table.loc[name, "elpd_loo"] == pytest.approx(az.loo(idata)["elpd_loo"], rel=1e-8)
    # about 6 effective parameters for the 2 x (2 means + 3 covariance entries) model
    assert 6 < table.loc[best, "p_loo"] < 14


def test_compare_by_group(compared):
    sim, _, fits = compared
    table = compare(
        sim.data, candidates=[("hierarchical", "hierarchical"), ("pooled", "pooled")],
        pointwise="group", draws=300, tune=300, chains=2, random_seed=4,
    )
    name = "means=hierarchical, covariance=hierarchical"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expect = az.loo(fits[name].idata)["elpd_loo"]
    assert table.loc[name, "elpd_loo"] == pytest.approx(expect, rel=1e-8)


def test_compare_warnings_name_their_candidate():
    sim = two_groups(n_per_group=30, seed=2)
    with pytest.warns(UserWarning) as caught:
        compare(sim.data, candidates=["pooled", "unpooled"], draws=20, tune=20, chains=1,
                random_seed=1)
    messages = [str(w.message) for w in caught]
    assert messages, "20 draws of one chain give warnings"
    assert all(m.startswith("candidate means=") for m in messages), messages
    pareto = [m for m in messages if "Pareto" in m]
    assert all(" of 60 rows" in m for m in pareto), pareto
