"""groupcov._special against SciPy, and the fitting path free of SciPy."""

import subprocess
import sys

import numpy as np
import pytest
from scipy import fft, special

from groupcov._special import gammaln, ndtri, next_fast_len, trigamma


def test_ndtri_matches_scipy_across_its_branches():
    rng = np.random.default_rng(0)
    p = np.concatenate([
        rng.uniform(0.0, 1.0, 20_000),
        0.5 + np.array([-0.425, 0.425, -0.42500001, 0.42500001]),  # central/tail edge
        np.exp(-(1.6 + np.linspace(0.0, 3.4, 50)) ** 2),  # intermediate tail
        10.0 ** -np.linspace(11.0, 300.0, 200),  # far tail (r > 5)
        1.0 - 10.0 ** -np.linspace(1.0, 15.0, 50),
        [1e-320],  # subnormal
    ])
    ours, theirs = ndtri(p), special.ndtri(p)
    assert np.all(np.isfinite(ours))
    np.testing.assert_allclose(ours, theirs, rtol=5e-15, atol=0.0)
    low = p[(p > 1e-6) & (p < 0.5)]  # 1 - p is exact to 1e-10 of the tail there
    np.testing.assert_allclose(ndtri(1.0 - low), -ndtri(low), rtol=1e-10)


def test_ndtri_edges():
    out = ndtri([0.0, 1.0, -0.1, 1.1, np.nan, 0.5])
    assert out[0] == -np.inf and out[1] == np.inf
    assert np.isnan(out[2:5]).all()
    assert out[5] == 0.0
    assert np.ndim(ndtri(0.3)) == 0


def test_gammaln_and_trigamma_match_scipy():
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.uniform(1e-6, 60.0, 5_000), [0.5, 1.0, 1.5, 2.0, 19.9, 20.0, 1e5]])
    np.testing.assert_allclose(gammaln(x), special.gammaln(x), rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(trigamma(x), special.polygamma(1, x), rtol=5e-15)
    assert float(gammaln(4.5)) == pytest.approx(float(special.gammaln(4.5)), rel=1e-15)
    assert np.isnan(trigamma([-1.0, 0.0])).all()


def test_next_fast_len_is_the_smallest_5_smooth_length():
    def smooth(m):
        for f in (2, 3, 5):
            while m % f == 0:
                m //= f
        return m == 1

    for n in range(1, 3000):
        m = next_fast_len(n)
        assert m >= n and smooth(m)
        assert not any(smooth(k) for k in range(n, m))
        assert m <= fft.next_fast_len(n, real=True) or not smooth(fft.next_fast_len(n))


def test_fitting_modules_do_not_import_scipy():
    # scipy.special takes about 0.3 s to import: a tenth of a warm two-group fit
    code = (
        "import sys, groupcov.diagnostics, groupcov.model.density, groupcov.result;"
        "print('scipy.special' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
