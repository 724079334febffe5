"""Files of a simulation-based calibration run: ranks, p-values, summary and figures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy import stats as sps

from groupcov.validate.sbc import SBCConfig, SBCResult, prior_check
from groupcov.validate.tables import markdown_table

__all__ = [
    "pooled_pvalues",
    "rank_figure",
    "summarize",
    "write_prior_check",
    "write_result",
    "write_summary",
]


def summarize(result: SBCResult) -> dict:
    """Numbers of one configuration: tests below 0.01 against expectation, and more.

    ``binom_p`` is the probability of at least that many p-values below 0.01 among K
    independent tests of a calibrated model (the K tests are positively dependent, so
    it is only a guide).
    """
    r, s = result, result.settings
    k = len(r.labels)
    below = int((r.pvalues < 0.01).sum())
    return {
        "config": r.config.name,
        "groups": r.config.groups,
        "rows_per_group": r.config.rows,
        "sims": int(r.ranks.shape[0]),
        "draws_per_chain": s.draws,
        "tune": s.tune,
        "chains": s.chains,
        "thin": s.thin,
        "L": r.n_draws,
        "bins": s.bins,
        "K": k,
        "below_0.01": below,
        "expected_below_0.01": round(0.01 * k, 2),
        "binom_p": float(sps.binom.sf(below - 1, k, 0.01)),
        "below_0.05": int((r.pvalues < 0.05).sum()),
        "min_p": float(r.pvalues.min()),
        "min_p_bonferroni": float(min(1.0, r.pvalues.min() * k)),
        "narrow_below_0.01": int((r.pvalues_narrow < 0.01).sum()),
        **{f"control_{name}_below_0.01": int((p < 0.01).sum())
           for name, p in r.control_pvalues.items() if name != "sd_x0.5"},
        "divergent_sims": int((r.divergences > 0).sum()),
        "divergences": int(r.divergences.sum()),
        "min_ess_median": float(np.median(r.min_ess)),
        "min_ess_5pct": float(np.percentile(r.min_ess, 5)),
        "sims_min_ess_below_L": int((r.min_ess < r.n_draws).sum()),
        "seconds": round(r.seconds, 1),
    }


def write_prior_check(config: SBCConfig, out: Path, n: int = 4000) -> pd.DataFrame:
    """``prior_check_<config>.csv``: KS p-values of the model's prior draws against an
    independent NumPy simulation of the documented prior (:func:`prior_check`)."""
    out.mkdir(parents=True, exist_ok=True)
    pvalues = prior_check(config, n=n, seed=config.p)
    table = pd.DataFrame({"quantity": list(pvalues), "ks_pvalue": list(pvalues.values())})
    table.to_csv(out / f"prior_check_{config.name}.csv", index=False, float_format="%.4g")
    return table


def write_result(result: SBCResult, out: Path) -> None:
    """``ranks_<config>.csv``, ``pvalues_<config>.csv``, ``summary_<config>.json`` and
    ``ranks_<config>.png``."""
    out.mkdir(parents=True, exist_ok=True)
    name = result.config.name
    (out / f"summary_{name}.json").write_text(json.dumps(summarize(result), indent=1))
    ranks = pd.DataFrame(result.ranks, columns=result.labels)
    ranks["divergences"] = result.divergences
    ranks["min_ess"] = np.round(result.min_ess, 1)
    ranks.to_csv(out / f"ranks_{name}.csv", index_label="sim")
    pd.DataFrame({
        "parameter": result.labels, "chi2": result.chi2, "pvalue": result.pvalues,
        "pvalue_narrowed_posterior": result.pvalues_narrow,
        **{f"pvalue_control_{name}": p for name, p in result.control_pvalues.items()
           if name != "sd_x0.5"},
    }).to_csv(out / f"pvalues_{name}.csv", index=False, float_format="%.6g")
    rank_figure(result).savefig(out / f"ranks_{name}.png", dpi=80)


def rank_figure(result: SBCResult) -> Figure:
    """Rank histograms, one panel per quantity, with the 99% band of uniform counts."""
    r = result
    k, bins, sims = len(r.labels), r.settings.bins, r.ranks.shape[0]
    ncol = min(k, 7)
    nrow = -(-k // ncol)
    fig = Figure(figsize=(2.1 * ncol, 1.7 * nrow + 0.6), layout="constrained")
    axes = fig.subplots(nrow, ncol, squeeze=False).ravel()
    edges = [b[0] for b in np.array_split(np.arange(r.n_draws + 1), bins)] + [r.n_draws + 1]
    lo, hi = sps.binom.ppf([0.005, 0.995], sims, 1.0 / bins)
    for ax, label, column, pval in zip(axes, r.labels, r.ranks.T, r.pvalues, strict=False):
        ax.axhspan(lo, hi, color="0.85")
        ax.axhline(sims / bins, color="0.5", lw=0.8)
        ax.hist(column, bins=edges, color="C0" if pval >= 0.01 else "C3", alpha=0.85)
        ax.set_title(f"{label}\np={pval:.2f}", fontsize=7)
        ax.set_xticks([])
        ax.tick_params(labelsize=6)
    for ax in axes[k:]:
        ax.set_visible(False)
    fig.suptitle(
        f"SBC ranks, {r.config.name}: {sims} simulations, L={r.n_draws}, {bins} bins; "
        "grey: 99% band per bin under uniformity", fontsize=9,
    )
    return fig


def pvalue_figure(pvalues: pd.DataFrame) -> Figure:
    """Histogram of all per-parameter p-values (uniform when calibrated), and the
    narrowed-posterior control."""
    fig = Figure(figsize=(8, 3), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    good, bad = pvalues["pvalue"], pvalues["pvalue_narrowed_posterior"]
    ax1.hist(good, bins=20, range=(0, 1), color="C0")
    ax1.axhline(len(good) / 20, color="k", lw=0.8)
    ax1.set_title(f"groupcov posteriors: {len(good)} chi-square p-values", fontsize=9)
    ax2.hist(bad, bins=20, range=(0, 1), color="C3")
    ax2.set_title("control: posterior sd x 0.5 (must pile up at 0)", fontsize=9)
    for ax in (ax1, ax2):
        ax.set_xlabel("p-value")
    return fig


def write_summary(out: Path) -> pd.DataFrame:
    """``summary.json``, ``summary.md`` and ``pvalues.png`` over every configuration
    whose results are in ``out``."""
    from groupcov.validate.sbc import CONFIGS

    order = {c.name: i for i, c in enumerate(CONFIGS)}
    rows = [json.loads(f.read_text()) for f in out.glob("summary_*.json")]
    rows.sort(key=lambda r: order.get(r["config"], len(order)))
    table = pd.DataFrame(rows)
    (out / "summary.json").write_text(json.dumps(rows, indent=1))
    cols = ["config", "sims", "L", "K", "below_0.01", "expected_below_0.01", "binom_p",
            "min_p", "narrow_below_0.01", "divergent_sims", "min_ess_5pct", "seconds"]
    prior = []
    for r in rows:
        path = out / f"prior_check_{r['config']}.csv"
        if path.exists():
            ks = pd.read_csv(path)["ks_pvalue"]
            prior.append({"config": r["config"], "KS tests": len(ks),
                          "min KS p": ks.min(), "Bonferroni min p": min(1.0, ks.min() * len(ks))})
    text = markdown_table(table[cols]) + "\n"
    k, below = int(table["K"].sum()), int(table["below_0.01"].sum())
    text += (f"\nAll configurations: {below} of {k} chi-square tests below 0.01 (expected "
             f"{0.01 * k:.2f}; P(at least {below} | {k} independent tests) = "
             f"{sps.binom.sf(below - 1, k, 0.01):.3g}); {int((table['below_0.05']).sum())} "
             f"below 0.05 (expected {0.05 * k:.1f}). Narrowed-posterior control: "
             f"{int(table['narrow_below_0.01'].sum())} of {k} below 0.01.\n")
    power = [c for c in table.columns if c.startswith("control_")]
    if power:
        has = table.dropna(subset=power)
        text += ("\nPower against milder miscalibration (tests below 0.01 of K; configurations "
                 "run with these controls):\n\n"
                 + markdown_table(has[["config", "K", *power]].astype(
                     {c: int for c in power})) + "\n")
    if prior:
        text += ("\nPrior draws of the model against an independent NumPy prior "
                 "(two-sample KS, 4000 draws):\n\n" + markdown_table(pd.DataFrame(prior)) + "\n")
    (out / "summary.md").write_text(text)
    pvalues = pd.concat([pd.read_csv(out / f"pvalues_{r['config']}.csv") for r in rows])
    pvalue_figure(pvalues).savefig(out / "pvalues.png", dpi=90)
    return table


def pooled_pvalues(folders: list[Path], config: str, n_draws: int = 100,
                   bins: int = 10) -> pd.DataFrame:
    """Chi-square p-values of one configuration's ranks pooled over independent runs
    (e.g. the main run and a replicate with another seed), per quantity."""
    from groupcov.validate.sbc import chi2_uniformity

    frames = [pd.read_csv(Path(f) / f"ranks_{config}.csv") for f in folders]
    labels = [c for c in frames[0].columns if c not in ("sim", "divergences", "min_ess")]
    ranks = pd.concat([f[labels] for f in frames]).to_numpy()
    chi2, pvalues = chi2_uniformity(ranks, n_draws, bins)
    return pd.DataFrame({"parameter": labels, "sims": len(ranks), "chi2": chi2,
                         "pvalue": pvalues})
