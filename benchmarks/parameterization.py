"""Hierarchical geometry: centered vs non-centered vs groupcov's data-informed default.

Fits the hierarchical/hierarchical model with each ``parameterization=`` on two data
sets, small groups (20 groups x 8 rows) and large groups (2 groups x 1,000 rows, the
two-group example), and prints leapfrog steps per draw, divergences, minimum bulk ESS,
ESS per 1,000 gradient evaluations and ESS per second of sampling (the sampler's own
time, including its compilation).

Run from the repository root::

    .venv/bin/python benchmarks/parameterization.py
"""

from __future__ import annotations

import argparse
import time

import groupcov
from groupcov.datasets import simulate_groups, two_groups


def _datasets():
    small = simulate_groups(20, 8, 2, seed=3)
    return {"20 groups x 8 rows": small, "2 groups x 1,000 rows": two_groups()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--tune", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    print(
        "| data | parameterization | steps/draw | divergences | min bulk ESS "
        "| ESS per 1k gradients (after warm-up) | ESS/s |"
    )
    print("| :-- | :-- | --: | --: | --: | --: | --: |")
    for label, sim in _datasets().items():
        for param in ("centered", "noncentered", "auto"):
            model = groupcov.GroupCovModel(
                sim.data, group="group", features=sim.features, parameterization=param
            )
            start = time.perf_counter()
            res = model.fit(
                draws=args.draws, tune=args.tune, random_seed=args.seed, progressbar=False
            )
            elapsed = time.perf_counter() - start
            diag = res.diagnostics()
            steps = res.idata.sample_stats["n_steps"].values
            ess_per_grad = 1000 * diag.min_ess_bulk / steps.sum()
            print(
                f"| {label} | {param} | {steps.mean():.1f} | {diag.divergences} "
                f"| {diag.min_ess_bulk:,.0f} | {ess_per_grad:.1f} "
                f"| {diag.min_ess_bulk / elapsed:,.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
