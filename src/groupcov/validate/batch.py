"""NUTS on many data sets of one model at once.

Simulation studies fit the same model to hundreds of data sets of the same shape.
:class:`BatchSampler` builds the program :meth:`~groupcov.GroupCovModel.fit` compiles
(:func:`~groupcov.inference.jax_backend.density_chain_program` for the model's JAX
density, :func:`~groupcov.inference.jax_backend.chain_program` for the PyMC model of the
other parameterizations: NumPyro's NUTS, warm-up included, with the data containers as
inputs) and runs it for a whole batch of data sets in one compiled call: vectorized over
data sets, chains in parallel over the CPU devices. Each data set gets its own step
size, mass matrix, random stream and (for the PyMC model) support point.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from groupcov.inference.backends import SamplerSettings
from groupcov.inference.jax_backend import (
    CompiledOnFirstCall,
    chain_program,
    density_chain_program,
    enable_compilation_cache,
)
from groupcov.model.density import output_dims
from groupcov.model.inputs import model_data
from groupcov.stats import SufficientStats

__all__ = ["BatchFit", "BatchSampler", "stats_from_rows"]


class BatchFit(NamedTuple):
    """Posterior draws of a batch of fits.

    Attributes
    ----------
    draws : dict
        Variable name -> array ``(data set, chain, draw, ...)``.
    diverging : numpy.ndarray of bool, shape ``(data set, chain, draw)``
        Divergent transitions.
    steps : numpy.ndarray of int, shape ``(data set, chain)``
        Leapfrog steps per chain over the kept draws.
    seconds : float
        Wall time of the batch, compilation included on the first call.
    """

    draws: dict
    diverging: np.ndarray
    steps: np.ndarray
    seconds: float


def stats_from_rows(x: np.ndarray, groups: Sequence, features: Sequence[str]) -> SufficientStats:
    """Statistics of complete rows ``x`` shaped ``(G, n, p)`` (equal group sizes).

    Examples
    --------
    >>> x = np.arange(12.0).reshape(2, 3, 2)
    >>> st = stats_from_rows(x, ["a", "b"], ["u", "v"])
    >>> st.mean.tolist(), st.scatter[0].tolist()
    ([[2.0, 3.0], [8.0, 9.0]], [[8.0, 8.0], [8.0, 8.0]])
    """
    x = np.asarray(x, dtype="float64")
    mean = x.mean(axis=1)
    centered = x - mean[:, None, :]
    scatter = np.einsum("gni,gnj->gij", centered, centered)
    n = np.full(x.shape[0], x.shape[1], dtype=np.int64)
    return SufficientStats(tuple(groups), tuple(features), n, mean, scatter)


class BatchSampler:
    """Fit one built model to many data sets, vectorized over the data sets.

    Parameters
    ----------
    gcm : GroupCovModel
        The model; its structure (groups, features, pooling, priors, fixed
        standardization) is used for every data set.
    draws, tune, chains : int
        Draws and warm-up steps per chain, and chains per data set.
    var_names : sequence of str
        Variables to return (free variables or deterministics of ``gcm.model``).
    target_accept : float, optional
        The sampler's target acceptance probability; default what ``gcm.fit`` uses
        (:meth:`~groupcov.api.GroupCovModel.default_target_accept`).
    algorithm : {"nuts", "jittered"}, optional
        How the draws are made; default what ``gcm.fit`` uses
        (:meth:`~groupcov.api.GroupCovModel.default_algorithm`).
    """

    def __init__(
        self,
        gcm,
        draws: int,
        tune: int,
        chains: int = 2,
        var_names: Sequence[str] = ("mu", "sigma", "corr", "cov"),
        target_accept: float | None = None,
        algorithm: str | None = None,
    ):
        self.gcm = gcm
        self.draws, self.tune, self.chains = int(draws), int(tune), int(chains)
        self.algorithm = gcm.default_algorithm() if algorithm is None else algorithm
        if target_accept is None:
            target_accept = gcm.default_target_accept(self.algorithm)
        self.target_accept = float(target_accept)
        spec = gcm._density_spec()
        if spec is not None:  # what GroupCovModel.fit samples
            known = [name for name, _ in output_dims(spec)]
        else:
            model = gcm._built_model()  # the same object as gcm.model
            known = [v.name for v in model.unobserved_value_vars]
        missing = sorted(set(var_names) - set(known))
        if missing:
            raise ValueError(f"var_names {missing} are not variables of the model; have {known}")
        self.var_names = list(var_names)
        settings = SamplerSettings(
            draws=self.draws, tune=self.tune, chains=self.chains, random_seed=0,
            progressbar=False, target_accept=self.target_accept,
            var_names=tuple(self.var_names),
        )
        options = {"algorithm": self.algorithm}
        # the program GroupCovModel.fit compiles; here vectorized over data sets
        if spec is not None:
            self._program = density_chain_program(spec, gcm._values, settings, options)
        else:
            self._program = chain_program(model, settings, options)
        self._run = None

    def data_values(self, stats: SufficientStats) -> list[np.ndarray]:
        """The model's data containers for ``stats``, in the compiled function's order."""
        gcm = self.gcm
        values, _ = model_data(
            stats, gcm.spec["means"], gcm.spec["covariance"], gcm.priors,
            gcm.parameterization, gcm.fixed_standardization,
        )
        names = self._program.data_names
        if set(values) != set(names):
            raise ValueError(
                f"statistics need data containers {sorted(values)}, the model has "
                f"{sorted(names)}: build a model for this kind of data"
            )
        return [np.asarray(values[name]) for name in names]

    def _compile(self):
        import jax

        chain = self._program.chain
        names = [name for name, _ in self._program.outputs]
        keep = [names.index(v) for v in self.var_names]

        def one_chain(key, data):
            values, diverging, steps = chain(key, data)[:3]
            return [values[i] for i in keep], diverging, steps.sum()

        over_sets = jax.vmap(one_chain, in_axes=(0, 0))
        if jax.default_backend() == "cpu" and jax.local_device_count() >= self.chains > 1:
            return CompiledOnFirstCall(jax.pmap(over_sets, in_axes=(0, None)))
        return CompiledOnFirstCall(jax.jit(jax.vmap(over_sets, in_axes=(0, None))))

    def sample(self, stats: Sequence[SufficientStats], seed: int) -> BatchFit:
        """Fit every data set in ``stats``.

        Parameters
        ----------
        stats : sequence of SufficientStats
            Data sets with the model's groups and features.
        seed : int
            Seed of the initial points and of the samplers.

        Returns
        -------
        BatchFit
        """
        import jax
        import jax.numpy as jnp

        jax.config.update("jax_enable_x64", True)
        enable_compilation_cache()
        start = time.perf_counter()
        if self._run is None:
            self._run = self._compile()
        n_sets, chains = len(stats), self.chains
        columns = list(zip(*[self.data_values(s) for s in stats], strict=True))
        data = tuple(jnp.asarray(np.stack(col)) for col in columns)
        rng = np.random.default_rng(seed)
        keys = jax.random.split(jax.random.PRNGKey(int(rng.integers(2**31))), chains * n_sets)
        keys = keys.reshape(chains, n_sets, *keys.shape[1:])
        values, diverging, steps = jax.block_until_ready(self._run(keys, data))
        # (chain, set, draw, ...) -> (set, chain, draw, ...)
        out = {name: np.swapaxes(np.asarray(v), 0, 1) for name, v in
               zip(self.var_names, values, strict=True)}
        return BatchFit(out, np.swapaxes(np.asarray(diverging), 0, 1),
                        np.swapaxes(np.asarray(steps), 0, 1), time.perf_counter() - start)
