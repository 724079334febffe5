"""Fitted results: InferenceData in the data's units, tables and diagnostics."""

from __future__ import annotations

import json
import os
import uuid
import weakref
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import pandas as pd
import xarray as xr

from groupcov.diagnostics import run_threads, summarize
from groupcov.inference import inference_data, moments_group_allowed
from groupcov.model.density import masked_loglik, suffstat_loglik
from groupcov.stats import (
    IncompleteCells,
    SufficientStats,
    decode_labels,
    encode_labels,
    plain_label,
    scatter_root,
)

if TYPE_CHECKING:
    import arviz as az

__all__ = [
    "ConvergenceWarning",
    "Diagnostics",
    "GroupCovResult",
    "group_log_likelihood",
    "stats_from_constant_data",
    "stopped_at_max_depth",
    "variable_convergence",
    "worst_convergence",
]


def group_log_likelihood(stats: SufficientStats, mu, cov, xp=np):
    """Exact log-likelihood of each group's rows, per draw, in the data's units.

    Rows with missing features contribute the likelihood of their observed features.

    Parameters
    ----------
    stats : SufficientStats
        Statistics of the rows.
    mu : array, shape ``(..., G, p)``
        Means per draw.
    cov : array, shape ``(..., G, p, p)``
        Covariances per draw.
    xp : module
        ``numpy`` (default) or ``jax.numpy`` (when called inside a JAX function).

    Returns
    -------
    array, shape ``(..., G)``
    """
    n = stats.n.astype(float)
    root_t = np.swapaxes(scatter_root(stats.scatter), -1, -2)
    out = suffstat_loglik(n, stats.mean, root_t, mu, cov, xp)
    cells = stats.incomplete
    if cells.n_cells:
        cell = masked_loglik(
            cells.n.astype(float), cells.mean,
            np.swapaxes(scatter_root(cells.scatter), -1, -2), mu[..., cells.group, :],
            cov[..., cells.group, :, :], cells.observed.astype(float), xp,
        )
        groups = np.zeros((cells.n_cells, stats.n_groups))
        groups[np.arange(cells.n_cells), cells.group] = 1.0
        out = out + cell @ groups
    return out


class Diagnostics(NamedTuple):
    """Convergence summary of a fit.

    ``max_r_hat`` and the ESS are of the kept draws; ``max_r_hat_all_draws`` is the
    largest split R-hat over every draw of a thinned fit (:attr:`GroupCovResult.moments`),
    NaN when nothing was thinned away.
    """

    max_r_hat: float
    min_ess_bulk: float
    min_ess_tail: float
    divergences: int
    draws: int
    chains: int
    max_r_hat_all_draws: float = float("nan")

    @property
    def ok(self) -> bool:
        """R-hat <= 1.01, bulk and tail ESS >= 400 and no divergences."""
        return (
            self.max_r_hat <= 1.01
            and min(self.min_ess_bulk, self.min_ess_tail) >= 400
            and self.divergences == 0
        )


def unknown_group_message(group, groups, hint: str = "") -> str:
    """``unknown group 'virginca'; the fit's groups are setosa, versicolor``.

    Examples
    --------
    >>> unknown_group_message("virginca", ["setosa", "virginica"])
    "unknown group 'virginca'; the fit's groups are setosa, virginica"
    """
    shown = ", ".join(str(plain_label(g)) for g in list(groups)[:20])
    more = f" (and {len(groups) - 20} more)" if len(groups) > 20 else ""
    return f"unknown group {str(plain_label(group))!r}; the fit's groups are {shown}{more}{hint}"


class ConvergenceWarning(UserWarning):
    """A fit's chains disagree, diverged or mixed too little: its summaries may be
    wrong or noisy (:func:`sampling_problems`)."""


# between-group scales: the quantities a hierarchical fit mixes slowest on
_SCALES = ("mu_tau", "sd_tau", "corr_tau")
# below this many draws per chain R-hat and ESS are too noisy to judge (PyMC's rule)
MIN_DRAWS_TO_CHECK = 100
# bulk ESS wanted per chain (ArviZ's and PyMC's rule: 400 for 4 chains)
MIN_ESS_PER_CHAIN = 100


def stopped_at_max_depth(sample_stats: xr.Dataset | None) -> int:
    """Draws whose NUTS tree reached the maximum depth (0 where not recorded)."""
    if sample_stats is None or "reached_max_treedepth" not in sample_stats:
        return 0
    return int(sample_stats["reached_max_treedepth"].values.sum())


def sampling_problems(
    sample_stats: xr.Dataset | None,
    posterior: xr.Dataset | None = None,
    moments: xr.Dataset | None = None,
) -> list[str]:
    """What a fit's sampler statistics and its few hyper-parameters say is wrong with it.

    Cheap (no diagnostics of every quantity; :meth:`GroupCovResult.diagnostics` has
    those): divergent transitions; draws that stopped at NUTS's maximum tree depth;
    chains that disagree on the log density (rank-normalized split R-hat of ``lp`` above
    1.01, as when a chain stays in another mode) or on a between-group scale
    (``mu_tau``, ``sd_tau``, ``corr_tau``); and, with at least
    :data:`MIN_DRAWS_TO_CHECK` draws per chain, a bulk ESS of those below
    :data:`MIN_ESS_PER_CHAIN` per chain.

    Parameters
    ----------
    sample_stats : xarray.Dataset or None
        ``diverging``, ``lp`` and ``reached_max_treedepth`` per ``(chain, draw)``, where
        present.
    posterior : xarray.Dataset, optional
        The posterior; its between-group scales are checked when present.
    moments : xarray.Dataset, optional
        A thinned fit's moments of every draw (:attr:`GroupCovResult.moments`): the
        R-hat of ``lp`` and of the scales then comes from all draws (split R-hat), not
        from the few kept ones.

    Returns
    -------
    list of str
        One sentence per problem, with what to do about it.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> lp = rng.normal(size=(4, 500))
    >>> ok = xr.Dataset({"lp": (("chain", "draw"), lp),
    ...                  "diverging": (("chain", "draw"), np.zeros((4, 500), bool))})
    >>> sampling_problems(ok)
    []
    >>> lp[0] -= 40.0  # one chain in another mode
    >>> stuck = ok.assign(lp=(("chain", "draw"), lp))
    >>> sampling_problems(stuck)[0][:48]
    'chains disagree on the log density (R-hat of lp '
    """
    if sample_stats is None:
        return []
    problems = []
    if "diverging" in sample_stats:
        n = int(sample_stats["diverging"].values.sum())
        if n:
            problems.append(
                f"{n} divergent transition{'s' if n > 1 else ''} after warm-up: the "
                "posterior may be biased where the sampler could not follow it; refit with "
                "a higher target_accept (fit(target_accept=0.99); --target-accept 0.99 on "
                "the command line)"
            )
    n = stopped_at_max_depth(sample_stats)
    if n:
        total = int(sample_stats["reached_max_treedepth"].size)
        problems.append(
            f"{n} of {total} draws stopped at the maximum tree depth before a U-turn: "
            "the sampler is inefficient there (very different scales or strong "
            "correlations in the posterior); the draws are valid but mix slowly"
        )
    chains = sample_stats.sizes.get("chain", 1)
    draws = sample_stats.sizes.get("draw", 0)
    quantities = {}
    if "lp" in sample_stats:
        quantities["lp"] = np.asarray(
            sample_stats["lp"].transpose("chain", "draw").values, dtype=float
        )
    for name in _SCALES:
        if posterior is not None and name in posterior:
            var = posterior[name]
            other = [d for d in var.dims if d not in ("chain", "draw")]
            values = var.transpose(*other, "chain", "draw").values
            labels = _labels(var, other)
            quantities.update(
                (f"{name}{label}", x)
                for label, x in zip(labels, values.reshape(-1, *values.shape[-2:]), strict=True)
            )
    if not quantities or draws < 4:
        return problems
    names = list(quantities)
    stacked = np.stack([quantities[n] for n in names], axis=-1)  # (chain, draw, K)
    s = summarize(stacked, columns=("r_hat", "ess_bulk"))
    r_hat, ess = dict(zip(names, s["r_hat"], strict=True)), dict(zip(names, s["ess_bulk"],
                                                                      strict=True))
    if moments is not None:
        r_hat.update(_all_draw_r_hats(moments, posterior))
    disagree = [n for n in names if chains > 1 and r_hat[n] > 1.01]
    if "lp" in disagree:
        lp = quantities["lp"]
        means = ", ".join(f"{m:.1f}" for m in lp.mean(axis=1))
        problems.append(
            f"chains disagree on the log density (R-hat of lp {r_hat['lp']:.3f}; mean lp "
            f"per chain {means}): a chain may be stuck in another mode or the fit is too "
            "short; run more draws or chains and check result.diagnostics()"
        )
    bad = [n for n in disagree if n != "lp"]
    if bad:
        problems.append(
            "chains disagree on the between-group scale"
            f"{'s' if len(bad) > 1 else ''} {_listed(bad, r_hat, 'R-hat', '.3f')}: run "
            "more draws (and check result.diagnostics())"
        )
    if draws >= MIN_DRAWS_TO_CHECK:
        wanted = MIN_ESS_PER_CHAIN * chains
        low = [n for n in names if ess[n] < wanted and n not in disagree]
        if low:
            problems.append(
                f"low effective sample size (bulk ESS below {wanted}, {MIN_ESS_PER_CHAIN} "
                f"per chain) of {_listed(low, ess, 'ESS', '.0f')}: their estimates and "
                "intervals are noisy; run more draws"
            )
    return problems


def _all_draw_r_hats(moments: xr.Dataset, posterior: xr.Dataset | None) -> dict[str, float]:
    """Split R-hat over every draw of ``lp`` and the between-group scales, labeled as
    :func:`sampling_problems` labels them."""
    out = {}
    if "lp" in moments:
        out["lp"] = float(moments["lp"].sel(statistic="r_hat"))
    for name in _SCALES:
        if posterior is None or name not in posterior or name not in moments:
            continue
        other = [d for d in posterior[name].dims if d not in ("chain", "draw")]
        values = moments[name].sel(statistic="r_hat").transpose(*other).values
        labels = _labels(posterior[name], other)
        out.update((f"{name}{label}", float(v))
                   for label, v in zip(labels, np.ravel(values), strict=True))
    return out


def _labels(var: xr.DataArray, dims: list) -> list[str]:
    """``[a,b]`` labels of every element of ``var`` over ``dims`` (C order)."""
    if not dims:
        return [""]
    coords = [
        var[d].values if d in var.coords else np.arange(var.sizes[d]) for d in dims
    ]
    grid = np.meshgrid(*coords, indexing="ij")
    return [
        "[" + ",".join(str(c) for c in combo) + "]"
        for combo in zip(*(g.ravel() for g in grid), strict=True)
    ]


def _listed(names: list, values: dict, what: str, fmt: str, most: int = 4) -> str:
    """``a (R-hat 1.02), b (R-hat 1.03) and 2 more``, worst first."""
    worst = sorted(names, key=lambda n: values[n], reverse=what == "R-hat")
    shown = ", ".join(f"{n} ({what} {values[n]:{fmt}})" for n in worst[:most])
    return shown + (f" and {len(worst) - most} more" if len(worst) > most else "")


_PARAMETERS = ("mu", "sigma", "corr", "cov")


# one compiled log-likelihood per statistics object (a fit and its refits share it)
_COMPILED: dict[int, Callable] = {}


def _compiled_log_likelihood(stats: SufficientStats) -> Callable:
    """``(mu, cov or sigma, corr or None) -> (..., G)``, jitted once per ``stats``."""
    key = id(stats)
    fn = _COMPILED.get(key)
    if fn is None:
        import jax
        import jax.numpy as jnp

        @jax.jit
        def fn(mu, cov_or_sigma, corr):
            if corr is None:
                cov = cov_or_sigma
            else:
                cov = cov_or_sigma[..., :, None] * cov_or_sigma[..., None, :] * corr
            return group_log_likelihood(stats, mu, cov, xp=jnp)

        _COMPILED[key] = fn
        weakref.finalize(stats, _COMPILED.pop, key, None)
    return fn


def _posterior_log_likelihood(stats: SufficientStats, post, max_bytes: float = 2e8):
    """Group log-likelihood of every draw, ``(chain, draw, group)``, computed in chunks.

    Uses ``cov`` or, when only ``sigma`` and ``corr`` were kept, rebuilds it per chunk;
    None when the posterior keeps neither. Evaluated by one compiled JAX function on
    JAX's default device (a GPU when there is one), in chunks of draws on a thread per
    core: at 10,000 groups x 4,000 draws it takes 33-39 s on a 2-core CPU where
    NumPy's one-LAPACK-call-per-matrix loop takes 60-67 s.
    """
    if "mu" not in post or not ("cov" in post or {"sigma", "corr"} <= set(post.data_vars)):
        return None
    import jax

    jax.config.update("jax_enable_x64", True)
    chains, draws = post.sizes["chain"], post.sizes["draw"]
    g, p = stats.n_groups, stats.n_features
    per_draw = 8.0 * g * (p + 1) * p * 6  # a few (G, p, p + 1) temporaries per draw
    step = int(max(1, min(draws, max_bytes // per_draw)))

    loglik = _compiled_log_likelihood(stats)
    out = np.empty((chains, draws, g))

    def values(name):
        return post[name].transpose("chain", "draw", ...).values

    mu_all = values("mu")
    first, second = (values("cov"), None) if "cov" in post else (values("sigma"), values("corr"))

    def chunk(c: int, start: int) -> None:
        # every chunk has `step` draws (the last one overlaps the previous), so the
        # function compiles once
        at = (c, slice(min(start, draws - step), min(start, draws - step) + step))
        out[at] = np.asarray(
            loglik(mu_all[at], first[at], None if second is None else second[at])
        )

    jobs = [(c, start) for c in range(chains) for start in range(0, draws, step)]
    chunk(*jobs[0])  # compiles
    # XLA:CPU runs each batch of factorizations on one core: one chunk per core
    workers = None if jax.default_backend() == "cpu" else 1
    run_threads(lambda job: chunk(*job), jobs[1:], workers)
    return out


def _constant_data(stats: SufficientStats, group_dim: str, group_coord) -> xr.Dataset:
    """The statistics behind a fit, complete rows and (group, pattern) cells."""
    cells = stats.incomplete
    return xr.Dataset(
        {
            "n": ((group_dim,), stats.n),
            "sample_mean": ((group_dim, "feature"), stats.mean),
            "scatter": ((group_dim, "feature", "feature_"), stats.scatter),
            "empty_rows": ((group_dim,), stats.empty_rows),
            "cell_group": (("cell",), cells.group),
            "cell_observed": (("cell", "feature"), cells.observed),
            "cell_n": (("cell",), cells.n),
            "cell_mean": (("cell", "feature"), cells.mean),
            "cell_scatter": (("cell", "feature", "feature_"), cells.scatter),
        },
        coords={
            group_dim: group_coord,
            "feature": list(stats.features),
            "feature_": list(stats.features),
            "cell": np.arange(cells.n_cells),
        },
    )


LABELS_ATTR = "groupcov_groups"
"""Attribute of a saved fit's ``constant_data``: the group labels as JSON with their types."""


def label_coordinate(labels) -> np.ndarray:
    """Group labels as a coordinate: a typed array, or objects when types are mixed.

    Examples
    --------
    >>> label_coordinate([1, 2]).dtype, label_coordinate(["a", 2, 3.5]).tolist()
    (dtype('int64'), ['a', 2, 3.5])
    """
    labels = list(labels)
    if len({type(label) for label in labels}) <= 1:
        return np.asarray(labels)
    out = np.empty(len(labels), dtype=object)
    out[:] = labels
    return out


def _saved_labels(constant_data: xr.Dataset) -> tuple | None:
    """The exact labels :meth:`GroupCovResult.save` stored, or None (older files)."""
    text = constant_data.attrs.get(LABELS_ATTR)
    if text is None:
        return None
    stored = json.loads(text)
    return decode_labels(stored["groups"], stored["group_types"])


def _storable(idata: az.InferenceData) -> az.InferenceData:
    """``idata``, with a group coordinate of mixed types written as text (netCDF stores
    one type per variable; the exact labels travel in :data:`LABELS_ATTR`)."""
    names = idata.groups()
    mixed = [n for n in names if "group" in getattr(idata, n).coords
             and getattr(idata, n)["group"].dtype == object]
    if not mixed:
        return idata
    datasets = {}
    for name in names:
        dataset = getattr(idata, name)
        if name in mixed:
            text = np.array([str(v) for v in dataset["group"].values.tolist()])
            dataset = dataset.assign_coords(group=text)
        datasets[name] = dataset
    return inference_data(datasets)


def stats_from_constant_data(constant_data: xr.Dataset) -> SufficientStats:
    """The :class:`SufficientStats` stored by :meth:`GroupCovResult.from_posterior`."""
    cd = constant_data
    cells = IncompleteCells(
        cd["cell_group"].values.astype(np.int64), cd["cell_observed"].values.astype(bool),
        cd["cell_n"].values.astype(np.int64), cd["cell_mean"].values, cd["cell_scatter"].values,
    )
    groups = _saved_labels(cd)
    if groups is None:
        groups = tuple(cd["group"].values.tolist())
    return SufficientStats(
        groups, tuple(str(f) for f in cd["feature"].values),
        cd["n"].values.astype(np.int64), cd["sample_mean"].values, cd["scatter"].values,
        cells, cd["empty_rows"].values.astype(np.int64),
    )


def variable_convergence(post: xr.Dataset, names: list[str]) -> dict[str, dict]:
    """R-hat, bulk and tail ESS of each quantity of each variable in ``names``.

    A matrix over ``("feature", "feature_")`` contributes its lower triangle only
    (without the diagonal for ``corr``, whose diagonal is constant): the upper triangle
    repeats it.

    Returns
    -------
    dict
        ``{name: {"r_hat": array, "ess_bulk": array, "ess_tail": array}}``, each array
        flat over the variable's (unique) quantities.
    """
    out = {}
    for name in names:
        values = _distinct(post[name].transpose("chain", "draw", ...), name)
        values = values.reshape(*values.shape[:2], -1)
        out[name] = summarize(values, columns=("r_hat", "ess_bulk", "ess_tail"))
    return out


def _distinct(da: xr.DataArray, name: str) -> np.ndarray:
    """The values of ``da`` with a ``("feature", "feature_")`` matrix reduced to its
    lower triangle (without the diagonal for ``corr``) as the last axis; the other
    dims keep their order."""
    if "feature" in da.dims and "feature_" in da.dims:
        da = da.transpose(..., "feature", "feature_")
        rows, cols = np.tril_indices(da.sizes["feature"], k=-1 if name == "corr" else 0)
        return da.values[..., rows, cols]
    return da.values


def worst_convergence(per_variable: dict[str, dict], names) -> tuple[float, float, float]:
    """Largest R-hat and smallest bulk and tail ESS over the variables ``names`` of
    :func:`variable_convergence`'s output (non-finite values skipped; NaN if none)."""

    def pick(key, fn):
        vals = [np.ravel(per_variable[v][key]) for v in names]
        vals = np.concatenate(vals) if vals else np.zeros(0)
        vals = vals[np.isfinite(vals)]
        return float(fn(vals)) if vals.size else float("nan")

    return pick("r_hat", np.max), pick("ess_bulk", np.min), pick("ess_tail", np.min)


class GroupCovResult:
    """Posterior of per-group means and covariances.

    Attributes
    ----------
    idata : arviz.InferenceData
        ``posterior`` with ``mu (group, feature)``, ``sigma (group, feature)``,
        ``corr`` and ``cov (group, feature, feature_)`` in the data's units plus the
        hyper-parameters of hierarchical modes; ``sample_stats``; ``log_likelihood``
        (``obs``: one value per group, for leave-one-group-out LOO); ``constant_data``
        with each group's ``n``, ``mean`` and ``scatter``. Assembled on first use:
        the tables, diagnostics and point estimates read :attr:`posterior` and
        :attr:`sample_stats` directly, without importing ArviZ.
    stats : SufficientStats
        The statistics the model was fitted to.
    group_column : str or None
        The data's group column in the fit (the default of :meth:`impute` and
        :meth:`log_likelihood_rows`); None when unknown (fits saved before it was kept).
    """

    def __init__(
        self,
        idata: az.InferenceData | Mapping[str, xr.Dataset],
        stats: SufficientStats,
        spec: dict | None = None,
        group_column: str | None = None,
    ):
        if isinstance(idata, Mapping):
            self._groups: dict[str, xr.Dataset] | None = dict(idata)
            self._idata = None
        else:
            self._groups, self._idata = None, idata
        self.stats = stats
        self.spec = dict(spec or {})
        self.group_column = group_column
        self._convergence: dict[str, dict] | None = None

    @property
    def idata(self) -> az.InferenceData:
        """The fit as an ArviZ InferenceData (built from the groups on first access)."""
        if self._idata is None:
            self._idata = inference_data(self._groups)
            self._groups = None
        return self._idata

    def _group(self, name: str) -> xr.Dataset | None:
        if self._idata is not None:
            return getattr(self._idata, name, None)
        return self._groups.get(name)

    @property
    def posterior(self) -> xr.Dataset:
        """Posterior draws ``(chain, draw, ...)`` of every kept variable."""
        return self._group("posterior")

    @property
    def sample_stats(self) -> xr.Dataset | None:
        """The sampler's statistics per draw (``diverging``, ``n_steps``, ...)."""
        return self._group("sample_stats")

    @classmethod
    def from_posterior(
        cls,
        idata: az.InferenceData | Mapping[str, xr.Dataset],
        stats: SufficientStats,
        spec: dict | None = None,
        group_column: str | None = None,
    ) -> GroupCovResult:
        """Add the group-level log-likelihood and the statistics to sampled draws.

        ``idata`` is an InferenceData or a mapping of group names (``posterior``,
        ``sample_stats`` and, when the sampler computed it, ``log_likelihood``) to
        datasets; ``group_column`` is the data's group column.
        """
        post = idata["posterior"] if isinstance(idata, Mapping) else idata.posterior
        group_dim = "group"
        groups = {"constant_data": _constant_data(stats, group_dim, post[group_dim])}
        # the default model's sampler computes it with the draws
        sampled = "log_likelihood" in idata if isinstance(idata, Mapping) else False
        loglik = None if sampled else _posterior_log_likelihood(stats, post)
        if loglik is not None:
            groups["log_likelihood"] = xr.Dataset(
                {"obs": (("chain", "draw", group_dim), loglik)},
                coords={"chain": post.chain, "draw": post.draw, group_dim: post[group_dim]},
            )
        if isinstance(idata, Mapping):
            return cls({**idata, **groups}, stats, spec, group_column)
        idata.add_groups(**groups)
        return cls(idata, stats, spec, group_column)

    @property
    def groups(self) -> list:
        """Group labels, as plain Python values (``'setosa'``, ``1``), in model order."""
        return list(self.stats.groups)

    @property
    def features(self) -> list[str]:
        """Feature names."""
        return list(self.stats.features)

    def convergence(self) -> dict[str, dict]:
        """:func:`variable_convergence` of every posterior variable except ``cov`` (a
        function of ``sigma`` and ``corr``), computed once per result."""
        if self._convergence is None:
            post = self.posterior
            self._convergence = variable_convergence(
                post, [v for v in post.data_vars if v != "cov"]
            )
        return self._convergence

    def diagnostics(self) -> Diagnostics:
        """Worst R-hat and ESS over ``mu``, ``sigma``, ``corr`` and the hyper-parameters."""
        post = self.posterior
        per_variable = self.convergence()
        max_r_hat, min_ess_bulk, min_ess_tail = worst_convergence(per_variable, list(per_variable))
        div = self.sample_stats.get("diverging") if self.sample_stats is not None else None
        all_draws = float("nan")
        if self.moments is not None:
            r_hats = [np.ravel(_distinct(self.moments[v].sel(statistic="r_hat"), v))
                      for v in per_variable if v in self.moments]
            finite = np.concatenate([np.zeros(0), *r_hats])
            finite = finite[np.isfinite(finite)]
            all_draws = float(finite.max()) if finite.size else float("nan")
        return Diagnostics(
            max_r_hat=max_r_hat,
            min_ess_bulk=min_ess_bulk,
            min_ess_tail=min_ess_tail,
            divergences=int(div.values.sum()) if div is not None else 0,
            draws=int(post.sizes["draw"]),
            chains=int(post.sizes["chain"]),
            max_r_hat_all_draws=all_draws,
        )

    @property
    def moments(self) -> xr.Dataset | None:
        """Mean, sd and split R-hat of every draw of a thinned fit, or None.

        With ``fit(thin=k)`` the sampler makes ``k`` draws for each one it keeps, and
        keeps running moments of all of them: each kept variable here has the
        posterior's dims with ``chain`` and ``draw`` replaced by ``statistic``
        (``"mean"``, ``"sd"``, ``"r_hat"``; R-hat without rank normalization, see
        :func:`groupcov.diagnostics.moment_statistics`). The attribute
        ``draws_per_chain`` says how many draws they cover. Bounds memory with many
        groups while every draw still counts toward the estimates and the convergence
        check.
        """
        return self._group("moments")

    def summary(self, hdi_prob: float = 0.94) -> pd.DataFrame:
        """Tidy table: one row per group and parameter.

        Columns: ``group``, ``parameter`` (``mu[x]``, ``sigma[x]``, ``corr[x,y]``,
        ``cov[x,y]``; each matrix entry once), ``mean``, ``sd``, ``hdi_low``,
        ``hdi_high``, ``r_hat``, ``ess_bulk``, ``ess_tail``. Parameters not kept in
        the posterior (``fit(var_names=...)``) are left out. The same definitions as
        ArviZ's ``summary`` (rank-normalized R-hat, bulk and tail ESS, HDI), computed
        for all groups at once (:mod:`groupcov.diagnostics`).
        """
        post = self.posterior
        feats = self.features
        p = len(feats)
        names = [n for n in _PARAMETERS if n in post]
        if not names:
            raise KeyError(f"the posterior keeps none of {list(_PARAMETERS)}")
        groups = np.asarray(post["group"].values, dtype=object)
        tables = []
        for name in names:
            if name in ("mu", "sigma"):
                index = [(j,) for j in range(p)]
                labels = [f"{name}[{f}]" for f in feats]
            else:
                # the upper triangle, row by row, as the command line and report name
                # pairs (corr[x,y] for x before y)
                first = 1 if name == "corr" else 0
                index = [(i, j) for i in range(p) for j in range(i + first, p)]
                labels = [f"{name}[{feats[i]},{feats[j]}]" for i, j in index]
            if not index:
                continue
            values = post[name].transpose("chain", "draw", "group", ...).values
            cols = tuple(np.array(c) for c in zip(*index, strict=True))
            picked = values[(slice(None), slice(None), slice(None), *cols)]  # (c, d, G, k)
            columns = summarize(picked, hdi_prob)
            g_count, k = picked.shape[2:]
            table = pd.DataFrame({k_: v.ravel() for k_, v in columns.items()})
            table.insert(0, "parameter", np.tile(labels, g_count))
            table.insert(0, "group", np.repeat(groups, k))
            table.insert(0, "_order", np.repeat(np.arange(g_count), k))
            tables.append(table)
        out = pd.concat(tables, ignore_index=True)
        order = np.lexsort((np.arange(len(out)), out["_order"].to_numpy()))
        return out.iloc[order].drop(columns="_order").reset_index(drop=True)

    def _posterior_mean(self, name: str, group) -> xr.DataArray:
        if group not in self.groups:
            raise KeyError(unknown_group_message(group, self.groups))
        post = self.posterior
        if name in post:
            return post[name].sel(group=group).mean(("chain", "draw"))
        # variables left out by fit(var_names=...): from the ones kept
        if name == "cov" and {"sigma", "corr"} <= set(post.data_vars):
            sigma = post["sigma"].sel(group=group)
            corr = post["corr"].sel(group=group)
            outer = sigma * sigma.rename(feature="feature_")
            return (outer * corr).mean(("chain", "draw"))
        if name == "corr" and "cov" in post:
            cov = post["cov"].sel(group=group)
            sd = np.sqrt(xr.DataArray(np.diagonal(cov.values, axis1=-2, axis2=-1),
                                      dims=(*cov.dims[:-2], "feature"),
                                      coords={"feature": cov["feature"].values}))
            return (cov / (sd * sd.rename(feature="feature_"))).mean(("chain", "draw"))
        raise KeyError(
            f"the posterior has no {name!r} (the fit kept {sorted(post.data_vars)}); "
            "fit without var_names, or with it naming what you need"
        )

    def covariance(self, group) -> pd.DataFrame:
        """Posterior mean covariance matrix of ``group``, labeled by feature."""
        m = self._posterior_mean("cov", group)
        return pd.DataFrame(m.values, index=self.features, columns=self.features)

    def correlation(self, group) -> pd.DataFrame:
        """Posterior mean correlation matrix of ``group``, labeled by feature."""
        m = self._posterior_mean("corr", group)
        return pd.DataFrame(m.values, index=self.features, columns=self.features)

    def mean(self, group) -> pd.Series:
        """Posterior mean of the mean vector of ``group``."""
        return pd.Series(self._posterior_mean("mu", group).values, index=self.features)

    def save(self, path) -> Path:
        """Write the fit to one netCDF file that :meth:`load` reads back.

        The file is the InferenceData: posterior, sample stats, log-likelihood, the
        statistics in ``constant_data`` and the model spec as JSON in the posterior's
        ``groupcov_spec`` attribute.

        Parameters
        ----------
        path : str or os.PathLike
            A file name, or an existing directory (then ``posterior.nc`` inside it).

        Returns
        -------
        pathlib.Path
            The file written.

        Raises
        ------
        ValueError
            If a group label is not an int, finite float, bool or str (checked before
            anything is written).

        Notes
        -----
        The group labels are also stored with their types, as JSON in the
        ``groupcov_groups`` attribute of ``constant_data`` (the format of
        :meth:`~groupcov.stats.SufficientStats.save`), so :meth:`load` gives back the
        same Python values, mixed types included. The file is written under a
        temporary name in the same folder and renamed when complete: a failure never
        leaves a partial file, and an existing file is replaced only by a complete one.
        """
        path = Path(path)
        if path.is_dir():
            path = path / "posterior.nc"
        labels, types = encode_labels(self.stats.groups)
        self.idata.posterior.attrs["groupcov_spec"] = json.dumps(self.spec)
        if isinstance(self.group_column, str):
            self.idata.posterior.attrs["groupcov_group_column"] = self.group_column
        constant_data = getattr(self.idata, "constant_data", None)
        if constant_data is not None:
            constant_data.attrs[LABELS_ATTR] = json.dumps(
                {"groups": labels, "group_types": types}, ensure_ascii=False
            )
        temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        try:
            _storable(self.idata).to_netcdf(str(temporary))
            os.replace(temporary, path)
        finally:
            if os.path.exists(temporary):
                os.remove(temporary)
        return path

    @classmethod
    def load(cls, path) -> GroupCovResult:
        """Read a fit written by :meth:`save` (a file, or a directory with ``posterior.nc``)."""
        path = Path(path)
        if path.is_dir():
            path = path / "posterior.nc"
        import arviz as az

        with az.rc_context({"data.load": "eager"}), moments_group_allowed():
            idata = az.from_netcdf(str(path))
        if "constant_data" not in idata.groups() or "posterior" not in idata.groups():
            raise KeyError(f"{path} has no posterior and constant_data groups")
        spec = json.loads(idata.posterior.attrs.get("groupcov_spec", "{}"))
        group_column = idata.posterior.attrs.get("groupcov_group_column")
        stats = stats_from_constant_data(idata.constant_data)
        coordinate = label_coordinate(stats.groups)
        datasets = {}
        for name in idata.groups():
            dataset = getattr(idata, name)
            if "group" in dataset.coords:
                dataset = dataset.assign_coords(group=coordinate)
            datasets[name] = dataset
        return cls(datasets, stats, spec, group_column)

    def __repr__(self) -> str:
        d = self.diagnostics()
        spec = ", ".join(f"{k}={v!r}" for k, v in self.spec.items())
        all_draws = (f" (over all draws {d.max_r_hat_all_draws:.3f})"
                     if np.isfinite(d.max_r_hat_all_draws) else "")
        return (
            f"GroupCovResult({spec}; {self.stats.n_groups} groups, {self.stats.n_features} "
            f"features, {d.chains}x{d.draws} draws, max R-hat {d.max_r_hat:.3f}{all_draws}, "
            f"min ESS {d.min_ess_bulk:.0f}, {d.divergences} divergences)"
        )

    # --- using the posterior (groupcov.predict, groupcov.classify) -------------------------

    def predict(self, group, n: int = 100, random_seed=None, *,
                new_group: bool = False) -> az.InferenceData:
        """Predictive rows of a group of the fit, or of a new group with ``new_group=True``;
        see :func:`groupcov.predict.predict`."""
        from groupcov.predict import predict

        return predict(self, group, n=n, random_seed=random_seed, new_group=new_group)

    def classify(self, x, weights=None, **kwargs) -> pd.DataFrame:
        """Probability of each group for each row; see :func:`groupcov.classify.classify`."""
        from groupcov.classify import classify

        return classify(self, x, weights=weights, **kwargs)

    def conditional(self, group, given, **kwargs):
        """Other features given some; see :func:`groupcov.predict.conditional`."""
        from groupcov.predict import conditional

        return conditional(self, group, given, **kwargs)

    def _group_column_of(self, group: str | None) -> str:
        if group is not None:
            return group
        return self.group_column if isinstance(self.group_column, str) else "group"

    def impute(self, data: pd.DataFrame, group: str | None = None, **kwargs) -> pd.DataFrame:
        """Fill missing feature values; see :func:`groupcov.predict.impute`.
        ``group`` defaults to the fit's group column (:attr:`group_column`)."""
        from groupcov.predict import impute

        return impute(self, data, group=self._group_column_of(group), **kwargs)

    def log_likelihood_rows(self, data: pd.DataFrame, group: str | None = None, **kwargs):
        """Per-row log-likelihood ``(chain, draw, row)``; see
        :func:`groupcov.classify.row_log_likelihood`. ``group`` defaults to the fit's
        group column (:attr:`group_column`)."""
        from groupcov.classify import row_log_likelihood

        return row_log_likelihood(self, data, group=self._group_column_of(group), **kwargs)
