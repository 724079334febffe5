"""NUTS in JAX (NumPyro) on a PyMC model, compiled end to end.

The model's log density and its deterministics are translated to JAX once; the whole
sampler, warm-up included, runs inside one ``jax.jit`` with the chains vectorized, so
the only compilation is XLA's (on the GPU when JAX sees one).
"""

from __future__ import annotations

import os
import time
import weakref
from typing import Any, NamedTuple

import numpy as np

from groupcov.inference.backends import (
    SamplerOutput,
    SamplerSettings,
    initial_points,
    missing_backend,
)

__all__ = ["sample_numpyro"]


def enable_compilation_cache() -> None:
    """Use JAX's persistent compilation cache (``GROUPCOV_CACHE_DIR`` or ~/.cache)."""
    import jax

    path = os.environ.get(
        "GROUPCOV_CACHE_DIR", os.path.join(os.path.expanduser("~"), ".cache", "groupcov", "jax")
    )
    try:
        os.makedirs(path, exist_ok=True)
        jax.config.update("jax_compilation_cache_dir", path)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    except (OSError, AttributeError):  # read-only home or an older JAX: no cache
        pass


def _jax_function(model, var_names=None):
    """One JAX function: (unconstrained values, data) -> [logp, *constrained variables].

    The model's data containers are inputs, not constants, so one compiled sampler
    serves every data set of the same shapes. ``var_names`` limits the outputs.
    """
    from pymc.sampling.jax import get_jaxified_graph
    from pytensor.graph.replace import graph_replace

    outputs = model.unobserved_value_vars
    if var_names is not None:
        outputs = [v for v in outputs if v.name in set(var_names)]
    data_vars = list(model.data_vars)
    data_inputs = [v.type() for v in data_vars]
    for var, inp in zip(data_vars, data_inputs, strict=True):
        inp.name = var.name
    graph = graph_replace(
        [model.logp(), *outputs], dict(zip(data_vars, data_inputs, strict=True)), strict=False
    )
    fn = get_jaxified_graph(inputs=[*model.value_vars, *data_inputs], outputs=graph)
    return model.value_vars, data_vars, fn, outputs


def _map_chains(fn, chains: int):
    """``pmap`` over CPU devices when there are enough of them, else ``vmap`` + ``jit``.

    ``fn(key, params, data)``: keys and parameters are per chain, data are shared.
    """
    import jax

    if jax.default_backend() == "cpu" and jax.local_device_count() >= chains > 1:
        return jax.pmap(fn, in_axes=(0, 0, None))
    return jax.jit(jax.vmap(fn, in_axes=(0, 0, None)))


class _Compiled(NamedTuple):
    names: list
    data_vars: list
    outputs: list
    run: Any


# compiled samplers per model, keyed by what fixes the traced program
_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _structure_key(model, settings: SamplerSettings, kwargs: dict) -> tuple:
    return (
        tuple(model.named_vars),
        tuple(str(v.type) for v in model.value_vars),
        settings.draws,
        settings.tune,
        settings.chains,
        settings.target_accept,
        settings.var_names,
        settings.thin,
        tuple(sorted((k, repr(v)) for k, v in kwargs.items())),
    )


def _compile(model, settings: SamplerSettings, kwargs: dict) -> _Compiled:
    import jax
    from numpyro.infer.hmc import hmc

    value_vars, data_vars, fn, outputs = _jax_function(model, settings.var_names)
    names = [v.name for v in value_vars]

    def run_chain(key, params, data):
        def potential(params):
            return -fn(*[params[n] for n in names], *data)[0]

        def constrained(params):
            return fn(*[params[n] for n in names], *data)[1:]

        init_kernel, sample_kernel = hmc(potential_fn=potential, algo="NUTS")
        state = init_kernel(
            params,
            num_warmup=settings.tune,
            target_accept_prob=settings.target_accept,
            rng_key=key,
            **kwargs,
        )

        def warm(state, _):
            return sample_kernel(state), None

        def skipped(_, carry):
            state, diverged, steps = carry
            state = sample_kernel(state)
            return state, diverged | state.diverging, steps + state.num_steps

        def draw(state, _):
            # thinning: divergences and leapfrog steps of skipped iterations still count
            state, diverged, steps = jax.lax.fori_loop(
                0, settings.thin - 1, skipped, (state, False, 0)
            )
            state = sample_kernel(state)
            return state, (
                constrained(state.z), diverged | state.diverging, steps + state.num_steps,
                state.accept_prob, state.energy, state.potential_energy,
            )

        state, _ = jax.lax.scan(warm, state, None, length=settings.tune)
        _, trace = jax.lax.scan(draw, state, None, length=settings.draws)
        return trace

    return _Compiled(names, data_vars, outputs, _map_chains(run_chain, settings.chains))


def sample_numpyro(model, settings: SamplerSettings, **kwargs: Any) -> SamplerOutput:
    """Sample with NumPyro's NUTS; returns constrained draws of every model variable.

    The compiled sampler is kept with the model: sampling the same model again, also
    after new data were put into its containers (same shapes), compiles nothing.
    """
    try:
        import jax
        import jax.numpy as jnp
        import numpyro  # noqa: F401
    except ImportError as err:  # pragma: no cover - exercised without the extra
        raise missing_backend("numpyro", "numpyro") from err

    enable_compilation_cache()
    start = time.perf_counter()
    key = _structure_key(model, settings, kwargs)
    per_model = _CACHE.setdefault(model, {})
    compiled = per_model.get(key)
    if compiled is None:
        compiled = per_model[key] = _compile(model, settings, kwargs)
    chains = settings.chains
    points = initial_points(model, chains, settings.random_seed)
    init = {
        n: jnp.asarray(np.stack([np.asarray(pt[n], dtype="float64") for pt in points]))
        for n in compiled.names
    }
    data = tuple(jnp.asarray(v.get_value(borrow=True)) for v in compiled.data_vars)
    keys = jax.random.split(jax.random.PRNGKey(settings.random_seed), chains)
    values, diverging, num_steps, accept, energy, potential_energy = jax.block_until_ready(
        compiled.run(keys, init, data)
    )
    sampling_time = time.perf_counter() - start
    draws_out = {v.name: np.asarray(x) for v, x in zip(compiled.outputs, values, strict=True)}
    steps = np.asarray(num_steps)
    stats = {
        "diverging": np.asarray(diverging),
        # with thinning: leapfrog steps of the whole block, divergence anywhere in it
        "n_steps": steps,
        "acceptance_rate": np.asarray(accept),
        "energy": np.asarray(energy),
        "lp": -np.asarray(potential_energy),
    }
    if settings.thin == 1:
        stats["tree_depth"] = np.floor(np.log2(steps + 1)).astype(int)
    return SamplerOutput(
        draws_out, stats, {"sampling_time": sampling_time, "tuning_steps": settings.tune}
    )
