"""Simulation-based calibration of the hierarchical model at a chosen size.

By default 8 groups of 3 rows (p = 2): groups of a few rows are where the default
coordinates lean least on each group's own estimates (validation/README.md, "Small
groups"). With many rows per group (``--groups 12 --rows 30``) the fit makes its draws
with jittered HMC (``GroupCovModel.default_algorithm``). Run from the repository root::

    python validation/sbc_groups.py [--groups 8] [--rows 3] [--p 2] [--sims 200] [--seed 3] \\
        [--algorithm nuts|jittered] [--save-ranks ranks.npz]

Prints the number of rank tests below 0.01, the smallest p-values, the divergent
transitions and how often the miscalibrated controls are caught.
"""

from __future__ import annotations

import argparse
import re
import time

import numpy as np

from groupcov.validate.sbc import SBCConfig, SBCSettings, run_sbc


def pooled_shifts(ranks, labels, n_draws: int) -> list[tuple[str, float]]:
    """Per parameter and feature (``sigma[*,x3]``), the mean normalized rank of the true
    value over every group and simulation as a z-score, largest ``|z|`` first: a shift
    shared by the groups shows here before it shows in any one group's test."""
    pools: dict[str, list[int]] = {}
    for j, label in enumerate(labels):
        found = re.match(r"(\w+)\[g\d+,(.*)\]", label)
        if found:
            pools.setdefault(f"{found.group(1)}[*,{found.group(2)}]", []).append(j)
    out = []
    for key, cols in pools.items():
        u = (np.asarray(ranks)[:, cols].ravel() + 0.5) / (n_draws + 1)
        out.append((key, float((u.mean() - 0.5) / np.sqrt(1 / 12 / u.size))))
    return sorted(out, key=lambda t: -abs(t[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sims", type=int, default=200)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--groups", type=int, default=8)
    parser.add_argument("--rows", type=int, default=3)
    parser.add_argument("--p", type=int, default=2)
    parser.add_argument("--algorithm", choices=["nuts", "jittered"], default=None,
                        help="default: what GroupCovModel.fit uses for this size")
    parser.add_argument("--save-ranks", metavar="PATH",
                        help="write the ranks, labels and p-values to this .npz file")
    args = parser.parse_args()
    config = SBCConfig(
        "hierarchical", "hierarchical", p=args.p, groups=args.groups, rows=args.rows
    )
    start = time.time()
    result = run_sbc(config, SBCSettings(sims=args.sims, seed=args.seed, algorithm=args.algorithm))
    p = np.asarray(result.pvalues)
    divergences = np.asarray(result.divergences)
    print(f"{config.name} groups {config.groups} rows {config.rows}: sims {args.sims}",
          f"{time.time() - start:.0f}s")
    print("below 0.01:", int((p < 0.01).sum()), "of", len(p), "min p", p.min(),
          result.labels[int(np.argmin(p))])
    print("divergent fits", int((divergences > 0).sum()), "divergences", int(divergences.sum()))
    for name, control in result.control_pvalues.items():
        print("control", name, int((np.asarray(control) < 0.01).sum()), "of", len(control))
    for label, value in sorted(zip(result.labels, p, strict=True), key=lambda t: t[1])[:6]:
        print(f"  {label:30s} {value:.4f}")
    print("pooled over groups (mean normalized rank as a z-score; groups of one data set are "
          "not independent, so |z| runs larger than a standard normal):")
    for key, z in pooled_shifts(result.ranks, result.labels, result.n_draws)[:4]:
        print(f"  {key:30s} z {z:+.2f}")
    if args.save_ranks:
        np.savez(args.save_ranks, ranks=result.ranks, labels=np.array(result.labels),
                 pvalues=p, n_draws=result.n_draws)


if __name__ == "__main__":
    main()
