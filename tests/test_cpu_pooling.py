"""minidl/backends/cpu's channels-last max pooling against functions/pooling.py's MaxPool2d, to the bit.

Hypothesis draws the geometry (kernel, stride, padding, dilation, ceil_mode, windows of padding only
included), odd channel counts, float32 and float64, values from a small set with ties, -0.0, -inf
and NaN, upstream gradients in either memory layout, and 1 or 2 threads.  Forward, the winners'
positions (``return_indices``) and backward must equal the reference's bits; the numba kernels
must equal their NumPy twins.  The fast implementation is switched on here even under
MINIDL_REFERENCE=1.
"""
import os
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import minidl
from minidl import memory_formats
from minidl.backends import registry
from minidl.backends.cpu import pool_kernels, threads as cpu_threads
from minidl.backends.cpu.activation import ReLUFused
from minidl.backends.cpu.batchnorm import BatchNormChannelsLast
from minidl.backends.cpu.pooling import MaxPool2dChannelsLast
from minidl.functions.activation import ReLU
from minidl.functions.pooling import MaxPool2d, pool_layout
from tests.helpers import chosen_implementations, fast_and_reference

F = minidl.nn.functional
# Ties (repeated small integers, +0.0 against -0.0), -inf (equal to the padding) and NaN (always wins).
VALUES = np.array([-2.0, -1.0, -0.0, 0.0, 1.0, 1.0, 2.0, 3.0, -np.inf, np.nan])


def channels_last_copy(array):
    return np.ascontiguousarray(array.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)


def channels_last_leaf(array):
    return minidl.Tensor._from_array(channels_last_copy(array), requires_grad=True,
                                     memory_format=minidl.channels_last)


def assert_same_bits(actual, expected, what):
    assert actual.shape == expected.shape and actual.dtype == expected.dtype, what
    unsigned = np.dtype(f"u{actual.dtype.itemsize}")
    np.testing.assert_array_equal(np.ascontiguousarray(actual).view(unsigned),
                                  np.ascontiguousarray(expected).view(unsigned), err_msg=what)


@st.composite
def pool_cases(draw):
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = tuple(draw(st.integers(0, k // 2)) for k in kernel)
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    spatial = []
    for k, p, d in zip(kernel, padding, dilation):
        smallest = max(1, d * (k - 1) + 1 - 2 * p)
        spatial.append(draw(st.integers(smallest, smallest + 6)))
    shape = (draw(st.integers(1, 3)), draw(st.sampled_from([1, 2, 3, 5, 8, 17])), *spatial)
    return dict(shape=shape, kernel_size=kernel, stride=stride, padding=padding, dilation=dilation,
                ceil_mode=draw(st.booleans()), dtype=draw(st.sampled_from([np.float32, np.float64])),
                nan=draw(st.booleans()), threads=draw(st.sampled_from(["1", "2"])),
                channels_last_upstream=draw(st.booleans()), seed=draw(st.integers(0, 2**16)))


def pool_and_grads(x_data, upstream, geometry):
    """(y, indices, dx) of max_pool2d on a channels-last leaf holding x_data, with the upstream gradient."""
    x = channels_last_leaf(x_data)
    y, indices = F.max_pool2d(x, **geometry, return_indices=True)
    y.backward(minidl.Tensor._from_array(upstream))
    return y.array, indices.array, x.grad.array


@settings(max_examples=60, deadline=None)
@given(pool_cases())
def test_channels_last_max_pool_equals_the_reference_bit_for_bit(case):
    rng = np.random.default_rng(case["seed"])
    values = VALUES if case["nan"] else VALUES[:-1]
    x_data = rng.choice(values, size=case["shape"]).astype(case["dtype"])
    geometry = {key: case[key] for key in ("kernel_size", "stride", "padding", "dilation", "ceil_mode")}
    out_hw, _ = pool_layout(case["shape"], **{k: v for k, v in geometry.items()})
    # inexact sums where windows overlap: the order in which they are added shows in the bits
    upstream = rng.standard_normal(case["shape"][:2] + out_hw).astype(case["dtype"])
    if case["channels_last_upstream"]:
        upstream = channels_last_copy(upstream)
    with mock.patch.dict(os.environ, {"MINIDL_NUM_THREADS": case["threads"]}), \
            mock.patch.object(cpu_threads, "PARALLEL_MIN_SIZE", 0):  # small arrays split across the threads too
        fast, reference = fast_and_reference(lambda: pool_and_grads(x_data, upstream, geometry),
                                             expect=[MaxPool2dChannelsLast])
    for name, actual, expected in zip(("y", "indices", "dx"), fast, reference):
        assert_same_bits(actual, expected, f"{name} of {case}")
    assert memory_formats.is_stored_as(fast[0], minidl.channels_last)


@pytest.fixture(scope="module")
def numba_kernels():
    pytest.importorskip("numba")
    return pool_kernels._compile()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("geometry", [
    dict(kernel_size=(2, 2), stride=(2, 2), padding=(0, 0), dilation=(1, 1), ceil_mode=False),  # VGG's
    dict(kernel_size=(3, 3), stride=(2, 2), padding=(1, 1), dilation=(1, 1), ceil_mode=True),  # ResNet's stem, ceil
    dict(kernel_size=(3, 2), stride=(1, 1), padding=(1, 1), dilation=(2, 3), ceil_mode=False),  # overlapping, dilated
    dict(kernel_size=(1, 257), stride=(1, 2), padding=(0, 0), dilation=(1, 1), ceil_mode=False),  # int32 offsets
])
def test_numba_kernels_equal_their_numpy_twins(numba_kernels, dtype, geometry):
    rng = np.random.default_rng(3)
    shape = (3, 7, 6, 262 if geometry["kernel_size"][1] > 256 else 9)
    x = rng.choice(VALUES, size=(shape[0], shape[2], shape[3], shape[1])).astype(dtype)  # (N, H, W, C)
    out_hw, pads = pool_layout(shape, geometry["kernel_size"], geometry["stride"], geometry["padding"],
                               geometry["dilation"], geometry["ceil_mode"])
    args = (out_hw, geometry["kernel_size"], geometry["stride"], pads, geometry["dilation"])
    numpy_kernels = pool_kernels.numpy_kernels()
    y, argmax = pool_kernels.max_pool(x, *args, kernels=numba_kernels)
    y_twin, argmax_twin = pool_kernels.max_pool(x, *args, kernels=numpy_kernels)
    assert argmax.dtype == (np.int32 if geometry["kernel_size"][1] > 256 else np.uint8)
    assert_same_bits(y, y_twin, "y")
    np.testing.assert_array_equal(argmax, argmax_twin)
    g = rng.standard_normal(y.shape).astype(dtype)
    dx = pool_kernels.max_pool_grad(g, argmax, shape[2:], *args[1:], kernels=numba_kernels)
    assert_same_bits(dx, pool_kernels.max_pool_grad(g, argmax, shape[2:], *args[1:], kernels=numpy_kernels), "dx")


def test_the_fast_path_is_chosen_for_channels_last_floats_only():
    params = dict(kernel_size=(2, 2), stride=(2, 2), padding=(0, 0), dilation=(1, 1), ceil_mode=False)
    data = np.random.default_rng(0).standard_normal((2, 3, 4, 4))
    with minidl.backends.reference(False):
        for dtype in (np.float32, np.float64):
            x = channels_last_leaf(data.astype(dtype))
            assert registry.choose(MaxPool2d, [x], params) is MaxPool2dChannelsLast
        untagged = minidl.Tensor._from_array(data)  # NCHW: the reference's layout, which it keeps
        assert registry.choose(MaxPool2d, [untagged], params) is MaxPool2d
    with minidl.backends.reference(True):
        assert registry.choose(MaxPool2d, [channels_last_leaf(data)], params) is MaxPool2d


def test_batch_norm_relu_pool_backward_stays_on_the_fast_paths():
    """The pool's gradient is channels-last, so the ReLU before it takes its one-pass backward (not
    the reference's where) and the BatchNorm before that reads it without a transposing copy."""
    rng = np.random.default_rng(5)
    x = channels_last_leaf(rng.standard_normal((4, 16, 8, 8)).astype(np.float32))  # ReLUFused from 4096 values
    relu_reference_backward = mock.Mock(wraps=ReLU.backward)
    with minidl.backends.reference(False), chosen_implementations() as chosen, \
            mock.patch.object(ReLU, "backward", relu_reference_backward):
        pooled = F.max_pool2d(F.relu(F.batch_norm(x, None, None, training=True)), 2)
        assert pooled.memory_format is minidl.channels_last
        g = pooled.grad_fn.backward(np.ones(pooled.shape, dtype=np.float32))
        assert memory_formats.is_stored_as(g, minidl.channels_last)
        pooled.sum().backward()
    assert chosen[:3] == [BatchNormChannelsLast, ReLUFused, MaxPool2dChannelsLast]
    relu_reference_backward.assert_not_called()
