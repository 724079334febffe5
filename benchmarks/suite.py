"""Benchmark suite: groupcov against the per-group-loop PyMC workaround, four sizes.

One command runs, size by size, every variant in its own fresh Python process with a
wall-clock timeout (and a memory limit), and prints Markdown tables plus targets:

* sizes: ``two-group`` (G=2, 1,000 rows/group, p=2), ``medium`` (G=20, 5,000, p=4),
  ``large`` (G=200, 1,000, p=5), ``huge`` (G=10,000, 1,000, p=5: 10 million rows,
  written to Parquet and reduced by groupcov's data layer: DuckDB when
  ``groupcov.reduce`` accepts file paths, else NumPy);
* variants: the per-group loop with PyMC's, nutpie's and NumPyro's NUTS
  (``loop-pymc``, ``loop-nutpie``, ``loop-numpyro``) and groupcov with each sampler
  (``groupcov-numpyro``: the default sampler; ``groupcov-nutpie``; ``groupcov-pymc``);
* per variant: end-to-end wall time (spawn of the process to the fitted result:
  start-up, imports, reduction, build, compilation, sampling, result), build time,
  compile time, min bulk ESS and ESS/s, max R-hat, divergences, peak RSS;
* ``groupcov-numpyro`` runs twice at the cold/warm sizes: first with an empty JAX
  persistent cache (``GROUPCOV_CACHE_DIR`` set to a fresh directory), then again in
  a fresh process with the same cache; the warm process also refits in-process on
  new data (``m.set_data(new); m.fit()``), which reuses the compiled sampler;
* a loop variant that exceeds ``--timeout`` is killed and reported as "> N s"; the
  suite then estimates its full run from two short runs of the same variant
  (``--estimate-iters``), reported as an estimate;
* build time of the model at G = 100, 1,000 and 10,000 (p=5), each in a fresh process.

Run from the repository root::

    .venv/bin/python benchmarks/suite.py                         # everything (hours)
    .venv/bin/python benchmarks/suite.py --sizes two-group --json out.json
    .venv/bin/python benchmarks/suite.py --sizes medium --only groupcov
    .venv/bin/python benchmarks/suite.py --sizes huge --variants groupcov-numpyro \\
        --huge-draws 1000 --huge-var-names mu,sigma,corr

Compile time is the first fit minus a second fit of the same model in the same
process; for the NumPyro back-end the second fit compiles nothing, so the difference
is translation, tracing and XLA compilation (JAX's own measurement of the XLA part is
in the JSON). For nutpie and PyMC the second fit repeats part of the compilation, so
the difference understates it.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import os
import shutil
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import (
    SPAWN_TIME_ENV,
    CompileEvents,
    PhaseTimer,
    RssMonitor,
    Variant,
    VariantResult,
    after_import,
    contention_notes,
    library_versions,
    load_dataset,
    loop_model,
    machine_description,
    posterior_diagnostics,
    run_worker,
    save_dataset,
    silence_warnings,
    temp_dir,
    worker_env,
    write_worker_result,
)
from _sizes import SIZES, Size, write_huge_parquet

VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant("loop-pymc", "loop", "pymc", "loop (pymc)"),
        Variant("loop-nutpie", "loop", "nutpie", "loop (nutpie)"),
        Variant("loop-numpyro", "loop", "numpyro", "loop (numpyro)"),
        Variant("groupcov-numpyro", "groupcov", None, "groupcov (numpyro, default)"),
        Variant("groupcov-nutpie", "groupcov", "nutpie", "groupcov (nutpie)"),
        Variant("groupcov-pymc", "groupcov", "pymc", "groupcov (pymc)"),
    )
}
_BACKEND_MODULES = {"pymc": (), "nutpie": ("nutpie",), "numpyro": ("jax", "numpyro")}
_HUGE_NOTE = "not run: the loop builds 10,000 LKJCholeskyCov + MvNormal nodes"
BUILD_SCALING_GROUPS = (100, 1_000, 10_000)


# =========================================================================== worker


def _import_backend(sampler: str | None) -> None:
    import importlib

    for mod in _BACKEND_MODULES.get(sampler or "numpyro", ()):
        importlib.import_module(mod)


def _peak_rss(multiprocess: bool) -> dict[str, float]:
    """Peak RSS so far: this process, and its largest reaped child (PyMC's chain
    processes; compilers). ``peak`` counts the child only for multi-process samplers
    (a compiler run is over before sampling starts)."""
    import resource

    unit = 1024.0 if sys.platform != "darwin" else 1024.0 * 1024.0
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / unit
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / unit
    return {"self": own, "largest_child": child, "peak": own + child if multiprocess else own}


def _spawn_elapsed() -> float | None:
    spawn = os.environ.get(SPAWN_TIME_ENV)
    return None if spawn is None else time.time() - float(spawn)


def _fit_kwargs(
    args: argparse.Namespace, fit_params: set[str], sampler: str | None = None
) -> dict[str, Any]:
    kw: dict[str, Any] = {
        "draws": args.draws,
        "tune": args.tune,
        "chains": args.chains,
        "random_seed": args.seed,
        "progressbar": False,
    }
    if args.var_names:
        if "var_names" not in fit_params:
            raise SystemExit("this groupcov's fit() has no var_names=")
        kw["var_names"] = args.var_names.split(",")
    if args.thin > 1:
        if "thin" not in fit_params:
            raise SystemExit("this groupcov's fit() has no thin=")
        kw["thin"] = args.thin
    if args.max_tree_depth:
        # each back-end's own name for it (passed through fit's **kwargs)
        key = {"nutpie": "maxdepth", "pymc": "max_treedepth"}.get(sampler, "max_tree_depth")
        kw[key] = args.max_tree_depth
    return kw


_WRAPPED: dict[str, tuple[tuple[str, str], ...]] = {
    # module -> (attribute, phase): functions that fit() looks up at call time
    "groupcov.api": (("build_model", "fit: build PyMC model"),),
    "groupcov.inference": (
        ("_idata", "fit: InferenceData"),
        ("_to_inference_data", "fit: InferenceData"),
    ),
    "groupcov.inference.jax_backend": (
        ("load_program", "fit: load saved program"),
        ("model_program", "fit: translate + trace"),
        ("_compile", "fit: translate + trace"),
        ("run_program", "fit: XLA compile + sample"),
    ),
}


_TIMED_IMPORTS = (
    "pymc", "pytensor", "jax", "numpyro", "arviz", "xarray", "pandas", "scipy", "duckdb",
    "pyarrow", "nutpie", "numba", "groupcov",
)  # fmt: skip


def _instrument(mon: RssMonitor) -> None:
    """Attribute time and memory inside ``fit`` to its steps (model build, translation,
    XLA compilation + sampling, InferenceData, result) by wrapping the functions ``fit``
    calls as their modules are imported (:func:`after_import`: nothing is imported
    early, so the worker imports exactly what a user's process imports); steps a
    groupcov version does not have are skipped."""

    def wrapped(original: Any, phase: str) -> Any:
        def call(*a: Any, **k: Any) -> Any:
            mon.push(phase)
            try:
                return original(*a, **k)
            finally:
                mon.pop()

        return call

    def patch(module: Any) -> None:
        for attr, phase in _WRAPPED.get(module.__name__, ()):
            original = getattr(module, attr, None)
            if original is not None:
                setattr(module, attr, wrapped(original, phase))
        if module.__name__ == "groupcov.inference":
            samplers = getattr(module, "SAMPLERS", {})
            for name, fn in list(samplers.items()):
                samplers[name] = wrapped(fn, f"fit: sample ({name})")
        if module.__name__ == "groupcov.result" and hasattr(module, "GroupCovResult"):
            cls = module.GroupCovResult
            cls.from_posterior = staticmethod(
                wrapped(cls.from_posterior, "fit: result (log-likelihood)")
            )

    after_import([*_WRAPPED, "groupcov.result"], patch)
    # heavy imports become phases of their own ("import pymc", ...), wherever they happen
    after_import(_TIMED_IMPORTS, lambda _: mon.pop(), before=lambda n: mon.push(f"import {n}"))


def _array_mb(ds: Any) -> float:
    if ds is None:
        return 0.0
    return float(sum(v.values.nbytes for v in ds.data_vars.values())) / 1e6


def _coverage(idata: Any, truth_path: str | None, max_groups: int = 500) -> dict[str, float] | None:
    """Share of true group means and sds inside the central 94% posterior interval
    (over the first ``max_groups`` groups)."""
    if not truth_path:
        return None
    import numpy as np

    with np.load(truth_path) as t:
        mean, cov = t["mean"], t["cov"]
    post = idata.posterior
    out = {}
    keep = slice(0, max_groups)  # bounded memory: quantiles of the first groups only
    truths = {"mu": mean[keep], "sigma": np.sqrt(np.diagonal(cov, axis1=-2, axis2=-1))[keep]}
    for name, truth in truths.items():
        if name not in post:
            continue
        values = post[name].values[:, :, keep]
        draws = values.reshape(-1, *values.shape[2:])
        lo, hi = np.quantile(draws, [0.03, 0.97], axis=0)
        out[name] = float(np.mean((truth >= lo) & (truth <= hi)))
    return out


def _worker_groupcov(variant: Variant, args: argparse.Namespace, payload: dict) -> None:
    timer = PhaseTimer()
    payload["phases"] = timer.times
    mon = RssMonitor().start()
    _instrument(mon)
    mon.mark("import")
    events = None
    with timer.phase("import"):
        # only what a user's script imports; groupcov loads PyMC / JAX when it needs them
        import groupcov

    if variant.sampler in (None, "numpyro", "nutpie"):
        events = CompileEvents()  # listens from the moment JAX is imported
        events.install_on_import()
    mon.mark("load")
    with timer.phase("load"):
        source, features, engine = _groupcov_input(args)
    mon.mark("reduce")
    with timer.phase("reduce"):
        stats = groupcov.reduce(source, "group", features)
    del source
    mon.mark("build")
    with timer.phase("build"):
        m = groupcov.GroupCovModel(stats, group="group")
    kw = _fit_kwargs(args, set(inspect.signature(m.fit).parameters), variant.sampler)
    if variant.sampler is not None:
        kw["sampler"] = variant.sampler
    mon.mark("fit")
    with timer.phase("fit"):
        res = m.fit(**kw)
    payload["e2e_s"] = _spawn_elapsed()
    rss = _peak_rss(multiprocess=variant.sampler == "pymc")
    payload["fit_peak_rss_mb"], payload["fit_rss_mb"] = rss["peak"], rss
    mon.mark("after fit")
    payload["engine"] = engine
    payload["fit_kwargs"] = {k: v for k, v in kw.items() if k != "progressbar"}
    payload["first_fit_sampling_time_s"] = res.idata.posterior.attrs.get("sampling_time")
    if events is not None:
        payload["jax_first_fit"] = events.snapshot()
    idata = res.idata
    payload["stored_mb"] = {
        "posterior": _array_mb(idata.posterior),
        "log_likelihood": _array_mb(getattr(idata, "log_likelihood", None)),
        "sample_stats": _array_mb(getattr(idata, "sample_stats", None)),
        "per_variable": {k: v.values.nbytes / 1e6 for k, v in idata.posterior.data_vars.items()},
    }
    with timer.phase("diagnostics"):
        payload["diagnostics"] = posterior_diagnostics(idata)
        payload["coverage"] = _coverage(idata, args.truth)
        payload["sampler_used"] = idata.posterior.attrs.get("sampler")
        payload["algorithm"] = idata.posterior.attrs.get("algorithm")
        payload["n_steps_mean"] = float(idata.sample_stats["n_steps"].values.mean())
    del res, idata
    if args.refit_data:
        _refit(m, args, kw, timer, payload, events)
    mon.stop()
    payload["rss_peaks_mb"] = mon.peaks
    payload["rss_checkpoints_mb"] = mon.checkpoints
    payload["phase_times_s"] = mon.times
    payload["model_build_s"] = mon.times.get("fit: build PyMC model", 0.0)


def _refit(
    m: Any,
    args: argparse.Namespace,
    kw: dict,
    timer: PhaseTimer,
    payload: dict,
    events: CompileEvents | None,
) -> None:
    """Refit on new data of the same shape in the same process (set_data + fit)."""
    import groupcov

    before = events.snapshot() if events is not None else None
    data2 = load_dataset(args.refit_data)
    stats2 = groupcov.reduce(data2.to_frame("group"), "group", data2.features)
    with timer.phase("refit"):
        start = time.perf_counter()
        m.set_data(stats2)
        res2 = m.fit(**{**kw, "random_seed": args.seed + 1})
        payload["refit_s"] = time.perf_counter() - start
    payload["refit_sampling_time_s"] = res2.idata.posterior.attrs.get("sampling_time")
    payload["refit_diagnostics"] = posterior_diagnostics(res2.idata)
    if events is not None and before is not None:
        after = events.snapshot()
        payload["jax_refit"] = {
            "backend_compile_s": after["backend_compile_s"] - before["backend_compile_s"],
            "cache_hits": after["cache_hits"] - before["cache_hits"],
            "cache_misses": after["cache_misses"] - before["cache_misses"],
        }


def _groupcov_input(args: argparse.Namespace) -> tuple[Any, list[str], str]:
    """What groupcov reduces: a Parquet path (DuckDB) when the data layer takes paths,
    else a NumPy array (huge) or a pandas DataFrame (other sizes)."""
    if args.data.endswith(".parquet"):
        import pyarrow.parquet as pq

        features = [c for c in pq.read_schema(args.data).names if c != "group"]
        if _reduce_takes_paths():
            return args.data, features, "duckdb (Parquet path)"
        table = pq.read_table(args.data)
        import numpy as np

        x = np.column_stack([table.column(f).to_numpy() for f in features])
        return x, features, "numpy (Parquet loaded into memory)"
    data = load_dataset(args.data)
    return data.to_frame("group"), data.features, "numpy (pandas DataFrame)"


def _reduce_takes_paths() -> bool:
    try:
        from groupcov.data import input_kind
    except ImportError:
        return False
    return input_kind("data.parquet") == "path"


def _worker_loop(variant: Variant, args: argparse.Namespace, payload: dict) -> None:
    timer = PhaseTimer()
    payload["phases"] = timer.times
    events = None
    with timer.phase("import"):
        import arviz  # noqa: F401
        import pymc as pm

        _import_backend(variant.sampler)
        if variant.sampler == "numpyro":
            events = CompileEvents().install()
    with timer.phase("build"):
        data = load_dataset(args.data)
        model = loop_model(data)
    kwargs: dict[str, Any] = {
        "draws": args.draws,
        "tune": args.tune,
        "chains": args.chains,
        "random_seed": args.seed,
        "progressbar": False,
    }
    if variant.sampler == "pymc" and args.pymc_cores:
        kwargs["cores"] = args.pymc_cores
    with timer.phase("fit"):
        idata = pm.sample(model=model, nuts_sampler=variant.sampler, **kwargs)
    payload["e2e_s"] = _spawn_elapsed()
    rss = _peak_rss(multiprocess=variant.sampler == "pymc")
    payload["fit_peak_rss_mb"], payload["fit_rss_mb"] = rss["peak"], rss
    if events is not None:
        payload["jax_first_fit"] = events.snapshot()
    with timer.phase("diagnostics"):
        payload["diagnostics"] = posterior_diagnostics(idata)
        payload["sampler_used"] = idata.posterior.attrs.get("inference_library")
        for key in ("n_steps", "tree_size"):
            if key in idata.sample_stats:
                payload["n_steps_mean"] = float(idata.sample_stats[key].values.mean())
                break


def _worker_build_scaling(args: argparse.Namespace, payload: dict) -> None:
    """Time the model's construction at G = args.build_groups (p=5, 1,000 rows/group),
    twice: ``GroupCovModel(stats)`` and the PyMC graph (``build_model``)."""

    import groupcov
    from groupcov.model.build import build_model

    stats = _synthetic_stats(args.build_groups, 5)
    constructor, graph, lazy = [], [], False
    for _ in range(2):
        start = time.perf_counter()
        m = groupcov.GroupCovModel(stats, group="group")
        constructor.append(time.perf_counter() - start)
        lazy = getattr(m, "_model", False) is None  # the PyMC graph is built on first use
        start = time.perf_counter()
        build_model(stats)
        graph.append(time.perf_counter() - start)
    payload["constructor_s"] = constructor
    payload["graph_s"] = graph
    payload["lazy_constructor"] = lazy
    # what a first fit pays to construct the model: the constructor, plus the graph
    # when the constructor does not build it
    payload["build_s"] = [c + (g if lazy else 0.0) for c, g in zip(constructor, graph, strict=True)]


def _worker_gradient_cost(args: argparse.Namespace, payload: dict) -> None:
    """Milliseconds per log-density + gradient of groupcov's default model at G =
    args.build_groups (p=5), jitted, on one CPU device: its JAX density (what ``fit``
    samples) for one chain and 4 chains (vmap), and the PyMC model translated to JAX
    (what an extended model samples) for one chain."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    import groupcov
    from groupcov.inference.jax_backend import _jax_function
    from groupcov.model.density import log_density_and_outputs, parameter_shapes

    jax.config.update("jax_enable_x64", True)
    stats = _synthetic_stats(args.build_groups, 5)
    gm = groupcov.GroupCovModel(stats)
    spec = gm._density_spec()
    data = {k: jnp.asarray(v) for k, v in gm._values.items()}
    start = {k: jnp.zeros(shape) for k, shape in parameter_shapes(spec).items()}

    def logp(params: dict) -> Any:
        return log_density_and_outputs(params, data, spec)[0]

    model = gm.model
    value_vars, data_vars, fn, _ = _jax_function(model, var_names=[])
    point = model.initial_point()
    translated = [jnp.asarray(point[v.name]) for v in value_vars]
    containers = [jnp.asarray(v.get_value()) for v in data_vars]

    def logp_translated(vals: list) -> Any:
        return fn(*vals, *containers)[0]

    stacked = jax.tree.map(lambda v: jnp.stack([v] * 4), start)
    cases = (
        ("one_chain_ms", jax.jit(jax.value_and_grad(logp)), start),
        ("four_chains_ms", jax.jit(jax.vmap(jax.value_and_grad(logp))), stacked),
        ("pymc_one_chain_ms", jax.jit(jax.value_and_grad(logp_translated)), translated),
    )
    out: dict[str, float] = {"parameters": float(sum(np.size(v) for v in start.values()))}
    for name, f, x in cases:
        jax.block_until_ready(f(x))  # compile
        reps, begin = 0, time.perf_counter()
        while reps < 5 or time.perf_counter() - begin < 2.0:
            jax.block_until_ready(f(x))
            reps += 1
        out[name] = 1e3 * (time.perf_counter() - begin) / reps
    payload.update(out)


def _synthetic_stats(g: int, p: int) -> Any:
    import numpy as np

    from groupcov.stats import SufficientStats

    rng = np.random.default_rng(0)
    a = rng.standard_normal((g, p, p)) * 0.3 + np.eye(p)
    return SufficientStats(
        tuple(f"g{i}" for i in range(g)), tuple(f"x{j}" for j in range(p)),
        np.full(g, 1000), rng.standard_normal((g, p)), 999.0 * a @ np.swapaxes(a, -1, -2),
    )  # fmt: skip


def run_worker_process(args: argparse.Namespace) -> int:
    """Entry point of ``--worker``: run one variant and write its JSON result."""
    payload: dict[str, Any] = {"variant": args.worker, "worker_entry_time": time.time()}
    try:
        silence_warnings()
        if args.worker == "build-scaling":
            _worker_build_scaling(args, payload)
        elif args.worker == "gradient-cost":
            _worker_gradient_cost(args, payload)
        else:
            variant = VARIANTS[args.worker]
            if variant.model == "loop":
                _worker_loop(variant, args, payload)
            else:
                _worker_groupcov(variant, args, payload)
        rc = 0
    except BaseException:
        payload["error"] = traceback.format_exc()
        print(payload["error"], file=sys.stderr)
        rc = 1
    write_worker_result(args.result_file, payload)
    return rc


# =========================================================================== parent


@dataclass
class Run:
    """One timed process of a variant at a size, with what the parent adds."""

    size: str
    variant: str
    label: str
    model: str
    cache: str  # "cold", "warm" or "as found"
    result: VariantResult
    estimate: dict[str, Any] | None = None

    @property
    def worker(self) -> dict[str, Any]:
        return self.result.worker

    @property
    def ok(self) -> bool:
        return self.result.ok

    @property
    def e2e(self) -> float:
        if not self.ok:
            return math.inf
        return float(self.worker.get("e2e_s") or self.result.wall_s)

    def to_dict(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "variant": self.variant,
            "label": self.label,
            "model": self.model,
            "cache": self.cache,
            "e2e_s": self.e2e if self.ok else None,
            "estimate": self.estimate,
            "result": self.result.to_dict(),
        }


class Suite:
    """Runs the selected sizes and variants and collects :class:`Run` records."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.work = temp_dir("groupcov-suite-")
        self.log_dir = Path(args.log_dir) if args.log_dir else self.work / "logs"
        self.runs: list[Run] = []
        self.code_at_start = _code_version()
        self.skipped_huge: list[str] = []
        self.build_scaling: dict[int, Any] = {}
        self.gradient_cost: dict[int, Any] = {}
        self.data_info: dict[str, Any] = {}

    # ------------------------------------------------------------------ helpers

    def say(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    def env(self, name: str, jax_cache: Path | None) -> dict[str, str]:
        env = worker_env(
            self.work, name, cold_cache=False, xla_devices=self.args.xla_devices,
            blas_threads=self.args.blas_threads,
        )  # fmt: skip
        if jax_cache is not None:
            env["GROUPCOV_CACHE_DIR"] = str(jax_cache)
        return env

    def settings_for(self, size: Size) -> dict[str, Any]:
        a = self.args
        if size.name == "huge":
            return {
                "draws": a.huge_draws, "tune": a.huge_tune, "chains": a.chains,
                "thin": a.huge_thin, "var_names": a.huge_var_names,
                "max_tree_depth": a.huge_max_tree_depth,
            }  # fmt: skip
        return {"draws": a.draws, "tune": a.tune, "chains": a.chains, "thin": 1, "var_names": ""}

    def worker_cmd(
        self, name: str, data: Path, result: Path, settings: dict, extra: list[str] | None = None
    ) -> list[str]:
        cmd = [
            sys.executable, str(Path(__file__).resolve()),
            "--worker", name,
            "--data", str(data),
            "--result-file", str(result),
            "--draws", str(settings["draws"]),
            "--tune", str(settings["tune"]),
            "--chains", str(settings["chains"]),
            "--seed", str(self.args.seed),
            "--pymc-cores", str(self.args.pymc_cores),
            "--thin", str(settings.get("thin", 1)),
        ]  # fmt: skip
        if settings.get("var_names"):
            cmd += ["--var-names", settings["var_names"]]
        if settings.get("max_tree_depth"):
            cmd += ["--max-tree-depth", str(settings["max_tree_depth"])]
        return cmd + (extra or [])

    def launch(
        self,
        tag: str,
        cmd: list[str],
        *,
        label: str,
        model: str,
        timeout: float,
        env: dict[str, str],
        result: Path,
    ) -> VariantResult:
        r = run_worker(
            cmd, variant=tag, label=label, group=model, timeout_s=timeout,
            result_path=result, log_dir=self.log_dir, env=env,
            rss_limit_mb=self.args.rss_limit_mb,
        )  # fmt: skip
        self.say(f"      {_status_line(r)}")
        return r

    # ------------------------------------------------------------------ data

    def make_data(self, size: Size) -> tuple[Path, Path | None, Path | None]:
        """Data file, refit data file (same shape, new draw) and truth file."""
        import numpy as np

        from groupcov.datasets import simulate_groups, two_groups

        folder = self.work / size.name
        folder.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        truth = folder / "truth.npz"
        if size.name == "huge":
            path = folder / "data.parquet"
            info = write_huge_parquet(path, size, seed=self.args.data_seed)
            np.savez(truth, mean=info["mean"], cov=info["cov"])
            self.data_info[size.name] = {
                "description": f"{size.describe()}, Parquet written by _sizes.write_huge_parquet",
                "file_mb": path.stat().st_size / 1e6,
                "generate_s": time.perf_counter() - start,
            }
            return path, None, truth
        if size.name == "two-group":
            sim, sim2 = two_groups(), two_groups(seed=self.args.data_seed + 1)
            desc = "groupcov.datasets.two_groups()"
        else:
            sim = simulate_groups(size.groups, size.rows, size.features, seed=self.args.data_seed)
            sim2 = simulate_groups(
                size.groups, size.rows, size.features, seed=self.args.data_seed + 1
            )
            desc = f"simulate_groups({size.groups}, {size.rows}, {size.features})"
        path, path2 = folder / "data.npz", folder / "refit.npz"
        data = save_dataset(path, sim.data, "group", sim.features)
        save_dataset(path2, sim2.data, "group", sim2.features)
        groups = data.groups
        np.savez(
            truth,
            mean=np.stack([sim.mean[g] for g in groups]),
            cov=np.stack([sim.cov[g] for g in groups]),
        )
        self.data_info[size.name] = {
            "description": f"{size.describe()}, {desc}",
            "fingerprint": data.fingerprint(),
        }
        return path, path2, truth

    # ------------------------------------------------------------------ runs

    def selected(self, size: Size) -> list[Variant]:
        chosen = list(VARIANTS.values())
        if self.args.only:
            chosen = [v for v in chosen if v.model == self.args.only]
        if self.args.variants:
            names = [s.strip() for s in self.args.variants.split(",") if s.strip()]
            unknown = [n for n in names if n not in VARIANTS]
            if unknown:
                raise SystemExit(f"unknown variant(s) {unknown}; choose from {list(VARIANTS)}")
            chosen = [v for v in chosen if v.name in names]
        if size.name == "huge" and self.args.huge_variants:
            keep = set(_csv(self.args.huge_variants))
            skipped = [v.name for v in chosen if v.model == "groupcov" and v.name not in keep]
            if skipped:
                self.say(f"   not run at huge (--huge-variants): {', '.join(skipped)}")
                self.skipped_huge = skipped
            chosen = [v for v in chosen if v.model == "loop" or v.name in keep]
        return chosen

    def run_size(self, size: Size) -> None:
        self.say(f"== {size.describe()}")
        data, refit, truth = self.make_data(size)
        self.say(f"   data ready: {self.data_info[size.name]['description']}")
        settings = self.settings_for(size)
        for v in self.selected(size):
            if v.model == "loop":
                if size.name == "huge" and not self.args.huge_loops:
                    self.say(f"   {v.label}: {_HUGE_NOTE}")
                    continue
                self.run_loop(size, v, data, settings)
            else:
                self.run_groupcov(size, v, data, refit, truth, settings)

    def run_loop(self, size: Size, v: Variant, data: Path, settings: dict) -> None:
        tag = f"{size.name}-{v.name}"
        self.say(f"   [{v.label}] timeout {self.args.timeout:g} s ...")
        result = self.work / f"{tag}.json"
        r = self.launch(
            tag, self.worker_cmd(v.name, data, result, settings), label=v.label,
            model="loop", timeout=self.args.timeout, env=self.env(tag, None), result=result,
        )  # fmt: skip
        run = Run(size.name, v.name, v.label, "loop", "as found", r)
        if r.status == "timeout" and self.args.estimate_iters:
            run.estimate = self.estimate_loop(size, v, data, settings)
        self.runs.append(run)

    def estimate_loop(self, size: Size, v: Variant, data: Path, settings: dict) -> dict:
        """Extrapolate a timed-out loop run from two short runs (k1 and k2 iterations of
        tune and of draws each): fit(k) = c + r * k, full = overhead + c + r * (tune+draws)."""
        k1, k2 = self.args.estimate_iters
        fits: dict[int, VariantResult] = {}
        for k in (k1, k2):
            tag = f"{size.name}-{v.name}-probe{k}"
            short = {**settings, "draws": k, "tune": k}
            result = self.work / f"{tag}.json"
            self.say(f"   [{v.label}] estimate: short run with {k} tune + {k} draws ...")
            fits[k] = self.launch(
                tag, self.worker_cmd(v.name, data, result, short), label=v.label,
                model="loop", timeout=self.args.timeout, env=self.env(tag, None), result=result,
            )  # fmt: skip
            if not fits[k].ok:
                return {"status": fits[k].status, "iters": (k1, k2)}
        f1 = fits[k1].worker["phases"]["fit"]
        f2 = fits[k2].worker["phases"]["fit"]
        rate = (f2 - f1) / (2 * (k2 - k1))
        overhead = fits[k2].worker["e2e_s"] - f2
        total_iters = settings["tune"] + settings["draws"]
        est = overhead + f1 + rate * (total_iters - 2 * k1)
        return {
            "status": "ok",
            "iters": (k1, k2),
            "fit_s": (f1, f2),
            "s_per_iteration": rate,
            "overhead_s": overhead,
            "estimated_e2e_s": est,
        }

    def run_groupcov(
        self,
        size: Size,
        v: Variant,
        data: Path,
        refit: Path | None,
        truth: Path | None,
        settings: dict,
    ) -> None:
        cold_warm = v.sampler is None and size.name in self.args.cold_warm_sizes
        cache = self.work / "jax-cache" / f"{size.name}-{v.name}"
        shutil.rmtree(cache, ignore_errors=True)
        passes = ["cold", "warm"] if cold_warm else ["cold" if v.sampler is None else "as found"]
        for i, which in enumerate(passes):
            tag = f"{size.name}-{v.name}-{which.replace(' ', '-')}"
            extra = ["--truth", str(truth)] if truth else []
            if refit is not None and i == len(passes) - 1 and not self.args.no_refit:
                extra += ["--refit-data", str(refit)]
            result = self.work / f"{tag}.json"
            timeout = self.args.huge_timeout if size.name == "huge" else self.args.timeout
            self.say(f"   [{v.label}, {which} cache] timeout {timeout:g} s ...")
            r = self.launch(
                tag, self.worker_cmd(v.name, data, result, settings, extra), label=v.label,
                model="groupcov", timeout=timeout,
                env=self.env(tag, cache if v.sampler is None else None), result=result,
            )  # fmt: skip
            self.runs.append(Run(size.name, v.name, v.label, "groupcov", which, r))

    def run_build_scaling(self) -> None:
        self.say("== model build time and gradient cost vs G (p=5), each in a fresh process")
        for g in BUILD_SCALING_GROUPS:
            for mode in ("build-scaling", "gradient-cost"):
                tag = f"{mode}-{g}"
                result = self.work / f"{tag}.json"
                cmd = [
                    sys.executable, str(Path(__file__).resolve()), "--worker", mode,
                    "--build-groups", str(g), "--result-file", str(result),
                ]  # fmt: skip
                r = self.launch(
                    tag, cmd, label=f"{mode} G={g}", model="build", timeout=self.args.timeout,
                    env=self.env(tag, None), result=result,
                )  # fmt: skip
                if mode == "build-scaling":
                    self.build_scaling[g] = r.worker if r.ok else {"status": r.status}
                else:
                    self.gradient_cost[g] = r.worker if r.ok else {"status": r.status}

    # ------------------------------------------------------------------ all

    def run(self) -> dict[str, Any]:
        start = time.perf_counter()
        try:
            for name in self.args.sizes:
                size = SIZES[name]
                if name == "huge":
                    size = Size("huge", self.args.huge_groups, self.args.huge_rows, size.features)
                self.run_size(size)
            if self.args.build_scaling:
                self.run_build_scaling()
        finally:
            if not self.args.keep_work:
                shutil.rmtree(self.work, ignore_errors=True)
        return report(self, time.perf_counter() - start)


# =========================================================================== report


def _status_line(r: VariantResult) -> str:
    if r.ok:
        w = r.worker
        ph = w.get("phases", {})
        parts = ", ".join(f"{k} {v:.1f}" for k, v in ph.items())
        e2e = w.get("e2e_s")
        foreign = f"; other processes {r.foreign_cpu_s:.0f} CPU-s" if r.foreign_cpu_s else ""
        head = f"ok  e2e {e2e:.1f} s" if e2e is not None else f"ok  wall {r.wall_s:.1f} s"
        return f"{head} ({parts}){foreign}"
    if r.status == "timeout":
        return f"TIMEOUT after {r.timeout_s:g} s"
    if r.status == "memory":
        return f"KILLED: {r.error}"
    first = (r.error or "").strip().splitlines()
    return "ERROR  " + (first[-1] if first else "")


def _fmt(x: Any, nd: int = 1) -> str:
    if x is None or (isinstance(x, float) and (math.isnan(x) or math.isinf(x))):
        return "—"
    return f"{x:,.{nd}f}"


def _build_s(w: dict) -> float | None:
    """GroupCovModel(...) plus the PyMC graph if fit built it (lazy construction), without
    the library imports that happen inside them (those are in :func:`_imports_s`)."""
    times = w.get("phase_times_s")
    if times is None:  # loop workers: the build phase as timed
        return w.get("phases", {}).get("build")
    return times.get("build", 0.0) + times.get("fit: build PyMC model", 0.0)


def _imports_s(w: dict) -> float | None:
    """Time spent importing groupcov and the heavy libraries, wherever it happened."""
    times = w.get("phase_times_s")
    if times is None:
        return w.get("phases", {}).get("import")
    return sum(v for k, v in times.items() if k == "import" or k.startswith("import "))


def _compile_s(r: Run, runs: list[Run]) -> float | None:
    """groupcov's NumPyro back-end: first fit - in-process refit of the same program
    (the refit compiles nothing; a cold process, which does not refit, is compared with
    the refit of the warm process of the same size). nutpie and the loops on JAX:
    JAX's own XLA compile time. Otherwise None (PyMC's Numba/C compilation is not
    separable from its sampling here)."""
    w = r.worker
    fit = w.get("phases", {}).get("fit")
    if r.variant == "groupcov-numpyro" and fit is not None:
        refits = [x.worker.get("refit_s") for x in runs if x.variant == r.variant and x.ok]
        refits = [t for t in refits if t is not None]
        return fit - refits[0] if refits else None
    events = w.get("jax_first_fit")
    return events.get("backend_compile_s") if events else None


def _sampling_s(r: Run, runs: list[Run]) -> float | None:
    """The in-process refit's time (sampling only) for groupcov's NumPyro back-end."""
    if r.variant == "groupcov-numpyro":
        refits = [x.worker.get("refit_s") for x in runs if x.variant == r.variant and x.ok]
        refits = [t for t in refits if t is not None]
        return refits[0] if refits else None
    return None


def _best_loop(runs: list[Run]) -> tuple[float | None, bool, str, float | None]:
    """(seconds, is_lower_bound, label, estimated seconds) of the fastest loop variant."""
    ok = [r for r in runs if r.model == "loop" and r.ok]
    loops = [r for r in runs if r.model == "loop"]
    estimates = [
        r.estimate["estimated_e2e_s"]
        for r in loops
        if r.estimate and r.estimate.get("status") == "ok"
    ]
    if ok:
        best = min(ok, key=lambda r: r.e2e)
        est = min([best.e2e, *estimates])
        return best.e2e, False, best.label, est
    if loops and all(r.result.status == "timeout" for r in loops):
        bound = min(r.result.timeout_s for r in loops)
        return bound, True, "every loop variant", min(estimates) if estimates else None
    return None, False, "", min(estimates) if estimates else None


def _ratio(best: tuple, seconds: float) -> str:
    value, lower, _, _ = best
    if value is None or not math.isfinite(seconds):
        return "—"
    return f"{'> ' if lower else ''}{value / seconds:,.1f}x"


def _est_ratio(best: tuple, seconds: float) -> str:
    est = best[3]
    if est is None or not math.isfinite(seconds) or not best[1]:
        return "—"
    return f"≈ {est / seconds:,.0f}x (est.)"


def size_table(runs: list[Run]) -> str:
    best = _best_loop(runs)
    header = [
        "variant",
        "cache",
        "e2e wall s",
        "imports s",
        "build s",
        "compile s",
        "sampling s",
        "min bulk ESS",
        "ESS/s",
        "max R-hat",
        "div.",
        "steps/draw",
        "peak RSS MB",
        "vs best loop",
        "vs best loop (est.)",
    ]
    rows = ["| " + " | ".join(header) + " |", "| :-- | :-- |" + " --: |" * (len(header) - 2)]
    for r in runs:
        w = r.worker
        res = r.result
        if r.ok:
            d = w.get("diagnostics", {})
            ess = d.get("min_ess_bulk")
            sampling = _sampling_s(r, runs)
            cells = [
                _fmt(r.e2e),
                _fmt(_imports_s(w)),
                _fmt(_build_s(w), 2),
                _fmt(_compile_s(r, runs)),
                _fmt(sampling),
                _fmt(ess, 0),
                _fmt(ess / r.e2e if ess else None),
                _fmt(d.get("max_rhat"), 3),
                str(d.get("divergences")),
                _fmt(w.get("n_steps_mean"), 0),
                _fmt(w.get("fit_peak_rss_mb"), 0),
                _ratio(best, r.e2e) if r.model == "groupcov" else "",
                _est_ratio(best, r.e2e) if r.model == "groupcov" else "",
            ]
        else:
            if res.status == "timeout":
                first = f"> {res.timeout_s:g}"
            elif res.status == "memory":
                first = f"killed (RSS > {res.group_rss_peak_mb or 0:,.0f} MB)"
            else:
                first = "error"
            est = r.estimate or {}
            est_cell = (
                f"≈ {est['estimated_e2e_s']:,.0f} s (est.)" if est.get("status") == "ok" else ""
            )
            cells = [first, "", "", "", est_cell, "", "", "", "", "", "", "", ""]
        rows.append("| " + " | ".join([r.label, r.cache, *cells]) + " |")
    return "\n".join(rows)


def cold_warm_table(runs: list[Run]) -> str:
    rows = [
        "| size | cold e2e s | warm e2e s | XLA compile s (cold / warm) | "
        "in-process refit s | refit compile s |",
        "| :-- | --: | --: | --: | --: | --: |",
    ]
    sizes = dict.fromkeys(r.size for r in runs)
    found = False
    for size in sizes:
        mine = [r for r in runs if r.size == size and r.variant == "groupcov-numpyro"]
        cold = next((r for r in mine if r.cache == "cold" and r.ok), None)
        warm = next((r for r in mine if r.cache == "warm" and r.ok), None)
        if cold is None or warm is None:
            continue
        found = True
        xla = [x.worker.get("jax_first_fit", {}).get("backend_compile_s") for x in (cold, warm)]
        refit = warm.worker.get("refit_s")
        refit_xla = warm.worker.get("jax_refit", {}).get("backend_compile_s")
        rows.append(
            f"| {size} | {_fmt(cold.e2e)} | {_fmt(warm.e2e)} | {_fmt(xla[0])} / {_fmt(xla[1])} "
            f"| {_fmt(refit, 2)} | {_fmt(refit_xla, 2)} |"
        )
    return "\n".join(rows) if found else ""


def targets(suite: Suite) -> list[str]:
    """Each issue target as met / unmet / not measured, with the numbers."""
    out = []
    runs = suite.runs

    def default_runs(size: str) -> list[Run]:
        return [r for r in runs if r.size == size and r.variant == "groupcov-numpyro" and r.ok]

    for size in ("medium", "large"):
        mine = [r for r in runs if r.size == size]
        gc = default_runs(size)
        if not mine or not gc:
            out.append(f"- {size}: >= 50x vs best loop: not measured in this run")
            continue
        best = _best_loop(mine)
        for r in gc:
            if best[0] is None:
                out.append(f"- {size} ({r.cache} cache): no loop result to compare with")
                continue
            ratio = best[0] / r.e2e
            est = best[3] / r.e2e if best[3] else None
            if not best[1]:
                verdict = "met" if ratio >= 50 else "unmet"
                text = f"{ratio:.1f}x ({best[2]} {best[0]:.0f} s vs {r.e2e:.1f} s)"
            elif ratio >= 50:
                verdict, text = "met", f"> {ratio:.1f}x (loops > {best[0]:.0f} s)"
            else:
                verdict = (
                    "met by estimate"
                    if est and est >= 50
                    else "unmet by estimate"
                    if est
                    else "undetermined"
                )
                text = f"> {ratio:.1f}x measured (loops > {best[0]:.0f} s vs {r.e2e:.1f} s)" + (
                    f", ≈ {est:.0f}x estimated" if est else ""
                )
            out.append(f"- {size} ({r.cache} cache) >= 50x vs best loop: {verdict}: {text}")
        if size == "large":
            for r in gc:
                verdict = "met" if r.e2e <= 30 else "unmet"
                out.append(
                    f"- large ({r.cache} cache) <= 30 s end to end: {verdict}: {r.e2e:.1f} s"
                )
    vals = {g: min(v["build_s"]) for g, v in suite.build_scaling.items() if "build_s" in v}
    if vals:
        text = ", ".join(f"G={g:,}: {v:.2f} s" for g, v in vals.items())
        if 10_000 in vals:
            out.append(
                f"- huge: build <= 5 s at G=10,000: "
                f"{'met' if vals[10_000] <= 5 else 'unmet'}: {text}"
            )
        if 100 in vals and 10_000 in vals:
            # "independent of G": no per-group Python loop in graph construction. Array
            # work over G (data containers, coordinates, group estimates) still grows
            # linearly but costs microseconds per group; the per-group loop, which adds
            # a prior and a likelihood per group, costs tens of milliseconds per group.
            per_group_us = (vals[10_000] - vals[100]) / (10_000 - 100) * 1e6
            out.append(
                f"- huge: build time independent of G (no per-group loop: marginal cost "
                f"< 100 µs per group): {'met' if per_group_us < 100 else 'unmet'}: "
                f"{per_group_us:.1f} µs per group, build(10,000) / build(100) = "
                f"{vals[10_000] / vals[100]:.2f}"
            )
    huge = [r for r in runs if r.size == "huge" and r.variant == "groupcov-numpyro"]
    for r in huge:
        if not r.ok:
            out.append(f"- huge CPU fit: unmet: {r.result.status} ({r.result.error})")
            continue
        d = r.worker["diagnostics"]
        rss = r.worker.get("fit_peak_rss_mb")
        kw = r.worker.get("fit_kwargs", {})
        all_draws = d.get("max_rhat_all_draws")
        if all_draws is not None:
            # thinned: the kept draws are few; the sampler's moments cover every draw
            out.append(
                f"- huge CPU fit ({kw}) R-hat <= 1.01 over every draw "
                f"({d['draws_per_chain_all']:,} per chain, split R-hat from the running "
                f"moments): {'met' if all_draws <= 1.01 else 'unmet'}: max "
                f"{all_draws:.4f} ({d['max_rhat_all_draws_var']}), {d['divergences']} "
                f"divergences; rank-normalized R-hat of the kept draws: max "
                f"{d['max_rhat']:.4f} ({d['max_rhat_var']}), min bulk ESS "
                f"{d['min_ess_bulk']:,.0f}"
            )
        else:
            out.append(
                f"- huge CPU fit ({kw}) R-hat <= 1.01: "
                f"{'met' if d['max_rhat'] <= 1.01 else 'unmet'}: max R-hat "
                f"{d['max_rhat']:.4f} ({d['max_rhat_var']}), {d['divergences']} divergences"
            )
        out.append(
            f"- huge CPU fit peak RSS < 2 GB: {'met' if rss < 2048 else 'unmet'}: {rss:,.0f} MB"
        )
        build = _build_s(r.worker) or 0.0
        out.append(
            f"- huge build (GroupCovModel + PyMC graph, from the reduced data) <= 5 s: "
            f"{'met' if build <= 5 else 'unmet'}: {build:.2f} s"
        )
    return out


def memory_lines(runs: list[Run]) -> list[str]:
    """Where the memory of the huge fit goes (RSS peaks per phase, stored arrays)."""
    out = []
    for r in runs:
        if r.size != "huge" or not r.ok:
            continue
        w = r.worker
        out.append(
            f"{r.label} ({r.cache} cache): peak RSS {w['fit_peak_rss_mb']:,.0f} MB; "
            "RSS peak per phase (MB):"
        )
        for phase, mb in w.get("rss_peaks_mb", {}).items():
            out.append(f"  {phase}: {mb:,.0f}")
        st = w.get("stored_mb", {})
        out.append(
            "  stored arrays (MB): posterior {:,.0f} ({}), log_likelihood {:,.0f}, "
            "sample_stats {:,.0f}".format(
                st.get("posterior", 0),
                ", ".join(f"{k} {v:,.0f}" for k, v in st.get("per_variable", {}).items()),
                st.get("log_likelihood", 0),
                st.get("sample_stats", 0),
            )
        )
    return out


def _code_version() -> str:
    """Commit of the checkout groupcov is imported from, and whether its sources differ."""
    import importlib.util

    spec = importlib.util.find_spec("groupcov")
    if spec is None or spec.origin is None:
        return "groupcov not found"
    root = Path(spec.origin).resolve().parent.parent.parent  # src/groupcov/__init__.py
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "src"], cwd=root, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        return "commit unknown"
    return f"commit {head}" + (" + uncommitted changes in src/" if dirty else "")


def report(suite: Suite, elapsed: float) -> dict[str, Any]:
    a = suite.args
    versions = library_versions(
        ["groupcov", "pymc", "pytensor", "nutpie", "numpyro", "jax", "arviz", "duckdb"]
    )
    header = [
        f"Machine: {machine_description()}; at start: {suite.code_at_start}; "
        f"at end: {_code_version()}; {time.strftime('%Y-%m-%d %H:%M %Z')}",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()),
        f"Sampling: {a.chains} chains x ({a.tune} tune + {a.draws} draws), seed {a.seed} "
        f"(huge: {a.huge_tune} tune + {a.huge_draws} draws, thin {a.huge_thin}, "
        f"var_names {a.huge_var_names or 'all'}, max tree depth "
        f"{getattr(a, 'huge_max_tree_depth', 0) or 'default'}); "
        f"timeout {a.timeout:g} s per process "
        f"(huge groupcov {a.huge_timeout:g} s); RSS limit {a.rss_limit_mb:g} MB; "
        f"BLAS threads {a.blas_threads or 'default'}; JAX host devices {a.xla_devices or 'default'}"
        f"; loop pm.sample cores {a.pymc_cores or 'PyMC default'}",
        "e2e wall s = spawn of a fresh process to the fitted result (start-up, imports, "
        "reduction, build, compile, sample, result); ESS/s = min bulk ESS / e2e; "
        "compile s = first fit - in-process refit for groupcov (numpyro), XLA compile time "
        "reported by JAX for nutpie and the loop on NumPyro, not separable for PyMC's sampler; "
        "sampling s = the in-process refit (groupcov numpyro).",
    ]
    lines = list(header)
    for size in dict.fromkeys(r.size for r in suite.runs):
        mine = [r for r in suite.runs if r.size == size]
        lines += [
            "",
            f"### {suite.data_info.get(size, {}).get('description', size)}",
            "",
            size_table(mine),
        ]
        if size == "huge" and not a.huge_loops and (not a.only or a.only == "loop"):
            lines.append(f"\nLoop variants at huge: {_HUGE_NOTE} (see large).")
        if size == "huge" and getattr(suite, "skipped_huge", None):
            lines.append(f"Not run at huge (--huge-variants): {', '.join(suite.skipped_huge)}.")
    cw = cold_warm_table(suite.runs)
    if cw:
        lines += ["", "### Cold vs warm JAX cache (groupcov default sampler)", "", cw]
    if suite.build_scaling or suite.gradient_cost:
        lines += [
            "",
            "### Model build and gradient cost vs G (p=5, 1,000 rows/group; fresh process each)",
            "",
            "| G | GroupCovModel s (1st / 2nd) | PyMC graph s (1st / 2nd) | parameters "
            "| logp+grad ms, 1 chain | logp+grad ms, 4 chains (vmap) "
            "| PyMC model in JAX: logp+grad ms, 1 chain |",
            "| --: | --: | --: | --: | --: | --: | --: |",
        ]
        for g in BUILD_SCALING_GROUPS:
            b = suite.build_scaling.get(g, {})
            c = suite.gradient_cost.get(g, {})
            con, graph = b.get("constructor_s"), b.get("graph_s")
            lines.append(
                f"| {g:,} | "
                + (f"{con[0]:.2f} / {con[1]:.2f}" if con else b.get("status", "—"))
                + " | "
                + (f"{graph[0]:.2f} / {graph[1]:.2f}" if graph else "—")
                + f" | {_fmt(c.get('parameters'), 0)} | {_fmt(c.get('one_chain_ms'), 2)} "
                f"| {_fmt(c.get('four_chains_ms'), 2)} | {_fmt(c.get('pymc_one_chain_ms'), 2)} |"
            )
    mem = memory_lines(suite.runs)
    if mem:
        lines += ["", "### Memory of the huge fit", "", *mem]
    tg = targets(suite)
    if tg:
        lines += ["", "### Targets", "", *tg]
    notes = contention_notes([r.result for r in suite.runs])
    if notes:
        lines += ["", *notes]
    lines += ["", f"Suite wall time: {elapsed / 60:.1f} min"]
    text = "\n".join(lines)
    print(text)
    out = {
        "header": header,
        "settings": {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(a).items()},
        "versions": versions,
        "data": suite.data_info,
        "runs": [r.to_dict() for r in suite.runs],
        "build_scaling": suite.build_scaling,
        "gradient_cost": suite.gradient_cost,
        "targets": tg,
        "suite_wall_s": elapsed,
        "report": text,
    }
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1, default=_json_default))
    return out


def _json_default(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return str(obj)


def _csv(text: str) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--sizes",
        type=_csv,
        default=list(SIZES),
        help=f"comma-separated sizes (default: all of {','.join(SIZES)})",
    )
    p.add_argument("--only", choices=["loop", "groupcov"], help="only loop or groupcov variants")
    p.add_argument("--variants", help=f"comma-separated variants of {','.join(VARIANTS)}")
    p.add_argument(
        "--timeout",
        type=float,
        default=600.0,
        help="wall-clock limit per process in seconds (default 600)",
    )
    p.add_argument(
        "--huge-timeout",
        type=float,
        default=2400.0,
        help="limit for groupcov processes at the huge size (default 2400)",
    )
    p.add_argument(
        "--rss-limit-mb",
        type=float,
        default=8000.0,
        help="kill a process group above this resident memory (default 8000 MB)",
    )
    p.add_argument("--draws", type=int, default=1000)
    p.add_argument("--tune", type=int, default=1000)
    p.add_argument("--chains", type=int, default=4)
    p.add_argument("--seed", type=int, default=1, help="random_seed of the samplers")
    p.add_argument("--data-seed", type=int, default=0)
    p.add_argument(
        "--huge-groups", type=int, default=10_000, help="groups of the huge size (smoke tests)"
    )
    p.add_argument("--huge-rows", type=int, default=1_000, help="rows per group, huge size")
    p.add_argument("--huge-draws", type=int, default=1000)
    p.add_argument("--huge-tune", type=int, default=1000)
    p.add_argument("--huge-thin", type=int, default=1)
    p.add_argument(
        "--huge-max-tree-depth",
        type=int,
        default=0,
        help="cap NUTS's tree depth at the huge size (bounds the time of a short run); 0: none",
    )
    p.add_argument(
        "--huge-variants",
        default="",
        help="groupcov variants to run at the huge size (default: all selected)",
    )
    p.add_argument(
        "--huge-var-names",
        default="mu,sigma,corr",
        help="fit(var_names=) at the huge size; '' keeps everything",
    )
    p.add_argument(
        "--huge-loops", action="store_true", help="also run the loop variants at the huge size"
    )
    p.add_argument(
        "--cold-warm-sizes",
        type=_csv,
        default=["two-group", "medium", "large"],
        help="sizes where groupcov's default runs twice (empty, then warm JAX cache)",
    )
    p.add_argument("--no-refit", action="store_true", help="skip the in-process refit")
    p.add_argument(
        "--estimate-iters",
        type=lambda s: tuple(int(x) for x in _csv(s)),
        default=(10, 60),
        help="k1,k2: short runs that estimate a timed-out loop variant ('' = none)",
    )
    p.add_argument(
        "--no-build-scaling",
        dest="build_scaling",
        action="store_false",
        help="skip the build-time-vs-G measurement",
    )
    p.add_argument("--blas-threads", type=int, default=1)
    p.add_argument(
        "--xla-devices",
        type=int,
        default=4,
        help="JAX host devices (chains in parallel for NumPyro); 0: untouched",
    )
    p.add_argument("--pymc-cores", type=int, default=2, help="cores= of the loop's pm.sample")
    p.add_argument("--json", metavar="PATH", help="write all results as JSON")
    p.add_argument("--log-dir", metavar="DIR", help="keep worker stdout/stderr here")
    p.add_argument("--keep-work", action="store_true", help="keep the data and worker files")
    p.add_argument(
        "--from-json", metavar="PATH", help="print the report of a saved --json file again"
    )
    # worker-only
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--data", help=argparse.SUPPRESS)
    p.add_argument("--result-file", help=argparse.SUPPRESS)
    p.add_argument("--refit-data", help=argparse.SUPPRESS)
    p.add_argument("--truth", help=argparse.SUPPRESS)
    p.add_argument("--thin", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--var-names", default="", help=argparse.SUPPRESS)
    p.add_argument("--max-tree-depth", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--build-groups", type=int, default=100, help=argparse.SUPPRESS)
    return p


def rebuild_report(path: str, out: str | None) -> None:
    """Print the tables again from a JSON file this script wrote (no runs)."""
    saved = json.loads(Path(path).read_text())
    args = argparse.Namespace(**{**vars(build_parser().parse_args([])), **saved["settings"]})
    args.json = out
    suite = Suite.__new__(Suite)
    suite.args = args
    suite.code_at_start = saved["header"][0].split("at start: ")[-1].split(";")[0]
    suite.data_info = saved["data"]
    suite.build_scaling = {int(k): v for k, v in saved.get("build_scaling", {}).items()}
    suite.gradient_cost = {int(k): v for k, v in saved.get("gradient_cost", {}).items()}
    suite.runs = []
    for r in saved["runs"]:
        result = dict(r["result"])
        for key in ("wall_s",):
            result[key] = float(result[key])
        suite.runs.append(
            Run(r["size"], r["variant"], r["label"], r["model"], r["cache"],
                VariantResult(**result), r.get("estimate"))
        )  # fmt: skip
    report(suite, float(saved["suite_wall_s"]))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.worker:
        return run_worker_process(args)
    if args.from_json:
        rebuild_report(args.from_json, args.json)
        return 0
    unknown = [s for s in args.sizes if s not in SIZES]
    if unknown:
        raise SystemExit(f"unknown size(s) {unknown}; choose from {list(SIZES)}")
    Suite(args).run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
