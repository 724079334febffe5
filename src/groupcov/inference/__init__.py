"""Inference: one dispatch point from a PyMC model to posterior draws in xarray datasets."""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import os
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

from groupcov.inference.backends import SamplerOutput, SamplerSettings
from groupcov.inference.jax_backend import ALGORITHMS, cache_dir, sample_numpyro
from groupcov.inference.other_backends import sample_nutpie, sample_pymc

if TYPE_CHECKING:
    import arviz as az

__all__ = ["DEFAULT_SAMPLER", "SAMPLERS", "inference_data", "run_sampler", "sample_structure"]

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
        ``draws * thin`` are sampled after warm-up. With ``thin > 1`` the group
        ``moments`` holds the mean, sd and split R-hat of every sampled draw of each
        kept variable (``statistic`` in place of ``chain`` and ``draw``).
    **kwargs
        Passed to the back-end (for example ``target_accept``).

    Returns
    -------
    arviz.InferenceData
        ``posterior`` (free variables and deterministics, named dims) and
        ``sample_stats``.
    """
    sampler, settings = _settings(
        sampler, draws, tune, chains, random_seed, progressbar, var_names, thin, kwargs
    )
    _check_var_names(model, settings.var_names)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", message=".*could not link to a BLAS.*")
        out = SAMPLERS[sampler](model, settings, **kwargs)
    return inference_data(_to_groups(model, out, sampler, settings))


@contextlib.contextmanager
def moments_group_allowed() -> Iterator[None]:
    """Silence ArviZ's warning about the ``moments`` group of a thinned fit (outside
    ArviZ's scheme of groups) while an InferenceData is made or read."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*moments group is not defined")
        yield


def inference_data(groups: dict[str, xr.Dataset]) -> az.InferenceData:
    """ArviZ InferenceData of the datasets, the ``moments`` group of a thinned fit
    included."""
    import arviz as az

    with moments_group_allowed():
        return az.InferenceData(**groups)


# NumPyro NUTS options a user may pass (``numpyro.infer.hmc.hmc``'s ``init_kernel``);
# groupcov sets the others (``num_warmup``, ``target_accept_prob``, ``rng_key``)
NUMPYRO_OPTIONS = frozenset({
    "max_tree_depth", "dense_mass", "step_size", "adapt_step_size", "adapt_mass_matrix",
    "inverse_mass_matrix", "find_heuristic_step_size", "regularize_mass_matrix",
})


def _check_options(sampler: str, kwargs: dict) -> None:
    """Name an option the NumPyro back-end does not take (the others check their own)."""
    if sampler != "numpyro":
        if "algorithm" in kwargs:
            raise TypeError(
                f"algorithm= applies to the numpyro sampler only (not {sampler!r}): the "
                "others run NUTS"
            )
        return
    known = NUMPYRO_OPTIONS | {"target_accept", "algorithm", "_export_to"}
    for name in kwargs:
        if name not in known:
            close = difflib.get_close_matches(name, sorted(known - {"_export_to"}), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise TypeError(
                f"unknown option {name!r} for the numpyro sampler{hint}; it takes "
                f"target_accept, algorithm and NumPyro's NUTS options "
                f"{sorted(NUMPYRO_OPTIONS)}"
            )
    algorithm = kwargs.get("algorithm", ALGORITHMS[0])
    if algorithm not in ALGORITHMS:
        raise ValueError(
            f"algorithm must be {' or '.join(map(repr, ALGORITHMS))} (HMC with a U-turn "
            f"warm-up start and jittered trajectory lengths), got {algorithm!r}"
        )


def _settings(sampler, draws, tune, chains, random_seed, progressbar, var_names, thin, kwargs):
    sampler = DEFAULT_SAMPLER if sampler is None else sampler
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; choose one of {sorted(SAMPLERS)}")
    _check_options(sampler, kwargs)
    for name, value in (("draws", draws), ("chains", chains)):
        if int(value) < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")
    if int(tune) < 0:
        raise ValueError(f"tune must be >= 0, got {tune}")
    if int(thin) < 1:
        raise ValueError(f"thin must be at least 1, got {thin}")
    settings = SamplerSettings(
        draws=int(draws),
        tune=int(tune),
        chains=int(chains),
        random_seed=int(np.random.default_rng(random_seed).integers(2**31)),
        progressbar=progressbar,
        target_accept=float(kwargs.pop("target_accept", 0.9)),
        var_names=None if var_names is None else tuple(dict.fromkeys(var_names)),
        thin=int(thin),
    )
    return sampler, settings


def _check_var_names(model, var_names) -> None:
    if var_names is None:
        return
    _check_names(var_names, {rv.name for rv in model.free_RVs}
                 | {d.name for d in model.deterministics})


def _density_names(spec) -> set[str]:
    from groupcov.model.density import output_dims

    return {name for name, _ in output_dims(spec)}


def _check_names(var_names, known: set[str]) -> None:
    if var_names is None:
        return
    unknown = sorted(set(var_names) - known)
    if unknown:
        raise ValueError(
            f"var_names {unknown} are not variables of the model; choose from {sorted(known)}"
        )


def _code_fingerprint() -> str:
    """Versions and sources that determine a compiled program."""
    global _FINGERPRINT
    if _FINGERPRINT is None:
        from importlib.metadata import version

        import jax

        root = Path(__file__).resolve().parent.parent
        digest = hashlib.sha256()
        for sub in ("distributions", "model", "inference"):
            for path in sorted((root / sub).glob("*.py")):
                digest.update(path.name.encode())
                digest.update(path.read_bytes())
        # versions from the installed metadata: importing PyMC here would cost what a
        # saved program saves
        for dist in ("jax", "jaxlib", "numpyro", "pymc", "pytensor", "numpy"):
            digest.update(f"{dist}={version(dist)}".encode())
        digest.update(jax.default_backend().encode())
        _FINGERPRINT = digest.hexdigest()
    return _FINGERPRINT


_FINGERPRINT: str | None = None
_PROGRAMS: dict = {}


def _program_path(key: tuple) -> str | None:
    base = cache_dir()
    if base is None:
        return None
    name = hashlib.sha256(repr(key).encode()).hexdigest()[:32]
    return os.path.join(base, "programs", name)


def sample_structure(
    structure: tuple,
    values: dict,
    coords: dict,
    build: Callable[[], object],
    sampler: str | None = None,
    *,
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 4,
    random_seed: int | None = None,
    progressbar: bool = True,
    var_names: list[str] | None = None,
    thin: int = 1,
    density=None,
    **kwargs,
) -> az.InferenceData | dict[str, xr.Dataset]:
    """Sample a model known by its structure, compiling it at most once per machine.

    ``structure`` (a tuple of plain values) together with the shapes of ``values``
    identifies the model's graph; ``values`` are its data containers. With the NumPyro
    back-end the compiled program is kept in this process and saved in the cache
    directory, so a later process with the same structure neither builds the PyMC
    model (``build`` is not called) nor translates or traces it; with ``density`` (a
    :class:`~groupcov.model.density.DensitySpec` of the same model) the program is
    made from its JAX log density, and the PyMC model is never built. Other back-ends
    build the model and use :func:`run_sampler`.

    Returns
    -------
    dict or arviz.InferenceData
        With NumPyro, ``{"posterior": ..., "sample_stats": ...}`` as xarray datasets
        (ArviZ is not imported); with the other back-ends, :func:`run_sampler`'s
        InferenceData.
    """
    from groupcov.inference.jax_backend import (
        chain_mapping,
        compile_program,
        density_chain_program,
        enable_compilation_cache,
        load_program,
        max_tree_depth,
        model_program,
        program_settings_key,
        run_program,
    )

    sampler, settings = _settings(
        sampler, draws, tune, chains, random_seed, progressbar, var_names, thin, dict(kwargs)
    )
    if sampler != "numpyro":
        return run_sampler(
            build(),
            sampler,
            draws=draws,
            tune=tune,
            chains=chains,
            random_seed=random_seed,
            progressbar=progressbar,
            var_names=var_names,
            thin=thin,
            **kwargs,
        )
    kwargs.pop("target_accept", None)
    enable_compilation_cache()
    shapes = tuple(sorted((k, np.shape(v), str(np.asarray(v).dtype)) for k, v in values.items()))
    import jax

    # how the chains are mapped and where they run change the compiled program too
    where = (jax.default_backend(), chain_mapping(settings.chains))
    source = "density" if density is not None else "pymc"
    key = (
        structure, source, shapes, program_settings_key(settings, kwargs), where,
        _code_fingerprint(),
    )
    start = time.perf_counter()
    program = _PROGRAMS.get(key)
    if program is None:
        _prepare_datasets()
    path = _program_path(key)
    if program is None and path is not None:
        program = load_program(path, settings.chains)
    if program is None and density is not None:
        _check_names(settings.var_names, _density_names(density))
        chain = density_chain_program(density, values, settings, kwargs)
        example = tuple(values[n] for n in chain.data_names)
        program = compile_program(chain, settings.chains, path, example)
    if program is None:
        model = build()
        _check_var_names(model, settings.var_names)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning)
            program = model_program(model, settings, kwargs, export_to=path)
    _PROGRAMS[key] = program
    out = run_program(
        program, values, settings, max_tree_depth(kwargs), kwargs.get("algorithm", "nuts")
    )
    out.attrs["sampling_time"] = time.perf_counter() - start
    dims = dict(program.outputs)
    return _groups(out, dims, coords, sampler, settings)


def _wrap_an_array() -> None:
    try:
        xr.Variable(("draw",), np.zeros(1))
    except Exception:  # the fit's first dataset does it again and reports any error
        pass


def _prepare_datasets() -> None:
    """Let xarray make its first variable in a background thread.

    xarray imports ``dask.array`` (when Dask is installed) the first time it wraps an
    array, about 0.4 s; a process's first fit does that while XLA compiles or loads the
    sampler, which holds neither the GIL nor both cores all the time.
    """
    import sys
    import threading

    if "dask" in sys.modules:
        return
    threading.Thread(target=_wrap_an_array, name="groupcov-xarray", daemon=True).start()


def _to_groups(
    model, out: SamplerOutput, sampler: str, settings: SamplerSettings
) -> dict[str, xr.Dataset]:
    keep = {rv.name for rv in model.free_RVs} | {d.name for d in model.deterministics}
    if settings.var_names is not None:
        keep &= set(settings.var_names)
    if settings.thin > 1 and sampler != "numpyro":  # the others sampled draws * thin
        from groupcov.diagnostics import half_moments
        from groupcov.inference.jax_backend import LOG_DENSITY

        # every draw enters the moments, as the NumPyro program's running moments
        moments = {k: half_moments(v) for k, v in out.draws.items() if k in keep}
        if "lp" in out.stats:
            moments[LOG_DENSITY] = half_moments(out.stats["lp"])
        out = SamplerOutput(
            {k: v[:, settings.thin - 1 :: settings.thin] for k, v in out.draws.items()},
            {k: v[:, settings.thin - 1 :: settings.thin] for k, v in out.stats.items()},
            out.attrs,
            moments,
        )
    coords = {k: list(v) for k, v in model.coords.items() if v is not None}
    dims = {k: list(v) for k, v in model.named_vars_to_dims.items() if k in keep}
    out = out._replace(draws={k: v for k, v in out.draws.items() if k in keep})
    return _groups(out, dims, coords, sampler, settings)


def _dataset(arrays: dict, dims: dict, coords: dict, attrs: dict) -> xr.Dataset:
    """Arrays ``(chain, draw, ...)`` as a dataset, laid out as ``az.from_dict`` does:
    integer ``chain`` and ``draw`` coordinates, unnamed axes called ``{name}_dim_{i}``,
    and integer coordinates for dims without labels."""
    variables, used = {}, {}
    for name, values in arrays.items():
        values = np.asarray(values)
        named = list(dims.get(name, ()))
        extra = values.ndim - 2 - len(named)
        names = [
            "chain",
            "draw",
            *named,
            *(f"{name}_dim_{i}" for i in range(len(named), len(named) + extra)),
        ]
        variables[name] = (names, values)
        used.update(zip(names, values.shape, strict=True))
    labels = {
        d: (np.arange(size) if d in ("chain", "draw") or d not in coords else list(coords[d]))
        for d, size in used.items()
    }
    return xr.Dataset(variables, coords=labels, attrs=dict(attrs))


def _groups(
    out: SamplerOutput, dims: dict, coords: dict, sampler: str, settings: SamplerSettings
) -> dict[str, xr.Dataset]:
    from groupcov.inference.jax_backend import LOG_LIKELIHOOD

    attrs = {**out.attrs, "sampler": sampler}
    draws = dict(out.draws)
    groups = {}
    if LOG_LIKELIHOOD in draws:  # computed by the sampler's program: one value per group
        groups["log_likelihood"] = _dataset(
            {"obs": draws.pop(LOG_LIKELIHOOD)}, {"obs": dims[LOG_LIKELIHOOD]}, coords, {}
        )
    if out.moments:
        groups["moments"] = _moments_dataset(out.moments, dims, coords, settings)
    return {
        "posterior": _dataset(draws, dims, coords, attrs),
        "sample_stats": _dataset(out.stats, {}, {}, attrs),
        **groups,
    }


#: Statistics of a thinned fit's ``moments`` group, over every draw, kept or not.
MOMENT_STATISTICS = ("mean", "sd", "r_hat")


def _moments_dataset(
    moments: dict, dims: dict, coords: dict, settings: SamplerSettings
) -> xr.Dataset:
    """Mean, sd and split R-hat of all ``draws * thin`` draws of each chain, per
    quantity: variables shaped like the posterior's with ``chain`` and ``draw``
    replaced by ``statistic``, and ``lp`` (the log density, as in ``sample_stats``)."""
    from groupcov.diagnostics import moment_statistics
    from groupcov.inference.jax_backend import LOG_DENSITY, LOG_LIKELIHOOD

    total = settings.draws * settings.thin
    arrays = {}
    for name, (mean, m2) in moments.items():
        if name == LOG_LIKELIHOOD:
            continue
        stats = moment_statistics(mean, m2, total // 2)
        # the log density as "lp" (its name in sample_stats) unless a variable has it
        key = "lp" if name == LOG_DENSITY and "lp" not in moments else name
        arrays[key] = np.stack([stats[k] for k in MOMENT_STATISTICS])[None]
    attrs = {"draws_per_chain": total, "thin": settings.thin}
    data = _dataset(arrays, dims, coords, attrs).squeeze("chain", drop=True)
    data = data.rename({"draw": "statistic"})
    return data.assign_coords(statistic=list(MOMENT_STATISTICS))
