"""Does pooling pay? Covariance recovery with small groups, groupcov against scikit-learn.

Data: :func:`groupcov.datasets.simulate_groups` (10 groups x 8 rows, p = 3) in two
scenarios: groups alike (the function's defaults) and groups that differ strongly.
Each method estimates every group's covariance matrix; the loss against the truth is
averaged over the groups of a data set, then summarized over data sets (mean and
standard error, and the paired difference to groupcov hierarchical).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy import special

from groupcov.api import GroupCovModel
from groupcov.data import reduce
from groupcov.datasets import simulate_groups
from groupcov.validate.batch import BatchSampler
from groupcov.validate.tables import markdown_table

__all__ = [
    "SCENARIOS",
    "Scenario",
    "frobenius_loss",
    "qda_cv_scores",
    "recovery",
    "sklearn_estimates",
    "stein_bayes",
    "stein_loss",
    "summarize",
]

GROUPCOV = {
    "groupcov hierarchical": ("unpooled", "hierarchical"),
    "groupcov unpooled": ("unpooled", "unpooled"),
    "groupcov pooled": ("unpooled", "pooled"),
    "groupcov hierarchical means+cov": ("hierarchical", "hierarchical"),
}
REG_GRID = np.round(np.linspace(0.0, 1.0, 21), 2)
#: groupcov variants also scored with the Bayes estimate under Stein's loss
STEIN_ESTIMATE = ("groupcov hierarchical", "groupcov unpooled")


class Scenario(NamedTuple):
    """Arguments of :func:`~groupcov.datasets.simulate_groups` and the number of data sets."""

    name: str
    groups: int = 10
    rows: int = 8
    p: int = 3
    log_sd_spread: float = 0.3
    corr_spread: float = 0.3
    data_sets: int = 50


SCENARIOS = (
    Scenario("alike"),
    Scenario("different", log_sd_spread=1.0, corr_spread=1.0),
)


def frobenius_loss(estimate: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """``||estimate - truth||_F`` over the last two axes.

    Examples
    --------
    >>> float(frobenius_loss(np.eye(2) * 2, np.eye(2)))
    1.4142135623730951
    """
    return np.sqrt(((estimate - truth) ** 2).sum(axis=(-2, -1)))


def stein_loss(estimate: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Stein's loss ``tr(S^-1 E) - log det(S^-1 E) - p`` of estimate ``E``, truth ``S``.

    Zero only at ``E = S``; infinite for a singular estimate.

    Examples
    --------
    >>> float(stein_loss(np.eye(2), np.eye(2)))
    0.0
    >>> round(float(stein_loss(2 * np.eye(1), np.eye(1))), 4)  # 2 - log 2 - 1
    0.3069
    """
    p = truth.shape[-1]
    ratio = np.linalg.solve(truth, estimate)
    sign, logdet = np.linalg.slogdet(ratio)
    logdet = np.where(sign > 0, logdet, -np.inf)
    return np.trace(ratio, axis1=-2, axis2=-1) - logdet - p


def stein_bayes(cov_draws: np.ndarray) -> np.ndarray:
    """``(E[cov^-1])^-1`` over draws ``(chain, draw, G, p, p)``: the estimate that
    minimizes posterior expected Stein loss (the posterior mean minimizes expected
    squared Frobenius loss)."""
    precision = np.linalg.inv(cov_draws).mean(axis=(0, 1))
    return np.linalg.inv(precision)


def _gauss_logpdf(x: np.ndarray, mean: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """``log N(x_i | mean_g, cov_g)`` for rows ``x (n, p)`` and groups: ``(n, G)``."""
    chol = np.linalg.cholesky(cov)
    diff = x[:, None, :] - mean[None]
    z = np.linalg.solve(chol[None], diff[..., None])[..., 0]
    logdet = 2.0 * np.log(np.diagonal(chol, axis1=-2, axis2=-1)).sum(-1)
    return -0.5 * ((z**2).sum(-1) + logdet + x.shape[1] * np.log(2 * np.pi))


def qda_cv_scores(x, y, labels, folds: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Cross-validated scores of QDA for every ``reg_param`` in :data:`REG_GRID`.

    QDA's regularized covariance is ``(1 - r) * S + r * I`` with ``S`` the 1/n
    covariance of a group's training rows (what scikit-learn fits); the scores are
    computed from it directly, for all ``r`` at once, on stratified folds.

    Returns
    -------
    loglik : numpy.ndarray
        Held-out Gaussian log density of each row under its own group's estimate.
    neg_log_loss : numpy.ndarray
        Minus the log-loss of QDA's class probabilities (priors: training proportions).
    """
    from sklearn.model_selection import StratifiedKFold

    labels = list(labels)
    code = np.array([labels.index(v) for v in y])
    p = x.shape[1]
    loglik, logloss = np.zeros(len(REG_GRID)), np.zeros(len(REG_GRID))
    for train, test in StratifiedKFold(folds, shuffle=True, random_state=seed).split(x, code):
        xt, ct = x[train], code[train]
        mean = np.array([xt[ct == g].mean(0) for g in range(len(labels))])
        scatter = np.array([np.cov(xt[ct == g].T, bias=True) for g in range(len(labels))])
        log_prior = np.log(np.bincount(ct, minlength=len(labels)) / len(ct))
        rows = np.arange(len(test))
        for k, r in enumerate(REG_GRID):
            try:
                dens = _gauss_logpdf(x[test], mean, (1 - r) * scatter + r * np.eye(p))
            except np.linalg.LinAlgError:
                loglik[k] = logloss[k] = -np.inf
                continue
            post = dens + log_prior
            loglik[k] += dens[rows, code[test]].sum()
            logloss[k] += (post[rows, code[test]] - special.logsumexp(post, axis=1)).sum()
    return loglik, logloss


def sklearn_estimates(x: np.ndarray, y: np.ndarray, labels, seed: int = 0) -> dict:
    """Per-group covariance estimates of the scikit-learn methods, each ``(G, p, p)``.

    - ``QDA``: :class:`~sklearn.discriminant_analysis.QuadraticDiscriminantAnalysis`'s
      ``covariance_`` (the 1/n maximum-likelihood estimate in scikit-learn >= 1.8), fitted
      with ``tol=0`` so that the absolute rank check does not reject groups whose
      features have small scales;
    - ``sample covariance (n-1)``: the unbiased per-group covariance;
    - ``QDA reg_param (CV log-lik)``: QDA with ``reg_param`` chosen on a grid of 21
      values in [0, 1] by 4-fold stratified cross-validated Gaussian log density of
      held-out rows (:func:`qda_cv_scores`);
    - ``QDA reg_param (CV log-loss)``: chosen by the cross-validated log-loss of the
      class probabilities instead (what tuning a classifier does);
    - ``Ledoit-Wolf``: :class:`sklearn.covariance.LedoitWolf` per group;
    - ``pooled sample covariance (LDA)``: one within-group covariance for all groups.
    """
    from sklearn.covariance import LedoitWolf
    from sklearn.discriminant_analysis import QuadraticDiscriminantAnalysis as QDA

    labels = list(labels)

    def qda(reg):
        # tol=0: scikit-learn's absolute rank threshold (1e-4 on the singular values of
        # the centred rows) rejects full-rank groups whose features have small scales
        fitted = QDA(reg_param=reg, store_covariance=True, tol=0.0).fit(x, y)
        order = [list(fitted.classes_).index(g) for g in labels]
        return np.array(fitted.covariance_)[order]

    loglik, logloss = qda_cv_scores(x, y, labels, seed=seed)
    reg = (float(REG_GRID[np.argmax(loglik)]), float(REG_GRID[np.argmax(logloss)]))
    out = {
        "QDA": qda(0.0),
        "sample covariance (n-1)": np.array([np.cov(x[y == g].T) for g in labels]),
        "QDA reg_param (CV log-lik)": qda(reg[0]),
        "QDA reg_param (CV log-loss)": qda(reg[1]),
        "Ledoit-Wolf": np.array([LedoitWolf().fit(x[y == g]).covariance_ for g in labels]),
    }
    within = sum(np.cov(x[y == g].T) * ((y == g).sum() - 1) for g in labels)
    out["pooled sample covariance (LDA)"] = np.broadcast_to(
        within / (len(y) - len(labels)), out["QDA"].shape)
    out["_reg"] = reg
    return out


def recovery(scenario: Scenario, draws: int = 300, tune: int = 300, seed: int = 0,
             log=sys.stdout) -> pd.DataFrame:
    """Loss of every method on every data set of ``scenario``.

    Returns
    -------
    pandas.DataFrame
        One row per (data set, method): ``frobenius`` and ``stein`` averaged over the
        groups, plus ``divergences`` (groupcov) or the chosen ``reg_param`` (QDA).
    """
    s = scenario
    sims = [
        simulate_groups(s.groups, s.rows, s.p, seed=seed * 1000 + i,
                        log_sd_spread=s.log_sd_spread, corr_spread=s.corr_spread)
        for i in range(s.data_sets)
    ]
    labels, features = list(sims[0].cov), sims[0].features
    truth = np.array([[sim.cov[g] for g in labels] for sim in sims])
    stats = [reduce(sim.data, group="group", features=features) for sim in sims]
    rows = []

    def add(i, method, estimate, **extra):
        rows.append({"data_set": i, "method": method,
                     "frobenius": float(frobenius_loss(estimate, truth[i]).mean()),
                     "stein": float(stein_loss(estimate, truth[i]).mean()), **extra})

    for method, (means, covariance) in GROUPCOV.items():
        gcm = GroupCovModel(stats[0], means=means, covariance=covariance)
        sampler = BatchSampler(gcm, draws=draws, tune=tune, chains=2, var_names=["cov"])
        # lockstep NUTS pays only where trajectories are alike (see SBCSettings.batch_size)
        batch = 1 if "hierarchical" in (means, covariance) else 25
        seconds = 0.0
        for start in range(0, len(stats), batch):
            fit = sampler.sample(stats[start:start + batch], seed=seed + start)
            seconds += fit.seconds
            for b, cov in enumerate(fit.draws["cov"]):
                extra = {"divergences": int(fit.diverging[b].sum()),
                         "seconds": fit.seconds / batch}
                add(start + b, method, cov.mean(axis=(0, 1)), **extra)
                if method in STEIN_ESTIMATE:
                    add(start + b, f"{method}, (E[inv cov])^-1", stein_bayes(cov), **extra)
        if log is not None:
            print(f"{s.name}: {method}: {len(stats)} data sets, {seconds:.0f} s", file=log,
                  flush=True)
    for i, sim in enumerate(sims):
        x, y = sim.data[features].to_numpy(), sim.data["group"].to_numpy()
        est = sklearn_estimates(x, y, labels, seed=i)
        reg = est.pop("_reg")
        for method, cov in est.items():
            extra = {}
            if "CV log-lik" in method:
                extra = {"reg_param": reg[0]}
            elif "CV log-loss" in method:
                extra = {"reg_param": reg[1]}
            add(i, method, cov, **extra)
    return pd.DataFrame(rows)


def summarize(losses: pd.DataFrame, reference: str = "groupcov hierarchical") -> pd.DataFrame:
    """Mean and standard error over data sets of each loss, and the paired difference
    to ``reference`` (positive: worse than the reference)."""
    out = []
    ref = losses[losses.method == reference].set_index("data_set")
    for method, part in losses.groupby("method", sort=False):
        part = part.set_index("data_set")
        row = {"method": method}
        for loss in ("frobenius", "stein"):
            v = part[loss]
            d = v - ref[loss].reindex(v.index)
            row[f"{loss} mean"] = v.mean()
            row[f"{loss} se"] = v.std(ddof=1) / np.sqrt(len(v))
            row[f"{loss} diff vs hier."] = d.mean()
            row[f"{loss} diff se"] = d.std(ddof=1) / np.sqrt(len(d))
            row[f"{loss} hier. wins"] = f"{int((d > 0).sum())}/{len(d)}"
        out.append(row)
    return pd.DataFrame(out)


def loss_figure(losses: dict[str, pd.DataFrame]):
    """Box plots of the Stein loss per method, one panel per scenario."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.5 * len(losses), 4.2), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(losses)))
    for ax, (name, table) in zip(axes, losses.items(), strict=True):
        methods = list(dict.fromkeys(table.method))
        data = [table.loc[table.method == m, "stein"].to_numpy() for m in methods]
        ax.boxplot(data, vert=False, tick_labels=methods)
        ax.set_xscale("log")
        ax.invert_yaxis()
        ax.set_xlabel("Stein loss per group, averaged over groups (log scale)")
        ax.set_title(f"scenario '{name}'", fontsize=10)
        ax.tick_params(labelsize=8)
    return fig


def write_summary(out: Path) -> str:
    """``summary.md`` and ``stein_loss.png`` from every ``losses_<scenario>.csv`` in ``out``."""
    all_losses, text = {}, []
    for sc in SCENARIOS:
        path = out / f"losses_{sc.name}.csv"
        if not path.exists():
            continue
        losses = pd.read_csv(path)
        all_losses[sc.name] = losses
        n_sets = losses["data_set"].nunique()
        text += [f"### Scenario '{sc.name}' ({n_sets} data sets, {sc.groups} groups x "
                 f"{sc.rows} rows, p = {sc.p}, log_sd_spread = {sc.log_sd_spread}, "
                 f"corr_spread = {sc.corr_spread})", "", markdown_table(summarize(losses)), ""]
        regs = losses.dropna(subset=["reg_param"]) if "reg_param" in losses else losses[:0]
        for method, part in regs.groupby("method"):
            text += [f"- {method}: chosen reg_param median {part.reg_param.median():.2f} "
                     f"(range {part.reg_param.min():.2f} to {part.reg_param.max():.2f})"]
        if "divergences" in losses:
            div = losses.dropna(subset=["divergences"]).groupby("method")["divergences"]
            text += [f"- {m}: {int(d.sum())} divergent transitions in {int((d > 0).sum())} "
                     "data sets" for m, d in div]
        text.append("")
    (out / "summary.md").write_text("\n".join(text))
    if all_losses:
        loss_figure(all_losses).savefig(out / "stein_loss.png", dpi=90)
    return "\n".join(text)


def main(out: Path, quick: bool = False, scenarios: list[str] | None = None) -> None:
    """Run the scenarios (default: all); write losses, summary tables and a figure."""
    out.mkdir(parents=True, exist_ok=True)
    by_name = {sc.name: sc for sc in SCENARIOS}
    unknown = sorted(set(scenarios or []) - set(by_name))
    if unknown:
        raise SystemExit(f"unknown scenario(s) {unknown}; choose from {sorted(by_name)}")
    for name in scenarios or list(by_name):
        sc = by_name[name]._replace(data_sets=6) if quick else by_name[name]
        losses = recovery(sc, draws=200 if quick else 300, tune=200 if quick else 300)
        losses.to_csv(out / f"losses_{sc.name}.csv", index=False, float_format="%.6g")
    print(write_summary(out), flush=True)
