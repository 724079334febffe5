"""Jittered HMC after a U-turn warm-up start, in one leapfrog loop.

Where every group carries much data, the whitened posterior is close to a standard
normal, and there NUTS's cost is the dimension's: its trajectories double until they
turn around, and a tree of 31 leapfrog steps is the rule at 4,000 dimensions. A
trajectory shorter than the first U-turn already gives a nearly independent draw.

The chain therefore runs plain HMC throughout, with NumPyro's warm-up adaptation (dual
averaging of the step size, windowed diagonal or dense mass matrix):

- **U-turn start** (the warm-up up to the switch of :func:`jittered_switch`): each
  trajectory runs until it turns back (``(z - z0) . r < 0``, ``r`` the momentum: the
  distance from its start in the mass matrix's metric stops growing) or reaches
  ``2**max_tree_depth - 1`` steps, and a point chosen uniformly among its steps is
  accepted or rejected as in HMC. The lengths at which trajectories turned, in the
  switch's window, give their mean ``U``. (Empirical HMC's warm-up; Wu, Stoehr and
  Robert, 2018.) Warm-up draws need no exactness, only a chain that moves and adapts,
  and draws from which the mass matrix can be estimated: the end point of a trajectory
  that ran to its turn lies half a period from the start, near ``-z0`` on a Gaussian,
  so end points alternate in sign and keep each coordinate's magnitude, and a window
  of them estimates each variance from about one value.
- **Jittered HMC** (the rest of the warm-up and every draw): each transition draws its
  trajectory length uniformly between the fractions :data:`JITTER_RANGE` of ``U``, a
  fixed distribution of lengths, so each draw is a mixture of HMC kernels, valid for the
  same posterior; the jitter keeps trajectories from resonating with any scale.

Both phases share one leapfrog loop, so XLA compiles the model's gradient once (a NUTS
start followed by HMC compiled it twice, and NUTS's tree bookkeeping besides).
"""

from __future__ import annotations

from typing import Any, NamedTuple

__all__ = ["JITTER_RANGE", "JitteredState", "jittered_chain_kernel", "jittered_switch"]

#: Trajectory lengths of the jittered draws, as fractions of the mean length ``U`` at
#: which the warm-up's trajectories turned around. On a standard normal ``U`` is half a
#: period (pi); a quarter period makes draws independent.
JITTER_RANGE = (0.25, 0.75)

#: The energy error that marks a transition divergent (NumPyro's).
MAX_DELTA_ENERGY = 1000.0

#: NumPyro's warm-up options this kernel takes (besides the target acceptance rate).
OPTIONS = (
    "max_tree_depth",
    "dense_mass",
    "step_size",
    "inverse_mass_matrix",
    "adapt_step_size",
    "adapt_mass_matrix",
    "regularize_mass_matrix",
)


class JitteredState(NamedTuple):
    """One chain's state; the fields NUTS's state has for the trace, and the warm-up's."""

    i: Any
    z: Any
    z_grad: Any
    potential_energy: Any
    energy: Any
    num_steps: Any
    accept_prob: Any
    diverging: Any
    adapt_state: Any
    length_sum: Any
    length_count: Any
    rng_key: Any


class _Trajectory(NamedTuple):
    """The leapfrog loop's carry: step count, current point, whether it stopped (turned
    or diverged), whether it diverged, and the proposal kept so far."""

    k: Any
    z: Any
    r: Any
    grad: Any
    energy: Any
    done: Any
    diverged: Any
    kept: Any


def jittered_switch(tune: int) -> tuple[int, int] | None:
    """Warm-up window ``(start, stop)`` whose U-turn lengths set the jittered HMC's
    lengths; the switch from U-turn trajectories to jittered ones comes at ``stop``.
    None: too short a warm-up to learn a length (then NUTS runs throughout).

    The window is NumPyro's fourth adaptation window (iterations 150-249 of 1,000
    warm-up iterations), or its last slow window when the warm-up has fewer; by then the
    mass matrix has been estimated twice, and the later windows refine it. With fewer
    than three windows (under 20 warm-up iterations) there is nothing to learn from.

    Examples
    --------
    >>> jittered_switch(1000), jittered_switch(150), jittered_switch(10)
    ((150, 250), (75, 100), None)
    """
    from numpyro.infer.hmc_util import build_adaptation_schedule

    windows = build_adaptation_schedule(int(tune)) if tune > 0 else []
    if len(windows) < 3:
        return None
    window = windows[min(3, len(windows) - 2)]
    return int(window.start), int(window.end) + 1


def tree_depths(options: dict) -> tuple[int, int]:
    """Maximum tree depths ``(warm-up, sampling)`` from NumPyro's ``max_tree_depth`` (an
    int, or a pair; default 10): trajectories take at most ``2**depth - 1`` steps.

    Examples
    --------
    >>> tree_depths({}), tree_depths({"max_tree_depth": (8, 5)})
    ((10, 10), (8, 5))
    """
    depth = options.get("max_tree_depth", 10)
    if isinstance(depth, tuple | list):
        return int(depth[0]), int(depth[-1])
    return int(depth), int(depth)


def jittered_chain_kernel(potential, start, pe, key, tune: int, target_accept: float,
                          window: tuple[int, int], options: dict):
    """``(state, kernel)``: the initial :class:`JitteredState` at the flat position
    ``start`` (potential energy ``pe``) and the transition ``kernel(state) -> state``.

    ``potential(z) -> U(z)`` is the negative log density of a flat vector. ``options``
    are NumPyro's warm-up options (:data:`OPTIONS`); ``window`` is
    :func:`jittered_switch`'s. The chain starts without a gradient: it only enters the
    first warm-up trajectory's first half step, and computing it would compile the
    gradient a second time.
    """
    import jax
    import jax.numpy as jnp
    from numpyro.infer.hmc_util import warmup_adapter

    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise TypeError(
            f"the jittered algorithm takes the sampler options {list(OPTIONS)}; got "
            f"{unknown} (use algorithm='nuts' for NumPyro's other NUTS options)"
        )
    first, stop = window
    warm_depth, depth = tree_depths(options)
    most_warm, most = 2**warm_depth - 1, 2**depth - 1
    low, high = JITTER_RANGE
    dense = bool(options.get("dense_mass", False))
    wa_init, wa_update = warmup_adapter(
        tune,
        adapt_step_size=options.get("adapt_step_size", True),
        adapt_mass_matrix=options.get("adapt_mass_matrix", True),
        dense_mass=dense,
        target_accept_prob=target_accept,
        regularize_mass_matrix=options.get("regularize_mass_matrix", True),
    )
    value_and_grad = jax.value_and_grad(potential)

    def velocity(inv_mass, r):
        return inv_mass @ r if inv_mass.ndim == 2 else inv_mass * r

    def kinetic(inv_mass, r):
        return 0.5 * jnp.dot(r, velocity(inv_mass, r))

    key, adapt_key = jax.random.split(key)
    zero = jnp.zeros_like(start)
    adapt = wa_init(
        (start, None, pe, zero), adapt_key, options.get("step_size", 1.0),
        inverse_mass_matrix=options.get("inverse_mass_matrix"),
        mass_matrix_size=start.size,
    )
    count = jnp.zeros((), jnp.result_type(int))
    state = JitteredState(
        i=count, z=start, z_grad=zero, potential_energy=pe, energy=pe,
        num_steps=count, accept_prob=jnp.zeros(()), diverging=jnp.zeros((), bool),
        adapt_state=adapt, length_sum=jnp.zeros(()), length_count=count, rng_key=key,
    )

    def kernel(state: JitteredState) -> JitteredState:
        key, k_momentum, k_length, k_accept, k_pick = jax.random.split(state.rng_key, 5)
        adapt = state.adapt_state
        eps, inv_mass = adapt.step_size, adapt.inverse_mass_matrix
        warm_start = state.i < stop
        # the jittered length, capped like a NUTS tree of the sampling depth; the step
        # shrinks to make the length exact (NumPyro's HMC)
        turned_at = state.length_sum / jnp.maximum(state.length_count, 1)
        length = jnp.minimum(
            turned_at * jax.random.uniform(k_length, (), "float64", low, high), most * eps
        )
        fixed_steps = jnp.clip(jnp.ceil(length / eps), 1.0, most).astype(count.dtype)
        step = jnp.where(warm_start, eps, jnp.where(length > 0, length / fixed_steps, eps))
        max_steps = jnp.where(warm_start, most_warm, fixed_steps)

        noise = jax.random.normal(k_momentum, state.z.shape, state.z.dtype)
        sqrt_mass = adapt.mass_matrix_sqrt
        r0 = sqrt_mass @ noise if sqrt_mass.ndim == 2 else sqrt_mass * noise
        z0 = state.z
        energy0 = state.potential_energy + kinetic(inv_mass, r0)

        def going(carry):
            return (carry.k < max_steps) & ~carry.done

        def leapfrog(carry):
            k, z, r, grad = carry.k, carry.z, carry.r, carry.grad
            r = r - 0.5 * step * grad
            z = z + step * velocity(inv_mass, r)
            pe, grad = value_and_grad(z)
            r = r - 0.5 * step * grad
            energy = pe + kinetic(inv_mass, r)
            diverged = ~(energy - energy0 <= MAX_DELTA_ENERGY)  # NaN included
            # distance from the start in the metric of the mass matrix stops growing:
            # d/dt |z - z0|_M^2 / 2 = (z - z0) . r. Every coordinate counts at its
            # adapted scale (the Euclidean (z - z0) . v would follow the few widest
            # coordinates, whose first turn comes early and at random)
            turned = warm_start & (jnp.dot(z - z0, r) < 0.0)
            # the proposal: a jittered trajectory's end point; a U-turn trajectory's
            # point at a uniformly chosen step (see the module's notes), by reservoir
            # sampling: step k + 1 replaces the kept point with probability 1 / (k + 1)
            u = jax.random.uniform(jax.random.fold_in(k_pick, k))
            keep = ~warm_start | (u * (k + 1) < 1.0)
            kept = jax.tree_util.tree_map(
                lambda new, old: jnp.where(keep, new, old), (z, r, pe, grad, energy), carry.kept
            )
            return _Trajectory(k + 1, z, r, grad, energy, diverged | turned, diverged, kept)

        start = (z0, r0, state.potential_energy, state.z_grad, energy0)
        end = jax.lax.while_loop(
            going, leapfrog,
            _Trajectory(count, z0, r0, state.z_grad, energy0, jnp.zeros((), bool),
                        jnp.zeros((), bool), start),
        )
        steps = end.k
        z, r, pe, grad, energy = end.kept
        delta = energy - energy0
        delta = jnp.where(jnp.isnan(delta), jnp.inf, delta)
        diverging = end.diverged | (delta > MAX_DELTA_ENERGY)
        accept_prob = jnp.minimum(jnp.exp(-delta), 1.0)
        accepted = jax.random.bernoulli(k_accept, accept_prob)
        z = jnp.where(accepted, z, z0)
        pe = jnp.where(accepted, pe, state.potential_energy)
        grad = jnp.where(accepted, grad, state.z_grad)
        energy = jnp.where(accepted, energy, energy0)

        adapt = jax.lax.cond(
            state.i < tune,
            lambda a: wa_update(state.i, accept_prob, (z, r, pe, grad), a),
            lambda a: a,
            adapt,
        )
        counted = (state.i >= first) & warm_start & ~diverging
        return JitteredState(
            i=state.i + 1, z=z, z_grad=grad, potential_energy=pe, energy=energy,
            num_steps=steps, accept_prob=accept_prob, diverging=diverging,
            adapt_state=adapt,
            length_sum=state.length_sum + jnp.where(counted, steps * eps, 0.0),
            length_count=state.length_count + counted.astype(count.dtype),
            rng_key=key,
        )

    return state, kernel

