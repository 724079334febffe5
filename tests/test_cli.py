"""Command line: fits from CSV and Parquet files, outputs that parse, exit codes."""

import contextlib
import io
import subprocess
import sys
from pathlib import Path

import arviz as az
import matplotlib.image
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from groupcov import cli
from groupcov.data import reduce
from groupcov.datasets import simulate_groups
from groupcov.result import GroupCovResult

FEATURES = ["x0", "x1", "x2"]
SAMPLING = ["--draws", "200", "--tune", "200", "--chains", "2", "--seed", "3"]


def run_cli(argv):
    """``groupcov ARGV`` in this process: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main([str(a) for a in argv])
        except SystemExit as exc:  # argparse
            code = exc.code
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    sim = simulate_groups(3, [25, 60, 140], 3, seed=11)
    df = sim.data.rename(columns={"group": "site"})
    df["x1"] = df["x1"] * 1000.0 + 5e6  # units and offset must survive the round trip
    df.loc[[3, 70, 71], "x2"] = np.nan
    df["note"] = "text"  # a non-numeric column that is not a feature
    df.to_csv(root / "data.csv", index=False)
    df.to_parquet(root / "data.parquet")
    return root, df


@pytest.fixture(scope="module")
def csv_fit(files):
    root, _ = files
    out = root / "fit_csv"
    code, stdout, stderr = run_cli(["fit", root / "data.csv", "--group", "site",
                                    "--features", *FEATURES, *SAMPLING, "--out", out])
    assert code == 0, stderr
    return out, stdout, stderr


@pytest.fixture(scope="module")
def parquet_fit(files):
    root, _ = files
    out = root / "fit_parquet"
    code, stdout, stderr = run_cli(["fit", root / "data.parquet", "--group", "site",
                                    "--features", ",".join(FEATURES), *SAMPLING,
                                    "--out", out, "--no-progress"])
    assert code == 0, stderr
    return out, stdout, stderr


def test_fit_writes_every_output_and_each_parses(csv_fit, parquet_fit):
    for out, _, _ in (csv_fit, parquet_fit):
        assert sorted(p.name for p in out.iterdir()) == sorted(cli.FIT_OUTPUTS)
        idata = az.from_netcdf(out / "posterior.nc")
        assert {"posterior", "constant_data", "log_likelihood", "sample_stats"} <= set(
            idata.groups())
        assert idata.posterior["cov"].shape == (2, 200, 3, 3, 3)
        for name in ("summary.csv", "covariances.csv", "correlations.csv"):
            assert len(pd.read_csv(out / name)) > 0
        img = matplotlib.image.imread(out / "ellipses.png")
        assert img.shape[0] > 300 and img.shape[1] > 300 and img[..., :3].std() > 0.05
        text = (out / "report.html").read_text(encoding="utf-8")
        assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")


def test_tables_agree_with_the_saved_posterior(csv_fit, files):
    out, _, _ = csv_fit
    idata = az.from_netcdf(out / "posterior.nc")
    post = idata.posterior
    cov = pd.read_csv(out / "covariances.csv")
    corr = pd.read_csv(out / "correlations.csv")
    assert list(cov.columns) == ["group", "feature", *FEATURES]
    for gi, g in enumerate(post["group"].values):
        block = cov[cov.group == g].set_index("feature").loc[FEATURES, FEATURES].to_numpy()
        np.testing.assert_allclose(block, post["cov"].values[:, :, gi].mean((0, 1)), rtol=1e-12)
        block = corr[corr.group == g].set_index("feature").loc[FEATURES, FEATURES].to_numpy()
        np.testing.assert_allclose(block, post["corr"].values[:, :, gi].mean((0, 1)),
                                   rtol=1e-12)
    summary = pd.read_csv(out / "summary.csv")
    row = summary[(summary.group == "g1") & (summary.parameter == "mu[x1]")].iloc[0]
    draws = post["mu"].sel(group="g1", feature="x1").values
    assert row["mean"] == pytest.approx(draws.mean(), rel=1e-12)
    assert (row["hdi_low"], row["hdi_high"]) == pytest.approx(
        tuple(az.hdi(draws.ravel(), hdi_prob=0.94)), rel=1e-12)
    # the data's units: x1 was scaled by 1000 and shifted by 5e6
    _, df = files
    assert row["mean"] == pytest.approx(df[df.site == "g1"].x1.mean(), abs=5 * row["sd"])


def test_saved_fit_reloads_with_statistics_and_spec(csv_fit, files):
    out, _, _ = csv_fit
    _, df = files
    res = GroupCovResult.load(out)
    expected = reduce(df, "site", FEATURES)
    assert res.groups == ["g0", "g1", "g2"] and res.features == FEATURES
    assert res.spec == {"means": "hierarchical", "covariance": "hierarchical"}
    np.testing.assert_array_equal(res.stats.n, expected.n)
    np.testing.assert_allclose(res.stats.mean, expected.mean, rtol=1e-13)
    np.testing.assert_allclose(res.stats.scatter, expected.scatter, rtol=1e-10)
    np.testing.assert_array_equal(res.stats.incomplete.n, expected.incomplete.n)
    assert res.stats.incomplete.n.sum() == 3  # the three rows with x2 missing
    pd.testing.assert_frame_equal(res.summary(), pd.read_csv(out / "summary.csv"),
                                  check_dtype=False, rtol=1e-10)


def test_csv_and_parquet_give_the_same_fit(csv_fit, parquet_fit):
    a = az.from_netcdf(csv_fit[0] / "posterior.nc")
    b = az.from_netcdf(parquet_fit[0] / "posterior.nc")
    for name in ("n", "sample_mean", "scatter", "cell_n", "cell_mean"):
        np.testing.assert_allclose(a.constant_data[name], b.constant_data[name], rtol=1e-12)
    # same statistics and seed: the same draws
    np.testing.assert_allclose(a.posterior["cov"], b.posterior["cov"], rtol=1e-6)


def test_printed_table_and_progress(csv_fit, parquet_fit, files):
    _, df = files
    _, stdout, _ = csv_fit
    lines = stdout.splitlines()
    header = lines[0].split()
    assert header[:2] == ["group", "rows"] and "corr[x0,x2]" in header
    post = az.from_netcdf(csv_fit[0] / "posterior.nc").posterior
    for g, n in df.site.value_counts().items():
        row = next(line.split() for line in lines if line.startswith(g + " "))
        assert int(row[1]) == n
        mean_x0 = float(post["mu"].sel(group=g, feature="x0").mean())
        assert float(row[2]) == pytest.approx(mean_x0, rel=1e-3, abs=1e-3)
    assert "wrote posterior.nc" in stdout and "max R-hat" in stdout
    for _, _, err in (csv_fit, parquet_fit):
        assert "[3/5] sampling (numpyro, 2 chains x 200 draws" in err
        assert "[5/5] drawing plots and the report" in err
        assert "warning: " in err and "missing" in err  # the three missing x2 values
        assert "Traceback" not in err


def test_predict_draws_rows_of_a_group_from_the_saved_fit(csv_fit, files):
    out, _, _ = csv_fit
    root, _ = files
    post = az.from_netcdf(out / "posterior.nc").posterior
    target = root / "pred.csv"
    code, _, err = run_cli(["predict", out, "--group", "g1", "--n", "300", "--seed", "5",
                            "--out", target])
    assert code == 0, err
    rows = pd.read_csv(target)
    assert list(rows.columns) == ["chain", "draw", *FEATURES] and len(rows) == 300
    assert not rows.duplicated(["chain", "draw"]).any()  # one row per posterior draw
    # each row is N(mu, cov) of its own draw: standardized residuals are N(0, I)
    mu = post["mu"].sel(group="g1").values[rows.chain, rows.draw]
    cov = post["cov"].sel(group="g1").values[rows.chain, rows.draw]
    chol = np.linalg.cholesky(cov)
    z = np.linalg.solve(chol, (rows[FEATURES].to_numpy() - mu)[..., None])[..., 0]
    assert np.all(np.abs(z.mean(axis=0)) < 4 / np.sqrt(300))
    np.testing.assert_allclose(np.cov(z.T), np.eye(3), atol=0.3)
    again = run_cli(["predict", out, "--group", "g1", "--n", "300", "--seed", "5"])[1]
    pd.testing.assert_frame_equal(pd.read_csv(io.StringIO(again)), rows)
    code, stdout, err = run_cli(["predict", out / "posterior.nc", "--group", "new", "--n",
                                 "1000", "--seed", "1"])
    assert code == 0, err
    assert len(pd.read_csv(io.StringIO(stdout))) == 1000


def test_predict_classify_matches_brute_force_bayesian_qda(csv_fit, files):
    out, _, _ = csv_fit
    root, df = files
    rows = df.loc[[0, 40, 100, 200], ["x0", "x1", "x2"]]
    rows.to_parquet(root / "new_rows.parquet")
    code, stdout, err = run_cli(["predict", out, "--classify", root / "new_rows.parquet"])
    assert code == 0, err
    probs = pd.read_csv(io.StringIO(stdout))
    assert list(probs.columns) == ["group", "p[g0]", "p[g1]", "p[g2]"]
    post = az.from_netcdf(out / "posterior.nc").posterior
    n = df.site.value_counts().sort_index().to_numpy()
    weights = (n + 1) / (n.sum() + 3)
    mu = post["mu"].values.reshape(-1, 3, 3)
    cov = post["cov"].values.reshape(-1, 3, 3, 3)
    for i, x in enumerate(rows.to_numpy()):
        dens = np.array([
            np.mean([stats.multivariate_normal(mu[s, g], cov[s, g]).pdf(x)
                     for s in range(len(mu))])
            for g in range(3)
        ]) * weights
        expected = dens / dens.sum()
        # the same draws: equal up to rounding (the CLI works in log space)
        np.testing.assert_allclose(probs.iloc[i, 1:].to_numpy(float), expected, atol=1e-9,
                                   rtol=1e-6)
        assert probs.group[i] == f"g{np.argmax(probs.iloc[i, 1:].to_numpy(float))}"


def test_compare_ranks_pooling_choices(files):
    root, _ = files
    target = root / "compare.csv"
    code, stdout, err = run_cli(["compare", root / "data.csv", "--group", "site",
                                 "--features", *FEATURES, "--candidates", "hierarchical",
                                 "pooled/pooled", *SAMPLING, "--out", target])
    assert code == 0, err
    table = pd.read_csv(target)
    assert list(table.model) == ["means=hierarchical, covariance=hierarchical",
                                 "means=pooled, covariance=pooled"]
    assert list(table["rank"]) == [0, 1]
    # the groups' means differ by about one sd: pooling them all costs predictive density
    assert table.elpd_diff[1] > 4 * table.dse[1]
    assert "means=pooled, covariance=pooled" in stdout and "elpd_loo" in stdout


def _one_line_error(code, stderr, words, status=2):
    """Exit status, and one line of message (after any progress lines), no traceback."""
    assert code == status
    lines = [line for line in stderr.strip().splitlines()
             if not line.startswith(("groupcov: [", "groupcov: warning:"))]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("groupcov") and "Traceback" not in stderr
    for w in words:
        assert w in lines[0], lines[0]


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["fit", "{root}/data.csv", "--out", "{root}/o"], ["--group"]),
        (["fit", "{root}/nope.csv", "--group", "site", "--out", "{root}/o"], ["not found"]),
        (["fit", "{root}", "--group", "site", "--out", "{root}/o"], ["is a directory"]),
        (["fit", "{root}/data.csv", "--group", "site", "--features", "x0", "zz",
          "--out", "{root}/o"], ["zz"]),
        (["fit", "{root}/data.csv", "--group", "site", "--features", "x0", "note",
          "--out", "{root}/o"], ["note", "not numeric"]),
        (["fit", "{root}/data.csv", "--group", "nosuch", "--features", "x0", "--out",
          "{root}/o"], ["nosuch", "not found"]),
        (["fit", "{root}/data.csv", "--group", "site", "--draws", "0", "--out", "{root}/o"],
         ["--draws", ">= 1"]),
        (["fit", "{root}/data.csv", "--group", "site", "--chains", "two", "--out", "{root}/o"],
         ["--chains", "two"]),
        (["fit", "{root}/data.csv", "--group", "site", "--target-accept", "1.5", "--out",
          "{root}/o"], ["--target-accept", "between 0 and 1"]),
        (["fit", "{root}/data.csv", "--group", "site", "--means", "partial", "--out",
          "{root}/o"], ["--means", "partial"]),
        (["fit", "{root}/data.csv", "--group", "site", "--out", "{root}/data.csv"],
         ["is a file"]),
        (["fit", "{root}/bad.parquet", "--group", "site", "--out", "{root}/o"],
         ["bad.parquet"]),
        (["fit", "{root}/one_group.csv", "--group", "site", "--out", "{root}/o"],
         ["at least two groups"]),
        (["predict", "{root}/no_fit", "--group", "g0"], ["not found"]),
        (["predict", "{root}/no_fit"], ["--group", "--classify"]),
        (["compare", "{root}/data.csv", "--group", "site", "--candidates", "some/thing"],
         ["--candidates"]),
        (["compare", "{root}/data.csv", "--group", "site", "--candidates", "pooled"],
         ["--candidates", "two different candidates"]),
        (["compare", "{root}/data.csv", "--group", "site", "--candidates", "pooled",
          "pooled/pooled"], ["--candidates", "two different candidates"]),
        (["fit", "{root}/data.csv", "--group", "site", "--seed", "-1"], ["--seed", ">= 0"]),
        (["frobnicate"], ["invalid choice"]),
    ],
)
def test_bad_input_exits_2_with_one_line(files, argv, words):
    root, df = files
    (root / "bad.parquet").write_bytes(b"PAR1 this is not parquet")
    df[df.site == "g0"].to_csv(root / "one_group.csv", index=False)
    code, _, stderr = run_cli([a.format(root=root) for a in argv])
    _one_line_error(code, stderr, words)


def test_unexpected_failure_exits_1(files, monkeypatch):
    root, _ = files

    def broken(*args, **kwargs):
        raise RuntimeError("sampler exploded\nsecond line")

    monkeypatch.setattr("groupcov.api.GroupCovModel.fit", broken)
    code, _, stderr = run_cli(["fit", root / "data.csv", "--group", "site", "--quiet",
                               "--out", root / "o1"])
    _one_line_error(code, stderr, ["RuntimeError", "sampler exploded", "--traceback"], 1)
    with pytest.raises(RuntimeError):
        cli.main(["--traceback", "fit", str(root / "data.csv"), "--group", "site", "--quiet",
                  "--out", str(root / "o1")])


def test_help_and_the_console_script(files):
    code, stdout, _ = run_cli(["fit", "--help"])
    assert code == 0 and "--features" in stdout and "--out" in stdout
    root, _ = files
    script = Path(sys.executable).parent / "groupcov"
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "groupcov.cli"]
    bad = subprocess.run([*cmd, "fit", str(root / "missing.csv"), "--group", "g", "--out",
                          str(root / "o2")], capture_output=True, text=True, timeout=120)
    _one_line_error(bad.returncode, bad.stderr, ["not found"])


def test_demo_without_plot_does_not_import_matplotlib():
    """matplotlib's import (half a second) is only for --plot."""
    code = ("import sys\nfrom groupcov import cli\n"
            "try:\n    cli.main(['demo', '--rows', '100', '--draws', '20', '--tune', '20',"
            " '--chains', '1'])\nexcept SystemExit:\n    pass\n"
            "print('matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)
    assert out.stdout.strip().splitlines()[-1] == "False", out.stdout + out.stderr


def test_demo_prints_the_table_and_saves_the_plot(tmp_path):
    png = tmp_path / "ellipses.png"
    code, stdout, _ = run_cli(["demo", "--rows", "300", "--draws", "200", "--tune", "200",
                                    "--chains", "2", "--plot", png])
    lines = stdout.splitlines()
    assert lines[0] == "Two groups, 300 rows each, features x and y:"
    header = next(i for i, line in enumerate(lines) if line.startswith("group parameter"))
    assert lines[header].split() == ["group", "parameter", "true", "mean", "94%", "HDI",
                                     "R-hat", "ESS"]
    assert len([line for line in lines if line.startswith(("A ", "B "))]) == 12
    assert lines[-1].startswith(("OK", "CHECK: the sampler did not converge"))
    # a true value outside its 94% interval is chance (1 in 17), not a failure
    assert code == (0 if lines[-1].startswith("OK") else 1)
    img = matplotlib.image.imread(png)
    assert img.shape[0] > 300 and img[..., :3].std() > 0.05


def _fake_result(n_groups: int, p: int):
    import types

    import xarray as xr

    rng = np.random.default_rng(0)
    feats = [f"feature_{j}" for j in range(p)]
    groups = [f"g{i}" for i in range(n_groups)]
    corr = np.broadcast_to(np.eye(p), (1, 2, n_groups, p, p)).copy()
    corr[..., 1, 0] = corr[..., 0, 1] = 0.25
    post = xr.Dataset({
        "mu": (("chain", "draw", "group", "feature"), rng.normal(size=(1, 2, n_groups, p))),
        "sigma": (("chain", "draw", "group", "feature"), np.ones((1, 2, n_groups, p))),
        "corr": (("chain", "draw", "group", "feature", "feature_"), corr),
    })
    stats = types.SimpleNamespace(rows_per_group=lambda: np.full(n_groups, 50))
    return types.SimpleNamespace(idata=types.SimpleNamespace(posterior=post), features=feats,
                                 groups=groups, stats=stats)


def test_group_table_stays_readable_with_many_features():
    from groupcov.cli import TABLE_WIDTH, group_table

    few = group_table(_fake_result(3, 2)).splitlines()
    assert len(few) == 2 + 3 and "corr[feature_0,feature_1]" in few[0]
    assert few[2].split()[:2] == ["g0", "50"]
    # 13 features: one row per parameter, a column per group, correlations in the CSV
    many = group_table(_fake_result(3, 13)).splitlines()
    assert max(len(line) for line in many) <= TABLE_WIDTH
    assert many[0].split() == ["g0", "g1", "g2"] and many[2].split() == ["rows", "50", "50", "50"]
    assert len(many) == 3 + 2 * 13 + 1 and "78 correlations per group" in many[-1]
    assert many[3].split()[0] == "mean[feature_0]"
    # many groups and features: one row per group, means and sds
    wide = group_table(_fake_result(12, 13)).splitlines()
    assert len(wide) == 2 + 12 + 1 and "corr[" not in wide[0]


def test_group_table_shortens_long_group_names():
    from groupcov.cli import LABEL_WIDTH, group_table

    result = _fake_result(3, 2)
    result.groups = ["Northern Territory, far north-west coast", "b",
                     "Northern Territory, far north-east coast"]
    lines = group_table(result).splitlines()
    names = [line.split("  ")[0].strip() for line in lines[2:5]]
    assert all(len(name) <= LABEL_WIDTH for name in names)
    assert names[0] != names[2] and names[0].endswith("west coast") and names[1] == "b"
    assert "summary.csv has them whole" in lines[-1]
    plain = group_table(_fake_result(3, 2)).splitlines()  # groups g0, g1, g2
    assert len(lines[0]) == len(plain[0]) + LABEL_WIDTH - len("group")
    # alike once shortened: kept whole
    result.groups = ["a" * 30 + "x" + "b" * 30, "a" * 30 + "y" + "b" * 30, "c"]
    text = group_table(result)
    assert result.groups[0] in text and result.groups[1] in text and "shortened" not in text


def test_sampling_options_reach_fit():
    parser = cli.build_parser()
    args = parser.parse_args(["fit", "data.csv", "--group", "g", "--out", "o", "--draws", "10",
                              "--seed", "4"])
    assert cli._sampling_kwargs(args) == {"draws": 10, "tune": 1000, "chains": 4,
                                          "random_seed": 4}
    args = parser.parse_args(["compare", "data.csv", "--group", "g", "--target-accept", "0.99",
                              "--sampler", "nutpie"])
    kwargs = cli._sampling_kwargs(args)
    assert kwargs["target_accept"] == 0.99 and kwargs["sampler"] == "nutpie"


@pytest.mark.parametrize("marker", ["NA", "N/A", "NULL", "null"])
def test_plot_rows_read_missing_value_markers_as_fit_does(tmp_path, marker):
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"g": np.repeat(["a", "b", "c"], 20), "x": rng.normal(size=60),
                       "y": 1000 * rng.normal(size=60) + 5000})
    text = df.astype(object)
    text.loc[[3, 30], "x"] = marker
    text.to_csv(tmp_path / "f.csv", index=False)
    rows = cli._plot_rows(tmp_path / "f.csv", "g", ["x", "y"])
    assert rows["x"].dtype == np.float64 and rows["x"].isna().sum() == 2
    assert len(rows) == 60 and sorted(rows["g"].unique()) == ["a", "b", "c"]
    assert reduce(str(tmp_path / "f.csv"), "g", ["x", "y"]).incomplete.n.sum() == 2


def test_fit_with_r_style_missing_values_writes_every_output(tmp_path):
    rng = np.random.default_rng(2)
    df = pd.DataFrame({"g": np.repeat(["a", "b", "c"], 20), "x": rng.normal(size=60),
                       "y": 1000 * rng.normal(size=60) + 5000}).astype(object)
    df.loc[[3, 30], "x"] = "NA"
    df.loc[[40], "y"] = "NULL"
    df.to_csv(tmp_path / "r.csv", index=False)
    code, stdout, err = run_cli(["fit", tmp_path / "r.csv", "--group", "g", "--draws", "100",
                                 "--tune", "100", "--chains", "1", "--quiet",
                                 "--out", tmp_path / "o"])
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == sorted(cli.FIT_OUTPUTS)
    assert "could not draw" not in err
    assert "(1 chain x 100 draws)" in stdout and "R-hat needs 2 or more chains" in stdout
    assert "nan" not in stdout


def test_a_plot_that_fails_is_a_warning_and_the_report_is_still_written(csv_fit, files,
                                                                       tmp_path, monkeypatch):
    root, df = files
    result = GroupCovResult.load(csv_fit[0])
    # rows whose feature came back as text (what DuckDB's default reader made of 'NA')
    text_rows = df[["site", *FEATURES]].astype({"x0": object})
    text_rows.loc[[0, 5], "x0"] = "NA"
    monkeypatch.setattr(cli, "_plot_rows", lambda *args, **kwargs: text_rows)
    with pytest.warns(cli.PlotWarning) as caught:
        cli._write_figures(result, str(root / "data.csv"), "site", tmp_path)
    messages = [str(w.message) for w in caught]
    assert len(messages) == 2
    assert messages[0].startswith("could not draw ellipses.png (")
    assert messages[1].startswith("could not draw the data in report.html (")
    assert all("the posterior and tables are complete" in m for m in messages)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]
    assert (tmp_path / "report.html").read_text(encoding="utf-8").startswith("<!DOCTYPE")


def test_a_failed_report_is_reported_and_the_fit_still_succeeds(files, tmp_path,
                                                                monkeypatch):
    root, _ = files

    def broken(*args, **kwargs):
        raise RuntimeError("no fonts")

    monkeypatch.setattr("groupcov.report.render_report", broken)
    monkeypatch.setattr("groupcov.plots.pairs", broken)
    code, stdout, err = run_cli(["fit", root / "data.csv", "--group", "site", "--features",
                                 *FEATURES, "--draws", "50", "--tune", "50", "--chains", "1",
                                 "--quiet", "--out", tmp_path / "o"])
    assert code == 0, err
    assert "groupcov: warning: could not draw ellipses.png (RuntimeError: no fonts)" in err
    assert "groupcov: warning: could not draw report.html (RuntimeError: no fonts)" in err
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == [
        "correlations.csv", "covariances.csv", "posterior.nc", "summary.csv"]
    assert "wrote posterior.nc, summary.csv, covariances.csv, correlations.csv to" in stdout


def test_a_new_fit_replaces_every_output_of_an_earlier_one(tmp_path):
    out = tmp_path / "fit"
    out.mkdir()
    for name in cli.FIT_OUTPUTS:
        (out / name).write_text("old")
    (out / "notes.txt").write_text("mine")
    staging = cli._staging_dir(out)
    for name in ("posterior.nc", "summary.csv", "covariances.csv", "correlations.csv"):
        (staging / name).write_text("new")
    assert cli._publish(staging, out) == ["posterior.nc", "summary.csv", "covariances.csv",
                                          "correlations.csv"]
    # no old ellipses.png or report.html left beside the new posterior
    assert sorted(p.name for p in out.iterdir() if p.name != staging.name) == sorted(
        ["posterior.nc", "summary.csv", "covariances.csv", "correlations.csv", "notes.txt"])
    assert {(out / n).read_text() for n in ("posterior.nc", "summary.csv")} == {"new"}


def test_a_failed_fit_leaves_the_earlier_fit_untouched(files, tmp_path, monkeypatch):
    root, _ = files
    out = tmp_path / "fit"
    out.mkdir()
    for name in cli.FIT_OUTPUTS:
        (out / name).write_text("old")

    def broken(*args, **kwargs):
        raise RuntimeError("sampler exploded")

    monkeypatch.setattr("groupcov.api.GroupCovModel.fit", broken)
    code, _, _ = run_cli(["fit", root / "data.csv", "--group", "site", "--quiet", "--out", out])
    assert code == 1
    assert sorted(p.name for p in out.iterdir()) == sorted(cli.FIT_OUTPUTS)  # no staging left
    assert {(out / n).read_text() for n in cli.FIT_OUTPUTS} == {"old"}


def test_group_table_tells_means_at_a_large_offset_apart():
    result = _fake_result(3, 2)
    mu = result.idata.posterior["mu"].values
    mu[:] = 0.0
    mu[..., 0] = 1e6 + np.array([0.0123, 1.5, 12.25])
    lines = cli.group_table(result).splitlines()
    cells = [line.split()[2] for line in lines[2:]]
    assert len(set(cells)) == 3 and all("e+" not in c for c in cells)
    assert [float(c) for c in cells] == pytest.approx([1e6, 1e6 + 1.5, 1e6 + 12.25], abs=0.5)
    assert [line.split()[3] for line in lines[2:]] == ["0", "0", "0"]  # equal values stay short


def test_predict_refuses_an_unknown_group_and_lists_the_fitted_ones(csv_fit):
    out, _, _ = csv_fit
    code, stdout, err = run_cli(["predict", out, "--group", "g11", "--n", "5"])
    _one_line_error(code, err, ["unknown group 'g11'", "groups are g0, g1, g2",
                                "--new-group"])
    assert stdout == "" and "np.str_" not in err
    code, stdout, err = run_cli(["predict", out, "--new-group", "--n", "7", "--seed", "1"])
    assert code == 0, err
    assert len(pd.read_csv(io.StringIO(stdout))) == 7


def test_predict_matches_labels_as_text_and_names_them_plainly():
    import types

    fit = types.SimpleNamespace(groups=[np.int64(1), np.int64(2), "new"])
    assert cli._predict_group(fit, "2", False) == ("2", False)
    assert cli._predict_group(fit, "new", False) == ("new", False)  # a fitted group 'new'
    assert cli._predict_group(fit, None, True) == (None, True)
    with pytest.raises(cli.InputError, match=r"unknown group '3'; the fit's groups are 1, 2, "
                                             r"new; pass one of them to --group"):
        cli._predict_group(fit, "3", False)
    assert cli._predict_group(types.SimpleNamespace(groups=["a"]), "new", False) == (None, True)


@pytest.fixture
def captured_compare(monkeypatch):
    """``groupcov compare`` without sampling: the data it would compare, and a fake table."""
    seen = {}

    def fake_compare(data, **kwargs):
        seen["data"], seen["kwargs"] = data, kwargs
        return pd.DataFrame({"rank": [0, 1], "elpd_loo": [-1.0, -2.0]},
                            index=["means=pooled, covariance=pooled",
                                   "means=unpooled, covariance=unpooled"])

    monkeypatch.setattr("groupcov.comparison.compare", fake_compare)
    return seen


def _labeled_table(labels=("007", "07", "7")):
    rng = np.random.default_rng(5)
    return pd.DataFrame({"g": np.repeat(list(labels), 20), "x": rng.normal(size=60),
                         "y": 1000 * rng.normal(size=60) + 5000})


@pytest.mark.parametrize("layout", ["labels", "semicolon", "glob", "na"])
def test_compare_reads_files_as_fit_does(tmp_path, captured_compare, layout):
    df = _labeled_table()
    if layout == "labels":
        df.to_csv(path := tmp_path / "f.csv", index=False)
    elif layout == "semicolon":
        df.to_csv(path := tmp_path / "f.csv", index=False, sep=";")
    elif layout == "na":
        df = df.astype({"x": object})
        df.loc[[1, 2], "x"] = "NA"
        df.to_csv(path := tmp_path / "f.csv", index=False)
    else:
        (tmp_path / "parts").mkdir()
        df.iloc[:25].to_parquet(tmp_path / "parts" / "a.parquet")
        df.iloc[25:].to_parquet(tmp_path / "parts" / "b.parquet")
        path = tmp_path / "parts" / "*.parquet"
    code, stdout, err = run_cli(["compare", path, "--group", "g", "--candidates", "pooled",
                                 "unpooled"])
    assert code == 0, err
    rows = captured_compare["data"]
    fitted = reduce(str(path), "g")
    assert sorted(rows["g"].unique()) == ["007", "07", "7"] == list(fitted.groups)
    assert list(rows.columns) == ["g", "x", "y"] and len(rows) == 60
    assert rows["x"].isna().sum() == (2 if layout == "na" else 0)
    assert captured_compare["kwargs"]["features"] == ["x", "y"]
    assert "means=pooled, covariance=pooled" in stdout


def test_compare_by_group_needs_two_groups(tmp_path, captured_compare):
    _labeled_table(["a"] * 3).to_csv(tmp_path / "one.csv", index=False)
    code, _, err = run_cli(["compare", tmp_path / "one.csv", "--group", "g", "--pointwise",
                            "group", "--candidates", "pooled", "unpooled"])
    _one_line_error(code, err, ["--pointwise group", "at least two groups", "column 'g'",
                                "--pointwise row"])
    code, _, err = run_cli(["compare", tmp_path / "one.csv", "--group", "g"])
    _one_line_error(code, err, ["at least two groups", "column 'g'", "--candidates pooled"])
    assert "data" not in captured_compare  # refused before any fit
    code, _, err = run_cli(["compare", tmp_path / "one.csv", "--group", "g", "--candidates",
                            "pooled", "unpooled"])
    assert code == 0, err


@pytest.mark.parametrize("pointwise", ["row", "group"])
def test_compare_note_on_unreliable_loo_fits_the_kind(tmp_path, monkeypatch, pointwise):
    def flagged(data, **kwargs):
        return pd.DataFrame({"rank": [0, 1], "elpd_loo": [-1.0, -2.0],
                             "warning": [True, False]}, index=["first", "second"])

    monkeypatch.setattr("groupcov.comparison.compare", flagged)
    _labeled_table().to_csv(tmp_path / "f.csv", index=False)
    code, stdout, err = run_cli(["compare", tmp_path / "f.csv", "--group", "g",
                                 "--pointwise", pointwise])
    assert code == 0, err
    notes = [line for line in stdout.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "'first'" in notes[0]
    if pointwise == "row":
        assert "some rows" in notes[0] and "--pointwise group may help" in notes[0]
    else:
        assert "some groups" in notes[0] and "--pointwise" not in notes[0]
    assert "warning" not in stdout.splitlines()[0]  # the flag column is not shown


def test_compare_checks_out_before_any_work(tmp_path, captured_compare):
    _labeled_table().to_csv(tmp_path / "f.csv", index=False)
    code, _, err = run_cli(["compare", tmp_path / "f.csv", "--group", "g", "--out",
                            tmp_path / "nodir" / "t.csv"])
    _one_line_error(code, err, ["nodir", "--out", "does not exist"])
    assert "data" not in captured_compare


def test_predict_classify_reads_files_as_fit_does(csv_fit, files, tmp_path):
    out, _, _ = csv_fit
    _, df = files
    rows = df.loc[[0, 40, 100], FEATURES].astype({"x2": object})
    rows.loc[40, "x2"] = "NA"
    rows.to_csv(tmp_path / "new.csv", sep=";", index=False)
    code, stdout, err = run_cli(["predict", out, "--classify", tmp_path / "new.csv"])
    assert code == 0, err
    probs = pd.read_csv(io.StringIO(stdout))
    assert len(probs) == 3 and list(probs.columns) == ["group", "p[g0]", "p[g1]", "p[g2]"]
    np.testing.assert_allclose(probs.iloc[:, 1:].sum(axis=1), 1.0, rtol=1e-9)
    # the row with x2 missing is classified on x0 and x1, like the same row as a NaN
    result = GroupCovResult.load(out)
    expected = result.classify(df.loc[[40], FEATURES].assign(x2=np.nan))
    np.testing.assert_allclose(probs.iloc[1, 1:].to_numpy(float), expected.to_numpy()[0],
                               rtol=1e-9)
    # a row without any value has no group of its own; a file without rows is an error
    (tmp_path / "blank.csv").write_text("x0,x1,x2\n1.0,2.0,3.0\n,,\n")
    code, stdout, err = run_cli(["predict", out, "--classify", tmp_path / "blank.csv"])
    assert code == 0, err
    blank = pd.read_csv(io.StringIO(stdout), keep_default_na=False)
    assert blank["group"].tolist()[1] == "" and blank["group"].tolist()[0] != ""
    (tmp_path / "header.csv").write_text("x0,x1,x2\n")
    code, _, err = run_cli(["predict", out, "--classify", tmp_path / "header.csv"])
    _one_line_error(code, err, ["header.csv", "has no rows"])
    # inf, which DuckDB's guess takes for a date in one row and for text among integers
    (tmp_path / "inf.csv").write_text("x0,x1,x2\n1.0,inf,3.0\n")
    code, _, err = run_cli(["predict", out, "--classify", tmp_path / "inf.csv"])
    _one_line_error(code, err, ["inf.csv", "column 'x1'", "1 infinite value(s)", "rows 0"])
    (tmp_path / "inf2.csv").write_text("x0,x1,x2\n1,2,3\n2,-inf,4\n5,6,7\n")
    code, _, err = run_cli(["predict", out, "--classify", tmp_path / "inf2.csv"])
    _one_line_error(code, err, ["column 'x1'", "1 infinite value(s)", "rows 1, counting"])


@pytest.mark.parametrize("where", ["before", "after"])
def test_traceback_is_accepted_before_and_after_the_command(files, monkeypatch, where):
    root, _ = files

    def broken(*args, **kwargs):
        raise KeyError("internal")

    monkeypatch.setattr("groupcov.api.GroupCovModel.fit", broken)
    argv = ["fit", str(root / "data.csv"), "--group", "site", "--quiet", "--out",
            str(root / "o3")]
    argv = ["--traceback", *argv] if where == "before" else [*argv, "--traceback"]
    with pytest.raises(KeyError, match="internal"):
        cli.main(argv)
    assert cli.build_parser().parse_args(argv[1:] if where == "before" else argv[:-1]
                                         ).traceback is False


def test_an_internal_error_is_unexpected_and_an_input_error_is_not(files, monkeypatch):
    root, _ = files

    def broken(*args, **kwargs):
        raise ValueError("operands could not be broadcast together")

    monkeypatch.setattr("groupcov.api.GroupCovModel.fit", broken)
    code, _, err = run_cli(["fit", root / "data.csv", "--group", "site", "--quiet", "--out",
                            root / "o4"])
    _one_line_error(code, err, ["unexpected error: ValueError: operands", "--traceback"], 1)
    # a column groupcov itself rejects stays an input error (rc 2) without the hint
    code, _, err = run_cli(["fit", root / "data.csv", "--group", "site", "--features", "note",
                            "--quiet", "--out", root / "o4"])
    _one_line_error(code, err, ["error: ", "note"], 2)
    assert "unexpected" not in err and "--traceback" not in err


def test_new_group_of_an_unpooled_fit_and_text_features_are_input_errors(csv_fit, files,
                                                                         tmp_path):
    import types

    unpooled = types.SimpleNamespace(groups=["a", "b"],
                                     spec={"means": "unpooled", "covariance": "pooled"})
    with pytest.raises(cli.InputError, match="--means unpooled, which says nothing about a "
                                             "new group"):
        cli._predict_group(unpooled, None, True)
    _, df = files
    df.loc[:4, FEATURES].assign(x1="abc").to_csv(tmp_path / "text.csv", index=False)
    code, _, err = run_cli(["predict", csv_fit[0], "--classify", tmp_path / "text.csv"])
    _one_line_error(code, err, ["column 'x1'", "not numeric", "'abc'"])


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["demo", "--rows", "0"], ["--rows", ">= 1"]),
        (["demo", "--chains", "0"], ["--chains", ">= 1"]),
        (["demo", "--sampler", "stan"], ["--sampler", "stan"]),
        (["demo", "--plot", "{root}/nodir/demo.png"], ["--plot", "nodir", "does not exist"]),
        (["demo", "--plot", "{root}/demo.xyz"], ["--plot", "'.xyz'", ".png"]),
        (["demo", "--plot", "{root}"], ["--plot", "is a directory"]),
        (["predict", "{fit}", "--group", "g0", "--out", "{root}/nodir/x.csv"],
         ["--out", "nodir", "does not exist"]),
    ],
)
def test_output_paths_and_options_are_checked_before_any_work(csv_fit, files, monkeypatch,
                                                              argv, words):
    root, _ = files

    def too_late(*args, **kwargs):
        raise AssertionError("the check must come before this work")

    monkeypatch.setattr("groupcov.api.GroupCovModel.fit", too_late)
    monkeypatch.setattr("groupcov.result.GroupCovResult.load", too_late)
    monkeypatch.setattr("groupcov.datasets.two_groups", too_late)
    code, _, err = run_cli([a.format(root=root, fit=csv_fit[0]) for a in argv])
    _one_line_error(code, err, words)


def test_help_texts_say_what_the_commands_do():
    code, stdout, _ = run_cli(["demo", "--help"])
    assert code == 0 and "94% interval" in " ".join(stdout.split()) and "%%" not in stdout
    code, stdout, _ = run_cli(["compare", "--help"])
    text = " ".join(stdout.split())
    assert "leave one row out (--pointwise row, the default" in text
    assert "leave one group out (--pointwise group" in text
    code, stdout, _ = run_cli(["predict", "--help"])
    assert "--new-group" in stdout and "--traceback" in stdout


def test_library_messages_are_shown_with_command_line_options():
    import xarray as xr

    from groupcov.result import sampling_problems

    rng = np.random.default_rng(0)
    lp = rng.normal(size=(2, 500))
    lp[0] -= 40.0
    diverging = np.zeros((2, 500), bool)
    diverging[0, :3] = True
    stats_ = xr.Dataset({"lp": (("chain", "draw"), lp),
                         "diverging": (("chain", "draw"), diverging)})
    problems = sampling_problems(stats_)
    assert len(problems) == 2
    shown = [cli.flag_form(p) for p in problems]
    assert "refit with a higher --target-accept (e.g. --target-accept 0.99)" in shown[0]
    assert "raise --draws or --chains (a fit's diagnostics are in its report.html)" in shown[1]
    for text in shown:
        assert "target_accept" not in text and "result." not in text and "fit(" not in text


def test_one_group_message_names_the_group_column_and_the_options(tmp_path):
    from groupcov import GroupCovModel
    from groupcov.data import DataError

    df = _labeled_table(["a"] * 3)
    with pytest.raises(DataError, match=r"at least two groups, but column 'g' has 1 \(\['a'\]\)"):
        GroupCovModel(df, group="g")
    with pytest.raises(DataError, match="but the statistics have 1"):
        GroupCovModel(reduce(df, "g"))
    df.to_csv(tmp_path / "one.csv", index=False)
    code, _, err = run_cli(["fit", tmp_path / "one.csv", "--group", "g", "--quiet", "--out",
                            tmp_path / "o"])
    _one_line_error(code, err, ["column 'g'", "has 1 (a)",
                                "pass --means pooled --covariance pooled"])
    assert "means=" not in err and "'group'" not in err


def test_a_closed_output_pipe_ends_quietly(csv_fit, files):
    import subprocess
    import sys

    out, _, _ = csv_fit
    # `groupcov predict ... | head -1`: the reader leaves after the first line
    code = (
        "import sys, groupcov.cli as c; sys.exit(c.main(sys.argv[1:]))"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "predict", str(out), "--group", "g0", "--n", "20000",
         "--seed", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    proc.stdout.readline()
    proc.stdout.close()
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 141, stderr
    assert b"Broken pipe" not in stderr and b"error" not in stderr, stderr
