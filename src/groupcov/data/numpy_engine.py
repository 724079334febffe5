"""In-memory reduction of a coded array to per-group statistics (NumPy)."""

from __future__ import annotations

import numpy as np

from groupcov.stats import combine

__all__ = ["reduce_array"]

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
