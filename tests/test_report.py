"""HTML report: content against the posterior, self-containment, and a real browser render."""

import base64
import html
import io
import json
import re
import shutil
import subprocess
import warnings

import arviz as az
import matplotlib.image
import numpy as np
import pytest
import xarray as xr

import groupcov
from groupcov.datasets import simulate_groups
from groupcov.report import component_pooling, pooling_factors, render_report, write_report
from groupcov.result import GroupCovResult
from test_plots import _fake_result, one_feature_fit

CHROMIUM = next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None
)


@pytest.fixture(scope="module")
def fitted():
    sim = simulate_groups(3, [15, 50, 120], 3, seed=4)
    df = sim.data.copy()
    rng = np.random.default_rng(0)
    df.loc[rng.choice(len(df), 12, replace=False), "x1"] = np.nan
    df.loc[rng.choice(len(df), 5, replace=False), "x2"] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = groupcov.GroupCovModel(df, group="group", features=sim.features)
    result = model.fit(draws=200, tune=200, chains=2, random_seed=1, progressbar=False)
    return result, df


@pytest.fixture(scope="module")
def report_file(fitted, tmp_path_factory):
    result, df = fitted
    path = tmp_path_factory.mktemp("report") / "report.html"
    write_report(result, path, data=df, group_column="group", source="sim.csv")
    return path


def _cells(text: str) -> list[str]:
    return [html.unescape(re.sub(r"<[^>]+>", "", c)).strip()
            for c in re.findall(r"<td[^>]*>(.*?)</td>", text, flags=re.S)]


def _group_block(text: str, group: str) -> str:
    start = text.index(f"<summary>{group} (")
    return text[start: text.index("</details>", start)]


def test_report_is_self_contained(report_file):
    text = report_file.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    for forbidden in ("http://", "https://", "<script", "<link", "<iframe", "url("):
        assert forbidden not in text, forbidden
    sources = re.findall(r'<img [^>]*src="([^"]+)"', text)
    assert len(sources) >= 5  # ellipses, forest, three shrinkage plots
    for src in sources:
        assert src.startswith("data:image/png;base64,")
        img = matplotlib.image.imread(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))
        assert img.shape[0] > 100 and img.shape[1] > 100


def test_group_tables_match_the_posterior(fitted, report_file):
    result, _ = fitted
    text = report_file.read_text(encoding="utf-8")
    post = result.idata.posterior
    for gi, g in enumerate(result.groups):
        cells = _cells(_group_block(text, g))
        for j, f in enumerate(result.features):
            row = cells[cells.index(f) + 1: cells.index(f) + 5]
            mu = post["mu"].values[:, :, gi, j].ravel()
            sd = post["sigma"].values[:, :, gi, j].ravel()
            assert float(row[0]) == pytest.approx(mu.mean(), abs=6e-4)
            assert float(row[2]) == pytest.approx(sd.mean(), abs=6e-4)
            lo, hi = az.hdi(mu, hdi_prob=0.94)
            assert row[1] == f"[{lo:.3f}, {hi:.3f}]"
        corr = post["corr"].values[:, :, gi, 2, 0].mean()
        assert f"{corr:.2f} [" in " ".join(cells)


def test_data_section_counts_missing_values_per_group(fitted, report_file):
    _, df = fitted
    text = report_file.read_text(encoding="utf-8")
    section = text[text.index("<h2>Data</h2>"): text.index("<h2>Pooling")]
    assert f"{df[['x1', 'x2']].isna().to_numpy().sum()} missing feature values" in section
    cells = _cells(section)
    for g, rows in df.groupby("group"):
        i = cells.index(g)
        expected = [len(rows), len(rows.dropna()), *rows[["x0", "x1", "x2"]].isna().sum()]
        assert [int(c.replace(",", "")) for c in cells[i + 1: i + 6]] == expected


def test_diagnostics_section_matches_and_warns(fitted, report_file):
    result, _ = fitted
    text = report_file.read_text(encoding="utf-8")
    d = result.diagnostics()
    section = text[text.index("<h2>Sampler diagnostics"): text.index("<h2>Data")]
    assert f"Divergent transitions: <b>{d.divergences}</b>" in section
    worst_rhat = max(float(c) for c in _cells(section)[1::4] if c != "n/a")
    assert worst_rhat == pytest.approx(d.max_r_hat, abs=6e-4)
    assert ("Warning: the sampler diagnostics are not good" in section) == (not d.ok)

    # the same fit with divergences added must warn about them
    idata = result.idata.copy()
    div = np.zeros_like(idata.sample_stats["diverging"].values, dtype=bool)
    div[0, :7] = True
    idata.sample_stats["diverging"] = (idata.sample_stats["diverging"].dims, div)
    bad = render_report(GroupCovResult(idata, result.stats, result.spec))
    assert "Warning: the sampler diagnostics are not good" in bad
    assert "7 divergent transitions" in bad
    # and about draws stopped at the maximum tree depth
    idata = result.idata.copy()
    stopped = np.zeros_like(div)
    stopped[1, :3] = True
    idata.sample_stats["reached_max_treedepth"] = (idata.sample_stats["diverging"].dims, stopped)
    slow = render_report(GroupCovResult(idata, result.stats, result.spec))
    assert "3 of 400 draws stopped at the sampler&#x27;s maximum tree depth" in slow


def test_report_states_how_to_reproduce_the_fit(report_file):
    import groupcov

    meta = report_file.read_text(encoding="utf-8").split('<p class="meta">')[1].split("</p>")[0]
    for part in ("target_accept: <b>0.95</b>", "seed: <b>1</b>",
                 f"groupcov: <b>{groupcov.__version__}</b>", "sampler: <b>numpyro</b>",
                 "algorithm: <b>NUTS</b>"):
        assert part in meta, meta


def test_convergence_is_computed_once_and_feeds_both_summaries(fitted):
    from groupcov.diagnostics import summarize
    from groupcov.report import variable_diagnostics

    result, _ = fitted
    per_variable = result.convergence()
    assert result.convergence() is per_variable and "cov" not in per_variable
    sigma = result.posterior["sigma"].transpose("chain", "draw", ...).values
    want = summarize(sigma.reshape(*sigma.shape[:2], -1), columns=("r_hat",))["r_hat"]
    row = next(v for v in variable_diagnostics(result) if v.name == "sigma")
    assert row.max_r_hat == pytest.approx(want.max(), rel=1e-12)
    assert result.diagnostics().max_r_hat == pytest.approx(
        max(np.nanmax(d["r_hat"]) for d in per_variable.values()), rel=1e-12
    )


def _iid_result():
    """Independent draws: diagnostics pass, no hierarchical component."""
    result, _, _ = _fake_result(seed=3, chains=4, draws=500, population=False)
    idata = result.idata
    idata.add_groups(sample_stats=xr.Dataset(
        {"diverging": (("chain", "draw"), np.zeros((4, 500), dtype=bool))},
        coords={"chain": np.arange(4), "draw": np.arange(500)},
    ))
    return GroupCovResult(idata, result.stats, {"means": "unpooled", "covariance": "unpooled"})


def test_clean_fit_gets_no_warning_and_no_pooling_tables():
    text = render_report(_iid_result())
    assert "Diagnostics pass" in text and "Warning:" not in text
    assert "No hierarchical component" in text
    assert "Missing values: none." in text
    assert len(re.findall(r"<img ", text)) == 2  # ellipse grid and forest, no shrinkage


def test_pooling_factors_by_hand():
    result = _iid_result()
    post = result.idata.posterior
    shape = (post.sizes["chain"], post.sizes["draw"])
    p = len(result.features)
    sigma = np.broadcast_to(np.array([1.0, 2.0, 0.5]), (*shape, 3, p)).copy()
    idata = az.from_dict(
        posterior={"mu": post["mu"].values, "sigma": sigma, "corr": post["corr"].values,
                   "cov": post["cov"].values,
                   "mu_tau": np.full((*shape, p), 0.3), "sd_tau": np.full((*shape, p), 0.2),
                   "corr_tau": np.full(shape, 0.25)},
        coords={"group": result.groups, "feature": result.features,
                "feature_": result.features},
        dims={"mu": ["group", "feature"], "sigma": ["group", "feature"],
              "corr": ["group", "feature", "feature_"], "cov": ["group", "feature", "feature_"],
              "mu_tau": ["feature"], "sd_tau": ["feature"]},
    )
    res = GroupCovResult(idata, result.stats, {})
    table = pooling_factors(res)
    n = np.asarray(result.stats.n, dtype=float)
    for gi, g in enumerate(result.groups):
        v = np.array([1.0, 2.0, 0.5]) ** 2 / n[gi]
        assert table.loc[g, "means"] == pytest.approx(np.mean(v / (v + 0.09)), rel=1e-12)
        v = 1.0 / (2.0 * (n[gi] - 1.0))
        assert table.loc[g, "sds"] == pytest.approx(v / (v + 0.04), rel=1e-12)
        v = 1.0 / (n[gi] - 3.0 - np.array([0, 0, 1]))  # CPCs (1,0), (2,0), (2,1)
        assert table.loc[g, "correlations"] == pytest.approx(np.mean(v / (v + 0.0625)))


def test_component_pooling_by_brute_force(fitted, report_file):
    result, _ = fitted
    post = result.idata.posterior
    table = component_pooling(result)
    assert list(table.component.unique()) == ["means", "sds", "correlations"]
    assert len(table) == 3 + 3 + 3

    def by_hand(theta, pop):  # theta: list over groups of draw arrays
        groups = len(theta)
        dev = [theta[g].ravel() - pop.ravel() for g in range(groups)]
        n_draws = len(dev[0])
        within = np.mean([np.var([dev[g][s] for g in range(groups)], ddof=1)
                          for s in range(n_draws)])
        between = np.var([dev[g].mean() for g in range(groups)], ddof=1)
        return 1.0 - between / within

    g = range(len(result.groups))
    row = table.set_index("entry").factor
    assert row["mu[x1]"] == pytest.approx(
        by_hand([post["mu"].values[:, :, i, 1] for i in g], post["mu_pop"].values[..., 1]))
    assert row["sigma[x2]"] == pytest.approx(
        by_hand([np.log(post["sigma"].values[:, :, i, 2]) for i in g],
                np.log(post["sigma_pop"].values[..., 2])))
    assert row["corr[x0,x2]"] == pytest.approx(
        by_hand([np.arctanh(post["corr"].values[:, :, i, 0, 2]) for i in g],
                np.arctanh(post["corr_pop"].values[..., 0, 2])))
    text = report_file.read_text(encoding="utf-8")
    cells = _cells(text[text.index("Pooling factor per parameter"):])
    assert cells[cells.index("mu[x1]") + 1] == f"{row['mu[x1]']:.2f}"


# ---------------------------------------------------------------- real browser

_PROBE = """<script>
window.__errors = [];
window.addEventListener('error', function (e) {
  var t = e.target || {};
  window.__errors.push(e.message || ('failed to load ' + (t.src || t.href || t.tagName)));
}, true);
var __err = console.error;
console.error = function () {
  window.__errors.push(Array.prototype.join.call(arguments, ' '));
  __err.apply(console, arguments);
};
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images).map(function (i) {
    return {complete: i.complete, width: i.naturalWidth, height: i.naturalHeight};
  });
  document.documentElement.setAttribute('data-probe',
    JSON.stringify({images: imgs, errors: window.__errors}));
});
</script>"""


def _chromium(args, tmp_path, timeout=90):
    cmd = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--disable-extensions", "--hide-scrollbars", f"--user-data-dir={tmp_path / 'profile'}",
        "--host-resolver-rules=MAP * ~NOTFOUND", "--enable-logging=stderr", "--v=0",
        "--virtual-time-budget=10000", *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def browser_check(page, tmp_path):
    """Render ``page`` in headless chromium: console errors, image status, screenshot."""
    text = page.read_text(encoding="utf-8")
    probe = tmp_path / ("probe-" + page.name)
    probe.write_text(text.replace("<head>", "<head>" + _PROBE, 1), encoding="utf-8")
    dom = _chromium(["--dump-dom", probe.as_uri()], tmp_path)
    match = re.search(r'data-probe="([^"]*)"', dom.stdout)
    assert match, f"the page did not finish loading: {dom.stderr[-1500:]}"
    status = json.loads(html.unescape(match.group(1)))
    console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line]
    shot = tmp_path / ("shot-" + page.stem + ".png")
    run = _chromium([f"--screenshot={shot}", "--window-size=1200,1800", page.as_uri()],
                    tmp_path)
    assert shot.exists(), run.stderr[-1500:]
    return status, console, matplotlib.image.imread(shot)


def _ink(img) -> float:
    """Fraction of pixels that are not (near) white."""
    return float((img[..., :3].min(axis=-1) < 0.9).mean())


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install "
                    "chromium; .ci/run installs it)")
def test_report_renders_in_headless_chromium(report_file, tmp_path):
    status, console, img = browser_check(report_file, tmp_path)
    assert status["errors"] == [] and console == [], (status["errors"], console)
    assert len(status["images"]) >= 5
    for im in status["images"]:
        assert im["complete"] and im["width"] > 100 and im["height"] > 100, im
    assert img.shape[0] >= 1000 and img.shape[1] >= 1000
    assert _ink(img) > 0.03  # text, tables and the first plots are on screen
    assert len(np.unique(img[..., :3].reshape(-1, 3), axis=0)) > 50


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_browser_check_catches_broken_pages(tmp_path):
    """The checks above can fail: a missing image, a script error, an empty page."""
    broken = tmp_path / "broken.html"
    broken.write_text(
        "<!DOCTYPE html><html><head></head><body><img src='missing.png'>"
        "<script>console.error('boom'); undefined_function();</script></body></html>",
        encoding="utf-8",
    )
    status, console, img = browser_check(broken, tmp_path)
    assert status["images"][0]["width"] == 0
    assert any("boom" in e for e in status["errors"])
    assert any("undefined_function" in e for e in status["errors"])
    assert console
    assert _ink(img) < 0.001


def test_one_feature_report_has_no_empty_correlation_row():
    from groupcov.report import variable_diagnostics

    result, _ = one_feature_fit()
    names = [v.name for v in variable_diagnostics(result)]
    assert "corr" not in names and {"mu", "sigma"} <= set(names)
    assert all(np.isfinite(v.max_r_hat) for v in variable_diagnostics(result))
    assert "1 feature (v)" in render_report(result)
