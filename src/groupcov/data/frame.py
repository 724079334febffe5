"""Validation of tables and reduction of pandas DataFrames."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from groupcov.data.numpy_engine import reduce_array, reduce_cells
from groupcov.stats import SufficientStats

__all__ = ["DataError", "reduce_pandas"]


class DataError(ValueError):
    """Input data that cannot be used as given; the message says what to change."""


def _rows_preview(mask: np.ndarray, limit: int = 5) -> str:
    rows = np.flatnonzero(mask)
    shown = ", ".join(str(r) for r in rows[:limit])
    return shown + (", ..." if rows.size > limit else "")


def check_columns(columns: Sequence, group: str, features: Sequence[str]) -> list[str]:
    """Check that ``group`` and ``features`` name distinct existing columns."""
    features = [features] if isinstance(features, str) else list(features)
    if not features:
        raise DataError("no feature columns given: pass features=[...] with at least one name")
    columns = list(columns)
    dupes = sorted({c for c in columns if columns.count(c) > 1})
    if dupes:
        raise DataError(f"the table has duplicated column names {dupes}: rename them")
    repeated = sorted({f for f in features if features.count(f) > 1})
    if repeated:
        raise DataError(f"feature(s) {repeated} listed more than once in features=")
    if group in features:
        raise DataError(f"column {group!r} is both the group column and a feature")
    missing = [c for c in [group, *features] if c not in columns]
    if missing:
        raise DataError(
            f"column(s) {missing} not found in the table; available columns: {columns}"
        )
    return features


def _feature_matrix(df: pd.DataFrame, features: list[str]) -> np.ndarray:
    for f in features:
        dtype = df[f].dtype
        if not (pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype)):
            example = df[f].dropna().iloc[:1].tolist()
            raise DataError(
                f"feature column {f!r} is not numeric (dtype {dtype}, e.g. {example}); "
                "convert it to numbers or leave it out of features="
            )
    x = df[features].to_numpy(dtype=float, na_value=np.nan)
    for j, f in enumerate(features):
        col = x[:, j]
        if np.isinf(col).any():
            bad = np.isinf(col)
            raise DataError(
                f"feature column {f!r} has {int(bad.sum())} infinite value(s) "
                f"(rows {_rows_preview(bad)}); replace or remove them"
            )
        if np.isnan(col).all():
            raise DataError(
                f"feature column {f!r} has no observed values (all {len(col)} are missing); "
                "leave it out of features="
            )
    return x


def _group_codes(labels: pd.Series, group: str) -> tuple[np.ndarray, tuple]:
    missing = labels.isna().to_numpy()
    if missing.any():
        raise DataError(
            f"group column {group!r} has {int(missing.sum())} missing label(s) "
            f"(rows {_rows_preview(missing)}); drop those rows or give them a group"
        )
    if isinstance(labels.dtype, pd.CategoricalDtype):
        labels = labels.cat.remove_unused_categories()
        return labels.cat.codes.to_numpy().astype(np.int64), tuple(labels.cat.categories)
    try:
        codes, uniques = pd.factorize(labels, sort=True)
    except TypeError:  # labels of mixed, unorderable types
        codes, uniques = pd.factorize(labels, sort=False)
    return codes.astype(np.int64), tuple(uniques.tolist())


def reduce_pandas(df: pd.DataFrame, group: str, features: Sequence[str]) -> SufficientStats:
    """Per-group sufficient statistics of a pandas DataFrame.

    Parameters
    ----------
    df : pandas.DataFrame
        One row per observation.
    group : str
        Column holding the group labels.
    features : sequence of str
        Numeric feature columns.

    Returns
    -------
    SufficientStats

    Raises
    ------
    DataError
        Naming the column and the problem: missing or duplicated columns, non-numeric
        or infinite feature values, a feature with no observed value, missing group
        labels, an empty table.

    Notes
    -----
    Missing feature values (NaN, None, ``pd.NA``) are kept: rows are summarized per
    (group, pattern of observed features), see :class:`~groupcov.stats.IncompleteCells`.

    Examples
    --------
    >>> df = pd.DataFrame({"g": ["b", "a", "a"], "x": [1.0, 2.0, 4.0]})
    >>> st = reduce_pandas(df, "g", ["x"])
    >>> st.groups, st.n.tolist(), st.mean.ravel().tolist()
    (('a', 'b'), [2, 1], [3.0, 1.0])
    """
    features = check_columns(df.columns, group, features)
    if len(df) == 0:
        raise DataError("the table has no rows")
    x = _feature_matrix(df, features)
    codes, groups = _group_codes(df[group], group)
    if np.isnan(x).any():
        cells = reduce_cells(codes, x, len(groups))
        return SufficientStats.from_cells(groups, features, *cells)
    n, mean, scatter = reduce_array(codes, x, len(groups))
    return SufficientStats(groups, tuple(features), n.astype(np.int64), mean, scatter)
