"""Sufficient statistics per group: the only contract between data and model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

__all__ = ["Standardization", "SufficientStats", "combine"]


def combine(
    n_a: np.ndarray,
    mean_a: np.ndarray,
    scatter_a: np.ndarray,
    n_b: np.ndarray,
    mean_b: np.ndarray,
    scatter_b: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairwise (Chan et al.) merge of counts, means and centered scatter matrices.

    All arguments are batched over leading dimensions; a count of zero is allowed.
    Never forms ``sum(x x^T) - n xbar xbar^T``, so large offsets do not cancel.

    Examples
    --------
    >>> x = np.array([[1.0], [2.0], [4.0], [7.0]]) + 1e9
    >>> a, b = x[:2], x[2:]
    >>> sc = lambda v: (v - v.mean(0)).T @ (v - v.mean(0))
    >>> n, m, s = combine(2, a.mean(0), sc(a), 2, b.mean(0), sc(b))
    >>> float(s[0, 0]) == float(sc(x - 1e9)[0, 0])
    True
    """
    n_a = np.asarray(n_a, dtype=float)
    n_b = np.asarray(n_b, dtype=float)
    n = n_a + n_b
    safe_n = np.where(n > 0, n, 1.0)
    delta = np.asarray(mean_b) - np.asarray(mean_a)
    weight_b = (n_b / safe_n)[..., None]
    mean = np.asarray(mean_a) + delta * weight_b
    cross = (n_a * n_b / safe_n)[..., None, None] * delta[..., :, None] * delta[..., None, :]
    scatter = np.asarray(scatter_a) + np.asarray(scatter_b) + cross
    return n, mean, scatter


class Standardization(NamedTuple):
    """Per-feature affine map ``z = (x - center) / scale`` used for fitting."""

    center: np.ndarray
    scale: np.ndarray


@dataclass(frozen=True)
class SufficientStats:
    """Counts, means and centered scatter matrices of each group.

    Attributes
    ----------
    groups : tuple
        Group labels, in model order.
    features : tuple of str
        Feature names.
    n : numpy.ndarray, shape ``(G,)``
        Rows per group.
    mean : numpy.ndarray, shape ``(G, p)``
        Mean of each group.
    scatter : numpy.ndarray, shape ``(G, p, p)``
        Centered scatter matrix ``sum (x - mean)(x - mean)^T`` of each group.

    Examples
    --------
    >>> st = SufficientStats(("a", "b"), ("x",), np.array([2, 2]),
    ...                      np.array([[2.0], [2.0]]), np.array([[[2.0]], [[0.0]]]))
    >>> st.pooled()[2].tolist()
    [[2.0]]
    """

    groups: tuple
    features: tuple[str, ...]
    n: np.ndarray
    mean: np.ndarray
    scatter: np.ndarray

    def __post_init__(self):
        g, p = len(self.groups), len(self.features)
        if self.n.shape != (g,) or self.mean.shape != (g, p) or self.scatter.shape != (g, p, p):
            raise ValueError(
                f"inconsistent shapes: {g} groups and {p} features, but n {self.n.shape}, "
                f"mean {self.mean.shape}, scatter {self.scatter.shape}"
            )

    @property
    def n_groups(self) -> int:
        """Number of groups ``G``."""
        return len(self.groups)

    @property
    def n_features(self) -> int:
        """Number of features ``p``."""
        return len(self.features)

    @property
    def n_rows(self) -> int:
        """Total number of rows."""
        return int(self.n.sum())

    def pooled(self) -> tuple[float, np.ndarray, np.ndarray]:
        """Count, mean and scatter of all rows together (groups merged).

        Within-group scatter plus the between-group scatter about the grand mean,
        vectorized over groups (the same decomposition as the pairwise merge).
        """
        n = self.n.astype(float)
        total = float(n.sum())
        if total == 0:
            p = self.n_features
            return 0.0, np.zeros(p), np.zeros((p, p))
        mean = (n[:, None] * self.mean).sum(axis=0) / total
        dev = self.mean - mean
        between = np.einsum("g,gi,gj->ij", n, dev, dev)
        return total, mean, self.scatter.sum(axis=0) + between

    def covariance(self) -> np.ndarray:
        """Per-group sample covariance (``scatter / (n - 1)``); NaN where ``n < 2``."""
        denom = (self.n - 1.0).astype(float)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(denom[:, None, None] > 0, self.scatter / denom[:, None, None], np.nan)

    def merge(self, other: SufficientStats) -> SufficientStats:
        """Statistics of the union of the rows behind ``self`` and ``other``.

        Groups present in either are kept (order: ``self``'s, then new ones).
        """
        if tuple(other.features) != tuple(self.features):
            raise ValueError(
                f"cannot merge statistics with features {list(other.features)} into "
                f"statistics with features {list(self.features)}"
            )
        groups = list(self.groups) + [g for g in other.groups if g not in set(self.groups)]
        index = {g: i for i, g in enumerate(groups)}
        p = self.n_features
        n = np.zeros(len(groups))
        mean = np.zeros((len(groups), p))
        scatter = np.zeros((len(groups), p, p))
        for stats in (self, other):
            idx = np.array([index[g] for g in stats.groups], dtype=int)
            n[idx], mean[idx], scatter[idx] = combine(
                n[idx], mean[idx], scatter[idx], stats.n, stats.mean, stats.scatter
            )
        return SufficientStats(tuple(groups), self.features, n.astype(np.int64), mean, scatter)

    def standardization(self) -> Standardization:
        """Center (pooled mean) and scale (pooled within-group sd) of each feature.

        The scale falls back to the total sd where the groups carry no within-group
        variation of a feature (for example one row per group).

        Raises
        ------
        ValueError
            If a feature is constant over all rows (its scale would be zero).
        """
        n, mean, scatter = self.pooled()
        if n < 2:
            raise ValueError("at least two rows are needed to estimate a covariance")
        total = np.sqrt(np.diag(scatter) / (n - 1.0))
        dof = n - self.n_groups
        within_scatter = np.diag(self.scatter.sum(axis=0))
        within = np.sqrt(within_scatter / dof) if dof > 0 else np.zeros_like(total)
        scale = np.where(within > 1e-12 * total, within, total)
        bad = [f for f, s in zip(self.features, total, strict=True) if not s > 0]
        if bad:
            raise ValueError(
                f"feature(s) {bad} take a single value over all rows; a covariance needs "
                "variation: remove the constant column(s)"
            )
        return Standardization(mean, scale)

    def standardize(self, transform: Standardization) -> SufficientStats:
        """Statistics of ``(x - center) / scale``, computed exactly from these."""
        center, scale = transform
        mean = (self.mean - center) / scale
        scatter = self.scatter / (scale[:, None] * scale[None, :])
        return SufficientStats(self.groups, self.features, self.n, mean, scatter)
