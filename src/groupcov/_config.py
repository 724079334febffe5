"""Process-wide settings applied before PyTensor and ArviZ are imported."""

from __future__ import annotations

import os
import sys
import warnings

#: XLA:CPU's choice of operations for YNNPACK (empty: none)
YNN_FLAG = "xla_cpu_experimental_ynn_fusion_type"
#: jaxlib releases whose XLA knows :data:`YNN_FLAG` (checked in each release's library)
YNN_FLAG_RELEASES = ("0.10.0", "0.10.1", "0.10.2")


def _takes_ynn_flag() -> bool:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("jaxlib") in YNN_FLAG_RELEASES
    except PackageNotFoundError:
        return False


def xla_flags(flags: str, takes_ynn_flag: bool) -> str:
    """``XLA_FLAGS`` with groupcov's CPU settings added where the user set none.

    Examples
    --------
    >>> xla_flags("--xla_force_host_platform_device_count=2", True)
    '--xla_force_host_platform_device_count=2 --xla_cpu_experimental_ynn_fusion_type='
    >>> xla_flags("--xla_force_host_platform_device_count=2", False)
    '--xla_force_host_platform_device_count=2'
    """
    extra = []
    if "xla_force_host_platform_device_count" not in flags:
        extra.append(f"--xla_force_host_platform_device_count={max(4, os.cpu_count() or 1)}")
    if YNN_FLAG not in flags and takes_ynn_flag:
        extra.append(f"--{YNN_FLAG}=")
    return " ".join([flags, *extra]).strip()


def configure() -> None:
    """Quiet, fast defaults that a user's own settings override.

    - PyTensor without a system BLAS warns at import time and its C back-end is slow;
      groupcov samples through JAX or Numba, so when the user has not chosen BLAS
      flags, an explicit empty setting stops the probe and its warning.
    - JAX sees one CPU device unless told otherwise; several let chains run in
      parallel with ``pmap`` (this affects only the CPU platform, not a GPU).
    - XLA:CPU hands reductions to YNNPACK by default; run on several CPU devices at
      once (the chains), those grow the resident memory by megabytes per second at
      10,000 groups, without bound while NUTS runs (``benchmarks/cpu_devices_memory.py``).
      Where the installed jaxlib is one known to take the flag, it turns them off
      (XLA's own reductions take the same time); an unknown flag would abort the process.
    - ArviZ announces an upcoming refactor with a FutureWarning on import.
    """
    if "pytensor" not in sys.modules:
        flags = os.environ.get("PYTENSOR_FLAGS", "")
        if "blas__ldflags" not in flags and "blas.ldflags" not in flags:
            os.environ["PYTENSOR_FLAGS"] = ",".join(filter(None, [flags, "blas__ldflags="]))
    if "jax" not in sys.modules:
        flags = os.environ.get("XLA_FLAGS", "")
        wanted = xla_flags(flags, _takes_ynn_flag())
        if wanted != flags:
            os.environ["XLA_FLAGS"] = wanted
    warnings.filterwarnings("ignore", message=".*ArviZ is undergoing a major refactor.*")
