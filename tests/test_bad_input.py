"""Bad input, one table: each row gives a clear error or a correct result.

An error must be a DataError/ValueError whose message names the column, group or file
and says what to do; a result is checked on its numbers. Rows that apply to several
kinds of input run once per kind (pandas, CSV, Parquet, polars, Arrow, SQL, Dask,
NumPy array). GroupCovModel is only built, never sampled.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import pytest

from groupcov import GroupCovModel, reduce
from groupcov.data import CollinearFeaturesWarning, DataError, ManyFeaturesWarning

duckdb = pytest.importorskip("duckdb")
pa = pytest.importorskip("pyarrow")
pl = pytest.importorskip("polars")
dd = pytest.importorskip("dask.dataframe")

FILE = "<file>"  # stands for the path of a file-backed input in expected messages
TABLES = ("pandas", "csv", "parquet", "polars", "arrow", "sql", "dask")
ALL = (*TABLES, "numpy")
FILES = ("csv", "parquet")


def base(**columns) -> pd.DataFrame:
    df = pd.DataFrame({
        "g": ["a", "b", "a", "b", "a", "b"],
        "x": [1.0, 2.0, 3.0, 4.0, 5.0, 7.0],
        "y": [0.5, -1.0, 2.5, 0.0, 1.0, 3.0],
    })
    return df.assign(**columns)


def as_input(source: str, df: pd.DataFrame, tmp: Path):
    """The same rows as the given kind of input, and DuckDB connection if any."""
    if source == "pandas":
        return df, None
    if source == "csv":
        df.to_csv(tmp / "rows.csv", index=False)
        return tmp / "rows.csv", None
    if source == "parquet":
        df.to_parquet(tmp / "rows.parquet", index=False)
        return str(tmp / "rows.parquet"), None
    if source == "polars":
        return pl.from_pandas(df), None
    if source == "arrow":
        columns = [pa.Array.from_pandas(df.iloc[:, j]) for j in range(df.shape[1])]
        return pa.Table.from_arrays(columns, names=list(df.columns)), None
    if source == "sql":
        con = duckdb.connect()
        con.register("frame", df)
        con.execute("CREATE TABLE rows AS SELECT * FROM frame")
        return "SELECT * FROM rows", con
    if source == "dask":
        return dd.from_pandas(df, npartitions=2), None
    raise AssertionError(source)


def reducing(frame: Callable[[], pd.DataFrame], group="g", features=("x", "y")):
    """A row whose input is ``frame()`` given as each kind of input."""
    def run(source, tmp):
        df = frame()
        if source == "numpy":
            return reduce(df[list(features)].to_numpy(), group=df[group].array,
                          features=list(features))
        data, con = as_input(source, df, tmp)
        return reduce(data, group, None if features is None else list(features), con=con)
    return run


def modelling(frame: Callable[[], pd.DataFrame], features=("x", "y"), **kwargs):
    def run(source, tmp):
        data, con = as_input(source, frame(), tmp)
        assert con is None
        return GroupCovModel(data, group="g", features=list(features), **kwargs)
    return run


class Error(NamedTuple):
    kind: type
    parts: tuple[str, ...]


class Result(NamedTuple):
    check: Callable[[Any], None]
    warning: type | None = None
    warning_parts: tuple[str, ...] = ()


class Row(NamedTuple):
    id: str
    run: Callable[[str, Path], Any]
    sources: tuple[str, ...]
    expect: Error | Result


# --- correct results -----------------------------------------------------------------------


def one_row_group(st):
    i = st.groups.index("c")
    assert st.n.tolist() == [3, 3, 1]
    np.testing.assert_array_equal(st.mean[i], [9.0, -4.0])
    np.testing.assert_array_equal(st.scatter[i], np.zeros((2, 2)))
    assert np.isnan(st.covariance()[i]).all()


def one_row_group_model(m):
    one_row_group(m.stats)
    assert tuple(m.model.coords["group"]) == ("a", "b", "c")
    assert m.model["cov"].type.shape == (3, 2, 2)


def constant_feature(st):
    np.testing.assert_array_equal(st.mean[:, 1], [5.0, 5.0])
    np.testing.assert_array_equal(st.scatter[:, 1, :], np.zeros((2, 2)))
    np.testing.assert_array_equal(st.scatter[:, :, 1], np.zeros((2, 2)))
    np.testing.assert_allclose(st.scatter[:, 0, 0], [8.0, 38.0 / 3.0])


def collinear(st):
    # z = 2 x + 1: scatter of (x, z) is S_xx [[1, 2], [2, 4]], singular
    sxx = np.array([8.0, 38.0 / 3.0])
    np.testing.assert_allclose(st.scatter, sxx[:, None, None] * [[1.0, 2.0], [2.0, 4.0]])
    np.testing.assert_allclose(st.mean[:, 1], 2 * st.mean[:, 0] + 1)
    assert np.allclose(np.linalg.det(st.scatter), 0.0)


def collinear_model(m):
    collinear(m.stats)
    assert m.model["cov"].type.shape == (2, 2, 2)


def int_labels(st):
    assert st.groups == (-3, 2, 10)
    assert all(type(g) is int for g in st.groups)
    np.testing.assert_array_equal(st.n, [2, 2, 2])
    np.testing.assert_allclose(st.mean[:, 0], [6.0, 3.0, 2.0])


def unicode_labels(st):
    assert st.groups == ("Zürich", "Ålesund", "東京")
    np.testing.assert_allclose(st.mean[:, 0], [2.0, 4.0, 6.0])
    np.testing.assert_allclose(st.scatter[:, 0, 0], [2.0, 0.0, 2.0])


def categorical_labels(st):
    assert st.groups == ("b", "a")  # category order, unused category dropped
    np.testing.assert_allclose(st.mean[:, 0], [4.5, 2.0])


def many_features(m):
    assert m.stats.n_features == 60 and m.stats.n.tolist() == [100, 100]


def fifty_features(m):
    assert m.stats.n_features == 50


def wide(p, seed=0):
    def frame():
        x = np.random.default_rng(seed).normal(size=(200, p))
        df = pd.DataFrame(x, columns=[f"f{j}" for j in range(p)])
        return df.assign(g=["a", "b"] * 100)
    return frame, tuple(f"f{j}" for j in range(p))


WIDE60, NAMES60 = wide(60)
WIDE50, NAMES50 = wide(50)


# --- files that are not tables ---------------------------------------------------------------


def missing_file(source, tmp):
    return reduce(tmp / "no_such_file.parquet", "g", ["x"])


def missing_file_str(source, tmp):
    return reduce(str(tmp / "nope" / "rows.csv"), "g", ["x"])


def binary_parquet(source, tmp):
    path = tmp / "image.parquet"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8)
    return reduce(path, "g", ["x"])


def text_as_table(source, tmp):
    path = tmp / "notes.txt"
    path.write_text("Dear diary,\nno table here.\n")
    return reduce(path, "g", ["x"])


def directory(source, tmp):
    (tmp / "folder").mkdir()
    return reduce(tmp / "folder", "g", ["x"])


def bad_sql(source, tmp):
    return reduce("SELECT * FROM no_such_table", "g", ["x"], con=duckdb.connect())


def empty_file(source, tmp):
    (tmp / "empty.csv").write_text("")
    return reduce(tmp / "empty.csv", "g")


def glob_without_files(source, tmp):
    return reduce(str(tmp / "parts" / "*.parquet"), "g", ["x"])


def stats_with_interval_labels(source, tmp):
    from groupcov.stats import SufficientStats

    st = reduce(base(), "g", ["x", "y"])
    labels = tuple(pd.Interval(i, i + 1) for i in range(st.n_groups))
    return GroupCovModel(SufficientStats(labels, st.features, st.n, st.mean, st.scatter),
                         group="g")


def stats_file_that_is_not(source, tmp):
    from groupcov.stats import SufficientStats

    path = tmp / "stats.npz"
    path.write_text("g,x\na,1\n")
    return SufficientStats.load(path)


# --- the table ------------------------------------------------------------------------------

ROWS = [
    # columns
    Row("missing feature column", reducing(base, features=("x", "height")), TABLES,
        Error(DataError, ("'height'", "not found", "available columns", FILE))),
    Row("missing group column", reducing(base, group="team"), TABLES,
        Error(DataError, ("'team'", "not found", "available columns"))),
    Row("duplicated column names",
        reducing(lambda: base().set_axis(["g", "x", "x"], axis=1), features=("x",)),
        ("pandas", "csv", "arrow"),
        Error(DataError, ("duplicated column names", "'x'", "rename", FILE))),
    Row("feature listed twice", reducing(base, features=("x", "y", "x")), ALL,
        Error(DataError, ("'x'", "more than once"))),
    Row("group column used as a feature", reducing(base, features=("x", "g")), TABLES,
        Error(DataError, ("'g'", "both the group column and a feature"))),
    Row("non-numeric feature", reducing(lambda: base(y=list("uvwxyz"))), TABLES,
        Error(DataError, ("'y'", "not numeric", "convert it to numbers", FILE))),
    Row("non-numeric feature array", reducing(lambda: base(y=list("uvwxyz"))), ("numpy",),
        Error(DataError, ("'y'", "not numeric", "e.g. ['u', 'v', 'w']"))),
    Row("numbers with one that is not",
        reducing(lambda: base(y=["0.5", "-1.009618183538736", "?", "0", "1", "3"])), TABLES,
        Error(DataError, ("'y'", "not numeric", "e.g. ['?']", FILE))),
    Row("duplicated column names, default features",
        reducing(lambda: base().set_axis(["g", "x", "x"], axis=1), features=None),
        ("pandas", "csv", "arrow"),
        Error(DataError, ("duplicated column names", "'x'", "rename", FILE))),
    Row("object array of numbers and None",
        reducing(lambda: base(y=pd.array([0.5, None, 2.5, 0.0, 1.0, 3.0], dtype=object))),
        ("numpy", "pandas"), Result(lambda st: np.testing.assert_array_equal(
            st.incomplete.mean, [[2.0, 0.0]]))),
    Row("datetime feature", reducing(lambda: base(y=pd.to_datetime(["2024-01-01"] * 6))),
        ("pandas", "csv", "parquet", "polars", "arrow", "sql", "dask"),
        Error(DataError, ("'y'", "not numeric", FILE))),
    # values
    Row("all-NaN column", reducing(lambda: base(y=np.nan)), ALL,
        Error(DataError, ("'y'", "no observed values", "all 6", "leave it out", FILE))),
    Row("+inf value", reducing(lambda: base(y=[0.5, np.inf, 2.5, 0.0, np.inf, 3.0])),
        (*TABLES, "numpy"),
        Error(DataError, ("'y'", "2 infinite value(s)", "rows 1, 4", "replace or remove",
                          FILE))),
    # DuckDB's type guess takes "inf" next to integers for text, and alone for a date
    Row("inf among integers in a file", reducing(lambda: base(y=["inf", 1, 2, 0, 1, 3])),
        ("csv",), Error(DataError, ("'y'", "1 infinite value(s)", "rows 0", FILE))),
    Row("inf in a one-row file", reducing(lambda: base().iloc[:1].assign(y="-inf")),
        ("csv",), Error(DataError, ("'y'", "1 infinite value(s)", "rows 0", FILE))),
    Row("-inf value", reducing(lambda: base(x=[1.0, 2.0, 3.0, -np.inf, 5.0, 7.0])), ALL,
        Error(DataError, ("'x'", "1 infinite value(s)", "rows 3", FILE))),
    Row("empty table", reducing(lambda: base().iloc[:0]), ALL,
        Error(DataError, ("has no rows",))),
    Row("constant feature", reducing(lambda: base(y=5.0)), ALL, Result(constant_feature)),
    Row("constant feature in a model", modelling(lambda: base(y=5.0)), ("pandas", "csv"),
        Error(DataError, ("['y']", "single value", "remove the constant column"))),
    Row("collinear features", reducing(lambda: base().assign(z=lambda d: 2 * d.x + 1),
                                       features=("x", "z")), ALL, Result(collinear)),
    Row("collinear features in a model",
        modelling(lambda: base().assign(z=lambda d: 2 * d.x + 1), features=("x", "z"),
                  means="unpooled", covariance="unpooled"),
        ("pandas", "parquet"),
        Error(DataError, ("features ['x', 'z'] are exact linear combinations",
                          "in groups 'a', 'b' of column 'g'", "leave out the feature(s)"))),
    Row("collinear features in a pooled model",
        modelling(lambda: base().assign(z=lambda d: 2 * d.x + 1), features=("x", "z"),
                  covariance="pooled"),
        ("pandas",),
        Error(DataError, ("within every group of column 'g'", "pooled covariance would be "
                          "singular"))),
    Row("feature constant in one group",
        modelling(lambda: base(y=[0.5, 2.0, 2.5, 2.0, 1.0, 2.0])), ("pandas", "csv"),
        Error(DataError, ("feature 'y' takes a single value in group 'b' (always 2) of column 'g'",
                          "covariance='hierarchical' cannot represent",
                          "or model one covariance for all groups (covariance='pooled')"))),
    Row("feature constant in one group, pooled covariance",
        modelling(lambda: base(y=[0.5, 2.0, 2.5, 2.0, 1.0, 2.0]), covariance="pooled"),
        ("pandas",), Result(lambda m: None)),
    Row("features collinear in one group",
        modelling(lambda: base(y=[0.5, 4.0, 2.5, 8.0, 1.0, 14.0])), ("pandas",),
        Error(DataError, ("features ['x', 'y'] are exact linear combinations of each other "
                          "in group 'b'",))),
    Row("a constant feature in a group of at most p rows is no error",
        modelling(lambda: base(g=["a", "b", "a", "c", "a", "c"], y=[0.5, 2, 2.5, 2, 1, 2])),
        ("pandas",), Result(lambda m: None)),
    # groups
    Row("single group under a hierarchical mode", modelling(lambda: base(g="only")),
        ("pandas", "parquet"),
        Error(DataError, ("at least two", "'only'", "'pooled' or 'unpooled'"))),
    Row("group with one row",
        reducing(lambda: pd.concat([base(), pd.DataFrame({"g": ["c"], "x": [9.0],
                                                          "y": [-4.0]})])),
        ALL, Result(one_row_group)),
    Row("group with one row in a hierarchical model",
        modelling(lambda: pd.concat([base(), pd.DataFrame({"g": ["c"], "x": [9.0],
                                                           "y": [-4.0]})])),
        ("pandas", "csv"), Result(one_row_group_model)),
    Row("int group labels", reducing(lambda: base(g=[10, 2, 10, 2, -3, -3])), ALL,
        Result(int_labels)),
    Row("None group labels", reducing(lambda: base(g=["a", None, "a", "b", None, "b"])),
        ALL, Error(DataError, ("group", "2 missing label(s)", "rows 1, 4",
                               "drop those rows or give them a group"))),
    Row("NaN group labels", reducing(lambda: base(g=[1.0, np.nan, 1.0, 2.0, np.nan, 2.0])),
        ALL, Error(DataError, ("2 missing label(s)", "rows 1, 4"))),
    Row("categorical group labels",
        reducing(lambda: base(g=pd.Categorical(["a", "b", "a", "b", "b", "b"],
                                               categories=["z", "b", "a"]))),
        ("pandas", "dask", "numpy", "sql"), Result(categorical_labels)),
    Row("interval group labels (pandas.qcut)",
        reducing(lambda: base().assign(g=lambda d: pd.qcut(d.x, 2))), ("pandas", "dask"),
        Error(DataError, ("group column 'g'", "type Interval", "ints, finite floats, bools "
                          "or strings", "astype(str)"))),
    Row("interval group labels in a model",
        modelling(lambda: base().assign(g=lambda d: pd.qcut(d.x, 2))), ("pandas",),
        Error(DataError, ("group column 'g'", "type Interval", "astype(str)"))),
    Row("timestamp group labels",
        reducing(lambda: base(g=pd.to_datetime(["2024-01-01", "2024-02-01"] * 3))), TABLES,
        Error(DataError, ("group column 'g'", "labels of type", "astype(str)", FILE))),
    Row("unicode group labels",
        reducing(lambda: base(g=["Zürich", "Ålesund", "Zürich", "東京", "東京", "Ålesund"],
                              x=[1.0, 4.0, 3.0, 5.0, 7.0, 4.0])),
        ALL, Result(unicode_labels)),
    # size
    Row("more than 50 features", modelling(WIDE60, features=NAMES60, means="pooled",
                                           covariance="pooled"), ("pandas",),
        Result(many_features, ManyFeaturesWarning, ("60 features", "1,830 parameters"))),
    Row("50 features do not warn", modelling(WIDE50, features=NAMES50, means="pooled",
                                             covariance="pooled"), ("pandas",),
        Result(fifty_features)),
    # files
    Row("file does not exist", missing_file, ("path",),
        Error(DataError, ("no_such_file.parquet", "does not exist", "check the path"))),
    Row("file in a missing folder", missing_file_str, ("path",),
        Error(DataError, ("rows.csv", "does not exist"))),
    Row("file that is not a table", binary_parquet, ("path",),
        Error(DataError, ("image.parquet", "could not be read as a PARQUET table"))),
    Row("text file without the columns", text_as_table, ("path",),
        Error(DataError, ("notes.txt", "could not be split into columns"))),
    Row("directory instead of a file", directory, ("path",),
        Error(DataError, ("folder", "is a directory", "glob pattern"))),
    Row("empty file", empty_file, ("path",),
        Error(DataError, ("empty.csv", "is empty (no header and no rows)"))),
    Row("glob matching no file", glob_without_files, ("path",),
        Error(DataError, ("no files match the pattern", "*.parquet", "check the pattern"))),
    Row("statistics with interval labels in a model", stats_with_interval_labels, ("stats",),
        Error(DataError, ("group column 'g'", "type Interval", "astype(str)"))),
    Row("SQL that fails", bad_sql, ("sql",),
        Error(DataError, ("SQL query failed", "no_such_table"))),
    Row("statistics file that is not one", stats_file_that_is_not, ("path",),
        Error(ValueError, ("stats.npz", "not a groupcov statistics file", "save"))),
]

CASES = [pytest.param(row, source, id=f"{row.id} [{source}]")
         for row in ROWS for source in row.sources]


@pytest.mark.parametrize(("row", "source"), CASES)
def test_bad_input(row: Row, source: str, tmp_path: Path):
    expect = row.expect
    if isinstance(expect, Error):
        with pytest.raises(expect.kind) as info:
            row.run(source, tmp_path)
        message = str(info.value)
        for part in expect.parts:
            if part == FILE:
                if source in FILES:
                    assert str(tmp_path / f"rows.{source}") in message, message
                continue
            assert part in message, message
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = row.run(source, tmp_path)
    ours = [w for w in caught
            if issubclass(w.category, (ManyFeaturesWarning, CollinearFeaturesWarning))]
    if expect.warning is None:
        assert not ours, [str(w.message) for w in ours]
    else:
        assert [w.category for w in ours] == [expect.warning], [str(w.message) for w in ours]
        for part in expect.warning_parts:
            assert part in str(ours[0].message)
        assert ours[0].filename == __file__  # blames the caller
    expect.check(result)


def test_constant_features_name_their_own_groups():
    """Each feature constant in some groups is listed with exactly those groups (and
    each group's value), however the features and groups interleave."""
    from groupcov.model.inputs import check_group_covariances

    df = pd.DataFrame({
        "g": ["a"] * 4 + ["b"] * 4 + ["c"] * 4,
        "x": [1.0, 2, 3, 5, 2, 1, 4, 3, 5, 1, 2, 7],
        "y": [3.0, 3, 3, 3, 4, 4, 4, 4, 1, 2, 0, 5],
        "z": [1.0, 0, 2, 5, 7, 7, 7, 7, 8, 8, 8, 8],
    })
    with pytest.raises(DataError) as err:
        check_group_covariances(reduce(df, "g", ["x", "y", "z"]), "unpooled", "g")
    message = str(err.value)
    assert "feature 'y' takes a single value in groups 'a' (always 3), 'b' (always 4);" in message
    assert "feature 'z' takes a single value in groups 'b' (always 7), 'c' (always 8)" in message
