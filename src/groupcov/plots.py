"""Plots of fitted group covariances: ellipses, pair grids, correlation forests, shrinkage.

Every function returns a :class:`matplotlib.figure.Figure` built without ``pyplot``:
no global state (backend, rcParams, current figure) is touched, figures are drawn
with Agg when saved, and notebooks display them as usual. Restyle the returned
figure through its axes (``fig.axes``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import PathPatch
from matplotlib.path import Path

__all__ = [
    "EllipseBand",
    "correlation_forest",
    "ellipse_band",
    "ellipse_points",
    "ellipses",
    "pairs",
    "sample_estimates",
    "shrinkage",
]

_LEGEND_MAX = 12


def ellipse_points(mean, cov, mass: float = 0.9, n_points: int = 181) -> np.ndarray:
    """Points on the contour of a bivariate normal that holds ``mass`` of its probability.

    The contour is ``(x - mean)^T cov^{-1} (x - mean) = k^2`` with
    ``k^2 = -2 log(1 - mass)`` (the chi-square quantile with 2 degrees of freedom).

    Parameters
    ----------
    mean : array_like, shape ``(2,)``
    cov : array_like, shape ``(2, 2)``
        Positive definite covariance.
    mass : float
        Probability inside the contour, in (0, 1).
    n_points : int
        Points on the closed curve (the first is repeated at the end).

    Returns
    -------
    numpy.ndarray, shape ``(n_points, 2)``

    Examples
    --------
    >>> pts = ellipse_points([0.0, 0.0], [[4.0, 0.0], [0.0, 1.0]], mass=1 - np.exp(-0.5))
    >>> np.allclose((pts[:, 0] / 2) ** 2 + pts[:, 1] ** 2, 1.0)
    True
    """
    _check_mass(mass)
    k = np.sqrt(-2.0 * np.log1p(-mass))
    t = np.linspace(0.0, 2.0 * np.pi, n_points)
    circle = np.stack([np.cos(t), np.sin(t)], axis=-1)
    chol = np.linalg.cholesky(np.asarray(cov, dtype=float))
    return np.asarray(mean, dtype=float) + k * circle @ chol.T


class EllipseBand(NamedTuple):
    """Inner and outer boundary of the posterior band of a covariance ellipse.

    Along each ray from ``center`` (direction angle ``angles``), ``inner`` and
    ``outer`` are the lower and upper quantiles, over posterior draws, of the
    distance at which the ray leaves each draw's ellipse.
    """

    center: np.ndarray
    angles: np.ndarray
    inner: np.ndarray
    outer: np.ndarray

    def polygon(self) -> tuple[np.ndarray, np.ndarray]:
        """Closed curves ``(outer, inner)``, each of shape ``(n, 2)``."""
        u = np.stack([np.cos(self.angles), np.sin(self.angles)], axis=-1)
        return self.center + self.outer[:, None] * u, self.center + self.inner[:, None] * u


def ellipse_band(
    center,
    means,
    covs,
    mass: float = 0.9,
    prob: float = 0.94,
    n_points: int = 181,
) -> EllipseBand:
    """Band of ellipses from posterior draws, measured along rays from ``center``.

    Parameters
    ----------
    center : array_like, shape ``(2,)``
        Origin of the rays (the posterior mean of the group mean).
    means : array_like, shape ``(S, 2)``
        Mean of each draw.
    covs : array_like, shape ``(S, 2, 2)``
        Covariance of each draw.
    mass : float
        Probability inside each draw's ellipse.
    prob : float
        Central probability of the band: quantiles ``(1 - prob) / 2`` and
        ``(1 + prob) / 2`` of the exit distance along each ray.
    n_points : int
        Number of rays.

    Returns
    -------
    EllipseBand

    Examples
    --------
    >>> covs = np.array([np.eye(2), 4.0 * np.eye(2)])
    >>> b = ellipse_band([0.0, 0.0], np.zeros((2, 2)), covs, mass=1 - np.exp(-0.5), prob=1.0)
    >>> np.allclose(b.inner, 1.0), np.allclose(b.outer, 2.0)
    (True, True)
    """
    _check_mass(mass)
    if not 0.0 < prob <= 1.0:
        raise ValueError(f"prob= must be in (0, 1], not {prob!r}")
    center = np.asarray(center, dtype=float)
    means = np.asarray(means, dtype=float)
    covs = np.asarray(covs, dtype=float)
    k2 = -2.0 * np.log1p(-mass)
    angles = np.linspace(0.0, 2.0 * np.pi, n_points)
    u = np.stack([np.cos(angles), np.sin(angles)], axis=-1)  # (T, 2)
    d = center - means  # (S, 2)
    # a t^2 + b t + c = 0 with x = center + t u on (x - m)^T cov^-1 (x - m) = k^2
    rhs = np.concatenate([np.broadcast_to(u.T, (len(covs), 2, len(u))), d[:, :, None]], -1)
    solved = np.linalg.solve(covs, rhs)  # cov^-1 [u_1 ... u_T, d] per draw
    a = np.einsum("ti,sit->st", u, solved[:, :, :-1])
    b = 2.0 * np.einsum("ti,si->st", u, solved[:, :, -1])
    c = np.einsum("si,si->s", d, solved[:, :, -1])[:, None] - k2
    disc = b**2 - 4.0 * a * c
    with np.errstate(invalid="ignore"):
        t = (-b + np.sqrt(disc)) / (2.0 * a)
    t = np.where((disc >= 0) & (t > 0), t, np.nan)
    lo, hi = (1.0 - prob) / 2.0, (1.0 + prob) / 2.0
    return EllipseBand(center, angles, _column_quantile(t, lo), _column_quantile(t, hi))


def _column_quantile(t: np.ndarray, q: float) -> np.ndarray:
    """``np.nanquantile(t, q, axis=0)`` (linear interpolation) without its per-column
    Python loop, which NaNs trigger: sorting puts NaNs last, so each column's valid
    values lead.

    >>> t = np.array([[1.0, np.nan], [3.0, 2.0], [np.nan, np.nan], [2.0, 4.0]])
    >>> _column_quantile(t, 0.25), np.nanquantile(t, 0.25, axis=0)
    (array([1.5, 2.5]), array([1.5, 2.5]))
    """
    ordered = np.sort(t, axis=0)
    valid = np.sum(~np.isnan(t), axis=0)
    pos = q * np.maximum(valid - 1, 0)
    below = np.floor(pos).astype(int)
    above = np.minimum(below + 1, np.maximum(valid - 1, 0))
    cols = np.arange(t.shape[1])
    low, high = ordered[below, cols], ordered[above, cols]
    with np.errstate(invalid="ignore"):
        out = low + (pos - below) * (high - low)
    return np.where(valid > 0, out, np.nan)


def _check_mass(mass: float) -> None:
    if not 0.0 < mass < 1.0:
        raise ValueError(f"mass= must be in (0, 1), not {mass!r}")


def _colors(groups: Sequence) -> dict:
    return {g: f"C{i % 10}" for i, g in enumerate(groups)}


def _select_groups(result, groups) -> list:
    known = list(result.groups)
    if groups is None:
        return known
    groups = list(groups)
    unknown = [g for g in groups if g not in known]
    if unknown:
        raise KeyError(f"unknown group(s) {unknown}; groups are {known}")
    return groups


def _feature_index(result, name) -> int:
    feats = list(result.features)
    if name not in feats:
        raise KeyError(f"unknown feature {name!r}; features are {feats}")
    return feats.index(name)


def _thin(values: np.ndarray, n_draws: int | None) -> np.ndarray:
    """Flatten ``(chain, draw, ...)`` and keep at most ``n_draws`` evenly spaced draws."""
    flat = values.reshape(-1, *values.shape[2:])
    if n_draws is None or n_draws >= len(flat):
        return flat
    idx = np.linspace(0, len(flat) - 1, n_draws).round().astype(int)
    return flat[idx]


def _group_rows(data, group_column, groups, x: str, y: str) -> dict:
    if data is None:
        return {}
    if group_column is None:
        raise ValueError("pass group_column= to name the group column of data=")
    missing = [c for c in (group_column, x, y) if c not in data.columns]
    if missing:
        raise KeyError(f"column(s) {missing} not found in data=; columns are {list(data.columns)}")
    labels = data[group_column].to_numpy()
    return {g: data.loc[labels == g, [x, y]].to_numpy(dtype=float) for g in groups}


def _pair_cov(post, g, i: int, j: int) -> np.ndarray:
    """Draws ``(chain, draw, 2, 2)`` of the covariance of features ``i, j`` in group ``g``.

    From ``cov`` when the posterior holds it, else from ``sigma`` and ``corr``.
    """
    if "cov" in post:
        return post["cov"].sel(group=g).values[..., [i, j], :][..., [i, j]]
    sd = post["sigma"].sel(group=g).values[..., [i, j]]
    corr = post["corr"].sel(group=g).values[..., [i, j], :][..., [i, j]]
    return sd[..., :, None] * sd[..., None, :] * corr


def _draw_ellipses(ax, result, i: int, j: int, groups, colors, rows, mass, band, n_draws,
                   max_points) -> None:
    post = result.idata.posterior
    for g in groups:
        mu = post["mu"].sel(group=g).values[..., [i, j]]
        cov = _pair_cov(post, g, i, j)
        color = colors[g]
        pts = rows.get(g)
        if pts is not None and len(pts):
            if max_points is not None and len(pts) > max_points:
                keep = np.linspace(0, len(pts) - 1, max_points).round().astype(int)
                pts = pts[keep]
            ax.scatter(pts[:, 0], pts[:, 1], s=6, color=color, alpha=0.35, linewidths=0,
                       gid=f"points:{g}")
        center = mu.reshape(-1, 2).mean(axis=0)
        mean_cov = cov.reshape(-1, 2, 2).mean(axis=0)
        if band is not None:
            b = ellipse_band(center, _thin(mu, n_draws), _thin(cov, n_draws), mass, band)
            outer, inner = b.polygon()
            verts = np.concatenate([outer, inner[::-1]])
            codes = np.full(len(verts), Path.LINETO)
            codes[0] = codes[len(outer)] = Path.MOVETO
            patch = PathPatch(Path(verts, codes), facecolor=color, edgecolor="none",
                              alpha=0.25, gid=f"band:{g}")
            ax.add_patch(patch)
        curve = ellipse_points(center, mean_cov, mass)
        ax.plot(curve[:, 0], curve[:, 1], color=color, lw=1.8, label=str(g), gid=f"ellipse:{g}")
        ax.plot(*center, marker="+", color=color, ms=8, mew=1.5)
    ax.autoscale_view()


def ellipses(
    result,
    x: str | None = None,
    y: str | None = None,
    *,
    groups: Sequence | None = None,
    data: pd.DataFrame | None = None,
    group_column: str | None = None,
    mass: float = 0.9,
    band: float | None = 0.94,
    n_draws: int | None = 200,
    max_points: int | None = 2000,
    ax=None,
) -> Figure:
    """Covariance ellipse of each group for one pair of features.

    Each group's line is the ellipse of its posterior mean covariance, centered at
    its posterior mean, holding ``mass`` of the group's rows; the shaded band spans
    the central ``band`` probability of the ellipses of posterior draws (measured
    along rays from the center).

    Parameters
    ----------
    result : GroupCovResult
    x, y : str, optional
        Features on the axes; default the first two.
    groups : sequence, optional
        Groups to draw (default all).
    data : pandas.DataFrame, optional
        Rows to scatter under the ellipses; needs ``group_column``, ``x`` and ``y``.
    group_column : str, optional
        Column of ``data`` holding the group labels.
    mass : float
        Probability inside each ellipse (0.9: 90% of a group's rows).
    band : float or None
        Posterior probability of the band; ``None`` draws no band.
    n_draws : int or None
        Posterior draws used for the band (evenly thinned; ``None``: all).
    max_points : int or None
        At most this many data points per group are drawn.
    ax : matplotlib.axes.Axes, optional
        Axes to draw into; default a new figure.

    Returns
    -------
    matplotlib.figure.Figure
    """
    feats = list(result.features)
    if len(feats) < 2 and (x is None or y is None):
        raise ValueError("an ellipse needs two features; this result has one")
    x = feats[0] if x is None else x
    y = feats[1] if y is None else y
    i, j = _feature_index(result, x), _feature_index(result, y)
    if i == j:
        raise ValueError(f"x= and y= name the same feature {x!r}")
    groups = _select_groups(result, groups)
    if ax is None:
        fig = Figure(figsize=(6.0, 5.0), layout="constrained")
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    rows = _group_rows(data, group_column, groups, x, y)
    _draw_ellipses(ax, result, i, j, groups, _colors(result.groups), rows, mass, band,
                   n_draws, max_points)
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    what = f"{mass:.0%} ellipses" + (f", {band:.0%} posterior band" if band else "")
    ax.set_title(f"{y} vs {x}: {what}", fontsize="medium")
    if len(groups) <= _LEGEND_MAX:
        ax.legend(title="group", fontsize="small")
    return fig


#: The report and the command line draw :func:`pairs` of at most this many features
#: (the first ones; a grid of p^2 panels is unreadable and slow to lay out beyond).
PAIRS_MAX_FEATURES = 6


def pairs(
    result,
    features: Sequence[str] | None = None,
    *,
    groups: Sequence | None = None,
    data: pd.DataFrame | None = None,
    group_column: str | None = None,
    mass: float = 0.9,
    band: float | None = 0.94,
    n_draws: int | None = 100,
    max_points: int | None = 1000,
) -> Figure:
    """Grid of covariance ellipses for every pair of features.

    Below the diagonal: :func:`ellipses` of each pair (row feature against column
    feature). On the diagonal: each group's normal density with its posterior mean
    mean and standard deviation (over a histogram of ``data`` when given).

    Parameters
    ----------
    result : GroupCovResult
    features : sequence of str, optional
        Features to show (default all).
    groups, data, group_column, mass, band, n_draws, max_points
        As in :func:`ellipses`.

    Returns
    -------
    matplotlib.figure.Figure
    """
    features = list(result.features) if features is None else list(features)
    idx = [_feature_index(result, f) for f in features]
    groups = _select_groups(result, groups)
    colors = _colors(result.groups)
    k = len(features)
    size = max(2.4, min(3.2, 12.0 / k))
    width = size * k + 1.2 if k > 1 else 5.0
    fig = Figure(figsize=(width, size * k), layout="constrained")
    axes = np.atleast_2d(fig.subplots(k, k, squeeze=False))
    post = result.idata.posterior
    for r in range(k):
        for c in range(k):
            ax = axes[r, c]
            if c > r:
                ax.set_axis_off()
                continue
            if r == c:
                _draw_marginals(ax, post, idx[r], features[r], groups, colors, data,
                                group_column)
            else:
                rows = _group_rows(data, group_column, groups, features[c], features[r])
                _draw_ellipses(ax, result, idx[c], idx[r], groups, colors, rows, mass, band,
                               n_draws, max_points)
            if r == k - 1:
                ax.set_xlabel(features[c])
            if c == 0 and r > 0:
                ax.set_ylabel(features[r])
    if len(groups) <= _LEGEND_MAX:
        handles = [axes[0, 0].lines[i] for i in range(len(groups))]
        fig.legend(handles, [str(g) for g in groups], title="group", loc="outside right upper",
                   fontsize="small")
    if k == 1:  # one feature: densities only, a narrow figure
        fig.suptitle("Posterior normal density of each group", fontsize="medium")
        return fig
    what = f"{mass:.0%} ellipses" + (f", {band:.0%} posterior band" if band else "")
    fig.suptitle(f"Posterior covariance ellipses ({what})", fontsize="medium")
    return fig


def _draw_marginals(ax, post, i, name, groups, colors, data, group_column) -> None:
    mu = post["mu"].values[..., i].reshape(-1, post.sizes["group"]).mean(axis=0)
    sd = post["sigma"].values[..., i].reshape(-1, post.sizes["group"]).mean(axis=0)
    order = {g: n for n, g in enumerate(post["group"].values.tolist())}
    lo = min(mu[order[g]] - 3.5 * sd[order[g]] for g in groups)
    hi = max(mu[order[g]] + 3.5 * sd[order[g]] for g in groups)
    grid = np.linspace(lo, hi, 200)
    edges = np.linspace(lo, hi, 31)
    for g in groups:
        m, s = mu[order[g]], sd[order[g]]
        if data is not None and group_column is not None and name in data.columns:
            vals = data.loc[data[group_column].to_numpy() == g, name].to_numpy(dtype=float)
            vals = vals[np.isfinite(vals)]
            if len(vals):
                ax.hist(vals, bins=edges, density=True, color=colors[g], alpha=0.25)
        dens = np.exp(-0.5 * ((grid - m) / s) ** 2) / (s * np.sqrt(2.0 * np.pi))
        ax.plot(grid, dens, color=colors[g], lw=1.5, label=str(g))
    ax.set_yticks([])
    ax.set_title(name, fontsize="small")


def _hdi(values: np.ndarray, prob: float) -> np.ndarray:
    """Highest-density interval of draws along axis 0 (the narrowest window)."""
    x = np.sort(values, axis=0)
    n = len(x)
    width = max(int(np.floor(prob * n)), 1)
    if width >= n:
        return np.stack([x[0], x[-1]])
    spans = x[width:] - x[: n - width]
    start = np.argmin(spans, axis=0)
    cols = np.indices(start.shape)
    return np.stack([x[(start, *cols)], x[(start + width, *cols)]])


def _pair_list(result, pairs) -> list[tuple[str, str]]:
    feats = list(result.features)
    if pairs is None:
        return [(feats[a], feats[b]) for a in range(len(feats)) for b in range(a + 1, len(feats))]
    out = []
    for a, b in pairs:
        _feature_index(result, a)
        _feature_index(result, b)
        if a == b:
            raise ValueError(f"pair ({a!r}, {b!r}) names the same feature twice")
        out.append((a, b))
    return out


def correlation_forest(
    result,
    pairs: Sequence[tuple[str, str]] | None = None,
    *,
    groups: Sequence | None = None,
    hdi_prob: float = 0.94,
    ax=None,
) -> Figure:
    """Forest plot of each group's correlations: posterior mean and HDI per pair.

    Pairs are stacked in blocks, one row per group; where the model has a population
    correlation (hierarchical covariance), its posterior mean and HDI are shaded
    behind the block.

    Parameters
    ----------
    result : GroupCovResult
    pairs : sequence of (str, str), optional
        Feature pairs (default all).
    groups : sequence, optional
        Groups to show (default all).
    hdi_prob : float
        Probability of the highest-density intervals.
    ax : matplotlib.axes.Axes, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    pair_list = _pair_list(result, pairs)
    if not pair_list:
        raise ValueError("a correlation needs two features; this result has one")
    groups = _select_groups(result, groups)
    colors = _colors(result.groups)
    post = result.idata.posterior
    rows_total = len(pair_list) * (len(groups) + 1)
    if ax is None:
        fig = Figure(figsize=(6.5, max(2.5, 0.28 * rows_total + 1.0)), layout="constrained")
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    ticks, labels = [], []
    y = 0.0
    for a, b in pair_list:
        top = y
        corr = post["corr"].sel(feature=a, feature_=b)
        if "corr_pop" in post:
            pop = post["corr_pop"].sel(feature=a, feature_=b).values.ravel()
            lo, hi = _hdi(pop[:, None], hdi_prob)[:, 0]
            ax.fill_betweenx([top - 0.5, top + len(groups) - 0.5], lo, hi, color="0.85",
                             zorder=0, gid=f"population:{a},{b}")
            ax.vlines(pop.mean(), top - 0.5, top + len(groups) - 0.5, color="0.5", lw=1,
                      linestyles="dashed", zorder=1)
        for g in groups:
            draws = corr.sel(group=g).values.ravel()
            lo, hi = _hdi(draws[:, None], hdi_prob)[:, 0]
            ax.hlines(y, lo, hi, color=colors[g], lw=2, gid=f"hdi:{a},{b}:{g}")
            ax.plot(draws.mean(), y, "o", color=colors[g], ms=5, gid=f"mean:{a},{b}:{g}")
            ticks.append(y)
            labels.append(f"{a}~{b}  {g}")
            y += 1.0
        y += 1.0
    ax.axvline(0.0, color="0.3", lw=0.8)
    ax.set_yticks(ticks, labels, fontsize="small")
    ax.set_ylim(y - 1.0, -1.0)
    ax.set_xlim(-1.0, 1.0)
    ax.set_xlabel(f"correlation (posterior mean, {hdi_prob:.0%} HDI)")
    title = "Correlations by group"
    if "corr_pop" in post:
        title += " (grey: population correlation)"
    ax.set_title(title, fontsize="medium")
    return fig


_POPULATION = {"mu": "mu_pop", "sigma": "sigma_pop", "corr": "corr_pop"}


def sample_estimates(stats) -> dict:
    """Each group's own estimates from its statistics: sample mean, sd and correlation.

    Means and standard deviations use every observed value of a feature; correlations
    use the group's complete rows.

    Parameters
    ----------
    stats : SufficientStats

    Returns
    -------
    dict
        ``"mu"`` and ``"sigma"`` of shape ``(G, p)``, ``"corr"`` of shape ``(G, p, p)``;
        NaN where a group has too few values.

    Examples
    --------
    >>> from groupcov.stats import SufficientStats
    >>> st = SufficientStats(("a",), ("x", "y"), np.array([3]), np.array([[1.0, 2.0]]),
    ...                      np.array([[[2.0, 1.0], [1.0, 2.0]]]))
    >>> est = sample_estimates(st)
    >>> est["sigma"].tolist(), est["corr"][0, 0, 1].item()
    ([[1.0, 1.0]], 0.5)
    """
    count, mean, sum_sq = stats.available()
    with np.errstate(invalid="ignore", divide="ignore"):
        sd = np.where(count > 1, np.sqrt(sum_sq / np.where(count > 1, count - 1.0, 1.0)), np.nan)
        mean = np.where(count > 0, mean, np.nan)
        cov = stats.covariance()
        csd = np.sqrt(np.diagonal(cov, axis1=-2, axis2=-1))
        corr = cov / (csd[:, :, None] * csd[:, None, :])
    return {"mu": mean, "sigma": sd, "corr": corr}


def _entries(result, parameter: str, features=None) -> list[tuple[str, tuple[int, ...]]]:
    feats = list(result.features)
    index = [_feature_index(result, f) for f in (feats if features is None else features)]
    if parameter == "corr":
        return [
            (f"corr[{feats[a]},{feats[b]}]", (a, b))
            for i, a in enumerate(index)
            for b in index[i + 1:]
        ]
    return [(f"{parameter}[{feats[a]}]", (a,)) for a in index]


def shrinkage(
    result,
    unpooled=None,
    *,
    parameter: str | None = None,
    groups: Sequence | None = None,
    features: Sequence[str] | None = None,
    ncols: int = 4,
) -> Figure:
    """Shrinkage of group estimates: unpooled (left) against this fit (right).

    Each line joins a group's unpooled estimate to its posterior mean under
    ``result``; marker area grows with the group's number of rows. The dashed line is
    the population value (posterior mean) when ``result`` has one.

    Parameters
    ----------
    result : GroupCovResult
        Typically a hierarchical fit.
    unpooled : GroupCovResult, optional
        A fit of the same data with ``"unpooled"`` modes; its posterior means are the
        left-hand values. Without it, each group's sample estimates (from
        ``result.stats``) are used.
    parameter : {"corr", "mu", "sigma"}, optional
        Which estimates to show; one panel per feature (``mu``, ``sigma``) or per
        feature pair (``corr``). Default ``"corr"``, or ``"sigma"`` with one feature.
    groups : sequence, optional
        Groups to show (default all).
    features : sequence of str, optional
        Features whose entries to show (default all; correlations among them).
    ncols : int
        Panels per row.

    Returns
    -------
    matplotlib.figure.Figure
    """
    if parameter is None:
        parameter = "corr" if len(result.features) > 1 else "sigma"
    if parameter not in _POPULATION:
        raise ValueError(f"parameter= must be one of {list(_POPULATION)}, not {parameter!r}")
    entries = _entries(result, parameter, features)
    if not entries:
        raise ValueError("a correlation needs two features; this result has one: use "
                         "parameter='mu' or 'sigma'")
    groups = _select_groups(result, groups)
    colors = _colors(result.groups)
    post = result.idata.posterior
    gpos = [result.groups.index(g) for g in groups]
    right = post[parameter].mean(("chain", "draw")).values
    if unpooled is not None:
        if list(unpooled.features) != list(result.features):
            raise ValueError(
                f"unpooled= has features {list(unpooled.features)}, "
                f"but result has {list(result.features)}"
            )
        missing = [g for g in groups if g not in unpooled.groups]
        if missing:
            raise KeyError(f"group(s) {missing} are not in unpooled=")
        upos = [unpooled.groups.index(g) for g in groups]
        left = unpooled.idata.posterior[parameter].mean(("chain", "draw")).values[upos]
        left_label = "unpooled fit"
    else:
        left = sample_estimates(result.stats)[parameter][gpos]
        left_label = "sample estimate"
    right = right[gpos]
    n = np.asarray(result.stats.rows_per_group(), dtype=float)[gpos]
    area = 12.0 + 60.0 * np.sqrt(n / max(n.max(), 1.0))
    pop_name = _POPULATION[parameter]
    pop = post[pop_name].mean(("chain", "draw")).values if pop_name in post else None
    ncols = max(1, min(ncols, len(entries)))
    nrows = -(-len(entries) // ncols)
    fig = Figure(figsize=(2.6 * ncols + 0.6, 3.2 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, (label, key) in zip(axes, entries, strict=False):
        sel = (slice(None), *key)
        lv, rv = left[sel], right[sel]
        for gi, g in enumerate(groups):
            ax.plot([0, 1], [lv[gi], rv[gi]], color=colors[g], lw=1, alpha=0.8,
                    gid=f"shrink:{label}:{g}")
        ax.scatter(np.zeros(len(groups)), lv, s=area, c=[colors[g] for g in groups],
                   edgecolors="white", linewidths=0.5, zorder=3)
        ax.scatter(np.ones(len(groups)), rv, s=area, c=[colors[g] for g in groups],
                   edgecolors="white", linewidths=0.5, zorder=3)
        if pop is not None:
            ax.axhline(pop[key], color="0.3", ls="--", lw=1, gid=f"population:{label}")
        ax.set_xticks([0, 1], [left_label, "this fit"], fontsize="small")
        ax.set_xlim(-0.3, 1.3)
        ax.set_title(label, fontsize="small")
    for ax in axes[len(entries):]:
        ax.set_axis_off()
    if len(groups) <= _LEGEND_MAX:
        handles = [axes[0].lines[i] for i in range(len(groups))]
        fig.legend(handles, [str(g) for g in groups], title="group", loc="outside right upper",
                   fontsize="small")
    mode = result.spec.get("covariance" if parameter != "mu" else "means", "")
    fig.suptitle(
        f"Shrinkage of {parameter} ({mode or 'fitted'} model; dashed: population)"
        if pop is not None
        else f"Shrinkage of {parameter} ({mode or 'fitted'} model)",
        fontsize="medium",
    )
    return fig
