"""Simulation-based calibration (Talts, Betancourt, Simpson, Vehtari & Gelman 2018).

For each simulation: draw parameters from the model's own prior, simulate rows with
NumPy, fit, and record the rank of each true parameter among ``L`` thinned posterior
draws. If prior, likelihood and sampler agree, every rank is uniform on ``0..L``.
Ranks are tested per parameter with a chi-square test on ``bins`` equal-width bins.

The prior must not depend on the data, so the model is built with a fixed
standardization ``(0, 1)`` and a fixed ``mu_sigma``; its prior draws are then in the
same units as the simulated rows.
"""

from __future__ import annotations

import sys
from typing import NamedTuple

import numpy as np
import pymc as pm
from scipy import stats as sps

from groupcov.api import GroupCovModel
from groupcov.validate.batch import BatchSampler, stats_from_rows

__all__ = [
    "CONFIGS",
    "CONTROLS",
    "SBCConfig",
    "SBCResult",
    "SBCSettings",
    "build_sbc_model",
    "chi2_uniformity",
    "loglik",
    "parameter_labels",
    "prior_check",
    "prior_draws",
    "ranks_of",
    "run_sbc",
]

#: Deliberately miscalibrated posteriors, as (scale, shift): every thinned draw ``d``
#: becomes ``m + scale * (d - m) + shift * s`` with posterior mean ``m`` and sd ``s``.
CONTROLS = {
    "sd_x0.5": (0.5, 0.0),
    "sd_x0.8": (0.8, 0.0),
    "sd_x1.25": (1.25, 0.0),
    "shift_0.25sd": (1.0, 0.25),
}


class SBCConfig(NamedTuple):
    """One model to calibrate: pooling, number of features, groups and rows per group."""

    means: str
    covariance: str
    p: int
    groups: int = 3
    rows: int = 20
    mu_sigma: float = 1.0

    @property
    def name(self) -> str:
        """Short label, e.g. ``hierarchical-hierarchical-p2``."""
        return f"{self.means}-{self.covariance}-p{self.p}"


class SBCSettings(NamedTuple):
    """Simulation and sampler sizes.

    ``chains * draws / thin`` posterior draws per simulation enter the ranks.
    ``algorithm`` is the NumPyro back-end's (default: what ``GroupCovModel.fit`` would
    use for the configuration's data size).
    """

    sims: int = 200
    draws: int = 300
    tune: int = 300
    chains: int = 2
    thin: int = 6
    batch: int | None = None
    bins: int = 10
    seed: int = 0
    algorithm: str | None = None

    def batch_size(self, config: SBCConfig) -> int:
        """Data sets per sampler call: vectorized NUTS runs in lockstep (each step costs
        the longest trajectory in the batch), which pays only where trajectories are
        alike; hierarchical posteriors vary too much between data sets, so they run
        one at a time unless ``batch`` says otherwise."""
        if self.batch is not None:
            return self.batch
        return 1 if "hierarchical" in (config.means, config.covariance) else 20


CONFIGS = tuple(
    SBCConfig(mode, mode, p) for p in (2, 4) for mode in ("pooled", "unpooled", "hierarchical")
)


class SBCResult(NamedTuple):
    """Ranks and uniformity tests of one configuration.

    Attributes
    ----------
    config : SBCConfig
    settings : SBCSettings
    labels : list of str
        Parameter labels, one per rank column.
    ranks : numpy.ndarray of int, shape ``(sims, K)``
        Rank of each true value among the ``L`` thinned posterior draws.
    control_ranks : dict
        :data:`CONTROLS` name -> ranks from that deliberately miscalibrated posterior
        (e.g. ``"sd_x0.5"``: every draw pulled halfway to the posterior mean). They
        measure the power of the test.
    n_draws : int
        ``L``, the thinned draws per simulation (ranks lie in ``0..L``).
    chi2, pvalues : numpy.ndarray, shape ``(K,)``
        Chi-square statistic and p-value per parameter.
    control_pvalues : dict
        :data:`CONTROLS` name -> p-values of the miscalibrated posterior.
    divergences : numpy.ndarray of int, shape ``(sims,)``
        Divergent transitions per simulation.
    min_ess : numpy.ndarray, shape ``(sims,)``
        Smallest bulk ESS over parameters of each fit (before thinning).
    seconds : float
        Sampling wall time, compilation included.
    """

    config: SBCConfig
    settings: SBCSettings
    labels: list
    ranks: np.ndarray
    control_ranks: dict
    n_draws: int
    chi2: np.ndarray
    pvalues: np.ndarray
    control_pvalues: dict
    divergences: np.ndarray
    min_ess: np.ndarray
    seconds: float

    @property
    def pvalues_narrow(self) -> np.ndarray:
        """P-values of the posterior narrowed to half its sd (``"sd_x0.5"``)."""
        return self.control_pvalues["sd_x0.5"]


def build_sbc_model(config: SBCConfig, seed: int = 0) -> GroupCovModel:
    """The model of ``config`` with a data-free prior (fixed standardization and mu_sigma)."""
    rng = np.random.default_rng(seed)
    groups = [f"g{i}" for i in range(config.groups)]
    features = [f"x{j}" for j in range(config.p)]
    x = rng.standard_normal((config.groups, config.rows, config.p))
    return GroupCovModel(
        stats_from_rows(x, groups, features), means=config.means,
        covariance=config.covariance, priors={"mu_sigma": config.mu_sigma},
        standardization=(0.0, 1.0),
    )


def ranked_variables(config: SBCConfig) -> list[str]:
    """Variables whose every distinct element is ranked."""
    names = ["mu", "sigma", "corr", "cov"]
    if config.means == "hierarchical":
        names += ["mu_pop", "mu_tau"]
    if config.covariance == "hierarchical":
        names += ["sigma_pop", "sd_tau"] + (["corr_tau", "corr_pop"] if config.p > 1 else [])
    return names


def prior_draws(gcm: GroupCovModel, n: int, var_names, seed: int) -> dict:
    """``n`` draws of ``var_names`` from the model's prior, each ``(n, ...)``."""
    prior = pm.sample_prior_predictive(
        draws=n, model=gcm._built_model(), var_names=list(var_names), random_seed=seed,
        compile_kwargs={"mode": "FAST_COMPILE"},
    ).prior
    return {v: prior[v].values[0] for v in var_names}


def parameter_labels(config: SBCConfig) -> list[str]:
    """Labels of the ranked quantities; pooled parts count once (group ``all``).

    Examples
    --------
    >>> parameter_labels(SBCConfig("pooled", "unpooled", 2, groups=2))[:3]
    ['mu[all,x0]', 'mu[all,x1]', 'sigma[g0,x0]']
    """
    return [label for label, _ in _parameter_index(config)] + ["loglik"]


def _parameter_index(config: SBCConfig) -> list[tuple[str, tuple]]:
    p, groups = config.p, range(config.groups)
    pairs = list(zip(*np.tril_indices(p, -1), strict=True))

    def group_list(mode):
        return [(0, "all")] if mode == "pooled" else [(g, f"g{g}") for g in groups]

    out = []
    for g, lab in group_list(config.means):
        out += [(f"mu[{lab},x{j}]", ("mu", g, j)) for j in range(p)]
    for g, lab in group_list(config.covariance):
        out += [(f"sigma[{lab},x{j}]", ("sigma", g, j)) for j in range(p)]
    for g, lab in group_list(config.covariance):
        out += [(f"corr[{lab},x{i},x{j}]", ("corr", g, i, j)) for i, j in pairs]
    if config.means == "hierarchical":
        for name in ("mu_pop", "mu_tau"):
            out += [(f"{name}[x{j}]", (name, j)) for j in range(p)]
    if config.covariance == "hierarchical":
        for name in ("sigma_pop", "sd_tau"):
            out += [(f"{name}[x{j}]", (name, j)) for j in range(p)]
        if p > 1:
            out.append(("corr_tau", ("corr_tau",)))
            out += [(f"corr_pop[x{i},x{j}]", ("corr_pop", i, j)) for i, j in pairs]
    return out


def _flatten(draws: dict, index: list) -> np.ndarray:
    """Stack the indexed elements on a last axis: ``(..., K)``."""
    cols = []
    for _, (name, *idx) in index:
        arr = draws[name]
        cols.append(arr[(..., *idx)] if idx else arr)
    return np.stack(cols, axis=-1)


def loglik(mean, scatter, n, mu, cov) -> np.ndarray:
    """Gaussian log-likelihood of groups' rows from their statistics, summed over groups.

    ``mean (G, p)``, ``scatter (G, p, p)``, ``n (G,)``; ``mu (..., G, p)``,
    ``cov (..., G, p, p)``; returns ``(...)``.

    Examples
    --------
    >>> x = np.array([[[0.0], [2.0]]])
    >>> float(loglik(x.mean(1), np.array([[[2.0]]]), np.array([2]), np.zeros((1, 1)),
    ...              np.ones((1, 1, 1))))  # log N(0|0,1) + log N(2|0,1)
    -3.8378770664093453
    """
    p = mean.shape[-1]
    _, logdet = np.linalg.slogdet(cov)
    inv_s = np.linalg.solve(cov, np.broadcast_to(scatter, cov.shape))
    diff = mean - mu
    maha = np.einsum("...i,...i->...", diff, np.linalg.solve(cov, diff[..., None])[..., 0])
    trace = np.trace(inv_s, axis1=-2, axis2=-1)
    per_group = -0.5 * n * (p * np.log(2 * np.pi) + logdet) - 0.5 * trace - 0.5 * n * maha
    return per_group.sum(-1)


def ranks_of(draws: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Number of draws ``(L, K)`` below the true value ``(K,)``, per column.

    Examples
    --------
    >>> ranks_of(np.array([[0.0, 5.0], [1.0, 6.0], [2.0, 7.0]]), np.array([1.5, 4.0])).tolist()
    [2, 0]
    """
    return (draws < truth).sum(axis=0)


def chi2_uniformity(ranks: np.ndarray, n_draws: int, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Chi-square test that ranks ``(sims, K)`` are uniform on ``0..n_draws``.

    The ``n_draws + 1`` rank values are split into ``bins`` contiguous bins; expected
    counts are proportional to the number of rank values in each bin.

    Returns
    -------
    chi2, pvalue : numpy.ndarray, shape ``(K,)``

    Examples
    --------
    >>> r = np.tile(np.arange(10), 4)[:, None]
    >>> chi2, p = chi2_uniformity(r, 9, 5)
    >>> float(chi2[0]), float(p[0])
    (0.0, 1.0)
    """
    ranks = np.asarray(ranks)
    edges = [b[0] for b in np.array_split(np.arange(n_draws + 1), bins)] + [n_draws + 1]
    counts = np.stack([np.histogram(r, bins=edges)[0] for r in ranks.T])
    expected = ranks.shape[0] * np.diff(edges) / (n_draws + 1)
    chi2 = ((counts - expected) ** 2 / expected).sum(axis=1)
    return chi2, sps.chi2.sf(chi2, bins - 1)


def _bulk_ess(x: np.ndarray) -> np.ndarray:
    """Bulk ESS of ``x (chain, draw, K)`` per column (ArviZ)."""
    import arviz as az

    return np.array([az.ess(np.ascontiguousarray(x[..., k])) for k in range(x.shape[-1])])


def run_sbc(
    config: SBCConfig, settings: SBCSettings | None = None, log=sys.stdout
) -> SBCResult:
    """Run simulation-based calibration of one configuration.

    Parameters
    ----------
    config : SBCConfig
        Model and data sizes.
    settings : SBCSettings, optional
        Number of simulations, sampler sizes, thinning and bins.
    log : file-like, optional
        Progress lines go here (``None``: silent).

    Returns
    -------
    SBCResult
    """
    s = settings or SBCSettings()
    rng = np.random.default_rng([s.seed, config.p, config.groups, config.rows])
    gcm = build_sbc_model(config, seed=int(rng.integers(2**31)))
    names = ranked_variables(config)
    truth = prior_draws(gcm, s.sims, names, seed=int(rng.integers(2**31)))
    index = _parameter_index(config)
    labels = parameter_labels(config)
    sampler = BatchSampler(gcm, draws=s.draws, tune=s.tune, chains=s.chains, var_names=names,
                           algorithm=s.algorithm)
    groups, features = list(gcm.stats.groups), list(gcm.stats.features)
    ranks, divergences, min_ess = [], [], []
    controls = {name: [] for name in CONTROLS}
    seconds = 0.0
    batch = s.batch_size(config)
    for start in range(0, s.sims, batch):
        sims = range(start, min(start + batch, s.sims))
        data = []
        for i in sims:
            x = np.stack([
                rng.multivariate_normal(truth["mu"][i, g], truth["cov"][i, g], size=config.rows)
                for g in range(config.groups)
            ])
            data.append(stats_from_rows(x, groups, features))
        fit = sampler.sample(data, seed=int(rng.integers(2**31)))
        seconds += fit.seconds
        for b, i in enumerate(sims):
            st = data[b]
            post = _flatten({k: v[b] for k, v in fit.draws.items()}, index)  # (C, D, K)
            ll = loglik(st.mean, st.scatter, st.n, fit.draws["mu"][b], fit.draws["cov"][b])
            post = np.concatenate([post, ll[..., None]], axis=-1)
            min_ess.append(_bulk_ess(post).min())
            thinned = post[:, ::s.thin].reshape(-1, post.shape[-1])
            true_i = np.append(
                _flatten({k: v[i] for k, v in truth.items()}, index),
                loglik(st.mean, st.scatter, st.n, truth["mu"][i], truth["cov"][i]),
            )
            ranks.append(ranks_of(thinned, true_i))
            centre, spread = thinned.mean(axis=0), thinned.std(axis=0)
            for name, (scale, shift) in CONTROLS.items():
                wrong = centre + scale * (thinned - centre) + shift * spread
                controls[name].append(ranks_of(wrong, true_i))
            divergences.append(int(fit.diverging[b].sum()))
        if log is not None and (sims.stop % 20 == 0 or sims.stop == s.sims):
            print(f"{config.name}: {sims.stop}/{s.sims} simulations, {seconds:.0f} s, "
                  f"{sum(divergences)} divergences ({sampler.algorithm} draws)", file=log,
                  flush=True)
    n_draws = s.chains * len(range(0, s.draws, s.thin))
    ranks = np.array(ranks)
    controls = {name: np.array(r) for name, r in controls.items()}
    chi2, pvalues = chi2_uniformity(ranks, n_draws, s.bins)
    control_p = {name: chi2_uniformity(r, n_draws, s.bins)[1] for name, r in controls.items()}
    return SBCResult(config, s, labels, ranks, controls, n_draws, chi2, pvalues, control_p,
                     np.array(divergences), np.array(min_ess), seconds)


def _reference_prior(config: SBCConfig, priors, n: int, rng) -> dict:
    """NumPy draws of ``mu``, ``sigma``, ``corr`` from the documented prior (standardized)."""
    from groupcov.distributions.lkj import cpc_beta_parameter

    p, g = config.p, config.groups
    k = p * (p - 1) // 2

    def normal(mode, loc_sd, tau_sd, size):
        shape = (n, 1, size) if mode == "pooled" else (n, g, size)
        if mode != "hierarchical":
            return np.broadcast_to(loc_sd * rng.standard_normal(shape), (n, g, size))
        loc = loc_sd * rng.standard_normal((n, 1, size))
        return loc + np.abs(tau_sd * rng.standard_normal(tau_sd.shape)) * rng.standard_normal(
            shape)

    mu = normal(config.means, config.mu_sigma, np.full((n, 1, p), config.mu_sigma / 2), p)
    log_sd = normal(config.covariance, priors.log_sd_sigma, np.full((n, 1, p),
                    priors.sd_tau_sigma), p)
    b = cpc_beta_parameter(priors.eta, p)
    cpc_shape = (n, 1 if config.covariance == "pooled" else g, k)
    cpc = 2.0 * rng.beta(b, b, size=(n, 1, k) if config.covariance != "unpooled"
                         else cpc_shape) - 1.0
    if config.covariance == "hierarchical":
        tau = np.abs(priors.corr_tau_sigma * rng.standard_normal((n, 1, 1)))
        cpc = np.tanh(np.arctanh(cpc) + tau * rng.standard_normal((n, g, k)))
    cpc = np.broadcast_to(cpc, (n, g, k))
    chol = _cpc_to_chol(cpc, p)
    return {"mu": mu, "sigma": np.exp(log_sd), "corr": chol @ np.swapaxes(chol, -1, -2)}


def prior_check(config: SBCConfig, n: int = 2000, seed: int = 0) -> dict[str, float]:
    """Two-sample KS p-values: the model's prior draws against an independent NumPy
    simulation of the documented prior (:mod:`groupcov.model.priors`).

    Compared: each element of group ``g0``'s mean, sd and correlation matrix, and the
    between-group contrasts ``mu[g1] - mu[g0]`` and ``log sigma[g1] - log sigma[g0]``
    (they test the hierarchical coupling).

    Returns
    -------
    dict
        Quantity label -> p-value.
    """
    rng = np.random.default_rng(seed)
    gcm = build_sbc_model(config, seed=seed)
    model = prior_draws(gcm, n, ["mu", "sigma", "corr"], seed=int(rng.integers(2**31)))
    ref = _reference_prior(config, gcm.priors, n, rng)
    pairs = list(zip(*np.tril_indices(config.p, -1), strict=True))

    def quantities(d):
        out = {f"mu[g0,x{j}]": d["mu"][:, 0, j] for j in range(config.p)}
        out.update({f"sigma[g0,x{j}]": d["sigma"][:, 0, j] for j in range(config.p)})
        out.update({f"corr[g0,x{i},x{j}]": d["corr"][:, 0, i, j] for i, j in pairs})
        if config.groups > 1:
            out["mu[g1]-mu[g0]"] = d["mu"][:, 1, 0] - d["mu"][:, 0, 0]
            out["log sigma[g1]-log sigma[g0]"] = np.log(d["sigma"][:, 1, 0] / d["sigma"][:, 0, 0])
        return out

    a, b = quantities(model), quantities(ref)
    return {k: float(sps.ks_2samp(a[k], b[k]).pvalue) for k in a}


def _cpc_to_chol(cpc: np.ndarray, p: int) -> np.ndarray:
    """Correlation Cholesky factors ``(..., p, p)`` from CPCs ``(..., K)`` (column-major
    order of the strict lower triangle), the textbook recursion vectorized over batches."""
    z = np.zeros((*cpc.shape[:-1], p, p))
    cols, rows = np.triu_indices(p, 1)
    z[..., rows, cols] = cpc
    chol = np.zeros_like(z)
    for i in range(p):
        remaining = np.ones(cpc.shape[:-1])
        for j in range(i):
            chol[..., i, j] = z[..., i, j] * np.sqrt(remaining)
            remaining = remaining - chol[..., i, j] ** 2
        chol[..., i, i] = np.sqrt(remaining)
    return chol
