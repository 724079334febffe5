"""Inputs, validation and statistics files: every problem is a DataError naming what to change."""

import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import groupcov
from groupcov import DataError, reduce
from groupcov.stats import SufficientStats


def _frame():
    return pd.DataFrame({
        "grp": ["a", "b", "a", "b", "a", "c"],
        "x": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        "y": [0.5, -1.0, 2.5, 0.0, 1.0, 7.0],
    })


def test_data_error_is_a_value_error():
    assert issubclass(DataError, ValueError)
    assert groupcov.DataError is DataError


def test_missing_feature_column_is_named():
    with pytest.raises(DataError, match="not found") as info:
        reduce(_frame(), "grp", ["x", "height"])
    assert "'height'" in str(info.value)
    assert "['height']" in str(info.value)


def test_missing_group_column_is_named():
    with pytest.raises(DataError, match="not found") as info:
        reduce(_frame(), "team", ["x"])
    assert "'team'" in str(info.value)


def test_duplicated_column_names():
    df = pd.DataFrame([["a", 1.0, 2.0], ["b", 3.0, 4.0]], columns=["grp", "x", "x"])
    with pytest.raises(DataError, match="duplicated column names") as info:
        reduce(df, "grp", ["x"])
    assert "'x'" in str(info.value)


def test_feature_listed_twice():
    with pytest.raises(DataError, match="more than once") as info:
        reduce(_frame(), "grp", ["x", "y", "x"])
    assert "'x'" in str(info.value)


def test_group_column_also_a_feature():
    with pytest.raises(DataError, match="both the group column and a feature") as info:
        reduce(_frame(), "grp", ["x", "grp"])
    assert "'grp'" in str(info.value)


@pytest.mark.parametrize(
    "column",
    [
        ["u", "v", "w", "u", "v", "w"],
        pd.array(["u", "v", "w", "u", "v", "w"], dtype="string"),
        pd.to_datetime(["2024-01-01"] * 6),
    ],
    ids=["object", "string", "datetime"],
)
def test_non_numeric_feature_is_named(column):
    df = _frame().assign(label=column)
    with pytest.raises(DataError, match="not numeric") as info:
        reduce(df, "grp", ["x", "label"])
    assert "'label'" in str(info.value)


@pytest.mark.parametrize("value", [np.inf, -np.inf])
def test_infinite_values_name_column_and_count(value):
    df = _frame()
    df.loc[[1, 4], "y"] = value
    with pytest.raises(DataError, match="infinite") as info:
        reduce(df, "grp", ["x", "y"])
    message = str(info.value)
    assert "'y'" in message
    assert "2 infinite value(s)" in message
    assert "rows 1, 4" in message


def test_mixed_signs_of_infinity_are_counted_together():
    df = _frame()
    df.loc[0, "x"] = np.inf
    df.loc[5, "x"] = -np.inf
    df.loc[3, "x"] = np.inf
    with pytest.raises(DataError, match="3 infinite value") as info:
        reduce(df, "grp", ["x", "y"])
    assert "'x'" in str(info.value)


@pytest.mark.parametrize(
    "column",
    [
        [1.0, np.nan, 3.0, 4.0, 5.0, 6.0],
        pd.array([1.0, None, 3.0, 4.0, 5.0, 6.0], dtype="Float64"),
        pd.array([1, None, 3, 4, 5, 6], dtype="Int64"),
    ],
    ids=["nan", "Float64-NA", "Int64-NA"],
)
def test_missing_feature_values_are_kept_as_cells(column):
    df = _frame().assign(z=column)
    st = reduce(df, "grp", ["x", "z"])
    assert st.n_rows == len(df)
    assert st.incomplete.n.tolist() == [1]
    assert st.incomplete.observed.tolist() == [[True, False]]
    g = st.incomplete.group[0]
    assert st.groups[g] == df["grp"].iloc[1]
    assert st.incomplete.mean[0].tolist() == [float(df["x"].iloc[1]), 0.0]


def test_all_missing_feature_is_named():
    df = _frame().assign(z=np.nan)
    with pytest.raises(DataError, match="'z' has no observed values"):
        reduce(df, "grp", ["x", "z"])


@pytest.mark.parametrize(
    "labels",
    [
        ["a", None, "a", "b", None, "b"],
        [1.0, np.nan, 1.0, 2.0, np.nan, 2.0],
        pd.Categorical(["a", None, "a", "b", None, "b"]),
    ],
    ids=["None", "NaN", "categorical"],
)
def test_missing_group_labels_name_column_and_count(labels):
    df = _frame().assign(grp=labels)
    with pytest.raises(DataError, match="missing label") as info:
        reduce(df, "grp", ["x"])
    message = str(info.value)
    assert "group column 'grp'" in message
    assert "2 missing label(s)" in message


def test_empty_frame():
    df = pd.DataFrame({"grp": pd.Series([], dtype=object), "x": pd.Series([], dtype=float)})
    with pytest.raises(DataError, match="no rows"):
        reduce(df, "grp", ["x"])


def test_empty_frame_without_columns():
    with pytest.raises(DataError, match="not found"):
        reduce(pd.DataFrame(), "grp", ["x"])


@pytest.mark.parametrize("features", [[], ()])
def test_empty_feature_list(features):
    with pytest.raises(DataError, match="no feature columns"):
        reduce(_frame(), "grp", features)


def test_single_feature_as_string_is_accepted():
    st = reduce(_frame(), "grp", "x")
    assert st.features == ("x",)


@pytest.mark.parametrize(
    "data",
    [
        [[1.0, 2.0], [3.0, 4.0]],
        {"grp": ["a", "b"], "x": [1.0, 2.0]},
    ],
    ids=["list", "dict"],
)
def test_unsupported_data_type(data):
    with pytest.raises(DataError, match="unsupported data type") as info:
        reduce(data, "grp", ["x"])
    assert type(data).__name__ in str(info.value)


def test_array_needs_labels_not_a_column_name():
    with pytest.raises(DataError, match="group= as one label per row") as info:
        reduce(np.ones((4, 2)), "grp", ["x", "y"])
    assert "'grp'" in str(info.value)


def test_int_group_labels():
    df = pd.DataFrame({"grp": [5, 1, 5, 2, 1, 5], "x": [1.0, 2.0, 3.0, 4.0, 6.0, 8.0]})
    st = reduce(df, "grp", ["x"])
    assert st.groups == (1, 2, 5)
    assert all(type(g) is int for g in st.groups)
    np.testing.assert_array_equal(st.n, [2, 1, 3])
    np.testing.assert_allclose(st.mean.ravel(), [4.0, 4.0, 4.0])
    np.testing.assert_allclose(st.scatter.ravel(), [8.0, 0.0, 26.0])


def test_categorical_group_labels_keep_category_order_and_drop_unused():
    labels = pd.Categorical(["a", "b", "a", "c", "b", "a"],
                            categories=["c", "unused", "a", "b", "also_unused"])
    df = pd.DataFrame({"grp": labels, "x": [1.0, 2.0, 3.0, 10.0, 4.0, 5.0]})
    with pytest.warns(groupcov.UnusedCategoriesWarning) as caught:
        st = reduce(df, "grp", ["x"])
    assert str(caught[0].message) == (
        "group column 'grp': 2 categories 'unused', 'also_unused' have no rows; they get no "
        "group and no estimate"
    )
    assert caught[0].filename == __file__  # blamed on the caller
    assert st.groups == ("c", "a", "b")
    np.testing.assert_array_equal(st.n, [1, 3, 2])
    np.testing.assert_allclose(st.mean.ravel(), [10.0, 3.0, 3.0])
    np.testing.assert_allclose(st.scatter.ravel(), [0.0, 8.0, 2.0])


def test_unicode_group_labels():
    labels = ["Zürich", "東京", "Zürich", "🙂", "東京", "Ålesund"]
    df = pd.DataFrame({"grp": labels, "x": [1.0, 2.0, 3.0, 4.0, 6.0, 8.0]})
    st = reduce(df, "grp", ["x"])
    assert st.groups == tuple(sorted(set(labels)))
    by_label = dict(zip(st.groups, st.mean.ravel(), strict=True))
    assert by_label == {"Zürich": 2.0, "東京": 4.0, "🙂": 4.0, "Ålesund": 8.0}


def test_unicode_feature_names():
    df = pd.DataFrame({"grp": ["a", "a", "b"], "größe": [1.0, 2.0, 3.0]})
    st = reduce(df, "grp", ["größe"])
    assert st.features == ("größe",)


def test_bool_and_int_features_are_numbers():
    df = pd.DataFrame({
        "grp": ["a", "a", "a", "b", "b"],
        "flag": [True, False, True, False, False],
        "count": np.array([1, 2, 6, 3, 5], dtype=np.int32),
        "big": np.array([10, 20, 30, 40, 50], dtype=np.int64),
    })
    st = reduce(df, "grp", ["flag", "count", "big"])
    assert st.mean.dtype == np.float64
    np.testing.assert_allclose(st.mean, [[2.0 / 3.0, 3.0, 20.0], [0.0, 4.0, 45.0]])
    np.testing.assert_allclose(st.scatter[1], [[0.0, 0.0, 0.0], [0.0, 2.0, 10.0],
                                               [0.0, 10.0, 50.0]])
    np.testing.assert_allclose(st.scatter[0, 0, 0], 2.0 / 3.0)


def test_feature_order_follows_features_argument():
    st = reduce(_frame(), "grp", ["y", "x"])
    assert st.features == ("y", "x")
    np.testing.assert_allclose(st.mean[0], [np.mean([0.5, 2.5, 1.0]), 3.0])


def test_index_of_frame_does_not_matter():
    df = _frame()
    shuffled = df.set_axis([10, 3, 7, 0, 99, -1])
    a, b = reduce(df, "grp", ["x", "y"]), reduce(shuffled, "grp", ["x", "y"])
    np.testing.assert_array_equal(a.scatter, b.scatter)
    np.testing.assert_array_equal(a.mean, b.mean)


# --- statistics files -----------------------------------------------------------------------


def _holey_frame():
    return pd.DataFrame({
        "grp": ["東京", "a", "a", "b", "b", "b", "a", "東京"],
        "x": [1.0, 2.0, np.nan, 4.0, 1e9 + 0.25, np.nan, 3.0, 2.5],
        "y": [0.5, np.nan, np.nan, 2.0, -1.0, 3.0, 1.0 / 3.0, 7.0],
    })


def _assert_identical(a, b):
    assert a.groups == b.groups
    assert [type(g) for g in a.groups] == [type(g) for g in b.groups]
    assert a.features == b.features
    for name in ("n", "mean", "scatter", "empty_rows"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
        assert getattr(a, name).dtype == getattr(b, name).dtype
    for name in ("group", "observed", "n", "mean", "scatter"):
        np.testing.assert_array_equal(getattr(a.incomplete, name), getattr(b.incomplete, name))


def test_save_load_round_trip_is_exact(tmp_path):
    st = reduce(_holey_frame(), "grp", ["x", "y"])
    assert st.incomplete.n_cells == 2 and st.n_empty_rows == 1
    st.save(tmp_path / "stats.npz")
    _assert_identical(SufficientStats.load(tmp_path / "stats.npz"), st)


@pytest.mark.parametrize(
    "labels",
    [(3, -1, 10**12), (0.5, 2.0), (False, True), ("a", "ü", "🙂"), (np.int64(4), np.int32(7)),
     (1, "one")],
    ids=["int", "float", "bool", "unicode", "numpy-int", "mixed"],
)
def test_save_keeps_label_types(tmp_path, labels):
    g = len(labels)
    st = SufficientStats(labels, ("x",), np.arange(1, g + 1), np.ones((g, 1)),
                         np.zeros((g, 1, 1)))
    st.save(tmp_path / "s.npz")
    back = SufficientStats.load(tmp_path / "s.npz")
    assert back.groups == tuple(v.item() if isinstance(v, np.generic) else v for v in labels)
    assert [type(v) for v in back.groups] == [
        type(v.item() if isinstance(v, np.generic) else v) for v in labels
    ]


@pytest.mark.parametrize("label", [("a", 1), pd.Timestamp("2024-01-01"), float("nan")])
def test_save_refuses_labels_it_cannot_restore(tmp_path, label):
    st = SufficientStats((label,), ("x",), np.array([1]), np.ones((1, 1)), np.zeros((1, 1, 1)))
    with pytest.raises(ValueError, match="cannot be saved") as info:
        st.save(tmp_path / "s.npz")
    assert "convert them" in str(info.value)


def test_saved_file_has_the_documented_layout(tmp_path):
    import json

    st = reduce(_holey_frame(), "grp", ["x", "y"])
    st.save(tmp_path / "stats")  # written exactly there, no suffix added
    assert (tmp_path / "stats").exists() and not (tmp_path / "stats.npz").exists()
    with np.load(tmp_path / "stats", allow_pickle=False) as f:
        assert sorted(f.files) == sorted([
            "metadata", "n", "mean", "scatter", "empty_rows", "incomplete_group",
            "incomplete_observed", "incomplete_n", "incomplete_mean", "incomplete_scatter",
        ])
        meta = json.loads(str(f["metadata"]))
        assert meta == {"format": "groupcov.SufficientStats", "version": 1,
                        "groups": ["a", "b", "東京"], "group_types": ["str"] * 3,
                        "features": ["x", "y"]}
        assert f["n"].dtype == np.int64 and f["incomplete_observed"].dtype == bool
        assert f["scatter"].shape == (3, 2, 2) and f["incomplete_scatter"].shape == (2, 2, 2)
        np.testing.assert_array_equal(f["empty_rows"], [1, 0, 0])


def test_load_refuses_newer_versions_and_other_files(tmp_path):
    st = reduce(_frame(), "grp", ["x"])
    st.save(tmp_path / "s.npz")
    with np.load(tmp_path / "s.npz") as f:
        arrays = dict(f)
    arrays["metadata"] = np.array(str(arrays["metadata"]).replace('"version": 1', '"version": 2'))
    np.savez(tmp_path / "new.npz", **arrays)
    with pytest.raises(ValueError, match=r"version 2.*upgrade groupcov"):
        SufficientStats.load(tmp_path / "new.npz")
    np.savez(tmp_path / "other.npz", n=np.ones(3))
    with pytest.raises(ValueError, match="not a groupcov statistics file"):
        SufficientStats.load(tmp_path / "other.npz")
    with pytest.raises(FileNotFoundError, match=r"missing\.npz"):
        SufficientStats.load(tmp_path / "missing.npz")


def test_loaded_statistics_merge_with_a_new_batch(tmp_path):
    df = _holey_frame()
    reduce(df.iloc[:5], "grp", ["x", "y"]).save(tmp_path / "old.npz")
    merged = SufficientStats.load(tmp_path / "old.npz").merge(reduce(df.iloc[5:], "grp",
                                                                     ["x", "y"]))
    whole = reduce(df, "grp", ["x", "y"])
    assert set(merged.groups) == set(whole.groups)
    order = [merged.groups.index(g) for g in whole.groups]
    np.testing.assert_array_equal(merged.n[order], whole.n)
    np.testing.assert_allclose(merged.mean[order], whole.mean, rtol=1e-15)
    np.testing.assert_allclose(merged.scatter[order], whole.scatter, rtol=1e-6)
    assert merged.incomplete.n.sum() == whole.incomplete.n.sum()
    assert merged.n_empty_rows == whole.n_empty_rows == 1


# --- kinds of input -------------------------------------------------------------------------


def test_array_with_labels_and_default_names():
    x = np.array([[1.0, 2.0], [3.0, 6.0], [5.0, 1.0]])
    st = reduce(x, group=np.array([7, 7, 3]))
    assert st.features == ("x0", "x1") and st.groups == (3, 7)
    np.testing.assert_allclose(st.mean, [[5.0, 1.0], [2.0, 4.0]])
    np.testing.assert_allclose(st.scatter[1], [[2.0, 4.0], [4.0, 8.0]])


@pytest.mark.parametrize(
    ("x", "labels", "features", "match"),
    [
        (np.ones(3), ["a", "b", "c"], None, "must be 2-D"),
        (np.ones((3, 2)), ["a", "b"], None, "2 labels but the array has 3 rows"),
        (np.ones((3, 2)), ["a", "b", "c"], ["u"], "1 names but the array has 2 columns"),
        (np.ones((3, 2)), np.ones((3, 1)), None, "1-D with one label per row"),
    ],
)
def test_array_shape_errors(x, labels, features, match):
    with pytest.raises(DataError, match=match):
        reduce(x, group=labels, features=features)


def test_array_with_categorical_labels_keeps_category_order():
    labels = pd.Categorical(["lo", "hi", "lo"], categories=["mid", "hi", "lo"])
    with pytest.warns(groupcov.UnusedCategoriesWarning, match="group=: category 'mid'"):
        st = reduce(np.array([[1.0], [2.0], [3.0]]), group=labels)
    assert st.groups == ("hi", "lo")


def test_group_must_name_a_column_for_tables():
    with pytest.raises(DataError, match="name of the group column"):
        reduce(_frame(), group=np.array(list("aabbcc")), features=["x"])


def test_con_only_for_duckdb_inputs():
    duckdb = pytest.importorskip("duckdb")
    with pytest.raises(DataError, match="con= is used only"):
        reduce(_frame(), "grp", ["x"], con=duckdb.connect())


def _kinds(df, tmp_path):
    """The same rows as every kind of input."""
    duckdb = pytest.importorskip("duckdb")
    pa = pytest.importorskip("pyarrow")
    pl = pytest.importorskip("polars")
    dd = pytest.importorskip("dask.dataframe")
    df.to_parquet(tmp_path / "t.parquet", index=False)
    df.to_csv(tmp_path / "t.csv", index=False)
    con = duckdb.connect()
    con.register("frame", df)
    return {
        "pandas": df,
        "parquet": tmp_path / "t.parquet",
        "csv": str(tmp_path / "t.csv"),
        "relation": con.sql("SELECT * FROM frame"),
        "arrow": pa.Table.from_pandas(df, preserve_index=False),
        "arrow-batch": pa.RecordBatch.from_pandas(df, preserve_index=False),
        "polars": pl.from_pandas(df),
        "polars-lazy": pl.from_pandas(df).lazy(),
        "dask": dd.from_pandas(df, npartitions=2),
    }


def test_default_features_are_the_numeric_columns(tmp_path):
    df = _frame().assign(note=list("uvwxyz"), flag=[True, False] * 3)
    expected = reduce(df, "grp", ["x", "y"])
    for kind, data in _kinds(df, tmp_path).items():
        with pytest.warns(groupcov.DefaultFeaturesWarning) as caught:
            st = reduce(data, "grp")
        assert st.features == ("x", "y"), kind
        np.testing.assert_allclose(st.scatter, expected.scatter, rtol=1e-12, err_msg=kind)
        message = str(caught[0].message)
        for part in ("left out of the default features", "'note' read as text",
                     "e.g. 'u'", "'flag' is boolean", "pass features=[...]"):
            assert part in message, (kind, message)
        assert caught[0].filename == __file__, kind  # blames the caller


def test_boolean_features_are_used_when_named(tmp_path):
    df = _frame().assign(flag=[True, True, False, True, False, False])
    expected = reduce(df.assign(flag=df["flag"].astype(float)), "grp", ["x", "flag"])
    for kind, data in _kinds(df, tmp_path).items():
        st = reduce(data, "grp", ["x", "flag"])
        assert st.features == ("x", "flag"), kind
        np.testing.assert_allclose(st.mean, expected.mean, rtol=1e-12, err_msg=kind)


NUMBERS_AS_TEXT = {
    "question mark": ("g,x,y\na,1.5,1\nb,?,2\na,3,3\nb,4,5\n", "'?'"),
    "thousands separator": ('g,x,y\na,"4,712.61",1\nb,3,2\na,5,3\nb,6,5\n', "'4,712.61'"),
    "decimal comma": ("g;x;y\na;1,5;1\nb;2,25;2\na;3,5;3\nb;4,0;5\n", "'1,5'"),
}


@pytest.mark.parametrize("case", list(NUMBERS_AS_TEXT))
def test_numbers_read_as_text_are_reported(case, tmp_path):
    text, example = NUMBERS_AS_TEXT[case]
    path = tmp_path / "rows.csv"
    path.write_text(text)
    with pytest.warns(groupcov.DefaultFeaturesWarning,
                      match=f"'x' read as text \\(VARCHAR, e.g. {re.escape(example)}\\)"):
        st = reduce(path, "g")
    assert st.features == ("y",)
    assert st.mean[:, 0].tolist() == [2.0, 3.5]
    with pytest.raises(DataError, match=f"'x' is not numeric .*e.g. \\[{re.escape(example)}"):
        reduce(path, "g", ["x", "y"])


@pytest.mark.parametrize("text", [
    "g,x,y\na,inf,1\nb,3,2\na,5,3\nb,6,5\n",  # DuckDB guesses text
    "g,x,y\na,-inf,1\n",  # a date
    "g,x,y\na,1,1\nb,Infinity,2\na,5,3\nb,6,5\n",
])
@pytest.mark.parametrize("features", [None, ["x", "y"]])
def test_infinity_in_a_file_is_an_infinite_value_as_pandas_reads_it(text, features, tmp_path):
    path = tmp_path / "rows.csv"
    path.write_text(text)
    with pytest.raises(DataError, match=r"feature column 'x' has 1 infinite value\(s\)") as read:
        reduce(path, "g", features)
    with pytest.raises(DataError, match=r"feature column 'x' has 1 infinite value\(s\)") as frame:
        reduce(pd.read_csv(path), "g", features)
    assert read.value.args[0].split("(rows ")[1] == frame.value.args[0].split("(rows ")[1]


def test_text_column_of_a_frame_is_reported_with_a_value_that_is_not_a_number():
    df = pd.DataFrame({"g": list("abab"), "x": ["-1.009618183538736", "?", "3", "4"],
                       "y": [1.0, 2.0, 3.0, 5.0]})
    with pytest.warns(groupcov.DefaultFeaturesWarning, match=r"'x' read as text \(.*'\?'\)"):
        assert reduce(df, "g").features == ("y",)
    with pytest.raises(DataError, match=r"e\.g\. \['\?'\]"):
        reduce(df, "g", ["x"])


def _indexed(tmp_path):
    df = _frame().assign(flag=[True, False] * 3)
    df.to_csv(tmp_path / "indexed.csv")  # the index as an unnamed leading column
    return df, tmp_path / "indexed.csv"


def test_unnamed_row_index_is_left_out(tmp_path):
    dd = pytest.importorskip("dask.dataframe")
    df, path = _indexed(tmp_path)
    expected = reduce(df, "grp", ["x", "y"])
    inputs = {"csv": (path, "'column0'"), "pandas": (pd.read_csv(path), "'Unnamed: 0'"),
              "dask": (dd.read_csv(path), "'Unnamed: 0'")}
    for kind, (data, name) in inputs.items():
        with pytest.warns(groupcov.DefaultFeaturesWarning) as caught:
            st = reduce(data, "grp")
        assert st.features == ("x", "y"), kind
        np.testing.assert_allclose(st.scatter, expected.scatter, rtol=1e-12)
        message = str(caught[0].message)
        assert f"{name} is an unnamed row index" in message, message
        assert "'flag' is boolean" in message and "pass features=" in message, message


def test_unnamed_index_of_a_filtered_or_sorted_frame_is_left_out(tmp_path):
    """``to_csv`` of a filtered or sorted frame writes its index (distinct integers,
    not 0..n-1) under an empty header: every route leaves it out, with a warning."""
    dd = pytest.importorskip("dask.dataframe")
    frame = _frame()
    for name, df in {"filtered": frame.iloc[::2], "sorted": frame.sort_values("x")}.items():
        path = tmp_path / f"{name}.csv"
        df.to_csv(path)
        inputs = {"csv": (path, "'column0'"), "pandas": (pd.read_csv(path), "'Unnamed: 0'"),
                  "dask": (dd.read_csv(path), "'Unnamed: 0'")}
        for kind, (data, column) in inputs.items():
            with pytest.warns(groupcov.DefaultFeaturesWarning) as caught:
                assert reduce(data, "grp").features == ("x", "y"), (name, kind)
            assert f"{column} is an unnamed row index" in str(caught[0].message)


def test_unnamed_column_with_repeated_values_stays_a_feature(tmp_path):
    """An unnamed leading column that repeats a value is data, not an index; nor is a
    column0 of a file without any header."""
    df = _frame()
    df.index = [3, 3, 1, 2, 5, 8]
    df.to_csv(tmp_path / "repeats.csv")
    inputs = {"csv": (tmp_path / "repeats.csv", "column0"),
              "pandas": (pd.read_csv(tmp_path / "repeats.csv"), "Unnamed: 0")}
    for data, name in inputs.values():
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert reduce(data, "grp").features == (name, "x", "y")
    df[["x", "grp", "y"]].iloc[::2].reset_index(drop=True).assign(x=[4, 9, 7]).to_csv(
        tmp_path / "bare.csv", header=False, index=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert reduce(tmp_path / "bare.csv", "column1").features == ("column0", "column2")


def test_columns_differing_in_case_keep_their_names(tmp_path):
    pa = pytest.importorskip("pyarrow")
    df = pd.DataFrame({"g": list("abab"), "X": [1.0, 2.0, 4.0, 8.0],
                       "x": [10.0, 20.0, 30.0, 50.0]})
    df.to_csv(tmp_path / "case.csv", index=False)
    df.to_parquet(tmp_path / "case.parquet", index=False)
    inputs = [tmp_path / "case.csv", tmp_path / "case.parquet",
              pa.Table.from_pandas(df, preserve_index=False), df]
    for data in inputs:
        st = reduce(data, "g")
        assert st.features == ("X", "x")
        assert st.mean.tolist() == [[2.5, 20.0], [5.0, 35.0]]
        st = reduce(data, "g", ["x"])
        assert st.features == ("x",) and st.mean.ravel().tolist() == [20.0, 35.0]


def test_empty_csv_files(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match=r"'.*empty\.csv' is empty \(no header and no rows\)"):
        reduce(tmp_path / "empty.csv", "g")
    (tmp_path / "header.csv").write_text("g,x\n")
    for features in (None, ["x"]):
        with pytest.raises(DataError, match=r"header\.csv' has no rows"):
            reduce(tmp_path / "header.csv", "g", features)


def test_glob_matching_no_file(tmp_path):
    pattern = str(tmp_path / "nothing" / "*.parquet")
    with pytest.raises(DataError, match=r"no files match the pattern .*nothing.*check the pattern"):
        reduce(pattern, "g")


def test_ordered_categorical_in_parquet_keeps_its_order(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    dd = pytest.importorskip("dask.dataframe")
    labels = pd.Categorical(list("abcabc"), categories=list("cab"), ordered=True)
    df = pd.DataFrame({"g": labels, "x": [1.0, 2.0, 3.0, 4.0, 5.0, 7.0]})
    df.to_parquet(tmp_path / "ordered.parquet", index=False)
    df.iloc[:3].to_parquet(tmp_path / "part-0.parquet", index=False)
    df.iloc[3:].to_parquet(tmp_path / "part-1.parquet", index=False)
    path = tmp_path / "ordered.parquet"
    inputs = {"path": path, "glob": str(tmp_path / "part-*.parquet"),
              "pandas": pd.read_parquet(path), "arrow": pq.read_table(path),
              "dask": dd.read_parquet(path)}
    for kind, data in inputs.items():
        st = reduce(data, "g", ["x"])
        assert st.groups == ("c", "a", "b"), kind
        assert st.mean.ravel().tolist() == [5.0, 2.5, 3.5], kind
    assert pa.types.is_dictionary(pq.read_schema(path).field("g").type)
    unordered = df.assign(g=labels.as_unordered())
    unordered.to_parquet(tmp_path / "unordered.parquet", index=False)
    # unordered: the categories' order still, as pandas.read_parquet gives it
    for data in (tmp_path / "unordered.parquet", pd.read_parquet(tmp_path / "unordered.parquet")):
        assert reduce(data, "g", ["x"]).groups == ("c", "a", "b")


def test_glob_of_parquet_files_and_compressed_csv(tmp_path):
    df = _holey_frame()
    df.iloc[:4].to_parquet(tmp_path / "part-0.parquet", index=False)
    df.iloc[4:].to_parquet(tmp_path / "part-1.parquet", index=False)
    df.to_csv(tmp_path / "rows.csv.gz", index=False, compression="gzip")
    df.to_parquet(tmp_path / "rows.data", index=False)  # unknown suffix: sniffed
    whole = reduce(df, "grp", ["x", "y"])
    for data in (str(tmp_path / "part-*.parquet"), tmp_path / "rows.csv.gz",
                 tmp_path / "rows.data"):
        st = reduce(data, "grp", ["x", "y"])
        assert st.groups == whole.groups
        np.testing.assert_array_equal(st.incomplete.n, whole.incomplete.n)
        np.testing.assert_allclose(st.scatter, whole.scatter, rtol=1e-12, atol=1e-12)


def test_sql_without_a_connection_reads_files(tmp_path):
    df = _frame()
    df.to_parquet(tmp_path / "t.parquet", index=False)
    st = reduce(f"SELECT * FROM '{tmp_path / 't.parquet'}' WHERE x > 1", "grp", ["x"])
    assert st.n.tolist() == [2, 2, 1]


def test_arrow_dataset_is_scanned_by_duckdb(tmp_path):
    ds = pytest.importorskip("pyarrow.dataset")
    df = _frame()
    df.to_parquet(tmp_path / "t.parquet", index=False)
    st = reduce(ds.dataset(tmp_path / "t.parquet"), "grp", ["x", "y"])
    np.testing.assert_allclose(st.scatter, reduce(df, "grp", ["x", "y"]).scatter, rtol=1e-12)


def test_input_kind_names():
    from groupcov.data import input_kind

    assert input_kind(SufficientStats(("a",), ("x",), np.array([1]), np.ones((1, 1)),
                                      np.zeros((1, 1, 1)))) == "stats"
    assert input_kind("WITH t AS (SELECT 1) SELECT * FROM t") == "sql"
    assert input_kind("selected_rows.csv") == "path"


# --- warnings about the features ------------------------------------------------------------


def test_many_features_warning_names_count_and_cost():
    from groupcov.data import ManyFeaturesWarning
    from groupcov.data.validate import warn_many_features

    with pytest.warns(ManyFeaturesWarning, match=r"51 features: .* 1,326 parameters"):
        warn_many_features(51)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_many_features(50)


def test_collinear_features_are_named():
    from groupcov.data.validate import collinear_features

    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 4))
    x[:, 2] = x[:, 0] - 3.0 * x[:, 3]  # columns 0, 2, 3 dependent; 1 free
    c = x - x.mean(axis=0)
    assert collinear_features(c.T @ c, ["a", "b", "c", "d"]) == ["a", "c", "d"]
    x[:, 2] += 1e-4 * rng.normal(size=40)  # nearly but not exactly dependent
    c = x - x.mean(axis=0)
    assert collinear_features(c.T @ c, ["a", "b", "c", "d"]) == []


# --- group labels in saved results ------------------------------------------------------------


def _result(groups):
    """A fit-shaped result with a few fixed draws (no sampling)."""
    import xarray as xr

    from groupcov.result import GroupCovResult

    g, feats = len(groups), ["x", "y"]
    mu = np.arange(g * 2, dtype=float).reshape(1, 1, g, 2) + np.zeros((1, 3, g, 2))
    cov = np.broadcast_to(np.eye(2), (1, 3, g, 2, 2)).copy()
    coords = {"chain": [0], "draw": np.arange(3), "group": list(groups),
              "feature": feats, "feature_": feats}
    post = xr.Dataset({"mu": (("chain", "draw", "group", "feature"), mu),
                       "cov": (("chain", "draw", "group", "feature", "feature_"), cov)},
                      coords=coords)
    stats = SufficientStats(tuple(groups), tuple(feats), np.full(g, 4), np.zeros((g, 2)),
                            np.repeat(np.eye(2)[None], g, 0))
    return GroupCovResult.from_posterior({"posterior": post}, stats, {"means": "unpooled"})


def test_result_round_trips_mixed_labels_exactly(tmp_path):
    from groupcov.result import GroupCovResult

    labels = ["a", 2, 3.5, True]
    back = GroupCovResult.load(_result(labels).save(tmp_path / "fit.nc"))
    assert back.groups == labels
    assert [type(v) for v in back.groups] == [str, int, float, bool]
    assert back.stats.groups == tuple(labels)
    assert back.mean(2).tolist() == [2.0, 3.0]


def test_loaded_labels_are_plain_python_values(tmp_path):
    from groupcov.result import GroupCovResult

    back = GroupCovResult.load(_result(["setosa", "versicolor"]).save(tmp_path))
    assert back.groups == ["setosa", "versicolor"]
    assert type(back.groups[0]) is str and type(back.stats.groups[0]) is str
    with pytest.raises(KeyError, match=r"the fit's groups are setosa, versicolor"):
        back.mean("virginica")
    ints = GroupCovResult.load(_result([1, 2]).save(tmp_path / "ints.nc"))
    assert ints.groups == [1, 2] and type(ints.groups[0]) is int


def test_result_save_refuses_labels_and_leaves_no_file(tmp_path):
    result = _result([pd.Interval(0, 1), pd.Interval(1, 2)])
    with pytest.raises(ValueError, match="ints, finite floats, bools or strings"):
        result.save(tmp_path / "fit.nc")
    assert list(tmp_path.iterdir()) == []


def test_result_save_failing_midway_keeps_the_old_file(tmp_path, monkeypatch):
    import arviz as az

    path = _result(["a", "b"]).save(tmp_path / "fit.nc")
    before = path.read_bytes()

    def broken(self, filename, *args, **kwargs):
        Path(filename).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(az.InferenceData, "to_netcdf", broken)
    with pytest.raises(OSError, match="disk full"):
        _result(["c", "d"]).save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["fit.nc"]


def test_reduce_refuses_labels_that_cannot_be_saved(tmp_path):
    df = _frame().assign(grp=pd.to_datetime(["2024-01-01", "2024-02-01"] * 3))
    with pytest.raises(DataError, match=r"group column 'grp' has labels of type Timestamp.*"
                                        r"astype\(str\)"):
        reduce(df, "grp", ["x"])
    df = _frame().assign(grp=[1.0, np.inf, 1.0, 2.0, np.inf, 2.0])
    with pytest.raises(DataError, match=r"type float.*finite floats"):
        reduce(df, "grp", ["x"])


def test_constant_feature_is_a_data_error():
    st = reduce(_frame().assign(y=5.0), "grp", ["x", "y"])
    with pytest.raises(DataError, match=r"\['y'\] take a single value"):
        st.standardization()
    with pytest.raises(ValueError):  # still a ValueError
        st.standardization()
