"""Validation and in-memory reduction of pandas DataFrames and labelled NumPy arrays."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from groupcov.data.numpy_engine import reduce_array, reduce_cells
from groupcov.data.validate import (
    INDEX_NAMES,
    ColumnKind,
    DataError,
    all_missing_error,
    check_columns,
    check_label_types,
    check_merged_labels,
    check_unique_columns,
    default_features,
    infinite_error,
    missing_labels_error,
    no_rows_error,
    non_numeric_error,
    order_labels,
    positions_text,
    python_label,
    rows_text,
    text_examples,
    unnamed_header,
)
from groupcov.stats import SufficientStats

__all__ = [
    "DataError",
    "check_columns",
    "check_numeric",
    "group_codes",
    "numeric_columns",
    "reduce_arrays",
    "reduce_pandas",
]


def is_numeric_dtype(dtype) -> bool:
    """Whether a pandas dtype holds real numbers (booleans count as 0/1, complex numbers
    do not count)."""
    if pd.api.types.is_complex_dtype(dtype):
        return False
    return pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype)


def is_text_dtype(dtype) -> bool:
    """Whether a pandas dtype holds text (or arbitrary Python objects)."""
    return pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype)


def is_row_index(name, values: pd.Series, unnamed: bool = False) -> bool:
    """Whether a column is the row index that ``to_csv`` writes unnamed: each of
    ``0..n-1`` once (in any order: a shuffled frame's index counts), or, under an empty
    header (``unnamed``: ``Unnamed: 0`` beside named columns), any distinct integers
    (the index of a filtered or sorted frame)."""
    if str(name) not in INDEX_NAMES or not pd.api.types.is_integer_dtype(values.dtype):
        return False
    if values.isna().any():
        return False
    if unnamed:
        return bool(values.is_unique)
    return np.array_equal(np.sort(values.to_numpy()), np.arange(len(values)))


def _distinct(values, limit: int) -> tuple:
    """Up to ``limit`` distinct values in order of appearance, NumPy scalars unwrapped."""
    found: dict = {}
    for value in values:
        found.setdefault(python_label(value), None)
        if len(found) == limit:
            break
    return tuple(found)


def value_examples(values: pd.Series, limit: int = 3) -> tuple:
    """Values of a column that are not numbers, for messages.

    Text that does not read as a number (``'?'``) and other objects (dates...) come
    first; where there are none, numbers written as text (``'5'``); empty when every
    value is a number.

    Examples
    --------
    >>> value_examples(pd.Series([1, "?", None, "5"], dtype=object))
    ('?',)
    >>> value_examples(pd.Series([1, 2, None, "5"], dtype=object))
    ('5',)
    >>> value_examples(pd.Series([1.0, 2.0]))
    ()
    """
    values = values.dropna()
    return text_examples(values, limit) or _strings(values, limit)


def _strings(values: pd.Series, limit: int) -> tuple:
    return _distinct((v for v in values if isinstance(v, str)), limit)


def _numbers_as_text(values: pd.Series, limit: int = 3) -> tuple:
    """Up to ``limit`` distinct strings of a column whose every value is a number or
    text that reads as one; empty otherwise."""
    values = values.dropna()
    return () if text_examples(values, 1) else _strings(values, limit)


def complex_examples(values: pd.Series, limit: int = 3) -> tuple:
    """Up to ``limit`` distinct complex values of a column."""
    kinds = (complex, np.complexfloating)
    return _distinct((v for v in values.dropna() if isinstance(v, kinds)), limit)


def _inferred(values: pd.Series) -> pd.Series:
    """An object column with the type its values share (``pd.NA`` read as None)."""
    if values.isna().any():
        na = values.map(lambda v: v is pd.NA).to_numpy(dtype=bool)
        values = values.where(~na, None) if na.any() else values
    return values.infer_objects()


def numbers_in_objects(values: pd.Series) -> pd.Series:
    """An object column holding only numbers as a numeric column, else ``values``.

    Missing values may be None, NaN or ``pd.NA``; anything else (text, even text that
    reads as a number) keeps the column as it is.

    Examples
    --------
    >>> numbers_in_objects(pd.Series([1, pd.NA, 2.5], dtype=object)).tolist()
    [1.0, nan, 2.5]
    >>> numbers_in_objects(pd.Series([1, "2"], dtype=object)).dtype
    dtype('O')
    """
    if not pd.api.types.is_object_dtype(values.dtype):
        return values
    inferred = _inferred(values)
    return inferred if is_numeric_dtype(inferred.dtype) else values


def column_kind(name, values: pd.Series, position: int, unnamed: bool = False) -> ColumnKind:
    """How a column counts for the default features (see
    :func:`~groupcov.data.validate.default_features`): numbers in an object column are
    numeric, complex numbers are not."""
    if pd.api.types.is_object_dtype(values.dtype):
        inferred = _inferred(values)
        if is_numeric_dtype(inferred.dtype) or pd.api.types.is_complex_dtype(inferred.dtype):
            values = inferred
    dtype = values.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return ColumnKind(name, "bool", str(dtype))
    if pd.api.types.is_complex_dtype(dtype):
        return ColumnKind(name, "other", str(dtype))
    if pd.api.types.is_numeric_dtype(dtype):
        index = position == 0 and is_row_index(name, values, unnamed)
        return ColumnKind(name, "index" if index else "numeric", str(dtype))
    if is_text_dtype(dtype):
        return ColumnKind(name, "text", str(dtype), value_examples(values))
    return ColumnKind(name, "other", str(dtype))


def column_kinds(df: pd.DataFrame, group: str) -> list[ColumnKind]:
    """:func:`column_kind` of every column except ``group``."""
    unnamed = unnamed_header(list(df.columns))
    return [column_kind(c, df[c], i, unnamed) for i, c in enumerate(df.columns) if c != group]


def numeric_columns(df: pd.DataFrame, group: str, source: str = "the DataFrame") -> list[str]:
    """The default features: numeric columns other than ``group``, without booleans and
    an unnamed leading row index; warns about every column left out."""
    return default_features(column_kinds(df, group), group, source)


def non_numeric_feature_error(
    column: str, values: pd.Series, source: str | None = None
) -> DataError:
    """The error for a feature column that does not hold real numbers.

    Names the column, its dtype and values that are not real numbers; says when the
    values are complex numbers, or numbers stored as text (convert them with
    ``pd.to_numeric``).

    Examples
    --------
    >>> error = non_numeric_feature_error("x", pd.Series(["1.5", "2"], dtype=object))
    >>> print(error)  # doctest: +NORMALIZE_WHITESPACE
    feature column 'x' is not numeric: it holds numbers stored as text (dtype object,
    e.g. ['1.5', '2']); convert it with pd.to_numeric or leave it out of features=
    """
    prefix = f"{source}: " if source else ""
    dtype = values.dtype
    complex_values = complex_examples(values)
    if complex_values:
        return DataError(
            f"{prefix}feature column {column!r} holds complex numbers (dtype {dtype}, e.g. "
            f"{list(complex_values)}); features must be real numbers: convert it (e.g. "
            "its real part or absolute value) or leave it out of features="
        )
    if isinstance(dtype, pd.CategoricalDtype):
        shown = list(dtype.categories[:3])
        numeric = pd.api.types.is_numeric_dtype(dtype.categories.dtype)
        advice = (
            f"its categories are numbers: convert it with df[{column!r}].astype(float)"
            if numeric else "convert it to numbers (e.g. its .cat.codes, if they mean numbers)"
        )
        return DataError(
            f"{prefix}feature column {column!r} is categorical (dtype category, categories "
            f"e.g. {shown}); {advice} or leave it out of features="
        )
    written = _numbers_as_text(values)
    if written:
        return DataError(
            f"{prefix}feature column {column!r} is not numeric: it holds numbers stored as "
            f"text (dtype {dtype}, e.g. {list(written)}); convert it with pd.to_numeric "
            "or leave it out of features="
        )
    return non_numeric_error(column, dtype, value_examples(values), source)


def check_numeric(df: pd.DataFrame, features: Sequence[str]) -> None:
    """Raise :class:`DataError` naming the first feature column that does not hold real
    numbers (see :func:`non_numeric_feature_error`)."""
    for f in features:
        if not is_numeric_dtype(df[f].dtype):
            raise non_numeric_feature_error(f, df[f])


def float_matrix(df: pd.DataFrame, features: Sequence[str]) -> np.ndarray:
    """Feature columns as a float array with NaN where missing."""
    return df[list(features)].to_numpy(dtype=float, na_value=np.nan)


def infinite_cells(x: np.ndarray) -> list[np.ndarray]:
    """Row positions of infinite values, per column."""
    bad = np.isinf(x)
    return [np.flatnonzero(bad[:, j]) for j in range(x.shape[1])] if bad.any() else []


def _numbers_in_objects(df: pd.DataFrame, features: list[str]) -> pd.DataFrame:
    """Object columns holding only numbers (missing: None, NaN, ``pd.NA``) as numeric
    columns (see :func:`numbers_in_objects`)."""
    inferred = {}
    for f in features:
        if df[f].dtype == object:
            column = numbers_in_objects(df[f])
            if column is not df[f]:
                inferred[f] = column
    if inferred:
        df = df.copy(deep=False)
        for f, column in inferred.items():
            df[f] = column
    return df


def _label_text(label) -> str:
    label = python_label(label)
    return repr(label) if isinstance(label, str) else str(label)


def index_rows_text(index: pd.Index, positions: np.ndarray) -> str:
    """How messages name rows of a frame: by position where the index is ``0..n-1``
    (position and label agree; said to count from 0, as for files and other tables),
    else by index label.

    Examples
    --------
    >>> index_rows_text(pd.RangeIndex(6), np.array([1, 4]))
    'rows 1, 4, counting from 0'
    >>> index_rows_text(pd.Index([10, 11, 12]), np.array([2]))
    'rows with index labels 12'
    >>> index_rows_text(pd.Index(["r0", "r1"]), np.array([0, 1]))
    "rows with index labels 'r0', 'r1'"
    """
    if index.equals(pd.RangeIndex(len(index))):
        return positions_text(list(positions), total=len(positions))
    labels = [_label_text(index[i]) for i in positions[:5]]
    shown = rows_text(labels, total=len(positions)).removeprefix("rows ")
    return f"rows with index labels {shown}"


def _feature_matrix(df: pd.DataFrame, features: list[str]) -> np.ndarray:
    df = _numbers_in_objects(df, features)
    check_numeric(df, features)
    x = float_matrix(df, features)
    for f, rows in zip(features, infinite_cells(x), strict=False):
        if rows.size:
            raise infinite_error(f, int(rows.size), index_rows_text(df.index, rows))
    observed = (~np.isnan(x)).sum(axis=0)
    for f, count in zip(features, observed, strict=True):
        if count == 0:
            raise all_missing_error(f, len(x))
    return x


def label_categories(labels) -> list | None:
    """Categories of a categorical label column, or None."""
    dtype = getattr(labels, "dtype", None)
    if isinstance(dtype, pd.CategoricalDtype):
        return list(dtype.categories)
    return None


def group_codes(
    labels, group: str | None, source: str | None = None
) -> tuple[np.ndarray, tuple]:
    """Group index of each row and the ordered group labels.

    Labels follow :func:`~groupcov.data.validate.order_labels`: categories of a
    categorical column in their order (unused ones dropped), other labels sorted.

    Raises
    ------
    DataError
        If any label is missing, naming the column, the count and rows (by index label
        where the index of a Series ``labels`` is not ``0..n-1``).
    """
    labels = pd.Series(labels) if not isinstance(labels, pd.Series) else labels
    missing = labels.isna().to_numpy()
    if missing.any():
        rows = np.flatnonzero(missing)
        raise missing_labels_error(group, int(rows.size), index_rows_text(labels.index, rows),
                                   source)
    try:
        codes, uniques = pd.factorize(labels, sort=False)
    except TypeError:  # unhashable labels (dicts, lists): name their type
        check_label_types(labels.tolist(), group, source)
        raise
    if labels.dtype == object:
        check_merged_labels(labels, codes, group, source)
    plain = [python_label(u) for u in list(uniques)]
    ordered = order_labels(plain, label_categories(labels), group, source)
    check_label_types(ordered, group, source)
    position = {label: i for i, label in enumerate(ordered)}
    remap = np.array([position[u] for u in plain], dtype=np.int64)
    return remap[codes], tuple(ordered)


def _reduce_matrix(
    codes: np.ndarray, x: np.ndarray, groups: tuple, features: list[str]
) -> SufficientStats:
    if np.isnan(x).any():
        cells = reduce_cells(codes, x, len(groups))
        return SufficientStats.from_cells(groups, features, *cells)
    n, mean, scatter = reduce_array(codes, x, len(groups))
    return SufficientStats(groups, tuple(features), n.astype(np.int64), mean, scatter)


def reduce_pandas(
    df: pd.DataFrame, group: str, features: Sequence[str] | None = None
) -> SufficientStats:
    """Per-group sufficient statistics of a pandas DataFrame.

    Parameters
    ----------
    df : pandas.DataFrame
        One row per observation.
    group : str
        Column holding the group labels.
    features : sequence of str, optional
        Numeric feature columns; default: every numeric column except ``group``,
        booleans and an unnamed leading row index ``0..n-1`` (a
        :class:`~groupcov.data.DefaultFeaturesWarning` names every column left out).

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
    check_unique_columns(df.columns)
    if features is None and group in df.columns:
        if len(df) == 0:
            raise no_rows_error()
        features = numeric_columns(df, group)
    features = check_columns(df.columns, group, features if features is not None else [])
    if len(df) == 0:
        raise no_rows_error()
    x = _feature_matrix(df, features)
    codes, groups = group_codes(df[group], group)
    return _reduce_matrix(codes, x, groups, features)


def reduce_arrays(x, labels, features: Sequence[str] | None = None) -> SufficientStats:
    """Per-group sufficient statistics of an ``(N, p)`` array and ``N`` group labels.

    Parameters
    ----------
    x : array_like, shape ``(N, p)``
        Numeric feature values, NaN where missing.
    labels : array_like, shape ``(N,)``
        Group label of each row (ints, strings, a ``pandas.Categorical``...).
    features : sequence of str, optional
        Names of the ``p`` columns; default ``x0, x1, ...``.

    Returns
    -------
    SufficientStats

    Examples
    --------
    >>> x = np.array([[1.0, 2.0], [3.0, 2.0], [0.0, 1.0]])
    >>> st = reduce_arrays(x, ["a", "a", "b"], features=["u", "v"])
    >>> st.groups, st.features, st.mean.tolist()
    (('a', 'b'), ('u', 'v'), [[2.0, 2.0], [0.0, 1.0]])
    """
    arr = np.asarray(x)
    if arr.ndim != 2:
        raise DataError(
            f"a NumPy array of features must be 2-D (rows x features), not shape {arr.shape}; "
            "reshape a single feature with x.reshape(-1, 1)"
        )
    if isinstance(labels, str) or np.ndim(labels) != 1:
        raise DataError(
            f"with a NumPy array, pass group= as one label per row (a sequence of {len(arr)} "
            f"labels), not {labels!r}"
            if isinstance(labels, str) else
            f"group labels must be 1-D with one label per row, not shape {np.shape(labels)}"
        )
    if len(labels) != len(arr):
        raise DataError(
            f"group= has {len(labels)} labels but the array has {len(arr)} rows; "
            "pass one label per row"
        )
    n_cols = arr.shape[1]
    features = [f"x{j}" for j in range(n_cols)] if features is None else (
        [features] if isinstance(features, str) else list(features))
    if len(features) != n_cols:
        raise DataError(
            f"features= has {len(features)} names but the array has {n_cols} columns; "
            "pass one name per column"
        )
    if not features:
        raise DataError("the array has no feature columns")
    repeated = sorted({f for f in features if features.count(f) > 1})
    if repeated:
        raise DataError(f"feature(s) {repeated} listed more than once in features=")
    if arr.dtype.kind in "biuf":
        df = pd.DataFrame(arr.astype(float, copy=False), columns=features)
    else:  # e.g. an object array: judge column by column, numbers and None are fine
        df = pd.DataFrame(arr, columns=features).infer_objects()
    if len(df) == 0:
        raise no_rows_error("the array")
    x = _feature_matrix(df, features)
    labels = labels.reset_index(drop=True) if isinstance(labels, pd.Series) else pd.Series(labels)
    codes, groups = group_codes(labels, None)
    return _reduce_matrix(codes, x, groups, features)
