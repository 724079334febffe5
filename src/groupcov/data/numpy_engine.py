"""In-memory reduction of a coded array to per-group statistics (NumPy)."""

from __future__ import annotations

import numpy as np

from groupcov.stats import combine

__all__ = [
    "merge_cells",
    "pattern_codes",
    "reduce_array",
    "reduce_cells",
    "relative_cells",
    "relative_moments",
]

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


def _group_shift(codes: np.ndarray, x: np.ndarray, n_groups: int) -> np.ndarray:
    """One row of each group (zeros for absent groups), shape ``(n_groups, p)``.

    Any row of the group serves as its reference; scattering row numbers avoids a sort.
    """
    shift = np.zeros((n_groups, x.shape[1]))
    row = np.full(n_groups, -1, dtype=np.int64)
    row[codes] = np.arange(len(codes))
    present = row >= 0
    shift[present] = x[row[present]]
    return shift


def relative_moments(
    codes: np.ndarray, x: np.ndarray, n_groups: int, chunk_rows: int = CHUNK_ROWS
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Counts, reference rows, means relative to them, and scatters of coded rows.

    Each group's rows are taken relative to one of its rows (the reference), each
    chunk is reduced with a two-pass (centered) computation and chunks are merged
    pairwise, so neither a large common offset nor groups far apart cost precision.

    Returns
    -------
    n : numpy.ndarray, shape ``(G,)``
    ref : numpy.ndarray, shape ``(G, p)``
        A row of each group (0 for absent groups).
    dmean : numpy.ndarray, shape ``(G, p)``
        Mean minus ``ref``.
    scatter : numpy.ndarray, shape ``(G, p, p)``
    """
    p = x.shape[1]
    ref = _group_shift(codes, x, n_groups)
    n = np.zeros(n_groups)
    dmean = np.zeros((n_groups, p))
    scatter = np.zeros((n_groups, p, p))
    for start in range(0, len(codes), chunk_rows):
        rows = slice(start, start + chunk_rows)
        part = _chunk_stats(codes[rows], x[rows] - ref[codes[rows]], n_groups)
        n, dmean, scatter = combine(n, dmean, scatter, *part)
    return n, ref, dmean, scatter


def reduce_array(
    codes: np.ndarray, x: np.ndarray, n_groups: int, chunk_rows: int = CHUNK_ROWS
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Counts ``(G,)``, means ``(G, p)`` and scatters ``(G, p, p)`` of coded rows.

    Rows are taken relative to a row of their group, each chunk is reduced with a
    two-pass (centered) computation and chunks are merged pairwise, so a large
    offset of a column or of a group does not cost precision.

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
    codes = np.asarray(codes, dtype=np.int64)
    n, ref, dmean, scatter = relative_moments(codes, x, n_groups, chunk_rows)
    return n, np.where(n[:, None] > 0, ref + dmean, 0.0), scatter


def unique_inverse(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(values, return_inverse=True)`` for non-negative integers.

    Without a sort when the values are small (a count per possible value), which is
    the common case of group codes times patterns.

    Examples
    --------
    >>> keys, index = unique_inverse(np.array([5, 2, 5, 9]))
    >>> keys.tolist(), index.tolist()
    ([2, 5, 9], [1, 0, 1, 2])
    """
    values = np.asarray(values, dtype=np.int64).reshape(-1)
    if values.size == 0:
        return values.copy(), values.copy()
    top = int(values.max())
    if values.min() < 0 or top > max(4 * values.size, 1 << 20):
        keys, index = np.unique(values, return_inverse=True)
        return keys, index.reshape(-1)
    present = np.zeros(top + 1, dtype=bool)
    present[values] = True
    keys = np.flatnonzero(present)
    position = np.cumsum(present) - 1
    return keys, position[values]


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
    p = observed.shape[1]
    if p <= 62:
        bits = observed.astype(np.int64) @ (np.int64(1) << np.arange(p, dtype=np.int64))
        keys, index = unique_inverse(bits)
        patterns = ((keys[:, None] >> np.arange(p)) & 1).astype(bool)
        return patterns, index.reshape(-1)
    patterns, index = np.unique(observed, axis=0, return_inverse=True)
    return patterns, index.reshape(-1)


def relative_cells(
    codes: np.ndarray, x: np.ndarray, n_groups: int, chunk_rows: int = CHUNK_ROWS
) -> tuple[np.ndarray, ...]:
    """Statistics per (group, pattern) cell, means relative to a reference row.

    Returns
    -------
    group, observed, n, ref, dmean, scatter : numpy.ndarray
        Group index, observed features, count, reference (a row of the cell, 0
        where unobserved), mean minus reference, and scatter of each cell. Partial
        cells of the same (group, pattern) merge without loss with :func:`merge_cells`.
    """
    x = np.asarray(x, dtype=float)
    observed = ~np.isnan(x)
    patterns, pattern = pattern_codes(observed)
    key = np.asarray(codes, dtype=np.int64) * len(patterns) + pattern
    keys, cell = unique_inverse(key)
    filled = np.where(observed, x, 0.0)
    n, ref, dmean, scatter = relative_moments(cell.reshape(-1), filled, len(keys), chunk_rows)
    return keys // len(patterns), patterns[keys % len(patterns)], n, ref, dmean, scatter


def merge_cells(
    group: np.ndarray,
    observed: np.ndarray,
    n: np.ndarray,
    ref: np.ndarray,
    dmean: np.ndarray,
    scatter: np.ndarray,
) -> tuple[np.ndarray, ...]:
    """Merge partial cells of the same (group, pattern) pairwise, keeping precision.

    The difference of two partial means is taken as ``(ref_b - ref_a) + (dmean_b -
    dmean_a)``: references are data values of the same cell, so their difference is
    exact when they are close, and the relative means are small.

    Returns
    -------
    group, observed, n, mean, scatter : numpy.ndarray
        One entry per distinct (group, pattern), as taken by
        :meth:`groupcov.stats.SufficientStats.from_cells`.

    Examples
    --------
    >>> x = np.array([[1e9 + 0.25], [1e9 + 0.5], [1e9 + 1.0]])
    >>> a = relative_cells(np.array([0, 0]), x[:2], 1)
    >>> b = relative_cells(np.array([0]), x[2:], 1)
    >>> g, obs, n, mean, scatter = merge_cells(*(np.concatenate(z) for z in zip(a, b)))
    >>> n.tolist(), round(float(mean[0, 0]) - 1e9, 6), round(float(scatter[0, 0, 0]), 15)
    ([3.0], 0.583333, 0.291666666666667)
    """
    group = np.asarray(group, dtype=np.int64)
    observed = np.asarray(observed, dtype=bool)
    patterns, pattern = pattern_codes(observed) if len(observed) else (observed, group)
    key = group * max(len(patterns), 1) + pattern
    keys, cell = unique_inverse(key)
    cell = cell.reshape(-1)
    k, p = len(keys), observed.shape[1]
    first = np.zeros(k, dtype=np.int64)
    first[cell[::-1]] = np.arange(len(cell))[::-1]
    base = np.asarray(ref, dtype=float)[first]
    c_n, c_dmean, c_scatter = np.zeros(k), np.zeros((k, p)), np.zeros((k, p, p))
    order = np.argsort(cell, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order)) - np.searchsorted(cell[order], cell[order])
    for r in range(int(rank.max()) + 1 if len(rank) else 0):
        sel = rank == r
        idx = cell[sel]
        moved = (np.asarray(ref)[sel] - base[idx]) + np.asarray(dmean)[sel]
        c_n[idx], c_dmean[idx], c_scatter[idx] = combine(
            c_n[idx], c_dmean[idx], c_scatter[idx], np.asarray(n)[sel], moved,
            np.asarray(scatter)[sel],
        )
    c_observed = patterns[keys % max(len(patterns), 1)] if k else np.zeros((0, p), bool)
    mean = np.where(c_observed, base + c_dmean, 0.0)
    return keys // max(len(patterns), 1), c_observed, c_n, mean, c_scatter


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
    group, observed, n, ref, dmean, scatter = relative_cells(codes, x, n_groups, chunk_rows)
    return group, observed, n, np.where(observed, ref + dmean, 0.0), scatter
