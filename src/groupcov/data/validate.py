"""Checks and messages shared by every reduction engine.

Every engine (NumPy, DuckDB, Dask) reports the same problem with the same words:
the column, group or file, what is wrong, and what to do about it.
"""

from __future__ import annotations

import os
import re
import sys
import warnings
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import numpy as np

__all__ = [
    "INDEX_NAMES",
    "MANY_FEATURES",
    "NUMBER_PATTERN",
    "CollinearFeaturesWarning",
    "ColumnKind",
    "DataError",
    "DefaultFeaturesWarning",
    "ManyFeaturesWarning",
    "UnusedCategoriesWarning",
    "all_missing_error",
    "check_columns",
    "check_label_types",
    "check_unique_columns",
    "collinear_features",
    "default_features",
    "infinite_error",
    "missing_labels_error",
    "no_rows_error",
    "non_numeric_error",
    "order_labels",
    "positions_text",
    "python_label",
    "rows_text",
    "text_examples",
    "warn_feature_problems",
    "warn_many_features",
    "warn_outside",
]

MANY_FEATURES = 50
"""Above this many features :func:`warn_many_features` warns about the cost."""


class DataError(ValueError):
    """Input data that cannot be used as given; the message says what to change."""


class ManyFeaturesWarning(UserWarning):
    """More features than a per-group covariance model handles cheaply."""


class CollinearFeaturesWarning(UserWarning):
    """Features that are exact linear combinations of each other within groups."""


class DefaultFeaturesWarning(UserWarning):
    """Columns left out of the default features (text, boolean, a row index...)."""


class UnusedCategoriesWarning(UserWarning):
    """Categories of a categorical group column that no row has (they get no group)."""


NUMBER_PATTERN = r"\s*[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?\s*"
"""A number written plainly (``-1.5``, ``2e3``): what every CSV reader takes as one.

Text that does not match it (``?``, ``4,712.61``, ``3,5``, ``inf``) is what makes a reader
type a column as text. The same expression serves Python's :mod:`re` and DuckDB's RE2."""

INDEX_NAMES = ("", "Unnamed: 0", "column0", "__index_level_0__")
"""Names that pandas (``Unnamed: 0``), DuckDB (``column0``) and pyarrow give the row
index that ``DataFrame.to_csv`` and ``to_parquet`` write as a leading column."""


def is_range_of_rows(n: int, count: int, lo, hi, total, squares) -> bool:
    """Whether a column's count, range, sum and sum of squares are those of each of
    ``0..n-1`` once (how engines that cannot sort a column cheaply recognize a written
    row index)."""
    return (n > 0 and count == n and lo == 0 and hi == n - 1
            and total == n * (n - 1) // 2 and squares == (n - 1) * n * (2 * n - 1) // 6)


def _package_stacklevel() -> int:
    """Stack level of the first frame outside groupcov, as seen from the caller."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_code.co_filename.startswith(package):
        frame, level = frame.f_back, level + 1
    return level


def warn_outside(message: str, category: type[Warning]) -> None:
    """Warn, blaming the first caller outside groupcov (however deep the call)."""
    warnings.warn(message, category, stacklevel=_package_stacklevel())


class ColumnKind(NamedTuple):
    """How an engine sees a column, for choosing the default features.

    Attributes
    ----------
    name : str
        Column name.
    kind : str
        ``"numeric"``, ``"bool"``, ``"index"`` (a leading column holding ``0..n-1``
        under a name that ``to_csv``'s unnamed index gets, or any distinct integers
        under an empty header), ``"stored-index"`` (a pandas index that Arrow or Parquet metadata
        marks as such), ``"text"`` or ``"other"`` (dates, lists...).
    dtype : str
        The engine's type, for messages (``VARCHAR``, ``object``...).
    examples : tuple
        For text: values that are not plain numbers (or the first values).
    """

    name: str
    kind: str
    dtype: str
    examples: tuple = ()


def _left_out_text(column: ColumnKind) -> str:
    name = repr(column.name)
    if column.kind == "bool":
        return f"{name} is boolean"
    if column.kind == "index":
        return f"{name} is an unnamed row index"
    if column.kind == "stored-index":
        return f"{name} is the row index pandas stored with the table"
    if column.kind == "text":
        shown = f", e.g. {column.examples[0]!r}" if column.examples else ""
        return f"{name} read as text ({column.dtype}{shown})"
    return f"{name} has type {column.dtype}"


def default_features(
    columns: Sequence[ColumnKind], group: str, source: str = "the table"
) -> list[str]:
    """The numeric columns other than ``group``; warn about every column left out.

    Boolean columns, row indexes (the unnamed leading column ``to_csv`` writes, or the
    index pandas stored in an Arrow table or Parquet file) and columns that are not numbers
    (text, dates...) are left out with one :class:`DefaultFeaturesWarning` naming each
    with its type (and, for text, a value that is not a number).

    Raises
    ------
    DataError
        If no column is left.

    Examples
    --------
    >>> import warnings
    >>> cols = [ColumnKind("g", "text", "str"), ColumnKind("x", "numeric", "float64"),
    ...         ColumnKind("z", "text", "VARCHAR", ("?",))]
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     default_features(cols, "g")
    ['x']
    >>> print(caught[0].message)  # doctest: +NORMALIZE_WHITESPACE
    the table: column(s) left out of the default features: 'z' read as text (VARCHAR,
    e.g. '?'); to use them, convert them to numbers and pass features=[...]
    """
    columns = [c for c in columns if c.name != group]
    features = [c.name for c in columns if c.kind == "numeric"]
    left_out = [c for c in columns if c.kind != "numeric"]
    if left_out:
        warn_outside(
            f"{source}: column(s) left out of the default features: "
            f"{', '.join(_left_out_text(c) for c in left_out)}; to use them, "
            + ("convert them to numbers and " if any(c.kind in ("text", "other")
                                                     for c in left_out) else "")
            + "pass features=[...]",
            DefaultFeaturesWarning,
        )
    if not features:
        shown = "; ".join(_left_out_text(c) for c in left_out[:5])
        examples = [e for c in left_out for e in c.examples]
        comma = any(re.fullmatch(r"\s*[+-]?[0-9]+,[0-9]+\s*", str(e)) for e in examples)
        raise DataError(
            f"{source} has no numeric feature columns besides {group!r}"
            + (f" (left out: {shown})" if shown else "")
            + ("; its numbers look like decimal commas: write the file with decimal "
               "points" if comma else "")
            + "; pass features=[...]"
        )
    return features


def text_examples(values: Iterable, limit: int = 3) -> tuple:
    """Up to ``limit`` distinct values that are not plain numbers (in order of appearance).

    Examples
    --------
    >>> text_examples(["1.5", "?", "-2", "4,712.61", "?"])
    ('?', '4,712.61')
    """
    pattern = re.compile(NUMBER_PATTERN)
    found: dict = {}
    for value in values:
        number = isinstance(value, (int, float, np.number)) and not isinstance(value, bool)
        if not number and not (isinstance(value, str) and pattern.fullmatch(value)):
            found.setdefault(value, None)
            if len(found) == limit:
                break
    return tuple(found)


def check_unique_columns(columns: Sequence, source: str = "the table") -> None:
    """Raise :class:`DataError` if a column name appears more than once."""
    columns = list(columns)
    dupes = sorted({str(c) for c in columns if columns.count(c) > 1})
    if dupes:
        raise DataError(f"{source} has duplicated column names {dupes}: rename them")


def warn_many_features(n_features: int, stacklevel: int = 2) -> None:
    """Warn when more than :data:`MANY_FEATURES` features are modelled.

    Each group's covariance matrix has ``p (p + 1) / 2`` free parameters and each
    gradient evaluation costs ``O(G p^3)``.

    Examples
    --------
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     warn_many_features(60)
    >>> print(caught[0].message)  # doctest: +NORMALIZE_WHITESPACE
    60 features: each group's covariance matrix has 1,830 parameters (p (p + 1) / 2) and
    every gradient costs O(p^3) per group; sampling will be slow and needs many rows per
    group. Consider fewer features (e.g. a subset or principal components).
    """
    if n_features <= MANY_FEATURES:
        return
    params = n_features * (n_features + 1) // 2
    warnings.warn(
        f"{n_features} features: each group's covariance matrix has {params:,} parameters "
        "(p (p + 1) / 2) and every gradient costs O(p^3) per group; sampling will be slow "
        "and needs many rows per group. Consider fewer features (e.g. a subset or "
        "principal components).",
        ManyFeaturesWarning,
        stacklevel=stacklevel + 1,
    )


def collinear_features(scatter: np.ndarray, features: Sequence[str], tol: float = 1e-12):
    """Features in an exact linear dependence of a (pooled within-group) scatter matrix.

    Returns
    -------
    list of str
        Names of the features with weight in the null direction of the correlation
        matrix built from ``scatter``; empty when it has full rank.

    Examples
    --------
    >>> x = np.array([[1.0, 2.0, 0.5], [2.0, 4.0, -1.0], [4.0, 8.0, 2.0], [0.0, 0.0, 1.0]])
    >>> c = x - x.mean(axis=0)
    >>> collinear_features(c.T @ c, ["a", "b", "c"])
    ['a', 'b']
    """
    d = np.sqrt(np.diag(scatter))
    if np.any(d <= 0):
        return []
    corr = scatter / np.outer(d, d)
    values, vectors = np.linalg.eigh(corr)
    null = vectors[:, values < tol * len(features)]
    if null.size == 0:
        return []
    weight = np.abs(null).max(axis=1)
    return [f for f, w in zip(features, weight, strict=True) if w > 1e-6]


def warn_feature_problems(stats, stacklevel: int = 2) -> None:
    """Warn about many features and about exactly collinear features.

    Parameters
    ----------
    stats : SufficientStats
        Reduced data.
    stacklevel : int
        Stack level of the caller to blame, as in :func:`warnings.warn`.
    """
    warn_many_features(stats.n_features, stacklevel=stacklevel + 1)
    within = np.asarray(stats.scatter).sum(axis=0)
    dof = int(np.sum(np.maximum(np.asarray(stats.n) - 1, 0)))
    if stats.n_features < 2 or dof <= stats.n_features:
        return
    names = collinear_features(within, stats.features)
    if names:
        warnings.warn(
            f"features {names} are exact linear combinations of each other within groups "
            "(their pooled within-group covariance is singular), so the covariance "
            "matrices are degenerate and sampling will struggle; leave out one of them",
            CollinearFeaturesWarning,
            stacklevel=stacklevel + 1,
        )


def check_columns(
    columns: Sequence, group: str, features: Sequence[str] | str, source: str = "the table"
) -> list[str]:
    """Check that ``group`` and ``features`` name distinct existing columns.

    Parameters
    ----------
    columns : sequence
        Column names of the table.
    group : str
        Group column.
    features : sequence of str or str
        Feature columns (a single name is accepted).
    source : str
        How messages name the table (e.g. ``"file 'data.csv'"``).

    Returns
    -------
    list of str
        The feature names.

    Examples
    --------
    >>> check_columns(["g", "x", "y"], "g", ["y"])
    ['y']
    >>> check_columns(["g", "x"], "g", ["z"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    groupcov.data.validate.DataError: column(s) ['z'] not found in the table; available ...
    """
    features = [features] if isinstance(features, str) else list(features)
    columns = list(columns)
    check_unique_columns(columns, source)
    if not features:
        if group not in columns:
            raise DataError(
                f"group column {group!r} not found in {source}; available columns: {columns}"
            )
        raise DataError("no feature columns given: pass features=[...] with at least one name")
    repeated = sorted({f for f in features if features.count(f) > 1})
    if repeated:
        raise DataError(f"feature(s) {repeated} listed more than once in features=")
    if group in features:
        raise DataError(f"column {group!r} is both the group column and a feature")
    missing = [c for c in [group, *features] if c not in columns]
    if missing:
        raise DataError(
            f"column(s) {missing} not found in {source}; available columns: {columns}"
        )
    # NumPy scalars (names from an array) as plain Python values
    features = [f.item() if isinstance(f, np.generic) else f for f in features]
    printed = [str(f) for f in features]
    alike = [f for f, text in zip(features, printed, strict=True) if printed.count(text) > 1]
    if alike:
        raise DataError(
            f"feature names {alike} are different columns that print the same (results "
            "label features by their printed names): rename the columns"
        )
    return features


def rows_text(rows: Iterable, total: int | None = None, limit: int = 5) -> str:
    """``"rows 1, 4, ..."`` from row positions (or other row descriptions).

    Examples
    --------
    >>> rows_text([1, 4])
    'rows 1, 4'
    >>> rows_text(range(10), total=10)
    'rows 0, 1, 2, 3, 4, ...'
    """
    rows = list(rows)
    shown = ", ".join(str(r) for r in rows[:limit])
    more = (total if total is not None else len(rows)) > min(len(rows), limit)
    return "rows " + shown + (", ..." if more else "")


def positions_text(rows: list, total: int) -> str:
    """:func:`rows_text` of rows given by position in a whole table (a file, a Dask
    table), as pandas numbers the rows it reads, not a file's line numbers.

    Examples
    --------
    >>> positions_text([1, 4], total=2)
    'rows 1, 4, counting from 0'
    """
    return rows_text(rows[:5], total=total) + ", counting from 0"


def _prefix(source: str | None) -> str:
    return f"{source}: " if source else ""


def non_numeric_error(
    column: str, dtype, example=None, source: str | None = None
) -> DataError:
    """A feature column that does not hold numbers; ``example``: values that are not."""
    shown = f", e.g. {list(example)}" if example is not None and len(example) else ""
    return DataError(
        f"{_prefix(source)}feature column {column!r} is not numeric (dtype {dtype}{shown}); "
        "convert it to numbers or leave it out of features="
    )


def infinite_error(
    column: str, count: int, rows: str, source: str | None = None
) -> DataError:
    """A feature column with ``+inf`` or ``-inf`` values."""
    return DataError(
        f"{_prefix(source)}feature column {column!r} has {count} infinite value(s) "
        f"({rows}); replace or remove them"
    )


def all_missing_error(column: str, n_rows: int, source: str | None = None) -> DataError:
    """A feature column without a single observed value."""
    return DataError(
        f"{_prefix(source)}feature column {column!r} has no observed values "
        f"(all {n_rows} are missing); leave it out of features="
    )


def _group_column(group: str | None) -> tuple[str, str]:
    """How messages name the group column (``"group="`` for labels given as an array),
    and its name as code puts it (``'g'`` for an array)."""
    if group is None:
        return "group=", "'g'"
    return f"group column {group!r}", repr(group)


def missing_labels_error(
    group: str | None, count: int, rows: str, source: str | None = None,
    missing_text: Sequence[str] = (),
) -> DataError:
    """Rows whose group label is missing (None, NaN, NULL); ``group=None``: labels given as
    an array; ``missing_text``: the cell texts a file reader takes as missing."""
    what, _ = _group_column(group)
    shown = ", ".join(repr(t) for t in missing_text if t)
    read_as = (f" (empty cells and {shown} are read as missing: a group named 'NA' needs "
               "another name)" if shown else "")
    return DataError(
        f"{_prefix(source)}{what} has {count} missing label(s) "
        f"({rows}){read_as}; drop those rows or give them a group"
    )


def no_rows_error(source: str | None = None) -> DataError:
    """A table without rows."""
    return DataError(f"{source or 'the table'} has no rows")


def python_label(label):
    """A group label as a plain Python value (NumPy scalars unwrapped).

    Examples
    --------
    >>> type(python_label(np.int64(3))), python_label("a")
    (<class 'int'>, 'a')
    """
    return label.item() if isinstance(label, np.generic) else label


def check_label_types(
    labels: Sequence, group: str | None, source: str | None = None
) -> None:
    """Raise :class:`DataError` unless every label is an int, finite float, bool or str.

    Statistics files and saved results store labels with these types only, so other
    labels (intervals from ``pandas.cut``, timestamps, ``inf``) are refused before
    anything is fitted.

    Examples
    --------
    >>> check_label_types(["a", 1, 2.5, True], "g")
    >>> import datetime
    >>> check_label_types([datetime.date(2024, 1, 1)], "day")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    groupcov.data.validate.DataError: group column 'day' has labels of type date (e.g. ...
    """
    from groupcov.stats import label_type

    bad = [label for label in labels if label_type(label) is None]
    if not bad:
        return
    what, name = _group_column(group)
    raise DataError(
        f"{_prefix(source)}{what} has labels of type {type(bad[0]).__name__} "
        f"(e.g. {bad[0]!r}); labels must be ints, finite floats, bools or strings: "
        f"convert them, e.g. df[{name}].astype(str) (in SQL: CAST({name.strip(chr(39))} "
        "AS VARCHAR))"
    )


def _label_kind(label) -> str:
    """:func:`groupcov.stats.label_type` (NumPy scalars as their Python type), or the type's
    name for labels it does not store."""
    from groupcov.stats import label_type

    value = label.item() if isinstance(label, np.generic) else label
    return label_type(value) or type(value).__name__


#: ``pandas.api.types.infer_dtype`` results of columns whose labels have one type
_ONE_KIND = frozenset({"string", "bytes", "integer", "floating", "boolean", "empty"})


def check_merged_labels(
    labels, codes: np.ndarray, group: str | None, source: str | None = None
) -> None:
    """Raise :class:`DataError` when labels of different types were taken as one group.

    pandas (like Python) takes ``1``, ``1.0`` and ``True`` as one value: in one column of
    objects they would silently be one group. ``labels`` are the column's values (a
    pandas Series of objects), ``codes`` their group codes from ``pandas.factorize``.

    Examples
    --------
    >>> import pandas as pd
    >>> labels = pd.Series([1, 1.0, 2, True], dtype=object)
    >>> check_merged_labels(labels, pd.factorize(labels)[0], "g")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    groupcov.data.validate.DataError: group column 'g' has labels of different types that ...
    """
    import pandas as pd

    if pd.api.types.infer_dtype(labels, skipna=True) in _ONE_KIND:
        return  # fast: no Python call per row
    kinds = pd.Series(labels).map(_label_kind).to_numpy()
    if len(set(kinds)) < 2:
        return
    pairs = pd.DataFrame({"code": codes, "kind": kinds}).drop_duplicates()
    merged = pairs[pairs.duplicated("code", keep=False)]
    if merged.empty:
        return
    code = merged["code"].iloc[0]
    values = np.asarray(labels, dtype=object)
    examples = []
    for kind in merged.loc[merged["code"] == code, "kind"]:
        first = np.flatnonzero((codes == code) & (kinds == kind))[0]
        examples.append(f"{values[first]!r} ({kind})")
    what, name = _group_column(group)
    raise DataError(
        f"{_prefix(source)}{what} has labels of different types that are equal as values: "
        f"{', '.join(examples)} would be one group. Give the column one type first, e.g. "
        f"df[{name}].astype(str) to keep them apart"
    )


def warn_unused_categories(
    labels: Sequence, categories: Sequence, group: str | None = None, source: str | None = None
) -> None:
    """Warn about categories of a categorical group column that no row has: they get no
    group (and no estimate), which a user may not expect of a declared level.

    Examples
    --------
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     warn_unused_categories(["a"], ["a", "b"], "g")
    >>> print(caught[0].message)
    group column 'g': category 'b' has no rows; it gets no group and no estimate
    """
    present = set(labels)
    unused = [c for c in categories if c not in present]
    if not unused:
        return
    what, _ = _group_column(group)
    shown = ", ".join(repr(c) for c in unused[:5]) + (", ..." if len(unused) > 5 else "")
    noun = "category" if len(unused) == 1 else f"{len(unused)} categories"
    verb = "has" if len(unused) == 1 else "have"
    warn_outside(
        f"{_prefix(source)}{what}: {noun} {shown} {verb} no rows; "
        f"{'it gets' if len(unused) == 1 else 'they get'} no group and no estimate",
        UnusedCategoriesWarning,
    )


def order_labels(
    labels: Sequence,
    categories: Sequence | None = None,
    group: str | None = None,
    source: str | None = None,
) -> list:
    """The order of groups that every engine uses.

    Labels of a categorical column follow its categories; other labels are sorted
    (numbers numerically, strings by code point), or kept in order of first
    appearance when they cannot be compared (mixed types).

    Parameters
    ----------
    labels : sequence
        Distinct labels, in order of first appearance.
    categories : sequence, optional
        Category order of a categorical group column; categories without rows are
        dropped with an :class:`UnusedCategoriesWarning` naming them.
    group, source : str, optional
        The group column and the table, for that warning.

    Examples
    --------
    >>> order_labels(["b", "Z", "a", "ä"])
    ['Z', 'a', 'b', 'ä']
    >>> order_labels(["b", "a"], categories=["c", "b", "a"])
    ['b', 'a']
    >>> order_labels([2, "a", 1])
    [2, 'a', 1]
    """
    labels = [python_label(v) for v in labels]
    if categories is not None:
        rank = {python_label(c): i for i, c in enumerate(categories)}
        warn_unused_categories(labels, list(rank), group, source)
        return sorted(labels, key=rank.__getitem__)
    try:
        return sorted(labels)
    except TypeError:
        return labels


def unnamed_header(names: Sequence) -> bool:
    """Whether a table's first column has an empty header where the others are named:
    the row index that ``DataFrame.to_csv`` writes (pandas reads it as ``Unnamed: 0``,
    DuckDB as ``column0``; a file without any header has ``column0``, ``column1``...).

    Examples
    --------
    >>> unnamed_header(["column0", "g", "x"]), unnamed_header(["column0", "column1"])
    (True, False)
    >>> unnamed_header(["Unnamed: 0", "g"]), unnamed_header(["id", "g"])
    (True, False)
    """
    if not names:
        return False
    first = str(names[0])
    if first in ("", "Unnamed: 0"):
        return True
    return first == "column0" and not all(
        re.fullmatch(r"column\d+", str(n)) for n in names[1:]
    )


def pandas_categorical(schema, name) -> bool:
    """Whether the Arrow schema's pandas metadata says column ``name`` was a pandas
    ``Categorical`` (whose categories' order ``pandas.read_parquet`` restores).

    Examples
    --------
    >>> import pandas as pd, pyarrow as pa
    >>> frame = pd.DataFrame({"g": pd.Categorical(["a", "b"], ["b", "a"]), "h": ["a", "b"]})
    >>> schema = pa.Table.from_pandas(frame).schema
    >>> pandas_categorical(schema, "g"), pandas_categorical(schema, "h")
    (True, False)
    """
    try:
        meta = schema.pandas_metadata or {}
    except Exception:  # metadata written by something else
        return False
    return any(c.get("name") == name and c.get("pandas_type") == "categorical"
               for c in meta.get("columns", []))


def pandas_index_columns(schema) -> list[str]:
    """Columns of an Arrow schema that hold the index of the pandas frame it was made
    from (``DataFrame.to_parquet``, ``pyarrow.Table.from_pandas``), by the schema's
    pandas metadata; ``pandas.read_parquet`` makes them the index again.

    Examples
    --------
    >>> import pandas as pd, pyarrow as pa
    >>> frame = pd.DataFrame({"x": [1.0, 2.0, 3.0]}).iloc[[2, 0, 1]]
    >>> pandas_index_columns(pa.Table.from_pandas(frame).schema)
    ['__index_level_0__']
    >>> pandas_index_columns(pa.Table.from_pandas(frame.reset_index(drop=True)).schema)
    []
    """
    try:
        meta = schema.pandas_metadata or {}
    except Exception:  # metadata written by something else: no index columns
        return []
    names = set(schema.names)
    return [c for c in meta.get("index_columns", []) if isinstance(c, str) and c in names]


def precision_note(value: float) -> str:
    """A note for a message about a constant feature whose values are too large for
    double precision to tell neighbouring integers apart (2**53 and beyond); else "".

    Examples
    --------
    >>> precision_note(1e17)[:62]
    ' (values of magnitude 2**53 and beyond, about 1e+17 here, lose'
    >>> precision_note(3.5)
    ''
    """
    if not abs(value) >= 2.0**53:
        return ""
    return (f" (values of magnitude 2**53 and beyond, about {abs(value):.0e} here, lose "
            "their last digits in double precision: subtract an offset such as the "
            "column's minimum first)")

