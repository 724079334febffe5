"""Out-of-core reduction inside DuckDB: files, SQL queries, relations, Arrow tables.

The table never enters Python: one ``GROUP BY`` over the group column and the
pattern of observed features returns, per (group, pattern) cell, the row count and
Kahan-summed (``fsum``) first and second moments of the features shifted by a value
taken from the first rows. With the shift, ``scatter = sum(d d^T) - n dbar dbar^T``
loses about ``eps * (1 + n dbar^2 / scatter)`` relative precision; where that factor
is large (group means far from the shift, e.g. groups at very different offsets) one
more query computes every cell's mean and the moments about it (two scans and a join
on the small table of cell means), which keeps full precision at any offset.
"""

from __future__ import annotations

import glob
import gzip
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from groupcov.data.validate import (
    INDEX_NAMES,
    NUMBER_PATTERN,
    ColumnKind,
    DataError,
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
    pandas_categorical,
    pandas_index_columns,
    positions_text,
    unnamed_header,
)
from groupcov.stats import SufficientStats

__all__ = ["open_path", "read_rows", "reduce_relation", "reduce_source"]

NUMERIC_TYPES = frozenset({
    "tinyint", "smallint", "integer", "bigint", "hugeint", "utinyint", "usmallint",
    "uinteger", "ubigint", "uhugeint", "float", "double", "decimal", "boolean",
})
PARQUET_SUFFIXES = (".parquet", ".pq", ".parq")
COMPRESSION_SUFFIXES = (".gz", ".gzip", ".zst", ".bz2")
NULL_STRINGS = ("", "NA", "N/A", "NaN", "nan", "NULL", "null")
BITS_PER_KEY = 62
CONDITION_LIMIT = 1e3
"""Re-centre cells whose ``n dbar^2 / scatter`` exceeds this (precision ~ eps * limit)."""
INTEGER_TYPES = frozenset({
    "tinyint", "smallint", "integer", "bigint", "hugeint", "utinyint", "usmallint",
    "uinteger", "ubigint", "uhugeint",
})
TEXT_TYPES = frozenset({"varchar", "char", "bpchar", "text", "string"})
PROBE_ROWS = 10_000
VIEW = "groupcov_source"


class TypeGuessError(DataError):
    """A :class:`DataError` that a wrong guess of a CSV column's type can cause (DuckDB
    failed on a value, or a feature read as text): re-reading the file with every row's
    types may change it."""


def _ident(name: str) -> str:
    return '"' + str(name).replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + str(text).replace("'", "''") + "'"


def _first_line(error: Exception) -> str:
    lines = [line for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


def file_kind(path: str) -> str:
    """``"parquet"`` or ``"csv"``, from the suffix or the Parquet magic bytes."""
    name = path.lower()
    for suffix in COMPRESSION_SUFFIXES:
        name = name.removesuffix(suffix)
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    if name.endswith((".csv", ".tsv", ".txt", ".dat")):
        return "csv"
    if os.path.isfile(path):
        with open(path, "rb") as handle:
            if handle.read(4) == b"PAR1":
                return "parquet"
    return "csv"


def _is_pattern(text: str) -> bool:
    return any(c in text for c in "*?[")


def _check_exists(text: str, source: str) -> None:
    """Raise :class:`DataError` for a missing file, a directory, an empty file or a local
    glob pattern that matches nothing."""
    if _is_pattern(text):
        if "://" not in text and not glob.glob(text, recursive=True):
            raise DataError(
                f"no files match the pattern {text!r} (working directory {os.getcwd()!r}); "
                "check the pattern"
            )
        return
    file = Path(text)
    if not file.exists():
        raise DataError(
            f"{source} does not exist (working directory {os.getcwd()!r}); check the path"
        )
    if file.is_dir():
        raise DataError(
            f"{text!r} is a directory, not a table; pass a file or a glob pattern "
            f"such as {os.path.join(text, '*.parquet')!r}"
        )
    if _is_blank(text):
        raise DataError(
            f"{source} is empty (no header and no rows); check that it was written completely"
        )


def _is_blank(path: str) -> bool:
    """Whether a file holds nothing but white space (compressed or not)."""
    if os.path.getsize(path) == 0:
        return True
    opener = _opener(path)
    try:
        with opener(path, "rb") as handle:
            return not handle.read(4096).strip()
    except (OSError, EOFError):
        return False


def open_path(
    path: str | os.PathLike, con, full_scan: bool = False, types: dict | None = None
) -> tuple[object, str, str, list[str] | None]:
    """A DuckDB relation reading a CSV or Parquet file (or glob pattern).

    DuckDB guesses a CSV column's type from the first rows (20,480); ``full_scan``
    makes it read every row for that (a column of numbers with text further down is
    then text, a column empty at first but numbers later numbers). ``types`` sets the
    types of some CSV columns (DuckDB's names to type names) instead.

    Returns
    -------
    relation, source, kind, names
        The relation, how messages name the file, ``"csv"`` or ``"parquet"``, and the
        column names as the file has them where DuckDB renamed some (``x`` next to
        ``X`` becomes ``x_1``), else None.

    Raises
    ------
    DataError
        If the file does not exist, is a directory, is empty or cannot be read as a
        table, if a pattern matches no file, or if column names repeat.
    """
    text = os.fspath(path)
    source = f"file {text!r}"
    _check_exists(text, source)
    kind = file_kind(text)
    if kind == "parquet":
        reader = f"read_parquet({_literal(text)})"
    else:
        nulls = ", ".join(_literal(s) for s in NULL_STRINGS)
        scan = ", sample_size = -1" if full_scan else ""
        if types:
            fields = ", ".join(f"{_literal(k)}: {_literal(v)}" for k, v in types.items())
            scan += f", types = {{{fields}}}"
        reader = f"read_csv({_literal(text)}, nullstr = [{nulls}]{scan})"
    import duckdb

    try:
        relation = con.sql(f"SELECT * FROM {reader}")
        relation.columns  # noqa: B018  (binds: reads the schema now)
    except duckdb.Error as error:
        if "No files found" in str(error):
            raise DataError(f"no files match the pattern {text!r}; check the pattern") from None
        raise DataError(
            f"{source} could not be read as a {kind.upper()} table "
            f"({_first_line(error)}); check that it is a {kind.upper()} file"
        ) from None
    if kind == "csv" and os.path.isfile(text):
        _check_split(relation.columns, text, source)
    names = None
    if os.path.isfile(text):
        raw = _raw_columns(text, kind, con)
        dupes = sorted({c for c in raw if raw.count(c) > 1})
        if dupes:
            raise DataError(
                f"{source} has duplicated column names {dupes} (DuckDB would rename them "
                f"to {[c for c in relation.columns if c not in raw]}): rename them"
            )
        names = renamed_columns(raw, relation.columns)
    return relation, source, kind, names


def renamed_columns(raw: Sequence[str], columns: Sequence[str]) -> list[str] | None:
    """The data's own column names where DuckDB renamed names that differ only in case.

    DuckDB matches names case-insensitively and renames the second of ``X`` and ``x``
    to ``x_1``; the statistics and messages keep the data's names.

    Examples
    --------
    >>> renamed_columns(["g", "X", "x"], ["g", "X", "x_1"])
    ['g', 'X', 'x']
    >>> renamed_columns(["g", "x"], ["g", "x"]) is None
    True
    """
    raw, columns = [str(c) for c in raw], list(columns)
    if len(raw) != len(columns) or raw == columns:
        return None
    if len({c.lower() for c in raw}) == len(raw):
        return None
    return [r or c for r, c in zip(raw, columns, strict=True)]


def read_rows(
    path: str | os.PathLike,
    columns: Sequence[str] | None = None,
    max_rows: int | None = None,
    con=None,
    numbers: Sequence[str] = (),
):
    """Rows of a CSV or Parquet file (or glob) as a pandas DataFrame, read as
    :func:`groupcov.data.reduce` reads them.

    The reader is :func:`open_path`'s: the same delimiter detection, column types and
    missing-value markers (:data:`NULL_STRINGS`), so a table read here has the columns,
    group labels and missing values that the per-group statistics were computed from.

    Parameters
    ----------
    path : str or os.PathLike
        CSV or Parquet file, or a glob pattern.
    columns : sequence of str, optional
        Columns to keep, in this order (default all).
    max_rows : int, optional
        Keep a reproducible random sample of at most this many rows.
    con : duckdb.DuckDBPyConnection, optional
        Connection that reads the file; default: a cursor on an in-memory database.
    numbers : sequence of str
        Columns meant to hold numbers (features): where they hold only numbers but
        DuckDB took them for text or dates (``inf`` can look like either), they are
        read as numbers, as :func:`groupcov.data.reduce` reads features. Other text
        columns (group labels such as ``007``) stay text.

    Returns
    -------
    pandas.DataFrame

    Raises
    ------
    DataError
        If the file does not exist or cannot be read, or a column is not in it.
    """
    import duckdb

    own = con is None
    con = _default_connection() if own else con
    try:
        relation, source, kind, raw = open_path(path, con)
        # integer columns DuckDB guessed from the first rows are read as text (it would
        # round a later 1.6 to 2) and converted as pandas does: integers where every
        # value is one (exactly, however large), else floats
        guessed_int = [c for c, t in zip(relation.columns, relation.types, strict=True)
                       if _type_id(t) in INTEGER_TYPES] if kind == "csv" else []
        actual = list(relation.columns)
        # the file's own names where DuckDB renamed some (x next to X reads as x_1)
        own_names = list(raw) if raw is not None else actual
        read_as = dict(zip(own_names, actual, strict=True))
        wanted = {read_as[c] for c in numbers if c in read_as}
        numeric = _number_columns(path, con, [
            c for c, t in zip(relation.columns, relation.types, strict=True)
            if c in wanted and _type_id(t) not in NUMERIC_TYPES
        ]) if kind == "csv" else []
        if guessed_int or numeric:
            relation, _, _, _ = open_path(path, con, types={
                **dict.fromkeys(guessed_int, "VARCHAR"), **dict.fromkeys(numeric, "DOUBLE")
            })
        names = own_names
        if columns is not None:
            missing = [c for c in columns if c not in read_as]
            if missing:
                raise DataError(
                    f"column(s) {missing} not found in {source}; available columns: "
                    f"{own_names}"
                )
            names = list(columns)
        sql = f"SELECT {', '.join(_ident(read_as[c]) for c in names)} FROM {VIEW}"
        if max_rows is not None:
            sql += f" USING SAMPLE reservoir({int(max_rows)} ROWS) REPEATABLE (0)"
        try:
            frame = relation.query(VIEW, sql).df()
        except duckdb.Error as error:
            raise DataError(f"{source} could not be read ({_first_line(error)})") from None
        import pandas as pd

        for column in (c for c in guessed_int if c in frame.columns):
            try:
                frame[column] = pd.to_numeric(frame[column])
            except (ValueError, TypeError) as error:
                name = dict(zip(actual, own_names, strict=True))[column]
                raise DataError(
                    f"{source}: column {name!r} holds integers in its first rows and then "
                    f"a value that is not a number ({error}); fix or remove that value"
                ) from None
        frame.columns = names
        return frame
    finally:
        if own:
            con.close()


def _opener(path: str):
    """``open``, or ``gzip.open`` for a gzip-compressed file (by its suffix)."""
    return gzip.open if path.lower().endswith((".gz", ".gzip")) else open


def _check_split(columns: Sequence[str], path: str, source: str) -> None:
    """Refuse a CSV file that DuckDB read as one column although its header has
    several fields: its rows have different numbers of fields (DuckDB's dialect
    detection then finds no delimiter), and the lines that differ are named."""
    if len(columns) != 1:
        return
    import csv

    for delimiter in (",", ";", "\t", "|"):
        if delimiter in columns[0]:
            break
    else:
        return
    opener = _opener(path)
    with opener(path, "rt", newline="") as f:
        reader = csv.reader(f, delimiter=delimiter)
        header = next(reader, [])
        bad = []
        for line, row in enumerate(reader, start=2):
            if row and len(row) != len(header):
                bad.append(f"{line} ({len(row)} fields)")
                if len(bad) == 5:
                    break
    shown = f": lines {', '.join(bad)}" if bad else ""
    raise DataError(
        f"{source} could not be split into columns: its header has {len(header)} fields "
        f"separated by {delimiter!r} but some rows have another number of fields{shown}; "
        "make every row match the header"
    )


def _raw_columns(path: str, kind: str, con) -> list[str]:
    """Column names as written in the file (DuckDB renames duplicates on reading)."""
    if kind == "parquet":
        nodes = con.sql(
            f"SELECT name, num_children FROM parquet_schema({_literal(path)})"
        ).fetchall()
        names, i = [], 1
        for _ in range(int(nodes[0][1] or 0) if nodes else 0):
            names.append(nodes[i][0])
            pending = int(nodes[i][1] or 0)
            i += 1
            while pending:
                pending += int(nodes[i][1] or 0) - 1
                i += 1
        return names
    import csv

    sniff = con.sql(
        "SELECT Delimiter, Quote, SkipRows, HasHeader "
        f"FROM sniff_csv({_literal(path)}, nullstr = ['']) "
    ).fetchall()
    delimiter, quote, skip, header = sniff[0]
    if not header:
        return []
    opener = _opener(path)
    try:
        with opener(path, "rt", encoding="utf-8", newline="") as handle:
            for _ in range(int(skip)):
                handle.readline()
            quoting = {} if quote in ("(empty)", "") else {"quotechar": quote}
            reader = csv.reader(handle, delimiter=delimiter, **quoting)
            return next(reader, [])
    except (OSError, UnicodeDecodeError, csv.Error):
        return []


def _type_id(dtype) -> str:
    return str(getattr(dtype, "id", dtype)).lower()


def _enum_values(dtype) -> list | None:
    if _type_id(dtype) != "enum":
        return None
    for name, values in getattr(dtype, "children", []):
        if name == "values":
            return list(values)
    return None


def _query(relation, sql: str) -> dict:
    return relation.query(VIEW, sql).fetchnumpy()


def _filled(values, fill=0.0) -> np.ndarray:
    return np.ma.filled(np.ma.asarray(values), fill)


def _clean_sql(group: str, group_type: str, features: Sequence[str]) -> str:
    """Group and features (DuckDB's column names) as ``g, v0, v1...``, NaN as NULL."""
    g = _ident(group)
    if group_type in ("float", "double"):
        g = f"CASE WHEN isnan({g}) THEN NULL ELSE {g} END"
    values = []
    for j, f in enumerate(features):
        v = f"CAST({_ident(f)} AS DOUBLE)"
        values.append(f"CASE WHEN isnan({v}) THEN NULL ELSE {v} END AS v{j}")
    return f"SELECT {g} AS g, {', '.join(values)} FROM {VIEW}"


def _pattern_sql(p: int) -> list[str]:
    keys = []
    for start in range(0, p, BITS_PER_KEY):
        terms = [
            f"CASE WHEN v{j} IS NULL THEN 0 ELSE {1 << (j - start)} END"
            for j in range(start, min(p, start + BITS_PER_KEY))
        ]
        keys.append(f"CAST({' + '.join(terms)} AS BIGINT) AS k{start // BITS_PER_KEY}")
    return keys


def _moments_sql(p: int, shifts: Sequence[str], with_inf: bool) -> list[str]:
    d = [f"(v{j} - {shifts[j]})" for j in range(p)]
    aggs = ["count(*) AS n"]
    aggs += [f"fsum({d[j]}) AS s{j}" for j in range(p)]
    aggs += [f"fsum({d[i]} * {d[j]}) AS c{i}_{j}" for i in range(p) for j in range(i + 1)]
    if with_inf:
        aggs += [f"count(*) FILTER (WHERE isinf(v{j})) AS inf{j}" for j in range(p)]
    return aggs


def _first_pass(relation, clean: str, p: int, shifts: np.ndarray) -> dict:
    keys = _pattern_sql(p)
    key_names = [f"k{i}" for i in range(len(keys))]
    consts = [f"CAST({_literal(repr(float(s)))} AS DOUBLE)" for s in shifts]
    sql = (
        f"WITH clean AS ({clean}), keyed AS (SELECT *, {', '.join(keys)} FROM clean) "
        f"SELECT g, {', '.join(key_names)}, "
        f"{', '.join(_moments_sql(p, consts, True))} FROM keyed GROUP BY ALL"
    )
    return _query(relation, sql)


def _second_pass(relation, clean: str, p: int) -> dict:
    """Moments of every cell about its own mean, in one query (two scans and a join)."""
    keys = _pattern_sql(p)
    key_names = [f"k{i}" for i in range(len(keys))]
    centers = ", ".join(f"favg(v{j}) AS t{j}" for j in range(p))
    on = " AND ".join(f"keyed.{k} = centers.{k}" for k in ["g", *key_names])
    picked = ", ".join(f"any_value(centers.t{j}) AS t{j}" for j in range(p))
    sql = (
        f"WITH clean AS NOT MATERIALIZED ({clean}), "
        f"keyed AS NOT MATERIALIZED (SELECT *, {', '.join(keys)} FROM clean), "
        f"centers AS (SELECT g, {', '.join(key_names)}, {centers} FROM keyed GROUP BY ALL) "
        f"SELECT keyed.g AS g, {', '.join('keyed.' + k + ' AS ' + k for k in key_names)}, "
        f"{picked}, {', '.join(_moments_sql(p, [f'centers.t{j}' for j in range(p)], False))} "
        f"FROM keyed JOIN centers ON {on} "
        f"GROUP BY {', '.join('keyed.' + k for k in ['g', *key_names])}"
    )
    return _query(relation, sql)


def _moments(result: dict, p: int, shifts: np.ndarray) -> tuple[np.ndarray, ...]:
    """Counts, means and scatters of each returned cell."""
    n = _filled(result["n"]).astype(float)
    safe = np.where(n > 0, n, 1.0)
    sums = np.stack([_filled(result[f"s{j}"]) for j in range(p)], axis=-1).reshape(-1, p)
    dbar = sums / safe[:, None]
    scatter = np.empty((len(n), p, p))
    with np.errstate(invalid="ignore", over="ignore"):  # infinite values are reported later
        for i in range(p):
            for j in range(i + 1):
                c = _filled(result[f"c{i}_{j}"]) - n * dbar[:, i] * dbar[:, j]
                scatter[:, i, j] = scatter[:, j, i] = c
    diag = np.einsum("kii->ki", scatter)
    diag[...] = np.maximum(diag, 0.0)
    return n, np.asarray(shifts) + dbar, scatter, dbar


def _observed(result: dict, p: int) -> np.ndarray:
    observed = np.zeros((len(result["n"]), p), dtype=bool)
    for j in range(p):
        key = _filled(result[f"k{j // BITS_PER_KEY}"], 0).astype(np.int64)
        observed[:, j] = (key >> (j % BITS_PER_KEY)) & 1 == 1
    return observed


def _bad_rows(relation, condition: str, clean: str) -> str:
    sql = (
        f"WITH clean AS ({clean}) SELECT rn FROM (SELECT row_number() OVER () - 1 AS rn, "
        f"{condition} AS bad FROM clean) WHERE bad ORDER BY rn LIMIT 6"
    )
    rows = _query(relation, sql)["rn"].tolist()
    return positions_text(rows, total=len(rows))


def _shifts(relation, clean: str, p: int) -> np.ndarray:
    """A finite observed value of each feature from the first rows (0 if none)."""
    firsts = ", ".join(
        f"first(v{j}) FILTER (WHERE v{j} IS NOT NULL AND NOT isinf(v{j})) AS f{j}"
        for j in range(p)
    )
    sql = f"WITH clean AS ({clean}) SELECT {firsts} FROM (SELECT * FROM clean LIMIT {PROBE_ROWS})"
    result = _query(relation, sql)
    return np.array([float(_filled(result[f"f{j}"], 0.0)[0]) for j in range(p)])


def _ill_conditioned(n, dbar, scatter, observed) -> bool:
    diag = np.einsum("kii->ki", scatter)
    spread = n[:, None] * dbar**2
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(spread > 0, spread / diag, 0.0)
    check = observed & (n[:, None] > 1)
    return bool(np.any(ratio[check] > CONDITION_LIMIT))


def reduce_relation(
    relation,
    group: str,
    features: Sequence[str] | None = None,
    source: str = "the DuckDB relation",
    label_order: Sequence | None = None,
    names: Sequence[str] | None = None,
    stored_index: Sequence[str] = (),
    guessed_types: dict | None = None,
    label_type: str | None = None,
) -> SufficientStats:
    """Per-group statistics of a DuckDB relation, computed inside DuckDB.

    Parameters
    ----------
    relation : duckdb.DuckDBPyRelation
        The rows (a table, view, query or file scan).
    group : str
        Group column.
    features : sequence of str, optional
        Numeric feature columns; default: every numeric column except ``group``.
    source : str
        How error messages name the table.
    label_order : sequence, optional
        Order of the group labels (e.g. the categories of a dictionary column);
        default: an ``ENUM`` column's order, otherwise sorted.
    names : sequence of str, optional
        The columns' names as the data has them, in the relation's column order, where
        DuckDB renamed some (it renames ``x`` to ``x_1`` next to ``X``); messages and
        the statistics use these.
    stored_index : sequence of str
        Columns that hold a pandas index (by an Arrow table's or Parquet file's
        metadata): left out of the default features, with the others left out.
    guessed_types : dict, optional
        Column types that choose the default features where the relation reads some
        columns with other types (a CSV file's integer columns read as DOUBLE).
    label_type : str, optional
        The type DuckDB guessed for a group column read as text (:func:`typed_labels`).

    Returns
    -------
    SufficientStats

    Examples
    --------
    >>> import duckdb
    >>> con = duckdb.connect()
    >>> rel = con.sql("SELECT * FROM (VALUES ('b', 1.0), ('a', 2.0), ('a', 4.0)) t(g, x)")
    >>> st = reduce_relation(rel, "g", ["x"])
    >>> st.groups, st.n.tolist(), st.mean.ravel().tolist(), st.scatter.ravel().tolist()
    (('a', 'b'), [2, 1], [3.0, 1.0], [2.0, 0.0])
    """
    import duckdb

    try:
        return _reduce_relation(relation, group, features, source, label_order, names,
                                stored_index, guessed_types, label_type)
    except duckdb.Error as error:
        raise TypeGuessError(
            f"{source} could not be reduced by DuckDB ({_first_line(error)})"
        ) from None


def _text_examples(relation, column: str) -> tuple:
    """Up to three values of a column that are not plain numbers (else its first value)."""
    c = _ident(column)
    text = f"CAST({c} AS VARCHAR)"
    found = _query(
        relation,
        f"SELECT {text} AS e FROM {VIEW} WHERE {c} IS NOT NULL AND NOT "
        f"regexp_full_match({text}, {_literal(NUMBER_PATTERN)}) LIMIT 20",
    )["e"].tolist()
    if not found:
        found = _query(
            relation, f"SELECT {text} AS e FROM {VIEW} WHERE {c} IS NOT NULL LIMIT 1"
        )["e"].tolist()
    return tuple(dict.fromkeys(found))[:3]


def _is_row_index(relation, column: str) -> bool:
    """Whether an integer column holds each of ``0..n-1`` once (count, range, sum and
    sum of squares)."""
    c = _ident(column)
    big = f"CAST({c} AS HUGEINT)"
    row = _query(
        relation,
        f"SELECT count(*) AS n, count({c}) AS k, min({c}) AS lo, max({c}) AS hi, "
        f"CAST(sum({big}) AS VARCHAR) AS s, CAST(sum({big} * {big}) AS VARCHAR) AS q "
        f"FROM {VIEW}",
    )
    n, k = int(row["n"][0]), int(row["k"][0])
    if n == 0 or k != n:
        return False
    return is_range_of_rows(n, k, *(int(row[key][0]) for key in ("lo", "hi", "s", "q")))


def _distinct(relation, column: str) -> bool:
    """Whether a column has a value in every row, each value once."""
    c = _ident(column)
    row = _query(relation, f"SELECT count(*) AS n, count({c}) AS k, count(DISTINCT {c}) AS d "
                           f"FROM {VIEW}")
    n = int(row["n"][0])
    return n > 0 and int(row["k"][0]) == n == int(row["d"][0])


def _column_kinds(
    relation, names: Sequence[str], types: dict, group: str, stored_index: Sequence[str] = ()
) -> list:
    """How each column counts for the default features (``names``: as the user sees
    them; the relation's own names come in the same order; ``stored_index``: columns
    that hold a pandas index, by the file's metadata)."""
    kinds = []
    for position, (name, column) in enumerate(zip(names, relation.columns, strict=True)):
        if name == group:
            continue
        type_id, dtype = _type_id(types[name]), str(types[name])
        if name in stored_index:
            kinds.append(ColumnKind(name, "stored-index", dtype))
        elif type_id == "boolean":
            kinds.append(ColumnKind(name, "bool", dtype))
        elif type_id in NUMERIC_TYPES:
            index = position == 0 and str(name) in INDEX_NAMES and type_id in INTEGER_TYPES and (
                _distinct(relation, column) if unnamed_header(names)
                else _is_row_index(relation, column)
            )
            kinds.append(ColumnKind(name, "index" if index else "numeric", dtype))
        elif type_id in TEXT_TYPES:
            kinds.append(ColumnKind(name, "text", dtype, _text_examples(relation, column)))
        else:
            kinds.append(ColumnKind(name, "other", dtype))
    return kinds


def _row_count(relation) -> int:
    return int(_query(relation, f"SELECT count(*) AS n FROM {VIEW}")["n"][0])


def _reduce_relation(
    relation, group, features, source, label_order, names=None, stored_index=(),
    guessed_types=None, label_type=None,
) -> SufficientStats:
    columns = list(names) if names is not None else list(relation.columns)
    check_unique_columns(columns, source)
    sql_name = dict(zip(columns, relation.columns, strict=True))
    types = dict(zip(columns, relation.types, strict=True))
    if features is None and group in types:
        if _row_count(relation) == 0:
            raise no_rows_error(source)
        kinds = _column_kinds(relation, columns, guessed_types or types, group, stored_index)
        features = default_features(kinds, group, source)
    features = check_columns(columns, group, features if features is not None else [], source)
    p = len(features)
    clean = _clean_sql(sql_name[group], _type_id(types[group]),
                       [sql_name[f] for f in features])
    for f in features:
        if _type_id(types[f]) not in NUMERIC_TYPES:
            example = _text_examples(relation, sql_name[f])
            if not example:  # no value to show: an empty table or an all-missing column
                rows = _row_count(relation)
                raise no_rows_error(source) if rows == 0 else all_missing_error(f, rows, source)
            raise TypeGuessError(*non_numeric_error(f, types[f], example, source).args)
    shifts = _shifts(relation, clean, p)
    first = _first_pass(relation, clean, p, shifts)
    n, mean, scatter, dbar = _moments(first, p, shifts)
    if n.sum() == 0:
        raise no_rows_error(source)
    for j, f in enumerate(features):
        count = int(_filled(first[f"inf{j}"], 0).sum())
        if count:
            raise infinite_error(f, count, _bad_rows(relation, f"isinf(v{j})", clean), source)
    observed = _observed(first, p)
    counts = (observed * n[:, None]).sum(axis=0)
    for f, count in zip(features, counts, strict=True):
        if count == 0:
            raise all_missing_error(f, int(n.sum()), source)
    labels = np.ma.asarray(first["g"])
    missing = np.ma.getmaskarray(labels)
    if missing.any():
        count = int(n[missing].sum())
        raise missing_labels_error(group, count, _bad_rows(relation, "g IS NULL", clean), source,
                                   NULL_STRINGS if source.startswith("file ") else ())
    values = np.asarray(labels.data if np.ma.isMaskedArray(labels) else labels).tolist()
    # one value per cell (group and pattern of missing values); before any hashing,
    # which labels such as structs (dicts) do not allow
    check_label_types(values, group, source)
    typed = typed_labels(values, label_type, group, source) if label_type else None
    if _ill_conditioned(n, dbar, scatter, observed):
        first = _second_pass(relation, clean, p)
        centers = np.stack([_filled(first[f"t{j}"]) for j in range(p)], axis=-1).reshape(-1, p)
        n, mean, scatter, _ = _moments(first, p, centers)
        observed = _observed(first, p)
        labels = np.ma.asarray(first["g"])
        values = np.asarray(labels.data if np.ma.isMaskedArray(labels) else labels).tolist()
    if typed is not None:
        values = [typed[v] for v in values]
    categories = label_order if label_order is not None else _enum_values(types[group])
    ordered = order_labels(list(dict.fromkeys(values)), categories, group, source)
    position = {label: i for i, label in enumerate(ordered)}
    codes = np.array([position[v] for v in values], dtype=np.int64)
    return SufficientStats.from_cells(ordered, features, codes, observed, n, mean, scatter)


def _reduce_csv(path, con, sniffed, names, group, features, source, label_order,
                full_scan: bool = False) -> SufficientStats:
    """:func:`reduce_relation` of a CSV file read with the types DuckDB guessed
    (``sniffed``), except where a guess from the first rows would change values
    silently: DuckDB casts ``1.6`` to an integer column as 2, and reads ``1`` and
    ``1.0`` into one number. Integer feature columns are therefore read as DOUBLE, and a
    number or boolean group column as text, typed from all its labels
    (:func:`typed_labels`)."""
    columns = list(names) if names is not None else list(sniffed.columns)
    overrides, label_type, unsure = {}, None, []
    for name, column, dtype in zip(columns, sniffed.columns, sniffed.types, strict=True):
        type_id = _type_id(dtype)
        if name == group:
            if type_id in NUMERIC_TYPES:
                overrides[column], label_type = "VARCHAR", type_id
        elif features is None or name in features:
            if type_id in INTEGER_TYPES:
                overrides[column] = "DOUBLE"
            elif type_id not in NUMERIC_TYPES:  # text or a date: perhaps numbers (inf)
                unsure.append(column)
    numbers = _number_columns(path, con, unsure, full_scan)
    overrides.update(dict.fromkeys(numbers, "DOUBLE"))
    if not overrides:
        return reduce_relation(sniffed, group, features, source, label_order, names)
    relation, _, _, _ = open_path(path, con, full_scan=full_scan, types=overrides)
    # default features follow the guessed types, except where text was numbers
    guessed = {name: read if column in numbers else sniffed_type for name, column,
               sniffed_type, read in zip(columns, sniffed.columns, sniffed.types,
                                         relation.types, strict=True)}
    return reduce_relation(relation, group, features, source, label_order, names,
                           guessed_types=guessed, label_type=label_type)


def _number_columns(path, con, columns: Sequence[str], full_scan: bool = False) -> list[str]:
    """The CSV columns among ``columns`` (DuckDB's names; guessed as text or dates) that
    hold only numbers, read as text: DuckDB's guess takes ``inf`` for a date or text,
    where pandas and a DOUBLE column read it as infinity."""
    if not columns:
        return []
    relation, _, _, _ = open_path(path, con, full_scan=full_scan,
                                  types=dict.fromkeys(columns, "VARCHAR"))
    found = []
    for column in columns:
        c = _ident(column)
        filled = f"SELECT {c} FROM {VIEW} WHERE {c} IS NOT NULL"
        # each stops at its first row found: a text column's first value is not a number
        first_text = f"{filled} AND TRY_CAST({c} AS DOUBLE) IS NULL LIMIT 1"
        if relation.query(VIEW, f"SELECT count(*) FROM ({first_text})").fetchall()[0][0]:
            continue
        if relation.query(VIEW, f"SELECT count(*) FROM ({filled} LIMIT 1)").fetchall()[0][0]:
            found.append(column)
    return found


_INTEGER_TEXT = re.compile(r"\s*[+-]?[0-9]+\s*")
_NUMBER_TEXT = re.compile(NUMBER_PATTERN)
_TRUE, _FALSE = frozenset({"true", "t"}), frozenset({"false", "f"})


def typed_labels(texts: Sequence[str], label_type: str, group: str,
                 source: str | None = None) -> dict:
    """Labels of a CSV group column read as text: ``text -> label``, typed as DuckDB
    guessed from the first rows (``label_type``) where every label allows it.

    Integers stay integers unless a label further down has decimals (then every label
    is a float); numbers and booleans that do not all parse stay text. Two texts that
    would be one label (``1`` and ``1.0``, ``TRUE`` and ``true``) are an error rather
    than one group.

    Examples
    --------
    >>> typed_labels(["2", "10"], "bigint", "g")
    {'2': 2, '10': 10}
    >>> typed_labels(["2", "1.5"], "bigint", "g")
    {'2': 2.0, '1.5': 1.5}
    >>> typed_labels(["1", "1.0"], "double", "g")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    groupcov.data.validate.DataError: group column 'g' has labels '1', '1.0' that differ ...
    """
    texts = list(dict.fromkeys(texts))
    if label_type == "boolean":
        lowered = [t.strip().lower() for t in texts]
        if all(t in _TRUE | _FALSE for t in lowered):
            typed = {t: low in _TRUE for t, low in zip(texts, lowered, strict=True)}
        else:
            typed = {t: t for t in texts}
    elif label_type in INTEGER_TYPES and all(_INTEGER_TEXT.fullmatch(t) for t in texts):
        typed = {t: int(t) for t in texts}
    elif all(_NUMBER_TEXT.fullmatch(t) for t in texts):
        typed = {t: float(t) for t in texts}
    else:
        typed = {t: t for t in texts}
    by_label: dict = {}
    for text, label in typed.items():
        by_label.setdefault(label, []).append(text)
    merged = [same for same in by_label.values() if len(same) > 1]
    if merged:
        shown = ", ".join(repr(t) for t in merged[0][:3])
        kind = "boolean" if label_type == "boolean" else "number"
        raise DataError(
            f"{source + ': ' if source else ''}group column {group!r} has labels {shown} that "
            f"differ as text but are the same {kind}; they would be one group. Write them "
            "the same way in the file (or give each group a text label)"
        )
    return typed


def reduce_source(
    data,
    group: str,
    features: Sequence[str] | None = None,
    con=None,
    label_order: Sequence | None = None,
    source: str | None = None,
) -> SufficientStats:
    """Reduce a path, SQL query, relation or Arrow object inside DuckDB.

    Parameters
    ----------
    data : str, os.PathLike, duckdb.DuckDBPyRelation, pyarrow.Table or pyarrow dataset
        A CSV/Parquet path or glob, a SQL query (``str`` starting with ``SELECT``,
        ``WITH``, ``FROM``...), a relation, or an Arrow table, record batch or dataset.
    group, features
        As in :func:`reduce_relation`.
    con : duckdb.DuckDBPyConnection, optional
        Connection that runs a query or reads a file; default: a cursor on an
        in-memory database.
    label_order : sequence, optional
        Order of the group labels.
    source : str, optional
        How messages name the data.
    """
    import duckdb

    if isinstance(data, duckdb.DuckDBPyRelation):
        return reduce_relation(data, group, features, source or "the DuckDB relation",
                               label_order)
    own = con is None
    con = _default_connection() if own else con
    try:
        if isinstance(data, str) and is_sql(data):
            try:
                relation = con.sql(data)
                relation.columns  # noqa: B018
            except duckdb.Error as error:
                raise DataError(f"the SQL query failed: {_first_line(error)}") from None
            return reduce_relation(relation, group, features, source or "the query",
                                   label_order)
        if isinstance(data, (str, os.PathLike)):
            relation, name, kind, names = open_path(data, con)
            stored_index: list[str] = []
            if kind == "parquet":
                if label_order is None:
                    label_order = parquet_label_order(os.fspath(data), group)
                stored_index = parquet_index_columns(os.fspath(data))
                return reduce_relation(relation, group, features, source or name,
                                       label_order, names, stored_index)
            try:
                return _reduce_csv(data, con, relation, names, group, features,
                                   source or name, label_order)
            except TypeGuessError:
                # the types DuckDB guessed from the first rows may not hold further
                # down: with every row's types, the error (if any) names the column
                # (other errors, a missing column say, need no second reading)
                scanned, name, kind, names = open_path(data, con, full_scan=True)
                if list(scanned.types) == list(relation.types):
                    raise
            return _reduce_csv(data, con, scanned, names, group, features, source or name,
                               label_order, full_scan=True)
        try:
            relation = con.from_arrow(data)
        except duckdb.Error as error:
            raise DataError(
                f"{source or 'the Arrow table'} could not be read by DuckDB "
                f"({_first_line(error)}); {_arrow_types_hint(data)}"
            ) from None
        names = renamed_columns(data.schema.names, relation.columns)
        return reduce_relation(relation, group, features, source or "the Arrow table",
                               label_order, names, pandas_index_columns(data.schema))
    finally:
        if own:
            con.close()


def _arrow_types_hint(data) -> str:
    """Which columns to convert when DuckDB cannot take an Arrow table."""
    schema = getattr(data, "schema", None)
    odd = [f"{name!r} ({kind})" for name, kind in zip(getattr(schema, "names", []),
                                                       getattr(schema, "types", []),
                                                       strict=False)
           if str(kind) in ("halffloat", "float16") or str(kind).startswith(
               ("struct", "map", "union", "dictionary<values=struct"))]
    if odd:
        return f"convert the column(s) {', '.join(odd)} to supported types (e.g. float64)"
    return "convert its columns to plain numbers and text"


def parquet_index_columns(path: str) -> list[str]:
    """Columns of a Parquet file (the first of a pattern's files) that hold the index
    of the pandas frame it was written from (:func:`pandas_index_columns`); empty when
    there are none, pyarrow is missing or the file is not local."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        return []
    if "://" in path:
        return []
    files = sorted(glob.glob(path, recursive=True)) if _is_pattern(path) else [path]
    try:
        return pandas_index_columns(pq.read_schema(files[0])) if files else []
    except Exception:  # unreadable metadata: DuckDB's own reading reports the file
        return []


def parquet_label_order(path: str, group: str) -> list | None:
    """Categories of an ordered dictionary group column of Parquet files, or of a
    pandas ``Categorical`` (ordered or not), in order.

    pandas (a ``Categorical``), polars (``Enum``) and Arrow store the column's
    type, ordered flag included, in the file's Arrow schema and its categories as the
    dictionary of each row group; DuckDB reads the column as plain text. Reading the
    group column's dictionaries (one column, row group by row group) gives the order
    that ``pandas.read_parquet`` and ``pyarrow.parquet.read_table`` see.

    Returns
    -------
    list or None
        The categories in order (united over files and row groups in order of first
        appearance), or None when the column is neither an ordered dictionary nor a
        pandas categorical, pyarrow is missing or the files are not local.
    """
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        return None
    if "://" in path:
        return None
    files = sorted(glob.glob(path, recursive=True)) if _is_pattern(path) else [path]
    order: dict = {}
    try:
        for file in files:
            parquet = pq.ParquetFile(file)
            schema = parquet.schema_arrow
            if group not in schema.names:
                return None
            dtype = schema.field(group).type
            if not (pa.types.is_dictionary(dtype)
                    and (dtype.ordered or pandas_categorical(schema, group))):
                return None
            for i in range(parquet.num_row_groups):
                column = parquet.read_row_group(i, columns=[group]).column(group)
                for chunk in column.chunks:
                    for value in chunk.dictionary.to_pylist():
                        order.setdefault(value, None)
    except (OSError, ValueError):
        return None
    return list(order) or None


_DATABASE: list = []


def _default_connection():
    """A cursor on a process-wide in-memory database (connecting costs ~0.1 s)."""
    import duckdb

    if not _DATABASE:
        _DATABASE.append(duckdb.connect())
    return _DATABASE[0].cursor()


SQL_STARTS = ("select", "with", "from", "values", "table", "pivot", "unpivot", "(")


def is_sql(text: str) -> bool:
    """Whether a string is a SQL query rather than a file path: it starts like a query
    and names no existing file (a file may be called "table 1.csv").

    Examples
    --------
    >>> is_sql("SELECT * FROM t"), is_sql("  with a as (select 1) select * from a")
    (True, True)
    >>> is_sql("data/rows.csv"), is_sql("selection.parquet")
    (False, False)
    """
    head = text.lstrip().lower()
    return any(
        head.startswith(word) and (word == "(" or head[len(word):len(word) + 1].isspace())
        for word in SQL_STARTS
    ) and not os.path.exists(text)
