"""Bayesian QDA against scikit-learn's QuadraticDiscriminantAnalysis on iris and wine.

Two experiments on scikit-learn's bundled data sets, raw features:

1. **5-fold stratified cross-validation** (shuffled, fixed seed): accuracy and
   log-loss of :class:`groupcov.BayesianQDA` (hierarchical means and covariances)
   and of plug-in QDA (``reg_param=0``, scikit-learn's default).
2. **10 training rows per class**: repeated random splits (10 rows of each class to
   train, all others to test). BayesianQDA with hierarchical covariance pooling, with
   unpooled covariances, and scikit-learn's QDA on standardized features (a
   ``StandardScaler`` fitted on the training rows) with every ``reg_param`` of a grid
   (``solver="svd"``) and every ``shrinkage`` of a grid (``solver="eigen"``, which
   also fits when a class has fewer rows than features). QDA's *best* setting is the
   one with the lowest mean test log-loss, chosen on the test splits themselves (an
   advantage no real user has).

Metrics are averaged over folds or splits; ``±`` is the standard error over them.
Run from the repository root::

    .venv/bin/python benchmarks/qda.py            # prints Markdown tables
    .venv/bin/python benchmarks/qda.py --reps 3   # quicker
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from sklearn.datasets import load_iris, load_wine
from sklearn.discriminant_analysis import QuadraticDiscriminantAnalysis
from sklearn.metrics import accuracy_score, log_loss
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from groupcov.sklearn import BayesianQDA

REG_GRID = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 1.0)
SHRINKAGE_GRID = ("auto", 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 1.0)
QDA_SETTINGS = [("reg_param", r) for r in REG_GRID] + [("shrinkage", s) for s in SHRINKAGE_GRID]
DATASETS = {"iris": load_iris, "wine": load_wine}


def _scores(y_true, proba, classes) -> tuple[float, float]:
    if not np.all(np.isfinite(proba)):
        return float("nan"), float("nan")
    pred = classes[np.argmax(proba, axis=1)]
    return accuracy_score(y_true, pred), log_loss(y_true, proba, labels=classes)


def _qda(kind: str, value):
    """scikit-learn's QDA on standardized features with one regularization setting."""
    if kind == "reg_param":
        qda = QuadraticDiscriminantAnalysis(solver="svd", reg_param=value)
    else:
        qda = QuadraticDiscriminantAnalysis(solver="eigen", shrinkage=value)
    return make_pipeline(StandardScaler(), qda)


def _qda_scores(setting, x_tr, y_tr, x_te, y_te, classes):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Variables are collinear" when n <= p
        try:
            qda = _qda(*setting).fit(x_tr, y_tr)
            return _scores(y_te, qda.predict_proba(x_te), classes)
        except (ValueError, np.linalg.LinAlgError):  # a class with fewer rows than features
            return float("nan"), float("nan")


def _bqda(settings, **modes):
    return BayesianQDA(**modes, **settings)


def _mean_se(values) -> str:
    v = np.asarray(values, dtype=float)
    if not np.all(np.isfinite(v)):
        return "fails"
    se = v.std(ddof=1) / np.sqrt(v.size) if v.size > 1 else float("nan")
    return f"{v.mean():.3f} ± {se:.3f}"


def cross_validation(name, x, y, settings, folds, seed):
    classes = np.unique(y)
    acc = {"BayesianQDA (hierarchical)": [], "sklearn QDA (reg_param=0)": []}
    loss = {k: [] for k in acc}
    split = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for k, (tr, te) in enumerate(split.split(x, y)):
        clf = _bqda({**settings, "random_seed": seed + k}).fit(x[tr], y[tr])
        a, ll = _scores(y[te], clf.predict_proba(x[te]), classes)
        acc["BayesianQDA (hierarchical)"].append(a)
        loss["BayesianQDA (hierarchical)"].append(ll)
        a, ll = _qda_scores(("reg_param", 0.0), x[tr], y[tr], x[te], y[te], classes)
        acc["sklearn QDA (reg_param=0)"].append(a)
        loss["sklearn QDA (reg_param=0)"].append(ll)
    return [(name, m, _mean_se(acc[m]), _mean_se(loss[m])) for m in acc]


def small_training_sets(name, x, y, settings, reps, per_class, seed):
    classes = np.unique(y)
    rng = np.random.default_rng(seed)
    models = ["BayesianQDA, hierarchical covariance", "BayesianQDA, unpooled covariance"]
    acc = {m: [] for m in models}
    loss = {m: [] for m in models}
    qda = {setting: ([], []) for setting in QDA_SETTINGS}
    for rep in range(reps):
        tr = np.concatenate(
            [rng.choice(np.flatnonzero(y == c), per_class, replace=False) for c in classes]
        )
        te = np.setdiff1d(np.arange(y.size), tr)
        for m, cov in zip(models, ("hierarchical", "unpooled"), strict=True):
            clf = _bqda({**settings, "random_seed": seed + rep}, covariance=cov)
            clf.fit(x[tr], y[tr])
            a, ll = _scores(y[te], clf.predict_proba(x[te]), classes)
            acc[m].append(a)
            loss[m].append(ll)
        for setting in QDA_SETTINGS:
            a, ll = _qda_scores(setting, x[tr], y[tr], x[te], y[te], classes)
            qda[setting][0].append(a)
            qda[setting][1].append(ll)
    mean_loss = {k: np.mean(v[1]) if np.all(np.isfinite(v[1])) else np.inf for k, v in qda.items()}
    rows = [(name, m, _mean_se(acc[m]), _mean_se(loss[m])) for m in models]
    for kind in ("reg_param", "shrinkage"):
        settings_of_kind = [k for k in QDA_SETTINGS if k[0] == kind]
        best = min(settings_of_kind, key=mean_loss.get)
        label = f"sklearn QDA, best {kind} ({best[1]})"
        if not np.isfinite(mean_loss[best]):
            label = f"sklearn QDA, any {kind}"
        rows.append((name, label, _mean_se(qda[best][0]), _mean_se(qda[best][1])))
    rows.append(
        (
            name,
            "sklearn QDA, reg_param=0",
            _mean_se(qda[("reg_param", 0.0)][0]),
            _mean_se(qda[("reg_param", 0.0)][1]),
        )
    )
    return rows


def _table(rows, header) -> str:
    lines = [
        f"| data | model | {header} accuracy | {header} log-loss |",
        "| :-- | :-- | --: | --: |",
    ]
    lines += [f"| {d} | {m} | {a} | {ll} |" for d, m, a, ll in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--tune", type=int, default=1000)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--per-class", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    args = parser.parse_args()
    settings = {"draws": args.draws, "tune": args.tune, "chains": args.chains}
    start = time.perf_counter()
    cv_rows, small_rows = [], []
    for name in args.datasets:
        x, y = DATASETS[name](return_X_y=True)
        cv_rows += cross_validation(name, x, y, settings, args.folds, args.seed)
        small_rows += small_training_sets(
            name, x, y, settings, args.reps, args.per_class, args.seed
        )
    print(f"### {args.folds}-fold stratified cross-validation\n")
    print(_table(cv_rows, "mean"))
    print(f"\n### {args.per_class} training rows per class ({args.reps} random splits)\n")
    print(_table(small_rows, "mean"))
    print(
        f"\nBayesianQDA: {args.chains} chains x {args.draws} draws ({args.tune} warm-up), "
        f"hierarchical means. Total time {time.perf_counter() - start:.0f} s."
    )


if __name__ == "__main__":
    main()
