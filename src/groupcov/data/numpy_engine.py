"""In-memory reduction of a coded array to per-group statistics (NumPy)."""

from __future__ import annotations

import numpy as np

from groupcov.stats import combine

__all__ = ["pattern_codes", "reduce_array", "reduce_cells"]

CHUNK_ROWS = 262_144


def _chunk_stats(codes: np.ndarray, x: np.ndarray, n_groups: int):
    """Two-pass statistics of one chunk: counts, means, centered scatter per group."""
    p = x.shape[1]
    n = np.bincount(codes, minlength=n_groups).astype(float)
    safe = np.where(n > 0, n, 1.0)
    mean = np.stack(
        [np.bincount(codes, weights=x[:, j], minlength=n_groups) for j in range(p)], axis=1
    ) / safe[:, None]
    centered = x - mean[codes]
    scatter = np.empty((n_groups, p, p))
    for i in range(p):
        for j in range(i + 1):
            s = np.bincount(codes, weights=centered[:, i] * centered[:, j], minlength=n_groups)
            scatter[:, i, j] = s
            scatter[:, j, i] = s
    return n, mean, scatter


def reduce_array(
    codes: np.ndarray, x: np.ndarray, n_groups: int, chunk_rows: int = CHUNK_ROWS
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Counts ``(G,)``, means ``(G, p)`` and scatters ``(G, p, p)`` of coded rows.

    Rows are shifted by the first row, each chunk is reduced with a two-pass
    (centered) computation and chunks are merged pairwise, so a large common offset
    in a column does not cost precision.

    Parameters
    ----------
    codes : numpy.ndarray of int, shape ``(N,)``
        Group index of each row, in ``[0, n_groups)``.
    x : numpy.ndarray of float, shape ``(N, p)``
        Feature values; must be finite.
    n_groups : int
        Number of groups.
    chunk_rows : int
        Rows per chunk (bounds temporary memory).

    Examples
    --------
    >>> n, mean, scatter = reduce_array(np.array([0, 0, 1]), np.array([[1.0], [3.0], [5.0]]), 2)
    >>> n.tolist(), mean.ravel().tolist(), scatter.ravel().tolist()
    ([2.0, 1.0], [2.0, 5.0], [2.0, 0.0])
    """
    p = x.shape[1]
    # work relative to the first row: chunk means stay small, so merging them loses
    # nothing to a large common offset
    shift = x[0].copy() if len(x) else np.zeros(p)
    n = np.zeros(n_groups)
    mean = np.zeros((n_groups, p))
    scatter = np.zeros((n_groups, p, p))
    for start in range(0, len(codes), chunk_rows):
        rows = slice(start, start + chunk_rows)
        part = _chunk_stats(codes[rows], x[rows] - shift, n_groups)
        n, mean, scatter = combine(n, mean, scatter, *part)
    return n, np.where(n[:, None] > 0, mean + shift, 0.0), scatter


def pattern_codes(observed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct rows of a boolean matrix and each row's index among them.

    Returns
    -------
    patterns : numpy.ndarray of bool, shape ``(P, p)``
    index : numpy.ndarray of int, shape ``(N,)``

    Examples
    --------
    >>> pats, idx = pattern_codes(np.array([[True, False], [True, True], [True, False]]))
    >>> pats.tolist(), idx.tolist()
    ([[True, False], [True, True]], [0, 1, 0])
    """
    observed = np.asarray(observed, dtype=bool)
    n, p = observed.shape
    if p <= 62:
        bits = observed.astype(np.int64) @ (np.int64(1) << np.arange(p, dtype=np.int64))
        keys, index = np.unique(bits, return_inverse=True)
        patterns = ((keys[:, None] >> np.arange(p)) & 1).astype(bool)
        return patterns, index.reshape(-1)
    patterns, index = np.unique(observed, axis=0, return_inverse=True)
    return patterns, index.reshape(-1)


def reduce_cells(
    codes: np.ndarray, x: np.ndarray, n_groups: int, chunk_rows: int = CHUNK_ROWS
) -> tuple[np.ndarray, ...]:
    """Statistics per (group, pattern of observed features) of rows with NaNs.

    Parameters
    ----------
    codes : numpy.ndarray of int, shape ``(N,)``
        Group index of each row.
    x : numpy.ndarray of float, shape ``(N, p)``
        Feature values, NaN where missing (no infinities).
    n_groups : int
        Number of groups.
    chunk_rows : int
        Rows per chunk.

    Returns
    -------
    group, observed, n, mean, scatter : numpy.ndarray
        One entry per cell, as taken by
        :meth:`groupcov.stats.SufficientStats.from_cells`.

    Examples
    --------
    >>> x = np.array([[1.0, 2.0], [3.0, np.nan], [5.0, np.nan]])
    >>> g, obs, n, mean, scatter = reduce_cells(np.array([0, 0, 0]), x, 1)
    >>> obs.tolist(), n.tolist(), mean[:, 0].tolist(), scatter[:, 0, 0].tolist()
    ([[True, False], [True, True]], [2.0, 1.0], [4.0, 1.0], [2.0, 0.0])
    """
    x = np.asarray(x, dtype=float)
    p = x.shape[1]
    observed = ~np.isnan(x)
    patterns, pattern = pattern_codes(observed)
    key = np.asarray(codes, dtype=np.int64) * len(patterns) + pattern
    keys, cell = np.unique(key, return_inverse=True)
    # shift each feature by its first observed value, then zero-fill: within a cell an
    # unobserved feature is constant 0, so its mean and scatter entries are 0
    first = np.argmax(observed, axis=0)
    shift = np.where(observed.any(axis=0), x[first, np.arange(p)], 0.0)
    filled = np.where(observed, x - shift, 0.0)
    n, mean, scatter = reduce_array(cell.reshape(-1), filled, len(keys), chunk_rows)
    cell_observed = patterns[keys % len(patterns)]
    mean = np.where(cell_observed, mean + shift, 0.0)
    return keys // len(patterns), cell_observed, n, mean, scatter
