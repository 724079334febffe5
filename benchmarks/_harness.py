"""Shared machinery for the benchmark scripts in this folder.

A benchmark script defines *variants* (one model + one sampler each) and runs every
variant in a fresh Python subprocess, so that the measured wall time covers what a
user pays for one fit: interpreter start-up, imports, model build, compilation and
sampling.  The parent process:

* writes the data set once to an ``.npz`` file that every worker loads (same data);
* starts each worker with :func:`run_worker`, timing it from just before the
  interpreter starts until the process has exited, with a per-variant timeout that
  kills the worker's whole process group (a timeout is a result, not a crash);
* collects the JSON each worker writes (:func:`write_worker_result`) and formats a
  Markdown table (:func:`markdown_table`).

Inside a worker, :func:`silence_warnings` hides the known-noisy warnings,
:class:`PhaseTimer` records import / build / sample times, :func:`posterior_diagnostics`
computes min bulk ESS, max R-hat and divergences, and :func:`peak_rss_mb` reports
memory.

Nothing here imports PyMC, ArviZ or JAX at module level, so importing this module
does not distort a worker's import timing.
"""

from __future__ import annotations

import json
import logging
import math
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - typing only
    import numpy as np
    import pandas as pd

__all__ = [
    "CompileEvents",
    "DataSet",
    "PhaseTimer",
    "RssMonitor",
    "Variant",
    "VariantResult",
    "add_common_arguments",
    "after_import",
    "contention_notes",
    "current_rss_mb",
    "library_versions",
    "load_dataset",
    "loop_model",
    "machine_description",
    "markdown_table",
    "peak_rss_mb",
    "posterior_diagnostics",
    "run_worker",
    "save_dataset",
    "silence_warnings",
    "speedups",
    "temp_dir",
    "usable_cores",
    "worker_env",
    "write_worker_result",
]


@dataclass(frozen=True)
class Variant:
    """One model + sampler combination."""

    name: str
    model: str  # "loop" or "groupcov"
    sampler: str | None  # None: groupcov's default sampler
    label: str

# Environment variable a worker reads to learn the wall-clock time (``time.time()``)
# at which the parent started it; used to estimate interpreter start-up time.
SPAWN_TIME_ENV = "GROUPCOV_BENCH_SPAWN_TIME"
# The environment as it was when this module was imported, before the parent process
# imported anything that might edit os.environ (groupcov's import sets PYTENSOR_FLAGS,
# for example); workers start from this copy, so one variant's library cannot change
# the settings another variant runs under.
_BASE_ENV = dict(os.environ)
# ru_maxrss is in bytes on macOS and in KiB on Linux; divide by this to get MB.
_RSS_UNIT = 1024.0 * 1024.0 if sys.platform == "darwin" else 1024.0


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class DataSet:
    """A grouped numeric table in plain NumPy form.

    Attributes
    ----------
    X : numpy.ndarray
        Feature matrix, shape ``(n_rows, p)``.
    group : numpy.ndarray
        Group label of each row (unicode strings), shape ``(n_rows,)``.
    features : list of str
        Feature names, length ``p``.
    """

    X: np.ndarray
    group: np.ndarray
    features: list[str]

    @property
    def groups(self) -> list[str]:
        """Sorted distinct group labels."""
        import numpy as np

        return [str(g) for g in np.unique(self.group)]

    def group_index(self) -> np.ndarray:
        """Integer code of each row's group, indexing :attr:`groups`."""
        import numpy as np

        return np.searchsorted(np.asarray(self.groups), self.group)

    def to_frame(self, group_column: str = "group") -> pd.DataFrame:
        """The table as a DataFrame with a group column followed by the features."""
        import pandas as pd

        df = pd.DataFrame(self.X, columns=self.features)
        df.insert(0, group_column, self.group)
        return df

    def fingerprint(self) -> str:
        """Short hash of the contents; equal fingerprints mean identical data."""
        import hashlib

        h = hashlib.sha1()
        h.update(self.X.tobytes())
        h.update("\0".join(map(str, self.group)).encode())
        h.update("\0".join(self.features).encode())
        return h.hexdigest()[:12]


def save_dataset(
    path: str | os.PathLike[str], df: pd.DataFrame, group: str, features: Sequence[str]
) -> DataSet:
    """Write ``df[[group, *features]]`` to ``path`` (``.npz``) and return it as a DataSet."""
    import numpy as np

    data = DataSet(
        X=np.ascontiguousarray(df[list(features)].to_numpy(dtype=float)),
        group=df[group].astype(str).to_numpy().astype(str),
        features=[str(f) for f in features],
    )
    np.savez(path, X=data.X, group=data.group, features=np.asarray(data.features, dtype=str))
    return data


def load_dataset(path: str | os.PathLike[str]) -> DataSet:
    """Read a data set written by :func:`save_dataset`."""
    import numpy as np

    with np.load(path, allow_pickle=False) as f:
        return DataSet(X=f["X"], group=f["group"], features=[str(s) for s in f["features"]])


def loop_model(data: DataSet) -> Any:
    """The per-group-loop PyMC workaround: one ``LKJCholeskyCov`` and one ``MvNormal``
    per group (PyMC 5.28 cannot batch ``LKJCholeskyCov`` over groups).

    ``mu_group ~ N(0, 1)`` per group and feature, ``LKJCholeskyCov(eta=2,
    sd_dist=Exponential(1))`` per group, raw rows observed.
    """
    import pymc as pm

    X, idx, groups = data.X, data.group_index(), data.groups
    p = X.shape[1]
    coords = {"groups": groups, "features": data.features}
    with pm.Model(coords=coords) as model:
        mu_group = pm.Normal("mu_group", 0, 1, dims=("groups", "features"))
        for i, g in enumerate(groups):
            chol_g = pm.LKJCholeskyCov(
                f"{g}_chol",
                n=p,
                eta=2,
                sd_dist=pm.Exponential.dist(1, shape=p),
                compute_corr=True,
            )[0]
            pm.MvNormal(f"{g}_obs", mu=mu_group[i], chol=chol_g, observed=X[idx == i])
    return model


# ------------------------------------------------------------------ worker helpers


def silence_warnings() -> None:
    """Hide warnings that are known noise in benchmark workers.

    Only specific messages are filtered (ArviZ's refactor ``FutureWarning``,
    PyTensor's "could not link to a BLAS" warning and its BLAS-fallback log line,
    NumPyro's "not enough devices" note, PyMC's convergence chatter); errors and
    other warnings still reach stderr.  Call it before importing PyMC or ArviZ.
    """
    warnings.filterwarnings("ignore", message=r".*ArviZ is undergoing a major refactor")
    warnings.filterwarnings("ignore", message=r".*could not link to a BLAS")
    warnings.filterwarnings("ignore", message=r".*not enough devices to run parallel chains")
    logging.getLogger("pytensor.tensor.blas").setLevel(logging.ERROR)
    # PyMC's sampler logs progress/diagnostic messages at INFO/WARNING; the
    # benchmark computes its own diagnostics, errors are still shown.
    logging.getLogger("pymc").setLevel(logging.ERROR)


class PhaseTimer:
    """Record wall time of named phases with ``time.perf_counter``.

    Examples
    --------
    >>> t = PhaseTimer()
    >>> with t.phase("build"):
    ...     pass
    >>> sorted(t.times)
    ['build']
    """

    def __init__(self) -> None:
        self.times: dict[str, float] = {}

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.times[name] = self.times.get(name, 0.0) + time.perf_counter() - start


def current_rss_mb(pid: int | str = "self") -> float | None:
    """Resident set size of a process now (Linux ``/proc``), in MB; None if unknown."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except (OSError, ValueError):
        return None
    return None


class RssMonitor:
    """Sample this process's resident set size in a background thread, per named phase.

    ``peaks`` maps each phase name to the largest RSS (MB) seen while it was the
    current phase and ``times`` to the seconds spent in it; :meth:`mark` switches
    the phase. Sampling every ``interval``
    seconds misses spikes shorter than that; ``ru_maxrss`` (:func:`peak_rss_mb`)
    is the exact overall peak.

    Examples
    --------
    >>> mon = RssMonitor(interval=0.01).start()
    >>> mon.mark("work")
    >>> mon.stop()
    >>> "work" in mon.peaks
    True
    """

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.phase = "start"
        self.peaks: dict[str, float] = {}
        self.checkpoints: dict[str, float] = {}
        self.times: dict[str, float] = {}
        self._since = time.perf_counter()
        self._stack: list[str] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        rss = current_rss_mb()
        if rss is not None:
            phase = self.phase
            self.peaks[phase] = max(self.peaks.get(phase, 0.0), rss)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def start(self) -> RssMonitor:
        self._sample()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def mark(self, phase: str) -> None:
        """Record the RSS at the end of the current phase and start ``phase``."""
        self._sample()
        rss = current_rss_mb()
        if rss is not None:
            self.checkpoints[f"end of {self.phase}"] = rss
        now = time.perf_counter()
        self.times[self.phase] = self.times.get(self.phase, 0.0) + now - self._since
        self._since = now
        self.phase = phase
        self._sample()

    def push(self, phase: str) -> None:
        """Start a nested ``phase``; :meth:`pop` returns to the enclosing one."""
        self._stack.append(self.phase)
        self.mark(phase)

    def pop(self) -> None:
        self.mark(self._stack.pop() if self._stack else "start")

    def stop(self) -> None:
        self.mark("stopped")
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


_IMPORT_HOOKS: dict[str, list[tuple[Any, Any]]] = {}  # module -> [(before, after)]
_IMPORT_FINDER: list[Any] = []


def after_import(names: Sequence[str], callback: Any, before: Any = None) -> None:
    """Call ``callback(module)`` right after each module in ``names`` is executed by
    an import (now, for those already imported), without importing anything early;
    ``before(name)``, if given, is called just before the module executes.

    Used by workers to wrap library functions for timing while keeping the set and
    order of imports exactly what the measured code does on its own. One finder on
    ``sys.meta_path`` serves every registration.
    """
    import importlib.abc

    for name in names:
        if name in sys.modules:
            if callback is not None:
                callback(sys.modules[name])
        else:
            _IMPORT_HOOKS.setdefault(name, []).append((before, callback))
    if _IMPORT_FINDER:
        return

    class _AfterImport(importlib.abc.MetaPathFinder):
        def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
            # find_spec is also called without an import (importlib.util.find_spec, to
            # test availability): the hooks run, and are used up, only when it executes
            if not _IMPORT_HOOKS.get(name):
                return None
            for finder in sys.meta_path:
                if finder is self or not hasattr(finder, "find_spec"):
                    continue
                spec = finder.find_spec(name, path, target)
                if spec is not None and spec.loader is not None:
                    execute = spec.loader.exec_module

                    def exec_module(module: Any, execute: Any = execute) -> None:
                        hooks = _IMPORT_HOOKS.pop(module.__name__, [])
                        for first, _ in hooks:
                            if first is not None:
                                first(module.__name__)
                        try:
                            execute(module)
                        finally:
                            for _, then in reversed(hooks):
                                if then is not None:
                                    then(module)

                    spec.loader.exec_module = exec_module
                    return spec
            return None

    finder = _AfterImport()
    _IMPORT_FINDER.append(finder)
    sys.meta_path.insert(0, finder)


class CompileEvents:
    """Sum JAX's compile-time monitoring events (tracing, lowering, XLA compilation,
    persistent-cache hits) from the moment :meth:`install` is called.

    JAX reports durations through ``jax.monitoring``; nothing is recorded if JAX is
    never imported. :meth:`snapshot` returns ``{event name: seconds}`` plus
    ``cache_hits``, ``cache_misses`` and ``backend_compile_s``.
    """

    BACKEND = "/jax/core/compile/backend_compile_duration"

    def __init__(self) -> None:
        self.durations: dict[str, float] = {}
        self.counts: dict[str, int] = {}

    def install(self) -> CompileEvents:
        import jax.monitoring as mon

        def on_duration(event: str, duration: float, **_: Any) -> None:
            self.durations[event] = self.durations.get(event, 0.0) + float(duration)

        def on_event(event: str, **_: Any) -> None:
            self.counts[event] = self.counts.get(event, 0) + 1

        mon.register_event_duration_secs_listener(on_duration)
        mon.register_event_listener(on_event)
        return self

    def install_on_import(self) -> CompileEvents:
        """:meth:`install` once JAX is imported (at once if it already is)."""
        installed: list[bool] = []

        def on_import(_: Any) -> None:
            if not installed:
                installed.append(True)
                self.install()

        after_import(["jax"], on_import)
        return self

    def snapshot(self) -> dict[str, Any]:
        hits = self.counts.get("/jax/compilation_cache/cache_hits", 0)
        requests = self.counts.get("/jax/compilation_cache/compile_requests_use_cache", 0)
        return {
            "backend_compile_s": self.durations.get(self.BACKEND, 0.0),
            "cache_hits": hits,
            "cache_misses": max(requests - hits, 0),
            "events": dict(self.durations),
        }


def peak_rss_mb() -> float:
    """Peak resident set size of this process plus that of its largest reaped child, in MB.

    ``ru_maxrss`` of ``RUSAGE_CHILDREN`` is the peak of the largest waited-for
    descendant (e.g. PyMC's per-chain sampler processes), so the sum is an upper
    bound on the simultaneous peak of the process tree, not an exact value.
    """
    self_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    child_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return (self_kb + child_kb) / _RSS_UNIT


def posterior_diagnostics(
    idata: Any,
    var_names: Sequence[str] | None = None,
    *,
    skip_internal: bool = True,
    engine: str = "vectorized",
    workers: int | None = None,
) -> dict[str, Any]:
    """Min bulk ESS, max R-hat and number of divergences of an InferenceData.

    ESS and R-hat are taken over every entry of every posterior variable (or of
    ``var_names``); entries whose value is NaN (constant quantities such as the
    unit diagonal of a correlation matrix) are skipped.  With ``skip_internal``,
    variables whose name ends in ``__`` are skipped: PyMC's naming for internal
    copies (e.g. ``A_chol_cholesky-cov-packed__``, which nutpie keeps in the
    posterior and NumPyro does not), so every sampler is scored on the same set.
    ``engine="vectorized"`` (default) computes ArviZ's rank-normalized split R-hat
    and bulk ESS for all entries at once (:mod:`groupcov.diagnostics`, equal to ArviZ to
    rounding; on ``workers`` threads, default one per core); ``"arviz"`` calls
    ``az.rhat`` / ``az.ess`` (one entry at a time: hours for 10^5 entries). ``idata``
    is anything with ``posterior`` and, optionally, ``sample_stats`` datasets (an
    InferenceData or a GroupCovResult).
    """
    import numpy as np

    post = idata.posterior
    names = list(var_names) if var_names is not None else list(post.data_vars)
    if skip_internal:
        names = [n for n in names if not str(n).endswith("__")]
    if engine == "arviz":
        import arviz as az

        with np.errstate(invalid="ignore", divide="ignore"):  # constant entries -> NaN
            ess = az.ess(post, var_names=names, method="bulk")
            rhat = az.rhat(post, var_names=names)
    else:
        import xarray as xr

        from groupcov.diagnostics import rank_diagnostics

        both = {n: rank_diagnostics(post[n].values, workers=workers) for n in names}
        rhat = xr.Dataset({n: (post[n].dims[2:], both[n][0]) for n in names})
        ess = xr.Dataset({n: (post[n].dims[2:], both[n][1]) for n in names})

    def _extreme(ds: Any, largest: bool) -> tuple[float, str | None]:
        found: list[tuple[float, str]] = []
        for name in ds.data_vars:
            vals = np.asarray(ds[name].values, dtype=float).ravel()
            vals = vals[np.isfinite(vals)]  # NaN: constant entries, e.g. corr diagonal
            if vals.size:
                found.append((float(vals.max() if largest else vals.min()), str(name)))
        if not found:
            return math.nan, None
        value, name = max(found) if largest else min(found)
        return value, name

    min_ess, min_ess_var = _extreme(ess, largest=False)
    max_rhat, max_rhat_var = _extreme(rhat, largest=True)
    divergences = None
    stats = getattr(idata, "sample_stats", None)
    if stats is not None:
        for key in ("diverging", "divergences"):
            if key in stats:
                divergences = int(np.asarray(stats[key].values).astype(bool).sum())
                break
    n_draws = int(post.sizes.get("chain", 1) * post.sizes.get("draw", 1))
    # a thinned fit's split R-hat over every draw, kept or not (fit(thin=...))
    moments = getattr(idata, "moments", None)
    all_draws: dict[str, Any] = {}
    if moments is not None:
        import xarray as xr

        r_hat = xr.Dataset({n: moments[n].sel(statistic="r_hat") for n in names
                            if n in moments})
        value, name = _extreme(r_hat, largest=True)
        all_draws = {
            "max_rhat_all_draws": value,
            "max_rhat_all_draws_var": name,
            "draws_per_chain_all": int(moments.attrs.get("draws_per_chain", 0)),
        }
    return {
        **all_draws,
        "min_ess_bulk": min_ess,
        "min_ess_var": min_ess_var,
        "max_rhat": max_rhat,
        "max_rhat_var": max_rhat_var,
        "divergences": divergences,
        "n_draws": n_draws,
        "n_entries": int(sum(int(np.prod(post[v].shape[2:])) for v in names)),
        "var_names": names,
    }


def write_worker_result(path: str | os.PathLike[str], payload: dict[str, Any]) -> None:
    """Write a worker's JSON result, adding start-up estimate and peak RSS."""
    spawn = os.environ.get(SPAWN_TIME_ENV)
    payload = dict(payload)
    payload.setdefault("peak_rss_mb", peak_rss_mb())
    if spawn is not None and "worker_entry_time" in payload:
        payload["startup_s"] = payload.pop("worker_entry_time") - float(spawn)
    Path(path).write_text(json.dumps(payload, default=_json_default, indent=1))


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return str(obj)


# ------------------------------------------------------------------ parent helpers


@dataclass
class VariantResult:
    """Outcome of one variant run in its own process."""

    variant: str
    label: str
    group: str  # e.g. "loop" or "groupcov"
    status: str  # "ok", "timeout", "memory" (killed above the RSS limit) or "error"
    wall_s: float  # process wall time minus post-sampling diagnostics time
    process_wall_s: float
    timeout_s: float
    worker: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    tree_peak_rss_mb: float | None = None  # largest single process, seen by the parent
    cpu_s: float | None = None  # user + system CPU of the worker and its reaped children
    foreign_cpu_s: float | None = None  # CPU used by other processes meanwhile
    group_rss_peak_mb: float | None = None  # largest summed RSS of the process group (polled)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_worker(
    cmd: Sequence[str],
    *,
    variant: str,
    label: str,
    group: str,
    timeout_s: float,
    result_path: Path,
    log_dir: Path,
    env: dict[str, str] | None = None,
    rss_limit_mb: float | None = None,
) -> VariantResult:
    """Run ``cmd`` in a new session, timed from spawn to exit, killing it after ``timeout_s``.

    The worker must write its JSON result to ``result_path``.  Its stdout and stderr
    go to ``log_dir/<variant>.out`` / ``.err``; on failure the tail of stderr is kept
    in :attr:`VariantResult.error`.  With ``rss_limit_mb``, the summed resident memory
    of the worker's process group is polled every 0.2 s and the group is killed
    (status ``"memory"``) when it exceeds the limit; the largest sum seen is kept in
    :attr:`VariantResult.group_rss_peak_mb` either way.
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    out_path, err_path = log_dir / f"{variant}.out", log_dir / f"{variant}.err"
    env = dict(_BASE_ENV if env is None else env)
    result_path.unlink(missing_ok=True)
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        busy_before = _busy_cpu_seconds()
        env[SPAWN_TIME_ENV] = repr(time.time())
        start = time.perf_counter()
        proc = subprocess.Popen(list(cmd), stdout=out, stderr=err, env=env, start_new_session=True)
        reaped: dict[str, Any] = {}

        def _reap() -> None:
            _, status, usage = os.wait4(proc.pid, 0)
            reaped["end"] = time.perf_counter()
            reaped["status"] = status
            reaped["usage"] = usage

        waiter = threading.Thread(target=_reap, daemon=True)
        waiter.start()
        group_peak = 0.0
        over_memory = False
        deadline = start + timeout_s
        while waiter.is_alive() and time.perf_counter() < deadline:
            waiter.join(min(0.2, max(deadline - time.perf_counter(), 0.0)))
            rss = _group_rss_mb(proc.pid)
            group_peak = max(group_peak, rss)
            if rss_limit_mb is not None and rss > rss_limit_mb and waiter.is_alive():
                over_memory = True
                break
        timed_out = waiter.is_alive() and not over_memory
        if waiter.is_alive():
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # the worker and its own children
            waiter.join()
        proc.returncode = os.waitstatus_to_exitcode(reaped["status"])
    elapsed = reaped["end"] - start
    usage = reaped["usage"]
    common: dict[str, Any] = {
        "variant": variant,
        "label": label,
        "group": group,
        "process_wall_s": elapsed,
        "timeout_s": timeout_s,
        "tree_peak_rss_mb": usage.ru_maxrss / _RSS_UNIT,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "group_rss_peak_mb": group_peak or None,
    }
    busy = _busy_cpu_seconds()
    if busy is not None and busy_before is not None:
        # CPU time the rest of the machine used while this worker ran: other
        # processes competing for the cores make the timing unreliable.
        common["foreign_cpu_s"] = max(0.0, busy - busy_before - common["cpu_s"])
    if timed_out:
        return VariantResult(
            status="timeout", wall_s=math.inf, error=f"killed after {timeout_s:g} s", **common
        )
    if over_memory:
        return VariantResult(
            status="memory",
            wall_s=math.inf,
            error=f"killed: resident memory above {rss_limit_mb:g} MB",
            **common,
        )
    worker: dict[str, Any] = {}
    error = None
    if result_path.exists():
        worker = json.loads(result_path.read_text())
        error = worker.get("error")
    if proc.returncode != 0 or not result_path.exists() or error:
        # The worker's own traceback if it wrote one, otherwise the end of its stderr.
        error = error or f"exit code {proc.returncode}\n{_tail(err_path, 25)}".strip()
        return VariantResult(status="error", wall_s=math.nan, worker=worker, error=error, **common)
    wall = elapsed - float(worker.get("phases", {}).get("diagnostics", 0.0))
    return VariantResult(status="ok", wall_s=wall, worker=worker, **common)


def _group_rss_mb(pgid: int) -> float:
    """Summed resident memory (MB) of the processes in process group ``pgid``."""
    total = 0.0
    try:
        entries = os.listdir("/proc")
    except OSError:
        return 0.0
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        # after the command name: state, ppid, pgrp, ...; field 22 (rss) is in pages
        if int(fields[2]) == pgid:
            total += int(fields[21]) * os.sysconf("SC_PAGE_SIZE") / (1024.0 * 1024.0)
    return total


def _busy_cpu_seconds() -> float | None:
    """Machine-wide non-idle CPU seconds since boot (Linux ``/proc/stat``), else None."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    busy = sum(fields[:8]) - idle  # user..steal; guest time is already in user
    return busy / os.sysconf("SC_CLK_TCK")


def _tail(path: Path, n: int) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-n:])


def speedups(
    results: Sequence[VariantResult], baseline_variant: str, baseline_group: str
) -> dict[str, dict[str, tuple[float, bool] | None]]:
    """Wall-time speed-ups of every result against two references from the same run.

    Returns ``{variant: {"baseline": r, "fastest": r}}`` where ``r`` is ``(ratio,
    is_lower_bound)`` or ``None`` when it cannot be computed.  The references are
    ``baseline_variant`` and the fastest successful variant of ``baseline_group``.
    A reference that timed out gives lower bounds (its true time exceeds the timeout).
    """
    by_name = {r.variant: r for r in results}
    base = by_name.get(baseline_variant)
    group_ok = [r for r in results if r.group == baseline_group and r.ok]
    group_all = [r for r in results if r.group == baseline_group]
    fastest = min(group_ok, key=lambda r: r.wall_s) if group_ok else None
    if fastest is None and group_all and all(r.status == "timeout" for r in group_all):
        fastest = min(group_all, key=lambda r: r.timeout_s)

    def ratio(ref: VariantResult | None, r: VariantResult) -> tuple[float, bool] | None:
        if ref is None or not r.ok:
            return None
        if ref.ok:
            return ref.wall_s / r.wall_s, False
        if ref.status == "timeout":
            return ref.timeout_s / r.wall_s, True
        return None

    return {r.variant: {"baseline": ratio(base, r), "fastest": ratio(fastest, r)} for r in results}


def _fmt(x: float | None, nd: int = 1) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    return f"{x:,.{nd}f}"


def _fmt_ratio(v: tuple[float, bool] | None) -> str:
    if v is None:
        return "—"
    value, lower_bound = v
    return f"> {value:.2f}x" if lower_bound else f"{value:.2f}x"


def markdown_table(
    results: Sequence[VariantResult],
    *,
    baseline_variant: str,
    baseline_label: str,
    baseline_group: str,
    fastest_label: str,
) -> str:
    """Format results as a Markdown table (one row per variant, in the given order)."""
    ups = speedups(results, baseline_variant, baseline_group)
    header = [
        "variant",
        "wall s",
        "sampling s",
        "min bulk ESS",
        "ESS/s",
        "max R-hat",
        "divergences",
        "peak RSS MB",
        f"speed-up vs {baseline_label}",
        f"speed-up vs {fastest_label}",
    ]
    align = [":--"] + ["--:"] * (len(header) - 1)
    rows = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    for r in results:
        w = r.worker
        diag = w.get("diagnostics", {})
        if r.status == "timeout":
            cells = [r.label, f"> {r.timeout_s:g}"] + ["—"] * 6
        elif r.status in ("error", "memory"):
            cells = [r.label, r.status] + ["—"] * 6
        else:
            ess = diag.get("min_ess_bulk")
            rhat = diag.get("max_rhat")
            div = diag.get("divergences")
            cells = [
                r.label,
                _fmt(r.wall_s),
                _fmt(w.get("phases", {}).get("sample")),
                _fmt(ess, 0),
                _fmt(ess / r.wall_s if ess is not None else None, 1),
                _fmt(rhat, 3),
                "—" if div is None else str(div),
                _fmt(w.get("peak_rss_mb"), 0),
            ]
        cells += [_fmt_ratio(ups[r.variant]["baseline"]), _fmt_ratio(ups[r.variant]["fastest"])]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def usable_cores() -> int:
    """Number of CPU cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def contention_notes(results: Sequence[VariantResult], threshold: float = 0.05) -> list[str]:
    """Warnings for variants during which other processes used more than ``threshold``
    of the machine's CPU capacity (their timings are then pessimistic)."""
    notes = []
    for r in results:
        if r.foreign_cpu_s is None or not r.process_wall_s:
            continue
        share = r.foreign_cpu_s / (r.process_wall_s * usable_cores())
        if share > threshold:
            notes.append(
                f"WARNING: other processes used {r.foreign_cpu_s:.0f} CPU-s "
                f"({share:.0%} of capacity) while '{r.label}' ran; its timing is inflated."
            )
    return notes


def machine_description() -> str:
    """One line describing the machine and the main library versions."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    n = usable_cores()
    return (
        f"{cpu}, {n} cores usable, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def library_versions(names: Sequence[str]) -> dict[str, str]:
    """Installed versions of ``names`` (from package metadata, without importing them)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def add_common_arguments(parser: Any) -> None:
    """Arguments every benchmark script shares (timeout, filters, output, caches)."""
    parser.add_argument(
        "--timeout",
        type=float,
        default=900.0,
        help="per-variant wall-clock limit in seconds (default 900)",
    )
    parser.add_argument(
        "--only",
        choices=["loop", "groupcov"],
        help="run only the loop or only the groupcov variants",
    )
    parser.add_argument("--variants", help="comma-separated variant names to run")
    parser.add_argument("--json", metavar="PATH", help="also write results as JSON")
    parser.add_argument(
        "--log-dir", metavar="DIR", help="keep worker stdout/stderr here (default: a temp dir)"
    )
    parser.add_argument(
        "--cold-cache",
        action="store_true",
        help="give each worker an empty PyTensor compiledir and Numba "
        "cache, so compilation is measured from scratch",
    )
    parser.add_argument(
        "--warmup",
        action="store_true",
        help="first run every selected variant once, untimed, with 20 tune + 20 draws, "
        "so that every timed run finds the compilation caches equally warm",
    )
    parser.add_argument(
        "--blas-threads",
        type=int,
        default=0,
        metavar="N",
        help="set OPENBLAS/OMP/MKL_NUM_THREADS=N in the workers; 0 (default) leaves "
        "them unset. Use 1 on a machine shared with other work: multi-threaded "
        "OpenBLAS busy-waits and can slow NumPy-backed ops (PyMC's C back-end "
        "without a system BLAS) by 10x when cores are oversubscribed",
    )
    parser.add_argument(
        "--xla-devices",
        type=int,
        default=0,
        metavar="N",
        help="expose N host devices to JAX (XLA_FLAGS) so NumPyro can "
        "run chains in parallel; 0 (default) leaves JAX untouched "
        "(pm.sample's NumPyro then draws chains sequentially)",
    )


def worker_env(
    base_dir: Path,
    variant: str,
    *,
    cold_cache: bool,
    xla_devices: int,
    blas_threads: int = 0,
) -> dict[str, str]:
    """Environment for one worker: the parent's environment as it was before any
    library import, plus ``--cold-cache``, ``--xla-devices`` and ``--blas-threads``."""
    env = dict(_BASE_ENV)
    if blas_threads > 0:
        for var in _BLAS_THREAD_VARS:
            env[var] = str(blas_threads)
    if cold_cache:
        cache = base_dir / "cache" / variant
        shutil.rmtree(cache, ignore_errors=True)
        (cache / "pytensor").mkdir(parents=True)
        (cache / "numba").mkdir(parents=True)
        flags = env.get("PYTENSOR_FLAGS", "")
        env["PYTENSOR_FLAGS"] = ",".join(
            f for f in (flags, f"compiledir={cache / 'pytensor'}") if f
        )
        env["NUMBA_CACHE_DIR"] = str(cache / "numba")
    if xla_devices > 0:
        flag = f"--xla_force_host_platform_device_count={xla_devices}"
        env["XLA_FLAGS"] = " ".join(f for f in (env.get("XLA_FLAGS", ""), flag) if f)
    return env


_BLAS_THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def temp_dir(prefix: str) -> Path:
    """A fresh temporary directory (the caller removes it)."""
    return Path(tempfile.mkdtemp(prefix=prefix))
