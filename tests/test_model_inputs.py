"""GroupCovModel: argument validation and the structure of the built PyMC model (no sampling)."""

import numpy as np
import pandas as pd
import pymc as pm
import pytest

from groupcov import DataError, GroupCovModel, Priors, reduce
from groupcov.datasets import simulate_groups


@pytest.fixture(scope="module")
def sim():
    return simulate_groups(3, np.array([12, 20, 7]), 3, seed=1)


def _one_group(n=15, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"group": "only", "x": rng.normal(size=n), "y": rng.normal(size=n)})


@pytest.mark.parametrize(
    ("means", "covariance"),
    [
        ("hierarchical", "hierarchical"),
        ("hierarchical", "pooled"),
        ("pooled", "hierarchical"),
        ("unpooled", "hierarchical"),
    ],
)
def test_hierarchical_needs_two_groups(means, covariance):
    with pytest.raises(DataError, match="at least two") as info:
        GroupCovModel(_one_group(), group="group", features=["x", "y"], means=means,
                      covariance=covariance)
    message = str(info.value)
    assert "groups" in message
    assert "'pooled' or 'unpooled'" in message
    assert "'only'" in message


@pytest.mark.parametrize(
    ("means", "covariance"),
    [("pooled", "unpooled"), ("pooled", "pooled"), ("unpooled", "unpooled")],
)
def test_one_group_builds_without_hierarchy(means, covariance):
    m = GroupCovModel(_one_group(), group="group", features=["x", "y"], means=means,
                      covariance=covariance)
    assert isinstance(m.model, pm.Model)
    assert tuple(m.model.coords["group"]) == ("only",)
    assert m.model["cov"].type.shape == (1, 2, 2)
    names = {v.name for v in m.model.free_RVs}
    assert not names & {"mu_tau_z", "sd_tau", "corr_tau"}


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"means": "partial"}, "means="),
        ({"means": "Hierarchical"}, "means="),
        ({"covariance": "shared"}, "covariance="),
        ({"covariance": None}, "covariance="),
        ({"parameterization": "centred"}, "parameterization="),
        ({"parameterization": "non-centered"}, "parameterization="),
    ],
)
def test_invalid_mode_strings(sim, kwargs, name):
    with pytest.raises(ValueError, match=name) as info:
        GroupCovModel(sim.data, group="group", **kwargs)
    assert repr(next(iter(kwargs.values()))) in str(info.value)


@pytest.mark.parametrize(
    ("means", "covariance"),
    [("hierarchical", "hierarchical"), ("pooled", "unpooled"), ("unpooled", "pooled")],
)
def test_one_feature_builds(sim, means, covariance):
    m = GroupCovModel(sim.data, group="group", features=["x1"], means=means,
                      covariance=covariance)
    cov = m.model["cov"]
    assert cov.type.ndim == 3
    assert cov.type.shape == (3, 1, 1)
    assert m.model["mu"].type.ndim == 2
    assert "pair" not in m.model.coords
    assert "corr_tau" not in {v.name for v in m.model.free_RVs}


def test_default_features_are_numeric_columns_except_group():
    rng = np.random.default_rng(2)
    n = 12
    df = pd.DataFrame({
        "a": rng.normal(size=n),
        "team": np.repeat([3, 7, 9], 4),  # numeric group column: must not become a feature
        "label": ["u"] * n,
        "b": rng.normal(size=n),
        "c": rng.integers(0, 10, size=n),
    })
    m = GroupCovModel(df, group="team")
    assert m.stats.features == ("a", "b", "c")
    assert tuple(m.model.coords["feature"]) == ("a", "b", "c")
    assert m.stats.groups == (3, 7, 9)


def test_default_features_need_a_numeric_column():
    df = pd.DataFrame({"group": ["a", "b"], "label": ["u", "v"]})
    with pytest.raises(DataError, match="no numeric feature columns"):
        GroupCovModel(df, group="group")


def test_sufficient_stats_input_uses_its_features(sim):
    st = reduce(sim.data, "group", ["x0", "x2"])
    m = GroupCovModel(st, group="group")
    assert m.stats is st
    assert tuple(m.model.coords["feature"]) == ("x0", "x2")


def test_priors_eta_accepted(sim):
    m = GroupCovModel(sim.data, group="group", priors={"eta": 4})
    assert m.priors.eta == 4.0
    assert m.priors.sd_tau_sigma == Priors().sd_tau_sigma
    m2 = GroupCovModel(sim.data, group="group", priors=Priors(eta=3.0, mu_sigma=1.5))
    assert (m2.priors.eta, m2.priors.mu_sigma) == (3.0, 1.5)


def test_unknown_prior_key_is_named(sim):
    with pytest.raises(ValueError, match="unknown prior") as info:
        GroupCovModel(sim.data, group="group", priors={"eta": 2.0, "etta": 3.0})
    assert "'etta'" in str(info.value)


@pytest.mark.parametrize(
    ("key", "value"),
    [("eta", 0), ("eta", -1.0), ("log_sd_sigma", 0.0), ("mu_sigma", -2.0),
     ("corr_tau_sigma", float("nan"))],
)
def test_non_positive_prior_rejected(sim, key, value):
    with pytest.raises(ValueError, match=key):
        GroupCovModel(sim.data, group="group", priors={key: value})


def test_priors_of_wrong_type_rejected(sim):
    with pytest.raises(TypeError):
        GroupCovModel(sim.data, group="group", priors=[("eta", 2.0)])
    for value, kind in (("2", "str"), ([1.0, 2.0], "list"), (True, "bool")):
        with pytest.raises(TypeError, match=rf"mu_sigma must be one positive number .*\({kind}\)"):
            GroupCovModel(sim.data, group="group", priors={"mu_sigma": value})
    with pytest.raises(ValueError, match="eta must be positive and finite, got inf"):
        GroupCovModel(sim.data, group="group", priors={"eta": np.inf})


def test_fixed_standardization_of_the_wrong_length_is_named(sim):
    p = len(sim.features)
    with pytest.raises(ValueError, match=rf"scale must be one number or one per feature \({p}"):
        GroupCovModel(sim.data, group="group", standardization=(0.0, [1.0] * (p + 1)))
    with pytest.raises(ValueError, match="a \\(center, scale\\) pair"):
        GroupCovModel(sim.data, group="group", standardization=(0.0, 1.0, 2.0))
    m = GroupCovModel(sim.data, group="group", standardization=(0.0, 2.0))
    np.testing.assert_array_equal(m.standardization.scale, [2.0] * p)


def test_default_model_structure(sim):
    m = GroupCovModel(sim.data, group="group")
    assert isinstance(m.model, pm.Model)
    free = {v.name for v in m.model.free_RVs}
    # between-group sds: sampled as log tau = center + scale * u, reported as tau
    assert {"mu_tau_z_u", "sd_tau_u", "corr_tau_u"} <= free
    assert {"mu_tau_z", "sd_tau", "corr_tau"} <= {v.name for v in m.model.deterministics}
    assert tuple(m.model.coords["group"]) == ("g0", "g1", "g2")
    assert tuple(m.model.coords["feature"]) == tuple(sim.features)
    assert tuple(m.model.coords["group"]) == m.stats.groups
    deterministics = {v.name for v in m.model.deterministics}
    assert {"mu", "sigma", "corr", "cov", "mu_pop", "mu_tau", "sigma_pop",
            "corr_pop"} <= deterministics
    assert m.model["cov"].type.shape == (3, 3, 3)
    assert m.model["corr_pop"].type.shape == (3, 3)
    np.testing.assert_array_equal(m.model["n_rows"].get_value(), [12.0, 20.0, 7.0])
    # the model works on the standardized scale of the data
    center, scale = m.standardization
    np.testing.assert_allclose(center, sim.data[sim.features].mean().to_numpy(), rtol=1e-12)
    assert np.all(scale > 0)


def test_model_coords_follow_data_labels():
    rng = np.random.default_rng(3)
    labels = ["Zürich", "Ñandú", "Zürich", "東京", "Ñandú", "東京"] * 3
    df = pd.DataFrame({"site": labels, "w": rng.normal(size=18), "h": rng.normal(size=18)})
    m = GroupCovModel(df, group="site", features=["h", "w"])
    assert tuple(m.model.coords["group"]) == ("Zürich", "Ñandú", "東京")
    assert tuple(m.model.coords["feature"]) == ("h", "w")
    assert tuple(m.model.coords["feature_"]) == ("h", "w")
    assert tuple(m.model.coords["pair"]) == ("w|h",)


def test_pair_labels_distinct_when_names_hold_the_separator():
    """"a|b" with "c" and "a" with "b|c" must not both be "a|b|c"."""
    from groupcov.model.inputs import PAIR_SEPARATORS, pair_labels

    rng = np.random.default_rng(4)
    names = ["c", "b|c", "a|b", "a"]
    df = pd.DataFrame({n: rng.normal(size=40) for n in names})
    df["g"] = np.repeat(["u", "v"], 20)
    m = GroupCovModel(df, group="g", features=names, covariance="hierarchical")
    pairs = list(m.model.coords["pair"])
    assert len(set(pairs)) == len(pairs) == 6
    assert pairs[1] == "a|b~c"  # the first separator no name holds
    every = ["x" + "".join(PAIR_SEPARATORS), "y"]
    assert pair_labels(every) == [repr(("y", every[0]))]


@pytest.mark.parametrize(
    ("parameterization", "expected"),
    [
        ("auto", {"mu_z_pop_xi", "mu_z_eps", "log_sd_z_pop_xi", "cpc_z_pop_xi", "cov_z_eps",
                  "mu_tau_z_u", "sd_tau_u", "corr_tau_u"}),
        ("centered", {"mu_z_pop", "mu_z_raw", "log_sd_z_raw", "cpc_z_raw", "mu_tau_z",
                      "sd_tau", "corr_tau"}),
        ("noncentered", {"mu_z_pop", "mu_z_raw", "log_sd_z_raw", "cpc_z_raw", "mu_tau_z",
                         "sd_tau", "corr_tau"}),
    ],
)
def test_parameterizations_build(sim, parameterization, expected):
    m = GroupCovModel(sim.data, group="group", parameterization=parameterization)
    assert {"mu_tau_z", "sd_tau", "corr_tau"} <= set(m.model.named_vars)
    assert expected <= {v.name for v in m.model.free_RVs}


@pytest.mark.parametrize(
    ("means", "covariance", "present", "absent"),
    [
        ("pooled", "pooled", {"mu_pop_z", "chol_pop_z_eps"}, {"mu_tau_z", "sd_tau"}),
        ("unpooled", "unpooled", {"mu_z_eps", "chol_z_eps"}, {"mu_tau_z", "sd_tau"}),
        ("hierarchical", "pooled", {"mu_tau_z", "chol_pop_z_eps"}, {"sd_tau", "corr_tau"}),
        ("pooled", "hierarchical", {"mu_pop_z", "sd_tau", "corr_tau"}, {"mu_tau_z"}),
    ],
)
def test_pooling_modes_choose_their_parameters(sim, means, covariance, present, absent):
    m = GroupCovModel(sim.data, group="group", means=means, covariance=covariance)
    names = set(m.model.named_vars)
    assert present <= names
    assert not absent & names
    assert m.model["cov"].type.shape == (3, 3, 3)
    assert m.spec == {"means": means, "covariance": covariance}


def test_repr_reports_sizes(sim):
    m = GroupCovModel(sim.data, group="group", means="pooled", covariance="pooled")
    assert repr(m) == ("GroupCovModel(means='pooled', covariance='pooled'; "
                       "3 groups, 3 features, 39 rows)")


# m.model.point_logps() is not checked here: compiling the log density takes ~7 s
# with a warm PyTensor cache (~60 s cold), beyond the time budget of these tests.
