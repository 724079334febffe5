"""Plots: geometry against independent oracles on hand-made posteriors (no sampling)."""

import functools
import io
import sys

import arviz as az
import matplotlib
import matplotlib.image
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from matplotlib.path import Path
from scipy import optimize, stats

from groupcov import plots
from groupcov.data import reduce
from groupcov.result import GroupCovResult

FEATURES = ["a", "b", "c"]
GROUPS = ["g1", "g2", "g3"]
N_ROWS = [12, 40, 150]


def _random_cov(rng, p, df):
    base = np.array([[1.0, 0.5, -0.3], [0.5, 2.0, 0.2], [-0.3, 0.2, 0.5]])[:p, :p]
    return stats.wishart(df=df, scale=base / df).rvs(random_state=rng)


def _fake_result(seed=0, chains=2, draws=150, population=True):
    """A result whose posterior draws are known arrays (scattered Wishart draws)."""
    rng = np.random.default_rng(seed)
    p, g = len(FEATURES), len(GROUPS)
    rows = []
    for gi, (name, n) in enumerate(zip(GROUPS, N_ROWS, strict=True)):
        x = rng.multivariate_normal(np.arange(p) + gi, _random_cov(rng, p, 30), size=n)
        rows.append(pd.DataFrame(x, columns=FEATURES).assign(group=name))
    data = pd.concat(rows, ignore_index=True)
    st = reduce(data, "group", FEATURES)
    cov = np.empty((chains, draws, g, p, p))
    for gi in range(g):
        sample = st.scatter[gi] / (st.n[gi] - 1)
        cov[:, :, gi] = stats.wishart(df=st.n[gi], scale=sample / st.n[gi]).rvs(
            size=chains * draws, random_state=rng
        ).reshape(chains, draws, p, p)
    mu = st.mean + 0.1 * rng.standard_normal((chains, draws, g, p))
    sigma = np.sqrt(np.diagonal(cov, axis1=-2, axis2=-1))
    corr = cov / (sigma[..., :, None] * sigma[..., None, :])
    posterior = {"mu": mu, "sigma": sigma, "corr": corr, "cov": cov}
    dims = {
        "mu": ["group", "feature"],
        "sigma": ["group", "feature"],
        "corr": ["group", "feature", "feature_"],
        "cov": ["group", "feature", "feature_"],
    }
    if population:
        posterior["corr_pop"] = corr.mean(axis=2) + 0.05 * rng.standard_normal(
            (chains, draws, p, p)
        )
        posterior["mu_pop"] = mu.mean(axis=2)
        posterior["sigma_pop"] = sigma.mean(axis=2)
        dims.update(corr_pop=["feature", "feature_"], mu_pop=["feature"], sigma_pop=["feature"])
    idata = az.from_dict(
        posterior=posterior,
        coords={"group": GROUPS, "feature": FEATURES, "feature_": FEATURES},
        dims=dims,
    )
    spec = {"means": "hierarchical", "covariance": "hierarchical"}
    return GroupCovResult(idata, st, spec), data, posterior


@pytest.fixture(scope="module")
def fake():
    return _fake_result()


def _artist(ax, gid):
    found = [a for a in ax.get_children() if a.get_gid() == gid]
    assert len(found) == 1, f"expected one artist with gid {gid!r}, found {len(found)}"
    return found[0]


def _png(fig):
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=50)
    buf.seek(0)
    img = matplotlib.image.imread(buf, format="png")
    assert img.ndim == 3 and img.shape[0] > 50 and img.shape[1] > 50
    assert img[..., :3].std() > 0.05  # not a blank canvas
    return img


def _quad(points, mean, cov):
    d = points - mean
    return np.einsum("ni,ni->n", d, np.linalg.solve(cov, d.T).T)


def test_ellipse_points_holds_the_requested_mass():
    mean = np.array([1.0, -2.0])
    cov = np.array([[2.0, -0.9], [-0.9, 0.7]])
    pts = ellipse = plots.ellipse_points(mean, cov, mass=0.8, n_points=721)
    np.testing.assert_allclose(_quad(pts, mean, cov), stats.chi2.ppf(0.8, 2), rtol=1e-10)
    draws = np.random.default_rng(3).multivariate_normal(mean, cov, size=200_000)
    inside = Path(ellipse).contains_points(draws).mean()
    assert abs(inside - 0.8) < 0.005  # Monte Carlo sd ~0.0009


def test_ellipse_band_matches_brute_force_root_finding():
    rng = np.random.default_rng(1)
    center = np.array([0.5, 0.2])
    means = center + 0.1 * rng.standard_normal((60, 2))
    covs = stats.wishart(df=20, scale=np.array([[1.0, 0.4], [0.4, 0.5]]) / 20).rvs(
        size=60, random_state=rng
    )
    band = plots.ellipse_band(center, means, covs, mass=0.9, prob=0.8, n_points=13)
    k2 = stats.chi2.ppf(0.9, 2)
    for t_idx in (0, 4, 9):
        u = np.array([np.cos(band.angles[t_idx]), np.sin(band.angles[t_idx])])
        exits = [
            optimize.brentq(lambda t, m=m, c=c, u=u: _quad((center + t * u)[None], m, c)[0] - k2,
                            0.0, 50.0)
            for m, c in zip(means, covs, strict=True)
        ]
        np.testing.assert_allclose(band.inner[t_idx], np.quantile(exits, 0.1), rtol=1e-8)
        np.testing.assert_allclose(band.outer[t_idx], np.quantile(exits, 0.9), rtol=1e-8)


def test_ellipse_band_collapses_when_all_draws_agree():
    cov = np.array([[1.0, 0.3], [0.3, 2.0]])
    band = plots.ellipse_band([0, 0], np.zeros((5, 2)), np.repeat(cov[None], 5, 0), mass=0.5)
    outer, inner = band.polygon()
    np.testing.assert_allclose(outer, inner)
    np.testing.assert_allclose(_quad(outer, np.zeros(2), cov), stats.chi2.ppf(0.5, 2))


def test_ellipses_draws_posterior_mean_ellipse_band_and_points(fake):
    result, data, post = fake
    fig = plots.ellipses(result, "a", "c", data=data, group_column="group", mass=0.9)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("a", "c")
    k2 = stats.chi2.ppf(0.9, 2)
    for gi, g in enumerate(GROUPS):
        line = _artist(ax, f"ellipse:{g}")
        mean = post["mu"][..., gi, [0, 2]].reshape(-1, 2).mean(0)
        cov = post["cov"][..., gi, :, :][..., [0, 2], :][..., [0, 2]].reshape(-1, 2, 2).mean(0)
        np.testing.assert_allclose(_quad(line.get_xydata(), mean, cov), k2, rtol=1e-8)
        band = _artist(ax, f"band:{g}")
        verts = band.get_path().vertices
        r = np.linalg.norm(verts - mean, axis=1)
        r_mean = np.linalg.norm(line.get_xydata() - mean, axis=1)
        assert r.max() > r_mean.max() and r.min() < r_mean.min()  # band around the line
        rows = data.loc[data.group == g, ["a", "c"]].to_numpy()
        np.testing.assert_allclose(_artist(ax, f"points:{g}").get_offsets(), rows)
    _png(fig)


def test_ellipses_without_band_into_given_axes(fake):
    result, _, _ = fake
    fig = Figure()
    ax = fig.add_subplot()
    out = plots.ellipses(result, "b", "a", band=None, groups=["g2"], ax=ax)
    assert out is fig
    gids = {a.get_gid() for a in ax.get_children()}
    assert "ellipse:g2" in gids and "ellipse:g1" not in gids
    assert not any(str(gid).startswith("band:") for gid in gids)


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"x": "a", "y": "zz"}, KeyError, "zz"),
        ({"x": "a", "y": "a"}, ValueError, "same feature"),
        ({"groups": ["nope"]}, KeyError, "nope"),
        ({"mass": 1.0}, ValueError, "mass="),
        ({"data": pd.DataFrame({"a": [1.0]})}, ValueError, "group_column="),
    ],
)
def test_ellipses_bad_arguments_say_what_is_wrong(fake, kwargs, error, words):
    with pytest.raises(error, match=words):
        plots.ellipses(fake[0], **kwargs)


def test_pairs_grid_lower_triangle_and_marginals(fake):
    result, data, post = fake
    fig = plots.pairs(result, data=data, group_column="group")
    axes = np.array(fig.axes[:9]).reshape(3, 3)
    assert not axes[0, 1].axison and not axes[0, 2].axison and not axes[1, 2].axison
    assert axes[2, 0].get_xlabel() == "a" and axes[2, 0].get_ylabel() == "c"
    # lower panel (row c, column b): the ellipse of features (b, c)
    line = _artist(axes[2, 1], "ellipse:g3")
    mean = post["mu"][..., 2, [1, 2]].reshape(-1, 2).mean(0)
    cov = post["cov"][..., 2, :, :][..., [1, 2], :][..., [1, 2]].reshape(-1, 2, 2).mean(0)
    np.testing.assert_allclose(_quad(line.get_xydata(), mean, cov), stats.chi2.ppf(0.9, 2))
    # diagonal: a normal density at the posterior mean mean and sd
    curve = axes[1, 1].lines[0].get_xydata()
    m, s = post["mu"][..., 0, 1].mean(), post["sigma"][..., 0, 1].mean()
    np.testing.assert_allclose(curve[:, 1], stats.norm(m, s).pdf(curve[:, 0]), rtol=1e-10)
    _png(fig)


def test_forest_points_and_intervals_match_arviz(fake):
    result, _, post = fake
    fig = plots.correlation_forest(result, hdi_prob=0.9)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels[0] == "a~b  g1" and len(labels) == 3 * 3
    for pair, (i, j) in {"a,c": (0, 2), "b,c": (1, 2)}.items():
        for gi, g in enumerate(GROUPS):
            draws = post["corr"][..., gi, i, j]
            point = _artist(ax, f"mean:{pair}:{g}").get_xydata()[0, 0]
            np.testing.assert_allclose(point, draws.mean())
            seg = _artist(ax, f"hdi:{pair}:{g}").get_segments()[0][:, 0]
            np.testing.assert_allclose(seg, az.hdi(draws.ravel(), hdi_prob=0.9))
        _artist(ax, f"population:{pair.replace(',', ',')}")
    _png(fig)


def test_forest_without_population_and_selected_pairs():
    result, _, _ = _fake_result(seed=2, population=False)
    fig = plots.correlation_forest(result, pairs=[("c", "a")], groups=["g3", "g1"])
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["c~a  g3", "c~a  g1"]
    assert not any(str(a.get_gid()).startswith("population") for a in ax.get_children())
    with pytest.raises(ValueError, match="same feature"):
        plots.correlation_forest(result, pairs=[("a", "a")])


def test_shrinkage_against_sample_estimates_of_the_raw_rows(fake):
    result, data, post = fake
    fig = plots.shrinkage(result, parameter="corr")
    assert len([ax for ax in fig.axes if ax.axison]) == 3
    ax = next(ax for ax in fig.axes if ax.get_title() == "corr[a,c]")
    for gi, g in enumerate(GROUPS):
        rows = data.loc[data.group == g, FEATURES].to_numpy()
        line = _artist(ax, f"shrink:corr[a,c]:{g}").get_xydata()
        np.testing.assert_allclose(line[0, 1], np.corrcoef(rows.T)[0, 2], rtol=1e-10)
        np.testing.assert_allclose(line[1, 1], post["corr"][..., gi, 0, 2].mean(), rtol=1e-12)
    pop = _artist(ax, "population:corr[a,c]").get_ydata()[0]
    np.testing.assert_allclose(pop, post["corr_pop"][..., 0, 2].mean())
    fig_sd = plots.shrinkage(result, parameter="sigma")
    ax = next(ax for ax in fig_sd.axes if ax.get_title() == "sigma[b]")
    rows = data.loc[data.group == "g1", "b"].to_numpy()
    left = _artist(ax, "shrink:sigma[b]:g1").get_xydata()[0, 1]
    np.testing.assert_allclose(left, rows.std(ddof=1), rtol=1e-10)
    _png(fig)
    # a subset of the features: their entries only, in the order given
    sub = plots.shrinkage(result, parameter="corr", features=["c", "a"])
    assert [ax.get_title() for ax in sub.axes if ax.axison] == ["corr[c,a]"]
    with pytest.raises(KeyError, match="unknown feature"):
        plots.shrinkage(result, parameter="mu", features=["z"])


def test_shrinkage_against_an_unpooled_fit(fake):
    result, _, _ = fake
    other, _, other_post = _fake_result(seed=5, population=False)
    fig = plots.shrinkage(result, other, parameter="mu", groups=["g2"])
    ax = next(ax for ax in fig.axes if ax.get_title() == "mu[c]")
    left = _artist(ax, "shrink:mu[c]:g2").get_xydata()[0, 1]
    np.testing.assert_allclose(left, other_post["mu"][..., 1, 2].mean())
    assert ax.get_xticklabels()[0].get_text() == "unpooled fit"
    with pytest.raises(ValueError, match="parameter="):
        plots.shrinkage(result, parameter="cov")


def test_plots_leave_global_matplotlib_state_alone(fake):
    before = dict(matplotlib.rcParams)
    backend = matplotlib.rcParams._get_backend_or_none()
    plt = sys.modules.get("matplotlib.pyplot")
    figures = plt.get_fignums() if plt else []
    for fn in (plots.ellipses, plots.pairs, plots.correlation_forest, plots.shrinkage):
        fn(fake[0]).savefig(io.BytesIO(), format="png")
    assert dict(matplotlib.rcParams) == before
    assert matplotlib.rcParams._get_backend_or_none() == backend
    plt = sys.modules.get("matplotlib.pyplot")
    assert (plt.get_fignums() if plt else []) == figures  # nothing registered with pyplot


def test_sample_estimates_use_every_observed_value():
    df = pd.DataFrame({
        "g": ["a"] * 6 + ["b"] * 4,
        "x": [1.0, 2.0, np.nan, 4.0, 5.0, 3.0, 1.0, 2.0, 3.0, 7.0],
        "y": [1.0, 3.0, 2.0, np.nan, 6.0, 0.0, 2.0, 2.0, 9.0, 1.0],
    })
    est = plots.sample_estimates(reduce(df, "g", ["x", "y"]))
    a = df[df.g == "a"]
    np.testing.assert_allclose(est["mu"][0], [a.x.mean(), a.y.mean()])  # pandas skips NaN
    np.testing.assert_allclose(est["sigma"][0], [a.x.std(), a.y.std()])
    np.testing.assert_allclose(est["corr"][0, 0, 1], a.dropna()[["x", "y"]].corr().iloc[0, 1])


def test_ellipses_from_sigma_and_corr_when_cov_was_not_stored(fake):
    result, _, _ = fake
    without = GroupCovResult(result.idata.copy(), result.stats, result.spec)
    del without.idata.posterior["cov"]
    assert "cov" in result.idata.posterior
    a = plots.ellipses(result, "a", "b").axes[0]
    b = plots.ellipses(without, "a", "b").axes[0]
    for g in GROUPS:
        np.testing.assert_allclose(_artist(a, f"ellipse:{g}").get_xydata(),
                                   _artist(b, f"ellipse:{g}").get_xydata(), rtol=1e-10)
        np.testing.assert_allclose(_artist(a, f"band:{g}").get_path().vertices,
                                   _artist(b, f"band:{g}").get_path().vertices, rtol=1e-10)


def test_band_quantiles_equal_numpy_nanquantile():
    import warnings

    from groupcov.plots import _column_quantile

    rng = np.random.default_rng(5)
    t = rng.normal(size=(101, 64))
    t[rng.random(t.shape) < 0.2] = np.nan
    t[:, 3] = np.nan  # an angle where no draw's ellipse reaches
    t[:-1, 9] = np.nan  # and one reached by a single draw
    for q in (0.0, 0.03, 0.5, 0.97, 1.0):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            expected = np.nanquantile(t, q, axis=0)
        np.testing.assert_allclose(_column_quantile(t, q), expected, rtol=1e-14, equal_nan=True)


@functools.cache
def one_feature_fit():
    """A short hierarchical fit of one feature over three groups, and its rows."""
    import warnings

    import groupcov

    rng = np.random.default_rng(0)
    df = pd.DataFrame({"g": np.repeat(["a", "b", "c"], 30), "v": rng.normal(size=90)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = groupcov.GroupCovModel(df, group="g", features=["v"]).fit(
            draws=100, tune=100, chains=2, random_seed=0, progressbar=False)
    return result, df


def test_shrinkage_of_one_feature_defaults_to_the_sds():
    result, _ = one_feature_fit()
    fig = plots.shrinkage(result)
    assert [ax.get_title() for ax in fig.axes if ax.axison] == ["sigma[v]"]
    with pytest.raises(ValueError, match="use parameter='mu' or 'sigma'"):
        plots.shrinkage(result, parameter="corr")


def test_pairs_of_one_feature_is_titled_as_densities():
    result, df = one_feature_fit()
    fig = plots.pairs(result, data=df, group_column="g")
    assert fig.get_suptitle() == "Posterior normal density of each group"
    assert fig.get_size_inches()[0] == 5.0
