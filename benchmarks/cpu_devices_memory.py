"""Resident memory of a sampler-shaped JAX loop run on several CPU devices at once.

groupcov runs chains side by side as CPU devices (``pmap``, one device per chain). On
this project's machine the resident memory of such a run grows while NUTS runs, by
megabytes per second at 1,000 groups and more. This script isolates it without
groupcov or NumPyro: a ``while_loop`` of leapfrog-like steps over a 20,000-vector with a
data-dependent accept (``jnp.where`` on a comparison of two reductions, as HMC's
Metropolis step), the same program mapped over the chains in different ways:

* ``pmap``: one device per chain, executed together (what groupcov does);
* ``shard_map``: the same through ``jit`` and a device mesh;
* ``threads``: one ``jit`` per device, each called from its own Python thread;
* ``async``: one ``jit`` per device, all dispatched from one thread;
* ``one-device``: a single chain under ``jit`` (no other device at work).

Each runs in a fresh process; printed: seconds, RSS a quarter into the run (compiled)
and at the end, and the growth per second in between. XLA hands the reduction to
YNNPACK; ``--xla-flags=--xla_cpu_experimental_ynn_fusion_type=`` (what groupcov sets)
keeps it in XLA. Run from the repository root::

    .venv/bin/python benchmarks/cpu_devices_memory.py [--iterations 8000] [--devices 4] \\
        [--xla-flags=--xla_cpu_experimental_ynn_fusion_type=]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time

MODES = ("pmap", "shard_map", "threads", "async", "one-device")
SIZE = 20_000


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _worker(mode: str, iterations: int, devices: int, flags: str) -> None:
    os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices} {flags}"
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    scales = jnp.linspace(0.5, 2.0, SIZE)

    def potential(x):
        return 0.5 * jnp.sum((x / scales) ** 2)

    def chain(key, data):
        def body(carry):
            k, x, key = carry
            key, momentum_key, length_key = jax.random.split(key, 3)
            p = jax.random.normal(momentum_key, (SIZE,))
            steps = 10 + jax.random.randint(length_key, (), 0, 5)

            def leapfrog(_, state):
                q, p = state
                p = p - 0.05 * jax.grad(potential)(q)
                q = q + 0.1 * p
                return q, p - 0.05 * jax.grad(potential)(q)

            q, _ = jax.lax.fori_loop(0, steps, leapfrog, (x, p))
            x = jnp.where(potential(q) < potential(x) + data[0], q, x)
            return k + 1, x, key

        init = (0, jnp.zeros(SIZE), key)
        return jax.lax.while_loop(lambda c: c[0] < iterations, body, init)[1]

    keys = jax.random.split(jax.random.PRNGKey(0), devices)
    data = jnp.ones(3)
    single = jax.jit(chain)

    def on_device(i):
        device = jax.devices()[i]
        return single(jax.device_put(keys[i], device), jax.device_put(data, device))

    if mode == "pmap":
        fn = jax.pmap(chain, in_axes=(0, None))

        def run():
            return fn(keys, data)
    elif mode == "shard_map":
        from jax import shard_map
        from jax.sharding import Mesh
        from jax.sharding import PartitionSpec as P

        mesh = Mesh(jax.devices(), ("chain",))
        fn = jax.jit(shard_map(jax.vmap(chain, in_axes=(0, None)), mesh=mesh,
                               in_specs=(P("chain"), P()), out_specs=P("chain"),
                               check_vma=False))

        def run():
            return fn(keys, data)
    elif mode == "threads":
        from concurrent.futures import ThreadPoolExecutor

        def run():
            with ThreadPoolExecutor(devices) as pool:
                return list(pool.map(lambda i: jax.block_until_ready(on_device(i)),
                                     range(devices)))
    elif mode == "async":
        def run():
            return [on_device(i) for i in range(devices)]
    else:
        def run():
            return single(keys[0], data)

    samples: list[tuple[float, float]] = []
    done = threading.Event()

    def monitor():
        start = time.perf_counter()
        while not done.is_set():
            samples.append((time.perf_counter() - start, _rss_mb()))
            time.sleep(0.25)

    threading.Thread(target=monitor, daemon=True).start()
    start = time.perf_counter()
    jax.block_until_ready(run())
    seconds = time.perf_counter() - start
    done.set()
    # growth from the first quarter of the run (compilation done) to its end
    later = [s for s in samples if s[0] >= seconds / 4] or samples
    (t0, first), (t1, last) = later[0], later[-1]
    rate = (last - first) / (t1 - t0) if t1 > t0 else float("nan")
    print(f"{mode:10s} {seconds:6.1f} s  RSS {first:6.0f} -> {last:6.0f} MB  "
          f"{rate:+6.1f} MB/s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=8000)
    parser.add_argument("--devices", type=int, default=4)
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--xla-flags", default="",
                        help="more XLA_FLAGS, e.g. --xla_cpu_experimental_ynn_fusion_type=")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(args.worker, args.iterations, args.devices, args.xla_flags)
        return
    print(f"{args.devices} CPU devices, {args.iterations:,} iterations, state of {SIZE:,}"
          f"{', XLA flags ' + args.xla_flags if args.xla_flags else ''}")
    for mode in args.modes.split(","):
        subprocess.run([sys.executable, __file__, "--worker", mode, "--iterations",
                        str(args.iterations), "--devices", str(args.devices),
                        f"--xla-flags={args.xla_flags}"], check=False)


if __name__ == "__main__":
    main()
