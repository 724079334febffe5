"""Per-group sufficient statistics: reduction, merging, standardization, group estimates."""

import warnings

import numpy as np
import pandas as pd
import pytest

from groupcov.data import reduce
from groupcov.data.frame import reduce_pandas
from groupcov.data.numpy_engine import reduce_array
from groupcov.datasets import _cpc_to_chol
from groupcov.model.centering import cpc_from_corr, group_estimates
from groupcov.stats import Standardization, SufficientStats, combine

SIZES = (1, 2, 7, 50, 123)  # unequal group sizes, including a single-row group
OFFSET = 1e9


def _coded_rows(rng, p, sizes=SIZES, scale=None):
    """Shuffled group codes and rows on a 2**-10 grid (exact even after adding 1e9)."""
    codes = np.repeat(np.arange(len(sizes)), sizes)
    rng.shuffle(codes)
    scale = np.ones(p) if scale is None else np.asarray(scale)
    x = rng.normal(size=(len(codes), p)) * scale + 3.0 * codes[:, None]
    return codes, np.round(x * 1024.0) / 1024.0


def _oracle(codes, x, n_groups):
    """Counts, means and scatters from np.mean / np.cov, group by group."""
    p = x.shape[1]
    n = np.zeros(n_groups)
    mean = np.zeros((n_groups, p))
    scatter = np.zeros((n_groups, p, p))
    for g in range(n_groups):
        xg = x[codes == g]
        n[g] = len(xg)
        mean[g] = xg.mean(axis=0)
        if len(xg) > 1:
            scatter[g] = np.atleast_2d(np.cov(xg, rowvar=False, ddof=1)) * (len(xg) - 1)
    return n, mean, scatter


def _frame(codes, x, labels):
    df = pd.DataFrame(x, columns=[f"f{j}" for j in range(x.shape[1])])
    df.insert(0, "g", np.asarray(labels, dtype=object)[codes])
    return df


def _scaled_error(a, b):
    """Largest |a - b| of scatter entries relative to sqrt(b_ii b_jj) of each group."""
    d = np.sqrt(np.diagonal(b, axis1=-2, axis2=-1))
    return float(np.max(np.abs(a - b) / (d[..., :, None] * d[..., None, :])))


# --- reduction against NumPy ----------------------------------------------------------------


@pytest.mark.parametrize("p", [1, 3])
def test_reduce_array_matches_numpy(p):
    rng = np.random.default_rng(10 + p)
    codes, x = _coded_rows(rng, p, scale=[0.5, 20.0, 1e-3][:p])
    n, mean, scatter = reduce_array(codes, x, len(SIZES))
    n_ref, mean_ref, scatter_ref = _oracle(codes, x, len(SIZES))
    np.testing.assert_array_equal(n, SIZES)
    np.testing.assert_array_equal(n, n_ref)
    np.testing.assert_allclose(mean, mean_ref, rtol=1e-13, atol=0)
    assert scatter.shape == (len(SIZES), p, p)
    np.testing.assert_allclose(scatter, scatter_ref, rtol=1e-12, atol=1e-18)
    np.testing.assert_array_equal(scatter, np.swapaxes(scatter, 1, 2))
    np.testing.assert_array_equal(scatter[0], np.zeros((p, p)))  # the one-row group


@pytest.mark.parametrize("p", [1, 3])
def test_reduce_pandas_matches_numpy(p):
    rng = np.random.default_rng(20 + p)
    codes, x = _coded_rows(rng, p)
    labels = ["e", "d", "c", "b", "a"]  # reversed, so sorting the labels matters
    st = reduce_pandas(_frame(codes, x, labels), "g", [f"f{j}" for j in range(p)])
    n_ref, mean_ref, scatter_ref = _oracle(codes, x, len(SIZES))
    order = [labels.index(g) for g in st.groups]
    assert st.groups == ("a", "b", "c", "d", "e")
    assert st.features == tuple(f"f{j}" for j in range(p))
    assert st.n.dtype.kind == "i"
    np.testing.assert_array_equal(st.n, n_ref[order])
    np.testing.assert_allclose(st.mean, mean_ref[order], rtol=1e-13)
    np.testing.assert_allclose(st.scatter, scatter_ref[order], rtol=1e-12, atol=1e-18)
    assert st.n_rows == sum(SIZES)
    assert (st.n_groups, st.n_features) == (5, p)


def test_reduce_passes_sufficient_stats_through():
    st = SufficientStats(("a",), ("x",), np.array([3]), np.ones((1, 1)), np.ones((1, 1, 1)))
    assert reduce(st, "whatever", ["ignored"]) is st


@pytest.mark.parametrize("chunk_rows", [262_144, 5, 1])
def test_large_offset_does_not_cancel(chunk_rows):
    rng = np.random.default_rng(3)
    codes, x = _coded_rows(rng, 3, scale=[1.0, 0.01, 100.0])
    shifted = x.copy()
    shifted[:, 0] += OFFSET
    assert np.array_equal(shifted[:, 0] - OFFSET, x[:, 0])  # inputs are exact
    n, mean, scatter = reduce_array(codes, x, len(SIZES), chunk_rows=chunk_rows)
    n_s, mean_s, scatter_s = reduce_array(codes, shifted, len(SIZES), chunk_rows=chunk_rows)
    np.testing.assert_array_equal(n_s, n)
    informative = n > 1
    # A naive sum(x x^T) - n xbar xbar^T would be off by O(1) relative here. One chunk
    # is two-pass and loses nothing; merging chunks goes through chunk means stored as
    # float64 near 1e9 (spacing 1.2e-7), which bounds the agreement at ~1e-8 relative.
    tol = 1e-12 if chunk_rows >= len(codes) else 1e-7
    assert _scaled_error(scatter_s[informative], scatter[informative]) < tol
    np.testing.assert_array_equal(scatter_s[~informative], 0.0)
    np.testing.assert_allclose(mean_s[:, 0], mean[:, 0] + OFFSET, rtol=1e-15, atol=0)
    np.testing.assert_allclose(mean_s[:, 1:], mean[:, 1:], rtol=1e-13)


def test_large_offset_single_chunk_scatter_matches_numpy_of_centered_data():
    rng = np.random.default_rng(4)
    codes, x = _coded_rows(rng, 2)
    shifted = x + np.array([OFFSET, -OFFSET])
    _, _, scatter_s = reduce_array(codes, shifted, len(SIZES))
    _, _, scatter_ref = _oracle(codes, x, len(SIZES))
    assert _scaled_error(scatter_s[1:], scatter_ref[1:]) < 1e-12


@pytest.mark.parametrize("p", [1, 3])
@pytest.mark.parametrize("chunk_rows", [1, 4, 17, 64])
def test_chunked_reduction_equals_one_chunk(p, chunk_rows):
    rng = np.random.default_rng(5)
    codes, x = _coded_rows(rng, p)
    whole = reduce_array(codes, x, len(SIZES))
    chunked = reduce_array(codes, x, len(SIZES), chunk_rows=chunk_rows)
    np.testing.assert_array_equal(chunked[0], whole[0])
    np.testing.assert_allclose(chunked[1], whole[1], rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(chunked[2], whole[2], rtol=1e-11, atol=1e-12)


def test_reduce_array_absent_group_is_zero():
    codes = np.array([0, 0, 2, 2, 2])
    x = np.array([[1.0], [3.0], [0.0], [1.0], [5.0]])
    for chunk_rows in (1, 2, 100):
        n, mean, scatter = reduce_array(codes, x, 3, chunk_rows=chunk_rows)
        np.testing.assert_array_equal(n, [2, 0, 3])
        np.testing.assert_allclose(mean.ravel(), [2.0, 0.0, 2.0])
        np.testing.assert_allclose(scatter.ravel(), [2.0, 0.0, 14.0])


# --- merge and combine ----------------------------------------------------------------------


def _split_frames(rng, offset):
    sizes = {"a": 30, "b": 9, "c": 40}
    g = np.repeat(list(sizes), list(sizes.values()))
    x = np.round(rng.normal(size=(len(g), 3)) * 1024.0) / 1024.0
    x[:, 1] += offset
    df = pd.DataFrame({"g": g, "u": x[:, 0], "v": x[:, 1], "w": x[:, 2]})
    df = df.sample(frac=1.0, random_state=1).reset_index(drop=True)
    # first half: rows of a and b only; second half: the rest of a and b, and all of c
    in_first = (df["g"] != "c") & (np.arange(len(df)) % 2 == 0)
    return df, df[in_first], df[~in_first]


@pytest.mark.parametrize("offset", [0.0, OFFSET])
def test_merge_of_halves_equals_whole(offset):
    df, first, second = _split_frames(np.random.default_rng(6), offset)
    features = ["u", "v", "w"]
    a, b = reduce(first, "g", features), reduce(second, "g", features)
    assert set(a.groups) == {"a", "b"}
    assert "c" in b.groups
    merged = a.merge(b)
    whole = reduce(df, "g", features)
    assert merged.groups == ("a", "b", "c")  # self's groups first, then new ones
    assert merged.features == whole.features
    np.testing.assert_array_equal(merged.n, whole.n)
    assert merged.n.dtype.kind == "i"
    np.testing.assert_allclose(merged.mean, whole.mean, rtol=1e-14, atol=1e-14)
    # With offset 0, agreement to rounding. With a 1e9 offset the half means are
    # stored as float64 near 1e9 (spacing 1.2e-7), which bounds the agreement of the
    # between-halves term at ~1e-8 relative; cancellation would give O(1) errors.
    tol = 1e-12 if offset == 0.0 else 1e-6
    assert _scaled_error(merged.scatter, whole.scatter) < tol


def test_merge_keeps_order_of_self_then_new_groups():
    one = SufficientStats(("b", "a"), ("x",), np.array([1, 1]), np.array([[1.0], [3.0]]),
                          np.zeros((2, 1, 1)))
    two = SufficientStats(("c", "a"), ("x",), np.array([1, 1]), np.array([[7.0], [5.0]]),
                          np.zeros((2, 1, 1)))
    merged = one.merge(two)
    assert merged.groups == ("b", "a", "c")
    np.testing.assert_array_equal(merged.n, [1, 2, 1])
    np.testing.assert_allclose(merged.mean.ravel(), [1.0, 4.0, 7.0])
    np.testing.assert_allclose(merged.scatter.ravel(), [0.0, 2.0, 0.0])


def test_merge_rejects_different_features():
    one = SufficientStats(("a",), ("x",), np.array([2]), np.zeros((1, 1)), np.ones((1, 1, 1)))
    two = SufficientStats(("a",), ("y",), np.array([2]), np.zeros((1, 1)), np.ones((1, 1, 1)))
    with pytest.raises(ValueError, match="features"):
        one.merge(two)


def test_combine_matches_direct_computation():
    rng = np.random.default_rng(7)
    xa, xb = rng.normal(size=(6, 2)), rng.normal(size=(11, 2)) + 2.0

    def sc(v):
        return (v - v.mean(0)).T @ (v - v.mean(0))

    n, mean, scatter = combine(6, xa.mean(0), sc(xa), 11, xb.mean(0), sc(xb))
    both = np.vstack([xa, xb])
    assert float(n) == 17.0
    np.testing.assert_allclose(mean, both.mean(0), rtol=1e-14)
    np.testing.assert_allclose(scatter, sc(both), rtol=1e-13)


def test_combine_with_zero_count():
    mean_b = np.array([[1.5, -2.0], [0.25, 4.0]])
    scatter_b = np.array([[[2.0, 0.5], [0.5, 3.0]], [[1.0, 0.0], [0.0, 1.0]]])
    zeros_m, zeros_s = np.zeros((2, 2)), np.zeros((2, 2, 2))
    # empty left side: result is the right side, exactly
    n, mean, scatter = combine(np.zeros(2), zeros_m, zeros_s, np.array([4.0, 1.0]),
                               mean_b, scatter_b)
    np.testing.assert_array_equal(n, [4.0, 1.0])
    np.testing.assert_array_equal(mean, mean_b)
    np.testing.assert_array_equal(scatter, scatter_b)
    # empty right side: the left side is unchanged, exactly
    n, mean, scatter = combine(np.array([4.0, 1.0]), mean_b, scatter_b, np.zeros(2),
                               zeros_m, zeros_s)
    np.testing.assert_array_equal(n, [4.0, 1.0])
    np.testing.assert_array_equal(mean, mean_b)
    np.testing.assert_array_equal(scatter, scatter_b)
    # both empty: no NaN from 0 / 0
    n, mean, scatter = combine(0, np.zeros(2), np.zeros((2, 2)), 0, np.zeros(2),
                               np.zeros((2, 2)))
    assert float(n) == 0.0
    assert np.all(np.isfinite(mean))
    assert np.all(np.isfinite(scatter))
    # mixed batch: one element empty on the left, the other not
    n, mean, scatter = combine(np.array([0.0, 3.0]), np.array([[0.0], [1.0]]),
                               np.array([[[0.0]], [[2.0]]]), np.array([2.0, 1.0]),
                               np.array([[5.0], [5.0]]), np.array([[[8.0]], [[0.0]]]))
    np.testing.assert_array_equal(n, [2.0, 4.0])
    np.testing.assert_allclose(mean.ravel(), [5.0, 2.0])
    np.testing.assert_allclose(scatter.ravel(), [8.0, 2.0 + 3.0 * 1.0 / 4.0 * 16.0])


def test_pooled_equals_all_rows():
    rng = np.random.default_rng(8)
    codes, x = _coded_rows(rng, 3)
    st = SufficientStats(tuple("abcde"), ("x", "y", "z"), *_as_stats(codes, x))
    n, mean, scatter = st.pooled()
    assert n == len(x)
    np.testing.assert_allclose(mean, x.mean(0), rtol=1e-13)
    np.testing.assert_allclose(scatter, np.cov(x, rowvar=False) * (len(x) - 1), rtol=1e-12)


def _as_stats(codes, x):
    n, mean, scatter = reduce_array(codes, x, int(codes.max()) + 1)
    return n.astype(np.int64), mean, scatter


def test_covariance_is_nan_for_single_row_groups():
    st = SufficientStats(("a", "b"), ("x",), np.array([1, 3]), np.array([[1.0], [2.0]]),
                         np.array([[[0.0]], [[4.0]]]))
    cov = st.covariance()
    assert np.isnan(cov[0, 0, 0])
    assert cov[1, 0, 0] == 2.0


# --- standardization ------------------------------------------------------------------------


def test_standardization_pooled_mean_and_within_sd():
    rng = np.random.default_rng(9)
    codes, x = _coded_rows(rng, 3, scale=[1.0, 5.0, 0.2])
    st = SufficientStats(tuple("abcde"), ("x", "y", "z"), *_as_stats(codes, x))
    center, scale = st.standardization()
    resid = x - np.stack([x[codes == g].mean(0) for g in range(5)])[codes]
    within = np.sqrt((resid**2).sum(0) / (len(x) - 5))
    np.testing.assert_allclose(center, x.mean(0), rtol=1e-13)
    np.testing.assert_allclose(scale, within, rtol=1e-12)
    # groups are 3 apart: for features x and z the total sd is far from the within sd
    assert np.all(x.std(0, ddof=1)[[0, 2]] > 2.0 * within[[0, 2]])


def test_standardization_falls_back_to_total_sd_without_within_variation():
    # feature "c" is constant inside each group but differs between groups
    df = pd.DataFrame({
        "g": ["a", "a", "a", "b", "b", "c", "c"],
        "v": [1.0, 2.0, 4.0, 0.0, 3.0, 5.0, 5.5],
        "c": [1.0, 1.0, 1.0, 2.0, 2.0, 7.0, 7.0],
    })
    center, scale = reduce(df, "g", ["v", "c"]).standardization()
    within_v = np.sqrt(df.groupby("g")["v"].var(ddof=0).mul(df.groupby("g").size()).sum() / 4)
    np.testing.assert_allclose(center, df[["v", "c"]].mean().to_numpy(), rtol=1e-14)
    np.testing.assert_allclose(scale[0], within_v, rtol=1e-13)
    np.testing.assert_allclose(scale[1], df["c"].std(ddof=1), rtol=1e-13)


def test_standardization_one_row_per_group_uses_total_sd():
    df = pd.DataFrame({"g": ["a", "b", "c", "d"], "x": [1.0, 2.0, 4.0, 8.0],
                       "y": [0.0, -1.0, 3.0, 3.5]})
    center, scale = reduce(df, "g", ["x", "y"]).standardization()
    np.testing.assert_allclose(center, [3.75, 1.375])
    np.testing.assert_allclose(scale, df[["x", "y"]].std(ddof=1).to_numpy(), rtol=1e-13)


def test_standardization_rejects_constant_feature_by_name():
    df = pd.DataFrame({"g": ["a", "a", "b", "b"], "x": [1.0, 2.0, 0.0, 5.0],
                       "const_col": [3.0, 3.0, 3.0, 3.0]})
    st = reduce(df, "g", ["x", "const_col"])
    with pytest.raises(ValueError, match="const_col"):
        st.standardization()


def test_standardization_needs_two_rows():
    st = SufficientStats(("a",), ("x",), np.array([1]), np.array([[2.0]]), np.zeros((1, 1, 1)))
    with pytest.raises(ValueError, match="two rows"):
        st.standardization()


@pytest.mark.parametrize("offset", [0.0, OFFSET])
def test_standardize_gives_statistics_of_transformed_rows(offset):
    rng = np.random.default_rng(11)
    codes, x = _coded_rows(rng, 3, scale=[2.0, 0.01, 300.0])
    x = x + np.array([offset, 0.0, -5.0])
    st = SufficientStats(tuple("abcde"), ("x", "y", "z"), *_as_stats(codes, x))
    transform = st.standardization()
    assert isinstance(transform, Standardization)
    z = st.standardize(transform)
    _, zmean, zscatter = reduce_array(codes, (x - transform.center) / transform.scale, 5)
    assert z.groups == st.groups
    assert z.features == st.features
    np.testing.assert_array_equal(z.n, st.n)
    # group means near 1e9 are stored with spacing 1.2e-7, so compare to that precision
    atol = 1e-12 if offset == 0.0 else 1e-7
    np.testing.assert_allclose(z.mean, zmean, rtol=1e-12, atol=atol)
    assert _scaled_error(z.scatter[1:], zscatter[1:]) < 1e-9
    # standardized: pooled mean 0, pooled within-group variance 1
    n, mean, _ = z.pooled()
    np.testing.assert_allclose(mean, 0.0, atol=atol)
    within = np.diagonal(z.scatter.sum(0)) / (n - z.n_groups)
    np.testing.assert_allclose(within, 1.0, rtol=1e-12)


@pytest.mark.parametrize(
    ("n_shape", "mean_shape", "scatter_shape"),
    [
        ((3,), (2, 2), (2, 2, 2)),
        ((2,), (2, 3), (2, 2, 2)),
        ((2,), (2, 2), (2, 2, 3)),
        ((2,), (2, 2), (2, 2)),
        ((2, 1), (2, 2), (2, 2, 2)),
    ],
)
def test_sufficient_stats_rejects_inconsistent_shapes(n_shape, mean_shape, scatter_shape):
    with pytest.raises(ValueError, match="inconsistent shapes"):
        SufficientStats(("a", "b"), ("x", "y"), np.ones(n_shape, dtype=np.int64),
                        np.zeros(mean_shape), np.zeros(scatter_shape))


def test_sufficient_stats_accepts_consistent_shapes():
    st = SufficientStats(("a", "b"), ("x", "y"), np.ones(2, dtype=np.int64), np.zeros((2, 2)),
                         np.zeros((2, 2, 2)))
    assert (st.n_groups, st.n_features, st.n_rows) == (2, 2, 2)


# --- group estimates (centering) ------------------------------------------------------------


def _random_spd(rng, p):
    a = rng.normal(size=(p, p))
    return a @ a.T + p * np.eye(p)


def test_group_estimates_infinite_variance_for_tiny_groups():
    rng = np.random.default_rng(12)
    p = 4
    n = np.array([0, 1, 2, 4, 5, 30])
    scatter = np.stack([
        np.zeros((p, p)) if k <= 1 else _random_spd(rng, p) for k in n
    ])
    mean = rng.normal(size=(len(n), p))
    mean[0] = 0.0
    st = SufficientStats(tuple(f"g{k}" for k in range(len(n))), tuple("abcd"), n, mean, scatter)
    est = group_estimates(st)
    mu, v_mu = est["mu"]
    log_sd, v_sd = est["sd"]
    atanh_cpc, v_corr = est["corr"]
    assert v_mu.shape == (6, p)
    assert v_sd.shape == (6, p)
    assert v_corr.shape == (6, p * (p - 1) // 2)
    # no rows: nothing known
    assert np.all(np.isinf(v_mu[0]))
    # n <= 1: no sd or correlation estimate
    assert np.all(np.isinf(v_sd[:2]))
    assert np.all(np.isinf(v_corr[:2]))
    # var(mean) = s^2 / n, with s^2 the group's variance shrunk toward the pooled one by
    # p + 2 rows' worth; a single row estimates the mean with the pooled variance
    diag = np.diagonal(scatter, axis1=1, axis2=2)
    pooled = diag.sum(axis=0) / np.maximum(n - 1.0, 0.0).sum()
    np.testing.assert_allclose(v_mu[1], pooled, rtol=1e-14)
    np.testing.assert_allclose(mu[1], mean[1])
    shrunk = (diag[2:] + (p + 2) * pooled) / (n[2:, None] - 1.0 + p + 2)
    np.testing.assert_allclose(v_mu[2:], shrunk / n[2:, None], rtol=1e-14)
    # var(log sd) = 1 / (2 (n - 1)), log sd from the group's own variance
    var = diag[2:] / (n[2:, None] - 1.0)
    np.testing.assert_allclose(log_sd[2:], 0.5 * np.log(var), rtol=1e-14)
    np.testing.assert_allclose(v_sd[2:], np.broadcast_to(1.0 / (2.0 * (n[2:, None] - 1.0)),
                                                         (4, p)), rtol=1e-14)
    # CPC of column j (order (1,0),(2,0),(3,0),(2,1),(3,1),(3,2)): inf where n <= 3 + j
    column = np.array([0, 0, 0, 1, 1, 2])
    for k, nk in enumerate(n):
        expected = np.where(nk > 3 + column, 1.0 / np.maximum(nk - 3.0 - column, 1.0), np.inf)
        np.testing.assert_array_equal(v_corr[k], expected)
    # the n = 30 group: atanh of the CPCs of its sample correlation
    sd = np.sqrt(np.diag(scatter[-1]))
    corr = scatter[-1] / np.outer(sd, sd)
    np.testing.assert_allclose(atanh_cpc[-1], np.arctanh(cpc_from_corr(corr)), rtol=1e-12)


def test_group_estimates_single_row_group_does_not_warn():
    st = SufficientStats(("a", "b"), ("x", "y"), np.array([1, 5]), np.zeros((2, 2)),
                         np.stack([np.zeros((2, 2)), np.eye(2)]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        est = group_estimates(st)
    assert np.all(np.isinf(est["sd"][1][0]))


def test_group_estimates_zero_variance_feature_is_uninformative():
    st = SufficientStats(("a", "b"), ("x", "y"), np.array([5, 5]), np.zeros((2, 2)),
                         np.array([[[4.0, 0.0], [0.0, 0.0]], [[4.0, 1.0], [1.0, 2.0]]]))
    est = group_estimates(st)
    _, v_sd = est["sd"]
    _, v_corr = est["corr"]
    assert np.isinf(v_sd[0, 1])
    assert v_sd[0, 0] == pytest.approx(1.0 / 8.0)
    assert np.isinf(v_corr[0, 0])
    assert v_corr[1, 0] == pytest.approx(0.5)


def test_group_estimates_one_feature_has_no_cpcs():
    st = SufficientStats(("a", "b"), ("x",), np.array([3, 4]), np.zeros((2, 1)),
                         np.array([[[2.0]], [[3.0]]]))
    est = group_estimates(st)
    assert est["corr"][0].shape == (2, 0)
    assert est["corr"][1].shape == (2, 0)
    np.testing.assert_allclose(est["sd"][1].ravel(), [0.25, 1.0 / 6.0])


@pytest.mark.parametrize("seed", range(5))
def test_cpc_from_corr_inverts_cpc_to_chol(seed):
    rng = np.random.default_rng(100 + seed)
    p = 4
    cpc = rng.uniform(-0.95, 0.95, size=p * (p - 1) // 2)
    chol = _cpc_to_chol(cpc, p)
    corr = chol @ chol.T
    np.testing.assert_allclose(np.diag(corr), 1.0, rtol=1e-14)
    np.testing.assert_allclose(cpc_from_corr(corr), cpc, rtol=1e-10, atol=1e-12)


def test_cpc_from_corr_batched_and_not_positive_definite():
    rng = np.random.default_rng(13)
    cpcs = rng.uniform(-0.9, 0.9, size=(2, 3, 6))
    corr = np.stack([[_cpc_to_chol(c, 4) @ _cpc_to_chol(c, 4).T for c in row] for row in cpcs])
    out = cpc_from_corr(corr)
    assert out.shape == (2, 3, 6)
    np.testing.assert_allclose(out, cpcs, rtol=1e-10, atol=1e-12)
    bad = np.array([[1.0, 0.9, -0.9], [0.9, 1.0, 0.9], [-0.9, 0.9, 1.0]])
    assert np.all(np.isnan(cpc_from_corr(bad)))
