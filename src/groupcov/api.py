"""The user-facing model: from a table to a fitted posterior."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from groupcov.data import DataError, reduce
from groupcov.inference import run_sampler
from groupcov.model.build import PARAMETERIZATIONS, POOLING, build_model
from groupcov.model.priors import Priors
from groupcov.result import GroupCovResult
from groupcov.stats import SufficientStats

__all__ = ["GroupCovModel"]


def _default_features(data, group: str) -> list[str]:
    if isinstance(data, SufficientStats):
        return list(data.features)
    if isinstance(data, pd.DataFrame):
        numeric = [
            c for c in data.columns if c != group and pd.api.types.is_numeric_dtype(data[c])
        ]
        if not numeric:
            raise DataError(f"no numeric feature columns besides {group!r}; pass features=[...]")
        return numeric
    raise DataError("pass features=[...] to name the feature columns")


class GroupCovModel:
    """Per-group means and covariance matrices with pooled, unpooled or hierarchical priors.

    Parameters
    ----------
    data : pandas.DataFrame or SufficientStats
        One row per observation, with a group column and numeric feature columns.
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
        Sampler geometry of hierarchical parameters; ``"auto"`` adapts to each group's
        size and to the between-group spread (the model is the same).

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
    ):
        for arg, value in (("means", means), ("covariance", covariance)):
            if value not in POOLING:
                raise ValueError(f"{arg}= must be one of {POOLING}, not {value!r}")
        if parameterization not in PARAMETERIZATIONS:
            raise ValueError(
                f"parameterization= must be one of {PARAMETERIZATIONS}, not {parameterization!r}"
            )
        if features is None:
            features = _default_features(data, group)
        self.stats = reduce(data, group=group, features=features)
        if "hierarchical" in (means, covariance) and self.stats.n_groups < 2:
            modes = [a for a, v in (("means", means), ("covariance", covariance))
                     if v == "hierarchical"]
            raise DataError(
                f"{' and '.join(m + '=' for m in modes)}'hierarchical' needs at least two "
                f"groups, but column {group!r} has {self.stats.n_groups} "
                f"({list(self.stats.groups)}); use 'pooled' or 'unpooled'"
            )
        self.group = group
        self.spec = {"means": means, "covariance": covariance}
        self.priors = Priors.from_user(priors)
        self.parameterization = parameterization
        parts = build_model(self.stats, means, covariance, self.priors, parameterization)
        self.model = parts.model
        self.standardization = parts.standardization

    def fit(
        self,
        sampler: str | None = None,
        draws: int = 1000,
        tune: int = 1000,
        chains: int = 4,
        random_seed: int | None = None,
        progressbar: bool = True,
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
        **kwargs
            Passed to the back-end (for example ``target_accept=0.9``).

        Returns
        -------
        GroupCovResult
        """
        idata = run_sampler(
            self.model,
            sampler,
            draws=draws,
            tune=tune,
            chains=chains,
            random_seed=random_seed,
            progressbar=progressbar,
            **kwargs,
        )
        return GroupCovResult.from_posterior(idata, self.stats, self.spec)

    def __repr__(self) -> str:
        return (
            f"GroupCovModel(means={self.spec['means']!r}, "
            f"covariance={self.spec['covariance']!r}; {self.stats.n_groups} groups, "
            f"{self.stats.n_features} features, {self.stats.n_rows} rows)"
        )
