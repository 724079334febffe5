"""Problem sizes of the benchmark suite and their data sets.

The two-group size is ``groupcov.datasets.two_groups()``; medium and large are
``simulate_groups``; the huge size (10 million rows) is generated here group-block by
group-block with vectorized NumPy and written to a Parquet file, so that neither the
generator nor the reduction ever holds more than one block of rows in memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "SIZES",
    "Size",
    "batched_cpc_chol",
    "simulate_arrays",
    "simulate_blocks",
    "write_huge_parquet",
]


@dataclass(frozen=True)
class Size:
    """One problem size: groups x rows per group x features."""

    name: str
    groups: int
    rows: int
    features: int

    @property
    def n_rows(self) -> int:
        return self.groups * self.rows

    def describe(self) -> str:
        return (
            f"{self.name}: G={self.groups:,} groups x {self.rows:,} rows, p={self.features} "
            f"({self.n_rows:,} rows)"
        )


SIZES: dict[str, Size] = {
    s.name: s
    for s in (
        Size("two-group", 2, 1000, 2),
        Size("medium", 20, 5000, 4),
        Size("large", 200, 1000, 5),
        Size("huge", 10_000, 1000, 5),
    )
}


def batched_cpc_chol(cpc: np.ndarray, p: int) -> np.ndarray:
    """Correlation Cholesky factors ``(..., p, p)`` from canonical partial correlations.

    ``cpc`` has shape ``(..., p (p - 1) / 2)``, ordered column by column like
    ``groupcov.datasets``: (1,0), (2,0), ..., (p-1,0), (2,1), ...

    Examples
    --------
    >>> chol = batched_cpc_chol(np.array([[0.5], [-0.2]]), 2)
    >>> np.round(chol @ np.swapaxes(chol, -1, -2), 12)[:, 1, 0].tolist()
    [0.5, -0.2]
    """
    batch = cpc.shape[:-1]
    z = np.zeros((*batch, p, p))
    cols, rows = np.triu_indices(p, 1)
    z[..., rows, cols] = cpc
    chol = np.zeros((*batch, p, p))
    remaining = np.ones((*batch, p))
    for j in range(p):
        for i in range(p):
            if i > j:
                chol[..., i, j] = z[..., i, j] * np.sqrt(remaining[..., i])
                remaining[..., i] -= chol[..., i, j] ** 2
            elif i == j:
                chol[..., i, i] = np.sqrt(remaining[..., i])
    return chol


def simulate_blocks(
    size: Size,
    *,
    seed: int = 0,
    block: int = 500,
    corr_spread: float = 0.3,
    log_sd_spread: float = 0.3,
    mean_spread: float = 1.0,
) -> tuple[dict[str, Any], Iterator[tuple[np.ndarray, np.ndarray]]]:
    """Simulate ``size`` like :func:`groupcov.datasets.simulate_groups`, block by block.

    Group parameters are drawn like ``simulate_groups`` (population LKJ(2) correlation
    perturbed per group on the atanh-CPC scale, log-normal sds, normal means),
    vectorized; rows are generated ``block`` groups at a time.

    Returns
    -------
    truth : dict
        ``labels`` (``g00000`` ...), ``features``, true ``mean`` ``(G, p)`` and
        ``cov`` ``(G, p, p)``.
    blocks : iterator
        ``(group_index, x)`` per block: row group indices ``(n,)`` and features ``(n, p)``.

    Examples
    --------
    >>> truth, blocks = simulate_blocks(Size("tiny", 3, 4, 2), block=2)
    >>> [x.shape for _, x in blocks]
    [(8, 2), (4, 2)]
    """
    rng = np.random.default_rng(seed)
    g_total, n, p = size.groups, size.rows, size.features
    k = p * (p - 1) // 2
    width = len(str(g_total - 1))
    labels = [f"g{i:0{width}d}" for i in range(g_total)]
    cols = np.concatenate([np.full(p - 1 - j, j) for j in range(p - 1)]) if k else np.zeros(0)
    b = 2.0 + (p - 2 - cols) / 2.0
    cpc_pop = 2.0 * rng.beta(b, b) - 1.0
    cpc = np.tanh(np.arctanh(cpc_pop) + corr_spread * rng.standard_normal((g_total, k)))
    sd = np.exp(log_sd_spread * rng.standard_normal((g_total, p)))
    chol = sd[:, :, None] * batched_cpc_chol(cpc, p)
    mean = mean_spread * rng.standard_normal((g_total, p))
    truth = {
        "labels": labels,
        "features": [f"x{j}" for j in range(p)],
        "mean": mean,
        "cov": chol @ np.swapaxes(chol, -1, -2),
    }

    def blocks() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for start in range(0, g_total, block):
            stop = min(start + block, g_total)
            z = rng.standard_normal((stop - start, n, p))
            x = mean[start:stop, None, :] + np.einsum("gnj,gij->gni", z, chol[start:stop])
            yield np.repeat(np.arange(start, stop), n), x.reshape(-1, p)

    return truth, blocks()


def simulate_arrays(size: Size, *, seed: int = 0) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """:func:`simulate_blocks` in memory: ``(truth, group_index (N,), x (N, p))``."""
    truth, blocks = simulate_blocks(size, seed=seed)
    x = np.empty((size.n_rows, size.features))
    idx = np.empty(size.n_rows, dtype=np.int64)
    row = 0
    for g, xb in blocks:
        x[row : row + len(xb)] = xb
        idx[row : row + len(xb)] = g
        row += len(xb)
    return truth, idx, x


def write_huge_parquet(path: str | Path, size: Size, *, seed: int = 0) -> dict[str, Any]:
    """Write :func:`simulate_blocks` to ``path`` (Parquet) one block at a time.

    Columns: ``group`` (labels ``g00000`` ...) and ``x0 .. x{p-1}``; returns the truth.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    truth, blocks = simulate_blocks(size, seed=seed)
    labels = np.asarray(truth["labels"])
    features = truth["features"]
    schema = pa.schema([("group", pa.string())] + [(f, pa.float64()) for f in features])
    with pq.ParquetWriter(str(path), schema) as writer:
        for g, x in blocks:
            table = pa.table(
                [pa.array(labels[g])] + [pa.array(x[:, j]) for j in range(x.shape[1])],
                schema=schema,
            )
            writer.write_table(table)
    return truth
