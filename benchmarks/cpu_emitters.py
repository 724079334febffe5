"""XLA:CPU's two code generators for fused loops, on groupcov's programs.

groupcov compiles its samplers with ``xla_cpu_use_fusion_emitters=False``
(:data:`groupcov.inference.jax_backend.CPU_COMPILER_OPTIONS`): XLA's elemental code
generator instead of its newer fusion emitters. This script measures both on the
suite's problem sizes (the default model of each, simulated data), each size in a fresh
process with an empty compilation cache:

- ``grad``: the log density and its gradient in a compiled loop of 500 evaluations
  (each feeds the next, so XLA drops nothing): compile seconds and milliseconds per
  evaluation (one chain, one CPU device);
- ``sampler``: the whole sampler program of 4 chains x (1,000 warm-up + 1,000 draws), as
  :meth:`GroupCovModel.fit` runs it: compile seconds and sampling seconds (skipped for
  ``huge``: hours);
- ``max_rel_diff``: the largest relative difference between the two generators'
  gradients at a random point (rounding only: the programs are the same).

Every measurement is a fresh process (JAX would reuse an executable compiled earlier in
the same process); the two generators alternate, so machine drift hits both.
Run from the repository root::

    .venv/bin/python benchmarks/cpu_emitters.py [--sizes two-group,medium,large,huge]
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent / "src"))

OPTION = {"xla_cpu_use_fusion_emitters": False}
#: rows per group simulated for the huge size (its statistics have the same shapes)
HUGE_ROWS = 20


def _model(size_name: str):
    import groupcov
    from _sizes import SIZES
    from groupcov.datasets import simulate_groups, two_groups

    size = SIZES[size_name]
    if size_name == "two-group":
        sim = two_groups()
    else:
        rows = HUGE_ROWS if size_name == "huge" else size.rows
        sim = simulate_groups(size.groups, rows, size.features, seed=1)
    return groupcov.GroupCovModel(sim.data, group="group", features=sim.features)


def _worker(size_name: str, label: str) -> dict:
    os.environ["GROUPCOV_CACHE_DIR"] = ""
    importlib.import_module("groupcov")  # sets XLA's CPU device count before JAX starts
    import jax
    import jax.numpy as jnp
    import numpy as np

    from groupcov.inference.backends import SamplerSettings
    from groupcov.inference.jax_backend import chain_keys, density_chain_program
    from groupcov.model.density import log_density_and_outputs, parameter_shapes

    jax.config.update("jax_enable_x64", True)
    gcm = _model(size_name)
    spec = gcm._density_spec()
    shapes = parameter_shapes(spec)
    names = list(shapes)
    bounds = np.cumsum([int(np.prod(s)) for s in shapes.values()])[:-1].tolist()
    dim = sum(int(np.prod(s)) for s in shapes.values())
    data_names = sorted(gcm._values)
    data = tuple(np.asarray(gcm._values[n]) for n in data_names)

    def potential(x, data):
        params = {n: q.reshape(s) for n, q, s in
                  zip(names, jnp.split(x, bounds), shapes.values(), strict=True)}
        return log_density_and_outputs(params, dict(zip(data_names, data, strict=True)),
                                       spec).logp

    gradient = jax.value_and_grad(potential)

    def loop(x, data):
        return jax.lax.fori_loop(0, 500, lambda i, c: c + 1e-9 * gradient(c, data)[1], x)

    def compiled(lowered, options):
        start = time.perf_counter()
        fn = lowered.compile(compiler_options=options) if options else lowered.compile()
        return fn, time.perf_counter() - start

    options = OPTION if label == "elemental" else None
    out: dict = {"size": size_name, "label": label, "dim": dim}
    x0 = jnp.zeros(dim)
    fn, seconds = compiled(jax.jit(loop).lower(x0, data), options)
    jax.block_until_ready(fn(x0, data))
    start = time.perf_counter()
    jax.block_until_ready(fn(x0, data))
    out["grad"] = {"compile_s": seconds, "ms": (time.perf_counter() - start) / 500 * 1e3}
    point = jax.random.uniform(jax.random.PRNGKey(3), (dim,), "float64", -1.0, 1.0)
    lowered = jax.jit(gradient).lower(point, data)
    grads = [np.asarray(compiled(lowered, o)[0](point, data)[1]) for o in (None, OPTION)]
    a, b = grads
    out["max_rel_diff"] = float(np.max(np.abs(a - b) / np.maximum(np.abs(a), 1e-300)))

    if size_name != "huge":
        settings = SamplerSettings(
            draws=1000, tune=1000, chains=4, random_seed=0, progressbar=False,
            target_accept=gcm.default_target_accept(), var_names=None, thin=1,
        )
        program = density_chain_program(
            spec, gcm._values, settings, {"algorithm": gcm.default_algorithm()}
        )
        args = tuple(np.asarray(gcm._values[n], dtype=t)
                     for n, t in zip(program.data_names, program.data_dtypes, strict=True))
        keys = chain_keys(1, 4)
        mapped = jax.pmap(program.chain, in_axes=(0, None))
        fn, seconds = compiled(mapped.lower(keys, args), options)
        start = time.perf_counter()
        trace = jax.block_until_ready(fn(keys, args))
        out["sampler"] = {
            "compile_s": seconds, "sampling_s": time.perf_counter() - start,
            "steps_per_draw": float(np.asarray(trace[2]).mean()),
        }
    return out


LABELS = ("fusion emitters", "elemental")


def _table(results: list[dict]) -> str:
    """Mean over rounds per size and generator (min - max in parentheses)."""

    def cell(rows, part, key, digits):
        values = [r[part][key] for r in rows if part in r]
        if not values:
            return "—"
        text = f"{sum(values) / len(values):.{digits}f}"
        if len(values) > 1:
            text += f" ({min(values):.{digits}f} to {max(values):.{digits}f})"
        return text

    lines = [
        "| size | code generator | gradient compile s | ms per gradient | "
        "sampler compile s | sampling s |",
        "| :-- | :-- | --: | --: | --: | --: |",
    ]
    for size in dict.fromkeys(r["size"] for r in results):
        for label in LABELS:
            rows = [r for r in results if r["size"] == size and r["label"] == label]
            lines.append(
                f"| {size} | {label} | {cell(rows, 'grad', 'compile_s', 2)} | "
                f"{cell(rows, 'grad', 'ms', 3)} | {cell(rows, 'sampler', 'compile_s', 2)} | "
                f"{cell(rows, 'sampler', 'sampling_s', 2)} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="two-group,medium,large,huge")
    parser.add_argument("--rounds", type=int, default=2,
                        help="processes per size and generator, alternating")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--label", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(_worker(args.worker, args.label)))
        return
    results = []
    for name in args.sizes.split(","):
        for round_ in range(args.rounds):
            # alternate which generator goes first
            for label in LABELS if round_ % 2 == 0 else LABELS[::-1]:
                proc = subprocess.run(
                    [sys.executable, __file__, "--worker", name, "--label", label],
                    capture_output=True, text=True, check=False,
                )
                if proc.returncode != 0:
                    print(f"{name}, {label}: failed\n{proc.stderr[-2000:]}", file=sys.stderr)
                    continue
                result = json.loads(proc.stdout.strip().splitlines()[-1])
                print(json.dumps(result), flush=True)
                results.append(result)
    print(_table(results))
    print("max relative difference of the two generators' gradients: " + ", ".join(
        f"{size} {max(r['max_rel_diff'] for r in results if r['size'] == size):.1e}"
        for size in dict.fromkeys(r["size"] for r in results)))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
