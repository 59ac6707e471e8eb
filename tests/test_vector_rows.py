"""BatchNorm's column sums on SIMD vectors (minidl/backends/cpu/vector_rows.py) against kernels.py's numba loops.

Every vector width is compiled and run here (4, 8 and 16 lanes: SSE, AVX2 and AVX-512 sizes; LLVM splits a
vector wider than the machine's registers), on row counts that are not multiples of the flush block or of
two, and with the ReLU mask set at random over NaN gradients.
"""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

pytest.importorskip("numba")

from minidl.backends.cpu import kernels as cpu_kernels, threads as cpu_threads, vector_rows  # noqa: E402

WIDTHS = (4, 8, 16)


@pytest.fixture(scope="module")
def scalar():
    return cpu_kernels._compile()


def assert_sums_close(got, expected, terms):
    """Sums of float32 terms to float32 rounding: relative to the sum of their magnitudes."""
    scale = np.abs(terms).sum(axis=0) + 1e-30
    np.testing.assert_array_less(np.abs(got - expected), 1e-6 * scale + 1e-30)


@settings(max_examples=25, deadline=None)
@given(width=st.sampled_from(WIDTHS), rows=st.integers(1, 700), groups=st.integers(1, 5),
       seed=st.integers(0, 2**16))
def test_the_three_sums_match_the_scalar_kernels(scalar, width, rows, groups, seed):
    rng = np.random.default_rng(seed)
    c = groups * width
    x = (rng.standard_normal((rows, c)) * 3 + 5).astype(np.float32)
    g = rng.standard_normal((rows, c)).astype(np.float32)
    positive = rng.random((rows, c)) < 0.6
    g_masked_off = np.where(positive, g, np.nan).astype(np.float32)  # a NaN where the mask is off counts as 0
    mean = x.mean(axis=0).astype(np.float32)
    shift = x[0].astype(np.float64)
    vectors = vector_rows.Kernels(width, scalar)
    centred = x - shift
    assert_sums_close(vectors.statistics(x, shift), scalar["shifted_sums"](x, shift),
                      np.stack([centred, centred ** 2], axis=1))
    terms = np.stack([g, g * (x - mean)], axis=1)
    assert_sums_close(vectors.gradient(g, x, mean), scalar["grad_sums"](g, x, mean), terms)
    masked = vectors.gradient(g_masked_off, x, mean, positive)
    assert np.isfinite(masked).all()
    assert_sums_close(masked, scalar["masked_grad_sums"](g_masked_off, positive, x, mean),
                      terms * positive[:, None, :])


@pytest.mark.parametrize("threads", ["1", "3"])
def test_the_sums_are_the_same_bits_on_any_number_of_threads(monkeypatch, scalar, threads):
    """Several of sum_slices' fixed slices per call: the same partial sums, added in the same order."""
    monkeypatch.setattr(cpu_threads, "PARALLEL_MIN_SIZE", 1000)
    monkeypatch.setattr(cpu_threads, "MIN_SLICE_SIZE", 1000)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2000, 16)).astype(np.float32)
    g = rng.standard_normal((2000, 16)).astype(np.float32)
    mean = x.mean(axis=0).astype(np.float32)
    assert cpu_threads.sum_slices(x.size) == cpu_threads.FIXED_SLICES
    vectors = vector_rows.Kernels(16, scalar)
    results = {}
    for count in ("2", threads):
        monkeypatch.setenv("MINIDL_NUM_THREADS", count)
        results[count] = vectors.statistics(x, x[0].astype(np.float64)), vectors.gradient(g, x, mean, x > 0)
    for one, other in zip(results["2"], results[threads]):
        np.testing.assert_array_equal(one, other)


def test_the_mean_and_variance_stay_accurate_for_large_offsets():
    """float32 sums over at most FLUSH rows, float64 beyond: as accurate as the scalar kernels' float64 sums."""
    rng = np.random.default_rng(2)
    x = (rng.standard_normal((100_003, 16)) + 1000).astype(np.float32)
    assert isinstance(cpu_kernels.row_kernels(x), vector_rows.Kernels)
    mean, var = cpu_kernels.column_mean_and_var(x)
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(mean, x64.mean(axis=0), rtol=1e-10)
    np.testing.assert_allclose(var, x64.var(axis=0), rtol=1e-5)


@pytest.mark.parametrize("dtype, channels, width", [(np.float32, 64, 16), (np.float32, 24, 8), (np.float32, 12, 4),
                                                    (np.float32, 6, None), (np.float64, 64, None)])
def test_the_widest_vector_that_divides_the_channels_is_chosen(monkeypatch, dtype, channels, width):
    from minidl.backends.cpu import simd
    monkeypatch.setattr(simd, "HOST_WIDTH", 16)
    x = np.zeros((10, channels), dtype=dtype)
    assert vector_rows.width_for(x) == width
    assert vector_rows.width_for(x, max_width=8) == (None if width is None else min(width, 8))
    assert vector_rows.width_for(np.zeros((channels, 10), dtype=dtype).T) is None  # not C-contiguous rows
    chosen = cpu_kernels.row_kernels(x)
    assert isinstance(chosen, vector_rows.Kernels) == (width is not None)


@pytest.mark.parametrize("width", WIDTHS)
def test_simd_where_keeps_the_lanes_whose_flag_is_set(width):
    from numba import njit
    from minidl.backends.cpu import simd
    v = simd.lanes(width)
    where, load, store = v.where, v.load, v.store

    @njit
    def masked(flags, x, out):
        for i in range(0, x.size, width):
            store(out, i, where(flags, i, load(x, i)))

    rng = np.random.default_rng(width)
    x = rng.standard_normal(4 * width).astype(np.float32)
    x[1] = np.nan
    flags = rng.random(x.size) < 0.5
    flags[1] = False
    out = np.empty_like(x)
    masked(flags, x, out)
    np.testing.assert_array_equal(out, np.where(flags, x, 0).astype(np.float32))
    with pytest.raises(Exception, match="1-D C-contiguous bool"):
        masked(flags.astype(np.uint8), x, out)
