"""``python -m groupcov.validate sbc|pooling|realdata [--quick] [--out DIR]``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["main"]


def _sbc(args) -> None:
    from groupcov.validate.sbc import CONFIGS, SBCSettings, run_sbc
    from groupcov.validate.sbc_report import write_prior_check, write_result, write_summary

    if args.quick:
        configs = [c for c in CONFIGS if c.p == 2]
        settings = SBCSettings(sims=40, draws=200, tune=200, thin=4, bins=5)
    else:
        configs, settings = list(CONFIGS), SBCSettings()
    if args.configs:
        configs = [c for c in CONFIGS if c.name in args.configs]
        unknown = set(args.configs) - {c.name for c in configs}
        if unknown:
            sys.exit(f"unknown configuration(s) {sorted(unknown)}; "
                     f"choose from {[c.name for c in CONFIGS]}")
    if args.sims is not None:
        settings = settings._replace(sims=args.sims)
    if args.seed is not None:
        settings = settings._replace(seed=args.seed)
    out = Path(args.out) / "sbc"
    for config in configs:
        print(write_prior_check(config, out).to_string(index=False), flush=True)
        if settings.sims:
            write_result(run_sbc(config, settings), out)
    if any(out.glob("summary_*.json")):
        print(write_summary(out).to_string(index=False))


def _pooling(args) -> None:
    from groupcov.validate.pooling import main

    main(Path(args.out) / "pooling", quick=args.quick, scenarios=args.scenarios)


def _realdata(args) -> None:
    from groupcov.validate.realdata import main

    main(Path(args.out) / "realdata", quick=args.quick)


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and run one study."""
    parser = argparse.ArgumentParser(prog="python -m groupcov.validate", description=__doc__)
    parser.add_argument("study", choices=["sbc", "pooling", "realdata"])
    parser.add_argument("--quick", action="store_true", help="reduced sizes (minutes)")
    parser.add_argument("--out", default="validation", help="output folder (default: validation)")
    parser.add_argument("--configs", nargs="*", help="SBC only: configuration names to run")
    parser.add_argument("--sims", type=int,
                        help="SBC only: number of simulations (0: only the prior-draw check)")
    parser.add_argument("--scenarios", nargs="*",
                        help="pooling only: scenario names to run (alike, different)")
    parser.add_argument("--seed", type=int, help="SBC only: seed of the simulations (default 0)")
    args = parser.parse_args(argv)
    {"sbc": _sbc, "pooling": _pooling, "realdata": _realdata}[args.study](args)


if __name__ == "__main__":
    main()
