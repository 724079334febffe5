"""Process-wide settings applied before PyTensor and ArviZ are imported."""

from __future__ import annotations

import os
import sys
import warnings


def configure() -> None:
    """Quiet, fast defaults that a user's own settings override.

    - PyTensor without a system BLAS warns at import time and its C back-end is slow;
      groupcov samples through JAX or Numba, so when the user has not chosen BLAS
      flags, an explicit empty setting stops the probe and its warning.
    - JAX sees one CPU device unless told otherwise; several let chains run in
      parallel with ``pmap`` (this affects only the CPU platform, not a GPU).
    - ArviZ announces an upcoming refactor with a FutureWarning on import.
    """
    if "pytensor" not in sys.modules:
        flags = os.environ.get("PYTENSOR_FLAGS", "")
        if "blas__ldflags" not in flags and "blas.ldflags" not in flags:
            os.environ["PYTENSOR_FLAGS"] = ",".join(filter(None, [flags, "blas__ldflags="]))
    if "jax" not in sys.modules:
        flags = os.environ.get("XLA_FLAGS", "")
        if "xla_force_host_platform_device_count" not in flags:
            count = max(4, os.cpu_count() or 1)
            os.environ["XLA_FLAGS"] = (
                f"{flags} --xla_force_host_platform_device_count={count}".strip()
            )
    warnings.filterwarnings("ignore", message=".*ArviZ is undergoing a major refactor.*")
