"""One entry point for every kind of input: which engine reduces what.

========================================  ==============================================
input                                     reduced by
========================================  ==============================================
:class:`~groupcov.stats.SufficientStats`  passed through
pandas DataFrame                          NumPy, in memory
NumPy array + ``group=`` labels           NumPy, in memory
CSV / Parquet path or glob (str, Path)    DuckDB, out of core (the file is never loaded)
SQL query (str), DuckDB relation          DuckDB, out of core
pyarrow Table / RecordBatch / Dataset     DuckDB, scanning the Arrow memory
polars DataFrame / LazyFrame              DuckDB, scanning its Arrow memory
Dask DataFrame                            NumPy per partition, on the Dask cluster
========================================  ==============================================

Optional libraries are imported only when their kind of input arrives.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import pandas as pd

from groupcov.data.frame import reduce_arrays, reduce_pandas
from groupcov.data.validate import (
    DataError,
    check_columns,
    check_unique_columns,
    pandas_categorical,
)
from groupcov.stats import SufficientStats

__all__ = ["input_kind", "reduce"]


def _module(data) -> str:
    return type(data).__module__.split(".")[0]


def input_kind(data) -> str:
    """Name of the engine-relevant kind of ``data``.

    One of ``"stats"``, ``"pandas"``, ``"numpy"``, ``"path"``, ``"sql"``, ``"duckdb"``,
    ``"arrow"``, ``"polars"``, ``"polars-lazy"``, ``"dask"``, or ``"unsupported"``.

    Examples
    --------
    >>> input_kind(pd.DataFrame()), input_kind(np.zeros((2, 2))), input_kind("a.csv")
    ('pandas', 'numpy', 'path')
    >>> input_kind("SELECT 1"), input_kind([[1, 2]])
    ('sql', 'unsupported')
    """
    from groupcov.data.duckdb_engine import is_sql

    if isinstance(data, SufficientStats):
        return "stats"
    if isinstance(data, pd.DataFrame):
        return "pandas"
    if isinstance(data, np.ndarray):
        return "numpy"
    if isinstance(data, str):
        return "sql" if is_sql(data) else "path"
    if isinstance(data, os.PathLike):
        return "path"
    module = _module(data)
    name = type(data).__name__
    if module in ("duckdb", "_duckdb") and name == "DuckDBPyRelation":
        return "duckdb"
    if module == "pyarrow" and name in ("Table", "RecordBatch", "FileSystemDataset",
                                        "UnionDataset", "InMemoryDataset"):
        return "arrow"
    if module == "polars":
        return {"DataFrame": "polars", "LazyFrame": "polars-lazy"}.get(name, "unsupported")
    if module in ("dask", "dask_expr") and hasattr(data, "to_delayed"):
        return "dask"
    return "unsupported"


def _arrow_columns(data) -> list[str]:
    return list(data.schema.names)


def _arrow_label_order(column, from_pandas: bool = False) -> list | None:
    """Dictionary values of an ordered Arrow dictionary column (polars ``Enum``), or of
    any dictionary column that holds a pandas ``Categorical`` (``from_pandas``)."""
    import pyarrow as pa

    if not pa.types.is_dictionary(column.type):
        return None
    if not (column.type.ordered or from_pandas):
        return None
    chunks = column.chunks if hasattr(column, "chunks") else [column]
    if not chunks:
        return None
    return chunks[0].dictionary.to_pylist()


def _reduce_arrow(data, group, features, con, source):
    from groupcov.data.duckdb_engine import reduce_source

    columns = _arrow_columns(data)
    check_unique_columns(columns, source)
    if features is not None:
        features = check_columns(columns, group, features, source)
        if hasattr(data, "column"):  # a table or batch, not a dataset: project early
            data = data.select([group, *features])
    label_order = None
    if group in columns and hasattr(data, "column"):
        label_order = _arrow_label_order(data.column(group),
                                         pandas_categorical(data.schema, group))
    return reduce_source(data, group, features, con=con, label_order=label_order,
                         source=source)


def _reduce_polars(data, group, features, con, lazy):
    source = "the polars LazyFrame" if lazy else "the polars DataFrame"
    columns = data.collect_schema().names() if lazy else list(data.columns)
    check_unique_columns(columns, source)
    if features is not None:
        features = check_columns(columns, group, features, source)
        data = data.select([group, *features])
    if lazy:
        data = data.collect()
    return _reduce_arrow(data.to_arrow(), group, features, con, source)


def reduce(
    data,
    group,
    features: Sequence[str] | str | None = None,
    *,
    con=None,
) -> SufficientStats:
    """Reduce rows to per-group counts, means and scatter matrices.

    Rows with missing feature values are kept, summarized per (group, pattern of
    observed features). Every input is validated the same way and gives the same
    statistics, with groups in the same order (categories of a categorical group
    column in their order, other labels sorted).

    Parameters
    ----------
    data
        The rows, one of:

        - :class:`pandas.DataFrame` (reduced in memory with NumPy);
        - :class:`numpy.ndarray` of shape ``(N, p)``, with ``group=`` the ``N`` labels;
        - a CSV or Parquet file path or glob (``str`` or :class:`pathlib.Path`), reduced
          inside DuckDB without loading the file;
        - a SQL query (a ``str`` starting with ``SELECT``, ``WITH``, ``FROM``...) run by
          DuckDB on ``con``, or a DuckDB relation;
        - a :class:`pyarrow.Table`, record batch or dataset, or a polars DataFrame or
          LazyFrame (scanned by DuckDB);
        - a Dask DataFrame (reduced partition by partition on its cluster);
        - :class:`~groupcov.stats.SufficientStats`, returned unchanged.
    group : str or array_like
        Name of the group column, or with a NumPy array the group label of each row.
    features : sequence of str, optional
        Feature columns (names of the array's columns for a NumPy array); default:
        every numeric column except ``group`` (``x0, x1, ...`` for an array).
    con : duckdb.DuckDBPyConnection, optional
        DuckDB connection that runs a SQL query or reads a file (and sees its tables);
        default: a new in-memory connection.

    Returns
    -------
    SufficientStats

    Raises
    ------
    DataError
        Naming the column, group or file and what to change: missing or duplicated
        columns, non-numeric or infinite feature values, a feature with no observed
        value, missing group labels, an empty table, a file that does not exist or is
        not a table.

    Examples
    --------
    >>> df = pd.DataFrame({"g": ["a", "a", "b", "b"], "x": [1.0, 3.0, 2.0, 2.0]})
    >>> reduce(df, "g", ["x"]).scatter[:, 0, 0].tolist()
    [2.0, 0.0]
    >>> reduce(np.array([[1.0], [3.0], [2.0]]), group=["a", "a", "b"]).mean.ravel().tolist()
    [2.0, 2.0]
    >>> import duckdb
    >>> con = duckdb.connect()
    >>> _ = con.execute("CREATE TABLE t AS SELECT * FROM df")
    >>> reduce("SELECT * FROM t WHERE x > 1", "g", ["x"], con=con).n.tolist()
    [1, 2]
    """
    kind = input_kind(data)
    if kind == "stats":
        return data
    with np.errstate(over="ignore", under="ignore"):  # check_magnitudes says it better
        stats = _reduce(data, kind, group, features, con)
    check_magnitudes(stats)
    return stats


def _is_a_name(group) -> bool:
    """Whether ``group`` can name a pandas column (a scalar of any type: ``0`` in
    ``pd.DataFrame(array)``), not an array of labels."""
    try:
        hash(group)
    except TypeError:
        return False
    return np.ndim(group) == 0


def _reduce(data, kind: str, group, features, con) -> SufficientStats:
    if con is not None and kind not in ("sql", "path", "duckdb", "arrow", "polars",
                                        "polars-lazy"):
        raise DataError(
            "con= is used only for inputs that DuckDB reduces (a SQL query, a file path, "
            f"a relation, an Arrow table or a polars frame), not for {type(data).__name__}"
        )
    if kind == "numpy":
        return reduce_arrays(data, group, features)
    if not isinstance(group, str) and not (kind == "pandas" and _is_a_name(group)):
        raise DataError(
            f"group= must be the name of the group column, not {type(group).__name__}; "
            "labels given as an array go with a NumPy array of features"
        )
    if kind == "pandas":
        return reduce_pandas(data, group, features)
    if kind in ("sql", "path", "duckdb"):
        from groupcov.data.duckdb_engine import reduce_source

        return reduce_source(data, group, features, con=con)
    if kind == "arrow":
        return _reduce_arrow(data, group, features, con, "the Arrow table")
    if kind in ("polars", "polars-lazy"):
        return _reduce_polars(data, group, features, con, lazy=kind == "polars-lazy")
    if kind == "dask":
        from groupcov.data.dask_engine import reduce_dask

        return reduce_dask(data, group, features)
    raise DataError(
        f"unsupported data type {type(data).__name__}: pass a pandas, polars or Dask "
        "DataFrame, a pyarrow Table, a NumPy array with group= labels, a CSV or Parquet "
        "path, a SQL query or DuckDB relation, or SufficientStats"
    )


#: Spread below which the squares of a feature's deviations lose their digits to
#: underflow in double precision
SMALLEST_SPREAD = 1e-150


def check_magnitudes(stats: SufficientStats) -> None:
    """Refuse features whose values double precision cannot square and sum.

    Values of magnitude beyond about 1e154 overflow the sums of squares; deviations
    below about 1e-154 underflow them to zero (a varying feature would look
    constant). Either way the statistics are no longer the data's; rescaling the
    column (a power of ten) fixes it.

    Raises
    ------
    DataError
        Naming the feature, the magnitude of its values and what to do.

    Examples
    --------
    >>> df = pd.DataFrame({"g": ["a", "a", "b", "b"], "x": [1e160, 3e160, 2e160, 5e160]})
    >>> reduce(df, "g", ["x"])
    Traceback (most recent call last):
    ...
    groupcov.data.validate.DataError: feature 'x' has values of magnitude about 4e+160, ...
    """
    count, mean, ss = stats.available()
    for j, feature in enumerate(stats.features):
        seen = count[:, j] > 0
        if not seen.any():
            continue
        center, sq = mean[seen, j], ss[seen, j]
        with np.errstate(all="ignore"):
            spread = np.sqrt(sq / np.maximum(count[seen, j] - 1.0, 1.0))
            size = float(np.nanmax(np.abs(center)))
        if not (np.isfinite(center).all() and np.isfinite(sq).all()):
            raise DataError(
                f"feature {feature!r} has values of magnitude about {size:.0e}, too large "
                "for double-precision sums of squares (they overflow): rescale the column "
                "(divide it by a power of ten)"
            )
        largest = float(spread.max())
        if (0 < largest < SMALLEST_SPREAD) or (largest == 0 and 0 < size < SMALLEST_SPREAD):
            shown = largest if largest > 0 else size
            raise DataError(
                f"feature {feature!r} varies on a scale of about {shown:.0e}, too small for "
                "double-precision sums of squares (they underflow): rescale the column "
                "(multiply it by a power of ten)"
            )

