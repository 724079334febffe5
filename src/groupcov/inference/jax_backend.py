"""NUTS in JAX (NumPyro) on a PyMC model, compiled end to end.

The model's log density and its deterministics are translated to JAX once; the whole
sampler, warm-up included, runs inside one ``jax.jit`` with the chains vectorized, so
the only compilation is XLA's (on the GPU when JAX sees one).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import weakref
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from groupcov.inference.backends import SamplerOutput, SamplerSettings, missing_backend

__all__ = ["sample_numpyro"]


def cache_dir() -> str | None:
    """Where compiled programs are kept: ``GROUPCOV_CACHE_DIR`` or ~/.cache/groupcov.

    Setting ``GROUPCOV_CACHE_DIR`` to an empty string disables the caches.
    """
    path = os.environ.get(
        "GROUPCOV_CACHE_DIR", os.path.join(os.path.expanduser("~"), ".cache", "groupcov")
    )
    return path or None


def cache_limit_bytes() -> int:
    """Size bound of each cache (JAX's executables; saved programs), least recently used
    entries going first: ``GROUPCOV_CACHE_MAX_MB`` (default 1024)."""
    try:
        megabytes = float(os.environ.get("GROUPCOV_CACHE_MAX_MB", "1024"))
    except ValueError:
        megabytes = 1024.0
    return int(max(megabytes, 0.0) * 2**20)


def enable_compilation_cache() -> None:
    """Use JAX's persistent compilation cache (under :func:`cache_dir`); the first call
    in a process trims it to :func:`cache_limit_bytes`, least recently used first.

    (JAX's own size limit is not used: it needs a companion file per entry that caches
    written without it lack, and then refuses to write new entries.)
    """
    import jax

    base = cache_dir()
    if base is None:
        return
    path = os.path.join(base, "jax")
    try:
        os.makedirs(path, exist_ok=True)
        jax.config.update("jax_compilation_cache_dir", path)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    except (OSError, AttributeError):  # read-only home or an older JAX: no cache
        return
    if path not in _PRUNED:
        _PRUNED.add(path)
        prune_cache(path, companions=_jax_companions)


_PRUNED: set[str] = set()


def _program_companions(path: str) -> list[str]:
    return [path + ".json"]


def _jax_companions(path: str) -> list[str]:
    # JAX's entries are "<key>-cache", with "<key>-atime" when its own limit is on
    return [path.removesuffix("-cache") + "-atime"]


def prune_cache(
    directory: str,
    limit: int | None = None,
    companions: Callable[[str], list[str]] = _program_companions,
) -> list[str]:
    """Delete the least recently used entries until ``directory`` holds at most ``limit``
    bytes (default :func:`cache_limit_bytes`); an entry's companion files (metadata) go
    first and count toward its size. Recency is the later of the access and modification
    times. Returns the removed entries' paths."""
    limit = cache_limit_bytes() if limit is None else limit
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    paths = [os.path.join(directory, n) for n in names]
    side = {c for p in paths for c in companions(p) if c != p}
    entries = []
    for path in paths:
        if path in side or path.endswith(".tmp"):
            continue
        try:
            stat = os.stat(path)
        except OSError:
            continue
        size = stat.st_size
        for extra in companions(path):
            with contextlib.suppress(OSError):
                size += os.path.getsize(extra)
        entries.append((max(stat.st_atime, stat.st_mtime), size, path))
    total = sum(size for _, size, _ in entries)
    removed = []
    for _, size, path in sorted(entries):
        if total <= limit:
            break
        for victim in [*companions(path), path]:  # metadata first: no half-entry looks valid
            with contextlib.suppress(OSError):
                os.remove(victim)
        total -= size
        removed.append(path)
    return removed


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


def chain_mapping(chains: int) -> str:
    """How chains run side by side: ``"pmap"`` (one CPU device per chain, when there
    are enough) or ``"vmap"`` (batched on one device; always on a GPU)."""
    import jax

    if jax.default_backend() == "cpu" and jax.local_device_count() >= chains > 1:
        return "pmap"
    return "vmap"


def _map_chains(fn, chains: int, mapping: str | None = None):
    """``fn(key, data)`` over per-chain keys with shared data: ``pmap`` or ``jit(vmap)``."""
    import jax

    if (mapping or chain_mapping(chains)) == "pmap":
        return CompiledOnFirstCall(jax.pmap(fn, in_axes=(0, None)))
    return CompiledOnFirstCall(jax.jit(jax.vmap(fn, in_axes=(0, None))))


def release_free_heap() -> None:
    """Hand the C heap's free pages back to the system (glibc's ``malloc_trim``;
    nothing elsewhere).

    XLA's compiler allocates hundreds of megabytes for a large program and frees them
    when done, but the allocator keeps the pages: without this they stay in the
    process's resident memory under everything the sampler allocates afterwards.
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        trim = ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        trim = None
    if trim is not None:
        trim(0)


#: XLA:CPU options of the samplers' programs: fused loops through XLA's elemental code
#: generator instead of its newer fusion emitters. The same values to rounding; a fifth
#: less compile time for the two-group sampler and a gradient 2.5 times as fast at
#: 10,000 groups, other sizes within the noise (``benchmarks/cpu_emitters.py``).
CPU_COMPILER_OPTIONS = {"xla_cpu_use_fusion_emitters": False}


def compiler_options() -> dict | None:
    """Per-program XLA options of the samplers: :data:`CPU_COMPILER_OPTIONS` on the CPU,
    none elsewhere, and none that ``XLA_FLAGS`` sets itself (the user's choice wins)."""
    import jax

    if jax.default_backend() != "cpu":
        return None
    flags = os.environ.get("XLA_FLAGS", "")
    options = {k: v for k, v in CPU_COMPILER_OPTIONS.items() if k not in flags}
    return options or None


def compile_lowered(lowered):
    """``lowered.compile()`` with :func:`compiler_options`; a jaxlib whose XLA does not
    know an option compiles without them."""
    options = compiler_options()
    if options:
        try:
            return lowered.compile(compiler_options=options)
        except Exception as err:  # XLA's error type varies by release
            if "compile option" not in str(err):
                raise
    return lowered.compile()


class CompiledOnFirstCall:
    """A mapped chain function compiled ahead of its first call.

    Compiling explicitly (``lower(...).compile()``) separates XLA's compilation from the
    sampling, so the memory the compiler used is released (:func:`release_free_heap`)
    before the sampler allocates its own; later calls with arguments of the same shapes
    and dtypes reuse the executable. JAX's persistent compilation cache serves the
    compilation as it does a plain call.
    """

    def __init__(self, fn: Callable) -> None:
        self.fn = fn
        self._compiled: dict = {}

    def __call__(self, keys, data):
        import jax

        signature = jax.tree_util.tree_map(lambda a: (np.shape(a), np.result_type(a)), (keys, data))
        key = str(signature)
        compiled = self._compiled.get(key)
        if compiled is None:
            compiled = self._compiled[key] = compile_lowered(self.fn.lower(keys, data))
            release_free_heap()
        return compiled(keys, data)


def _initial_point_function(model, data_vars):
    """JAX function: data -> each free variable's support point, unconstrained."""
    from pymc.initial_point import make_initial_point_expression
    from pymc.sampling.jax import get_jaxified_graph
    from pytensor.graph.replace import graph_replace
    from pytensor.graph.rewriting.utils import rewrite_graph

    exprs = make_initial_point_expression(
        free_rvs=model.free_RVs,
        rvs_to_transforms=model.rvs_to_transforms,
        initval_strategies=model.rvs_to_initial_values,
        jitter_rvs=set(),
        default_strategy="support_point",
        return_transformed=True,
    )
    inputs = [v.type() for v in data_vars]
    exprs = graph_replace(exprs, dict(zip(data_vars, inputs, strict=True)), strict=False)
    # shape inference first: support points may be written in terms of a variable's
    # shape, which must not keep its random generator in the graph
    exprs = rewrite_graph(exprs, include=("canonicalize", "ShapeOpt"))
    return get_jaxified_graph(inputs=inputs, outputs=exprs)


class ChainProgram(NamedTuple):
    """One chain of NUTS as a pure JAX function ``chain(key, data) -> trace``.

    Attributes
    ----------
    chain : callable
        Warm-up and draws of one chain from the support point plus uniform(-1, 1)
        jitter on the unconstrained scale; ``data`` is a tuple in ``data_names`` order.
    data_names, data_dtypes : list of str
        The model's data containers, in argument order.
    outputs : list of (name, dims)
        Posterior variables the trace holds, in order, with their dims.
    """

    chain: Any
    data_names: list
    data_dtypes: list
    outputs: list


def chain_program(model, settings: SamplerSettings, kwargs: dict) -> ChainProgram:
    """Translate a PyMC model to a :class:`ChainProgram` (no compilation yet)."""
    value_vars, data_vars, fn, outputs = _jax_function(model, settings.var_names)
    init_fn = _initial_point_function(model, data_vars)
    names = [v.name for v in value_vars]

    def evaluate(params, data):
        out = fn(*[params[n] for n in names], *data)
        return out[0], out[1:]

    def initial_point(data):
        return dict(zip(names, init_fn(*data), strict=True))

    dims = model.named_vars_to_dims
    return ChainProgram(
        nuts_chain(evaluate, initial_point, settings, kwargs),
        [v.name for v in data_vars],
        [str(v.type.dtype) for v in data_vars],
        [(v.name, list(dims.get(v.name, ()))) for v in outputs],
    )


#: Name of the per-group log-likelihood in a trace (not a model variable).
LOG_LIKELIHOOD = "__group_log_likelihood__"
#: Name of the log density among a thinned fit's running moments.
LOG_DENSITY = "__lp__"


def density_chain_program(
    spec, values: dict, settings: SamplerSettings, kwargs: dict
) -> ChainProgram:
    """A :class:`ChainProgram` of the default model's JAX log density
    (:mod:`groupcov.model.density`): neither PyMC nor PyTensor is involved.

    Besides the posterior variables the trace holds each group's log-likelihood per
    draw (output ``LOG_LIKELIHOOD``), computed by the sampler's own program, whenever
    ``mu`` and the covariances are kept. ``values`` are the model's data containers
    (only their names and dtypes are used).
    """
    import jax.numpy as jnp

    from groupcov.model.density import (
        log_density_and_outputs,
        output_dims,
        parameter_shapes,
    )
    from groupcov.model.inputs import GROUP

    data_names = sorted(values)
    outputs = output_dims(spec)
    kept = {name for name, _ in outputs}
    if settings.var_names is not None:
        kept &= set(settings.var_names)
    keep = [i for i, (name, _) in enumerate(outputs) if name in kept]
    with_loglik = "mu" in kept and ("cov" in kept or {"sigma", "corr"} <= kept)
    shapes = parameter_shapes(spec)

    def evaluate(params, data):
        named = dict(zip(data_names, data, strict=True))
        logp, out, group_loglik = log_density_and_outputs(params, named, spec)
        out = [out[i] for i in keep]
        return logp, [*out, group_loglik] if with_loglik else out

    def initial_point(data):
        # every coordinate is centred where the data put the parameter
        return {name: jnp.zeros(shape) for name, shape in shapes.items()}

    names = [outputs[i] for i in keep]
    if with_loglik:
        names.append((LOG_LIKELIHOOD, [GROUP]))
    return ChainProgram(
        nuts_chain(evaluate, initial_point, settings, kwargs),
        data_names,
        [str(np.asarray(values[n]).dtype) for n in data_names],
        names,
    )


#: Algorithms of the draws: NUTS throughout, or HMC with a U-turn warm-up start and
#: jittered trajectory lengths (:mod:`groupcov.inference.jittered`).
ALGORITHMS = ("nuts", "jittered")


def nuts_chain(evaluate, initial_point, settings: SamplerSettings, kwargs: dict):
    """``chain(key, data) -> trace``: warm-up and draws of one chain (NUTS or jittered HMC).

    ``evaluate(params, data) -> (logp, outputs)`` and ``initial_point(data) -> params``;
    the chain starts at the initial point plus uniform(-1, 1) jitter.

    ``kwargs["algorithm"]`` (one of :data:`ALGORITHMS`, default ``"nuts"``) chooses how
    the draws are made: NUTS throughout, or ``"jittered"``: HMC whose warm-up
    trajectories run to their first U-turn and whose later ones have jittered lengths
    (:mod:`groupcov.inference.jittered`; NUTS where the warm-up is too short to learn a
    length, :func:`~groupcov.inference.jittered.jittered_switch`). Where the posterior is
    close to Gaussian (groups with many rows) this takes less than half of NUTS's
    leapfrog steps: NUTS doubles its trajectory until it turns around (31 steps in 4,000
    dimensions, where about 10 already give a nearly independent draw).
    """
    import jax
    import jax.numpy as jnp
    from numpyro.infer.hmc import hmc
    from numpyro.infer.util import ParamInfo

    from groupcov.inference.jittered import jittered_chain_kernel, jittered_switch

    jax.config.update("jax_enable_x64", True)
    kwargs = dict(kwargs)
    algorithm = kwargs.pop("algorithm", "nuts")
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {list(ALGORITHMS)}, got {algorithm!r}")
    switch = jittered_switch(settings.tune) if algorithm == "jittered" else None

    def chain(key, data):
        init_key, key = jax.random.split(key)
        start = initial_point(data)
        # NUTS works on one flat vector: every operation of its own (momentum, position,
        # U-turn checks, adaptation) is then one array operation instead of one per
        # parameter, which halves what XLA compiles for small models and trims each step
        names = list(start)
        shapes = [jnp.shape(start[n]) for n in names]
        bounds = np.cumsum([int(np.prod(s)) for s in shapes])[:-1].tolist()
        flat = jnp.concatenate([jnp.ravel(jnp.asarray(start[n], "float64")) for n in names])
        flat = flat + jax.random.uniform(init_key, flat.shape, "float64", -1.0, 1.0)

        def unflatten(x):
            # one split (its gradient is one concatenation; a slice per parameter would
            # cost a pad and an add each)
            parts = jnp.split(x, bounds) if bounds else [x]
            return {n: q.reshape(s) for n, q, s in zip(names, parts, shapes, strict=True)}

        def potential(x):
            return -evaluate(unflatten(x), data)[0]

        def constrained(x):
            return evaluate(unflatten(x), data)[1]

        draws, thin, tune = settings.draws, settings.thin, settings.tune
        if switch is not None:
            state, kernel = jittered_chain_kernel(
                potential, flat, potential(flat), key, tune, settings.target_accept, switch,
                kwargs,
            )
        else:
            init_kernel, kernel = hmc(potential_fn=potential, algo="NUTS")
            # the start's gradient only enters the first warm-up trajectory's first
            # half-step; without it XLA compiles the gradient once (in the tree
            # builder) instead of twice: a tenth to a fifth of a small model's compile
            start_info = ParamInfo(flat, potential(flat), jnp.zeros_like(flat))
            state = init_kernel(
                start_info, num_warmup=tune, target_accept_prob=settings.target_accept,
                rng_key=key, **kwargs,
            )

        # thinned draws: every draw, kept or not, enters running moments of the outputs
        # and of the log density
        stream = thin > 1
        moments = (
            _empty_moments([*jax.eval_shape(constrained, flat), jnp.zeros(())])
            if stream else ()
        )

        def transitions(state, moments, n, first):
            # n transitions in one loop, so XLA compiles the kernel once; the last
            # `thin` of them count toward the kept draw (divergence anywhere, leapfrog
            # steps summed), earlier ones (warm-up, in the first block) toward none;
            # `first` is the index of the block's first draw after warm-up
            def body(carry):
                k, state, diverged, steps, moments = carry
                state = kernel(state)
                counted = k >= n - thin
                diverged = diverged | (counted & state.diverging)
                steps = steps + jnp.where(counted, state.num_steps, 0)
                if stream:
                    moments = jax.lax.cond(
                        counted,
                        lambda m: _add_draw(
                            m, [*constrained(state.z), -state.potential_energy],
                            first + k - (n - thin), draws * thin,
                        ),
                        lambda m: m,
                        moments,
                    )
                return k + 1, state, diverged, steps, moments

            init = (0, state, state.diverging & False, state.num_steps * 0, moments)
            _, state, diverged, steps, moments = jax.lax.while_loop(
                lambda c: c[0] < n, body, init
            )
            return state, diverged, steps, moments

        def draw(carry, index):
            state, moments = carry
            # the first block also runs the warm-up
            n = jnp.where(index == 0, tune + thin, thin)
            state, diverged, steps, moments = transitions(state, moments, n, index * thin)
            return (state, moments), (
                constrained(state.z), diverged, steps, state.accept_prob, state.energy,
                state.potential_energy,
            )

        (_, moments), trace = jax.lax.scan(draw, (state, moments), jnp.arange(draws))
        return (*trace, moments) if stream else trace

    return chain


def _empty_moments(shapes) -> list:
    """Running moments of each output: ``(mean, m2)``, each ``(2, *shape)`` for the
    first and second half of a chain's draws (split R-hat's halves)."""
    import jax.numpy as jnp

    return [
        (jnp.zeros((2, *s.shape), "float64"), jnp.zeros((2, *s.shape), "float64"))
        for s in shapes
    ]


def _add_draw(moments: list, values, t, total: int) -> list:
    """Welford's update of the running moments with the ``t``-th of ``total`` draws.

    Draw ``t`` goes to the first half when ``t < total // 2``, to the second when
    ``t >= total - total // 2``; the middle draw of an odd ``total`` to neither, as
    split R-hat drops it.
    """
    import jax.numpy as jnp

    half = total // 2
    second = t >= total - half
    inside = (t < half) | second
    h = jnp.where(second, 1, 0)
    count = jnp.where(second, t - (total - half), t) + 1.0
    out = []
    for (mean, m2), x in zip(moments, values, strict=True):
        x = jnp.asarray(x, "float64")
        delta = x - mean[h]
        new_mean = mean[h] + delta / count
        new_m2 = m2[h] + delta * (x - new_mean)
        out.append((
            jnp.where(inside, mean.at[h].set(new_mean), mean),
            jnp.where(inside, m2.at[h].set(new_m2), m2),
        ))
    return out


class Program(NamedTuple):
    """A compiled sampler: ``run(keys, data)`` samples every chain."""

    data_names: list
    data_dtypes: list
    outputs: list
    run: Any


def compile_program(
    program: ChainProgram, chains: int, export_to: str | None = None, example_data=None
) -> Program:
    """Compile a chain program for ``chains`` chains; optionally save it for later processes.

    With ``export_to``, the program is exported (``jax.export``) and written there with
    its metadata, so :func:`load_program` in a new process skips the PyMC-to-JAX
    translation and tracing; XLA's own compilation is then served by JAX's persistent
    cache. ``example_data`` (the data tuple) fixes the exported shapes.
    """
    mapping = chain_mapping(chains)
    run = _map_chains(program.chain, chains, mapping)
    if export_to is not None and example_data is not None:
        # an optional cache must never break sampling: on failure keep the plain program
        with contextlib.suppress(Exception):
            run = _export(program, chains, mapping, export_to, example_data)
    return Program(program.data_names, program.data_dtypes, program.outputs, run)


def _shape_specs(program: ChainProgram, data: tuple, chains: int | None = None):
    import jax

    # shape and dtype only: making a key would compile a small XLA program
    key = jax.eval_shape(jax.random.PRNGKey, 0)
    key_shape = key.shape if chains is None else (chains, *key.shape)
    return (
        jax.ShapeDtypeStruct(key_shape, key.dtype),
        tuple(jax.ShapeDtypeStruct(np.shape(d), np.dtype(t))
              for d, t in zip(data, program.data_dtypes, strict=True)),
    )


def _export(program: ChainProgram, chains: int, mapping: str, path: str, data: tuple):
    """Export the program and write it to ``path``; returns the callable over all chains.

    With ``vmap`` the batched program itself is exported (an exported function has no
    batching rule); with ``pmap`` one chain is exported and mapped over devices when
    called, so the entry needs as many devices in the process that loads it.
    """
    import jax
    from jax import export

    if mapping == "vmap":
        fn = jax.jit(jax.vmap(program.chain, in_axes=(0, None)))
        exported = export.export(fn)(*_shape_specs(program, data, chains))
    else:
        exported = export.export(jax.jit(program.chain))(*_shape_specs(program, data))
    blob = exported.serialize()
    meta = {
        "format": 2,
        "mapping": mapping,
        "chains": chains,
        "platforms": list(exported.platforms),
        "data_names": program.data_names,
        "data_dtypes": program.data_dtypes,
        "outputs": program.outputs,
    }
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "wb") as f:
        f.write(blob)
    with open(tmp + ".json", "w") as f:
        json.dump(meta, f)
    os.replace(tmp + ".json", path + ".json")
    os.replace(tmp, path)
    prune_cache(os.path.dirname(path))
    return _loaded_run(exported, chains, mapping)


def _loaded_run(exported, chains: int, mapping: str):
    import jax

    if mapping == "vmap":
        return CompiledOnFirstCall(jax.jit(exported.call))
    return _map_chains(exported.call, chains, "pmap")


def load_program(path: str, chains: int) -> Program | None:
    """A program saved by :func:`compile_program`, or None if absent, unreadable, or
    made for another way of running the chains or another platform (then it is a
    cache miss and gets rewritten)."""
    try:
        import jax
        from jax import export

        with open(path + ".json") as f:
            meta = json.load(f)
        if meta.get("format") != 2 or meta.get("chains") != chains:
            return None
        if meta.get("mapping") != chain_mapping(chains):
            return None
        if jax.default_backend() not in meta.get("platforms", []):
            return None
        with open(path, "rb") as f:
            blob = f.read()
        os.utime(path)  # recently used: pruned last
        exported = export.deserialize(bytearray(blob))
        run = _loaded_run(exported, chains, meta["mapping"])
    except Exception:  # a stale or partial cache entry is just a miss
        return None
    outputs = [(name, list(dims)) for name, dims in meta["outputs"]]
    return Program(meta["data_names"], meta["data_dtypes"], outputs, run)


def chain_keys(seed: int, chains: int) -> np.ndarray:
    """Independent raw PRNG keys ``(chains, 2)`` (uint32) from one seed.

    Made with NumPy's ``SeedSequence``, not ``jax.random``: in a process that loads a
    saved program that saves compiling (or loading) two small XLA programs.
    """
    state = np.random.SeedSequence(seed).generate_state(2 * chains, dtype=np.uint32)
    return state.reshape(chains, 2)


def max_tree_depth(kwargs: dict) -> int:
    """NUTS's maximum tree depth after warm-up from the sampler options (NumPyro's
    ``max_tree_depth``: an int, or a ``(warm-up, sampling)`` pair; default 10)."""
    from groupcov.inference.jittered import tree_depths

    return tree_depths(kwargs)[1]


def run_program(
    program: Program,
    data: dict,
    settings: SamplerSettings,
    max_tree_depth: int = 10,
    algorithm: str = "nuts",
) -> SamplerOutput:
    """Sample with a compiled program on the given data containers' values.

    ``max_tree_depth`` is the program's (NumPyro's default 10): a draw whose tree took
    ``2**max_tree_depth - 1`` leapfrog steps stopped at that depth, not at a U-turn.
    ``algorithm`` is the program's (:func:`nuts_chain`): draws of jittered HMC have no
    tree, hence no tree depth, but a trajectory cut at ``2**max_tree_depth - 1`` steps
    counts as reaching it.
    """
    import jax

    jax.config.update("jax_enable_x64", True)
    start = time.perf_counter()
    # plain NumPy arrays: the mapped program moves them to its devices itself
    args = tuple(
        np.asarray(data[n], dtype=t, order="C")
        for n, t in zip(program.data_names, program.data_dtypes, strict=True)
    )
    keys = chain_keys(settings.random_seed, settings.chains)
    trace = jax.block_until_ready(program.run(keys, args))
    values, diverging, num_steps, accept, energy, potential_energy = trace[:6]
    sampling_time = time.perf_counter() - start
    draws_out = {
        name: np.asarray(x) for (name, _), x in zip(program.outputs, values, strict=True)
    }
    moments = None
    if len(trace) > 6:  # thinned: running moments of all draws, (chain, half, ...)
        names = [name for name, _ in program.outputs] + [LOG_DENSITY]
        moments = {
            name: (np.asarray(mean), np.asarray(m2))
            for name, (mean, m2) in zip(names, trace[6], strict=True)
        }
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
        if algorithm == "nuts":
            stats["tree_depth"] = np.floor(np.log2(steps + 1)).astype(int)
        # jittered HMC: a trajectory cut at the same number of steps
        stats["reached_max_treedepth"] = steps >= 2**max_tree_depth - 1
    attrs = {
        "sampling_time": sampling_time, "tuning_steps": settings.tune, "algorithm": algorithm
    }
    return SamplerOutput(draws_out, stats, attrs, moments)


# compiled samplers per model, keyed by what fixes the traced program
_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _structure_key(model, settings: SamplerSettings, kwargs: dict) -> tuple:
    return (
        tuple(model.named_vars),
        tuple(str(v.type) for v in model.value_vars),
        *program_settings_key(settings, kwargs),
    )


def program_settings_key(settings: SamplerSettings, kwargs: dict) -> tuple:
    """The sampler settings that change the compiled program (not the seed)."""
    return (
        settings.draws,
        settings.tune,
        settings.chains,
        settings.target_accept,
        settings.var_names,
        settings.thin,
        tuple(sorted((k, repr(v)) for k, v in kwargs.items())),
    )


def model_program(
    model, settings: SamplerSettings, kwargs: dict, export_to: str | None = None
) -> Program:
    """The compiled program of ``model``, translated once per model and settings."""
    key = _structure_key(model, settings, kwargs)
    per_model = _CACHE.setdefault(model, {})
    program = per_model.get(key)
    if program is None:
        chain = chain_program(model, settings, kwargs)
        example = tuple(v.get_value(borrow=True) for v in model.data_vars)
        program = per_model[key] = compile_program(chain, settings.chains, export_to, example)
    return program


def sample_numpyro(model, settings: SamplerSettings, **kwargs: Any) -> SamplerOutput:
    """Sample with NumPyro's NUTS; returns constrained draws of every model variable.

    The compiled sampler is kept with the model: sampling the same model again, also
    after new data were put into its containers (same shapes), compiles nothing.
    """
    try:
        import jax  # noqa: F401
        import numpyro  # noqa: F401
    except ImportError as err:  # pragma: no cover - exercised without the extra
        raise missing_backend("numpyro", "numpyro") from err

    enable_compilation_cache()
    start = time.perf_counter()
    export_to = kwargs.pop("_export_to", None)
    program = model_program(model, settings, kwargs, export_to)
    data = {v.name: v.get_value(borrow=True) for v in model.data_vars}
    out = run_program(
        program, data, settings, max_tree_depth(kwargs), kwargs.get("algorithm", "nuts")
    )
    out.attrs["sampling_time"] = time.perf_counter() - start
    return out
