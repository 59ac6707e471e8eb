"""max_pool2d, avg_pool2d, adaptive_avg_pool2d: finite differences, PyTorch parity, dtypes, errors."""
import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st

import minidl
from minidl.functions.pooling import adaptive_avg_pool2d, avg_pool2d, max_pool2d, pool_output_size
from minidl.gradcheck import gradcheck
from tests.helpers import assert_close, leaf, torch_or_skip


@st.composite
def pool_cases(draw, max_size=7, dilation=False):
    """Valid pooling geometry: kernel, stride (None = kernel), padding <= kernel/2, dilation, ceil_mode."""
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = draw(st.one_of(st.none(), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    padding = tuple(draw(st.integers(0, k // 2)) for k in kernel)
    dilations = (draw(st.integers(1, 2)), draw(st.integers(1, 2))) if dilation else (1, 1)
    spatial = []
    for k, p, d in zip(kernel, padding, dilations):
        smallest = max(1, d * (k - 1) + 1 - 2 * p)
        spatial.append(draw(st.integers(smallest, max(smallest, max_size))))
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3)), *spatial)
    case = dict(shape=shape, kernel_size=kernel, stride=stride, padding=padding, ceil_mode=draw(st.booleans()),
                seed=draw(st.integers(0, 2**16)))
    if dilation:
        case["dilation"] = dilations
        # With dilation, a window can fall wholly on padding: its max is -inf (PyTorch's CPU kernel reads
        # out of bounds there and may crash), so such geometries are left out.
        assume(not has_window_of_padding_only(case))
    return case


def has_window_of_padding_only(case):
    for size, k, s, p, d in zip(case["shape"][2:], case["kernel_size"], case["stride"] or case["kernel_size"],
                                case["padding"], case["dilation"]):
        for o in range(pool_output_size(size, k, s, p, d, case["ceil_mode"])):
            if not any(0 <= o * s - p + j * d < size for j in range(k)):
                return True
    return False


def distinct_values(shape, seed):
    """Well-separated distinct values (a shuffled ramp), so no max-pool window has a tie."""
    values = np.random.default_rng(seed).permutation(int(np.prod(shape))).astype(np.float64)
    return leaf(values.reshape(shape) * 0.1)


def random_values(shape, seed):
    return leaf(np.random.default_rng(seed).standard_normal(shape))


def compare_with_torch(op, torch_op, x):
    """Forward and backward of op(x) against torch_op on the same float64 data and upstream gradient."""
    torch = torch_or_skip()
    y = op(x)
    upstream = np.random.default_rng(7).standard_normal(y.shape)
    (y * minidl.tensor(upstream)).sum().backward()
    tx = torch.tensor(x.array, requires_grad=True)
    ty = torch_op(tx)
    ty.backward(torch.tensor(upstream))
    assert_close(y, ty, rtol=1e-10, atol=1e-12, what="output")
    assert_close(x.grad, tx.grad, rtol=1e-10, atol=1e-12, what="input grad")


def geometry(case):
    """The keyword arguments of the pooling call (minidl and torch take the same ones)."""
    return {key: value for key, value in case.items() if key not in ("shape", "seed")}


# ------------------------------------------------------------------ max_pool2d
@settings(max_examples=30)
@given(pool_cases(dilation=True))
def test_max_pool2d_gradcheck(case):
    x = distinct_values(case["shape"], case["seed"])
    assert gradcheck(lambda t: max_pool2d(t, **geometry(case)), x)


@settings(max_examples=30)
@given(pool_cases(max_size=10, dilation=True), st.booleans())
def test_max_pool2d_matches_torch(case, with_ties):
    import torch.nn.functional as F
    # Rounded values tie often: the gradient must go to the first arg-max of each window, as in PyTorch.
    x = random_values(case["shape"], case["seed"])
    x = leaf(np.round(x.array)) if with_ties else x
    compare_with_torch(lambda t: max_pool2d(t, **geometry(case)), lambda t: F.max_pool2d(t, **geometry(case)), x)


def test_max_pool2d_propagates_nan_like_torch():
    torch = torch_or_skip()
    data = np.arange(32.0).reshape(1, 2, 4, 4)
    data[0, 0, 1, 1] = np.nan
    y = max_pool2d(leaf(data), 2)
    expected = torch.nn.functional.max_pool2d(torch.tensor(data), 2).numpy()
    np.testing.assert_array_equal(y.array, expected)  # NaNs compare equal here
    assert np.isnan(y.array[0, 0, 0, 0]) and not np.isnan(y.array[0, 1]).any()


def test_max_pool2d_window_of_only_padding_gives_minus_inf_and_no_gradient():
    """Kernel (1, 2) dilated by 2 with padding 1 reads columns (w - 1, w + 1): for w = 0 of a 1-wide input, both pad."""
    x = leaf([[[[1.0, 2.0]]]])
    np.testing.assert_array_equal(max_pool2d(x, (1, 2), stride=1, padding=(0, 1), dilation=(1, 2)).array,
                                  [[[[2.0, 1.0]]]])
    x = leaf([[[[3.0]]]])
    y = max_pool2d(x, (1, 2), stride=1, padding=(0, 1), dilation=(1, 2))
    np.testing.assert_array_equal(y.array, [[[[-np.inf]]]])
    y.backward(minidl.ones_like(y))
    np.testing.assert_array_equal(x.grad.array, [[[[0.0]]]])


def test_max_pool2d_hand_example():
    x = leaf([[[[1.0, 5.0, 2.0], [4.0, 3.0, 0.0], [7.0, 8.0, 9.0]]]])
    y = max_pool2d(x, 2, stride=1)
    np.testing.assert_array_equal(y.array, [[[[5.0, 5.0], [8.0, 9.0]]]])
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.array, [[[[0, 2, 0], [0, 0, 0], [0, 1, 1]]]])


# ------------------------------------------------------------------ avg_pool2d
@settings(max_examples=30)
@given(pool_cases(), st.booleans())
def test_avg_pool2d_gradcheck(case, count_include_pad):
    x = random_values(case["shape"], case["seed"])
    assert gradcheck(lambda t: avg_pool2d(t, **geometry(case), count_include_pad=count_include_pad), x)


@settings(max_examples=30)
@given(pool_cases(max_size=10), st.booleans(), st.sampled_from([None, 1, 3]))
def test_avg_pool2d_matches_torch(case, count_include_pad, divisor_override):
    import torch.nn.functional as F
    x = random_values(case["shape"], case["seed"])
    options = dict(geometry(case), count_include_pad=count_include_pad, divisor_override=divisor_override)
    compare_with_torch(lambda t: avg_pool2d(t, **options), lambda t: F.avg_pool2d(t, **options), x)


def test_ceil_mode_hand_example():
    """5 inputs, kernel 2, stride 2: floor gives 2 windows, ceil a third that holds only x[4]."""
    x = leaf(np.arange(5.0).reshape(1, 1, 1, 5))
    assert max_pool2d(x, (1, 2)).shape == (1, 1, 1, 2)
    np.testing.assert_array_equal(max_pool2d(x, (1, 2), ceil_mode=True).array, [[[[1.0, 3.0, 4.0]]]])
    np.testing.assert_array_equal(avg_pool2d(x, (1, 2), ceil_mode=True).array, [[[[0.5, 2.5, 4.0]]]])


def test_avg_pool2d_count_include_pad_hand_example():
    x = leaf(np.ones((1, 1, 2, 2)))
    corner_with_pad = avg_pool2d(x, 2, stride=1, padding=1)  # windows at the corners see 1 real input of 4
    assert corner_with_pad.array[0, 0, 0, 0] == 0.25 and corner_with_pad.array[0, 0, 1, 1] == 1.0
    np.testing.assert_array_equal(avg_pool2d(x, 2, stride=1, padding=1, count_include_pad=False).array,
                                  np.ones((1, 1, 3, 3)))


# ------------------------------------------------------------------ adaptive_avg_pool2d
adaptive_sizes = st.tuples(st.integers(1, 7), st.integers(1, 7))
output_sizes = st.one_of(st.integers(1, 4), st.tuples(st.integers(1, 5), st.one_of(st.none(), st.integers(1, 5))))


@settings(max_examples=30)
@given(adaptive_sizes, output_sizes, st.integers(0, 2**16))
def test_adaptive_avg_pool2d_gradcheck(spatial, output_size, seed):
    x = random_values((2, 2, *spatial), seed)
    assert gradcheck(lambda t: adaptive_avg_pool2d(t, output_size), x)


@settings(max_examples=30)
@given(st.tuples(st.integers(1, 12), st.integers(1, 12)), output_sizes, st.integers(0, 2**16))
def test_adaptive_avg_pool2d_matches_torch(spatial, output_size, seed):
    import torch.nn.functional as F
    x = random_values((2, 3, *spatial), seed)
    compare_with_torch(lambda t: adaptive_avg_pool2d(t, output_size),
                       lambda t: F.adaptive_avg_pool2d(t, output_size), x)


@pytest.mark.parametrize("spatial, output_size", [((8, 8), 1), ((8, 6), (4, 3)), ((7, 5), (3, 2)), ((5, 5), 7)])
def test_adaptive_avg_pool2d_divisible_and_not(spatial, output_size):
    """Both code paths (reshape + mean when sizes divide, averaging matrices otherwise) against torch."""
    import torch.nn.functional as F
    x = random_values((2, 3, *spatial), 0)
    compare_with_torch(lambda t: adaptive_avg_pool2d(t, output_size),
                       lambda t: F.adaptive_avg_pool2d(t, output_size), x)


def test_adaptive_avg_pool2d_global_average():
    x = leaf(np.arange(24.0).reshape(1, 2, 3, 4))
    y = adaptive_avg_pool2d(x, 1)
    np.testing.assert_allclose(y.array.reshape(2), [5.5, 17.5])
    y.sum().backward()
    np.testing.assert_allclose(x.grad.array, np.full((1, 2, 3, 4), 1 / 12))


# ------------------------------------------------------------------ dtypes and errors
@pytest.mark.parametrize("op", [
    lambda t: max_pool2d(t, 3, stride=2, padding=1),
    lambda t: avg_pool2d(t, 3, stride=2, padding=1),
    lambda t: avg_pool2d(t, 3, stride=2, padding=1, count_include_pad=False),
    lambda t: adaptive_avg_pool2d(t, 1),
    lambda t: adaptive_avg_pool2d(t, (3, 5)),
])
def test_pooling_float32_stays_float32(op):
    x = minidl.tensor(np.random.default_rng(0).standard_normal((2, 3, 8, 7)).astype(np.float32), requires_grad=True)
    y = op(x)
    assert y.dtype == np.float32
    y.sum().backward()
    assert x.grad.dtype == np.float32
    assert_close(y, op(leaf(x.array)).detach().numpy().astype(np.float32), rtol=1e-5, atol=1e-6)


def test_pooling_error_messages():
    x = minidl.zeros((2, 3, 4, 4))
    with pytest.raises(ValueError, match=r"max_pool2d: expected a 4-D input \(N, C, H, W\), got input of shape \(3, 4\)"):
        max_pool2d(minidl.zeros((3, 4)), 2)
    with pytest.raises(ValueError, match=r"avg_pool2d: padding must be between 0 and half the kernel size"):
        avg_pool2d(x, 2, padding=2)
    with pytest.raises(ValueError, match=r"max_pool2d: input of shape \(2, 3, 4, 4\) is too small for "
                                         r"kernel_size=\(5, 5\)"):
        max_pool2d(x, 5)
    with pytest.raises(ValueError, match=r"kernel_size, stride and dilation must be positive"):
        max_pool2d(x, 2, stride=0)
    with pytest.raises(ValueError, match=r"kernel_size must be an int or a pair of ints"):
        max_pool2d(x, (2, 2, 2))
    with pytest.raises(ValueError, match=r"avg_pool2d: divisor_override must be a positive int, got 0"):
        avg_pool2d(x, 2, divisor_override=0)
    with pytest.raises(ValueError, match=r"adaptive_avg_pool2d: output_size must be positive ints, got 0"):
        adaptive_avg_pool2d(x, 0)
    with pytest.raises(ValueError, match=r"adaptive_avg_pool2d: output_size must be an int or a pair"):
        adaptive_avg_pool2d(x, (1, 2, 3))
