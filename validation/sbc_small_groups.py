"""Simulation-based calibration of the hierarchical model on 8 groups of 3 rows (p = 2).

Groups of a few rows are where the default coordinates lean least on each group's own
estimates (validation/README.md, "Small groups"). Run from the repository root::

    python validation/sbc_small_groups.py [--sims 200] [--seed 3]

Prints the number of rank tests below 0.01, the smallest p-values, the divergent
transitions and how often the miscalibrated controls are caught.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from groupcov.validate.sbc import SBCConfig, SBCSettings, run_sbc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sims", type=int, default=200)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    config = SBCConfig("hierarchical", "hierarchical", p=2, groups=8, rows=3)
    start = time.time()
    result = run_sbc(config, SBCSettings(sims=args.sims, seed=args.seed))
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


if __name__ == "__main__":
    main()
