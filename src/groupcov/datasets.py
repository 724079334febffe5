"""Simulated data sets with known truth, for the demo, tests and benchmarks."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd

__all__ = ["SimulatedData", "simulate_groups", "two_groups"]


class SimulatedData(NamedTuple):
    """A simulated table together with the parameters that generated it.

    Attributes
    ----------
    data : pandas.DataFrame
        One row per observation: a ``group`` column and one column per feature.
    mean : dict
        Group label -> true mean vector, shape ``(p,)``.
    cov : dict
        Group label -> true covariance matrix, shape ``(p, p)``.
    features : list of str
        Feature column names.
    """

    data: pd.DataFrame
    mean: dict
    cov: dict
    features: list[str]


def _table(samples: dict, features: list[str]) -> pd.DataFrame:
    frames = [
        pd.DataFrame(x, columns=features).assign(group=g) for g, x in samples.items()
    ]
    df = pd.concat(frames, ignore_index=True)
    return df[["group", *features]]


def two_groups(n_per_group: int = 1000, seed: int = 20240601) -> SimulatedData:
    """The two-group example: A ~ N((0, 0), I), B ~ N((1, -1), [[1, -.5], [-.5, 1]]).

    Parameters
    ----------
    n_per_group : int
        Rows per group.
    seed : int
        Seed of the NumPy generator; the default reproduces ``groupcov demo``.

    Returns
    -------
    SimulatedData

    Examples
    --------
    >>> sim = two_groups(n_per_group=10, seed=1)
    >>> sim.data.shape
    (20, 3)
    >>> sim.cov["B"].tolist()
    [[1.0, -0.5], [-0.5, 1.0]]
    """
    rng = np.random.default_rng(seed)
    mean = {"A": np.array([0.0, 0.0]), "B": np.array([1.0, -1.0])}
    cov = {"A": np.eye(2), "B": np.array([[1.0, -0.5], [-0.5, 1.0]])}
    samples = {g: rng.multivariate_normal(mean[g], cov[g], size=n_per_group) for g in mean}
    features = ["x", "y"]
    return SimulatedData(_table(samples, features), mean, cov, features)


def simulate_groups(
    n_groups: int,
    n_per_group: int | np.ndarray,
    n_features: int,
    *,
    seed: int = 0,
    mean_spread: float = 1.0,
    log_sd_spread: float = 0.3,
    corr_spread: float = 0.3,
    eta: float = 2.0,
) -> SimulatedData:
    """Simulate a hierarchical population of groups.

    Group means are ``N(0, mean_spread**2)`` per feature; log standard deviations
    are ``N(0, log_sd_spread**2)``; correlation matrices are a population LKJ(eta)
    draw perturbed per group on the canonical-partial-correlation scale
    (``atanh`` scale sd ``corr_spread``), so every matrix is positive definite.

    Parameters
    ----------
    n_groups, n_per_group, n_features : int
        Size of the problem; ``n_per_group`` may be an array of length ``n_groups``.
    seed : int
        Seed of the NumPy generator.
    mean_spread, log_sd_spread, corr_spread, eta : float
        Population parameters described above.

    Returns
    -------
    SimulatedData

    Examples
    --------
    >>> sim = simulate_groups(3, 5, 4, seed=0)
    >>> sim.data.shape
    (15, 5)
    """
    rng = np.random.default_rng(seed)
    p = n_features
    features = [f"x{j}" for j in range(p)]
    sizes = np.broadcast_to(np.asarray(n_per_group), (n_groups,))
    k = p * (p - 1) // 2
    cols = np.concatenate([np.full(p - 1 - j, j) for j in range(p - 1)]) if k else np.zeros(0)
    b = eta + (p - 2 - cols) / 2.0
    cpc_pop = 2.0 * rng.beta(b, b) - 1.0
    labels = [f"g{i:0{len(str(n_groups - 1))}d}" for i in range(n_groups)]
    mean, cov, samples = {}, {}, {}
    for i, g in enumerate(labels):
        cpc = np.tanh(np.arctanh(cpc_pop) + corr_spread * rng.standard_normal(k))
        corr_chol = _cpc_to_chol(cpc, p)
        sd = np.exp(log_sd_spread * rng.standard_normal(p))
        chol = sd[:, None] * corr_chol
        mean[g] = mean_spread * rng.standard_normal(p)
        cov[g] = chol @ chol.T
        samples[g] = mean[g] + rng.standard_normal((int(sizes[i]), p)) @ chol.T
    return SimulatedData(_table(samples, features), mean, cov, features)


def _cpc_to_chol(cpc: np.ndarray, p: int) -> np.ndarray:
    """NumPy reference construction of a correlation Cholesky factor from CPCs.

    CPCs are ordered column by column: (1,0), (2,0), ..., (p-1,0), (2,1), ...
    """
    z = np.zeros((p, p))
    rows, cols = _cpc_index(p)
    z[rows, cols] = cpc
    chol = np.zeros((p, p))
    for i in range(p):
        remaining = 1.0
        for j in range(i):
            chol[i, j] = z[i, j] * np.sqrt(remaining)
            remaining -= chol[i, j] ** 2
        chol[i, i] = np.sqrt(remaining)
    return chol


def _cpc_index(p: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column of each CPC in column-major order of the strict lower triangle."""
    cols, rows = np.triu_indices(p, 1)
    return rows, cols
