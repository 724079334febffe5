"""Sufficient statistics per group: the only contract between data and model."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

__all__ = [
    "FeatureSummary",
    "IncompleteCells",
    "Standardization",
    "SufficientStats",
    "combine",
    "decode_labels",
    "encode_labels",
    "label_type",
    "pack_suffstats",
    "plain_label",
    "scatter_root",
]


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
class IncompleteCells:
    """Statistics of rows with some (not all, not no) features observed.

    Rows are grouped by (group, pattern of observed features); each such cell holds
    the count, mean and centered scatter of its observed sub-vector. Entries of
    unobserved features are zero in ``mean`` and ``scatter``.

    Attributes
    ----------
    group : numpy.ndarray of int, shape ``(K,)``
        Index of each cell's group in :attr:`SufficientStats.groups`.
    observed : numpy.ndarray of bool, shape ``(K, p)``
        Which features the cell's rows observe.
    n : numpy.ndarray of int, shape ``(K,)``
        Rows in each cell.
    mean : numpy.ndarray, shape ``(K, p)``
        Mean of the observed features (0 where unobserved).
    scatter : numpy.ndarray, shape ``(K, p, p)``
        Centered scatter of the observed features (0 in unobserved rows and columns).
    """

    group: np.ndarray
    observed: np.ndarray
    n: np.ndarray
    mean: np.ndarray
    scatter: np.ndarray

    def __post_init__(self):
        k, p = np.shape(self.observed)
        if (
            np.shape(self.group) != (k,)
            or np.shape(self.n) != (k,)
            or np.shape(self.mean) != (k, p)
            or np.shape(self.scatter) != (k, p, p)
        ):
            raise ValueError(
                f"inconsistent shapes of incomplete cells: observed {np.shape(self.observed)}, "
                f"group {np.shape(self.group)}, n {np.shape(self.n)}, "
                f"mean {np.shape(self.mean)}, scatter {np.shape(self.scatter)}"
            )

    @property
    def n_cells(self) -> int:
        """Number of (group, pattern) cells ``K``."""
        return len(self.n)

    @classmethod
    def empty(cls, p: int) -> IncompleteCells:
        """No incomplete rows."""
        return cls(
            np.zeros(0, dtype=np.int64), np.zeros((0, p), dtype=bool),
            np.zeros(0, dtype=np.int64), np.zeros((0, p)), np.zeros((0, p, p)),
        )


def _rounds(index: np.ndarray):
    """Boolean selections covering ``index`` with each value at most once per selection.

    Lets repeated updates of the same slot be applied vectorized, round by round.
    """
    index = np.asarray(index)
    if index.size == 0:
        return
    order = np.argsort(index, kind="stable")
    sorted_index = index[order]
    rank = np.empty(len(index), dtype=np.int64)
    rank[order] = np.arange(len(index)) - np.searchsorted(sorted_index, sorted_index)
    for r in range(int(rank.max()) + 1):
        yield rank == r


class FeatureSummary(NamedTuple):
    """Per-feature location and spread over all observed values.

    Attributes
    ----------
    count : numpy.ndarray, shape ``(p,)``
        Observed values of each feature.
    center : numpy.ndarray, shape ``(p,)``
        Mean of each feature over all groups.
    within_sd : numpy.ndarray, shape ``(p,)``
        Pooled within-group standard deviation (0 where no group has two values).
    total_sd : numpy.ndarray, shape ``(p,)``
        Standard deviation about ``center``, ignoring groups.
    """

    count: np.ndarray
    center: np.ndarray
    within_sd: np.ndarray
    total_sd: np.ndarray


@dataclass(frozen=True)
class SufficientStats:
    """Counts, means and centered scatter matrices of each group.

    Rows with every feature observed are summarized per group in ``n``, ``mean`` and
    ``scatter``; rows with some features missing are summarized per (group, pattern)
    in ``incomplete``; rows with no feature observed are only counted.

    Attributes
    ----------
    groups : tuple
        Group labels, in model order.
    features : tuple of str
        Feature names.
    n : numpy.ndarray, shape ``(G,)``
        Complete rows per group.
    mean : numpy.ndarray, shape ``(G, p)``
        Mean of each group's complete rows (0 where it has none).
    scatter : numpy.ndarray, shape ``(G, p, p)``
        Centered scatter matrix ``sum (x - mean)(x - mean)^T`` of each group's complete rows.
    incomplete : IncompleteCells, optional
        Rows with missing features, by (group, pattern); none by default.
    empty_rows : numpy.ndarray of int, shape ``(G,)``, optional
        Rows of each group with no feature observed (they carry no information).

    Examples
    --------
    >>> st = SufficientStats(("a", "b"), ("x",), np.array([2, 2]),
    ...                      np.array([[2.0], [2.0]]), np.array([[[2.0]], [[0.0]]]))
    >>> st.pooled()[2].tolist()
    [[2.0]]
    >>> st.has_missing, st.n_rows
    (False, 4)
    """

    groups: tuple
    features: tuple[str, ...]
    n: np.ndarray
    mean: np.ndarray
    scatter: np.ndarray
    incomplete: IncompleteCells | None = None
    empty_rows: np.ndarray | None = None

    def __post_init__(self):
        g, p = len(self.groups), len(self.features)
        if self.n.shape != (g,) or self.mean.shape != (g, p) or self.scatter.shape != (g, p, p):
            raise ValueError(
                f"inconsistent shapes: {g} groups and {p} features, but n {self.n.shape}, "
                f"mean {self.mean.shape}, scatter {self.scatter.shape}"
            )
        if self.incomplete is None:
            object.__setattr__(self, "incomplete", IncompleteCells.empty(p))
        elif self.incomplete.observed.shape[1] != p:
            raise ValueError(
                f"incomplete cells have {self.incomplete.observed.shape[1]} features, not {p}"
            )
        if self.empty_rows is None:
            object.__setattr__(self, "empty_rows", np.zeros(g, dtype=np.int64))
        elif np.shape(self.empty_rows) != (g,):
            raise ValueError(f"empty_rows must have shape ({g},), not {np.shape(self.empty_rows)}")

    @classmethod
    def from_cells(
        cls,
        groups: Sequence,
        features: Sequence[str],
        group: np.ndarray,
        observed: np.ndarray,
        n: np.ndarray,
        mean: np.ndarray,
        scatter: np.ndarray,
    ) -> SufficientStats:
        """Assemble statistics from (group, pattern) cells, in any order and repeated.

        Every reduction engine ends here. Cells with the same group and pattern are
        merged pairwise; cells observing every feature become the complete statistics,
        cells observing none are counted as empty rows.

        Parameters
        ----------
        groups : sequence
            Group labels; ``group`` indexes into them.
        features : sequence of str
            Feature names.
        group : numpy.ndarray of int, shape ``(K,)``
            Group index of each cell.
        observed : numpy.ndarray of bool, shape ``(K, p)``
            Observed features of each cell.
        n : numpy.ndarray, shape ``(K,)``
            Rows per cell (cells with ``n == 0`` are ignored).
        mean, scatter : numpy.ndarray, shapes ``(K, p)`` and ``(K, p, p)``
            Mean and centered scatter of each cell's observed features; entries of
            unobserved features are ignored.

        Examples
        --------
        >>> st = SufficientStats.from_cells(
        ...     ("a",), ("x", "y"), group=np.array([0, 0, 0]),
        ...     observed=np.array([[True, True], [True, False], [False, False]]),
        ...     n=np.array([3, 2, 1]), mean=np.array([[1.0, 2.0], [5.0, np.nan], [0, 0]]),
        ...     scatter=np.zeros((3, 2, 2)))
        >>> st.n.tolist(), st.incomplete.n.tolist(), st.empty_rows.tolist(), st.n_rows
        ([3], [2], [1], 5)
        """
        groups, features = tuple(groups), tuple(features)
        g_count, p = len(groups), len(features)
        group = np.asarray(group, dtype=np.int64).reshape(-1)
        observed = np.asarray(observed, dtype=bool).reshape(-1, p)
        n = np.asarray(n, dtype=float).reshape(-1)
        mask2 = observed[:, :, None] & observed[:, None, :]
        mean = np.where(observed, np.asarray(mean, dtype=float).reshape(-1, p), 0.0)
        scatter = np.where(mask2, np.asarray(scatter, dtype=float).reshape(-1, p, p), 0.0)
        keep = n > 0
        group, observed, n, mean, scatter = (
            a[keep] for a in (group, observed, n, mean, scatter)
        )
        if group.size and (group.min() < 0 or group.max() >= g_count):
            raise ValueError(f"cell group index out of range for {g_count} groups")
        n_obs = observed.sum(axis=1)
        empty = np.bincount(group[n_obs == 0], weights=n[n_obs == 0], minlength=g_count)
        # one key per (group, pattern); merge repeated cells pairwise
        patterns, pattern_id = np.unique(observed, axis=0, return_inverse=True)
        key = group * max(len(patterns), 1) + pattern_id.reshape(-1)
        keys, cell = np.unique(key, return_inverse=True)
        k = len(keys)
        c_n, c_mean, c_scatter = np.zeros(k), np.zeros((k, p)), np.zeros((k, p, p))
        for sel in _rounds(cell):
            idx = cell[sel]
            c_n[idx], c_mean[idx], c_scatter[idx] = combine(
                c_n[idx], c_mean[idx], c_scatter[idx], n[sel], mean[sel], scatter[sel]
            )
        c_group = keys // max(len(patterns), 1)
        c_observed = patterns[keys % max(len(patterns), 1)] if k else np.zeros((0, p), bool)
        full = c_observed.all(axis=1)
        partial = ~full & c_observed.any(axis=1)
        n_full = np.zeros(g_count)
        mean_full = np.zeros((g_count, p))
        scatter_full = np.zeros((g_count, p, p))
        n_full[c_group[full]] = c_n[full]
        mean_full[c_group[full]] = c_mean[full]
        scatter_full[c_group[full]] = c_scatter[full]
        incomplete = IncompleteCells(
            c_group[partial], c_observed[partial], c_n[partial].astype(np.int64),
            c_mean[partial], c_scatter[partial],
        )
        return cls(
            groups, features, n_full.astype(np.int64), mean_full, scatter_full,
            incomplete, empty.astype(np.int64),
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
        """Rows with at least one observed feature."""
        return int(self.n.sum() + self.incomplete.n.sum())

    @property
    def n_empty_rows(self) -> int:
        """Rows with no observed feature (counted, carry no information)."""
        return int(self.empty_rows.sum())

    @property
    def has_missing(self) -> bool:
        """Whether any row has a missing feature value."""
        return self.incomplete.n_cells > 0 or self.n_empty_rows > 0

    def rows_per_group(self) -> np.ndarray:
        """Rows with at least one observed feature, per group, shape ``(G,)``."""
        extra = np.bincount(
            self.incomplete.group, weights=self.incomplete.n, minlength=self.n_groups
        )
        return (self.n + extra).astype(np.int64)

    def available(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per group and feature: count, mean and sum of squares of all observed values.

        Returns
        -------
        count, mean, sum_sq : numpy.ndarray, each shape ``(G, p)``
            Complete and incomplete rows merged feature by feature.
        """
        count = np.repeat(self.n.astype(float)[:, None], self.n_features, axis=1)
        mean = self.mean.astype(float).copy()
        ss = np.diagonal(self.scatter, axis1=1, axis2=2).copy()
        cells = self.incomplete
        if not cells.n_cells:
            return count, mean, ss
        cell_n = np.where(cells.observed, cells.n[:, None].astype(float), 0.0)
        cell_ss = np.diagonal(cells.scatter, axis1=1, axis2=2)
        # merge in rounds, at most one cell per group in each round (no Python loop
        # over groups)
        for sel in _rounds(cells.group):
            g = cells.group[sel]
            n_k = cell_n[sel]
            total = count[g] + n_k
            safe = np.where(total > 0, total, 1.0)
            delta = cells.mean[sel] - mean[g]
            ss[g] = ss[g] + cell_ss[sel] + count[g] * n_k / safe * delta**2
            mean[g] = mean[g] + delta * n_k / safe
            count[g] = total
        return count, mean, ss

    def feature_summary(self) -> FeatureSummary:
        """Location and spread of each feature over every observed value."""
        count, mean, ss = self.available()
        total_n = count.sum(axis=0)
        safe = np.where(total_n > 0, total_n, 1.0)
        center = (count * mean).sum(axis=0) / safe
        between = (count * (mean - center) ** 2).sum(axis=0)
        within_ss = ss.sum(axis=0)
        total_sd = np.sqrt((within_ss + between) / np.maximum(total_n - 1.0, 1.0))
        dof = total_n - (count > 0).sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            within_sd = np.where(dof > 0, np.sqrt(within_ss / np.where(dof > 0, dof, 1.0)), 0.0)
        return FeatureSummary(total_n.astype(np.int64), center, within_sd, total_sd)

    def pooled(self) -> tuple[float, np.ndarray, np.ndarray]:
        """Count, mean and scatter of all complete rows together (groups merged).

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
        """Per-group sample covariance of complete rows, ``scatter / (n - 1)``; NaN if ``n < 2``."""
        denom = (self.n - 1.0).astype(float)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(denom[:, None, None] > 0, self.scatter / denom[:, None, None], np.nan)

    def merge(self, other: SufficientStats) -> SufficientStats:
        """Statistics of the union of the rows behind ``self`` and ``other``.

        Groups present in either are kept (order: ``self``'s, then new ones); complete
        rows, incomplete cells and empty rows are all merged.

        Examples
        --------
        >>> a = SufficientStats(("a",), ("x",), np.array([2]), np.array([[1.0]]),
        ...                     np.array([[[2.0]]]))
        >>> b = SufficientStats(("b", "a"), ("x",), np.array([1, 2]),
        ...                     np.array([[0.0], [3.0]]), np.array([[[0.0]], [[2.0]]]))
        >>> m = a.merge(b)
        >>> m.groups, m.n.tolist(), m.mean.ravel().tolist(), m.scatter.ravel().tolist()
        (('a', 'b'), [4, 1], [2.0, 0.0], [8.0, 0.0])
        """
        if tuple(other.features) != tuple(self.features):
            raise ValueError(
                f"cannot merge statistics with features {list(other.features)} into "
                f"statistics with features {list(self.features)}"
            )
        groups = list(self.groups) + [g for g in other.groups if g not in set(self.groups)]
        index = {g: i for i, g in enumerate(groups)}
        parts = [s._cells(np.array([index[g] for g in s.groups], dtype=np.int64))
                 for s in (self, other)]
        merged = [np.concatenate(arrays) for arrays in zip(*parts, strict=True)]
        return SufficientStats.from_cells(groups, self.features, *merged)

    def _cells(self, group_index: np.ndarray):
        """All statistics as (group, pattern) cells, groups renumbered by ``group_index``."""
        g, p = self.n_groups, self.n_features
        cells = self.incomplete
        return (
            np.concatenate([group_index, group_index[cells.group], group_index]),
            np.concatenate([np.ones((g, p), bool), cells.observed, np.zeros((g, p), bool)]),
            np.concatenate([self.n, cells.n, self.empty_rows]).astype(float),
            np.concatenate([self.mean, cells.mean, np.zeros((g, p))]),
            np.concatenate([self.scatter, cells.scatter, np.zeros((g, p, p))]),
        )

    def standardization(self) -> Standardization:
        """Center (pooled mean) and scale (pooled within-group sd) of each feature.

        Computed from every observed value of a feature. The scale falls back to the
        total sd where the groups carry no within-group variation of a feature (for
        example one row per group).

        Raises
        ------
        groupcov.DataError
            (a ``ValueError``) If a feature has fewer than two observed values or is
            constant over all rows (its scale would be zero).
        """
        from groupcov.data.validate import DataError

        summary = self.feature_summary()
        few = [f for f, c in zip(self.features, summary.count, strict=True) if c < 2]
        if few:
            raise DataError(
                f"feature(s) {few} have fewer than two observed values; estimating a "
                "covariance needs at least two rows per feature: remove the column(s) or add data"
            )
        total, within = summary.total_sd, summary.within_sd
        scale = np.where(within > 1e-12 * total, within, total)
        constant = [j for j, s in enumerate(total) if not s > 0]
        if constant:
            from groupcov.data.validate import precision_note

            bad = [self.features[j] for j in constant]
            note = precision_note(max(abs(summary.center[j]) for j in constant))
            raise DataError(
                f"feature(s) {bad} take a single value over all rows{note}; a covariance "
                "needs variation: remove the constant column(s)"
            )
        return Standardization(summary.center, scale)

    def standardize(self, transform: Standardization) -> SufficientStats:
        """Statistics of ``(x - center) / scale``, computed exactly from these."""
        center, scale = transform
        outer = scale[:, None] * scale[None, :]
        has = self.n[:, None] > 0
        mean = np.where(has, (self.mean - center) / scale, 0.0)
        cells = self.incomplete
        cells = IncompleteCells(
            cells.group, cells.observed, cells.n,
            np.where(cells.observed, (cells.mean - center) / scale, 0.0),
            cells.scatter / outer,
        )
        return SufficientStats(
            self.groups, self.features, self.n, mean, self.scatter / outer, cells,
            self.empty_rows,
        )

    def save(self, path) -> None:
        """Write the statistics to a ``.npz`` file that :meth:`load` reads back exactly.

        File format (version 1): an uncompressed NumPy ``.npz`` archive, written to
        ``path`` as given (no suffix is added), readable with
        ``numpy.load(path, allow_pickle=False)``:

        =======================  =======  =============  =====================================
        entry                    dtype    shape          meaning
        =======================  =======  =============  =====================================
        ``metadata``             unicode  ``()``         JSON, see below
        ``n``                    int64    ``(G,)``       complete rows per group
        ``mean``                 float64  ``(G, p)``     mean of complete rows
        ``scatter``              float64  ``(G, p, p)``  centered scatter of complete rows
        ``empty_rows``           int64    ``(G,)``       rows with no observed feature
        ``incomplete_group``     int64    ``(K,)``       group index of each cell
        ``incomplete_observed``  bool     ``(K, p)``     observed features of each cell
        ``incomplete_n``         int64    ``(K,)``       rows per cell
        ``incomplete_mean``      float64  ``(K, p)``     mean of observed features (0 else)
        ``incomplete_scatter``   float64  ``(K, p, p)``  scatter of observed features (0 else)
        =======================  =======  =============  =====================================

        ``metadata`` holds ``{"format": "groupcov.SufficientStats", "version": 1,
        "groups": [...], "group_types": [...], "features": [...]}``: the group labels
        in model order as JSON values with their Python types (``"int"``, ``"float"``,
        ``"bool"`` or ``"str"``, any Unicode) and the feature names.

        Parameters
        ----------
        path : str or os.PathLike
            File to write (overwritten).

        Raises
        ------
        ValueError
            If a group label is not an int, float, bool or str.

        Examples
        --------
        >>> import os, tempfile
        >>> st = SufficientStats((1, 2), ("x",), np.array([2, 1]), np.array([[0.5], [3.0]]),
        ...                      np.array([[[0.5]], [[0.0]]]))
        >>> path = os.path.join(tempfile.mkdtemp(), "stats.npz")
        >>> st.save(path)
        >>> back = SufficientStats.load(path)
        >>> back.groups, back.mean.ravel().tolist()
        ((1, 2), [0.5, 3.0])
        """
        import json

        labels, types = encode_labels(self.groups)
        metadata = {
            "format": _FORMAT, "version": _FORMAT_VERSION, "groups": labels,
            "group_types": types, "features": [str(f) for f in self.features],
        }
        cells = self.incomplete
        arrays = {
            "metadata": np.array(json.dumps(metadata, ensure_ascii=False)),
            "n": np.asarray(self.n, dtype=np.int64),
            "mean": np.asarray(self.mean, dtype=np.float64),
            "scatter": np.asarray(self.scatter, dtype=np.float64),
            "empty_rows": np.asarray(self.empty_rows, dtype=np.int64),
            "incomplete_group": np.asarray(cells.group, dtype=np.int64),
            "incomplete_observed": np.asarray(cells.observed, dtype=bool),
            "incomplete_n": np.asarray(cells.n, dtype=np.int64),
            "incomplete_mean": np.asarray(cells.mean, dtype=np.float64),
            "incomplete_scatter": np.asarray(cells.scatter, dtype=np.float64),
        }
        with open(path, "wb") as handle:
            np.savez(handle, **arrays)

    @classmethod
    def load(cls, path) -> SufficientStats:
        """Read statistics written by :meth:`save` (format described there).

        Raises
        ------
        FileNotFoundError
            If ``path`` does not exist.
        ValueError
            If the file is not a groupcov statistics file or has a newer format version.
        """
        import json
        import os
        import zipfile

        name = os.fspath(path)
        if not os.path.isfile(name):
            raise FileNotFoundError(f"statistics file {name!r} does not exist")
        if not zipfile.is_zipfile(name):
            raise ValueError(
                f"{name!r} is not a groupcov statistics file (not an .npz archive); "
                "write one with SufficientStats.save"
            )
        try:
            with np.load(name, allow_pickle=False) as archive:
                arrays = {key: archive[key] for key in archive.files}
        except (ValueError, OSError, zipfile.BadZipFile) as error:
            raise ValueError(
                f"{name!r} is not a groupcov statistics file ({error}); "
                "write one with SufficientStats.save"
            ) from None
        if "metadata" not in arrays:
            raise ValueError(
                f"{name!r} is not a groupcov statistics file (no 'metadata' entry); "
                "write one with SufficientStats.save"
            )
        metadata = json.loads(str(arrays["metadata"]))
        if metadata.get("format") != _FORMAT:
            raise ValueError(f"{name!r} is not a groupcov statistics file")
        if metadata.get("version", 0) > _FORMAT_VERSION:
            raise ValueError(
                f"{name!r} has format version {metadata['version']}, newer than this "
                f"groupcov reads ({_FORMAT_VERSION}); upgrade groupcov"
            )
        groups = decode_labels(metadata["groups"], metadata["group_types"])
        cells = IncompleteCells(
            arrays["incomplete_group"], arrays["incomplete_observed"], arrays["incomplete_n"],
            arrays["incomplete_mean"], arrays["incomplete_scatter"],
        )
        return cls(
            groups, tuple(metadata["features"]), arrays["n"], arrays["mean"], arrays["scatter"],
            cells, arrays["empty_rows"],
        )


_FORMAT = "groupcov.SufficientStats"
_FORMAT_VERSION = 1
_LABEL_TYPES = {int: "int", float: "float", bool: "bool", str: "str"}
_LABEL_CONVERT = {"int": int, "float": float, "bool": bool, "str": str}


def plain_label(label):
    """A NumPy string, integer, float or bool label as the Python value it holds.

    Examples
    --------
    >>> plain_label(np.str_("setosa")), plain_label(np.int64(3))
    ('setosa', 3)
    """
    if isinstance(label, (np.str_, np.integer, np.floating, np.bool_)):
        return label.item()
    return label


def label_type(label) -> str | None:
    """``"int"``, ``"float"``, ``"bool"`` or ``"str"``: how files store a group label.

    None for any other label (and for non-finite floats), which cannot be stored.

    Examples
    --------
    >>> label_type(np.int64(3)), label_type("a"), label_type(float("inf")), label_type(None)
    ('int', 'str', None, None)
    """
    value = label.item() if isinstance(label, np.generic) else label
    kind = _LABEL_TYPES.get(type(value))
    if kind == "float" and not np.isfinite(value):
        return None
    return kind


def encode_labels(groups: Sequence) -> tuple[list, list[str]]:
    """Group labels as JSON values and their types (see :meth:`SufficientStats.save`).

    Raises
    ------
    ValueError
        If a label is not an int, finite float, bool or str.

    Examples
    --------
    >>> encode_labels(["a", np.int64(2), 3.5])
    (['a', 2, 3.5], ['str', 'int', 'float'])
    """
    labels, types = [], []
    for label in groups:
        kind = label_type(label)
        if kind is None:
            raise ValueError(
                f"group label {label!r} ({type(label).__name__}) cannot be saved: labels "
                "must be ints, finite floats, bools or strings; convert them, e.g. to str"
            )
        labels.append(_LABEL_CONVERT[kind](label))
        types.append(kind)
    return labels, types


def decode_labels(values: Sequence, types: Sequence[str]) -> tuple:
    """The labels :func:`encode_labels` encoded, as the same plain Python values.

    Examples
    --------
    >>> decode_labels(["a", 2, 3.5, True], ["str", "int", "float", "bool"])
    ('a', 2, 3.5, True)
    """
    return tuple(
        _LABEL_CONVERT[kind](value) for value, kind in zip(values, types, strict=True)
    )


def scatter_root(scatter: np.ndarray) -> np.ndarray:
    """A square root ``R`` with ``R^T R = scatter``, batched; robust to singular input.

    Uses the symmetric eigendecomposition; negative round-off eigenvalues are set to 0.

    Examples
    --------
    >>> s = np.array([[2.0, 1.0], [1.0, 2.0]])
    >>> r = scatter_root(s)
    >>> np.allclose(r.T @ r, s)
    True
    """
    scatter = np.asarray(scatter, dtype=float)
    sym = 0.5 * (scatter + np.swapaxes(scatter, -1, -2))
    evals, evecs = np.linalg.eigh(sym)
    return np.sqrt(np.clip(evals, 0.0, None))[..., :, None] * np.swapaxes(evecs, -1, -2)


def pack_suffstats(mean: np.ndarray, scatter: np.ndarray) -> np.ndarray:
    """Pack means ``(..., p)`` and scatters ``(..., p, p)`` into ``(..., p + 1, p)`` values."""
    mean = np.asarray(mean, dtype=float)
    return np.concatenate([mean[..., None, :], scatter_root(scatter)], axis=-2)
