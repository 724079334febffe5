"""Real data shipped with scikit-learn (iris, wine): every pooling mode, diagnostics,
posterior mean covariances against per-class sample covariances, and a prior-predictive
check of the default priors on the standardized scale."""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pymc as pm

from groupcov.api import GroupCovModel
from groupcov.model.inputs import POOLING
from groupcov.validate.tables import markdown_table

__all__ = ["compare_covariances", "fit_all", "load", "main", "prior_predictive"]

MODES = list(itertools.product(POOLING, POOLING))


def load(name: str) -> tuple[pd.DataFrame, list[str]]:
    """``iris`` or ``wine`` as a frame with a ``class`` column, and the feature names."""
    from sklearn import datasets

    bunch = {"iris": datasets.load_iris, "wine": datasets.load_wine}[name](as_frame=True)
    frame = bunch.frame.copy()
    frame["class"] = np.asarray(bunch.target_names)[bunch.target.to_numpy()]
    features = list(bunch.feature_names)
    return frame[["class", *features]], features


def compare_covariances(estimate: np.ndarray, sample: np.ndarray, scale: np.ndarray) -> dict:
    """Relative Frobenius difference on the standardized scale and the largest
    correlation difference, per group (``estimate``, ``sample``: ``(G, p, p)``).

    Examples
    --------
    >>> s = np.array([[[4.0, 0.0], [0.0, 1.0]]])
    >>> compare_covariances(s, s, np.array([2.0, 1.0]))["rel_frobenius"].tolist()
    [0.0]
    """
    d = 1.0 / np.asarray(scale)
    outer = d[:, None] * d[None, :]
    diff = np.sqrt((((estimate - sample) * outer) ** 2).sum((-2, -1)))
    norm = np.sqrt(((sample * outer) ** 2).sum((-2, -1)))

    def corr(c):
        sd = np.sqrt(np.diagonal(c, axis1=-2, axis2=-1))
        return c / (sd[..., :, None] * sd[..., None, :])

    return {
        "rel_frobenius": diff / norm,
        "max_abs_corr_diff": np.abs(corr(estimate) - corr(sample)).max((-2, -1)),
    }


def fit_all(name: str, draws: int, tune: int, chains: int, seed: int = 0, log=print):
    """Fit every (means, covariance) mode to one data set.

    Returns
    -------
    pandas.DataFrame
        One row per (mode, class): diagnostics, time, and covariance comparison.
    """
    frame, features = load(name)
    classes = sorted(frame["class"].unique())
    sample = np.array([np.cov(frame.loc[frame["class"] == c, features].T) for c in classes])
    rows = []
    for means, covariance in MODES:
        start = time.perf_counter()
        gcm = GroupCovModel(frame, group="class", features=features, means=means,
                            covariance=covariance)
        res = gcm.fit(draws=draws, tune=tune, chains=chains, random_seed=seed, progressbar=False)
        seconds = time.perf_counter() - start
        diag = res.diagnostics()
        post = res.idata.posterior["cov"].sel(group=classes).mean(("chain", "draw")).values
        cmp = compare_covariances(post, sample, gcm.standardization.scale)
        for g, c in enumerate(classes):
            rows.append({
                "data": name, "means": means, "covariance": covariance, "class": c,
                "n": int((frame["class"] == c).sum()),
                "rel_frobenius": cmp["rel_frobenius"][g],
                "max_abs_corr_diff": cmp["max_abs_corr_diff"][g],
                "max_r_hat": diag.max_r_hat, "min_ess_bulk": diag.min_ess_bulk,
                "min_ess_tail": diag.min_ess_tail, "divergences": diag.divergences,
                "seconds": seconds,
            })
        if log is not None:
            log(f"{name} {means}/{covariance}: r_hat {diag.max_r_hat:.3f}, ess "
                f"{diag.min_ess_bulk:.0f}/{diag.min_ess_tail:.0f}, {diag.divergences} div, "
                f"{seconds:.0f} s")
    return pd.DataFrame(rows)


def prior_predictive(name: str, draws: int = 4000, seed: int = 0) -> dict:
    """Default-prior draws (hierarchical/hierarchical) on the standardized scale, and
    where the data's own per-class statistics fall in them.

    Returns
    -------
    dict
        ``sd``, ``corr``, ``mean``: prior draws of group sds, off-diagonal correlations
        and group means (standardized: centered at the pooled mean, divided by the pooled
        within-class sd); ``observed_*``: the same statistics of the data.
    """
    frame, features = load(name)
    gcm = GroupCovModel(frame, group="class", features=features)
    prior = pm.sample_prior_predictive(
        draws=draws, model=gcm._built_model(), var_names=["mu", "sigma", "corr"], random_seed=seed,
        compile_kwargs={"mode": "FAST_COMPILE"},
    ).prior
    center, scale = gcm.standardization
    rows, cols = np.tril_indices(len(features), -1)
    st = gcm.stats
    sd_obs = np.sqrt(np.diagonal(st.scatter, axis1=-2, axis2=-1) / (st.n[:, None] - 1))
    corr_obs = st.scatter / np.sqrt(
        np.diagonal(st.scatter, axis1=-2, axis2=-1)[..., :, None]
        * np.diagonal(st.scatter, axis1=-2, axis2=-1)[..., None, :])
    return {
        "sd": (prior["sigma"].values / scale).ravel(),
        "corr": prior["corr"].values[..., rows, cols].ravel(),
        "mean": ((prior["mu"].values - center) / scale).ravel(),
        "observed_sd": (sd_obs / scale).ravel(),
        "observed_corr": corr_obs[:, rows, cols].ravel(),
        "observed_mean": ((st.mean - center) / scale).ravel(),
        "mu_sigma": [float(v) for v in gcm._built_model()["mu_sigma"].get_value()],
    }


def _quantile_rows(name: str, pp: dict) -> list[dict]:
    out = []
    qs = [0.025, 0.25, 0.5, 0.75, 0.975]
    for key in ("sd", "corr", "mean"):
        draws, obs = pp[key], pp[f"observed_{key}"]
        row = {"data": name, "quantity": key}
        row.update({f"prior q{q:g}": np.quantile(draws, q) for q in qs})
        pct = np.array([(draws < o).mean() for o in obs])
        row["observed range"] = f"{obs.min():.2f} to {obs.max():.2f}"
        row["observed prior percentiles"] = f"{100 * pct.min():.1f} to {100 * pct.max():.1f}"
        out.append(row)
    return out


def prior_figure(pps: dict):
    """Histograms of default-prior sds, correlations and means (standardized), with the
    data's per-class values as ticks."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 3.2 * len(pps)), layout="constrained")
    axes = fig.subplots(len(pps), 3, squeeze=False)
    for row, (name, pp) in zip(axes, pps.items(), strict=True):
        for ax, key, title in zip(row, ("sd", "corr", "mean"),
                                  ("group sd / pooled within sd", "correlation",
                                   "(group mean - pooled mean) / pooled within sd"),
                                  strict=True):
            draws = np.log10(pp[key]) if key == "sd" else pp[key]
            obs = np.log10(pp[f"observed_{key}"]) if key == "sd" else pp[f"observed_{key}"]
            if key == "mean":
                draws = draws[np.abs(draws) < 4 * max(pp["mu_sigma"])]
            ax.hist(draws, bins=80, density=True, color="0.6")
            ax.plot(obs, np.zeros_like(obs), "|", color="C3", ms=14, mew=1.5)
            ax.set_title(f"{name}: {title}" + (" (log10)" if key == "sd" else ""), fontsize=9)
    return fig


def main(out: Path, quick: bool = False) -> None:
    """Fit both data sets in every mode and write tables, a summary and a figure."""
    out.mkdir(parents=True, exist_ok=True)
    draws, tune = (300, 300) if quick else (1000, 1000)
    fits = pd.concat([fit_all(n, draws, tune, chains=4) for n in ("iris", "wine")])
    fits.to_csv(out / "fits.csv", index=False, float_format="%.5g")
    per_mode = fits.groupby(["data", "means", "covariance"], sort=False).agg(
        rel_frobenius_mean=("rel_frobenius", "mean"),
        rel_frobenius_max=("rel_frobenius", "max"),
        max_abs_corr_diff=("max_abs_corr_diff", "max"),
        max_r_hat=("max_r_hat", "first"), min_ess_bulk=("min_ess_bulk", "first"),
        min_ess_tail=("min_ess_tail", "first"), divergences=("divergences", "first"),
        seconds=("seconds", "first"),
    ).reset_index()
    pps = {n: prior_predictive(n) for n in ("iris", "wine")}
    quant = pd.DataFrame([r for n, pp in pps.items() for r in _quantile_rows(n, pp)])
    text = [f"Draws {draws} x 4 chains after {tune} warm-up steps.", "",
            markdown_table(per_mode), "", "Default prior on the standardized scale:", "",
            markdown_table(quant), ""]
    (out / "summary.md").write_text("\n".join(text))
    (out / "prior_mu_sigma.json").write_text(json.dumps(
        {n: dict(zip(load(n)[1], pp["mu_sigma"], strict=True)) for n, pp in pps.items()},
        indent=1))
    prior_figure(pps).savefig(out / "prior_predictive.png", dpi=90)
    print("\n".join(text), flush=True)
