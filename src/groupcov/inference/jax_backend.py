"""NUTS in JAX (NumPyro) on a PyMC model, compiled end to end.

The model's log density and its deterministics are translated to JAX once; the whole
sampler, warm-up included, runs inside one ``jax.jit`` with the chains vectorized, so
the only compilation is XLA's (on the GPU when JAX sees one).
"""

from __future__ import annotations

import os
import time
from typing import Any

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


def _jax_function(model):
    """One JAX function: unconstrained values -> [logp, *constrained variables]."""
    from pymc.sampling.jax import get_jaxified_graph

    outputs = model.unobserved_value_vars
    fn = get_jaxified_graph(inputs=model.value_vars, outputs=[model.logp(), *outputs])
    return model.value_vars, fn, outputs


def _map_chains(fn, chains: int):
    """``pmap`` over CPU devices when there are enough of them, else ``vmap`` + ``jit``."""
    import jax

    if jax.default_backend() == "cpu" and jax.local_device_count() >= chains > 1:
        return jax.pmap(fn)
    return jax.jit(jax.vmap(fn))


def sample_numpyro(model, settings: SamplerSettings, **kwargs: Any) -> SamplerOutput:
    """Sample with NumPyro's NUTS; returns constrained draws of every model variable."""
    try:
        import jax
        import jax.numpy as jnp
        from numpyro.infer.hmc import hmc
    except ImportError as err:  # pragma: no cover - exercised without the extra
        raise missing_backend("numpyro", "numpyro") from err

    enable_compilation_cache()
    start = time.perf_counter()
    value_vars, fn, outputs = _jax_function(model)
    names = [v.name for v in value_vars]

    def potential(params):
        return -fn(*[params[n] for n in names])[0]

    def constrained(params):
        return fn(*[params[n] for n in names])[1:]

    draws, tune, chains = settings.draws, settings.tune, settings.chains
    points = initial_points(model, chains, settings.random_seed)
    init = {
        n: jnp.asarray(np.stack([np.asarray(pt[n], dtype="float64") for pt in points]))
        for n in names
    }
    init_kernel, sample_kernel = hmc(potential_fn=potential, algo="NUTS")

    def run_chain(key, params):
        state = init_kernel(
            params,
            num_warmup=tune,
            target_accept_prob=settings.target_accept,
            rng_key=key,
            **kwargs,
        )

        def warm(state, _):
            return sample_kernel(state), None

        def draw(state, _):
            state = sample_kernel(state)
            return state, (
                constrained(state.z), state.diverging, state.num_steps, state.accept_prob,
                state.energy, state.potential_energy,
            )

        state, _ = jax.lax.scan(warm, state, None, length=tune)
        _, trace = jax.lax.scan(draw, state, None, length=draws)
        return trace

    keys = jax.random.split(jax.random.PRNGKey(settings.random_seed), chains)
    values, diverging, num_steps, accept, energy, potential_energy = jax.block_until_ready(
        _map_chains(run_chain, chains)(keys, init)
    )
    sampling_time = time.perf_counter() - start
    draws_out = {v.name: np.asarray(x) for v, x in zip(outputs, values, strict=True)}
    steps = np.asarray(num_steps)
    stats = {
        "diverging": np.asarray(diverging),
        "n_steps": steps,
        "tree_depth": np.floor(np.log2(steps + 1)).astype(int),
        "acceptance_rate": np.asarray(accept),
        "energy": np.asarray(energy),
        "lp": -np.asarray(potential_energy),
    }
    return SamplerOutput(draws_out, stats, {"sampling_time": sampling_time, "tuning_steps": tune})
