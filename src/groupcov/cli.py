"""Command line: ``groupcov demo``."""

from __future__ import annotations

import argparse
import sys
import time

__all__ = ["main"]


def _demo(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    import arviz as az

    from groupcov import GroupCovModel
    from groupcov.datasets import two_groups

    sim = two_groups(n_per_group=args.rows, seed=args.data_seed)
    print(
        f"Two groups, {args.rows} rows each, features x and y:\n"
        "  A ~ N((0, 0), [[1, 0], [0, 1]])\n"
        "  B ~ N((1, -1), [[1, -0.5], [-0.5, 1]])\n"
    )
    model = GroupCovModel(sim.data, group="group", features=sim.features)
    print(model)
    result = model.fit(
        sampler=args.sampler,
        draws=args.draws,
        tune=args.tune,
        chains=args.chains,
        random_seed=args.seed,
        progressbar=False,
    )
    post = result.idata.posterior
    hdi = az.hdi(post[["mu", "cov"]], hdi_prob=0.94)
    rhat = az.rhat(post[["mu", "cov"]])
    ess = az.ess(post[["mu", "cov"]], method="bulk")
    feats = sim.features
    rows = []
    for g in sim.mean:
        for i, f in enumerate(feats):
            rows.append((g, "mu", {"feature": f}, f"mu[{f}]", sim.mean[g][i]))
        for i, f in enumerate(feats):
            for j, h in enumerate(feats):
                sel = {"feature": f, "feature_": h}
                rows.append((g, "cov", sel, f"cov[{f},{h}]", sim.cov[g][i, j]))
    inside = 0
    header = (
        f"{'group':<6}{'parameter':<12}{'true':>8}{'mean':>9}{'94% HDI':>20}"
        f"{'R-hat':>8}{'ESS':>7}"
    )
    print("\n" + header + "\n" + "-" * len(header))
    for g, name, sel, label, t in rows:
        sel = {"group": g, **sel}
        low, high = (float(v) for v in hdi[name].sel(sel).values)
        ok = low <= t <= high
        inside += ok
        interval = f"[{low:.3f}, {high:.3f}]"
        print(
            f"{g:<6}{label:<12}{t:>8.3f}{float(post[name].sel(sel).mean()):>9.3f}"
            f"{interval:>20}{float(rhat[name].sel(sel)):>8.3f}{float(ess[name].sel(sel)):>7.0f}"
            f"{'' if ok else '  <- outside'}"
        )
    diag = result.diagnostics()
    print(
        f"\n{inside} of {len(rows)} true values inside their 94% intervals; "
        f"max R-hat {diag.max_r_hat:.3f}, min bulk ESS {diag.min_ess_bulk:.0f}, "
        f"min tail ESS {diag.min_ess_tail:.0f}, {diag.divergences} divergences "
        f"({diag.chains} chains x {diag.draws} draws, sampler "
        f"{result.idata.posterior.attrs.get('sampler')}); "
        f"{time.perf_counter() - start:.1f} s"
    )
    good = inside == len(rows) and diag.max_r_hat <= 1.01 and diag.divergences == 0
    print("OK" if good else "CHECK: see the rows and diagnostics above")
    return 0 if good else 1


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``groupcov`` command."""
    parser = argparse.ArgumentParser(
        prog="groupcov",
        description="Bayesian estimation of per-group means and covariance matrices.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo",
        help="simulate the two-group example, fit it and compare with the truth",
        description="Simulate two groups with known means and covariances, fit the "
        "default hierarchical model and print each true value beside its posterior "
        "mean and 94%% interval.",
    )
    demo.add_argument("--sampler", default=None, help="numpyro (default), nutpie or pymc")
    demo.add_argument("--rows", type=int, default=1000, help="rows per group (default 1000)")
    demo.add_argument("--draws", type=int, default=1000, help="draws per chain")
    demo.add_argument("--tune", type=int, default=1000, help="warm-up steps per chain")
    demo.add_argument("--chains", type=int, default=4, help="number of chains")
    demo.add_argument("--seed", type=int, default=1, help="sampler seed")
    demo.add_argument("--data-seed", type=int, default=20240601, help="simulation seed")
    demo.set_defaults(func=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``groupcov`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, KeyError, ImportError) as err:
        print(f"groupcov: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
