"""Jittered HMC draws after a U-turn warm-up start: the kernel, its default, its options."""

import numpy as np
import pytest

import groupcov
from groupcov.api import RICH_ROWS
from groupcov.datasets import simulate_groups
from groupcov.inference.backends import SamplerSettings
from groupcov.inference.jax_backend import ALGORITHMS, nuts_chain
from groupcov.inference.jittered import jittered_switch


def test_switch_window_follows_numpyro_schedule():
    assert jittered_switch(1000) == (150, 250)
    assert jittered_switch(2000) == (150, 250)
    assert jittered_switch(300) == (150, 250)
    assert jittered_switch(150) == (75, 100)
    assert jittered_switch(50) == (7, 45)
    assert jittered_switch(10) is None
    assert jittered_switch(0) is None


def _gaussian_draws(algorithm: str, seed: int, **options):
    """Draws of a 40-dimensional Gaussian with scales 0.2..5 and correlated pairs."""
    import jax
    import jax.numpy as jnp

    d = 40
    scales = np.geomspace(0.2, 5.0, d)
    corr = np.eye(d)
    for i in range(0, d - 1, 2):
        corr[i, i + 1] = corr[i + 1, i] = 0.8 if i % 4 == 0 else -0.6
    cov = scales[:, None] * scales[None, :] * corr
    mean = np.linspace(-3.0, 3.0, d)
    precision = jnp.asarray(np.linalg.inv(cov))

    def evaluate(params, data):
        x = params["x"]
        r = x - data[0]
        return -0.5 * r @ precision @ r, [x]

    settings = SamplerSettings(draws=1500, tune=600, chains=1, random_seed=seed,
                               progressbar=False)
    chain = nuts_chain(evaluate, lambda data: {"x": jnp.zeros(d)}, settings,
                       {"algorithm": algorithm, **options})
    keys = jax.random.split(jax.random.PRNGKey(seed), 2)
    run = jax.jit(jax.vmap(chain, in_axes=(0, None)))
    values, diverging, steps = run(keys, (jnp.asarray(mean),))[:3]
    return np.asarray(values[0]), np.asarray(diverging), np.asarray(steps), mean, cov


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_draws_match_a_known_gaussian(algorithm):
    x, diverging, steps, mean, cov = _gaussian_draws(algorithm, seed=3)
    assert not diverging.any()
    flat = x.reshape(-1, x.shape[-1])
    sd = np.sqrt(np.diag(cov))
    # means within 5 Monte Carlo standard errors (at least 600 effective draws of 3,000)
    assert np.all(np.abs(flat.mean(0) - mean) < 5 * sd / np.sqrt(600))
    # variances within 20% and the paired correlations within 0.08
    np.testing.assert_allclose(flat.var(0), np.diag(cov), rtol=0.2)
    emp = np.corrcoef(flat.T)
    for i in range(0, x.shape[-1] - 1, 2):
        assert abs(emp[i, i + 1] - cov[i, i + 1] / (sd[i] * sd[i + 1])) < 0.08
    if algorithm == "jittered":  # trajectories of random length: no tree sizes
        assert len(np.unique(steps)) > 5


def test_trajectories_are_capped_like_nuts_trees():
    # max_tree_depth bounds HMC's trajectories too (2**depth - 1 leapfrog steps)
    _, _, steps, _, _ = _gaussian_draws("jittered", seed=1, max_tree_depth=2)
    assert steps.max() <= 3
    assert steps.min() >= 1


def test_jittered_needs_fewer_steps_than_nuts_in_many_dimensions():
    sim = simulate_groups(12, 40, 3, seed=2)
    model = groupcov.GroupCovModel(sim.data, features=sim.features)
    kw = dict(draws=300, tune=400, chains=2, random_seed=1, progressbar=False)
    nuts = model.fit(algorithm="nuts", **kw)
    jittered = model.fit(**kw)  # the default for these groups
    assert jittered.posterior.attrs["algorithm"] == "jittered"
    assert nuts.posterior.attrs["algorithm"] == "nuts"
    assert "tree_depth" not in jittered.sample_stats
    assert not jittered.sample_stats["reached_max_treedepth"].values.any()
    assert "tree_depth" in nuts.sample_stats
    assert jittered.sample_stats["n_steps"].mean() < 0.75 * nuts.sample_stats["n_steps"].mean()
    # the same posterior: means within 0.35 posterior sd of each other
    for name in ("mu", "sigma", "corr"):
        a, b = nuts.posterior[name], jittered.posterior[name]
        sd = a.std(("chain", "draw")).values
        diff = np.abs(a.mean(("chain", "draw")).values - b.mean(("chain", "draw")).values)
        off = ~np.isclose(sd, 0.0)  # the correlation matrices' unit diagonal
        assert np.all(diff[off] < 0.35 * sd[off]), name


@pytest.mark.parametrize(
    ("groups", "rows", "modes", "expected"),
    [
        (12, 2 + RICH_ROWS, ("hierarchical", "hierarchical"), "jittered"),
        (12, 2 + RICH_ROWS - 1, ("hierarchical", "hierarchical"), "nuts"),
        (9, 200, ("hierarchical", "hierarchical"), "nuts"),
        (12, 200, ("unpooled", "unpooled"), "jittered"),
        (12, 200, ("pooled", "hierarchical"), "jittered"),
        (12, 200, ("pooled", "pooled"), "nuts"),
    ],
)
def test_default_algorithm(groups, rows, modes, expected):
    sim = simulate_groups(groups, rows, 2, seed=0)
    model = groupcov.GroupCovModel(sim.data, features=sim.features, means=modes[0],
                                   covariance=modes[1])
    assert model.default_algorithm() == expected


def test_smallest_group_decides():
    sim = simulate_groups(12, np.r_[np.full(11, 100), 2 + RICH_ROWS - 1], 2, seed=0)
    model = groupcov.GroupCovModel(sim.data, features=sim.features)
    assert model.default_algorithm() == "nuts"


def test_unknown_algorithm_is_named():
    sim = simulate_groups(3, 30, 2, seed=0)
    model = groupcov.GroupCovModel(sim.data, features=sim.features)
    with pytest.raises(ValueError, match=r"algorithm must be 'nuts' or 'jittered'.*'hmc'"):
        model.fit(algorithm="hmc", draws=10, tune=10, progressbar=False)
    with pytest.raises(TypeError, match=r"algorithm= applies to the numpyro sampler only"):
        model.fit(sampler="pymc", algorithm="nuts", draws=10, tune=10, chains=1,
                  progressbar=False)


def test_cli_algorithm_flag_needs_numpyro(tmp_path, capsys):
    from groupcov import cli

    sim = simulate_groups(3, 30, 2, seed=0)
    path = tmp_path / "d.csv"
    sim.data.to_csv(path, index=False)
    code = cli.main(["fit", str(path), "--group", "group", "--sampler", "pymc",
                     "--algorithm", "jittered", "--out", str(tmp_path / "out")])
    assert code == 2
    assert "--algorithm applies to --sampler numpyro only" in capsys.readouterr().err
    assert cli._ALGORITHMS == ALGORITHMS  # the CLI's light copy of the choices


def test_jittered_names_the_options_it_does_not_take():
    with pytest.raises(TypeError, match=r"\['find_heuristic_step_size'\].*algorithm='nuts'"):
        _gaussian_draws("jittered", seed=1, find_heuristic_step_size=True)


def test_uturn_start_learns_half_a_period_on_a_standard_normal():
    """On N(0, I) with a unit metric the U-turn comes at half a period (pi): the
    jittered lengths, 0.25-0.75 of it, then average about pi / 2 (a quarter period)."""
    import jax
    import jax.numpy as jnp

    from groupcov.inference.jittered import jittered_chain_kernel

    d = 200
    state, kernel = jittered_chain_kernel(
        lambda z: 0.5 * jnp.sum(z * z), jnp.zeros(d), jnp.zeros(()), jax.random.PRNGKey(0),
        300, 0.8, jittered_switch(300), {"adapt_mass_matrix": False},
    )

    def step(s, _):
        s = kernel(s)
        return s, (s.num_steps * s.adapt_state.step_size, s.z)

    state, (lengths, z) = jax.jit(lambda s: jax.lax.scan(step, s, None, length=1300))(state)
    turned = float(state.length_sum / state.length_count)
    assert abs(turned - np.pi) < 0.25 * np.pi, turned
    drawn = np.asarray(lengths[300:])
    assert abs(drawn.mean() - 0.5 * turned) < 0.1 * turned
    z = np.asarray(z[300:])
    assert abs(z.var() - 1.0) < 0.1


def test_uturn_start_draws_do_not_alternate_in_sign():
    """A U-turn trajectory's end point on N(0, I) sits half a period from its start,
    near -z0, so end points alternate in sign and a window of them estimates each
    variance from one value. The U-turn start proposes a uniformly chosen point of the
    trajectory instead: successive draws are uncorrelated and a window's variances
    scatter like chi-square ones."""
    import jax
    import jax.numpy as jnp

    from groupcov.inference.jittered import jittered_chain_kernel

    d = 400
    tune = 1000
    first, stop = jittered_switch(tune)
    state, kernel = jittered_chain_kernel(
        lambda z: 0.5 * jnp.sum(z * z), jnp.zeros(d), jnp.zeros(()), jax.random.PRNGKey(1),
        tune, 0.8, (first, stop), {"adapt_mass_matrix": False},
    )

    def step(s, _):
        s = kernel(s)
        return s, s.z

    _, z = jax.jit(lambda s: jax.lax.scan(step, s, None, length=stop))(state)
    z = np.asarray(z[first:stop])  # U-turn trajectories, after the step size settled
    lag1 = np.mean(z[1:] * z[:-1]) / np.mean(z * z)
    assert abs(lag1) < 0.2, lag1  # end points: -0.5 to -0.66 (seeds 1-3)
    window = z.var(axis=0, ddof=1)  # 100 draws per coordinate
    low, high = np.quantile(window, [0.01, 0.99])
    assert 0.35 < low and high < 2.5, (low, high)  # end points: 0.17-0.22 and 4.3-5.2


def test_jittered_draws_target_a_lower_acceptance_rate():
    rich = simulate_groups(12, 2 + RICH_ROWS, 2, seed=0)
    model = groupcov.GroupCovModel(rich.data, features=rich.features)
    assert model.default_algorithm() == "jittered"
    assert model.default_target_accept("jittered") == 0.8
    assert model.default_target_accept("nuts") == 0.9
    assert model.default_target_accept() == 0.9  # other samplers: NUTS
    few = simulate_groups(3, 30, 2, seed=0)
    assert groupcov.GroupCovModel(few.data, features=few.features).default_target_accept() == 0.95
    fit = model.fit(draws=50, tune=60, chains=1, random_seed=0, progressbar=False)
    assert fit.posterior.attrs["target_accept"] == 0.8
    nuts = model.fit(draws=50, tune=60, chains=1, random_seed=0, progressbar=False,
                     algorithm="nuts")
    assert nuts.posterior.attrs["target_accept"] == 0.9
