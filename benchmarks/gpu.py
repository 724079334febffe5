"""The huge case on a GPU in one go: CUDA JAX if missing, simulate, reduce, build, sample.

Default: G=10,000 groups x 1,000 rows x p=5 (10 million rows), the hierarchical model
(groupcov's default), 4 chains x (1,000 tune + 1,000 draws) with the NumPyro back-end,
whose chains are ``vmap``-ed inside one jitted program on a GPU. Prints one JSON
object (and writes it with ``--json``): device, versions, time of each step,
sampling time, min bulk ESS and ESS/s, max R-hat, divergences.

Steps and what they time:

1. If an NVIDIA GPU is present (``nvidia-smi``) but JAX has no GPU back-end, install
   ``jax[cuda12]`` at the installed JAX version (``--wheels DIR`` installs from a
   folder of wheels, for machines without network access);
2. simulate the rows in memory (``_sizes.simulate_arrays``) and reduce them with
   ``groupcov.reduce`` (NumPy engine);
3. ``GroupCovModel(stats)``, then ``fit``: the first fit includes translation, tracing
   and XLA compilation; a second fit of the same model (``--no-refit`` skips it) reuses
   the compiled program, so its time is the sampling time;
4. min bulk ESS and max R-hat over the kept variables (rank-normalized, as ArviZ, but
   vectorized over all entries: ``groupcov.diagnostics``).

Run from the repository root::

    python benchmarks/gpu.py                                  # the huge case, on the GPU
    python benchmarks/gpu.py --groups 100 --rows 200 --draws 200 --tune 200   # CPU smoke test

Without a GPU it runs on the CPU (chains then use ``pmap`` over host devices).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _sizes import Size, simulate_arrays  # noqa: E402


def _gpu_name() -> str | None:
    """Name of the first NVIDIA GPU, or None when there is none (or no driver tools)."""
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    line = out.stdout.strip().splitlines()
    return line[0].strip() if line else None


def _jax_backend() -> tuple[str | None, str | None]:
    """(default back-end, version) of JAX in a fresh interpreter; (None, None) without JAX."""
    code = "import jax; print(jax.default_backend()); print(jax.__version__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if out.returncode != 0:
        return None, None
    backend, version = out.stdout.split()[-2:]
    return backend, version


def pinned_jax() -> str | None:
    """The project's requirement on ``jax`` (from pyproject.toml), e.g. ``>=0.10,<0.11``."""
    import tomllib

    try:
        project = tomllib.loads((HERE.parent / "pyproject.toml").read_text())["project"]
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return None
    for req in project.get("dependencies", []):
        name = req.split(";")[0].strip()
        if name.startswith("jax") and name[3:4] in "<>=!~ ":
            return name[3:].strip()
    return None


def _satisfies(version: str | None, spec: str | None) -> bool | None:
    try:
        from packaging.specifiers import SpecifierSet
    except ImportError:
        return None
    if version is None or spec is None:
        return None
    return SpecifierSet(spec).contains(version)


def ensure_cuda_jax(args: argparse.Namespace) -> dict[str, Any]:
    """Install CUDA JAX (same version as the installed JAX) when a GPU is present but
    JAX does not use it. Returns what was found and done."""
    info: dict[str, Any] = {"gpu": _gpu_name()}
    start = time.perf_counter()
    backend, version = _jax_backend()
    info["jax_backend_before"] = backend
    if info["gpu"] and backend != "gpu" and not args.no_install:
        # the same version as the CPU JAX in this environment (which satisfies the pin)
        installed = version or importlib.metadata.version("jax")
        cmd = [sys.executable, "-m", "pip", "install", "--quiet", f"jax[{args.cuda}]=={installed}"]
        if args.wheels:
            cmd += ["--no-index", "--find-links", args.wheels]
        info["install_command"] = " ".join(cmd)
        done = subprocess.run(cmd, capture_output=True, text=True)
        info["install_ok"] = done.returncode == 0
        if done.returncode != 0:
            info["install_error"] = done.stderr.strip().splitlines()[-5:]
        backend, version = _jax_backend()
    info["setup_s"] = time.perf_counter() - start  # probing JAX (+ installing)
    info["jax_backend"] = backend
    info["jax_version"] = version
    info["jax_pinned"] = pinned_jax()
    info["jax_in_pinned_range"] = _satisfies(version, info["jax_pinned"])
    return info


def _ensure_groupcov_importable() -> str:
    """Import groupcov from the installed package, else from this checkout's ``src``."""
    try:
        import groupcov

        return "installed"
    except ImportError:
        sys.path.insert(0, str(HERE.parent / "src"))
        import groupcov  # noqa: F401

        return "source tree"


def measure(args: argparse.Namespace, report: dict[str, Any]) -> None:
    """Simulate, reduce, build, fit (twice) and diagnose; fill ``report``."""
    t = report.setdefault("seconds", {})
    start = time.perf_counter()
    report["groupcov_from"] = _ensure_groupcov_importable()
    import jax

    import groupcov
    from _harness import CompileEvents

    events = CompileEvents().install()
    t["import"] = time.perf_counter() - start
    report["jax"] = {
        "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        "version": jax.__version__,
    }
    report["chains_mapped_with"] = (
        "pmap" if jax.default_backend() == "cpu" and jax.local_device_count() >= args.chains
        else "vmap + jit"
    )  # fmt: skip

    size = Size("gpu", args.groups, args.rows, args.features)
    step = time.perf_counter()
    truth, idx, x = simulate_arrays(size, seed=args.data_seed)
    t["simulate"] = time.perf_counter() - step
    step = time.perf_counter()
    stats = groupcov.reduce(x, group=idx, features=truth["features"])
    t["reduce"] = time.perf_counter() - step
    del x, idx
    step = time.perf_counter()
    model = groupcov.GroupCovModel(stats, group="group")
    t["build"] = time.perf_counter() - step

    kw: dict[str, Any] = {
        "draws": args.draws,
        "tune": args.tune,
        "chains": args.chains,
        "random_seed": args.seed,
        "progressbar": False,
    }
    if args.var_names:
        kw["var_names"] = args.var_names.split(",")
    step = time.perf_counter()
    res = model.fit(**kw)
    t["first_fit"] = time.perf_counter() - step
    t["first_fit_sampler"] = _sampler_seconds(res)
    t["start_to_first_result"] = time.perf_counter() - report["_t0"]
    first = events.snapshot()
    t["xla_compile_first_fit"] = first["backend_compile_s"]
    report["persistent_cache_hits"] = first["cache_hits"]
    report["jax_compile_events_first_fit"] = first
    report["peak_rss_mb_after_first_fit"] = _peak_rss_mb()
    report["sampling_s"] = t["first_fit"]
    report["sampling_s_is"] = "first fit (translation and compilation included)"
    _diagnose(res, report, "first_fit", args.workers)
    _finish(report, args)  # a partial report, in case the second fit cannot complete

    if args.no_refit:
        return
    elapsed = time.perf_counter() - report["_t0"]
    if args.deadline_s is not None and elapsed + 1.2 * t["first_fit"] > args.deadline_s:
        report["second_fit_skipped"] = (
            f"{elapsed:.0f} s elapsed + 1.2 x the first fit's {t['first_fit']:.0f} s "
            f"> --deadline-s {args.deadline_s:.0f}"
        )
        return
    del res
    step = time.perf_counter()
    res = model.fit(**{**kw, "random_seed": args.seed + 1})
    t["second_fit"] = time.perf_counter() - step
    t["second_fit_sampler"] = _sampler_seconds(res)
    t["xla_compile_second_fit"] = (
        events.snapshot()["backend_compile_s"] - first["backend_compile_s"]
    )
    report["sampling_s"] = t["second_fit"]
    report["sampling_s_is"] = "second fit (compiled program reused)"
    _diagnose(res, report, "second_fit", args.workers)


def _sampler_seconds(res: Any) -> float | None:
    """The sampler's own time (program load or compilation, and sampling), without the
    result's construction (transfers, group log-likelihood, datasets)."""
    value = res.posterior.attrs.get("sampling_time")
    return None if value is None else float(value)


def _diagnose(res: Any, report: dict[str, Any], fit: str, workers: int | None) -> None:
    """R-hat, bulk ESS, divergences and leapfrog steps of one fit; targets against it."""
    from _harness import posterior_diagnostics

    step = time.perf_counter()
    post = res.posterior
    found = posterior_diagnostics(res, workers=workers)
    rhat_max, ess_min = found["max_rhat"], found["min_ess_bulk"]
    where = {"max_rhat": found["max_rhat_var"], "min_ess": found["min_ess_var"]}
    report["seconds"][f"diagnostics_{fit}"] = time.perf_counter() - step
    stats_ds = res.sample_stats
    steps = stats_ds["n_steps"].values
    diag = {
        "fit": fit,
        "max_rhat": rhat_max,
        "min_ess_bulk": ess_min,
        "worst": where,
        "divergences": found["divergences"],
        "mean_leapfrog_steps": float(steps.mean()),
        "algorithm": post.attrs.get("algorithm"),
        "max_leapfrog_steps": int(steps.max()),
        "entries": int(sum(post[v].values[0, 0].size for v in post.data_vars)),
        "kept_variables": list(post.data_vars),
        "posterior_mb": sum(post[v].values.nbytes for v in post.data_vars) / 1e6,
    }
    report.setdefault("diagnostics_by_fit", {})[fit] = diag
    report["diagnostics"] = diag
    sampling = report["sampling_s"]
    report["min_ess_per_sampling_s"] = ess_min / sampling
    report["targets"] = {
        "sampling <= 60 s": sampling <= 60.0,
        "max R-hat <= 1.01": rhat_max <= 1.01,
        "no divergences": diag["divergences"] == 0,
    }
    report["peak_rss_mb"] = _peak_rss_mb()
    report["device_memory"] = _device_memory()


def _device_memory() -> dict[str, float] | None:
    """Peak and current memory of the first JAX device in MB (None where not reported)."""
    import jax

    try:
        stats = jax.devices()[0].memory_stats()
    except Exception:  # CPU devices report nothing on some versions
        return None
    if not stats:
        return None
    keys = ("peak_bytes_in_use", "bytes_in_use", "bytes_limit")
    return {k.replace("bytes", "mb"): stats[k] / 1e6 for k in keys if k in stats}


def _finish(report: dict[str, Any], args: argparse.Namespace) -> str:
    """The report as JSON text (without the private start time); written to ``--json``."""
    out = {k: v for k, v in report.items() if not k.startswith("_")}
    out["total_s"] = time.perf_counter() - report["_t0"]
    text = json.dumps(out, indent=1, default=str)
    if args.json:
        Path(args.json).write_text(text)
    return text


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--groups", type=int, default=10_000)
    p.add_argument("--rows", type=int, default=1_000, help="rows per group")
    p.add_argument("--features", type=int, default=5)
    p.add_argument("--draws", type=int, default=1_000)
    p.add_argument("--tune", type=int, default=1_000)
    p.add_argument("--chains", type=int, default=4)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--data-seed", type=int, default=0)
    p.add_argument(
        "--var-names",
        default="mu,sigma,corr",
        help="fit(var_names=): variables kept in the posterior ('' = all)",
    )
    p.add_argument("--no-refit", action="store_true", help="fit once (sampling time = first fit)")
    p.add_argument(
        "--deadline-s",
        type=float,
        help="skip the second fit when it would likely end later than this many seconds "
        "after the start (the report then times the first fit)",
    )
    p.add_argument("--workers", type=int, help="threads for the diagnostics (default: all)")
    p.add_argument("--no-install", action="store_true", help="never pip-install CUDA JAX")
    p.add_argument("--cuda", default="cuda12", help="extra of the jax package to install")
    p.add_argument("--wheels", metavar="DIR", help="install CUDA JAX from this wheel folder")
    p.add_argument("--json", metavar="PATH", help="also write the JSON report here")
    return p


def main(argv: list[str] | None = None) -> int:
    t0 = time.perf_counter()
    args = build_parser().parse_args(argv)
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    report: dict[str, Any] = {"_t0": t0, "settings": vars(args)}
    report["setup"] = ensure_cuda_jax(args)
    rc = 0
    try:
        measure(args, report)
    except Exception as err:  # the report says what failed
        import traceback

        report["error"] = f"{type(err).__name__}: {err}"
        report["traceback"] = traceback.format_exc().splitlines()[-15:]
        rc = 1
    print(_finish(report, args))
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
