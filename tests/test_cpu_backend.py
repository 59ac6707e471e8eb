"""minidl/backends/cpu against the reference ops they replace, in one process.

Every class registered for the CPU is run against its reference (``helpers.fast_and_reference``):
the channels-last convolution against functions/conv.py's im2col, BatchNorm's rows path (alone and
with its ReLU fused), the fused ReLU, the threaded add, relu(a + b) in one pass and the channels-last
adaptive pooling (max pooling: tests/test_cpu_pooling.py); the numba kernels against their NumPy
twins; the threads' split ufuncs against one plain call.  Inputs include channels-last (non-contiguous
NCHW) arrays, odd channel counts and sizes, strides 2, 1x1 kernels, padding wider than the kernel and
float64.  The fast implementations are switched on here even under MINIDL_REFERENCE=1.
"""
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st

import minidl
from minidl import memory_formats
from minidl.backends.cpu import conv as cpu_conv, conv_gemm, kernels as cpu_kernels, threads as cpu_threads
from minidl.backends import registry
from minidl.backends.cpu.activation import ReLUFused
from minidl.backends.cpu.add import AddReLUThreaded, AddThreaded, add_gradients_threaded
from minidl.backends.cpu.batchnorm import BatchNormAddReLUChannelsLast, BatchNormChannelsLast, BatchNormReLUChannelsLast
from minidl.backends.cpu.optim import AdamFused, AdamWFused, SGDFused
from minidl.backends.cpu.pooling import AdaptiveAvgPool2dChannelsLast, MaxPool2dChannelsLast
from minidl.functions import conv
from minidl.functions.batchnorm import batch_norm
from tests import test_cpu_optim, test_cpu_pooling
from tests.helpers import assert_close, chosen_implementations, fast_and_reference

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def fast_implementations_on():
    """The fast implementations run here whatever MINIDL_REFERENCE says (the references run inside
    ``minidl.backends.reference()`` blocks)."""
    with minidl.backends.reference(False):
        yield


@pytest.fixture(autouse=True)
def threads_even_for_small_arrays(monkeypatch):
    """The arrays here are small; force them through the two-thread paths the big ones take (below the
    size thresholds the ops run on one thread, which test_small_ops_run_on_the_calling_thread checks)."""
    monkeypatch.setenv("MINIDL_NUM_THREADS", "2")
    monkeypatch.setattr(cpu_threads, "PARALLEL_MIN_SIZE", 0)
    monkeypatch.setattr(conv_gemm, "PARALLEL_MIN_COLS", 0)


def channels_last_copy(array):
    """The same values as ``array`` (N, C, H, W), stored (N, H, W, C)."""
    return np.ascontiguousarray(array.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)


def stored_channels_last(array):
    return memory_formats.is_stored_as(array, minidl.channels_last)


def leaf(array, requires_grad=True, memory_format=None):
    """A leaf tensor wrapping ``array`` itself: its dtype and memory layout are kept, and it is tagged
    ``memory_format``, by default ``channels_last`` when the array is a channels_last_copy that is not
    also C-contiguous (as a channels-last op's output would be)."""
    if memory_format is None:
        memory_format = minidl.channels_last if array.ndim == 4 and not array.flags.c_contiguous \
            and stored_channels_last(array) else minidl.contiguous_format
    return minidl.Tensor._from_array(array, requires_grad=requires_grad, memory_format=memory_format)


def conv_and_grads(x_data, w_data, b_data, upstream, **params):
    x, w = leaf(x_data), leaf(w_data)
    b = None if b_data is None else leaf(b_data)
    y = minidl.nn.functional.conv2d(x, w, b, **params)
    (y * minidl.tensor(upstream)).sum().backward()
    return [y.array, x.grad.array, w.grad.array] + ([] if b is None else [b.grad.array])


@st.composite
def conv_cases(draw):
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    dilation = (draw(st.integers(1, 2)), 1)
    padding = (draw(st.integers(0, 3)), draw(st.integers(0, 1)))  # up to wider than the kernel reach
    spatial = [draw(st.integers(max(1, d * (k - 1) + 1 - 2 * p), 9)) for k, d, p in zip(kernel, dilation, padding)]
    return dict(shape=(draw(st.integers(1, 5)), draw(st.integers(1, 5)), *spatial),
                out_channels=draw(st.integers(1, 4)), kernel=kernel, stride=stride, padding=padding,
                dilation=dilation, bias=draw(st.booleans()), channels_last=draw(st.booleans()),
                dtype=draw(st.sampled_from([np.float32, np.float64])), seed=draw(st.integers(0, 2**16)),
                row_shift_min_channels=draw(st.sampled_from([1, cpu_conv.ROW_SHIFT_MIN_CHANNELS])),
                direct=draw(st.booleans()))


@settings(max_examples=40)
@given(conv_cases())
def test_channels_last_conv_matches_the_reference(case):
    rng = np.random.default_rng(case["seed"])
    dtype = case["dtype"]
    x = rng.standard_normal(case["shape"]).astype(dtype)
    if case["channels_last"]:
        x = channels_last_copy(x)
    w = rng.standard_normal((case["out_channels"], case["shape"][1], *case["kernel"])).astype(dtype)
    b = rng.standard_normal(case["out_channels"]).astype(dtype) if case["bias"] else None
    params = {name: case[name] for name in ("stride", "padding", "dilation")}
    out_hw = [conv.output_size(size, k, s, p, p, d) for size, k, s, p, d in
              zip(case["shape"][2:], case["kernel"], case["stride"], case["padding"], case["dilation"])]
    upstream = rng.standard_normal((case["shape"][0], case["out_channels"], *out_hw)).astype(dtype)
    # the small channel counts drawn here take the row-shifted GEMMs only with the threshold lowered
    # float32 runs the direct SIMD kernels (direct_conv.py) unless they are switched off: here both ways
    with mock.patch.object(cpu_conv, "ROW_SHIFT_MIN_CHANNELS", case["row_shift_min_channels"]), \
            mock.patch.object(cpu_conv, "direct_conv_available", lambda: case["direct"]):
        got, expected = fast_and_reference(lambda: conv_and_grads(x, w, b, upstream, **params),
                                           expect=[cpu_conv.Conv2dChannelsLast])
    assert got[0].transpose(0, 2, 3, 1).flags.c_contiguous, "the CPU path returns channels-last memory"
    tolerance = 1e-12 if dtype == np.float64 else 2e-5
    for name, a, e in zip(("output", "input grad", "weight grad", "bias grad"), got, expected):
        assert a.dtype == dtype, name
        np.testing.assert_allclose(a, e, rtol=tolerance, atol=tolerance * 10, err_msg=name)


def test_channels_last_conv_takes_channels_last_gradients_and_skips_unneeded_grads():
    rng = np.random.default_rng(0)
    x_data, w_data = rng.standard_normal((3, 4, 7, 6)), rng.standard_normal((5, 4, 3, 3))
    upstream = channels_last_copy(rng.standard_normal((3, 5, 4, 3)))
    x, w = leaf(x_data, requires_grad=False), leaf(w_data)
    (minidl.nn.functional.conv2d(x, w, stride=2, padding=1) * minidl.tensor(upstream)).sum().backward()
    assert x.grad is None
    with minidl.backends.reference():
        w_plain = leaf(w_data)
        (minidl.nn.functional.conv2d(leaf(x_data), w_plain, stride=2, padding=1)
         * minidl.tensor(upstream)).sum().backward()
    assert_close(w.grad, w_plain.grad, rtol=1e-12, atol=1e-12, what="weight grad")


@pytest.mark.parametrize("channels", [3, 8])
def test_chunks_cover_every_image_once_with_a_small_chunk_size(monkeypatch, channels):
    """3 channels: im2col on a padded copy of the batch; 8 channels: row shifts, each chunk padded in a
    scratch array, no padded copy (conv_forward returns None, and the weight gradient starts from x)."""
    monkeypatch.setattr(conv_gemm, "CHUNK_FLOATS", 50)  # one image per chunk
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((5, channels, 4, 4)), rng.standard_normal((2, channels, 3, 3))
    y, padded, _ = cpu_conv.conv_forward(x, w, None, (1, 1), (1, 1, 1, 1), (1, 1))
    assert (padded is None) == (channels >= cpu_conv.ROW_SHIFT_MIN_CHANNELS)
    with minidl.backends.reference():
        expected = minidl.nn.functional.conv2d(minidl.tensor(x), minidl.tensor(w), padding=1).array
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)
    g = rng.standard_normal(y.shape)
    grad_w = cpu_conv.conv_weight_grad(x, padded, g, w.shape, (1, 1), (1, 1, 1, 1), (1, 1))
    cols = conv.im2col(x, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1))
    expected_w = (g.transpose(1, 0, 2, 3).reshape(2, -1) @ cols.T).reshape(w.shape)
    np.testing.assert_allclose(grad_w, expected_w, rtol=1e-12, atol=1e-12)


def test_conv_input_changed_in_place_after_forward_is_caught_in_backward():
    """The CPU path keeps x itself for dL/dW (no padded copy for narrow layers), so the version check
    applies, as in PyTorch."""
    x = leaf(channels_last_copy(np.random.default_rng(2).standard_normal((2, 8, 5, 5))))
    w = leaf(np.random.default_rng(3).standard_normal((4, 8, 3, 3)))
    y = minidl.nn.functional.conv2d(x, w, padding=1)
    with minidl.no_grad():
        x.mul_(2)
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        y.sum().backward()


# ---------------------------------------------------------------- numba kernels vs NumPy twins
@pytest.fixture(scope="module")
def numba_kernels():
    pytest.importorskip("numba")
    return cpu_kernels._compile()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rows, cols", [(1, 1), (7, 3), (1000, 16), (257, 64)])
def test_numba_kernels_match_numpy_twins(numba_kernels, rows, cols, dtype):
    rng = np.random.default_rng(rows + cols)
    x = (rng.standard_normal((rows, cols)) * 3 + 5).astype(dtype)
    g = rng.standard_normal((rows, cols)).astype(dtype)
    a, b, c = (rng.standard_normal(cols).astype(dtype) for _ in range(3))
    mean = x.mean(axis=0)
    numpy_kernels = cpu_kernels.numpy_kernels()
    tolerance = 1e-12 if dtype == np.float64 else 1e-5
    for name, args in (("shifted_sums", (x, x[0].astype(np.float64))), ("grad_sums", (g, x, mean))):
        np.testing.assert_allclose(numba_kernels[name](*args), numpy_kernels[name](*args), rtol=tolerance,
                                   atol=tolerance, err_msg=name)
    for name, args in (("scale_shift", (x, a, b)), ("input_grad", (g, x, mean, a, b, c))):
        out_numba, out_numpy = np.empty_like(x), np.empty_like(x)
        numba_kernels[name](*args, out_numba)
        numpy_kernels[name](*args, out_numpy)
        np.testing.assert_allclose(out_numba, out_numpy, rtol=tolerance, atol=tolerance, err_msg=name)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rows, cols", [(1, 1), (7, 3), (1000, 17), (257, 64)])
def test_fused_relu_kernels_match_their_twins_and_the_unfused_kernels(numba_kernels, rows, cols, dtype):
    """scale_shift_relu is scale_shift then max(y, 0) and y > 0, scale_shift_add_relu the same after adding r
    (to the bit, also in NumPy); the masked backward kernels are the unmasked ones run on g where positive, else 0
    (a NaN g where the mask is off counts as 0), to the bit in numba, and masked_input_grad_keeping_g also writes
    that g; add_relu is max(a + b, 0) and a + b > 0.  The NumPy twins agree up to rounding."""
    rng = np.random.default_rng(rows * cols)
    x = (rng.standard_normal((rows, cols)) * 3 + 1).astype(dtype)
    g = rng.standard_normal((rows, cols)).astype(dtype)
    a, b, c = (rng.standard_normal(cols).astype(dtype) for _ in range(3))
    mean = x.mean(axis=0)
    positive = rng.random((rows, cols)) < 0.6
    g[~positive] = np.nan
    g_masked = np.where(positive, g, 0).astype(dtype)
    numpy_kernels = cpu_kernels.numpy_kernels()
    tolerance = 1e-12 if dtype == np.float64 else 1e-5
    for kernels in (numba_kernels, numpy_kernels):
        y, y_positive, plain = np.empty_like(x), np.empty(x.shape, dtype=bool), np.empty_like(x)
        kernels["scale_shift_relu"](x, a, b, y, y_positive)
        kernels["scale_shift"](x, a, b, plain)
        np.testing.assert_array_equal(y, np.maximum(plain, 0))
        np.testing.assert_array_equal(y_positive, plain > 0)
        with_residual, added = np.empty_like(x), np.empty(x.shape, dtype=bool)
        kernels["scale_shift_add_relu"](x, a, b, g_masked, with_residual, added)
        np.testing.assert_array_equal(with_residual, np.maximum(plain + g_masked, 0))
        np.testing.assert_array_equal(added, plain + g_masked > 0)
        masked_sums = kernels["masked_grad_sums"](g, positive, x, mean)
        masked_grad, unmasked_grad = np.empty_like(x), np.empty_like(x)
        kernels["masked_input_grad"](g, positive, x, mean, a, b, c, masked_grad)
        kernels["input_grad"](g_masked, x, mean, a, b, c, unmasked_grad)
        assert np.isfinite(masked_sums).all() and np.isfinite(masked_grad).all()
        kept_grad, kept_g = np.empty_like(x), np.empty_like(x)
        kernels["masked_input_grad_keeping_g"](g, positive, x, mean, a, b, c, kept_grad, kept_g)
        np.testing.assert_array_equal(kept_grad, masked_grad)
        np.testing.assert_array_equal(kept_g, g_masked)
        if kernels is numba_kernels:
            np.testing.assert_array_equal(masked_sums, kernels["grad_sums"](g_masked, x, mean))
            np.testing.assert_array_equal(masked_grad, unmasked_grad)
            numba_results = masked_sums, masked_grad
    for got, expected in zip(numba_results, (masked_sums, masked_grad)):
        np.testing.assert_allclose(got, expected, rtol=tolerance, atol=tolerance)
    flat_a, flat_b = x.reshape(-1), g_masked.reshape(-1)
    flat_b[:2] = -flat_a[:2]  # a + b = 0: no gradient
    for kernels in (numba_kernels, numpy_kernels):
        y, y_positive = np.empty_like(flat_a), np.empty(flat_a.shape, dtype=bool)
        kernels["add_relu"](flat_a, flat_b, y, y_positive)
        np.testing.assert_array_equal(y, np.maximum(flat_a + flat_b, 0))
        np.testing.assert_array_equal(y_positive, flat_a + flat_b > 0)


@pytest.mark.parametrize("use_numba", [False, True])
def test_column_mean_and_var_are_accurate_for_large_offsets(use_numba, numba_kernels):
    """numba accumulates in float64 (exact to float64 rounding); the NumPy fallback sums in float32
    with BLAS, so it is as accurate as float32 summation, no more."""
    rng = np.random.default_rng(2)
    x = (rng.standard_normal((100_003, 5)) + 1000).astype(np.float32)
    kernels = numba_kernels if use_numba else cpu_kernels.numpy_kernels()
    mean, var = cpu_kernels.column_mean_and_var(x, kernels)
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(mean, x64.mean(axis=0), rtol=1e-12 if use_numba else 1e-5)
    np.testing.assert_allclose(var, x64.var(axis=0), rtol=1e-5 if use_numba else 1e-2)


# ---------------------------------------------------------------- BatchNorm rows path
def batch_norm_run(function, shape, training, affine, dtype, seed):
    """A run of ``function`` (batch_norm or batch_norm_relu) on a channels-last input drawn from ``seed``,
    returning y, dL/dx, the running statistics and, if ``affine``, dL/dweight and dL/dbias."""
    rng = np.random.default_rng(seed)
    x_data = channels_last_copy((rng.standard_normal(shape) * 2 + 1).astype(dtype))
    upstream = rng.standard_normal(shape).astype(dtype)
    channels = shape[1]
    weight_data = rng.standard_normal(channels).astype(dtype)

    def run():
        x = leaf(x_data, memory_format=minidl.channels_last)
        weight = leaf(weight_data) if affine else None
        bias = leaf(np.linspace(-1, 1, channels).astype(dtype)) if affine else None
        running = [np.linspace(0, 1, channels).astype(dtype), np.linspace(1, 2, channels).astype(dtype)]
        y = function(x, *running, weight, bias, training=training)
        (y * minidl.tensor(upstream)).sum().backward()
        return [y.array, x.grad.array, *running] + ([weight.grad.array, bias.grad.array] if affine else [])
    return run


@settings(max_examples=20)
@given(shape=st.tuples(st.integers(1, 4), st.integers(1, 7), st.integers(1, 5), st.integers(1, 5)),
       training=st.booleans(), affine=st.booleans(), dtype=st.sampled_from([np.float32, np.float64]),
       seed=st.integers(0, 2**16))
def test_batch_norm_on_channels_last_input_matches_the_reference(shape, training, affine, dtype, seed):
    if training and shape[0] * shape[2] * shape[3] == 1:
        return  # one value per channel: training batch norm rejects it (tested in test_batchnorm.py)
    run = batch_norm_run(batch_norm, shape, training, affine, dtype, seed)
    fast, reference = fast_and_reference(run, expect=[BatchNormChannelsLast])
    assert stored_channels_last(fast[0])
    tolerance = 1e-10 if dtype == np.float64 else 1e-4
    for got, expected in zip(fast, reference):
        assert got.dtype == dtype
        np.testing.assert_allclose(got, expected, rtol=tolerance, atol=tolerance)


def assert_batch_norm_relu_matches(fast, reference, dtype):
    """The fast run's results (output first, channels-last) equal the reference's up to rounding, unless an output
    sits at ReLU's kink, where rounding picks the side (then hypothesis draws another case)."""
    assume(np.array_equal(fast[0] > 0, reference[0] > 0))
    assert stored_channels_last(fast[0])
    tolerance = 1e-12 if dtype == np.float64 else 2e-5
    for got, expected in zip(fast, reference):
        assert got.dtype == dtype
        np.testing.assert_allclose(got, expected, rtol=tolerance, atol=tolerance)


@settings(max_examples=25)
@given(shape=st.tuples(st.integers(1, 4), st.integers(1, 40), st.integers(1, 5), st.integers(1, 5)),
       training=st.booleans(), affine=st.booleans(), dtype=st.sampled_from([np.float32, np.float64]),
       seed=st.integers(0, 2**16))
def test_batch_norm_relu_on_channels_last_input_matches_the_reference_composition(shape, training, affine, dtype,
                                                                                 seed):
    """F.batch_norm_relu runs BatchNormReLUChannelsLast (the ReLU inside the batch norm's passes) and gives
    relu(batch_norm(x)) of the reference ops, with its gradients and running statistics."""
    if training and shape[0] * shape[2] * shape[3] == 1:
        return  # one value per channel: training batch norm rejects it (tested in test_batchnorm.py)
    run = batch_norm_run(minidl.nn.functional.batch_norm_relu, shape, training, affine, dtype, seed)
    fast, reference = fast_and_reference(run, expect=[BatchNormReLUChannelsLast])
    assert_batch_norm_relu_matches(fast, reference, dtype)


@settings(max_examples=25)
@given(shape=st.tuples(st.integers(1, 4), st.integers(1, 40), st.integers(1, 5), st.integers(1, 5)),
       training=st.booleans(), affine=st.booleans(), dtype=st.sampled_from([np.float32, np.float64]),
       seed=st.integers(0, 2**16))
def test_batch_norm_add_relu_matches_the_reference_and_the_unfused_fast_ops(shape, training, affine, dtype, seed):
    """F.batch_norm_add_relu runs BatchNormAddReLUChannelsLast: relu(batch_norm(x) + r) of the reference ops with
    its gradients (r's too) and running statistics, and the same bits as the CPU's batch norm then add_relu."""
    if training and shape[0] * shape[2] * shape[3] == 1:
        return  # one value per channel: training batch norm rejects it (tested in test_batchnorm.py)
    residual_data = channels_last_copy(np.random.default_rng(seed + 1).standard_normal(shape).astype(dtype))
    gradients = []

    def with_residual(combine):
        def function(x, *args, **kwargs):
            residual = leaf(residual_data, memory_format=minidl.channels_last)
            gradients.append(residual)
            return combine(x, residual, *args, **kwargs)
        return function

    def unfused(x, residual, *args, **kwargs):
        return minidl.nn.functional.add_relu(minidl.nn.functional.batch_norm(x, *args, **kwargs), residual)

    fused_run = batch_norm_run(with_residual(minidl.nn.functional.batch_norm_add_relu), shape, training, affine,
                               dtype, seed)
    fast, reference = fast_and_reference(lambda: fused_run() + [gradients[-1].grad.array],
                                         expect=[BatchNormAddReLUChannelsLast])
    assert_batch_norm_relu_matches(fast, reference, dtype)
    unfused_run = batch_norm_run(with_residual(unfused), shape, training, affine, dtype, seed)
    with chosen_implementations() as chosen:
        separate = unfused_run() + [gradients[-1].grad.array]
    assert BatchNormAddReLUChannelsLast not in chosen and AddReLUThreaded in chosen
    for got, expected in zip(fast, separate):
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("x_needs_grad", [True, False])
def test_batch_norm_add_relu_gives_the_residual_its_gradient_with_or_without_dx(x_needs_grad):
    """dL/dr is g where the output is positive: written by dL/dx's pass, or by a pass of its own when x needs no
    gradient."""
    rng = np.random.default_rng(7)
    x = leaf(channels_last_copy(rng.standard_normal((4, 6, 5, 5)).astype(np.float32)), requires_grad=x_needs_grad)
    residual = leaf(channels_last_copy(rng.standard_normal((4, 6, 5, 5)).astype(np.float32)))
    weight, bias = leaf(np.ones(6, dtype=np.float32)), leaf(np.zeros(6, dtype=np.float32))
    with chosen_implementations() as chosen:
        y = minidl.nn.functional.batch_norm_add_relu(x, residual, None, None, weight, bias, training=True)
    assert BatchNormAddReLUChannelsLast in chosen
    upstream = rng.standard_normal(y.shape).astype(np.float32)
    (y * minidl.tensor(upstream)).sum().backward()
    np.testing.assert_array_equal(residual.grad.array, np.where(y.array > 0, upstream, 0))
    assert (x.grad is not None) == x_needs_grad


def conv_then_batch_norm(change_in_place=None):
    """y = conv2d(x, w) on the CPU's direct kernels, optionally changed in place, then batch_norm(y) in training:
    y, the batch norm's output and its running statistics."""
    rng = np.random.default_rng(5)
    x = leaf(channels_last_copy(rng.standard_normal((3, 5, 9, 9)).astype(np.float32)))
    w = leaf(rng.standard_normal((20, 5, 3, 3)).astype(np.float32))
    y = minidl.nn.functional.conv2d(x, w, padding=1)
    if change_in_place is not None:
        change_in_place(y)
    running = [np.zeros(20, dtype=np.float32), np.ones(20, dtype=np.float32)]
    out = batch_norm(y, *running, training=True)
    return y, out.array, running


def test_batch_norm_takes_its_statistics_from_the_convolution_before_it(monkeypatch):
    """The convolution sums its output channels (and their squares) while the output is in cache; the batch norm
    that reads that output uses the sums instead of its own pass: the same y and running statistics, to float32
    rounding, as a pass over the same values."""
    passes, column_mean_and_var = [], cpu_kernels.column_mean_and_var

    def counted(rows):
        passes.append(rows.shape)
        return column_mean_and_var(rows)
    monkeypatch.setattr(cpu_kernels, "column_mean_and_var", counted)
    y, got, got_running = conv_then_batch_norm()
    assert passes == []
    expected_running = [np.zeros(20, dtype=np.float32), np.ones(20, dtype=np.float32)]
    expected = batch_norm(y.detach(), *expected_running, training=True).array  # the same values, no sums
    assert len(passes) == 1
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
    for got_stat, expected_stat in zip(got_running, expected_running):
        np.testing.assert_allclose(got_stat, expected_stat, rtol=1e-6)


def test_batch_norm_reads_a_convolution_output_changed_in_place_afresh():
    """An in-place change between the convolution and the batch norm (the tensor's version moves) makes the
    convolution's sums stale: the batch norm takes its own pass, giving the bits of a batch norm of a copy."""
    def change(y):
        with minidl.no_grad():
            y.add_(3.0)
    y, got, running = conv_then_batch_norm(change)
    assert y._version == 1
    copy_running = [np.zeros(20, dtype=np.float32), np.ones(20, dtype=np.float32)]
    expected = batch_norm(minidl.Tensor._from_array(y.array.copy(), memory_format=minidl.channels_last),
                          *copy_running, training=True).array
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(running[0], copy_running[0])


def test_batch_norm_reads_a_convolution_output_given_new_values_afresh():
    """``y.data = other`` swaps y's array without a version change: the batch norm sees the new values."""
    def swap(y):
        y.data = minidl.Tensor._from_array(y.array * 2 + 1, memory_format=minidl.channels_last)
    y, got, _ = conv_then_batch_norm(swap)
    assert y._version == 0
    expected = batch_norm(y.detach(), None, None, training=True).array
    np.testing.assert_array_equal(got, expected)


# ---------------------------------------------------------------- threads
def test_split_covers_every_index_once():
    for count in (1, 2, 3, 10, 129):
        for parts in (1, 2, 3, 8):
            ranges = cpu_threads.split(count, parts)
            assert [i for first, stop in ranges for i in range(first, stop)] == list(range(count))
            assert all(stop > first for first, stop in ranges)


@pytest.mark.parametrize("threads", ["1", "2", "3"])
def test_split_ufuncs_match_one_plain_call_and_keep_the_layout(monkeypatch, threads):
    monkeypatch.setenv("MINIDL_NUM_THREADS", threads)
    rng = np.random.default_rng(3)
    x = channels_last_copy(rng.standard_normal((9, 16, 33, 31)).astype(np.float32))  # above PARALLEL_MIN_SIZE
    g = channels_last_copy(rng.standard_normal(x.shape).astype(np.float32))
    positive = cpu_threads.ufunc(np.greater, x, 0, out_dtype=bool)
    np.testing.assert_array_equal(positive, x > 0)
    relu = cpu_threads.ufunc(np.maximum, x, np.float32(0))
    np.testing.assert_array_equal(relu, np.maximum(x, 0))
    np.testing.assert_array_equal(cpu_threads.ufunc(np.multiply, g, positive), g * positive)
    np.testing.assert_array_equal(cpu_threads.ufunc(np.add, x, g), x + g)
    assert relu.dtype == np.float32 and stored_channels_last(relu)


def test_relu_and_add_on_large_channels_last_tensors_match_numpy():
    rng = np.random.default_rng(4)
    a_data = channels_last_copy(rng.standard_normal((8, 16, 32, 32)).astype(np.float32))
    b_data = rng.standard_normal(a_data.shape).astype(np.float32)
    a, b = leaf(a_data), leaf(b_data)
    y = minidl.nn.functional.relu(a + b)
    upstream = rng.standard_normal(a_data.shape).astype(np.float32)
    (y * minidl.tensor(upstream)).sum().backward()
    np.testing.assert_array_equal(y.array, np.maximum(a_data + b_data, 0))
    np.testing.assert_array_equal(a.grad.array, upstream * (a_data + b_data > 0))
    np.testing.assert_array_equal(b.grad.array, a.grad.array)


@pytest.mark.parametrize("count", [1, 2, 7, 64, 1000])
def test_map_ranges_returns_every_range_once_in_order_whichever_thread_ran_it(monkeypatch, count):
    monkeypatch.setenv("MINIDL_NUM_THREADS", "2")
    ran_in = []
    results = cpu_threads.map_ranges(lambda a, b: ran_in.append(threading.get_ident()) or (a, b), count)
    assert results == cpu_threads.split(count, cpu_threads.FIXED_SLICES)
    assert len(ran_in) == len(results)


def fails_after_the_first_range(first, stop):
    if first > 0:
        raise ValueError(f"range {first}")
    return first


def test_map_ranges_raises_a_workers_exception(monkeypatch):
    monkeypatch.setenv("MINIDL_NUM_THREADS", "2")
    with pytest.raises(ValueError, match="range"):
        cpu_threads.map_ranges(fails_after_the_first_range, 100)


def test_blas_threads_restores_the_previous_setting():
    set_local = cpu_threads._openblas_set_num_threads_local()
    if set_local is None:
        pytest.skip("NumPy's BLAS is not an OpenBLAS with openblas_set_num_threads_local")
    before = set_local(3)
    with cpu_threads.blas_threads(1):
        assert set_local(1) == 1
    assert set_local(before) == 3


def test_nested_map_ranges_runs_serially_inside_a_worker(monkeypatch):
    monkeypatch.setenv("MINIDL_NUM_THREADS", "2")
    inner = cpu_threads.map_ranges(lambda first, stop: cpu_threads.map_ranges(lambda a, b: (a, b), 10), 4)
    assert inner == [[(0, 10)]] * 4  # four ranges of one item, each running its inner call in one piece


def test_map_ranges_later_gives_map_ranges_bits_while_the_caller_goes_on(monkeypatch):
    """A float32 sum over ranges: the same slices as map_ranges, added in the same order, so the same bits; the
    pool's worker starts on them at once, and finish runs once."""
    monkeypatch.setenv("MINIDL_NUM_THREADS", "2")
    values = np.random.default_rng(0).standard_normal(100_000).astype(np.float32)
    started, finished = threading.Event(), []

    def partial_sum(first, stop):
        started.set()
        return values[first:stop].sum(dtype=np.float32)

    def finish(parts):
        finished.append(threading.get_ident())
        total = np.float32(0)
        for part in parts:
            total += part
        return total

    pending = cpu_threads.map_ranges_later(partial_sum, len(values), finish, 1 << 30, 1)
    assert isinstance(pending, cpu_threads.Background)
    assert started.wait(10)  # a worker took a range before anyone asked for the result
    expected = finish(cpu_threads.map_ranges(partial_sum, len(values), 1 << 30, 1))
    assert pending.result() == expected and pending.result() == expected
    assert len(finished) == 2  # once for the later sum, once for expected


def test_map_ranges_later_computes_at_once_on_one_thread_or_for_a_small_op(monkeypatch):
    for threads, size in (("1", 1 << 30), ("2", 10)):
        monkeypatch.setenv("MINIDL_NUM_THREADS", threads)
        pending = cpu_threads.map_ranges_later(lambda first, stop: stop - first, 50, sum, size, 1000)
        assert isinstance(pending, cpu_threads.Ready) and pending.result() == 50


def test_map_ranges_later_raises_a_workers_exception_on_result(monkeypatch):
    monkeypatch.setenv("MINIDL_NUM_THREADS", "2")
    pending = cpu_threads.map_ranges_later(fails_after_the_first_range, 100, sum, 1 << 30, 1)
    with pytest.raises(ValueError, match="range"):
        pending.result()


def test_conv_weight_gradients_run_during_backward_with_the_same_bits(monkeypatch):
    """On two threads the direct kernels' dL/dW comes back as a LaterGradient that backward adds at the end; the
    gradients equal, bit for bit, those computed at once."""
    from minidl.autograd import LaterGradient
    from minidl.backends.cpu import direct_conv
    monkeypatch.setattr(direct_conv, "PARALLEL_MIN_FLOPS", 0)
    returned = []
    backward = cpu_conv.Conv2dChannelsLast.backward
    monkeypatch.setattr(cpu_conv.Conv2dChannelsLast, "backward",
                        lambda self, g: returned.append(backward(self, g)) or returned[-1])
    rng = np.random.default_rng(3)
    x = channels_last_copy(rng.standard_normal((6, 8, 9, 9)).astype(np.float32))
    weights = [rng.standard_normal((8, 8, 3, 3)).astype(np.float32) for _ in range(2)]

    def gradients():
        w1, w2 = leaf(weights[0]), leaf(weights[1])
        y = minidl.nn.functional.conv2d(minidl.tensor(x), w1, padding=1)
        (minidl.nn.functional.conv2d(y.relu(), w2, padding=1) ** 2).sum().backward()
        return w1.grad.array, w2.grad.array

    later = gradients()
    assert [type(grads[1]) for grads in returned] == [LaterGradient, LaterGradient]
    now = lambda work, count, finish, size=None, min_size=None: cpu_threads.Ready(
        finish(cpu_threads.map_ranges(work, count, size, min_size)))
    monkeypatch.setattr(direct_conv, "map_ranges_later", now)
    returned.clear()
    at_once = gradients()
    assert [type(grads[1]) for grads in returned] == [np.ndarray, np.ndarray]
    for a, b in zip(later, at_once):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("channels, dilation", [(40, (1, 1)), (40, (2, 1)), (20, (1, 2))])
def test_wide_stride1_convs_take_the_full_im2col_path_and_match(channels, dilation):
    """KW*C = 120 is above the row-shift limit (the generic chunked im2col everywhere); KW*C = 60 takes
    the row shifts (forward, input gradient and weight gradient)."""
    rng = np.random.default_rng(5)
    x = channels_last_copy(rng.standard_normal((3, channels, 7, 6)).astype(np.float32))
    w = rng.standard_normal((6, channels, 3, 3)).astype(np.float32)
    params = dict(padding=1, dilation=dilation)
    with minidl.backends.reference():
        y_plain = minidl.nn.functional.conv2d(leaf(x), leaf(w), **params).array
    upstream = rng.standard_normal(y_plain.shape).astype(np.float32)
    with minidl.backends.reference():
        expected = conv_and_grads(x, w, None, upstream, **params)
    for name, a, e in zip(("output", "input grad", "weight grad"), conv_and_grads(x, w, None, upstream, **params),
                          expected):
        np.testing.assert_allclose(a, e, rtol=1e-4, atol=1e-4, err_msg=name)


@pytest.mark.parametrize("use_numba", [False, True])
@pytest.mark.parametrize("layout", ["nchw", "nhwc", "transposed", "sliced"])
def test_fused_relu_matches_numpy_on_every_layout(use_numba, layout, numba_kernels):
    rng = np.random.default_rng(6)
    x = rng.standard_normal((4, 5, 6, 7))
    x.flat[:3] = [np.nan, -0.0, 0.0]
    x = {"nchw": x, "nhwc": channels_last_copy(x), "transposed": x.T, "sliced": x[:, ::2]}[layout]
    result = cpu_kernels.relu(x, numba_kernels if use_numba else cpu_kernels.numpy_kernels())
    if layout == "sliced":
        assert result is None  # no flat view: ReLU falls back to np.maximum and x > 0
        return
    y, positive = result
    np.testing.assert_array_equal(y, np.maximum(x, 0))
    np.testing.assert_array_equal(positive, x > 0)
    assert y.strides == x.strides and y.dtype == x.dtype


@pytest.mark.parametrize("use_numba", [False, True])
@pytest.mark.parametrize("layout", ["nchw", "nhwc", "mixed", "sliced"])
def test_fused_relu_grad_matches_where_on_every_layout(use_numba, layout, numba_kernels):
    """g where x > 0 else 0; a NaN or Inf gradient where x <= 0 gives 0 (PyTorch's threshold_backward),
    unlike g * mask.  Layouts the flat pass cannot walk (g and the mask ordered differently, or
    strided) return None, and ReLU.backward takes np.where instead."""
    rng = np.random.default_rng(9)
    x = rng.standard_normal((4, 5, 6, 7))
    g = rng.standard_normal(x.shape)
    g.flat[:4] = [np.nan, np.inf, -np.inf, np.nan]
    x.flat[:4] = [-1.0, -0.0, 0.0, 2.0]  # the NaN at 3 meets x > 0 and must pass through
    positive = {"nchw": x, "nhwc": channels_last_copy(x), "mixed": x, "sliced": x}[layout] > 0
    g = {"nchw": g, "nhwc": channels_last_copy(g), "mixed": channels_last_copy(g), "sliced": g[:, :, :, ::-1]}[layout]
    result = cpu_kernels.relu_grad(g, positive, numba_kernels if use_numba else cpu_kernels.numpy_kernels())
    if layout in ("mixed", "sliced"):
        assert result is None
        return
    np.testing.assert_array_equal(result, np.where(x > 0, g, 0))
    assert result.strides == g.strides and result.dtype == g.dtype
    assert result.flat[0] == 0 and np.isnan(np.where(x > 0, g, 0).flat[3])


@pytest.mark.filterwarnings("ignore:invalid value encountered")  # inf * 0 in the forward product
def test_relu_backward_zeroes_nan_gradients_where_the_input_is_not_positive():
    x = leaf(np.array([-1.0, 0.0, 3.0, -2.0] * 40000))  # above PARALLEL_MIN_SIZE: the fused pass
    upstream = np.array([np.nan, np.inf, 5.0, 1.0] * 40000)
    (minidl.nn.functional.relu(x) * minidl.tensor(upstream)).sum().backward()
    np.testing.assert_array_equal(x.grad.array[:4], [0.0, 0.0, 5.0, 0.0])
    small = leaf(np.array([-1.0, 0.0, 3.0]))  # the np.where path
    (minidl.nn.functional.relu(small) * minidl.tensor(np.array([np.nan, np.inf, 5.0]))).sum().backward()
    np.testing.assert_array_equal(small.grad.array, [0.0, 0.0, 5.0])


def test_relu_module_uses_the_fused_pass_and_matches_plain_numpy():
    rng = np.random.default_rng(7)
    for x_data in (rng.standard_normal((8, 16, 32, 32)).astype(np.float32),
                   channels_last_copy(rng.standard_normal((8, 16, 32, 32)).astype(np.float32)),
                   rng.standard_normal((8, 16, 32, 64))[..., ::2]):  # above PARALLEL_MIN_SIZE; the last without a flat view
        x = leaf(x_data)
        y = minidl.nn.functional.relu(x)
        upstream = rng.standard_normal(x_data.shape).astype(x_data.dtype)
        (y * minidl.tensor(upstream)).sum().backward()
        np.testing.assert_array_equal(y.array, np.maximum(x_data, 0))
        np.testing.assert_array_equal(x.grad.array, upstream * (x_data > 0))


def test_map_ranges_works_in_a_forked_child(monkeypatch):
    import os
    monkeypatch.setenv("MINIDL_NUM_THREADS", "2")
    assert sum(cpu_threads.map_ranges(lambda a, b: b - a, 10)) == 10  # the parent's pool exists now
    if not hasattr(os, "fork"):
        pytest.skip("no fork on this platform")
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: would hang on the parent's pool, whose threads did not survive the fork
        os.write(write_end, str(sum(cpu_threads.map_ranges(lambda a, b: b - a, 10))).encode())
        os._exit(0)
    os.close(write_end)
    _, status = os.waitpid(pid, 0)
    assert os.read(read_end, 16) == b"10" and status == 0


@pytest.mark.parametrize("output_size", [(1, 1), (2, 4)])
def test_adaptive_avg_pool_gradient_keeps_the_channels_last_layout(output_size):
    rng = np.random.default_rng(8)
    x_data = rng.standard_normal((3, 5, 4, 8))
    upstream = rng.standard_normal((3, 5, *output_size))
    grads = []
    for x_array in (x_data, channels_last_copy(x_data)):
        x = leaf(x_array)
        y = minidl.nn.functional.adaptive_avg_pool2d(minidl.nn.functional.relu(x), output_size)
        (y * minidl.tensor(upstream)).sum().backward()
        grads.append(x.grad.array)
        captured = {}
        pooled = minidl.nn.functional.adaptive_avg_pool2d(leaf(x_array), output_size)
        captured["g"] = pooled.grad_fn.backward(upstream)
    assert stored_channels_last(captured["g"])  # the pooling gradient itself, before any copy into .grad
    np.testing.assert_allclose(grads[1], grads[0], rtol=1e-12, atol=1e-12)


def test_row_shift_is_taken_for_narrow_layers_but_not_for_an_rgb_stem():
    assert cpu_conv.strategy(16, (3, 3), (1, 1)) == "row_shift"
    assert cpu_conv.strategy(3, (3, 3), (1, 1)) == "im2col"
    assert cpu_conv.strategy(16, (3, 3), (2, 2)) == "im2col"
    assert cpu_conv.strategy(64, (3, 3), (1, 1)) == "im2col"
    with mock.patch.object(cpu_conv, "ROW_SHIFT_MIN_CHANNELS", 1):
        assert cpu_conv.strategy(3, (3, 3), (1, 1)) == "row_shift"


@pytest.mark.parametrize("pass_", ["forward", "input_grad", "weight_grad"])
def test_float32_strided_projections_take_the_direct_kernels_when_large_enough(pass_):
    pytest.importorskip("numba")
    if not cpu_conv.direct_conv_available():
        pytest.skip("the direct kernels are switched off here")
    large, small = cpu_conv.POINTWISE_DIRECT_MIN_MACS, cpu_conv.POINTWISE_DIRECT_MIN_MACS - 1
    for channels in (16, 64, 256):
        assert cpu_conv.strategy(channels, (1, 1), (2, 2), np.float32, pass_=pass_, macs=large) == "direct"
        assert cpu_conv.strategy(channels, (1, 1), (2, 2), np.float64, pass_=pass_, macs=large) == "im2col"
    # smaller: one GEMM call on the calling thread, but for the weight gradient of a narrow layer
    assert cpu_conv.strategy(256, (1, 1), (2, 2), np.float32, pass_=pass_, macs=small) == "im2col"
    narrow = "direct" if pass_ == "weight_grad" else "im2col"
    assert cpu_conv.strategy(16, (1, 1), (2, 2), np.float32, pass_=pass_, macs=small) == narrow
    # stride 1: one GEMM on the activation as it lies
    assert cpu_conv.strategy(256, (1, 1), (1, 1), np.float32, pass_=pass_, macs=large) == "im2col"


def test_the_conv_passes_count_their_multiply_adds_for_the_strategy(monkeypatch):
    """Each pass asks strategy with its own multiply-adds: output pixels times the weights' size."""
    asked = []
    real = cpu_conv.strategy
    monkeypatch.setattr(cpu_conv, "strategy", lambda *a, **k: asked.append(k.get("macs")) or real(*a, **k))
    x = channels_last_copy(np.ones((2, 4, 6, 6), dtype=np.float32))
    w = np.ones((8, 4, 1, 1), dtype=np.float32)
    g = channels_last_copy(np.ones((2, 8, 3, 3), dtype=np.float32))
    geometry = (2, 2), (0, 0, 0, 0), (1, 1)
    cpu_conv.conv_forward(x, w, None, *geometry)
    cpu_conv.conv_input_grad(g, w, x.shape, *geometry)
    cpu_conv.conv_weight_grad(x, None, g, w.shape, *geometry)
    assert [m for m in asked if m is not None] == [2 * 3 * 3 * 8 * 4] * 3


def test_small_ops_run_on_the_calling_thread(monkeypatch):
    monkeypatch.setattr(cpu_threads, "PARALLEL_MIN_SIZE", 1000)
    caller = threading.get_ident()
    threads = set()
    cpu_threads.map_ranges(lambda a, b: threads.add(threading.get_ident()), 100, size=999)
    assert threads == {caller}
    results = cpu_threads.map_ranges(lambda a, b: (a, b), 100, size=1000)
    assert len(results) == 2  # at the threshold: split, in the fewest slices (far below MIN_SLICE_SIZE)


@pytest.mark.parametrize("threads", ["1", "2", "3"])
@pytest.mark.parametrize("slice_sizes, slices", [(0.1, 2), (1, 2), (4, 4), (9.5, 9), (16, 16), (100, 16)])
def test_a_sums_slices_follow_its_size_never_the_thread_count(monkeypatch, threads, slice_sizes, slices):
    monkeypatch.setattr(cpu_threads, "PARALLEL_MIN_SIZE", 1000)
    monkeypatch.setenv("MINIDL_NUM_THREADS", threads)
    size = int(slice_sizes * cpu_threads.MIN_SLICE_SIZE)
    assert cpu_threads.map_ranges(lambda a, b: (a, b), 1000, size=size) == cpu_threads.split(1000, slices)


@pytest.mark.parametrize("threads, calls", [("1", 1), ("2", 2 * cpu_threads.RANGES_PER_THREAD),
                                            ("3", 3 * cpu_threads.RANGES_PER_THREAD)])
def test_for_ranges_covers_every_item_once_in_ranges_per_thread(monkeypatch, threads, calls):
    monkeypatch.setenv("MINIDL_NUM_THREADS", threads)
    ranges, lock = [], threading.Lock()

    def work(first, stop):
        with lock:
            ranges.append((first, stop))

    cpu_threads.for_ranges(work, 1000, size=cpu_threads.PARALLEL_MIN_SIZE)
    assert sorted(ranges) == cpu_threads.split(1000, calls)
    ranges.clear()
    cpu_threads.for_ranges(work, 1000, size=cpu_threads.PARALLEL_MIN_SIZE - 1)  # small: one call
    assert ranges == [(0, 1000)]


def test_a_small_batch_convolution_stays_on_one_thread(monkeypatch):
    monkeypatch.setattr(conv_gemm, "PARALLEL_MIN_COLS", 1 << 21)
    calls = []
    original = cpu_threads.split
    monkeypatch.setattr(cpu_threads, "split", lambda count, parts: calls.append(parts) or original(count, parts))
    x = leaf(channels_last_copy(np.random.default_rng(4).standard_normal((2, 16, 8, 8)).astype(np.float32)))
    w = leaf(np.random.default_rng(5).standard_normal((16, 16, 3, 3)).astype(np.float32))
    monkeypatch.setattr(cpu_threads, "_get_pool", lambda workers: pytest.fail("a small batch woke the pool"))
    minidl.nn.functional.conv2d(x, w, padding=1).sum().backward()
    assert calls == []  # every op ran as one range on the calling thread


# ---------------------------------------------------------------- ReLU, the residual add, pooling
small_activations = st.tuples(st.integers(1, 3), st.integers(1, 7), st.integers(1, 6), st.integers(1, 6))


@settings(max_examples=15)
@given(shape=small_activations, channels_last=st.booleans(), dtype=st.sampled_from([np.float32, np.float64]),
       seed=st.integers(0, 2**16))
def test_fused_relu_threaded_add_and_gradient_sum_match_the_reference(shape, channels_last, dtype, seed):
    """h = a + b, relu(h) + h: the add and ReLU forward and backward, and the engine's sum of h's two gradients."""
    rng = np.random.default_rng(seed)
    a_data, b_data, upstream = (rng.standard_normal(shape).astype(dtype) for _ in range(3))
    if channels_last:
        a_data, b_data = channels_last_copy(a_data), channels_last_copy(b_data)
    a_data.flat[0] = 0.0  # the ReLU's kink: no gradient at 0, as in PyTorch

    layout = minidl.channels_last if channels_last else minidl.contiguous_format

    def run():
        a, b = leaf(a_data, memory_format=layout), leaf(b_data, memory_format=layout)
        h = a + b
        y = minidl.nn.functional.relu(h) + h
        (y * minidl.tensor(upstream)).sum().backward()
        return [y.array, a.grad.array, b.grad.array], y.memory_format

    summed = []
    with mock.patch.object(minidl.backends.cpu.activation, "FUSED_MIN_SIZE", 0), \
            mock.patch.object(minidl.backends.cpu.add.threads, "add",
                              side_effect=lambda x, y, add=cpu_threads.add: summed.append(x.shape) or add(x, y)):
        (fast, fast_layout), (reference, _) = fast_and_reference(run, expect=[ReLUFused, AddThreaded])
    assert len(summed) == 3  # two forward adds and the gradient sum at h, all on the threaded path
    assert fast_layout is layout and (layout is minidl.contiguous_format or stored_channels_last(fast[0]))
    for got, expected in zip(fast, reference):
        assert got.dtype == dtype
        np.testing.assert_array_equal(got, expected)


@settings(max_examples=15)
@given(shape=small_activations, layouts=st.tuples(st.booleans(), st.booleans()),
       dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2**16))
def test_add_relu_matches_the_reference_composition(shape, layouts, dtype, seed):
    """F.add_relu runs AddReLUThreaded: relu(a + b) and its gradient to the bit, in a's memory order, also
    when b lies in memory differently (then the add and the ReLU are two passes)."""
    rng = np.random.default_rng(seed)
    a_data, b_data, upstream = (rng.standard_normal(shape).astype(dtype) for _ in range(3))
    b_data.flat[0] = -a_data.flat[0]  # a + b = 0: ReLU's kink, no gradient, as in PyTorch...
    upstream.flat[0] = np.nan  # ...even for a NaN gradient
    formats = [minidl.channels_last if is_last else minidl.contiguous_format for is_last in layouts]
    a_data, b_data = (channels_last_copy(data) if is_last else data for data, is_last in zip((a_data, b_data), layouts))

    def run():
        a, b = leaf(a_data, memory_format=formats[0]), leaf(b_data, memory_format=formats[1])
        y = minidl.nn.functional.add_relu(a, b)
        (y * minidl.tensor(upstream)).sum().backward()
        return [y.array, a.grad.array, b.grad.array], y.memory_format

    (fast, fast_layout), (reference, _) = fast_and_reference(run, expect=[AddReLUThreaded])
    assert fast_layout is formats[0] and (formats[0] is minidl.contiguous_format or stored_channels_last(fast[0]))
    assert fast[1][0, 0, 0, 0] == 0
    for got, expected in zip(fast, reference):
        assert got.dtype == dtype
        np.testing.assert_array_equal(got, expected)


@settings(max_examples=15)
@given(shape=small_activations, output_size=st.tuples(st.integers(1, 3), st.integers(1, 3)),
       seed=st.integers(0, 2**16))
def test_channels_last_adaptive_avg_pool_matches_the_reference(shape, output_size, seed):
    rng = np.random.default_rng(seed)
    x_data = channels_last_copy(rng.standard_normal(shape))
    upstream = rng.standard_normal((*shape[:2], *output_size))

    def run():
        x = leaf(x_data, memory_format=minidl.channels_last)
        y = minidl.nn.functional.adaptive_avg_pool2d(x, output_size)
        (y * minidl.tensor(upstream)).sum().backward()
        return [y.array, x.grad.array]

    fast, reference = fast_and_reference(run, expect=[AdaptiveAvgPool2dChannelsLast])
    for got, expected in zip(fast, reference):
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


TESTED_AGAINST_THE_REFERENCE = {
    cpu_conv.Conv2dChannelsLast: test_channels_last_conv_matches_the_reference,
    BatchNormChannelsLast: test_batch_norm_on_channels_last_input_matches_the_reference,
    BatchNormReLUChannelsLast: test_batch_norm_relu_on_channels_last_input_matches_the_reference_composition,
    BatchNormAddReLUChannelsLast: test_batch_norm_add_relu_matches_the_reference_and_the_unfused_fast_ops,
    AddReLUThreaded: test_add_relu_matches_the_reference_composition,
    ReLUFused: test_fused_relu_threaded_add_and_gradient_sum_match_the_reference,
    AddThreaded: test_fused_relu_threaded_add_and_gradient_sum_match_the_reference,
    AdaptiveAvgPool2dChannelsLast: test_channels_last_adaptive_avg_pool_matches_the_reference,
    MaxPool2dChannelsLast: test_cpu_pooling.test_channels_last_max_pool_equals_the_reference_bit_for_bit,
    SGDFused: test_cpu_optim.test_fused_sgd_step_equals_the_reference_bit_for_bit,
    AdamFused: test_cpu_optim.test_fused_adam_and_adamw_steps_equal_the_reference_bit_for_bit,
    AdamWFused: test_cpu_optim.test_fused_adam_and_adamw_steps_equal_the_reference_bit_for_bit,
}


def test_every_registered_cpu_implementation_is_tested_against_its_reference():
    registered = {fast for classes in registry.registered("cpu").values() for fast in classes}
    assert registered == set(TESTED_AGAINST_THE_REFERENCE), "add a test above for each new CPU implementation"
    assert registry.choose_function(minidl.autograd.add_gradients, (np.zeros(1), np.zeros(1))) \
        is add_gradients_threaded


@pytest.mark.parametrize("threads", ["1", "3"])
def test_the_ranges_do_not_depend_on_the_number_of_threads(monkeypatch, threads):
    """Same-seed runs give the same bits on any number of threads: a sum over ranges adds the same partial
    sums in the same order (issue 11: before, 1 and 2 threads gave different BatchNorm and weight-gradient sums)."""
    monkeypatch.setenv("MINIDL_NUM_THREADS", "2")
    two = cpu_threads.map_ranges(lambda a, b: (a, b), 1000)
    monkeypatch.setenv("MINIDL_NUM_THREADS", threads)
    assert cpu_threads.map_ranges(lambda a, b: (a, b), 1000) == two == cpu_threads.split(1000, 16)
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((128, 8, 32, 32)) * 3 + 1).astype(np.float32)  # above PARALLEL_MIN_SIZE: split
    sums = {}
    for count in ("1", "2", threads):
        monkeypatch.setenv("MINIDL_NUM_THREADS", count)
        bn = minidl.nn.BatchNorm2d(8)
        y = bn(leaf(x))
        (y * y).sum().backward()
        sums[count] = (y.array.copy(), bn.running_var.array.copy())
    for count in ("2", threads):
        np.testing.assert_array_equal(sums[count][0], sums["1"][0])
        np.testing.assert_array_equal(sums[count][1], sums["1"][1])


@pytest.mark.parametrize("threads", ["1", "3"])
def test_the_fused_ops_give_the_same_bits_on_any_number_of_threads(monkeypatch, threads):
    """A ResNet block's fused ops (relu(bn(x)), relu(a + b)) and their gradients, split into the same
    16 ranges on 1, 2 or 3 threads: the same bits."""
    rng = np.random.default_rng(3)
    x_data = channels_last_copy((rng.standard_normal((8, 19, 6, 6)) * 3 + 1).astype(np.float32))
    results = {}
    for count in ("1", "2", threads):
        monkeypatch.setenv("MINIDL_NUM_THREADS", count)
        bn, x = minidl.nn.BatchNorm2d(19), leaf(x_data, memory_format=minidl.channels_last)
        with chosen_implementations() as chosen:
            y = minidl.nn.functional.add_relu(bn.forward_relu(x), x)
        assert {BatchNormReLUChannelsLast, AddReLUThreaded} <= set(chosen)
        (y * y).sum().backward()
        results[count] = [y.array, x.grad.array, bn.weight.grad.array, bn.bias.grad.array, bn.running_var.array]
    for count in ("2", threads):
        for got, expected in zip(results[count], results["1"]):
            np.testing.assert_array_equal(got, expected)


# ---------------------------------------------------------------- numba's on-disk cache
_ONE_STEP_THEN_CACHE_STATS = """
import json, sys
import numpy as np
import minidl
from minidl import nn

class Block(nn.Module):  # every kind of CPU kernel a ResNet step runs: conv, BN + ReLU, add + ReLU, pooling, SGD
    def __init__(self):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16)
        self.conv2, self.bn2 = nn.Conv2d(16, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16)
        self.relu, self.pool, self.fc = nn.ReLU(), nn.MaxPool2d(2), nn.Linear(16 * 8 * 8, 10)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)) + x)
        return self.fc(self.pool(x).flatten(1))

model = Block()
optimizer = minidl.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
x = minidl.tensor(np.random.default_rng(0).standard_normal((64, 3, 16, 16)).astype(np.float32))
x = x.contiguous(memory_format=minidl.channels_last)
minidl.nn.functional.cross_entropy(model(x), minidl.tensor(np.arange(64) % 10)).backward()
optimizer.step()
from numba.core.dispatcher import Dispatcher
stats = {}

def record(prefix, functions):  # (cache hits, cache misses) of each numba function that compiled something
    for name, value in functions.items():
        if isinstance(value, Dispatcher) and value.signatures:
            stats[prefix + name] = (sum(value.stats.cache_hits.values()), sum(value.stats.cache_misses.values()))

for name, module in list(sys.modules.items()):
    if name.startswith(("minidl.backends.cpu", "minidl_")):  # the backend's modules and the generated kernels
        record(name + ".", vars(module))
for name in ("kernels", "pool_kernels", "optim"):  # their kernels() dicts: functions made inside _compile()
    record(name + ".", sys.modules["minidl.backends.cpu." + name].kernels())
print(json.dumps(stats))
"""


def test_a_new_process_loads_every_cpu_kernel_from_numbas_cache(tmp_path):
    """The first step of a new process must not compile (issue 13's start-up): a numba kernel that cannot be
    cached (one calling a jitted closure, say) is compiled again in every process, seconds each, silently."""
    pytest.importorskip("numba")
    if os.environ.get("MINIDL_DISABLE_NUMBA", "") in ("1", "true"):
        pytest.skip("MINIDL_DISABLE_NUMBA is set: no numba kernel runs")
    environment = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path), MINIDL_NUM_THREADS="2")
    environment.pop("MINIDL_REFERENCE", None)  # the CPU kernels themselves, also in the reference pass of .ci/run
    runs = [subprocess.run([sys.executable, "-c", _ONE_STEP_THEN_CACHE_STATS], capture_output=True, text=True,
                           env=environment, timeout=600, cwd=str(ROOT)) for _ in range(2)]
    for run in runs:
        assert run.returncode == 0, run.stderr
    first, second = (json.loads(run.stdout.strip().splitlines()[-1]) for run in runs)
    assert len(second) >= 10, second  # the step did run the compiled kernels
    assert {name: hits for name, (hits, misses) in first.items() if hits} == {}, "the first run found a cache"
    not_loaded = {name: counts for name, counts in second.items() if counts[1] or not counts[0]}
    assert not_loaded == {}, f"compiled again in a second process (hits, misses): {not_loaded}"
