"""Cost of one gradient and of one NUTS leapfrog step of groupcov's default model.

Splits the sampler's time per step into the model's part and NUTS's own part, on
whatever device JAX uses (CPU or GPU), for a list of group counts (p = 5, simulated
rows, the hierarchical model with its default parameterization):

- ``grad_1chain_ms``: one log density + gradient, one chain, in a compiled loop (the
  gradient feeds the next iteration, so XLA cannot drop it);
- ``grad_vmap4_ms``: the same for 4 chains batched with ``vmap`` (how chains run on a GPU);
- ``nuts_stdnormal``: NumPyro's NUTS, 4 chains under ``vmap``, on a standard normal of
  the model's dimension (fixed step size 1.2 d^-1/4, no adaptation): NUTS's own cost per
  leapfrog step, counted on the longest chain, since batched chains wait for it;
- ``nuts_model``: the same on the model, from its initial point (step size half that).

The model is the JAX log density :meth:`GroupCovModel.fit` samples
(``--source density``, default) or the PyMC model translated to JAX (``--source pymc``,
what a user-extended model samples).

Run from the repository root::

    python benchmarks/step_cost.py --groups 200,10000

Prints one JSON line per finished measurement (and writes the last to ``--json``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent / "src"))


def _timed(fn, *args) -> float:
    """Seconds of the second call (the first compiles)."""
    import jax

    jax.block_until_ready(fn(*args))
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    return time.perf_counter() - start


def _nuts_cost(potential, init, step_size: float, transitions: int) -> dict[str, Any]:
    """NUTS transitions of 4 vmapped chains at a fixed step size: time and steps."""
    import jax
    import numpy as np
    from numpyro.infer.hmc import hmc

    def chain(key, z):
        init_kernel, sample_kernel = hmc(potential_fn=potential, algo="NUTS")
        state = init_kernel(
            z, num_warmup=0, step_size=step_size, adapt_step_size=False,
            adapt_mass_matrix=False, rng_key=key,
        )  # fmt: skip

        def body(_, carry):
            state, total = carry
            state = sample_kernel(state)
            return state, total + state.num_steps

        return jax.lax.fori_loop(0, transitions, body, (state, 0))[1]

    keys = jax.random.split(jax.random.PRNGKey(0), 4)
    run = jax.jit(jax.vmap(chain))
    jax.block_until_ready(run(keys, init))
    start = time.perf_counter()
    steps = np.asarray(jax.block_until_ready(run(keys, init)))
    seconds = time.perf_counter() - start
    return {
        "s": seconds,
        "steps": steps.tolist(),
        "ms_per_step_of_max_chain": seconds / steps.max() * 1e3,
    }


def measure(
    groups: int, rows: int, reps: int, out: dict[str, Any], report, source: str = "density"
) -> None:
    import jax
    import jax.numpy as jnp
    import numpy as np

    import groupcov
    from _sizes import Size, simulate_arrays

    truth, idx, x = simulate_arrays(Size("step-cost", groups, rows, 5), seed=0)
    stats = groupcov.reduce(x, group=idx, features=truth["features"])
    gm = groupcov.GroupCovModel(stats, group="group")
    if source == "density":  # what fit() samples
        from groupcov.model.density import log_density_and_outputs, parameter_shapes

        spec = gm._density_spec()
        values = {k: jnp.asarray(v) for k, v in gm._values.items()}
        p1 = {n: jnp.zeros(s) for n, s in parameter_shapes(spec).items()}

        def logp(p):
            return log_density_and_outputs(p, values, spec)[0]
    else:  # the PyMC model translated to JAX (what an extended model samples)
        from groupcov.inference.jax_backend import _jax_function

        model = gm.model
        value_vars, data_vars, fn, _ = _jax_function(model)
        names = [v.name for v in value_vars]
        data = tuple(jnp.asarray(v.get_value()) for v in data_vars)
        start = model.initial_point()
        p1 = {n: jnp.asarray(start[n], dtype="float64") for n in names}

        def logp(p):
            return fn(*[p[n] for n in names], *data)[0]

    dim = int(sum(np.size(v) for v in p1.values()))
    out["dim"] = dim

    def loop(p):
        def body(_, c):
            _, g = jax.value_and_grad(logp)(c)
            return jax.tree.map(lambda a, b: a + 1e-12 * b, c, g)

        return jax.lax.fori_loop(0, reps, body, p)

    out["grad_1chain_ms"] = _timed(jax.jit(loop), p1) / reps * 1e3
    p4 = jax.tree.map(lambda a: jnp.stack([a] * 4), p1)
    out["grad_vmap4_ms"] = _timed(jax.jit(jax.vmap(loop)), p4) / reps * 1e3
    report()
    step = 1.2 * dim**-0.25
    zeros = jax.tree.map(jnp.zeros_like, p4)

    def std_normal(p):
        return 0.5 * sum(jnp.sum(v**2) for v in jax.tree.leaves(p))

    out["nuts_stdnormal"] = _nuts_cost(std_normal, zeros, step, 10)
    report()
    out["nuts_model"] = _nuts_cost(lambda p: -logp(p), p4, 0.5 * step, 6)
    report()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--groups", default="200,10000", help="comma-separated group counts")
    p.add_argument("--rows", type=int, default=1_000, help="rows per group")
    p.add_argument("--reps", type=int, default=300, help="gradients per timed loop")
    p.add_argument("--json", metavar="PATH")
    p.add_argument(
        "--source", choices=("density", "pymc"), default="density",
        help="the model's JAX log density (what fit() samples) or the PyMC model translated",
    )
    args = p.parse_args(argv)

    import groupcov  # noqa: F401  (sets JAX and PyTensor flags before they load)

    # isort: split
    import jax

    jax.config.update("jax_enable_x64", True)
    result: dict[str, Any] = {
        "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        "source": args.source,
    }

    def report() -> None:
        text = json.dumps(result)
        print(text, flush=True)
        if args.json:
            Path(args.json).write_text(text)

    rc = 0
    for groups in (int(g) for g in args.groups.split(",")):
        out = result[f"G{groups}"] = {}
        try:
            measure(groups, args.rows, args.reps, out, report, args.source)
        except Exception:  # the report says what failed, the next size still runs
            out["error"] = traceback.format_exc().splitlines()[-6:]
            report()
            rc = 1
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
