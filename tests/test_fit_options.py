"""Fit options that bound memory: kept variables and thinning."""

import warnings

import numpy as np
import pytest

import groupcov
from groupcov.datasets import two_groups
from groupcov.result import group_log_likelihood


@pytest.fixture(scope="module")
def model():
    sim = two_groups(n_per_group=60, seed=4)
    return groupcov.GroupCovModel(sim.data, group="group", features=sim.features)


def test_var_names_and_thin(model):
    res = model.fit(draws=50, tune=100, chains=2, thin=3, random_seed=1, progressbar=False,
                    var_names=["mu", "sigma", "corr"])
    post = res.idata.posterior
    assert set(post.data_vars) == {"mu", "sigma", "corr"}
    assert post.sizes["draw"] == 50
    assert "tree_depth" not in res.idata.sample_stats
    # the group log-likelihood is rebuilt from sigma and corr
    sigma, corr = post["sigma"].values, post["corr"].values
    cov = sigma[..., :, None] * sigma[..., None, :] * corr
    expected = group_log_likelihood(res.stats, post["mu"].values, cov)
    np.testing.assert_allclose(res.idata.log_likelihood["obs"].values, expected, rtol=1e-12)
    table = res.summary()
    assert set(table["parameter"].str.split("[").str[0]) == {"mu", "sigma", "corr"}
    assert len(table) == 2 * (2 + 2 + 1)
    # the covariance table, from sigma and corr
    np.testing.assert_allclose(res.covariance("B").values, cov[:, :, 1].mean((0, 1)),
                               rtol=1e-12)
    kept_cov = model.fit(draws=50, tune=100, chains=2, thin=3, random_seed=1,
                         progressbar=False, var_names=["mu", "cov"])
    np.testing.assert_allclose(kept_cov.correlation("B").values, corr[:, :, 1].mean((0, 1)),
                               rtol=1e-10)
    with pytest.raises(KeyError, match=r"no 'sigma' \(the fit kept \['cov', 'mu'\]\)"):
        kept_cov._posterior_mean("sigma", "B")


def test_thinning_keeps_every_kth_draw(model):
    kw = dict(draws=40, tune=100, chains=2, random_seed=7, progressbar=False,
              var_names=["mu"])
    full = model.fit(**{**kw, "draws": 120})
    thinned = model.fit(**kw, thin=3)
    np.testing.assert_allclose(
        thinned.idata.posterior["mu"].values, full.idata.posterior["mu"].values[:, 2::3]
    )
    n_full = full.idata.sample_stats["n_steps"].values.reshape(2, 40, 3).sum(-1)
    np.testing.assert_array_equal(thinned.idata.sample_stats["n_steps"].values, n_full)


def test_unknown_var_names_are_named(model):
    with pytest.raises(ValueError, match="'nope'"):
        model.fit(draws=10, tune=10, chains=1, var_names=["mu", "nope"], progressbar=False)


def test_summary_is_ordered_by_group_then_parameter(model):
    res = model.fit(draws=100, tune=100, chains=2, random_seed=2, progressbar=False)
    table = res.summary()
    assert table["group"].tolist() == ["A"] * 8 + ["B"] * 8
    assert table["parameter"].tolist()[:8] == [
        "mu[x]", "mu[y]", "sigma[x]", "sigma[y]", "corr[x,y]", "cov[x,x]", "cov[x,y]", "cov[y,y]"
    ]
    post = res.idata.posterior
    row = table[(table.group == "B") & (table.parameter == "cov[x,y]")].iloc[0]
    draws = post["cov"].sel(group="B", feature="y", feature_="x").values
    assert row["mean"] == pytest.approx(draws.mean(), rel=1e-12)
    assert row["sd"] == pytest.approx(draws.std(ddof=1), rel=1e-12)


@pytest.mark.parametrize("chains", [1, 2, 5])
def test_saved_program_is_reused_by_a_new_process(chains, tmp_path, monkeypatch):
    """A saved program serves a later process (simulated by emptying the in-process
    table) for chains batched on one device (1, more than the CPU devices) and
    mapped over devices (2), and gives the same draws as the freshly compiled one."""
    from groupcov import inference
    from groupcov.inference import jax_backend

    monkeypatch.setenv("GROUPCOV_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(inference, "_PROGRAMS", {})
    sim = two_groups(n_per_group=60, seed=3)
    kw = dict(sampler="numpyro", draws=30, tune=30, chains=chains, random_seed=4,
              progressbar=False)
    first = groupcov.GroupCovModel(sim.data, group="group", features=sim.features).fit(**kw)
    saved = [p for p in (tmp_path / "programs").iterdir() if p.suffix != ".json"]
    assert len(saved) == 1

    monkeypatch.setattr(inference, "_PROGRAMS", {})

    def no_translation(*args, **kwargs):
        raise AssertionError("the saved program was not used")

    monkeypatch.setattr(jax_backend, "chain_program", no_translation)
    second = groupcov.GroupCovModel(sim.data, group="group", features=sim.features).fit(**kw)
    a, b = first.idata.posterior, second.idata.posterior
    assert a["cov"].shape[:2] == (chains, 30)
    np.testing.assert_allclose(a["cov"].values, b["cov"].values, rtol=1e-12)


def test_saved_program_for_other_chain_mapping_is_a_miss(tmp_path, monkeypatch):
    from groupcov.inference import jax_backend

    monkeypatch.setenv("GROUPCOV_CACHE_DIR", str(tmp_path))
    sim = two_groups(n_per_group=60, seed=3)
    groupcov.GroupCovModel(sim.data, group="group", features=sim.features).fit(
        sampler="numpyro", draws=10, tune=10, chains=2, random_seed=1, progressbar=False
    )
    (path,) = [p for p in (tmp_path / "programs").iterdir() if p.suffix != ".json"]
    assert jax_backend.load_program(str(path), 2) is not None
    monkeypatch.setattr(jax_backend, "chain_mapping", lambda chains: "vmap")
    assert jax_backend.load_program(str(path), 2) is None
    assert jax_backend.load_program(str(path), 3) is None


def test_saved_programs_are_pruned_least_recently_used_first(tmp_path, monkeypatch):
    """Past the size bound the oldest-used programs go, metadata and all; a program
    read since (its time touched by load_program) outlives older ones."""
    import os

    from groupcov.inference import jax_backend

    def entry(name, size, age):
        path = tmp_path / name
        path.write_bytes(b"x" * size)
        (tmp_path / f"{name}.json").write_text("{}")
        os.utime(path, (1e9 + age, 1e9 + age))
        return path

    old, used, new = entry("a", 400, 0), entry("b", 400, 1), entry("c", 400, 2)
    os.utime(used, (1e9 + 3, 1e9 + 3))  # read most recently
    removed = jax_backend.prune_cache(str(tmp_path), limit=900)
    assert removed == [str(old)]
    assert not old.exists() and not (tmp_path / "a.json").exists()
    assert used.exists() and new.exists()
    assert jax_backend.prune_cache(str(tmp_path), limit=10_000) == []
    monkeypatch.setenv("GROUPCOV_CACHE_MAX_MB", "0.0005")  # 524 bytes
    assert jax_backend.cache_limit_bytes() == 524
    assert jax_backend.prune_cache(str(tmp_path)) == [str(new)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b", "b.json"]


def test_jax_cache_is_trimmed_once_per_process(tmp_path, monkeypatch):
    """JAX's executables (``<key>-cache``, with ``<key>-atime`` only when JAX's own limit
    was on) are trimmed when the cache is first enabled; JAX's own limit stays off."""
    import os

    import jax

    from groupcov.inference import jax_backend

    folder = tmp_path / "jax"
    folder.mkdir()
    for age, key in enumerate(["k0", "k1", "k2"]):
        path = folder / f"{key}-cache"
        path.write_bytes(b"x" * 300)
        os.utime(path, (1e9 + age, 1e9 + age))
    (folder / "k0-atime").write_bytes(b"12345678")
    monkeypatch.setenv("GROUPCOV_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("GROUPCOV_CACHE_MAX_MB", str(700 / 2**20))
    monkeypatch.setattr(jax_backend, "_PRUNED", set())
    jax_backend.enable_compilation_cache()
    assert sorted(p.name for p in folder.iterdir()) == ["k1-cache", "k2-cache"]
    assert jax.config.values["jax_compilation_cache_max_size"] == -1
    (folder / "k3-cache").write_bytes(b"x" * 300)
    jax_backend.enable_compilation_cache()  # already trimmed in this process
    assert len(list(folder.iterdir())) == 3


def _all_draw_statistics(draws, name):
    from groupcov.diagnostics import half_moments, moment_statistics

    return moment_statistics(*half_moments(draws), draws.shape[1] // 2)


@pytest.mark.parametrize("algorithm", ["nuts", "jittered"])
def test_thinned_fit_has_moments_of_every_draw(model, algorithm, tmp_path):
    """The sampler's running moments of a thinned fit equal the mean, sd and split R-hat
    of the unthinned fit's draws (same seed: the same chain); they survive save/load."""
    kw = dict(draws=40, tune=100, chains=2, random_seed=3, progressbar=False,
              var_names=["mu", "corr"], algorithm=algorithm)
    full = model.fit(**{**kw, "draws": 160})
    thinned = model.fit(**kw, thin=4)
    assert full.moments is None and np.isnan(full.diagnostics().max_r_hat_all_draws)
    moments = thinned.moments
    assert set(moments.data_vars) == {"mu", "corr", "lp"}
    assert moments.attrs["draws_per_chain"] == 160 and moments.attrs["thin"] == 4
    assert moments["corr"].dims == ("statistic", "group", "feature", "feature_")
    for name in ("mu", "corr"):
        draws = full.posterior[name].values
        expected = _all_draw_statistics(draws, name)
        for statistic in ("mean", "sd", "r_hat"):
            np.testing.assert_allclose(
                moments[name].sel(statistic=statistic).values, expected[statistic],
                rtol=1e-10, atol=1e-13,
            )
    lp = _all_draw_statistics(full.sample_stats["lp"].values, "lp")
    np.testing.assert_allclose(moments["lp"].values, [lp["mean"], lp["sd"], lp["r_hat"]],
                               rtol=1e-10)
    r_hat = np.concatenate([_all_draw_statistics(full.posterior["mu"].values, "mu")["r_hat"]
                            .ravel(),
                            _all_draw_statistics(full.posterior["corr"].values, "corr")
                            ["r_hat"][:, 1, 0]])
    assert thinned.diagnostics().max_r_hat_all_draws == pytest.approx(r_hat.max(), rel=1e-10)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        path = thinned.save(tmp_path / "fit.nc")
        loaded = groupcov.GroupCovResult.load(path)
        assert "moments" in thinned.idata.groups()
    np.testing.assert_allclose(loaded.moments["mu"].values, moments["mu"].values)
    assert loaded.diagnostics() == thinned.diagnostics()


def test_thinned_fit_with_nutpie_has_moments_of_every_draw(model):
    """The other back-ends sample ``draws * thin`` and keep every ``thin``-th, the last
    of each block as the NumPyro program does; the moments cover all of them."""
    pytest.importorskip("nutpie")
    res = model.fit(sampler="nutpie", draws=30, tune=100, chains=2, thin=3, random_seed=1,
                    progressbar=False, var_names=["mu", "sigma"])
    assert res.posterior.sizes["draw"] == 30
    assert set(res.moments.data_vars) == {"mu", "sigma", "lp"}
    assert res.moments.attrs["draws_per_chain"] == 90
    mean = res.moments["mu"].sel(statistic="mean").values
    kept = res.posterior["mu"].mean(("chain", "draw")).values
    np.testing.assert_allclose(mean, kept, atol=4 * res.moments["mu"].sel(statistic="sd")
                               .values.max() / np.sqrt(30))
    assert np.isfinite(res.diagnostics().max_r_hat_all_draws)


def test_thinned_fit_judges_convergence_by_every_draw():
    """With few kept draws R-hat of the kept ones is noise; the check uses all draws."""
    import xarray as xr

    from groupcov.result import sampling_problems

    rng = np.random.default_rng(3)
    lp = rng.normal(size=(4, 20))
    lp[0] += 1.5  # kept draws of one chain look off
    stats = xr.Dataset({"lp": (("chain", "draw"), lp)})
    assert "chains disagree on the log density" in sampling_problems(stats)[0]
    fine = xr.Dataset({"lp": (("statistic",), [0.0, 1.0, 1.002])},
                      coords={"statistic": ["mean", "sd", "r_hat"]})
    assert sampling_problems(stats, None, fine) == []
    off = fine.assign(lp=(("statistic",), [0.0, 1.0, 1.05]))
    assert "R-hat of lp 1.050" in sampling_problems(xr.Dataset({"lp": (("chain", "draw"),
                                                    rng.normal(size=(4, 20)))}), None, off)[0]


@pytest.mark.parametrize("mapping", ["pmap", "vmap"])
def test_mapped_chains_compile_once_per_signature(mapping, monkeypatch):
    """The mapped chain function is compiled ahead of its first call (the compiler's
    heap is handed back before sampling), once per shapes and dtypes of its arguments,
    and gives what the plain mapped function gives."""
    import jax
    import jax.numpy as jnp

    from groupcov.inference import jax_backend

    if mapping == "pmap" and jax.local_device_count() < 2:
        pytest.skip("one CPU device")

    def chain(key, data):
        return jnp.sum(data[0]) + jax.random.normal(key)

    run = jax_backend._map_chains(chain, 2, mapping)
    assert isinstance(run, jax_backend.CompiledOnFirstCall)
    lowered = []
    real_lower = run.fn.lower

    def counting_lower(*args):
        lowered.append(args)
        return real_lower(*args)

    trims = []
    monkeypatch.setattr(run.fn, "lower", counting_lower, raising=False)
    monkeypatch.setattr(jax_backend, "release_free_heap", lambda: trims.append(1))
    keys = jax_backend.chain_keys(1, 2)
    plain = jax.pmap(chain, in_axes=(0, None)) if mapping == "pmap" else jax.vmap(
        chain, in_axes=(0, None))
    for data in [(np.arange(3.0),), (np.arange(3.0) + 1,), (np.arange(5.0),)]:
        np.testing.assert_allclose(run(keys, data), plain(keys, data), rtol=1e-12)
    assert len(lowered) == 2 and len(trims) == 2  # shapes (3,) and (5,)


def test_release_free_heap_runs():
    from groupcov.inference.jax_backend import release_free_heap

    assert release_free_heap() is None


def test_compiler_options_on_cpu_and_user_flags(monkeypatch):
    """The samplers' XLA:CPU options apply on the CPU unless XLA_FLAGS sets them."""
    import jax

    from groupcov.inference import jax_backend

    if jax.default_backend() != "cpu":
        pytest.skip("CPU only")
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
    assert jax_backend.compiler_options() == {"xla_cpu_use_fusion_emitters": False}
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_use_fusion_emitters=true")
    assert jax_backend.compiler_options() is None


def test_compile_lowered_same_values_and_unknown_option(monkeypatch):
    """Compiled with the options, a program gives the default compilation's values; an
    option this XLA does not know falls back to the default compilation, and other
    compile errors still raise."""
    import jax
    import jax.numpy as jnp

    from groupcov.inference import jax_backend

    def f(x):
        return jnp.sum(jnp.tanh(x) * jnp.exp(-x**2)) + jnp.cumsum(x)[-1]

    x = jnp.linspace(-3.0, 3.0, 1001)
    lowered = jax.jit(jax.value_and_grad(f)).lower(x)
    value, grad = jax_backend.compile_lowered(lowered)(x)
    ref_value, ref_grad = lowered.compile()(x)
    np.testing.assert_allclose(value, ref_value, rtol=1e-12)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-12, atol=1e-15)

    monkeypatch.setattr(jax_backend, "compiler_options", lambda: {"xla_cpu_no_such": True})
    np.testing.assert_allclose(jax_backend.compile_lowered(lowered)(x)[0], ref_value)

    class Broken:
        def compile(self, compiler_options=None):
            raise RuntimeError("out of memory")

    with pytest.raises(RuntimeError, match="out of memory"):
        jax_backend.compile_lowered(Broken())
