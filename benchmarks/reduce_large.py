"""Benchmark: reducing 10 million rows x 5 features x 1,000 groups in Parquet.

The file is generated once into a cache folder outside the repository
(``$GROUPCOV_BENCH_CACHE`` or the system temp folder, ``groupcov-bench/``). Every
method then runs in its own Python process, and the parent reads that process's peak
resident memory from ``os.wait4`` (``ru_maxrss``); the worker times only the reduction
(reading included, imports excluded) and reports its resident memory after imports.

Methods, all computing per-group counts, means and covariance (scatter) matrices:

- ``duckdb``: ``groupcov.reduce(path, ...)``, inside DuckDB, the file never loaded;
- ``numpy``: ``pandas.read_parquet`` then ``groupcov.reduce(frame, ...)`` (NumPy engine);
- ``arrow``: ``pyarrow.parquet.read_table`` then ``groupcov.reduce(table, ...)`` (DuckDB
  scanning Arrow memory; the path polars frames also take);
- ``pandas``: ``pandas.read_parquet`` then ``groupby().size()``, ``.mean()`` and
  ``.cov()``, the plain pandas way.

Run (from the repository root)::

    .venv/bin/python benchmarks/reduce_large.py                 # all methods
    .venv/bin/python benchmarks/reduce_large.py --methods duckdb,pandas --rows 1000000

The results of all methods are compared (counts equal; means and covariances to a
relative 1e-9, covariances relative to their standard deviations) before the table
is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FEATURES = [f"x{j}" for j in range(5)]
METHODS = ("duckdb", "numpy", "arrow", "pandas")
ROWS_PER_GROUP_OF_ROWS = 1_000_000


def cache_dir() -> Path:
    root = Path(os.environ.get("GROUPCOV_BENCH_CACHE", tempfile.gettempdir()))
    path = root / "groupcov-bench"
    path.mkdir(parents=True, exist_ok=True)
    return path


def generate(path: Path, rows: int, groups: int, seed: int = 0) -> None:
    """Rows of ``groups`` groups (labels ``g0000``...) with group-specific means and
    correlated features, written in row groups of 1e6 rows."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    p = len(FEATURES)
    labels = np.array([f"g{g:04d}" for g in range(groups)], dtype=object)
    centers = rng.normal(size=(groups, p)) * 3.0 + np.arange(p) * 100.0
    mix = np.linalg.cholesky(0.5 * np.eye(p) + 0.5)
    schema = pa.schema([("group", pa.string())] + [(f, pa.float64()) for f in FEATURES])
    partial = path.with_suffix(".partial")
    with pq.ParquetWriter(partial, schema) as writer:
        for start in range(0, rows, ROWS_PER_GROUP_OF_ROWS):
            size = min(ROWS_PER_GROUP_OF_ROWS, rows - start)
            g = rng.integers(0, groups, size=size)
            x = rng.normal(size=(size, p)) @ mix.T + centers[g]
            columns = [pa.array(labels[g], pa.string())] + [pa.array(x[:, j]) for j in range(p)]
            writer.write_table(pa.table(columns, schema=schema))
    partial.rename(path)


def _rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def worker(method: str, path: str, out: str) -> None:
    """Reduce with one method; write time, memory and the statistics."""
    import numpy as np
    import pandas as pd

    import groupcov

    if method in ("arrow",):
        import pyarrow.parquet as pq
    import_rss = _rss_mb()
    start = time.perf_counter()
    if method == "duckdb":
        st = groupcov.reduce(path, "group", FEATURES)
    elif method == "numpy":
        st = groupcov.reduce(pd.read_parquet(path), "group", FEATURES)
    elif method == "arrow":
        st = groupcov.reduce(pq.read_table(path), "group", FEATURES)
    elif method == "pandas":
        df = pd.read_parquet(path)
        grouped = df.groupby("group", sort=True)[FEATURES]
        counts = grouped.size()
        means = grouped.mean()
        covs = grouped.cov()
    else:
        raise ValueError(method)
    seconds = time.perf_counter() - start
    if method == "pandas":
        groups = counts.index.tolist()
        n = counts.to_numpy()
        mean = means.to_numpy()
        cov = covs.to_numpy().reshape(len(groups), len(FEATURES), len(FEATURES))
    else:
        groups, n, mean, cov = list(st.groups), st.n, st.mean, st.covariance()
    np.savez(out, n=n, mean=mean, cov=cov, groups=np.array(groups, dtype=str))
    Path(out + ".json").write_text(json.dumps({"seconds": seconds, "import_rss": import_rss}))


def run(method: str, path: Path, out: Path) -> dict:
    """One method in a fresh process; its peak RSS from the kernel's accounting."""
    cmd = [sys.executable, __file__, "--worker", method, "--path", str(path), "--out", str(out)]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{method} failed with exit code {proc.returncode}")
    result = json.loads(Path(str(out) + ".json").read_text())
    result.update(method=method, peak_rss=usage.ru_maxrss / 1024.0, process_wall=wall)
    return result


def compare(outs: dict[str, Path]) -> list[str]:
    """Largest differences of every method's statistics from the first one's."""
    import numpy as np

    names = list(outs)
    ref = np.load(str(outs[names[0]]) + ".npz")
    lines = []
    for name in names[1:]:
        other = np.load(str(outs[name]) + ".npz")
        assert (ref["groups"] == other["groups"]).all(), name
        assert (ref["n"] == other["n"]).all(), name
        d_mean = np.max(np.abs(other["mean"] - ref["mean"]) / np.abs(ref["mean"]))
        sd = np.sqrt(np.diagonal(ref["cov"], axis1=1, axis2=2))
        d_cov = np.max(np.abs(other["cov"] - ref["cov"]) / (sd[:, :, None] * sd[:, None, :]))
        assert d_mean < 1e-9 and d_cov < 1e-9, (name, d_mean, d_cov)
        lines.append(
            f"{name} vs {names[0]}: max relative difference of means {d_mean:.1e}, "
            f"of covariances {d_cov:.1e}"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--groups", type=int, default=1000)
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--worker")
    parser.add_argument("--path")
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.path, args.out)
        return
    path = cache_dir() / f"rows_{args.rows}_groups_{args.groups}.parquet"
    if not path.exists():
        started = time.perf_counter()
        generate(path, args.rows, args.groups)
        print(f"generated {path} in {time.perf_counter() - started:.1f} s")
    size_mb = path.stat().st_size / 2**20
    results, outs = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for method in args.methods.split(","):
            outs[method] = Path(tmp) / method
            results.append(run(method, path, outs[method]))
            print(f"{method}: {results[-1]['seconds']:.2f} s", flush=True)
        notes = compare(outs)
    import duckdb
    import pandas as pd

    print(
        f"\n{args.rows:,} rows x {len(FEATURES)} features x {args.groups:,} groups, "
        f"Parquet {size_mb:.0f} MB; {platform.machine()}, {os.cpu_count()} CPU cores; "
        f"DuckDB {duckdb.__version__}, pandas {pd.__version__}; "
        f"load average before: {os.getloadavg()[0]:.1f}\n"
    )
    print("| method | reduction (s) | rows/s | peak RSS (MB) | of which after imports (MB) |")
    print("|---|---:|---:|---:|---:|")
    labels = {
        "duckdb": "`groupcov.reduce(path)` (DuckDB, out of core)",
        "numpy": "`pd.read_parquet` + `groupcov.reduce(frame)` (NumPy)",
        "arrow": "`pq.read_table` + `groupcov.reduce(table)` (DuckDB on Arrow)",
        "pandas": "`pd.read_parquet` + `groupby` size/mean/cov (plain pandas)",
    }
    for r in results:
        print(
            f"| {labels[r['method']]} | {r['seconds']:.2f} | "
            f"{args.rows / r['seconds'] / 1e6:.1f} M | {r['peak_rss']:.0f} | "
            f"{r['import_rss']:.0f} |"
        )
    print()
    for line in notes:
        print(line)


if __name__ == "__main__":
    main()
