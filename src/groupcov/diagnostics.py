"""Posterior summaries and convergence diagnostics, vectorized over every quantity.

Rank-normalized split R-hat, bulk and tail effective sample size (Vehtari et al. 2021)
and the highest-density interval, with the same definitions as ArviZ 0.23
(``az.rhat``, ``az.ess(method="bulk" | "tail")``, ``az.hdi``) step by step: split
chains, Blom rank back-transformation, Geyer's initial positive and monotone
sequences, R's type-7 quantiles for the tail indicators. ArviZ evaluates them one
quantity at a time; here all quantities of an array are processed together, in chunks
on a thread pool, so a fit with 10,000 groups (350,000 quantities) is summarized in
seconds to minutes instead of hours. Tests compare both to 1e-12.

All functions take draws shaped ``(chain, draw, *shape)`` and return arrays shaped
``shape``. NumPy and SciPy only: no ArviZ import.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from groupcov._special import ndtri, next_fast_len

__all__ = ["ess_bulk", "ess_tail", "hdi", "rank_diagnostics", "rhat", "summarize"]

# Internally every array is laid out (K, chain, draw): one row of draws per quantity,
# so sorting and FFTs run along contiguous memory.


def _split(x: np.ndarray) -> np.ndarray:
    """``(K, chain, draw)`` -> ``(K, 2 chain, draw // 2)``: first and last halves."""
    half = x.shape[2] // 2
    return np.concatenate([x[:, :, :half], x[:, :, x.shape[2] - half :]], axis=1)


def _average_ranks(a: np.ndarray) -> np.ndarray:
    """Ranks (1-based, ties averaged) along the last axis of a 2-D array.

    MCMC draws tie whenever a proposal is rejected, so ties are the rule: each run of
    equal sorted values gets the mean of its positions (``scipy.stats.rankdata``'s
    ``"average"``).
    """
    k, n = a.shape
    order = np.argsort(a, axis=-1)
    ordered = np.take_along_axis(a, order, axis=-1)
    position = np.broadcast_to(np.arange(n), (k, n))
    starts = np.ones((k, n), dtype=bool)
    starts[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    ends = np.ones((k, n), dtype=bool)
    ends[:, :-1] = starts[:, 1:]
    first = np.maximum.accumulate(np.where(starts, position, 0), axis=1)
    last = n - 1 - np.maximum.accumulate(np.where(ends[:, ::-1], position, 0), axis=1)[:, ::-1]
    ranks = np.empty((k, n))
    np.put_along_axis(ranks, order, 0.5 * (first + last) + 1.0, axis=-1)
    return ranks


def _z_scale(x: np.ndarray) -> np.ndarray:
    """Normal scores of the ranks of each quantity over all its chains and draws."""
    k, c, n = x.shape
    rank = _average_ranks(x.reshape(k, c * n))
    return ndtri((rank - 0.375) / (c * n - 0.75 + 1.0)).reshape(k, c, n)


def _rhat(z: np.ndarray) -> np.ndarray:
    n = z.shape[2]
    chain_mean = z.mean(axis=2)
    chain_var = z.var(axis=2, ddof=1)
    between = n * chain_mean.var(axis=1, ddof=1)
    within = chain_var.mean(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.sqrt((between / within + n - 1) / n)


def _autocov(z: np.ndarray) -> np.ndarray:
    """Autocovariance along the draw axis for every lag, like ArviZ."""
    n = z.shape[2]
    m = next_fast_len(2 * n)
    centered = z - z.mean(axis=2, keepdims=True)
    spec = np.fft.rfft(centered, n=m, axis=2)
    power = spec.real**2 + spec.imag**2
    return np.fft.irfft(power, n=m, axis=2)[:, :, :n] / n


def _ess(z: np.ndarray) -> np.ndarray:
    """ArviZ's ``_ess`` (Geyer's initial monotone sequence) for each row of ``z``
    ``(K, chain, draw)``."""
    k, n_chain, n = z.shape
    total = n_chain * n
    constant = (z.max(axis=(1, 2)) - z.min(axis=(1, 2))) < np.finfo(float).resolution
    acov = _autocov(z)  # (K, chain, n)
    mean_var = acov[:, :, 0].mean(axis=1) * n / (n - 1.0)
    var_plus = mean_var * (n - 1.0) / n
    if n_chain > 1:
        var_plus = var_plus + z.mean(axis=2).var(axis=1, ddof=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = 1.0 - (mean_var[:, None] - acov.mean(axis=1)) / var_plus[:, None]  # (K, n)
    rho[:, 0] = 1.0
    n_pairs = n // 2
    pair = rho[:, 0 : 2 * n_pairs : 2] + rho[:, 1 : 2 * n_pairs : 2]  # (K, n_pairs)
    # Geyer's initial positive sequence: ArviZ's loop runs for pairs j = 1 .. j_max
    # (while 2 j - 1 < n - 3) and stops after the first pair whose sum is <= 0.
    j_max = (n - 3) // 2
    j_star = np.zeros(k, dtype=int)
    if j_max >= 1:
        nonpositive = pair[:, 1 : j_max + 1] <= 0.0  # (K, j_max)
        first = np.where(nonpositive.any(axis=1), nonpositive.argmax(axis=1) + 1, j_max)
        j_star = np.where(pair[:, 0] > 0.0, first, 0)
    # sum over pairs 0 .. j* - 1 of the running minimum of the pair sums (monotone step)
    running_min = np.minimum.accumulate(pair, axis=1)
    cum = np.concatenate([np.zeros((k, 1)), np.cumsum(running_min, axis=1)], axis=1)
    head = np.take_along_axis(cum, j_star[:, None], axis=1)[:, 0]
    # the single rho at index 2 j*: kept if its pair was kept (sum >= 0) or it is positive
    last = np.take_along_axis(rho, (2 * j_star)[:, None], axis=1)[:, 0]
    last_pair = np.take_along_axis(pair, j_star[:, None], axis=1)[:, 0]
    kept = (last_pair >= 0.0) | (last > 0.0)
    last = np.where(j_star == 0, 1.0, np.where(kept, last, 0.0))
    tau = -1.0 + 2.0 * head + last
    tau = np.maximum(tau, 1.0 / np.log10(total))
    with np.errstate(invalid="ignore", divide="ignore"):
        ess = total / tau
    ess = np.where(np.isnan(rho).any(axis=1), np.nan, ess)
    return np.where(constant, float(total), ess)


def _type7_quantile(ordered: np.ndarray, prob: float) -> np.ndarray:
    """R's type-7 quantile of each sorted row, with the arithmetic of
    ``scipy.stats.mstats.mquantiles(alphap=1, betap=1)`` (ArviZ's ``quantile``)."""
    n = ordered.shape[1]
    aleph = n * prob + (1.0 + prob * (1.0 - 1.0 - 1.0))
    k = int(np.floor(np.clip(aleph, 1, n - 1)))
    gamma = float(np.clip(aleph - k, 0.0, 1.0))
    return (1.0 - gamma) * ordered[:, k - 1] + gamma * ordered[:, k]


def _hdi_sorted(ordered: np.ndarray, prob: float) -> tuple[np.ndarray, np.ndarray]:
    """Narrowest interval holding ``floor(prob n)`` + 1 of each sorted row's values (ArviZ)."""
    n = ordered.shape[1]
    inc = int(np.floor(prob * n))
    if n - inc <= 0:
        raise ValueError(f"too few draws ({n}) for a {prob:.0%} interval")
    width = ordered[:, inc:] - ordered[:, : n - inc]
    start = np.argmin(width, axis=1)[:, None]
    return (
        np.take_along_axis(ordered, start, axis=1)[:, 0],
        np.take_along_axis(ordered, start + inc, axis=1)[:, 0],
    )


def _chunk_summary(part: np.ndarray, what: frozenset, hdi_prob: float) -> dict:
    """Every requested column for one chunk ``(K, chain, draw)`` of quantities."""
    k, c, n = part.shape
    out: dict[str, np.ndarray] = {}
    bad = ~np.isfinite(part).all(axis=(1, 2))
    nan = np.full(k, np.nan)
    if "mean" in what:
        out["mean"] = part.mean(axis=(1, 2))
    if "sd" in what:
        out["sd"] = part.reshape(k, c * n).std(axis=1, ddof=1) if c * n > 1 else nan.copy()
    if what & {"hdi_low", "hdi_high", "ess_tail"}:
        ordered = np.sort(part.reshape(k, c * n), axis=1)
        if what & {"hdi_low", "hdi_high"}:
            low, high = _hdi_sorted(ordered, hdi_prob)
            out["hdi_low"], out["hdi_high"] = low, high
    if n < 4:  # ArviZ: no R-hat or ESS with fewer than 4 draws
        out.update({key: nan.copy() for key in ("r_hat", "ess_bulk", "ess_tail") if key in what})
        return out
    if what & {"r_hat", "ess_bulk"}:
        split = _split(part)
        z = _z_scale(split)
        if "ess_bulk" in what:
            out["ess_bulk"] = np.where(bad, np.nan, _ess(z))
        if "r_hat" in what:
            if c < 2:
                out["r_hat"] = nan.copy()
            else:
                bulk = _rhat(z)
                median = np.median(split.reshape(k, -1), axis=1)
                tail = _rhat(_z_scale(np.abs(split - median[:, None, None])))
                # ArviZ: max(bulk, tail) in Python: NaN if bulk is NaN, a NaN tail ignored
                rhat = np.where(np.isnan(bulk), np.nan, np.fmax(bulk, tail))
                out["r_hat"] = np.where(bad, np.nan, rhat)
    if "ess_tail" in what:
        both = [
            _ess(_split((part <= _type7_quantile(ordered, q)[:, None, None]).astype(float)))
            for q in (0.05, 0.95)
        ]
        out["ess_tail"] = np.where(bad, np.nan, np.minimum(*both))
    return out


COLUMNS = ("mean", "sd", "hdi_low", "hdi_high", "r_hat", "ess_bulk", "ess_tail")


def summarize(
    x,
    hdi_prob: float = 0.94,
    columns: tuple[str, ...] = COLUMNS,
    *,
    chunk: int = 1024,
    workers: int | None = None,
) -> dict[str, np.ndarray]:
    """Posterior summary of every quantity of ``x`` ``(chain, draw, *shape)``.

    Parameters
    ----------
    x : array_like
        Draws; the first two axes are chain and draw.
    hdi_prob : float
        Probability mass of the highest-density interval.
    columns : tuple of str
        Any of ``"mean"``, ``"sd"`` (ddof 1), ``"hdi_low"``, ``"hdi_high"``, ``"r_hat"``
        (rank-normalized split R-hat, the larger of bulk and folded), ``"ess_bulk"``,
        ``"ess_tail"`` (the smaller of the ESS of the 5% and 95% quantile indicators).
    chunk, workers : int
        Quantities per chunk, and threads (default: one per CPU core; sorting and FFTs
        release the GIL).

    Returns
    -------
    dict of str to numpy.ndarray
        One array shaped ``x.shape[2:]`` per column. R-hat and ESS are NaN for a
        quantity with a non-finite draw; R-hat is NaN for a constant quantity or a
        single chain; ESS is the number of draws for a constant quantity (as ArviZ).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> s = summarize(rng.standard_normal((4, 500, 3)))
    >>> bool(s["r_hat"].max() < 1.01), bool(abs(s["ess_bulk"][0] - 2000) < 300)
    (True, True)
    >>> bool(np.all((s["hdi_low"] < -1.6) & (s["hdi_high"] > 1.6)))
    True
    """
    what = frozenset(columns)
    unknown = what - set(COLUMNS)
    if unknown:
        raise ValueError(f"unknown summary columns {sorted(unknown)}; choose from {COLUMNS}")
    if not 0.0 < hdi_prob < 1.0:
        raise ValueError(f"hdi_prob must be in (0, 1), got {hdi_prob}")
    x = np.asarray(x, dtype=float)
    if x.ndim < 2:
        raise ValueError(f"draws must be shaped (chain, draw, ...), got shape {x.shape}")
    c, n = x.shape[:2]
    flat = x.reshape(c, n, -1)
    size = flat.shape[2]
    out = {key: np.empty(size) for key in columns}

    def one(start: int) -> None:
        part = np.ascontiguousarray(np.moveaxis(flat[:, :, start : start + chunk], 2, 0))
        for key, values in _chunk_summary(part, what, hdi_prob).items():
            out[key][start : start + chunk] = values

    run_threads(one, range(0, size, chunk), workers)
    return {key: values.reshape(x.shape[2:]) for key, values in out.items()}


def run_threads(fn: Callable, items: Sequence, workers: int | None = None) -> None:
    """``fn(item)`` for every item, on up to ``workers`` threads (default: one per CPU
    core), in this thread when one suffices. For NumPy and XLA work, which releases
    the GIL."""
    workers = min(workers or os.cpu_count() or 1, len(items))
    if workers <= 1:
        for item in items:
            fn(item)
        return
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(fn, items))


def rank_diagnostics(
    x, chunk: int = 1024, workers: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Rank-normalized split R-hat and bulk ESS of every quantity of ``x``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> r, e = rank_diagnostics(rng.standard_normal((4, 500, 3)))
    >>> r.shape, bool(r.max() < 1.01)
    ((3,), True)
    """
    s = summarize(x, columns=("r_hat", "ess_bulk"), chunk=chunk, workers=workers)
    return s["r_hat"], s["ess_bulk"]


def rhat(x) -> np.ndarray:
    """Rank-normalized split R-hat of every quantity (``az.rhat``)."""
    return summarize(x, columns=("r_hat",))["r_hat"]


def ess_bulk(x) -> np.ndarray:
    """Bulk effective sample size of every quantity (``az.ess(method="bulk")``)."""
    return summarize(x, columns=("ess_bulk",))["ess_bulk"]


def ess_tail(x) -> np.ndarray:
    """Tail effective sample size of every quantity (``az.ess(method="tail")``)."""
    return summarize(x, columns=("ess_tail",))["ess_tail"]


def hdi(x, hdi_prob: float = 0.94) -> np.ndarray:
    """Highest-density interval of every quantity, shaped ``(*shape, 2)`` (``az.hdi``)."""
    s = summarize(x, hdi_prob, columns=("hdi_low", "hdi_high"))
    return np.stack([s["hdi_low"], s["hdi_high"]], axis=-1)


def half_moments(x) -> tuple[np.ndarray, np.ndarray]:
    """Means and sums of squared deviations of each chain's first and last half.

    The statistics a sampler keeps while it runs when it stores only some of its draws
    (``fit(thin=...)``); :func:`moment_statistics` turns them into the mean, sd and
    split R-hat of all draws. Of an odd number of draws the middle one is left out, as
    split R-hat does.

    Parameters
    ----------
    x : array_like
        Draws ``(chain, draw, *shape)``.

    Returns
    -------
    mean, m2 : numpy.ndarray
        Each ``(chain, 2, *shape)``.

    Examples
    --------
    >>> mean, m2 = half_moments(np.arange(10.0).reshape(1, 10))
    >>> mean.tolist(), m2.tolist()
    ([[2.0, 7.0]], [[10.0, 10.0]])
    """
    x = np.asarray(x, dtype=float)
    if x.ndim < 2:
        raise ValueError(f"draws must be shaped (chain, draw, ...), got shape {x.shape}")
    half = x.shape[1] // 2
    halves = np.stack([x[:, :half], x[:, x.shape[1] - half :]], axis=1)
    mean = halves.mean(axis=2)
    m2 = ((halves - mean[:, :, None]) ** 2).sum(axis=2)
    return mean, m2


def moment_statistics(mean, m2, n: int) -> dict[str, np.ndarray]:
    """Mean, sd and split R-hat of all draws from per-half moments.

    Parameters
    ----------
    mean, m2 : array_like
        ``(chain, 2, *shape)``: each half-chain's mean and sum of squared deviations
        from it (:func:`half_moments`, or a sampler's running moments).
    n : int
        Draws in each half.

    Returns
    -------
    dict of str to numpy.ndarray
        ``"mean"``, ``"sd"`` (ddof 1, over all ``2 n`` draws of every chain) and
        ``"r_hat"``, each shaped ``shape``. R-hat is the split R-hat of Gelman et al.
        (*Bayesian Data Analysis*, 3rd ed., eq. 11.4), without rank normalization:
        ArviZ's ``az.rhat(method="split")``. It needs only these moments, so it covers
        every draw of a thinned fit; NaN for a single chain (as ArviZ) and for a
        quantity constant up to rounding (within-chain variance below
        ``(1e-12 (1 + |mean|))**2``).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> s = moment_statistics(*half_moments(rng.standard_normal((4, 1000))), 500)
    >>> bool(abs(s["mean"]) < 0.05), round(float(s["sd"]), 2), bool(s["r_hat"] < 1.01)
    (True, 1.0, True)
    """
    mean = np.asarray(mean, dtype=float)
    m2 = np.asarray(m2, dtype=float)
    if mean.shape != m2.shape or mean.ndim < 2 or mean.shape[1] != 2:
        raise ValueError(
            f"mean and m2 must both be shaped (chain, 2, ...), got {mean.shape}, {m2.shape}"
        )
    if n < 2:
        raise ValueError(f"each half needs at least 2 draws, got {n}")
    m = mean.reshape(-1, *mean.shape[2:])  # (2 chains, *shape)
    s2 = m2.reshape(m.shape) / (n - 1)
    grand = m.mean(axis=0)
    total = m.shape[0] * n
    sd = np.sqrt((s2.sum(axis=0) * (n - 1) + n * ((m - grand) ** 2).sum(axis=0)) / (total - 1))
    within = s2.mean(axis=0)
    between = n * m.var(axis=0, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        r_hat = np.sqrt(((n - 1) / n * within + between / n) / within)
    # constant up to rounding (a correlation matrix's diagonal), or one chain (as
    # ArviZ): no R-hat
    constant = within <= (1e-12 * (1.0 + np.abs(grand))) ** 2
    r_hat = np.where(constant | (mean.shape[0] < 2), np.nan, r_hat)
    return {"mean": grand, "sd": sd, "r_hat": r_hat}
