"""Messages about bad input name the column, the offending values and the rows as users
see them: text among numbers, numbers stored as text, complex numbers, index labels,
and ``--features`` names that contain commas."""

from __future__ import annotations

import contextlib
import io
import warnings

import numpy as np
import pandas as pd
import pytest

from groupcov import cli, reduce
from groupcov.data import DataError, DefaultFeaturesWarning
from test_bad_input import base


def error_message(data, group="g", features=("x",)) -> str:
    with pytest.raises(DataError) as info:
        reduce(data, group, None if features is None else list(features))
    return str(info.value)


def no_warnings(call):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return call()


# --- values that are not numbers ---------------------------------------------------------


def test_text_column_of_numbers_says_numbers_stored_as_text():
    message = error_message(base().assign(x=lambda d: d.x.astype(str)))
    for part in ("feature column 'x'", "not numeric", "numbers stored as text", "e.g. ['1.0'",
                 "pd.to_numeric", "leave it out of features="):
        assert part in message, message


def test_object_column_shows_the_value_stored_as_text_not_a_number():
    message = error_message(base(x=pd.Series([1, 2, None, 4, "5", 7], dtype=object)))
    assert "feature column 'x'" in message, message
    assert "e.g. ['5']" in message, message
    assert "numbers stored as text" in message and "pd.to_numeric" in message, message


def test_object_column_with_text_shows_the_text_first():
    message = error_message(base(x=pd.Series([1, 2, "5", 4, "?", 7], dtype=object)))
    assert "feature column 'x' is not numeric" in message, message
    assert "e.g. ['?']" in message, message
    assert "stored as text" not in message, message


def test_numbers_with_pd_na_in_an_object_column_are_numbers_with_a_missing_value():
    column = pd.array([1, 2, None, 4, 5, 7], dtype="Int64").astype(object)
    assert column[2] is pd.NA
    st = no_warnings(lambda: reduce(base(x=column), "g", ["x", "y"]))
    expected = reduce(base(x=[1.0, 2.0, np.nan, 4.0, 5.0, 7.0]), "g", ["x", "y"])
    np.testing.assert_array_equal(st.incomplete.mean, expected.incomplete.mean)
    np.testing.assert_array_equal(st.n, expected.n)


def test_numbers_with_pd_na_in_an_object_column_are_default_features():
    column = pd.array([1, 2, None, 4, 5, 7], dtype="Int64").astype(object)
    st = no_warnings(lambda: reduce(base(x=column), "g"))
    assert st.features == ("x", "y")


def test_numbers_with_pd_na_in_an_object_array_are_numbers():
    x = np.array([[1, 0.5], [2, pd.NA], [3, 2.5], [4, 0.0]], dtype=object)
    st = no_warnings(lambda: reduce(x, group=["a", "b", "a", "b"], features=["u", "v"]))
    assert st.features == ("u", "v") and st.n_rows == 4
    np.testing.assert_array_equal(st.incomplete.mean, [[2.0, 0.0]])


# --- rows as users see them ----------------------------------------------------------------


def test_infinite_value_is_named_by_its_index_label():
    df = base(x=[1.0, 2.0, np.inf, 4.0, 5.0, 7.0]).set_axis(range(10, 16))
    message = error_message(df)
    assert "feature column 'x' has 1 infinite value(s)" in message, message
    assert "rows with index labels 12" in message, message
    assert "rows 2" not in message, message


def test_infinite_values_are_named_by_text_index_labels():
    df = base(x=[1.0, -np.inf, 3.0, 4.0, np.inf, 7.0]).set_axis(list("pqrstu"))
    message = error_message(df)
    assert "2 infinite value(s) (rows with index labels 'q', 't')" in message, message


def test_infinite_value_of_a_filtered_frame_is_named_by_its_index_label():
    df = base(x=[1.0, 2.0, 3.0, 4.0, np.inf, 7.0])
    message = error_message(df[df.g == "a"])  # labels 0, 2, 4: the inf is at position 2
    assert "rows with index labels 4" in message, message


def test_missing_group_labels_are_named_by_index_label():
    df = base(g=["a", None, "a", "b", None, "b"]).set_axis(range(10, 16))
    message = error_message(df)
    assert "group column 'g' has 2 missing label(s)" in message, message
    assert "rows with index labels 11, 14" in message, message


def test_rows_of_a_default_index_are_positions_and_labels():
    message = error_message(base(x=[1.0, np.inf, 3.0, 4.0, np.inf, 7.0]))
    assert "(rows 1, 4, counting from 0)" in message, message


# --- complex numbers -----------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [complex, object], ids=["complex128", "object"])
def test_complex_feature_is_an_error_naming_the_column(dtype):
    column = pd.Series([1 + 1j, 2, 3, 4, 5, 6], dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no ComplexWarning: nothing is cast
        message = error_message(base(c=column), features=("x", "c"))
    for part in ("feature column 'c'", "complex numbers", "(1+1j)", "real numbers",
                 "leave it out of features="):
        assert part in message, message


@pytest.mark.parametrize("dtype, column", [(complex, "u"), (object, "v")])
def test_complex_array_column_is_an_error_naming_the_column(dtype, column):
    x = np.array([[1.0, 1 + 2j], [2.0, 0j], [3.0, 1j], [4.0, 2j]], dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(DataError, match=f"feature column '{column}' holds complex"):
            reduce(x, group=["a", "b", "a", "b"], features=["u", "v"])


def test_complex_column_is_left_out_of_the_default_features():
    df = base(c=[1 + 1j] * 6)
    with warnings.catch_warnings():
        warnings.simplefilter("error", np.exceptions.ComplexWarning)
        with pytest.warns(DefaultFeaturesWarning, match=r"'c' has type complex128"):
            st = reduce(df, "g")
    assert st.features == ("x", "y")


# --- --features names with commas ----------------------------------------------------------


@pytest.fixture
def comma_file(tmp_path):
    path = tmp_path / "f.csv"
    base().rename(columns={"x": "len, cm"}).assign(z=1.0).to_csv(path, index=False)
    return path


def run_cli(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main([str(a) for a in argv])
    return code, err.getvalue()


@pytest.fixture
def seen_features(monkeypatch):
    """``groupcov fit`` and ``compare`` stop after reducing: the features they asked for."""
    seen = []

    def fake_reduce_file(path, group, features):
        seen.append(features)
        raise DataError("stopped after reading --features")

    monkeypatch.setattr(cli, "reduce_file", fake_reduce_file)
    return seen


@pytest.mark.parametrize("command", ["fit", "compare"])
def test_features_argument_that_is_a_column_name_is_kept_whole(
        comma_file, seen_features, tmp_path, command):
    out = ["--out", tmp_path / "out"] if command == "fit" else []
    code, err = run_cli([command, comma_file, "--group", "g", "--features", "len, cm", "y",
                         *out])
    assert code == 2 and "stopped after reading --features" in err, err
    assert seen_features == [["len, cm", "y"]]


def test_features_arguments_that_are_not_columns_are_split_on_commas(
        comma_file, seen_features, tmp_path):
    code, err = run_cli(["fit", comma_file, "--group", "g", "--features", "y,z",
                         "--out", tmp_path / "out"])
    assert code == 2, err
    assert seen_features == [["y", "z"]]


def test_a_column_name_with_a_comma_reduces(comma_file):
    features = cli._feature_names(comma_file, ["len, cm", "y,z"])
    assert features == ["len, cm", "y", "z"]
    st = cli.reduce_file(comma_file, "g", features)
    assert st.features == ("len, cm", "y", "z")
    np.testing.assert_allclose(st.mean[:, 0], [3.0, 13.0 / 3.0])


def test_rows_to_classify_show_a_value_that_is_not_a_number():
    data = pd.DataFrame({"x": ["1.5", "2", "?", "4"], "y": [1.0, 2.0, 3.0, 4.0]})
    with pytest.raises(cli.InputError) as info:
        cli._check_numeric(data, ["x", "y"], "new.csv")
    message = str(info.value)
    assert "column 'x' of 'new.csv' is not numeric (e.g. '?')" in message, message


def test_labels_of_different_types_equal_as_values_are_refused():
    """1, 1.0 and True in one object column would silently be one group."""
    rng = np.random.default_rng(5)
    labels = pd.Series([1, 1.0, True, "a", 2, 2] * 5, dtype=object)
    df = pd.DataFrame({"g": labels, "x": rng.normal(size=30)})
    msg = error_message(df)
    assert "group column 'g'" in msg
    assert "1 (int), 1.0 (float), True (bool)" in msg
    assert "astype(str)" in msg
    # distinct values of mixed types, and NumPy with Python integers, stay as they are
    ok = pd.DataFrame({"g": pd.Series([1, "1.5", np.int64(1), "a"] * 5, dtype=object),
                       "x": rng.normal(size=20)})
    stats = reduce(ok, "g", ["x"])
    assert stats.groups == (1, "1.5", "a")
    assert stats.n.tolist() == [10, 5, 5]


@pytest.mark.parametrize("route", ["pandas", "arrow", "polars"])
def test_unhashable_labels_are_named(route):
    """Struct (dict) labels get the label-type message, not a TypeError."""
    rng = np.random.default_rng(6)
    df = pd.DataFrame({"g": [{"a": 1, "b": 2}, {"a": 1, "b": 3}] * 5,
                       "x": rng.normal(size=10)})
    if route == "arrow":
        pa = pytest.importorskip("pyarrow")
        data = pa.Table.from_pandas(df)
    elif route == "polars":
        pl = pytest.importorskip("polars")
        data = pl.from_pandas(df)
    else:
        data = df
    msg = error_message(data)
    assert "group column 'g' has labels of type dict" in msg


def test_categorical_feature_message_shows_categories():
    rng = np.random.default_rng(7)
    df = pd.DataFrame({"g": ["a", "b"] * 10, "x": pd.Categorical(rng.integers(0, 5, 20)),
                       "y": pd.Categorical(["lo", "hi"] * 10)})
    msg = error_message(df, features=("x",))
    assert "feature column 'x' is categorical" in msg and "[0, 1, 2]" in msg
    assert "astype(float)" in msg
    msg = error_message(df, features=("y",))
    assert "['hi', 'lo']" in msg and "cat.codes" in msg


def test_file_and_dask_rows_say_they_count_from_zero(tmp_path):
    """Positions in a file or a Dask table are not line numbers: the message says so."""
    df = base(x=[1.0, np.inf, 3.0, 4.0, np.inf, 7.0])
    path = tmp_path / "t.csv"
    df.to_csv(path, index=False)
    assert "(rows 1, 4, counting from 0)" in error_message(str(path))
    dd = pytest.importorskip("dask.dataframe")
    assert "(rows 1, 4, counting from 0)" in error_message(dd.from_pandas(df, npartitions=2))
