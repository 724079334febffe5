"""Special functions in NumPy for the fitting path.

A fit, warm or cold, needs three special functions: the normal quantile (rank-normalized
R-hat and ESS), ``log Gamma`` and the trigamma function (constants of the LKJ prior's
partial correlations). ``scipy.special`` takes about 0.3 s to import, a tenth of a warm
two-group fit, so these are computed here; the tests check them against SciPy.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["gammaln", "ndtri", "next_fast_len", "trigamma"]

# Wichura (1988), Algorithm AS 241 (PPND16), as in CPython's ``statistics.NormalDist``:
# coefficients from the highest power down, numerator then denominator
_CENTRAL = (
    (2.5090809287301226727e3, 3.3430575583588128105e4, 6.7265770927008700853e4,
     4.5921953931549871457e4, 1.3731693765509461125e4, 1.9715909503065514427e3,
     1.3314166789178437745e2, 3.3871328727963666080e0),
    (5.2264952788528545610e3, 2.8729085735721942674e4, 3.9307895800092710610e4,
     2.1213794301586595867e4, 5.3941960214247511077e3, 6.8718700749205790830e2,
     4.2313330701600911252e1, 1.0),
)
_INTERMEDIATE = (
    (7.74545014278341407640e-4, 2.27238449892691845833e-2, 2.41780725177450611770e-1,
     1.27045825245236838258e0, 3.64784832476320460504e0, 5.76949722146069140550e0,
     4.63033784615654529590e0, 1.42343711074968357734e0),
    (1.05075007164441684324e-9, 5.47593808499534494600e-4, 1.51986665636164571966e-2,
     1.48103976427480074590e-1, 6.89767334985100004550e-1, 1.67638483018380384940e0,
     2.05319162663775882187e0, 1.0),
)
_TAIL = (
    (2.01033439929228813265e-7, 2.71155556874348757815e-5, 1.24266094738807843860e-3,
     2.65321895265761230930e-2, 2.96560571828504891230e-1, 1.78482653991729133580e0,
     5.46378491116411436990e0, 6.65790464350110377720e0),
    (2.04426310338993978564e-15, 1.42151175831644588870e-7, 1.84631831751005468180e-5,
     7.86869131145613259100e-4, 1.48753612908506148525e-2, 1.36929880922735805310e-1,
     5.99832206555887937690e-1, 1.0),
)


def _ratio(coefficients, r):
    num, den = (np.polyval(c, r) for c in coefficients)
    return num / den


def ndtri(p):
    """The standard normal quantile function (``scipy.special.ndtri``), elementwise.

    Wichura's algorithm AS 241, accurate to about 1e-16 relative; ``ndtri(0)`` is
    ``-inf``, ``ndtri(1)`` ``inf`` and values outside [0, 1] give NaN.

    Examples
    --------
    >>> from groupcov._special import ndtri
    >>> ndtri([0.025, 0.5, 0.975]).round(6).tolist()
    [-1.959964, 0.0, 1.959964]
    """
    p = np.asarray(p, dtype="float64")
    q = p - 0.5
    central = np.abs(q) <= 0.425
    r_central = 0.180625 - q * q
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.sqrt(-np.log(np.where(q <= 0.0, p, 1.0 - p)))
        tail = np.where(
            r <= 5.0, _ratio(_INTERMEDIATE, r - 1.6), _ratio(_TAIL, r - 5.0)
        )
        tail = np.where(r == np.inf, np.inf, tail)
    x = np.where(central, q * _ratio(_CENTRAL, r_central), np.where(q < 0.0, -tail, tail))
    return np.where((p >= 0.0) & (p <= 1.0), x, np.nan)


def gammaln(x):
    """``log |Gamma(x)|`` (``scipy.special.gammaln``), elementwise.

    Examples
    --------
    >>> from groupcov._special import gammaln
    >>> round(float(gammaln(5.0)), 12) == round(float(np.log(24.0)), 12)
    True
    """
    x = np.asarray(x, dtype="float64")
    return np.vectorize(math.lgamma, otypes=["float64"])(x) if x.ndim else np.float64(
        math.lgamma(float(x))
    )


# Bernoulli-number coefficients of trigamma's asymptotic series:
# psi'(x) ~ 1/x + 1/(2 x^2) + sum_k B_2k / x^(2k+1)
_TRIGAMMA_SERIES = (1 / 6, -1 / 30, 1 / 42, -1 / 30, 5 / 66, -691 / 2730, 7 / 6)


def trigamma(x):
    """The trigamma function ``psi'(x)`` (``scipy.special.polygamma(1, x)``) for
    ``x > 0``, elementwise.

    The recurrence ``psi'(x) = psi'(x + 1) + 1 / x^2`` moves ``x`` past 20, where the
    asymptotic series is exact to rounding.

    Examples
    --------
    >>> from groupcov._special import trigamma
    >>> round(float(trigamma(1.0)), 12) == round(float(np.pi**2 / 6), 12)
    True
    """
    x = np.asarray(x, dtype="float64")
    shift = np.maximum(np.ceil(20.0 - x), 0.0)
    total = np.zeros_like(x)
    for k in range(int(shift.max()) if shift.size else 0):
        total = total + np.where(k < shift, 1.0 / (x + k) ** 2, 0.0)
    y = x + shift
    inv2 = 1.0 / (y * y)
    series = np.zeros_like(y)
    for c in reversed(_TRIGAMMA_SERIES):
        series = series * inv2 + c
    result = total + 1.0 / y + 0.5 * inv2 + series * inv2 / y
    return np.where(x > 0.0, result, np.nan)


def next_fast_len(n: int) -> int:
    """The smallest ``m >= n`` with no prime factor above 5 (a fast FFT length).

    Examples
    --------
    >>> from groupcov._special import next_fast_len
    >>> next_fast_len(2001), next_fast_len(1024)
    (2025, 1024)
    """
    best = 1 << max(int(n) - 1, 0).bit_length()
    five = 1
    while five < best:
        three = five
        while three < best:
            m = three
            while m < n:
                m *= 2
            best = min(best, m)
            three *= 3
        five *= 5
    return best
