"""Tables as files and Arrow tables: what a file's name and its metadata mean."""

import warnings

import numpy as np
import pandas as pd
import pytest

import groupcov
from groupcov import reduce
from groupcov.data import input_kind
from groupcov.data.duckdb_engine import read_rows


def _frame(n=40, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"g": rng.choice(["a", "b"], n), "x": rng.normal(size=n),
                         "y": rng.normal(size=n)})


@pytest.mark.parametrize("name", ["table 1.csv", "with outliers.csv", "select me.csv"])
def test_a_file_named_like_a_query_is_read_as_a_file(tmp_path, monkeypatch, name):
    df = _frame()
    monkeypatch.chdir(tmp_path)
    df.to_csv(name, index=False)
    assert input_kind(name) == "path"
    st = reduce(name, "g", ["x"])
    np.testing.assert_allclose(st.mean, reduce(df, "g", ["x"]).mean, rtol=1e-12)
    # the same text naming no file is still a query
    assert input_kind("with t as (select 1) select * from t") == "sql"


def test_pandas_index_stored_in_parquet_or_arrow_is_not_a_feature(tmp_path):
    """``to_parquet`` / ``Table.from_pandas`` store a filtered or sorted frame's index
    as a column (``__index_level_0__``); like ``pandas.read_parquet``, groupcov does not
    take it for data."""
    pa = pytest.importorskip("pyarrow")
    df = _frame()
    kept = df[df.x > -0.5].sort_values("y")
    kept.to_parquet(tmp_path / "kept.parquet")
    expected = reduce(kept.reset_index(drop=True), "g")
    for data in (tmp_path / "kept.parquet", pa.Table.from_pandas(kept)):
        with pytest.warns(groupcov.DefaultFeaturesWarning) as caught:
            st = reduce(data, "g")
        assert st.features == ("x", "y")
        np.testing.assert_allclose(st.scatter, expected.scatter, rtol=1e-12)
        assert ("'__index_level_0__' is the row index pandas stored with the table"
                in str(caught[0].message))
    # a named index is stored the same way; asked for by name, it is a feature
    named = kept.rename_axis("row_id")
    named.to_parquet(tmp_path / "named.parquet")
    with pytest.warns(groupcov.DefaultFeaturesWarning, match="'row_id' is the row index"):
        assert reduce(tmp_path / "named.parquet", "g").features == ("x", "y")
    st = reduce(tmp_path / "named.parquet", "g", ["x", "row_id"])
    np.testing.assert_allclose(st.mean[:, 1], kept.groupby("g").apply(
        lambda d: d.index.to_numpy().mean(), include_groups=False).to_numpy(), rtol=1e-12)
    # without a stored index nothing is left out
    df.to_parquet(tmp_path / "plain.parquet")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert reduce(tmp_path / "plain.parquet", "g").features == ("x", "y")


def _late_csv(path, tail: str, n: int = 25_000, y: str = "{k}") -> None:
    """A CSV whose first ``n`` rows (more than DuckDB's type sample) are numbers and
    whose last row is ``tail``."""
    lines = ["g,x,y"] + [f"{'ab'[k % 2]},{k * 0.5},{y.format(k=k % 7)}" for k in range(n)]
    path.write_text("\n".join([*lines, tail]) + "\n")


def test_csv_text_after_the_type_sample_names_its_column(tmp_path):
    path = tmp_path / "late.csv"
    _late_csv(path, "a,?,2")
    with pytest.raises(groupcov.DataError, match=r"feature column 'x' is not numeric "
                                                 r"\(dtype VARCHAR, e\.g\. \['\?'\]\)"):
        reduce(path, "g", ["x", "y"])
    with pytest.warns(groupcov.DefaultFeaturesWarning, match=r"'x' read as text"):
        assert reduce(path, "g").features == ("y",)
    # a text group label after the sample is a label like the others
    _late_csv(path, "c,1.0,2")
    path.write_text(path.read_text().replace("a,", "1,").replace("b,", "2,"))
    st = reduce(path, "g", ["x"])
    assert st.groups == ("1", "2", "c") and st.n.tolist() == [12_500, 12_500, 1]


def test_csv_column_empty_in_the_type_sample_is_numeric(tmp_path):
    """Numbers after 25,000 empty cells: the same statistics as pandas' reading."""
    path = tmp_path / "empty_first.csv"
    _late_csv(path, "a,3.0,1.5", y="")
    st = reduce(path, "g", ["x", "y"])
    expected = reduce(pd.read_csv(path), "g", ["x", "y"])
    np.testing.assert_allclose(st.mean, expected.mean, rtol=1e-12)
    assert np.isnan(st.mean).sum() == np.isnan(expected.mean).sum()
    count = st.available()[0]
    assert count[:, 1].tolist() == [1, 0]


def test_csv_decimals_after_an_integer_type_sample_are_kept(tmp_path):
    """DuckDB casts 1.6 to an integer column as 2: integer guesses are read as DOUBLE."""
    path = tmp_path / "late_decimals.csv"
    _late_csv(path, "a,3.0,1.6")  # y: integers 0..6 in the sample, then 1.6
    st = reduce(path, "g", ["x", "y"])
    expected = reduce(pd.read_csv(path), "g", ["x", "y"])
    np.testing.assert_allclose(st.mean, expected.mean, rtol=1e-12)
    scale = np.abs(expected.scatter).max()
    np.testing.assert_allclose(st.scatter, expected.scatter, rtol=1e-10, atol=1e-12 * scale)
    assert reduce(path, "g").features == ("x", "y")
    rows = read_rows(str(path))
    pd.testing.assert_frame_equal(rows, pd.read_csv(path), check_dtype=False)
    assert rows["y"].iloc[-1] == 1.6


def test_csv_integer_group_labels_with_later_decimals_are_numbers(tmp_path):
    path = tmp_path / "late_labels.csv"
    lines = ["g,x"] + [f"{1 + k % 2},{k % 5}" for k in range(25_000)] + ["1.2,3", "2.5,4"]
    path.write_text("\n".join(lines) + "\n")
    st = reduce(path, "g", ["x"])
    assert st.groups == (1.0, 1.2, 2.0, 2.5)
    assert st.n.tolist() == [12_500, 1, 12_500, 1]
    # integers stay integers, exactly, however large
    path.write_text("g,x\n" + "".join(f"{2**62 + k % 3},{k}\n" for k in range(30)))
    st = reduce(path, "g", ["x"])
    assert st.groups == (2**62, 2**62 + 1, 2**62 + 2)
    assert read_rows(str(path))["g"].tolist()[:3] == [2**62, 2**62 + 1, 2**62 + 2]


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (["1", "1.0", "2"], r"labels '1(\.0)?', '1(\.0)?' that differ as text but are the same "
                            r"number"),
        (["1e3", "1000", "2"], r"labels '(1e3|1000)', '(1e3|1000)' that differ as text"),
        (["TRUE", "true", "False"], r"labels 'TRUE', 'true' that differ as text but are the "
                                    r"same boolean"),
    ],
)
def test_csv_group_labels_equal_only_as_values_are_refused(tmp_path, labels, message):
    path = tmp_path / "labels.csv"
    path.write_text("g,x\n" + "".join(f"{labels[k % 3]},{k}\n" for k in range(30)))
    with pytest.raises(groupcov.DataError, match=message):
        reduce(path, "g", ["x"])


def test_csv_group_labels_typed_as_duckdb_guesses(tmp_path):
    path = tmp_path / "typed.csv"
    for labels, expected in [
        (["3", "1", "2"], (1, 2, 3)),
        (["0.5", "1.5", "2"], (0.5, 1.5, 2.0)),
        (["True", "False", "True"], (False, True)),
        (["007", "07", "7"], ("007", "07", "7")),  # leading zeros: text
    ]:
        path.write_text("g,x\n" + "".join(f"{labels[k % 3]},{k}\n" for k in range(30)))
        st = reduce(path, "g", ["x"])
        assert st.groups == expected
        assert [type(g) for g in st.groups] == [type(g) for g in expected]


@pytest.mark.parametrize("route", ["pandas", "csv"])
def test_magnitudes_double_precision_cannot_square_are_named(tmp_path, route):
    df = pd.DataFrame({"g": list("aaabbb"), "x": [1.0, 2, 3, 4, 5, 7],
                       "y": [2.0, 1, 4, 3, 3, 1]})

    def data(frame):
        if route == "pandas":
            return frame
        frame.to_csv(tmp_path / "m.csv", index=False)
        return tmp_path / "m.csv"

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no NumPy overflow warnings on the way
        with pytest.raises(groupcov.DataError, match=r"feature 'x' has values of magnitude "
                                                     r"about \de\+160, too large.*overflow"):
            reduce(data(df.assign(x=df.x * 1e160)), "g", ["x", "y"])
        with pytest.raises(groupcov.DataError, match=r"feature 'x' varies on a scale of "
                                                     r"about .*e-1[67]\d, too small"):
            reduce(data(df.assign(x=df.x * 1e-170)), "g", ["x", "y"])
        # large and small, but within what double precision squares: exact statistics
        for k in (1e150, 1e-140):
            st = reduce(data(df.assign(x=df.x * k)), "g", ["x", "y"])
            np.testing.assert_allclose(st.scatter[:, 0, 0] / k**2, [2.0, 14 / 3], rtol=1e-12)


def test_integers_beyond_double_precision_are_explained():
    df = pd.DataFrame({"g": list("aaabbb"), "y": [2.0, 1, 4, 3, 3, 1],
                       "x": np.int64(10**17) + np.array([1, 2, 3, 4, 5, 7])})
    with pytest.raises(groupcov.DataError, match=r"take a single value over all rows "
                                                 r"\(values of magnitude 2\*\*53 and beyond"):
        groupcov.GroupCovModel(df, "g", ["x", "y"])
    df["x"] += np.array([0, 0, 0, 1000, 2000, 3000])
    with pytest.raises(groupcov.DataError, match=r"takes a single value in group 'a' .*"
                                                 r"subtract an offset"):
        groupcov.GroupCovModel(df, "g", ["x", "y"])
    df["x"] -= df["x"].min()
    groupcov.GroupCovModel(df, "g", ["x", "y"])


def test_column_names_of_any_type():
    """``pd.DataFrame(array)`` has integer column names: the group may be one of them;
    names that print the same are refused; NumPy string names become plain strings."""
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({0: rng.choice(["a", "b"], 30), 1: rng.normal(size=30),
                          2: rng.normal(size=30)})
    st = reduce(frame, 0)
    assert st.groups == ("a", "b") and st.features == (1, 2)
    named = frame.rename(columns={0: "g", 1: "x", 2: "y"})
    np.testing.assert_allclose(st.scatter, reduce(named, "g").scatter, rtol=1e-12)
    assert groupcov.GroupCovModel(frame, group=0).stats.features == (1, 2)
    with pytest.raises(groupcov.DataError, match=r"group column 5 not found in the table; "
                                                 r"available columns: \[0, 1, 2\]"):
        reduce(frame, 5)
    with pytest.raises(groupcov.DataError, match=r"must be the name of the group column"):
        reduce(frame, ["a", "b"] * 15)
    with pytest.raises(groupcov.DataError, match=r"feature names \[1, '1'\] are different "
                                                 r"columns that print the same"):
        reduce(frame.assign(**{"1": 1.0}), 0)
    features = reduce(named, "g", np.array(["x", "y"])).features
    assert features == ("x", "y") and all(type(f) is str for f in features)


def test_arrow_types_duckdb_cannot_read_are_named():
    pa = pytest.importorskip("pyarrow")
    table = pa.table({"g": ["a", "b", "a", "b"],
                      "x": pa.array(np.array([1, 2, 3, 5], dtype="float16"))})
    with pytest.raises(groupcov.DataError, match=r"the Arrow table could not be read by "
                                                 r"DuckDB .*'x' \(halffloat\)"):
        reduce(table, "g")


def test_csv_rows_with_other_numbers_of_fields_are_named(tmp_path):
    path = tmp_path / "ragged.csv"
    path.write_text("g,x,y\na,1,2\nb,2,3\na,3\nb,4,5,6\na,5,6\n")
    with pytest.raises(groupcov.DataError, match=r"could not be split into columns: its "
                                                 r"header has 3 fields separated by ','.*"
                                                 r"lines 4 \(2 fields\), 5 \(4 fields\)"):
        reduce(path, "g")


def test_categories_keep_their_order_in_every_route(tmp_path):
    """An unordered pandas Categorical's categories set the group order in memory, and
    again after Parquet or Arrow (as ``pandas.read_parquet`` restores them)."""
    pa = pytest.importorskip("pyarrow")
    df = _frame()
    df["g"] = pd.Categorical(df["g"], categories=["c", "b", "a"])
    df.to_parquet(tmp_path / "cat.parquet")
    for data in (df, tmp_path / "cat.parquet", pa.Table.from_pandas(df)):
        assert reduce(data, "g", ["x"]).groups == ("b", "a")
    # plain text labels are sorted in every route
    df["g"] = df["g"].astype(str)
    df.to_parquet(tmp_path / "text.parquet")
    for data in (df, tmp_path / "text.parquet", pa.Table.from_pandas(df)):
        assert reduce(data, "g", ["x"]).groups == ("a", "b")


def test_csv_errors_that_types_do_not_cause_read_the_file_once(tmp_path, monkeypatch):
    from groupcov.data import duckdb_engine

    path = tmp_path / "late.csv"
    _late_csv(path, "a,?,2")
    opened = []
    real = duckdb_engine.open_path
    monkeypatch.setattr(duckdb_engine, "open_path",
                        lambda *a, **k: opened.append(k) or real(*a, **k))
    with pytest.raises(groupcov.DataError, match=r"column\(s\) \['z'\] not found"):
        reduce(path, "g", ["z"])
    assert opened == [{}]
    with pytest.raises(groupcov.DataError, match=r"'x' is not numeric"):
        reduce(path, "g", ["x"])
    # the second reading takes x for text; a probe (stopping at its first value that is
    # not a number) checks it is not numbers that DuckDB took for text (inf)
    assert opened[1:] == [{}, {"full_scan": True}, {"full_scan": True, "types": {"x": "VARCHAR"}}]


def test_csv_messages_say_how_the_file_was_read(tmp_path):
    semi = tmp_path / "semi.csv"
    semi.write_text("sl;sw;species\n5,1;3,5;a\n4,9;3,0;b\n")
    with pytest.warns(groupcov.DefaultFeaturesWarning), pytest.raises(
        groupcov.DataError,
        match=r"left out: 'sl' read as text \(VARCHAR, e\.g\. '5,1'\).*look like decimal "
              r"commas",
    ):
        reduce(semi, "species")
    na = tmp_path / "regions.csv"
    na.write_text("g,x\nNA,1\nNA,2\nEU,3\nEU,4\n")
    with pytest.raises(groupcov.DataError, match=r"'NA', 'N/A'.* read as missing: a group "
                                                 r"named 'NA' needs another name"):
        reduce(na, "g", ["x"])


def test_cli_names_the_covariance_option():
    from groupcov.cli import flag_form

    message = ("... which a multivariate normal model with covariance='hierarchical' cannot "
               "represent: leave out the feature(s), or model one covariance for all groups "
               "(covariance='pooled')")
    shown = flag_form(message)
    assert "model with --covariance hierarchical" in shown
    assert "(--covariance pooled)" in shown and "covariance='" not in shown
