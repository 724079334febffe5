"""Benchmark: the per-group-loop PyMC workaround against groupcov, on the same data.

Every variant (model x sampler) runs in a fresh Python process, timed from just
before interpreter start to exit (start-up + imports + model build + compilation +
sampling; the benchmark's own ESS/R-hat computation afterwards is subtracted).

Run (from the repository root)::

    .venv/bin/python benchmarks/two_groups.py              # all variants, 2 groups x 1000 rows
    .venv/bin/python benchmarks/two_groups.py --only loop  # just the loop workaround
    .venv/bin/python benchmarks/two_groups.py --variants loop-nutpie,groupcov-nutpie
    .venv/bin/python benchmarks/two_groups.py --groups 20 --rows 200 --features 4 --json out.json

Variants: loop-pymc, loop-nutpie, loop-numpyro, groupcov-default, groupcov-nutpie,
groupcov-pymc, groupcov-numpyro.  ``--timeout`` (default 900 s) bounds each variant; a
variant that exceeds it is killed and reported as "> N s".  Defaults for the data
(no --groups/--rows/--features) reproduce ``groupcov.datasets.two_groups()``; any of
those options switches to ``simulate_groups(G, N, P, seed=--data-seed)``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
import traceback
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import (
    PhaseTimer,
    Variant,
    VariantResult,
    add_common_arguments,
    contention_notes,
    library_versions,
    load_dataset,
    loop_model,
    machine_description,
    markdown_table,
    posterior_diagnostics,
    run_worker,
    save_dataset,
    silence_warnings,
    temp_dir,
    worker_env,
    write_worker_result,
)

VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant("loop-pymc", "loop", "pymc", "loop (pymc)"),
        Variant("loop-nutpie", "loop", "nutpie", "loop (nutpie)"),
        Variant("loop-numpyro", "loop", "numpyro", "loop (numpyro)"),
        Variant("groupcov-default", "groupcov", None, "groupcov (default)"),
        Variant("groupcov-nutpie", "groupcov", "nutpie", "groupcov (nutpie)"),
        Variant("groupcov-pymc", "groupcov", "pymc", "groupcov (pymc)"),
        Variant("groupcov-numpyro", "groupcov", "numpyro", "groupcov (numpyro)"),
    )
}
BASELINE = "loop-pymc"

# Import the sampler's backend in the "import" phase, so that "sample" measures
# compilation + sampling only.
_BACKEND_MODULES = {"pymc": (), "nutpie": ("nutpie",), "numpyro": ("jax", "numpyro")}


# --------------------------------------------------------------------------- worker


def _import_backend(sampler: str | None) -> None:
    import importlib

    for mod in _BACKEND_MODULES.get(sampler or "", ()):
        importlib.import_module(mod)


def _sample_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "draws": args.draws,
        "tune": args.tune,
        "chains": args.chains,
        "random_seed": args.seed,
        "progressbar": False,
    }


def _fit_loop(
    variant: Variant, args: argparse.Namespace, timer: PhaseTimer
) -> tuple[Any, dict[str, Any]]:
    """The per-group-loop workaround, exactly as in the design brief."""
    with timer.phase("import"):
        import arviz  # noqa: F401  (part of what a user imports)
        import pymc as pm

        _import_backend(variant.sampler)
    with timer.phase("build"):
        data = load_dataset(args.data)
        model = loop_model(data)
    kwargs = _sample_kwargs(args)
    if args.pymc_cores and variant.sampler == "pymc":
        kwargs["cores"] = args.pymc_cores
    with timer.phase("sample"):
        idata = pm.sample(model=model, nuts_sampler=variant.sampler, **kwargs)
    return idata, {"fingerprint": data.fingerprint()}


def _fit_groupcov(
    variant: Variant, args: argparse.Namespace, timer: PhaseTimer
) -> tuple[Any, dict[str, Any]]:
    """groupcov's model builder with its default (hierarchical) means and covariance."""
    with timer.phase("import"):
        import arviz  # noqa: F401

        import groupcov

        _import_backend(variant.sampler)
    with timer.phase("build"):
        data = load_dataset(args.data)
        df = data.to_frame("group")
        m = groupcov.GroupCovModel(df, group="group", features=data.features)
    kwargs = _sample_kwargs(args)
    if variant.sampler is not None:
        kwargs["sampler"] = variant.sampler
    with timer.phase("sample"):
        res = m.fit(**kwargs)
    return res.idata, {"fingerprint": data.fingerprint(), "result_type": type(res).__name__}


def run_worker_process(args: argparse.Namespace) -> int:
    """Entry point of ``--worker``: fit one variant and write its JSON result."""
    entry = time.time()
    variant = VARIANTS[args.worker]
    timer = PhaseTimer()
    payload: dict[str, Any] = {
        "variant": variant.name,
        "worker_entry_time": entry,
        "phases": timer.times,
    }
    try:
        silence_warnings()
        fit = _fit_loop if variant.model == "loop" else _fit_groupcov
        idata, info = fit(variant, args, timer)
        payload.update(info)
        with timer.phase("diagnostics"):
            payload["diagnostics"] = posterior_diagnostics(idata)
        attrs = dict(idata.posterior.attrs)
        # PyMC's external samplers set "inference_library"; groupcov sets "sampler".
        payload["sampler_used"] = attrs.get("sampler") or attrs.get("inference_library")
        payload["posterior_vars"] = list(idata.posterior.data_vars)
        rc = 0
    except Exception:
        payload["error"] = traceback.format_exc()
        print(payload["error"], file=sys.stderr)
        rc = 1
    write_worker_result(args.result_file, payload)
    return rc


# --------------------------------------------------------------------------- parent


def _make_data(args: argparse.Namespace, path: Path) -> tuple[Any, str]:
    from groupcov.datasets import simulate_groups, two_groups

    if args.groups is None and args.rows is None and args.features is None:
        sim = two_groups()
        desc = "two_groups(): 2 groups x 1000 rows, 2 features"
    else:
        g, n, p = args.groups or 2, args.rows or 1000, args.features or 2
        sim = simulate_groups(g, n, p, seed=args.data_seed)
        desc = f"simulate_groups({g}, {n}, {p}, seed={args.data_seed})"
    data = save_dataset(path, sim.data, "group", sim.features)
    return data, desc


def _select(args: argparse.Namespace) -> list[Variant]:
    chosen = list(VARIANTS.values())
    if args.only:
        chosen = [v for v in chosen if v.model == args.only]
    if args.variants:
        names = [s.strip() for s in args.variants.split(",") if s.strip()]
        unknown = [n for n in names if n not in VARIANTS]
        if unknown:
            raise SystemExit(f"unknown variant(s) {unknown}; choose from {list(VARIANTS)}")
        chosen = [v for v in chosen if v.name in names]
    if not chosen:
        raise SystemExit("no variant selected")
    return chosen


def _worker_cmd(v: Variant, args: argparse.Namespace, data: Path, result: Path) -> list[str]:
    return [
        sys.executable, str(Path(__file__).resolve()),
        "--worker", v.name,
        "--data", str(data),
        "--result-file", str(result),
        "--draws", str(args.draws),
        "--tune", str(args.tune),
        "--chains", str(args.chains),
        "--seed", str(args.seed),
        "--pymc-cores", str(args.pymc_cores),
    ]  # fmt: skip


def _cache_mode(args: argparse.Namespace) -> str:
    if args.cold_cache:
        return "cold (empty per variant)"
    return "warmed by an untimed short run" if args.warmup else "user default (as found)"


def _status_line(r: VariantResult) -> str:
    if r.ok:
        ph = r.worker.get("phases", {})
        foreign = f", other processes {r.foreign_cpu_s:.0f} CPU-s" if r.foreign_cpu_s else ""
        return (
            f"ok  wall {r.wall_s:.1f} s (start-up {r.worker.get('startup_s', 0):.1f}, "
            f"import {ph.get('import', 0):.1f}, build {ph.get('build', 0):.1f}, "
            f"sample {ph.get('sample', 0):.1f}){foreign}"
        )
    if r.status == "timeout":
        return f"TIMEOUT after {r.timeout_s:g} s"
    first = (r.error or "").strip().splitlines()
    return "ERROR  " + (first[-1] if first else "")


def _env(args: argparse.Namespace, work: Path, v: Variant, *, cold_cache: bool) -> dict[str, str]:
    return worker_env(
        work,
        v.name,
        cold_cache=cold_cache,
        xla_devices=args.xla_devices,
        blas_threads=args.blas_threads,
    )


def _warm_up(variants: list[Variant], args: argparse.Namespace, work: Path, data: Path) -> None:
    """Run each variant once, untimed and short, to populate compilation caches."""
    short = argparse.Namespace(**{**vars(args), "draws": 20, "tune": 20})
    for v in variants:
        print(f"[warm-up] {v.label} ...", file=sys.stderr, flush=True)
        r = run_worker(
            _worker_cmd(v, short, data, work / f"warmup-{v.name}.json"),
            variant=f"warmup-{v.name}",
            label=v.label,
            group=v.model,
            timeout_s=args.timeout,
            result_path=work / f"warmup-{v.name}.json",
            log_dir=work / "warmup-logs",
            env=_env(args, work, v, cold_cache=False),
        )
        print(f"      {_status_line(r)}", file=sys.stderr, flush=True)


def run_benchmark(args: argparse.Namespace) -> int:
    """Run the selected variants one after another and print the table."""
    variants = _select(args)
    if args.warmup and args.cold_cache:
        raise SystemExit("--warmup and --cold-cache exclude each other")
    work = temp_dir("groupcov-bench-")
    log_dir = Path(args.log_dir) if args.log_dir else work / "logs"
    try:
        data_path = work / "data.npz"
        data, desc = _make_data(args, data_path)
        fingerprint = data.fingerprint()
        if args.warmup:
            _warm_up(variants, args, work, data_path)
        results: list[VariantResult] = []
        for k, v in enumerate(variants, 1):
            print(f"[{k}/{len(variants)}] {v.label} ...", file=sys.stderr, flush=True)
            r = run_worker(
                _worker_cmd(v, args, data_path, work / f"{v.name}.json"),
                variant=v.name, label=v.label, group=v.model, timeout_s=args.timeout,
                result_path=work / f"{v.name}.json", log_dir=log_dir,
                env=_env(args, work, v, cold_cache=args.cold_cache),
            )  # fmt: skip
            seen = r.worker.get("fingerprint")
            if r.ok and seen != fingerprint:
                r.status, r.error = "error", f"worker saw different data ({seen})"
            print(f"      {_status_line(r)}", file=sys.stderr, flush=True)
            results.append(r)

        table = markdown_table(
            results,
            baseline_variant=BASELINE,
            baseline_label="loop(pymc)",
            baseline_group="loop",
            fastest_label="fastest loop",
        )
        versions = library_versions(["pymc", "pytensor", "nutpie", "numpyro", "jax", "arviz"])
        header = [
            f"Machine: {machine_description()}",
            "Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()),
            f"Data: {desc} (fingerprint {fingerprint})",
            f"Sampling: {args.chains} chains x ({args.tune} tune + {args.draws} draws), "
            f"random_seed={args.seed}; timeout {args.timeout:g} s per variant; "
            f"PyTensor/Numba cache: {_cache_mode(args)}; "
            f"JAX host devices: {args.xla_devices or 'default'}; "
            f"BLAS threads: {args.blas_threads or 'default'}; "
            f"loop pm.sample cores: {args.pymc_cores or 'PyMC default'}",
            "wall s = process wall time (start-up, imports, build, compile, sample), "
            "excluding the benchmark's ESS/R-hat computation; ESS/s = min bulk ESS / wall s; "
            "speed-ups are wall-time ratios within this run.",
        ]
        notes = [
            f"'{r.label}' sampled with: {r.worker.get('sampler_used')}"
            for r in results
            if r.ok and VARIANTS[r.variant].sampler is None
        ] + contention_notes(results)
        print("\n".join(header) + "\n\n" + table)
        if notes:
            print("\n" + "\n".join(notes))
        failures = [r for r in results if r.status == "error"]
        for r in failures:
            print(f"\n{r.label} failed:\n{r.error}", file=sys.stderr)
        if args.json:
            out = {
                "header": header,
                "data": desc,
                "fingerprint": fingerprint,
                "settings": {
                    k: getattr(args, k)
                    for k in (
                        "draws",
                        "tune",
                        "chains",
                        "seed",
                        "timeout",
                        "cold_cache",
                        "warmup",
                        "xla_devices",
                        "blas_threads",
                        "pymc_cores",
                    )
                },
                "versions": versions,
                "results": [r.to_dict() for r in results],
                "table": table,
                "notes": notes,
            }
            Path(args.json).write_text(json.dumps(out, indent=1, default=str))
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(parser)
    parser.add_argument("--groups", type=int, help="number of groups (simulate_groups)")
    parser.add_argument("--rows", type=int, help="rows per group (simulate_groups)")
    parser.add_argument("--features", type=int, help="number of features (simulate_groups)")
    parser.add_argument("--data-seed", type=int, default=0, help="seed for simulate_groups")
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--tune", type=int, default=1000)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1, help="random_seed for sampling")
    parser.add_argument(
        "--pymc-cores",
        type=int,
        default=0,
        metavar="N",
        help="cores= for the loop's pm.sample with PyMC's own sampler; 0 (default) keeps "
        "PyMC's default, min(4, cpu_count // 2), i.e. 1 process on a 2-core machine",
    )
    parser.add_argument("--worker", choices=list(VARIANTS), help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--result-file", help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.worker:
        return run_worker_process(args)
    return run_benchmark(args)


if __name__ == "__main__":
    raise SystemExit(main())
