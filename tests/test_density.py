"""The default model's JAX log density against the PyMC model it restates.

``groupcov.model.density`` computes the posterior density and the posterior variables
without PyMC; the PyMC model of ``build_model`` is the reference: log density (up to
an additive constant), gradient and every deterministic at random points, for every
pooling mode, with one and several features, and with missing values.
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

import groupcov
from groupcov.datasets import two_groups
from groupcov.model import density
from groupcov.model.density import (
    log_density_and_outputs,
    output_dims,
    parameter_shapes,
)
from groupcov.result import group_log_likelihood

jax.config.update("jax_enable_x64", True)

MODES = list(itertools.product(["pooled", "unpooled", "hierarchical"], repeat=2))


def _frame(p: int, missing: bool, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    features = list("abcd")[:p]
    scale = np.array([1.0, 3.0, 10.0, 0.1])[:p]
    shift = np.array([0.0, 5.0, -3.0, 1.0])[:p]
    df = pd.DataFrame(rng.normal(size=(48, p)) * scale + shift, columns=features)
    # three groups of 15 rows and one of 3 (n <= p for p = 3, 4)
    df["group"] = np.repeat(["g1", "g2", "g3", "g4"], [15, 15, 15, 3])
    if missing:
        for row, col in [(2, 0), (20, 1), (21, 1), (22, p - 1), (46, 0)]:
            df.iloc[row, col] = np.nan
    return df


def _both(df: pd.DataFrame, means: str, covariance: str):
    features = [c for c in df.columns if c != "group"]
    gm = groupcov.GroupCovModel(df, group="group", features=features, means=means,
                                covariance=covariance)
    spec = gm._density_spec()  # before .model: an accessed model is sampled as PyMC's
    return gm, gm.model, spec


def _random_points(shapes: dict, rng, count: int = 3, spread: float = 0.8):
    return [{k: rng.normal(size=s) * spread for k, s in shapes.items()} for _ in range(count)]


# every pooling mode with one and three features; two, four and missing values (which
# change only the likelihood) for a few
CASES = [
    *((means, cov, p, False) for means, cov in MODES for p in (1, 3)),
    ("hierarchical", "hierarchical", 2, False),
    ("hierarchical", "hierarchical", 4, False),
    ("hierarchical", "hierarchical", 3, True),
    ("pooled", "unpooled", 3, True),
    ("unpooled", "pooled", 3, True),
]


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("means,covariance,p,missing", CASES)
def test_log_density_gradient_and_outputs_equal_the_pymc_model(means, covariance, p, missing):
    gm, model, spec = _both(_frame(p, missing), means, covariance)
    shapes = parameter_shapes(spec)
    assert list(shapes) == [v.name for v in model.value_vars]
    names = [name for name, _ in output_dims(spec)]
    assert names == [v.name for v in model.unobserved_value_vars]
    for name, dims in output_dims(spec):
        assert dims == list(model.named_vars_to_dims.get(name, ())), name

    logp_ref = model.compile_logp()
    dlogp_ref = model.compile_dlogp()
    outputs_ref = model.compile_fn(
        model.unobserved_value_vars, inputs=model.value_vars, on_unused_input="ignore"
    )
    data = {k: jnp.asarray(v) for k, v in gm._values.items()}

    def logp(params):
        return log_density_and_outputs(params, data, spec)[0]

    value_and_grad = jax.jit(jax.value_and_grad(logp))
    outputs = jax.jit(lambda params: log_density_and_outputs(params, data, spec)[1:])
    points = _random_points(shapes, np.random.default_rng(p + 10 * missing))
    ours, ref = [], []
    for point in points:
        value, grad = value_and_grad({k: jnp.asarray(v) for k, v in point.items()})
        ours.append(float(value))
        ref.append(float(logp_ref(point)))
        flat = np.concatenate([np.ravel(grad[k]) for k in shapes])
        np.testing.assert_allclose(flat, dlogp_ref(point), rtol=1e-8, atol=1e-8)
        values, group_loglik = outputs(point)
        for name, a, b in zip(names, values, outputs_ref(point), strict=True):
            np.testing.assert_allclose(np.asarray(a), b, rtol=1e-10, atol=1e-12, err_msg=name)
        # each group's likelihood in the data's units, as the result computes it
        at = dict(zip(names, values, strict=True))
        expected = group_log_likelihood(gm.stats, np.asarray(at["mu"]), np.asarray(at["cov"]))
        np.testing.assert_allclose(np.asarray(group_loglik), expected, rtol=1e-10)
    # equal up to one additive constant (PyMC's own log density of the transformed
    # Beta prior of the CPCs' population location is off by ~1e-8, a constant)
    ours, ref = np.array(ours), np.array(ref)
    np.testing.assert_allclose(ours - ours[0], ref - ref[0], rtol=1e-10, atol=1e-9)
    assert np.all(np.abs(ours - ref) < 1e-6)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_matrix_path_for_many_features_equals_the_unrolled_one(monkeypatch):
    # above UNROLL_MAX_P features (UNROLL_MAX_P_FEW_GROUPS with few groups) the factor and
    # the solves are batched matrix code: same density, gradient and outputs
    gm, _, spec = _both(_frame(3, True), "hierarchical", "hierarchical")
    data = {k: jnp.asarray(v) for k, v in gm._values.items()}
    rng = np.random.default_rng(0)
    points = _random_points(parameter_shapes(spec), rng)
    unrolled = [log_density_and_outputs(pt, data, spec) for pt in points]

    def gradient(pt):
        return jax.grad(lambda q: log_density_and_outputs(q, data, spec).logp)(pt)

    grads_unrolled = [gradient(pt) for pt in points]
    # which form a model gets by default
    assert density._entrywise(spec)
    assert density._entrywise(spec._replace(n_groups=50, n_features=10))
    assert not density._entrywise(spec._replace(n_groups=50, n_features=11))
    assert not density._entrywise(spec._replace(n_groups=49, n_features=7))
    assert density._entrywise(spec._replace(n_groups=49, n_features=6))
    monkeypatch.setattr(density, "UNROLL_MAX_P", 2)
    monkeypatch.setattr(density, "UNROLL_MAX_P_FEW_GROUPS", 2)
    matrix = [log_density_and_outputs(pt, data, spec) for pt in points]
    for (a, outs_a, ll_a), (b, outs_b, ll_b) in zip(unrolled, matrix, strict=True):
        np.testing.assert_allclose(np.asarray(ll_a), np.asarray(ll_b), rtol=1e-10)
        assert abs(float(a) - float(b)) < 1e-9 * max(1.0, abs(float(a)))
        for x, y in zip(outs_a, outs_b, strict=True):
            np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-10, atol=1e-12)
    for pt, g_a in zip(points, grads_unrolled, strict=True):
        g_b = gradient(pt)
        for name in g_a:
            np.testing.assert_allclose(np.asarray(g_a[name]), np.asarray(g_b[name]),
                                       rtol=1e-8, atol=1e-8, err_msg=name)


def test_cholesky_entries_are_exact_for_extreme_correlations():
    # CPCs within 1e-26 of +-1 (atanh 30) and of 0: the entry-by-entry factor and its
    # array form equal groupcov.distributions' (log-space) correlation factor times the
    # sds, rows keep their norm and the log diagonal stays finite
    from groupcov.distributions.lkj import corr_cholesky_from_unconstrained

    p = 4
    w = np.array([
        [30.0, -30.0, 1e-9, 0.0, 2.5, -0.7],
        [0.0] * 6,
        [-12.0, 3.0, 0.1, 20.0, -5.0, 1.0],
    ])
    log_sd = np.array([[0.0, 1.0, -2.0, 0.5]] * 3)
    theta = jnp.asarray(np.concatenate([log_sd, w], axis=1))
    entries, log_diag = density._chol_entries(theta, p)
    corr = corr_cholesky_from_unconstrained(w, p).eval()
    reference = np.exp(log_sd)[:, :, None] * corr
    for i in range(p):
        for j in range(i + 1):
            np.testing.assert_allclose(np.asarray(entries[i][j]), reference[:, i, j],
                                       rtol=1e-12, atol=1e-300)
        norm = sum(np.asarray(entries[i][j]) ** 2 for j in range(i + 1))
        np.testing.assert_allclose(norm, np.exp(2 * log_sd[:, i]), rtol=1e-13)
    # stacked, and the array form used for many features
    for entrywise in (True, False):
        np.testing.assert_allclose(np.asarray(density._chol(theta, p, entrywise)), reference,
                                   rtol=1e-12, atol=1e-300)
    # log diagonal from logs, not from the (possibly underflowing) entries
    expected = np.log(np.diagonal(reference, axis1=1, axis2=2))
    np.testing.assert_allclose(np.stack([np.asarray(v) for v in log_diag], 1), expected,
                               rtol=1e-12)
    assert np.all(np.isfinite(expected))


def test_fit_with_the_density_never_builds_the_pymc_model(monkeypatch):
    sim = two_groups(n_per_group=40, seed=2)
    m = groupcov.GroupCovModel(sim.data, group="group", features=sim.features)

    def refuse():
        raise AssertionError("the PyMC model was built")

    monkeypatch.setattr(m, "_built_model", refuse)
    res = m.fit(draws=30, tune=30, chains=2, random_seed=1, progressbar=False,
                var_names=["mu", "cov", "sd_tau"])
    assert set(res.posterior.data_vars) == {"mu", "cov", "sd_tau"}
    # the sampler computed each group's log-likelihood with the draws
    loglik = res.idata.log_likelihood["obs"]
    assert loglik.dims == ("chain", "draw", "group")
    expected = group_log_likelihood(m.stats, res.posterior["mu"].values,
                                    res.posterior["cov"].values)
    np.testing.assert_allclose(loglik.values, expected, rtol=1e-10)
    assert res.posterior["cov"].dims == ("chain", "draw", "group", "feature", "feature_")
    with pytest.raises(ValueError, match="not variables of the model"):
        m.fit(draws=5, tune=5, chains=1, progressbar=False, var_names=["nope"])


def test_the_density_and_the_pymc_translation_sample_the_same_posterior():
    # the same model sampled through its JAX density (default) and through the PyMC
    # model translated to JAX (what an extended model uses): equal within Monte Carlo error
    sim = two_groups(n_per_group=60, seed=4)
    fits = {}
    for source in ("density", "pymc"):
        m = groupcov.GroupCovModel(sim.data, group="group", features=sim.features)
        if source == "pymc":
            m.model  # noqa: B018  (an accessed model is sampled as a PyMC model)
        fits[source] = m.fit(draws=1000, tune=700, random_seed=5, progressbar=False)
    post = {k: f.posterior for k, f in fits.items()}
    for name in ("mu", "sigma", "corr", "mu_tau", "sd_tau"):
        a, b = (post[k][name] for k in ("density", "pymc"))
        diff = (a.mean(("chain", "draw")) - b.mean(("chain", "draw"))).values
        sd = np.sqrt(a.var(("chain", "draw")).values + b.var(("chain", "draw")).values)
        # ESS of at least ~1,000 per fit: 5 Monte Carlo standard errors of a difference
        assert np.all(np.abs(diff) <= 5 * sd / np.sqrt(1000) + 1e-9), name
