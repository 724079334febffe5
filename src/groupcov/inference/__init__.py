"""Inference: one dispatch point from a PyMC model to an ArviZ InferenceData."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import arviz as az
import numpy as np

from groupcov.inference.backends import SamplerOutput, SamplerSettings
from groupcov.inference.jax_backend import sample_numpyro
from groupcov.inference.other_backends import sample_nutpie, sample_pymc

__all__ = ["DEFAULT_SAMPLER", "SAMPLERS", "run_sampler"]

SAMPLERS: dict[str, Callable[..., SamplerOutput]] = {
    "numpyro": sample_numpyro,
    "nutpie": sample_nutpie,
    "pymc": sample_pymc,
}
DEFAULT_SAMPLER = "numpyro"


def run_sampler(
    model,
    sampler: str | None = None,
    *,
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 4,
    random_seed: int | None = None,
    progressbar: bool = True,
    var_names: list[str] | None = None,
    thin: int = 1,
    **kwargs,
) -> az.InferenceData:
    """Sample a PyMC model's posterior with the chosen back-end.

    Parameters
    ----------
    model : pymc.Model
        The model.
    sampler : {"numpyro", "nutpie", "pymc"}, optional
        Back-end; ``None`` uses :data:`DEFAULT_SAMPLER`.
    draws, tune, chains : int
        Posterior draws and warm-up steps per chain, and the number of chains.
    random_seed : int, optional
        Seed; the same seed gives the same draws.
    progressbar : bool
        Show the back-end's progress bar.
    var_names : list of str, optional
        Posterior variables to keep; by default every free variable and deterministic.
        With the NumPyro back-end the others are never stored, which bounds memory
        when there are many groups.
    thin : int
        Keep every ``thin``-th draw; ``draws`` draws are kept per chain, so
        ``draws * thin`` are sampled after warm-up.
    **kwargs
        Passed to the back-end (for example ``target_accept``).

    Returns
    -------
    arviz.InferenceData
        ``posterior`` (free variables and deterministics, named dims) and
        ``sample_stats``.
    """
    sampler = DEFAULT_SAMPLER if sampler is None else sampler
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; choose one of {sorted(SAMPLERS)}")
    for name, value in (("draws", draws), ("chains", chains)):
        if int(value) < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")
    if int(tune) < 0:
        raise ValueError(f"tune must be >= 0, got {tune}")
    if int(thin) < 1:
        raise ValueError(f"thin must be at least 1, got {thin}")
    if var_names is not None:
        known = {rv.name for rv in model.free_RVs} | {d.name for d in model.deterministics}
        unknown = sorted(set(var_names) - known)
        if unknown:
            raise ValueError(
                f"var_names {unknown} are not variables of the model; choose from {sorted(known)}"
            )
        var_names = tuple(dict.fromkeys(var_names))
    settings = SamplerSettings(
        draws=int(draws),
        tune=int(tune),
        chains=int(chains),
        random_seed=int(np.random.default_rng(random_seed).integers(2**31)),
        progressbar=progressbar,
        target_accept=float(kwargs.pop("target_accept", 0.9)),
        var_names=var_names,
        thin=int(thin),
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", message=".*could not link to a BLAS.*")
        out = SAMPLERS[sampler](model, settings, **kwargs)
    return _to_inference_data(model, out, sampler, settings)


def _to_inference_data(
    model, out: SamplerOutput, sampler: str, settings: SamplerSettings
) -> az.InferenceData:
    keep = {rv.name for rv in model.free_RVs} | {d.name for d in model.deterministics}
    if settings.var_names is not None:
        keep &= set(settings.var_names)
    if settings.thin > 1 and sampler != "numpyro":  # the others sampled draws * thin
        out = SamplerOutput(
            {k: v[:, :: settings.thin] for k, v in out.draws.items()},
            {k: v[:, :: settings.thin] for k, v in out.stats.items()},
            out.attrs,
        )
    coords = {k: list(v) for k, v in model.coords.items() if v is not None}
    dims = {k: list(v) for k, v in model.named_vars_to_dims.items() if k in keep}
    posterior = {k: v for k, v in out.draws.items() if k in keep}
    stats = {k: np.asarray(v) for k, v in out.stats.items()}
    attrs = {**out.attrs, "sampler": sampler}
    idata = az.from_dict(posterior=posterior, sample_stats=stats, coords=coords, dims=dims)
    for group in ("posterior", "sample_stats"):
        idata[group].attrs.update(attrs)
    return idata
