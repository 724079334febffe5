"""PyMC's own NUTS and nutpie as back-ends."""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from groupcov.inference.backends import SamplerOutput, SamplerSettings, missing_backend

__all__ = ["sample_nutpie", "sample_pymc"]


def _from_idata(idata, elapsed: float, tune: int) -> SamplerOutput:
    draws = {name: np.asarray(var.values) for name, var in idata.posterior.data_vars.items()}
    stats = {name: np.asarray(var.values) for name, var in idata.sample_stats.data_vars.items()}
    if "n_steps" not in stats and "tree_size" in stats:
        stats["n_steps"] = stats["tree_size"]
    if "diverging" not in stats and "divergences" in stats:
        stats["diverging"] = stats["divergences"]
    if "lp" not in stats and "logp" in stats:  # nutpie's name for the log density
        stats["lp"] = stats["logp"]
    if "reached_max_treedepth" not in stats and "maxdepth_reached" in stats:  # nutpie's
        stats["reached_max_treedepth"] = stats["maxdepth_reached"]
    return SamplerOutput(draws, stats, {"sampling_time": elapsed, "tuning_steps": tune})


def sample_pymc(
    model, settings: SamplerSettings, mode: str | None = "NUMBA", **kwargs: Any
) -> SamplerOutput:
    """PyMC's NUTS; ``mode`` picks the PyTensor back-end (Numba: no BLAS needed)."""
    import pymc as pm

    start = time.perf_counter()
    kwargs.setdefault("compute_convergence_checks", False)  # fit checks convergence itself
    # without a progress bar, PyMC's own progress lines ("Initializing NUTS...",
    # "Sampling ...") stay quiet too; its warnings still show
    logger = logging.getLogger("pymc")
    level = logger.level
    if not settings.progressbar:
        logger.setLevel(max(level, logging.WARNING))
    try:
        with model:
            idata = pm.sample(
                draws=settings.draws * settings.thin,
                tune=settings.tune,
                chains=settings.chains,
                cores=min(settings.chains, 2),
                random_seed=settings.random_seed,
                progressbar=settings.progressbar,
                target_accept=settings.target_accept,
                compile_kwargs={} if mode is None else {"mode": mode},
                var_names=None if settings.var_names is None else list(settings.var_names),
                **kwargs,
            )
    finally:
        logger.setLevel(level)
    return _from_idata(idata, time.perf_counter() - start, settings.tune)


def sample_nutpie(
    model, settings: SamplerSettings, backend: str = "jax", **kwargs: Any
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
        draws=settings.draws * settings.thin,
        tune=settings.tune,
        chains=settings.chains,
        seed=settings.random_seed,
        progress_bar=settings.progressbar,
        target_accept=settings.target_accept,
        **kwargs,
    )
    return _from_idata(idata, time.perf_counter() - start, settings.tune)
