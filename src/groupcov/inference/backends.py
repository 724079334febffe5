"""Shared pieces of the sampler back-ends."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["SamplerOutput", "SamplerSettings", "initial_points", "missing_backend"]


class SamplerSettings(NamedTuple):
    """What every back-end is asked to do.

    Attributes
    ----------
    draws, tune, chains : int
        Posterior draws and warm-up steps per chain, and the number of chains.
    random_seed : int
        Seed of the back-end's generator.
    progressbar : bool
        Show the back-end's progress bar.
    target_accept : float
        Target acceptance probability of NUTS's step-size adaptation.
    var_names : tuple of str, optional
        Posterior variables to keep (default: every free variable and deterministic).
    thin : int
        Keep every ``thin``-th draw (``draws`` is the number kept).
    """

    draws: int
    tune: int
    chains: int
    random_seed: int
    progressbar: bool
    target_accept: float = 0.9
    var_names: tuple[str, ...] | None = None
    thin: int = 1


class SamplerOutput(NamedTuple):
    """Draws of a sampler, each array shaped ``(chain, draw, ...)``.

    Attributes
    ----------
    draws : dict
        Variable name -> constrained draws (free variables and deterministics).
    stats : dict
        Sampler statistics (``diverging``, ``n_steps``, ``lp``, ...).
    attrs : dict
        Attributes for the InferenceData (``sampling_time``, ``tuning_steps``).
    moments : dict, optional
        With thinning: variable name (and ``"__lp__"``, the log density) ->
        ``(mean, m2)``, running means and sums of squared deviations of every draw,
        kept or not, each shaped ``(chain, 2, ...)`` for the first and second half of
        each chain.
    """

    draws: dict
    stats: dict
    attrs: dict
    moments: dict | None = None


def missing_backend(sampler: str, extra: str) -> ImportError:
    """The error raised when an optional sampler back-end is not installed."""
    return ImportError(
        f"sampler {sampler!r} needs optional dependencies that are not installed: "
        f"pip install 'groupcov[{extra}]'"
    )


def initial_points(model, chains: int, seed, jitter: float = 1.0) -> list[dict]:
    """Starting points on the unconstrained scale, one per chain.

    The support point of each variable, transformed, plus uniform(-jitter, jitter)
    noise, evaluated with JAX so no C compilation is needed.
    """
    from pymc.initial_point import make_initial_point_expression
    from pymc.sampling.jax import get_jaxified_graph
    from pytensor.graph.rewriting.utils import rewrite_graph

    exprs = make_initial_point_expression(
        free_rvs=model.free_RVs,
        rvs_to_transforms=model.rvs_to_transforms,
        initval_strategies=model.rvs_to_initial_values,
        jitter_rvs=set(),
        default_strategy="support_point",
        return_transformed=True,
    )
    # shape inference first: support points may be written in terms of a variable's
    # shape, which must not keep its random generator in the graph
    exprs = rewrite_graph(exprs, include=("canonicalize", "ShapeOpt"))
    values = get_jaxified_graph(inputs=[], outputs=exprs)()
    names = [v.name for v in model.value_vars]
    rng = np.random.default_rng(seed)
    points = []
    for _ in range(chains):
        points.append(
            {
                n: np.asarray(v, dtype="float64") + rng.uniform(-jitter, jitter, np.shape(v))
                for n, v in zip(names, values, strict=True)
            }
        )
    return points
