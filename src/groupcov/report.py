"""A self-contained HTML report of a fit: data, diagnostics, group tables, pooling, plots.

The report is one file: images are embedded as base64 PNG, styles are inline, and
there is no script and no link to anything outside the file.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from groupcov import plots

__all__ = [
    "component_pooling",
    "pooling_factors",
    "render_report",
    "variable_diagnostics",
    "write_report",
]

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif;
       margin: 2rem auto; max-width: 72rem; padding: 0 1rem; color: #1d1d1f;
       background: #ffffff; line-height: 1.4; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; }
h2 { font-size: 1.25rem; border-bottom: 1px solid #ddd; padding-bottom: .2rem;
     margin-top: 2rem; }
h3 { font-size: 1.05rem; margin-bottom: .3rem; }
table { border-collapse: collapse; margin: .4rem 0 1rem; font-size: .9rem; }
th, td { border: 1px solid #ddd; padding: .25rem .55rem; text-align: right; }
th { background: #f4f5f7; }
td.l, th.l { text-align: left; }
.meta { color: #555; }
.box { border-radius: 6px; padding: .6rem .9rem; margin: .6rem 0; }
.warning { background: #fff4e5; border: 1px solid #f0a030; }
.ok { background: #eaf7ee; border: 1px solid #5cb176; }
.bad { color: #b3261e; font-weight: 600; }
figure { margin: 1rem 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #555; font-size: .9rem; }
details { margin: .3rem 0; }
summary { cursor: pointer; font-weight: 600; }
"""

R_HAT_MAX = 1.01
ESS_MIN = 400.0
_REPORTED = ("mu", "sigma", "corr", "mu_pop", "mu_tau", "sigma_pop", "corr_pop", "sd_tau",
             "corr_tau")


def _esc(value) -> str:
    return html.escape(str(value), quote=True)


def _fmt(x: float, digits: int = 3) -> str:
    if x is None or not np.isfinite(x):
        return "n/a"
    if x != 0 and (abs(x) >= 1e5 or abs(x) < 10.0 ** -digits):
        return f"{x:.{digits}g}"
    return f"{x:.{digits}f}"


def _table(header: Sequence[str], rows: Sequence[Sequence], left: int = 1) -> str:
    """An HTML table; the first ``left`` columns are left-aligned."""
    cls = [' class="l"' if i < left else "" for i in range(len(header))]
    head = "".join(f"<th{c}>{_esc(h)}</th>" for c, h in zip(cls, header, strict=True))
    body = "".join(
        "<tr>" + "".join(f"<td{c}>{cell}</td>" for c, cell in zip(cls, row, strict=True)) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _png_tag(fig, alt: str, caption: str) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return (
        f'<figure><img alt="{_esc(alt)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{_esc(caption)}</figcaption></figure>"
    )


class VariableDiagnostics(NamedTuple):
    """Worst convergence statistics of one posterior variable."""

    name: str
    max_r_hat: float
    min_ess_bulk: float
    min_ess_tail: float


def variable_diagnostics(result) -> list[VariableDiagnostics]:
    """Worst R-hat and ESS of each reported variable, and of the sampler's own parameters.

    Parameters
    ----------
    result : GroupCovResult

    Returns
    -------
    list of VariableDiagnostics
        Reported variables first (``mu``, ``sigma``, ``corr``, hyper-parameters), then
        one row ``"(sampler parameters)"`` over every other sampled variable except
        ``cov`` (a function of ``sigma`` and ``corr``).
    """
    from groupcov.result import worst_convergence

    # variables with no free quantity (corr of one feature) have nothing to diagnose
    per_variable = {
        name: d for name, d in result.convergence().items() if np.size(d["r_hat"])
    }
    out = [
        VariableDiagnostics(v, *worst_convergence(per_variable, [v]))
        for v in _REPORTED
        if v in per_variable
    ]
    rest = [v for v in per_variable if v not in _REPORTED]
    if rest:
        out.append(
            VariableDiagnostics("(sampler parameters)", *worst_convergence(per_variable, rest))
        )
    return out


def pooling_factors(result) -> pd.DataFrame:
    """How strongly each group's estimates are pulled toward the population.

    For a group parameter ``theta_g ~ N(loc, tau)`` estimated from the group's rows
    with sampling variance ``v_g``, the posterior mean is about
    ``(1 - lam) * estimate_g + lam * loc`` with ``lam = v_g / (v_g + tau^2)``: 0 keeps the
    group's own estimate, 1 replaces it with the population value. This table holds
    the posterior mean of ``lam`` per group, averaged over features (or over the
    canonical partial correlations), with large-sample variances: ``sigma^2 / n`` for
    means, ``1 / (2 (n - 1))`` for log standard deviations and ``1 / (n - 3 - j)`` for
    ``atanh`` of the partial correlations given ``j`` features (Fisher).

    Parameters
    ----------
    result : GroupCovResult

    Returns
    -------
    pandas.DataFrame
        Index: group. Columns ``rows`` and, for each hierarchical component present,
        ``means``, ``sds``, ``correlations``. Empty columns when no mode is hierarchical.
    """
    post = result.idata.posterior
    n = np.asarray(result.stats.rows_per_group(), dtype=float)
    out = pd.DataFrame({"rows": n.astype(int)}, index=pd.Index(result.groups, name="group"))
    p = len(result.features)

    def flat(name):
        v = post[name].values
        return v.reshape(-1, *v.shape[2:])

    with np.errstate(divide="ignore", invalid="ignore"):
        if "mu_tau" in post:
            tau2 = flat("mu_tau")[:, None, :] ** 2  # (S, 1, p), data units
            v = flat("sigma") ** 2 / n[None, :, None]
            lam = np.where(n[None, :, None] > 0, v / (v + tau2), 1.0)
            out["means"] = lam.mean(axis=(0, 2))
        if "sd_tau" in post:
            tau2 = flat("sd_tau")[:, None, :] ** 2
            v = np.where(n > 1, 1.0 / (2.0 * (n - 1.0)), np.inf)[None, :, None]
            lam = np.where(np.isfinite(v), v / (v + tau2), 1.0)
            out["sds"] = lam.mean(axis=(0, 2))
        if "corr_tau" in post and p > 1:
            tau2 = flat("corr_tau").reshape(-1, 1, 1) ** 2
            cols = np.concatenate([np.full(p - 1 - j, j) for j in range(p - 1)])
            dof = n[:, None] - 3.0 - cols[None, :]
            v = np.where(dof > 0, 1.0 / dof, np.inf)[None]
            lam = np.where(np.isfinite(v), v / (v + tau2), 1.0)
            out["correlations"] = lam.mean(axis=(0, 2))
    return out


def component_pooling(result) -> pd.DataFrame:
    """Pooling factor of each hierarchical component (Gelman & Pardoe 2006).

    With ``e_g = theta_g - theta_pop`` the deviation of group ``g`` from the population
    (means; log standard deviations; ``atanh`` of correlations), the factor is
    ``1 - var_g(E[e_g]) / E[var_g(e_g)]``: near 0 the groups keep their own estimates,
    near 1 they are pooled to the population. Variances are over groups, expectations
    over posterior draws. It needs at least two groups.

    Parameters
    ----------
    result : GroupCovResult

    Returns
    -------
    pandas.DataFrame
        Columns ``component`` (``"means"``, ``"sds"``, ``"correlations"``), ``entry``
        (``mu[x]``, ``sigma[x]``, ``corr[x,y]``) and ``factor``; one row per entry of
        each component that has a population value in the posterior.
    """
    post = result.idata.posterior
    feats = list(result.features)
    rows = []
    if result.stats.n_groups < 2:
        return pd.DataFrame(rows, columns=["component", "entry", "factor"])

    def factor(dev: np.ndarray) -> float:  # dev: (chain, draw, G)
        flat = dev.reshape(-1, dev.shape[-1])
        within = flat.var(axis=1, ddof=1).mean()
        between = flat.mean(axis=0).var(ddof=1)
        return float(1.0 - between / within) if within > 0 else float("nan")

    with np.errstate(divide="ignore", invalid="ignore"):
        if "mu_pop" in post:
            dev = post["mu"].values - post["mu_pop"].values[:, :, None, :]
            rows += [("means", f"mu[{f}]", factor(dev[..., j])) for j, f in enumerate(feats)]
        if "sigma_pop" in post:
            dev = np.log(post["sigma"].values) - np.log(post["sigma_pop"].values)[:, :, None]
            rows += [("sds", f"sigma[{f}]", factor(dev[..., j])) for j, f in enumerate(feats)]
        if "corr_pop" in post:
            for a in range(len(feats)):
                for b in range(a + 1, len(feats)):
                    dev = (np.arctanh(post["corr"].values[..., a, b])
                           - np.arctanh(post["corr_pop"].values[..., a, b])[:, :, None])
                    rows.append(("correlations", f"corr[{feats[a]},{feats[b]}]", factor(dev)))
    return pd.DataFrame(rows, columns=["component", "entry", "factor"])


def _hdi(values: np.ndarray, prob: float) -> tuple[float, float]:
    lo, hi = plots._hdi(np.ravel(values)[:, None], prob)[:, 0]
    return float(lo), float(hi)


#: How the report names the NumPyro back-end's algorithms (``fit(algorithm=...)``).
ALGORITHM_LABELS = {
    "nuts": "NUTS",
    "jittered": "HMC with a U-turn warm-up start and jittered trajectory lengths",
}


def _section_model(result, title: str, source: str | None) -> str:
    post = result.idata.posterior
    attrs = post.attrs
    d = result.diagnostics()
    spec = result.spec
    items = [
        ("means", spec.get("means", "?")),
        ("covariance", spec.get("covariance", "?")),
        ("sampler", attrs.get("sampler", "?")),
        *([("algorithm", ALGORITHM_LABELS.get(attrs["algorithm"], attrs["algorithm"]))]
          if "algorithm" in attrs else []),
        ("draws", f"{d.chains} chains x {d.draws} draws"
                  + (f" after {attrs['tuning_steps']} warm-up steps"
                     if "tuning_steps" in attrs else "")),
    ]
    for key, label in (("target_accept", "target_accept"), ("random_seed", "seed")):
        if key in attrs:
            items.append((label, attrs[key]))
    if "sampling_time" in attrs:
        items.append(("sampling time", f"{float(attrs['sampling_time']):.1f} s"))
    if "groupcov_version" in attrs:
        items.append(("groupcov", attrs["groupcov_version"]))
    if source:
        items.insert(0, ("data", source))
    meta = " · ".join(f"{_esc(k)}: <b>{_esc(v)}</b>" for k, v in items)
    return f"<h1>{_esc(title)}</h1><p class=\"meta\">{meta}</p>"


def _section_data(result) -> str:
    st = result.stats
    rows = st.rows_per_group()
    empty = np.asarray(st.empty_rows)
    count, _, _ = st.available()
    total_rows = rows + empty
    missing = total_rows[:, None] - count  # per group and feature
    feats = list(result.features)
    n_missing = int(missing.sum())
    lines = [
        f"<p>{st.n_groups} group{'s' if st.n_groups != 1 else ''} · {len(feats)} "
        f"feature{'s' if len(feats) != 1 else ''} ({_esc(', '.join(feats))}) · "
        f"{int(total_rows.sum()):,} rows, {int(st.n.sum()):,} with every feature observed.</p>"
    ]
    if n_missing:
        from groupcov.api import never_observed

        empty_rows = int(empty.sum())
        text = (
            f"{n_missing:,} missing feature values in {int((total_rows - st.n).sum()):,} "
            "rows: each row contributes the likelihood of its observed features"
            + (f"; {empty_rows:,} rows with no feature observed carry no information"
               if empty_rows else "") + "."
        )
        unseen = never_observed(st)
        if unseen:
            text += "<ul>" + "".join(f"<li>{_esc(u)}</li>" for u in unseen) + "</ul>"
        lines.append(f'<div class="box warning">{text}</div>')
    else:
        lines.append("<p>Missing values: none.</p>")
    header = ["group", "rows", "complete rows"] + [f"missing {f}" for f in feats]
    body = [
        [_esc(g), f"{int(total_rows[i]):,}", f"{int(st.n[i]):,}"]
        + [f"{int(m):,}" for m in missing[i]]
        for i, g in enumerate(result.groups)
    ]
    lines.append(_table(header, body))
    return "<h2>Data</h2>" + "".join(lines)


def _section_diagnostics(result) -> str:
    d = result.diagnostics()
    total = d.chains * d.draws
    problems = []
    if not d.max_r_hat <= R_HAT_MAX:
        problems.append(f"R-hat up to {_fmt(d.max_r_hat)} (above {R_HAT_MAX}): the chains "
                        "disagree")
    if not min(d.min_ess_bulk, d.min_ess_tail) >= ESS_MIN:
        problems.append(
            f"effective sample size down to {_fmt(min(d.min_ess_bulk, d.min_ess_tail), 0)} "
            f"(below {ESS_MIN:.0f}): intervals are imprecise"
        )
    if d.divergences:
        problems.append(f"{d.divergences} divergent transitions ({d.divergences / total:.1%} "
                        "of draws): the sampler missed part of the posterior")
    from groupcov.result import stopped_at_max_depth

    stopped = stopped_at_max_depth(result.sample_stats)
    if stopped:
        problems.append(
            f"{stopped} of {total:,} draws stopped at the sampler's maximum tree depth "
            "before a U-turn: it moves slowly through this posterior (very different "
            "scales or strong correlations)"
        )
    if problems:
        box = (
            '<div class="box warning"><b>Warning: the sampler diagnostics are not good.</b>'
            "<ul>" + "".join(f"<li>{_esc(p)}</li>" for p in problems) + "</ul>"
            "Run more warm-up steps and draws (<code>--tune</code>, <code>--draws</code>), "
            "more chains, or a higher <code>target_accept</code>; do not trust the numbers "
            "below until these pass.</div>"
        )
    else:
        box = (
            f'<div class="box ok">Diagnostics pass: max R-hat {_fmt(d.max_r_hat)} '
            f"(≤ {R_HAT_MAX}), min ESS {_fmt(min(d.min_ess_bulk, d.min_ess_tail), 0)} "
            f"(≥ {ESS_MIN:.0f}), no divergences.</div>"
        )
    rows = []
    for v in variable_diagnostics(result):
        r_cls = "" if v.max_r_hat <= R_HAT_MAX or not np.isfinite(v.max_r_hat) else "bad"
        b_cls = "" if v.min_ess_bulk >= ESS_MIN else "bad"
        t_cls = "" if v.min_ess_tail >= ESS_MIN else "bad"
        rows.append([
            _esc(v.name),
            f'<span class="{r_cls}">{_fmt(v.max_r_hat)}</span>',
            f'<span class="{b_cls}">{_fmt(v.min_ess_bulk, 0)}</span>',
            f'<span class="{t_cls}">{_fmt(v.min_ess_tail, 0)}</span>',
        ])
    table = _table(["variable", "max R-hat", "min bulk ESS", "min tail ESS"], rows)
    div = f"<p>Divergent transitions: <b>{d.divergences}</b> of {total:,} draws.</p>"
    return "<h2>Sampler diagnostics</h2>" + box + div + table


def _section_pooling(result, hdi_prob: float) -> str:
    post = result.idata.posterior
    spec = result.spec
    hier = [k for k in ("means", "covariance") if spec.get(k) == "hierarchical"]
    if not hier and not any(v in post for v in ("mu_tau", "sd_tau", "corr_tau")):
        return (
            "<h2>Pooling</h2><p>No hierarchical component: groups are either fully pooled "
            "or estimated independently.</p>"
        )
    feats = list(result.features)
    pct = f"{hdi_prob:.0%} HDI"
    rows = []
    described = {
        "mu_tau": ("between-group sd of means", "data units"),
        "sd_tau": ("between-group sd of log sds", "log scale"),
    }
    for name, (what, unit) in described.items():
        if name in post:
            for j, f in enumerate(feats):
                draws = post[name].values[..., j]
                lo, hi = _hdi(draws, hdi_prob)
                rows.append([_esc(f"{name}[{f}]"), _esc(what), _esc(unit),
                             _fmt(float(draws.mean())), f"[{_fmt(lo)}, {_fmt(hi)}]"])
    if "corr_tau" in post:
        draws = post["corr_tau"].values
        lo, hi = _hdi(draws, hdi_prob)
        rows.append(["corr_tau", "between-group sd of partial correlations", "atanh scale",
                     _fmt(float(draws.mean())), f"[{_fmt(lo)}, {_fmt(hi)}]"])
    parts = [
        "<h2>Pooling strength</h2>",
        "<p>Hierarchical components draw each group's parameters from a population "
        "distribution whose spread (tau) is estimated: a small tau pools the groups "
        "strongly, a large tau leaves them nearly independent.</p>",
        _table(["parameter", "meaning", "scale", "mean", pct], rows, left=3),
    ]
    pop_rows = []
    for name in ("mu_pop", "sigma_pop"):
        if name in post:
            for j, f in enumerate(feats):
                draws = post[name].values[..., j]
                lo, hi = _hdi(draws, hdi_prob)
                pop_rows.append([_esc(f"{name}[{f}]"), _fmt(float(draws.mean())),
                                 f"[{_fmt(lo)}, {_fmt(hi)}]"])
    if "corr_pop" in post:
        for a in range(len(feats)):
            for b in range(a + 1, len(feats)):
                draws = post["corr_pop"].values[..., a, b]
                lo, hi = _hdi(draws, hdi_prob)
                pop_rows.append([_esc(f"corr_pop[{feats[a]},{feats[b]}]"),
                                 _fmt(float(draws.mean())), f"[{_fmt(lo)}, {_fmt(hi)}]"])
    if pop_rows:
        parts += ["<h3>Population values</h3>", _table(["parameter", "mean", pct], pop_rows)]
    comp = component_pooling(result)
    if len(comp):
        parts.append(
            "<h3>Pooling factor per parameter</h3><p>Gelman &amp; Pardoe (2006): "
            "1 &minus; var<sub>g</sub>(E[e<sub>g</sub>]) / E[var<sub>g</sub>(e<sub>g</sub>)], "
            "e<sub>g</sub> the deviation of group g from the population value; near 0 the "
            "groups keep their own estimates, near 1 they are pooled.</p>"
        )
        parts.append(_table(
            ["component", "parameter", "pooling factor"],
            [[_esc(c), _esc(e), _fmt(f, 2)] for c, e, f in comp.itertuples(index=False)],
            left=2,
        ))
    factors = pooling_factors(result)
    cols = [c for c in ("means", "sds", "correlations") if c in factors]
    if cols:
        parts.append(
            "<h3>Pooling factor per group</h3><p>0: the group keeps its own estimate; 1: "
            "it takes the population value. Posterior mean of v / (v + tau²), v the "
            "large-sample variance of the group's own estimate, averaged over features; "
            "an approximation that ignores correlations between features.</p>"
        )
        body = [
            [_esc(g), f"{int(factors.loc[g, 'rows']):,}"] + [_fmt(factors.loc[g, c], 2)
                                                              for c in cols]
            for g in factors.index
        ]
        parts.append(_table(["group", "rows", *cols], body))
    return "".join(parts)


def _section_groups(result, hdi_prob: float, max_groups: int) -> str:
    post = result.idata.posterior
    feats = list(result.features)
    groups = result.groups[:max_groups]
    n = result.stats.rows_per_group()
    pct = f"{hdi_prob:.0%} HDI"
    parts = ["<h2>Groups</h2>",
             f"<p>Posterior means with {pct}s, in the data's units.</p>"]
    if len(result.groups) > max_groups:
        parts.append(f"<p>The first {max_groups} of {len(result.groups)} groups are shown; "
                     "summary.csv holds all of them.</p>")
    mu, sigma, corr = (post[v].values for v in ("mu", "sigma", "corr"))
    for gi, g in enumerate(groups):
        rows = []
        for j, f in enumerate(feats):
            m_lo, m_hi = _hdi(mu[..., gi, j], hdi_prob)
            s_lo, s_hi = _hdi(sigma[..., gi, j], hdi_prob)
            rows.append([_esc(f), _fmt(float(mu[..., gi, j].mean())),
                         f"[{_fmt(m_lo)}, {_fmt(m_hi)}]",
                         _fmt(float(sigma[..., gi, j].mean())), f"[{_fmt(s_lo)}, {_fmt(s_hi)}]"])
        block = _table(["feature", "mean", pct, "sd", pct], rows)
        if len(feats) > 1:
            crow = []
            for a, f in enumerate(feats):
                cells = [_esc(f)]
                for b in range(len(feats)):
                    if b == a:
                        cells.append("1")
                    elif b > a:
                        cells.append("")
                    else:
                        lo, hi = _hdi(corr[..., gi, a, b], hdi_prob)
                        cells.append(f"{_fmt(float(corr[..., gi, a, b].mean()), 2)} "
                                     f"[{_fmt(lo, 2)}, {_fmt(hi, 2)}]")
                crow.append(cells)
            block += "<p>Correlations:</p>" + _table(["", *feats], crow)
        opened = " open" if gi < 6 else ""
        parts.append(
            f"<details{opened}><summary>{_esc(g)} ({int(n[gi]):,} rows)</summary>{block}"
            "</details>"
        )
    return "".join(parts)


def _section_plots(result, data, group_column, unpooled, max_groups: int) -> str:
    feats = list(result.features)
    groups = result.groups[:max_groups]
    parts = ["<h2>Plots</h2>"]
    shown = feats[: plots.PAIRS_MAX_FEATURES]
    subset = (f" Features: the first {len(shown)} of {len(feats)}."
              if len(shown) < len(feats) else "")
    if len(feats) == 2:
        fig = plots.ellipses(result, groups=groups, data=data, group_column=group_column)
    else:
        fig = plots.pairs(result, shown, groups=groups, data=data, group_column=group_column)
    caption = (
        "Each group's 90% ellipse at its posterior mean covariance; the band spans 94% of "
        "the ellipses of posterior draws." if len(feats) > 1 else
        "Each group's normal density at its posterior mean and standard deviation."
    )
    parts.append(_png_tag(fig, "covariance ellipses" if len(feats) > 1 else "densities",
                          caption
                          + (" Points: the data." if data is not None and len(feats) > 1
                             else " Bars: the data." if data is not None else "")
                          + (subset + " groupcov.plots.pairs(result, features=[...]) draws "
                             "others." if subset else "")))
    if len(feats) > 1:
        pairs = [(a, b) for i, a in enumerate(shown) for b in shown[i + 1:]]
        fig = plots.correlation_forest(result, pairs=pairs, groups=groups)
        parts.append(_png_tag(fig, "correlation forest",
                              "Posterior mean and 94% HDI of each group's correlations."
                              + subset))
    spec = result.spec
    params = []
    if spec.get("means") == "hierarchical":
        params.append("mu")
    if spec.get("covariance") == "hierarchical":
        params += ["sigma"] + (["corr"] if len(feats) > 1 else [])
    for param in params:
        fig = plots.shrinkage(result, unpooled, parameter=param, groups=groups, features=shown)
        left = "an unpooled fit" if unpooled is not None else "each group's sample estimate"
        parts.append(_png_tag(fig, f"shrinkage of {param}",
                              f"Shrinkage of {param}: {left} (left) against this fit (right); "
                              "marker area grows with the group's rows." + subset))
    return "".join(parts)


def render_report(
    result,
    *,
    data: pd.DataFrame | None = None,
    group_column: str | None = None,
    unpooled=None,
    title: str = "groupcov report",
    source: str | None = None,
    hdi_prob: float = 0.94,
    max_groups: int = 40,
) -> str:
    """The HTML text of the report.

    Parameters
    ----------
    result : GroupCovResult
    data : pandas.DataFrame, optional
        The rows, to draw under the ellipses (needs ``group_column``).
    group_column : str, optional
        Column of ``data`` holding the group labels.
    unpooled : GroupCovResult, optional
        An unpooled fit of the same data, for the shrinkage plots.
    title : str
        Heading of the report.
    source : str, optional
        Where the data came from (a file name), shown under the title.
    hdi_prob : float
        Probability of the intervals in the tables.
    max_groups : int
        Groups shown in the group tables and plots (all are in the diagnostics).

    Returns
    -------
    str
    """
    body = [
        _section_model(result, title, source),
        _section_diagnostics(result),
        _section_data(result),
        _section_pooling(result, hdi_prob),
        _section_groups(result, hdi_prob, max_groups),
        _section_plots(result, data, group_column, unpooled, max_groups),
    ]
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_esc(title)}</title><style>{_CSS}</style></head><body>"
        + "\n".join(body)
        + '<p class="meta">Made with groupcov.</p></body></html>\n'
    )


def write_report(result, path, **kwargs) -> Path:
    """Write :func:`render_report` to ``path`` (UTF-8) and return the path.

    Parameters
    ----------
    result : GroupCovResult
    path : str or os.PathLike
        The ``.html`` file to write.
    **kwargs
        Passed to :func:`render_report`.

    Returns
    -------
    pathlib.Path
    """
    path = Path(path)
    path.write_text(render_report(result, **kwargs), encoding="utf-8")
    return path
