"""Default priors, on the standardized scale of the data."""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, fields

__all__ = ["Priors"]


@dataclass(frozen=True)
class Priors:
    """Prior settings, in standardized units (each feature centered at its pooled mean
    and divided by its pooled within-group standard deviation).

    Attributes
    ----------
    eta : float
        LKJ shape of (population) correlation matrices; 1 is uniform, larger values
        favor weaker correlations.
    mu_sigma : float or None
        Normal prior sd of (population) means. ``None`` uses ``2 * total_sd / within_sd``
        per feature, so groups far apart relative to their own spread stay plausible.
    mu_tau_sigma : float or None
        Half-normal scale of the between-group sd of means; ``None``: as ``mu_sigma``/2.
    log_sd_sigma : float
        Normal prior sd of (population) log standard deviations (centered at 0, i.e.
        the pooled within-group sd).
    sd_tau_sigma : float
        Half-normal scale of the between-group sd of log standard deviations.
    corr_tau_sigma : float
        Half-normal scale of the between-group sd of ``atanh`` canonical partial
        correlations.

    Examples
    --------
    >>> Priors.from_user({"eta": 4}).eta
    4.0
    """

    eta: float = 2.0
    mu_sigma: float | None = None
    mu_tau_sigma: float | None = None
    log_sd_sigma: float = 1.0
    sd_tau_sigma: float = 0.5
    corr_tau_sigma: float = 0.5

    def mu_tau_scale(self, mu_sigma):
        """Half-normal scale of the between-group sd of means: ``mu_tau_sigma``, or
        ``mu_sigma / 2`` when it is None (``mu_sigma`` an array or a tensor)."""
        return mu_sigma / 2.0 if self.mu_tau_sigma is None else self.mu_tau_sigma

    @classmethod
    def from_user(cls, priors: Priors | dict | None) -> Priors:
        """Validate a user's overrides (a dict of the attributes above, or Priors)."""
        if priors is None:
            return cls()
        if isinstance(priors, Priors):
            values = asdict(priors)
        elif isinstance(priors, dict):
            known = {f.name for f in fields(cls)}
            unknown = sorted(set(priors) - known)
            if unknown:
                raise ValueError(f"unknown prior setting(s) {unknown}; known: {sorted(known)}")
            values = {**asdict(cls()), **priors}
        else:
            raise TypeError("priors must be a dict or groupcov.Priors")
        for key, value in values.items():
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise TypeError(
                    f"prior setting {key} must be one positive number (on the standardized "
                    f"scale, for every feature), got {value!r} ({type(value).__name__})"
                )
            value = float(value)
            if not (value > 0 and math.isfinite(value)):
                raise ValueError(f"prior setting {key} must be positive and finite, got {value}")
            values[key] = value
        return cls(**values)
