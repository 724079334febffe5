"""Reduction of a Dask DataFrame on the cluster that holds it.

Each partition is reduced where it lives, with the NumPy engine, to (group label,
pattern) cells and a few counts for validation; only these small summaries travel to
the client, which orders the groups, checks the data, merges the cells of all
partitions (means relative to a reference row of each cell, so offsets cost no
precision) and assembles them with :meth:`~groupcov.stats.SufficientStats.from_cells`.
The computation runs on Dask's current scheduler: the ``dask.distributed`` client in
use, if any.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

from groupcov.data.frame import (
    float_matrix,
    is_numeric_dtype,
    is_text_dtype,
    label_categories,
    value_examples,
)
from groupcov.data.numpy_engine import merge_cells, relative_cells
from groupcov.data.validate import (
    INDEX_NAMES,
    ColumnKind,
    all_missing_error,
    check_columns,
    check_label_types,
    check_unique_columns,
    default_features,
    infinite_error,
    is_range_of_rows,
    missing_labels_error,
    no_rows_error,
    non_numeric_error,
    order_labels,
    positions_text,
    python_label,
    unnamed_header,
)
from groupcov.stats import SufficientStats

__all__ = ["partition_cells", "reduce_dask"]

SOURCE = "the Dask DataFrame"
SHOWN_ROWS = 6
PROBE_ROWS = 1000


def partition_cells(part: pd.DataFrame, group: str, features: Sequence[str]) -> dict:
    """Cells and validation counts of one partition (runs on a worker).

    Returns
    -------
    dict
        ``rows``; ``missing_rows``/``missing_count`` of group labels;
        ``inf_rows``/``inf_count`` and ``observed_count`` per feature;
        ``categories`` of a categorical group column; and, when the partition is
        valid, ``labels`` and ``cells`` (group index into ``labels``, observed, n,
        reference, relative mean, scatter; see
        :func:`~groupcov.data.numpy_engine.relative_cells`).
    """
    labels = part[group]
    missing = labels.isna().to_numpy()
    x = float_matrix(part, features)
    infinite = np.isinf(x)
    summary = {
        "rows": len(part),
        "missing_rows": np.flatnonzero(missing)[:SHOWN_ROWS],
        "missing_count": int(missing.sum()),
        "inf_rows": [np.flatnonzero(infinite[:, j])[:SHOWN_ROWS] for j in range(x.shape[1])],
        "inf_count": infinite.sum(axis=0),
        "observed_count": (~np.isnan(x)).sum(axis=0),
        "categories": label_categories(labels),
        "labels": [],
        "cells": None,
    }
    if len(part) and not missing.any() and not infinite.any():
        codes, uniques = pd.factorize(labels, sort=False)
        summary["labels"] = [python_label(u) for u in list(uniques)]
        summary["cells"] = relative_cells(codes, x, len(uniques))
    return summary


def _global_rows(parts: list[dict], rows_key: str, pick) -> list[int]:
    """Positions in the whole frame of the first flagged rows of each partition."""
    rows, offset = [], 0
    for part in parts:
        rows.extend(int(offset + r) for r in pick(part[rows_key]))
        offset += part["rows"]
    return rows


def reduce_dask(ddf, group: str, features: Sequence[str] | None = None) -> SufficientStats:
    """Per-group statistics of a Dask DataFrame, computed partition by partition.

    Parameters
    ----------
    ddf : dask.dataframe.DataFrame
        The rows.
    group : str
        Group column.
    features : sequence of str, optional
        Numeric feature columns; default: every numeric column except ``group``.

    Returns
    -------
    SufficientStats
        The same statistics as reducing the computed pandas DataFrame.
    """
    import dask

    columns = list(ddf.columns)
    check_unique_columns(columns, SOURCE)
    dtypes = ddf.dtypes
    if features is None and group in columns:
        features = default_features(_column_kinds(ddf, group), group, SOURCE)
    features = check_columns(columns, group, features if features is not None else [], SOURCE)
    for f in features:
        if not is_numeric_dtype(dtypes[f]):
            raise non_numeric_error(f, dtypes[f], _head_examples(ddf, f), source=SOURCE)
    tasks = [
        dask.delayed(partition_cells)(part, group, features)
        for part in ddf[[group, *features]].to_delayed()
    ]
    parts = list(dask.compute(*tasks))
    n_rows = sum(part["rows"] for part in parts)
    if n_rows == 0:
        raise no_rows_error(SOURCE)
    for j, f in enumerate(features):
        count = int(sum(part["inf_count"][j] for part in parts))
        if count:
            rows = _global_rows(parts, "inf_rows", lambda r, j=j: r[j])
            raise infinite_error(f, count, positions_text(rows, count), SOURCE)
    valid = [part for part in parts if part["cells"] is not None]
    observed_counts = sum(part["observed_count"] for part in parts)
    for f, count in zip(features, observed_counts, strict=True):
        if count == 0:
            raise all_missing_error(f, n_rows, SOURCE)
    count = sum(part["missing_count"] for part in parts)
    if count:
        rows = _global_rows(parts, "missing_rows", lambda r: r)
        raise missing_labels_error(group, count, positions_text(rows, count), SOURCE)
    categories = _categories(dtypes[group], parts)
    seen = list(dict.fromkeys(label for part in valid for label in part["labels"]))
    ordered = order_labels(seen, categories, group, SOURCE)
    check_label_types(ordered, group, SOURCE)
    position = {label: i for i, label in enumerate(ordered)}
    pieces = []
    for part in valid:
        remap = np.array([position[label] for label in part["labels"]], dtype=np.int64)
        codes, *rest = part["cells"]
        pieces.append((remap[codes], *rest))
    merged = merge_cells(*(np.concatenate(arrays) for arrays in zip(*pieces, strict=True)))
    return SufficientStats.from_cells(ordered, features, *merged)


def _head_examples(ddf, column: str) -> tuple:
    """Values of a column's first rows that are not plain numbers (for messages)."""
    with warnings.catch_warnings():  # a first partition shorter than the probe is fine
        warnings.filterwarnings("ignore", "Insufficient elements", UserWarning)
        return value_examples(ddf[column].head(PROBE_ROWS, npartitions=1, compute=True))


def _distinct(ddf, column: str) -> bool:
    """Whether a column has a value in every row, each value once."""
    import dask

    values = ddf[column]
    n, k, d = dask.compute(values.size, values.count(), values.nunique())
    return n > 0 and k == n == d


def _is_row_index(ddf, column: str) -> bool:
    """Whether an integer column holds each of ``0..n-1`` once (count, range, sum and
    sum of squares)."""
    import dask

    values = ddf[column]
    n, k, lo, hi, total, squares = dask.compute(
        values.size, values.count(), values.min(), values.max(), values.sum(),
        (values.astype("float64") ** 2).sum(),
    )
    return is_range_of_rows(n, k, lo, hi, total, squares)


def _column_kinds(ddf, group: str) -> list[ColumnKind]:
    """How each column counts for the default features (types from the metadata)."""
    kinds = []
    for position, (name, dtype) in enumerate(ddf.dtypes.items()):
        if name == group:
            continue
        if pd.api.types.is_bool_dtype(dtype):
            kinds.append(ColumnKind(name, "bool", str(dtype)))
        elif is_numeric_dtype(dtype):  # real numbers (complex: "other")
            index = (position == 0 and str(name) in INDEX_NAMES
                     and pd.api.types.is_integer_dtype(dtype) and (
                         _distinct(ddf, name) if unnamed_header(list(ddf.columns))
                         else _is_row_index(ddf, name)))
            kinds.append(ColumnKind(name, "index" if index else "numeric", str(dtype)))
        elif is_text_dtype(dtype):
            kinds.append(ColumnKind(name, "text", str(dtype), _head_examples(ddf, name)))
        else:
            kinds.append(ColumnKind(name, "other", str(dtype)))
    return kinds


def _categories(dtype, parts: list[dict]) -> list | None:
    """Category order of a categorical group column (known, or united over partitions)."""
    if not isinstance(dtype, pd.CategoricalDtype):
        return None
    known = dtype.categories is not None and "__UNKNOWN_CATEGORIES__" not in list(
        dtype.categories
    )
    if known:
        return list(dtype.categories)
    seen = {}
    for part in parts:
        for c in part["categories"] or []:
            seen.setdefault(python_label(c), None)
    return list(seen)
