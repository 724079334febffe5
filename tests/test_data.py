"""Validation of input tables: every problem is a DataError naming what to change."""

import numpy as np
import pandas as pd
import pytest

import groupcov
from groupcov import DataError, reduce


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
    st = reduce(df, "grp", ["x"])
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
