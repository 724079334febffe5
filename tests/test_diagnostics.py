"""groupcov.diagnostics against ArviZ 0.23, quantity by quantity."""

import warnings

import numpy as np
import pytest

from groupcov.diagnostics import ess_bulk, ess_tail, hdi, rank_diagnostics, rhat, summarize


def _ar1(rng, chains, draws, k, phi):
    e = rng.standard_normal((chains, draws, k))
    x = np.empty_like(e)
    x[:, 0] = e[:, 0]
    for t in range(1, draws):
        x[:, t] = phi * x[:, t - 1] + e[:, t]
    return x


def _hard_cases(rng, chains, draws, phi):
    x = _ar1(rng, chains, draws, 6, phi)
    x[..., 1] += np.arange(chains)[:, None]  # chains disagree
    x[..., 2] = 3.0  # constant
    x[..., 3] = np.round(x[..., 3])  # ties
    x[..., 4] = np.exp(x[..., 4])  # skewed
    return x


def _arviz(x, hdi_prob=0.94):
    import arviz as az
    from arviz.stats.diagnostics import _ess_bulk, _ess_tail, _rhat_rank

    k = x.shape[-1]
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore")
        intervals = np.array([az.hdi(x[..., j].ravel(), hdi_prob=hdi_prob) for j in range(k)])
        return {
            "mean": x.mean(axis=(0, 1)),
            "sd": x.reshape(-1, k).std(axis=0, ddof=1),
            "hdi_low": intervals[:, 0],
            "hdi_high": intervals[:, 1],
            "r_hat": np.array([_rhat_rank(x[..., j]) for j in range(k)]),
            "ess_bulk": np.array([_ess_bulk(x[..., j]) for j in range(k)]),
            "ess_tail": np.array([_ess_tail(x[..., j]) for j in range(k)]),
        }


@pytest.mark.parametrize("chains", [1, 4])
@pytest.mark.parametrize("draws", [5, 51, 200])
@pytest.mark.parametrize("phi", [-0.7, 0.0, 0.9, 0.999])
def test_summarize_equals_arviz(chains, draws, phi):
    rng = np.random.default_rng(draws + 10 * chains)
    x = _hard_cases(rng, chains, draws, phi)
    got = summarize(x, chunk=2)  # several chunks, on threads
    want = _arviz(x)
    for key, values in want.items():
        np.testing.assert_allclose(
            got[key], values, rtol=1e-12, atol=1e-12, equal_nan=True, err_msg=key
        )


def test_summarize_hdi_prob_and_nan_quantities():
    rng = np.random.default_rng(3)
    x = _ar1(rng, 4, 300, 3, 0.5)
    x[2, 10, 1] = np.nan
    got = summarize(x, hdi_prob=0.5)
    want = _arviz(np.where(np.isnan(x), 0.0, x), hdi_prob=0.5)
    np.testing.assert_allclose(got["hdi_low"][[0, 2]], want["hdi_low"][[0, 2]], rtol=1e-12)
    np.testing.assert_allclose(got["hdi_high"][[0, 2]], want["hdi_high"][[0, 2]], rtol=1e-12)
    for key in ("r_hat", "ess_bulk", "ess_tail"):
        assert np.isnan(got[key][1]) and np.isfinite(got[key][[0, 2]]).all(), key


def test_shapes_wrappers_and_threads_change_nothing():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 40, 2, 5))
    s = summarize(x)
    assert all(v.shape == (2, 5) for v in s.values())
    np.testing.assert_array_equal(rhat(x), s["r_hat"])
    np.testing.assert_array_equal(ess_bulk(x), s["ess_bulk"])
    np.testing.assert_array_equal(ess_tail(x), s["ess_tail"])
    np.testing.assert_array_equal(hdi(x)[..., 1], s["hdi_high"])
    r, e = rank_diagnostics(x, chunk=3, workers=1)
    r3, e3 = rank_diagnostics(x, chunk=3, workers=3)
    np.testing.assert_array_equal(r, r3)
    np.testing.assert_array_equal(e, e3)
    np.testing.assert_array_equal(r, s["r_hat"])


def test_diagnostics_detect_what_they_should():
    rng = np.random.default_rng(1)
    good = rng.standard_normal((4, 1000, 1))
    stuck = good + np.array([0.0, 0.0, 0.0, 1.0])[:, None, None]
    sticky = _ar1(rng, 4, 1000, 1, 0.99)
    assert rhat(good)[0] < 1.01 and rhat(stuck)[0] > 1.05
    assert ess_bulk(good)[0] > 3000 and ess_bulk(sticky)[0] < 100
    assert ess_tail(good)[0] > 2500 and ess_tail(sticky)[0] < 100


def test_tiny_and_degenerate_inputs_warn_nothing():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        one = summarize(np.ones((1, 1, 2)))
        assert np.isnan(one["sd"]).all() and np.isnan(one["r_hat"]).all()
        assert (one["hdi_low"] == 1.0).all() and (one["mean"] == 1.0).all()
        x = np.ones((4, 100, 2))
        x[..., 1] = np.nan
        s = summarize(x)
    assert s["ess_bulk"][0] == 400 and np.isnan(s["r_hat"]).all()  # ArviZ: split size
    assert np.isnan(s["ess_bulk"][1]) and np.isnan(s["mean"][1])


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="unknown summary columns"):
        summarize(np.zeros((2, 10)), columns=("median",))
    with pytest.raises(ValueError, match="hdi_prob"):
        summarize(np.zeros((2, 10)), hdi_prob=1.5)
    with pytest.raises(ValueError, match=r"\(chain, draw"):
        summarize(np.zeros(10))


def test_sampling_problems_name_divergences_and_a_stuck_chain():
    import xarray as xr

    from groupcov.result import sampling_problems

    rng = np.random.default_rng(3)
    lp = rng.normal(size=(4, 1000))
    diverging = np.zeros((4, 1000), dtype=bool)

    def stats(lp, diverging):
        return xr.Dataset({"lp": (("chain", "draw"), lp),
                           "diverging": (("chain", "draw"), diverging)})

    assert sampling_problems(stats(lp, diverging)) == []
    assert sampling_problems(None) == []
    # a chain 5 sds away on the log density
    shifted = lp.copy()
    shifted[2] += 5.0
    (message,) = sampling_problems(stats(shifted, diverging))
    assert "R-hat of lp" in message and float(message.split("lp ")[1][:4]) > 1.5
    diverging[1, 7] = diverging[3, 9] = True
    (message,) = sampling_problems(stats(lp, diverging))
    assert message.startswith("2 divergent transitions")
    # one chain: no R-hat
    assert sampling_problems(stats(shifted[:1], diverging[:1] & False)) == []


def test_sampling_problems_check_the_between_group_scales_and_tree_depth():
    import xarray as xr

    from groupcov.result import sampling_problems

    rng = np.random.default_rng(4)
    chains, draws = 4, 500
    ok = xr.Dataset({
        "lp": (("chain", "draw"), rng.normal(size=(chains, draws))),
        "reached_max_treedepth": (("chain", "draw"), np.zeros((chains, draws), bool)),
    })
    feature = ["x", "y"]
    scales = rng.lognormal(size=(chains, draws, 2))
    posterior = xr.Dataset(
        {"sd_tau": (("chain", "draw", "feature"), scales),
         "corr_tau": (("chain", "draw"), rng.lognormal(size=(chains, draws)))},
        coords={"feature": feature},
    )
    assert sampling_problems(ok, posterior) == []
    # a random walk: every chain wanders (ESS of a few), and the chains disagree
    walk = np.cumsum(rng.normal(size=(chains, draws)), axis=1)
    stuck = posterior.assign(corr_tau=(("chain", "draw"), np.exp(walk / 10)))
    (message,) = sampling_problems(ok, stuck)
    assert message.startswith("chains disagree on the between-group scale corr_tau (R-hat")
    # one chain of AR(1) draws, rho 0.9: no R-hat to compute, ESS about
    # draws * (1 - rho) / (1 + rho) = 26, below 100
    ar = np.zeros(draws)
    for t in range(1, draws):
        ar[t] = 0.9 * ar[t - 1] + rng.normal() * np.sqrt(1 - 0.9**2)
    slow = posterior.isel(chain=[0]).assign(
        sd_tau=(("chain", "draw", "feature"), np.stack([np.exp(ar), scales[0, :, 1]], -1)[None])
    )
    problems = sampling_problems(ok.isel(chain=[0]), slow)
    assert len(problems) == 1 and "bulk ESS below 100" in problems[0], problems
    ess = float(problems[0].split("sd_tau[x] (ESS ")[1].split(")")[0])
    assert 10 < ess < 60
    assert "sd_tau[y]" not in problems[0] and "lp" not in problems[0]
    # the same with fewer than 100 draws per chain: too few to judge ESS
    assert sampling_problems(ok.isel(chain=[0], draw=slice(80)), slow.isel(draw=slice(80))) == []
    hit = ok.copy()
    hit["reached_max_treedepth"] = hit["reached_max_treedepth"].copy(
        data=np.arange(chains * draws).reshape(chains, draws) % 100 == 0
    )
    (message,) = sampling_problems(hit)
    assert message.startswith("20 of 2000 draws stopped at the maximum tree depth")


@pytest.mark.parametrize(("chains", "draws"), [(4, 200), (2, 301), (1, 50)])
def test_moment_statistics_are_arviz_split_rhat_mean_and_sd(chains, draws):
    """From per-half moments alone: ArviZ's split R-hat (no rank normalization), and
    the mean and sd of the draws split R-hat uses (the middle of an odd count left out)."""
    import arviz as az

    from groupcov.diagnostics import half_moments, moment_statistics

    rng = np.random.default_rng(chains * draws)
    x = _hard_cases(rng, chains, draws, 0.7)
    x = np.delete(x, 2, axis=-1)  # the constant quantity: below
    stats = moment_statistics(*half_moments(x), draws // 2)
    half = draws // 2
    used = np.concatenate([x[:, :half], x[:, draws - half:]], axis=1).reshape(-1, x.shape[-1])
    np.testing.assert_allclose(stats["mean"], used.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(stats["sd"], used.std(axis=0, ddof=1), rtol=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = np.array([
            az.rhat(az.convert_to_dataset(x[..., j]), method="split")["x"].item()
            for j in range(x.shape[-1])
        ])
    np.testing.assert_allclose(stats["r_hat"], expected, rtol=1e-12)
    if chains > 1:  # chains that disagree
        assert stats["r_hat"][1] > 1.05


def test_moment_statistics_edge_cases():
    from groupcov.diagnostics import half_moments, moment_statistics

    x = np.full((2, 10, 2), 0.3)
    x[..., 0] += 1e-17 * np.arange(10)  # constant up to rounding
    stats = moment_statistics(*half_moments(x), 5)
    assert np.isnan(stats["r_hat"]).all()
    np.testing.assert_allclose(stats["mean"], 0.3)
    with pytest.raises(ValueError, match=r"shaped \(chain, 2, \.\.\.\)"):
        moment_statistics(np.zeros((2, 3)), np.zeros((2, 3)), 5)
    with pytest.raises(ValueError, match="at least 2 draws"):
        moment_statistics(np.zeros((2, 2)), np.zeros((2, 2)), 1)
    with pytest.raises(ValueError, match="draws must be shaped"):
        half_moments(np.zeros(4))
