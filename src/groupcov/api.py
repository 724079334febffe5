"""The user-facing model: from a table to a fitted posterior."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from groupcov.data import DataError, reduce
from groupcov.data.validate import check_label_types, warn_many_features
from groupcov.inference import DEFAULT_SAMPLER, run_sampler, sample_structure
from groupcov.model.inputs import (
    PARAMETERIZATIONS,
    POOLING,
    check_group_covariances,
    check_same_structure,
    coords_for,
    model_data,
)
from groupcov.model.priors import Priors
from groupcov.result import ConvergenceWarning, GroupCovResult, sampling_problems
from groupcov.stats import Standardization, SufficientStats, plain_label

__all__ = ["FEW_GROUPS", "RICH_ROWS", "GroupCovModel", "MissingValuesWarning"]

#: Hierarchical models with fewer groups sample with ``target_accept=0.95`` by default.
FEW_GROUPS = 10
#: Groups with at least this many complete rows beyond the number of features make a
#: posterior close enough to Gaussian for jittered HMC draws (:meth:`GroupCovModel.
#: default_algorithm`).
RICH_ROWS = 20


class MissingValuesWarning(UserWarning):
    """The data have missing feature values: they are marginalized, not dropped."""


def describe_missing(stats: SufficientStats) -> str | None:
    """One sentence on the missing values in ``stats``; None when there are none.

    Examples
    --------
    >>> import numpy as np
    >>> st = SufficientStats.from_cells(
    ...     ("a",), ("x", "y"), np.zeros(3, int), np.array([[1, 1], [1, 0], [0, 0]], bool),
    ...     np.array([5, 2, 1]), np.zeros((3, 2)), np.zeros((3, 2, 2)))
    >>> for part in describe_missing(st).split("; "):
    ...     print(part)
    2 of 8 rows have missing feature values (missing: y 2) in 1 pattern
    they enter through the likelihood of their observed features, nothing is dropped
    1 row has no observed feature and carries no information
    """
    if not stats.has_missing:
        return None
    cells = stats.incomplete
    total = stats.n_rows + stats.n_empty_rows
    partial = int(cells.n.sum())
    per_feature = ((~cells.observed) * cells.n[:, None]).sum(axis=0)
    missing = ", ".join(
        f"{f} {int(c)}" for f, c in zip(stats.features, per_feature, strict=True) if c
    )
    patterns = len({tuple(o) for o in cells.observed.tolist()})
    parts = []
    if partial:
        parts.append(
            f"{partial} of {total} rows have missing feature values (missing: {missing}) in "
            f"{patterns} pattern{'s' if patterns != 1 else ''}; they enter through the "
            "likelihood of their observed features, nothing is dropped"
        )
    if stats.n_empty_rows:
        n_empty = stats.n_empty_rows
        parts.append(
            f"{n_empty} row{' has' if n_empty == 1 else 's have'} no observed feature and "
            "carr" + ("ies" if n_empty == 1 else "y") + " no information"
        )
    parts += never_observed(stats)
    return "; ".join(parts)


def never_observed(stats: SufficientStats, most: int = 5) -> list[str]:
    """Sentences naming groups that have rows but never observe a feature, or never
    observe two features together: their estimates of those come from the other groups
    (hierarchical modes) or the prior alone.

    Examples
    --------
    >>> import numpy as np
    >>> st = SufficientStats.from_cells(
    ...     ("a", "b"), ("x", "y"), np.array([0, 1]), np.array([[1, 1], [1, 0]], bool),
    ...     np.array([5, 4]), np.zeros((2, 2)), np.zeros((2, 2, 2)))
    >>> never_observed(st)[0][:58]
    "group 'b' has no observed value of y: its y mean, sd and c"
    """
    count, _, _ = stats.available()
    has_rows = stats.rows_per_group() > 0
    out = []
    for g in np.flatnonzero(has_rows & (count == 0).any(axis=1))[:most]:
        names = [f for f, c in zip(stats.features, count[g], strict=True) if c == 0]
        listed = ", ".join(names)
        out.append(
            f"group {plain_label(stats.groups[g])!r} has no observed value of {listed}: its "
            f"{listed} mean, sd and correlations come from the other groups (hierarchical "
            "modes) or the prior alone, not from its rows"
        )
    p = stats.n_features
    if p > 1:
        cells = stats.incomplete
        both = np.broadcast_to(stats.n[:, None, None], (stats.n_groups, p, p)).astype(float)
        if cells.n_cells:
            joint = cells.observed[:, :, None] & cells.observed[:, None, :]
            np.add.at(both, cells.group, joint * cells.n[:, None, None])
        rows, cols = np.triu_indices(p, 1)
        lonely = (both[:, rows, cols] == 0) & (count[:, rows] > 0) & (count[:, cols] > 0)
        for g in np.flatnonzero(lonely.any(axis=1))[:most]:
            pairs = ", ".join(f"{stats.features[rows[k]]}-{stats.features[cols[k]]}"
                              for k in np.flatnonzero(lonely[g]))
            out.append(
                f"group {plain_label(stats.groups[g])!r} never observes {pairs} in the same row: "
                "their correlation there comes from the other groups or the prior alone"
            )
    return out


class GroupCovModel:
    """Per-group means and covariance matrices with pooled, unpooled or hierarchical priors.

    Parameters
    ----------
    data : table, path, query or SufficientStats
        Anything :func:`groupcov.reduce` accepts: a pandas or polars DataFrame, an
        Arrow table, a CSV or Parquet path, a DuckDB relation or SQL query, a Dask
        DataFrame, or statistics already reduced. Missing feature values are kept.
    group : str
        Name of the group column.
    features : sequence of str, optional
        Feature columns; default: every numeric column except ``group``.
    means, covariance : {"hierarchical", "unpooled", "pooled"}
        Pooling of the group means and of the covariance matrices.
    priors : dict or Priors, optional
        Overrides of the default priors (see :class:`groupcov.Priors`), on the
        standardized scale of the data.
    parameterization : {"auto", "centered", "noncentered"}
        The coordinates the sampler moves in (the model is the same): ``"auto"`` adapts
        to each group's size and to the between-group spread and whitens each group's
        parameters with the correlation of its own estimates; ``"centered"`` and
        ``"noncentered"`` are the plain forms.
    standardization : Standardization or (center, scale), optional
        Fixed per-feature center and scale of the fitting scale. By default they come
        from the data (pooled mean, pooled within-group sd), which makes the default
        priors unit-free; fix them (with ``priors={"mu_sigma": ...}``) when the prior
        must not depend on the data, e.g. for simulation-based calibration.

    Attributes
    ----------
    stats : SufficientStats
        The data reduced to per-group statistics.
    model : pymc.Model
        The underlying PyMC model, for users who want to extend it.

    Examples
    --------
    >>> from groupcov.datasets import two_groups
    >>> sim = two_groups(n_per_group=50, seed=0)
    >>> m = GroupCovModel(sim.data, group="group", features=["x", "y"])
    >>> m.stats.n.tolist()
    [50, 50]
    """

    def __init__(
        self,
        data,
        group: str = "group",
        features: Sequence[str] | None = None,
        means: str = "hierarchical",
        covariance: str = "hierarchical",
        priors: Priors | dict | None = None,
        parameterization: str = "auto",
        standardization: Standardization | tuple | None = None,
    ):
        for arg, value in (("means", means), ("covariance", covariance)):
            if value not in POOLING:
                raise ValueError(f"{arg}= must be one of {POOLING}, not {value!r}")
        if parameterization not in PARAMETERIZATIONS:
            raise ValueError(
                f"parameterization= must be one of {PARAMETERIZATIONS}, not {parameterization!r}"
            )
        self.stats = reduce(data, group=group, features=features)
        check_label_types(self.stats.groups, group if isinstance(group, str) else None)
        warn_many_features(self.stats.n_features, stacklevel=2)
        message = describe_missing(self.stats)
        if message:
            warnings.warn(message, MissingValuesWarning, stacklevel=2)
        if "hierarchical" in (means, covariance) and self.stats.n_groups < 2:
            modes = [a for a, v in (("means", means), ("covariance", covariance))
                     if v == "hierarchical"]
            where = ("the statistics have" if isinstance(data, SufficientStats)
                     else f"column {group!r} has")
            raise DataError(
                f"{' and '.join(m + '=' for m in modes)}'hierarchical' needs at least two "
                f"groups, but {where} {self.stats.n_groups} "
                f"({list(self.stats.groups)}); use 'pooled' or 'unpooled'"
            )
        check_group_covariances(self.stats, covariance, group)
        self.group = group
        self.spec = {"means": means, "covariance": covariance}
        self.priors = Priors.from_user(priors)
        self.parameterization = parameterization
        if standardization is not None and len(standardization) != 2:
            raise ValueError(
                f"standardization must be a (center, scale) pair, got {standardization!r}"
            )
        self.fixed_standardization = (
            None if standardization is None else Standardization(*standardization)
        )
        self.features = list(self.stats.features)
        self._values, self.standardization = model_data(
            self.stats, means, covariance, self.priors, parameterization,
            self.fixed_standardization,
        )
        self._model = None
        self._model_exposed = False

    @property
    def model(self):
        """The underlying :class:`pymc.Model` (built on first use).

        Extend it freely: once it has been accessed, :meth:`fit` samples this model
        object (with any additions) instead of a cached program of the standard one.
        """
        self._model_exposed = True
        return self._built_model()

    def _built_model(self):
        if self._model is None:
            from groupcov.model.build import build_model  # PyMC: only when needed

            self._model = build_model(
                self.stats, self.spec["means"], self.spec["covariance"], self.priors,
                self.parameterization, self.fixed_standardization,
            ).model
        return self._model

    def _structure(self) -> tuple:
        """Everything besides the data containers' values that fixes the model graph."""
        return (
            "groupcov.GroupCovModel",
            self.spec["means"],
            self.spec["covariance"],
            self.parameterization,
            repr(self.priors),
            self.stats.n_groups,
            self.stats.n_features,
        )

    def set_data(self, data) -> GroupCovModel:
        """Replace the data by new rows or statistics of the same groups and features.

        The model is not rebuilt: its data containers take the new statistics (and
        everything derived from them), so a following :meth:`fit` reuses the compiled
        sampler. Use it to refit after adding a batch of rows
        (``stats.merge(new_stats)``) or to fit many simulated data sets.

        Parameters
        ----------
        data : pandas.DataFrame or SufficientStats
            With the same group labels and features as the model.

        Returns
        -------
        GroupCovModel
            ``self``.
        """
        stats = reduce(data, group=self.group, features=self.features)
        check_group_covariances(stats, self.spec["covariance"], self.group)
        if self._model is not None:
            from groupcov.model.build import set_model_data

            self.standardization = set_model_data(
                self._model, stats, self.spec["means"], self.spec["covariance"], self.priors,
                self.parameterization, self.fixed_standardization,
            )
        values, std = model_data(
            stats, self.spec["means"], self.spec["covariance"], self.priors,
            self.parameterization, self.fixed_standardization,
        )
        check_same_structure(self._values, self.stats, values, stats)
        self._values, self.standardization, self.stats = values, std, stats
        return self

    def fit(
        self,
        sampler: str | None = None,
        draws: int = 1000,
        tune: int = 1000,
        chains: int = 4,
        random_seed: int | None = None,
        progressbar: bool = True,
        var_names: Sequence[str] | None = None,
        thin: int = 1,
        **kwargs,
    ) -> GroupCovResult:
        """Sample the posterior.

        Parameters
        ----------
        sampler : {"numpyro", "nutpie", "pymc"}, optional
            Back-end; the default is the fastest measured on CPU (``"numpyro"``).
        draws, tune, chains : int
            Draws and warm-up steps per chain, and number of chains.
        random_seed : int, optional
            Seed for reproducible draws.
        progressbar : bool
            Show the back-end's progress bar.
        var_names : sequence of str, optional
            Posterior variables to keep (default: all). With many groups, keeping
            e.g. ``["mu", "sigma", "corr"]`` bounds memory (``cov`` is rebuilt from
            them where needed).
        thin : int
            Keep every ``thin``-th of ``draws * thin`` draws per chain. Every draw,
            kept or not, still enters the mean, sd and split R-hat of each kept
            variable (:attr:`GroupCovResult.moments`,
            ``diagnostics().max_r_hat_all_draws``): with many groups, few kept draws
            bound memory while the convergence check covers the whole run.
        **kwargs
            Passed to the back-end (for example ``target_accept=0.95``). The default
            ``target_accept`` is 0.9, 0.95 for hierarchical models of fewer than
            :data:`FEW_GROUPS` groups, and 0.8 for jittered HMC draws (see
            :meth:`default_target_accept`). The
            NumPyro back-end also takes ``algorithm="nuts"`` or ``"jittered"`` (NUTS's
            warm-up start, then HMC with jittered trajectory lengths; the default
            where every group has many rows, see :meth:`default_algorithm`).

        Returns
        -------
        GroupCovResult

        Warns
        -----
        ConvergenceWarning
            Divergent transitions, draws stopped at the maximum tree depth, chains
            that disagree on the log density or on a between-group scale, or too few
            effective draws of those (:func:`groupcov.result.sampling_problems`); every
            quantity's R-hat and ESS are in :meth:`GroupCovResult.diagnostics`.
        """
        if (sampler or DEFAULT_SAMPLER) == "numpyro":
            kwargs.setdefault("algorithm", self.default_algorithm())
        kwargs.setdefault("target_accept", self.default_target_accept(kwargs.get("algorithm")))
        options = dict(
            draws=draws,
            tune=tune,
            chains=chains,
            random_seed=random_seed,
            progressbar=progressbar,
            var_names=None if var_names is None else list(var_names),
            thin=thin,
            **kwargs,
        )
        if self._model_exposed:
            idata = run_sampler(self._model, sampler, **options)
        else:
            coords = coords_for(self.stats)
            idata = sample_structure(
                self._structure(), self._values, coords, self._built_model, sampler,
                density=self._density_spec(), **options,
            )
        result = GroupCovResult.from_posterior(
            idata, self.stats, self.spec, self.group if isinstance(self.group, str) else None
        )
        from groupcov import __version__

        # what reproduces the fit, kept with it (netCDF attributes: no None)
        result.posterior.attrs.update(
            random_seed="none" if random_seed is None else str(random_seed),
            target_accept=float(kwargs["target_accept"]),
            groupcov_version=__version__,
        )
        for problem in sampling_problems(result.sample_stats, result.posterior,
                                         result.moments):
            warnings.warn(problem, ConvergenceWarning, stacklevel=2)
        return result

    def _density_spec(self):
        """The model as a JAX log density, or None where it must be sampled as a PyMC
        model: another parameterization than the default, or :attr:`model` accessed
        (and perhaps extended)."""
        if self.parameterization != "auto" or self._model_exposed:
            return None
        from groupcov.model.density import DensitySpec

        return DensitySpec(
            self.spec["means"], self.spec["covariance"], self.stats.n_groups,
            self.stats.n_features, self.priors,
        )

    def default_target_accept(self, algorithm: str | None = None) -> float:
        """The sampler's target acceptance rate unless the caller sets one: 0.8 for
        jittered HMC draws (``algorithm="jittered"``), otherwise NUTS's 0.9, or 0.95
        for hierarchical models of fewer than :data:`FEW_GROUPS` groups.

        With few groups the between-group scales of a hierarchical model are weakly
        identified, and their posterior reaches down to zero, where the sampler's
        coordinates change from centered to non-centered; there a smaller step keeps
        NUTS from diverging. Measured on the two-group example (12 seeds, 4 x 1,000
        draws): runs with a divergent transition 5 of 12 at 0.9, 1 of 12 at 0.95, for
        20% more leapfrog steps.

        Jittered draws are made where every group has many rows and the posterior is
        close to Gaussian (:meth:`default_algorithm`). Their trajectories have a fixed
        length distribution, so their cost is inversely proportional to the step size,
        and for HMC in many dimensions the best acceptance rate is lower still (about
        0.65; Beskos et al., 2013). Measured, 200 groups x 1,000 rows, p = 5, 4 x 1,000
        draws, 0.9 -> 0.8: leapfrog steps per draw 14.6 -> 11.2, first fit (compilation
        included) 31.8 -> 25.6 s, bulk ESS 3,086 -> 2,722, tail ESS 2,030 -> 1,524
        (seed 3; seed 4: 15.7 -> 12.0 steps, bulk 3,183 -> 2,724, tail 1,891 -> 1,780),
        no divergences: per draw a little less efficient, per leapfrog step not.
        """
        if algorithm == "jittered":
            return 0.8
        hierarchical = "hierarchical" in (self.spec["means"], self.spec["covariance"])
        return 0.95 if hierarchical and self.stats.n_groups < FEW_GROUPS else 0.9

    def default_algorithm(self) -> str:
        """How the NumPyro back-end makes the draws unless the caller says:
        ``"jittered"`` or ``"nuts"`` (:func:`groupcov.inference.jax_backend.nuts_chain`).

        ``"jittered"`` (HMC whose warm-up trajectories run to their first U-turn, then
        HMC with random trajectory lengths learnt from those;
        :mod:`groupcov.inference.jittered`) when every group has at least ``p +`` :data:`RICH_ROWS`
        complete rows, there are at least :data:`FEW_GROUPS` groups, and not every
        parameter is pooled: each group's posterior is then close to Gaussian, and so
        are the between-group scales', where NUTS spends twice the leapfrog steps on
        doubling its trajectory.
        Measured, 4 x 1,000 draws (leapfrog steps per draw, smallest ESS over every
        quantity's bulk, tail and squared deviation, NUTS -> jittered): 200 groups x
        1,000 rows, p = 5: 31 -> 13, 1,068 -> 1,779, sampling 45.6 -> 23.1 s; 20 x 5,000,
        p = 4: 15 -> 7, 1,169 -> 1,877; 200 x 10, p = 2: 31 -> 10.5, 1,201 -> 1,450
        (with NUTS's first 250 warm-up iterations; the U-turn warm-up start then took a
        first fit of 20 x 5,000 from 12-16 to 9 s, and 200 x 1,000 stayed at 44 s).
        Otherwise NUTS: with 500 groups of 3 rows the between-group correlation scale
        had 169 effective draws against NUTS's 384, in half the steps, and R-hat 1.016;
        with few groups those scales are weakly identified, their posterior far from
        Gaussian; and a small model (few groups, or all pooled) samples in a fraction of
        a second.
        """
        if self.stats.n_groups < FEW_GROUPS or set(self.spec.values()) == {"pooled"}:
            return "nuts"
        rich = int(np.min(self.stats.n)) >= self.stats.n_features + RICH_ROWS
        return "jittered" if rich else "nuts"

    def __repr__(self) -> str:
        return (
            f"GroupCovModel(means={self.spec['means']!r}, "
            f"covariance={self.spec['covariance']!r}; {self.stats.n_groups} groups, "
            f"{self.stats.n_features} features, {self.stats.n_rows} rows)"
        )
