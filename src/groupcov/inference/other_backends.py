"""PyMC's own NUTS and nutpie as back-ends."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from groupcov.inference.backends import SamplerOutput, missing_backend

__all__ = ["sample_nutpie", "sample_pymc"]


def _from_idata(idata, elapsed: float, tune: int) -> SamplerOutput:
    draws = {name: np.asarray(var.values) for name, var in idata.posterior.data_vars.items()}
    stats = {name: np.asarray(var.values) for name, var in idata.sample_stats.data_vars.items()}
    if "n_steps" not in stats and "tree_size" in stats:
        stats["n_steps"] = stats["tree_size"]
    if "diverging" not in stats and "divergences" in stats:
        stats["diverging"] = stats["divergences"]
    return SamplerOutput(draws, stats, {"sampling_time": elapsed, "tuning_steps": tune})


def sample_pymc(
    model,
    *,
    draws: int,
    tune: int,
    chains: int,
    random_seed: int | None,
    progressbar: bool,
    target_accept: float = 0.9,
    initial_points: list[dict] | None = None,
    mode: str | None = "NUMBA",
    **kwargs: Any,
) -> SamplerOutput:
    """PyMC's NUTS; ``mode`` picks the PyTensor back-end (Numba: no BLAS needed)."""
    import pymc as pm

    start = time.perf_counter()
    with model:
        idata = pm.sample(
            draws=draws,
            tune=tune,
            chains=chains,
            cores=min(chains, 2),
            random_seed=random_seed,
            progressbar=progressbar,
            target_accept=target_accept,
            compile_kwargs={} if mode is None else {"mode": mode},
            **kwargs,
        )
    return _from_idata(idata, time.perf_counter() - start, tune)


def sample_nutpie(
    model,
    *,
    draws: int,
    tune: int,
    chains: int,
    random_seed: int | None,
    progressbar: bool,
    target_accept: float = 0.9,
    initial_points: list[dict] | None = None,
    backend: str = "jax",
    **kwargs: Any,
) -> SamplerOutput:
    """nutpie's NUTS (Rust), with the log density compiled by JAX by default."""
    try:
        import nutpie
    except ImportError as err:
        raise missing_backend("nutpie", "nutpie") from err

    start = time.perf_counter()
    gradient = "jax" if backend == "jax" else "pytensor"
    compiled = nutpie.compile_pymc_model(model, backend=backend, gradient_backend=gradient)
    idata = nutpie.sample(
        compiled,
        draws=draws,
        tune=tune,
        chains=chains,
        seed=random_seed,
        progress_bar=progressbar,
        target_accept=target_accept,
        **kwargs,
    )
    return _from_idata(idata, time.perf_counter() - start, tune)
