"""The direct SIMD convolution kernels (minidl/backends/cpu/direct_conv.py) against the reference convolution.

Forward, input gradient and weight gradient of float32 channels-last inputs, for both vector widths (AVX2's 8
lanes and AVX-512's 16: LLVM compiles either on any CPU, splitting a vector wider than the machine's
registers, so both run and are checked here whatever the host), against conv.py's im2col/col2im reference
in float64.  Hypothesis draws channel counts that are not multiples of the vector width, kernels from 1x1 to
5x5, strides 1-3, padding up to wider than the kernel reach, and dilation.
"""
import os
import subprocess
import sys
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from minidl.backends.cpu import threads as cpu_threads
from minidl.functions import conv

direct_conv = pytest.importorskip("minidl.backends.cpu.direct_conv")
from minidl.backends.cpu import conv_codegen, simd  # noqa: E402

WIDTHS = (8, 16)


def reference(x, weight, g, stride, padding, dilation):
    """(y, dL/dx, dL/dW) in float64 by the im2col reference: y = W @ cols, dx = col2im(W^T G), dW = G cols^T."""
    x, weight, g = (a.astype(np.float64) for a in (x, weight, g))
    oc, _, kh, kw = weight.shape
    geometry = (kh, kw), stride, padding, dilation
    cols = conv.im2col(x, *geometry)
    g_rows = g.transpose(1, 0, 2, 3).reshape(oc, -1)
    y = (weight.reshape(oc, -1) @ cols).reshape(oc, x.shape[0], *g.shape[2:]).transpose(1, 0, 2, 3)
    dx = conv.col2im(weight.reshape(oc, -1).T @ g_rows, x.shape, *geometry)
    dw = (g_rows @ cols.T).reshape(weight.shape)
    return y, dx, dw


def channels_last(array):
    return np.ascontiguousarray(array.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)


def assert_matches(actual, expected, name):
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=2e-5 * scale, err_msg=name)


@st.composite
def cases(draw):
    kernel = draw(st.sampled_from([(1, 1), (3, 3), (2, 3), (5, 5), (3, 1)]))
    stride = draw(st.sampled_from([(1, 1), (2, 2), (1, 2), (3, 3)]))
    dilation = draw(st.sampled_from([(1, 1), (2, 1)]))
    padding = tuple(draw(st.integers(0, 3)) for _ in range(4))
    size = [draw(st.integers(max(1, d * (k - 1) + 1 - p0 - p1), 11))
            for k, d, p0, p1 in zip(kernel, dilation, padding[::2], padding[1::2])]
    return dict(n=draw(st.integers(1, 3)), c=draw(st.integers(1, 20)), oc=draw(st.integers(1, 37)), size=size,
                kernel=kernel, stride=stride, padding=padding, dilation=dilation, bias=draw(st.booleans()),
                width=draw(st.sampled_from(WIDTHS)), seed=draw(st.integers(0, 2**16)),
                # cache blocking: one image or several per scratch fill, all input channels at once or a few
                # at a time (later groups add to the partial sums in y)
                scratch_bytes=draw(st.sampled_from([1, 1 << 20])), panel_bytes=draw(st.sampled_from([1, 1 << 20])))


@pytest.fixture(autouse=True)
def two_threads_even_for_small_layers(monkeypatch):
    monkeypatch.setenv("MINIDL_NUM_THREADS", "2")
    monkeypatch.setattr(direct_conv, "PARALLEL_MIN_FLOPS", 0)


@settings(max_examples=40, deadline=None)
@given(cases())
def test_direct_kernels_equal_the_reference(case):
    with mock.patch.multiple(direct_conv, SCRATCH_BYTES=case["scratch_bytes"], PANEL_BYTES=case["panel_bytes"],
                             BAND_BYTES=case["scratch_bytes"]):
        check_against_the_reference(case)


def check_against_the_reference(case):
    rng = np.random.default_rng(case["seed"])
    n, c, oc, (h, w), kernel = case["n"], case["c"], case["oc"], case["size"], case["kernel"]
    stride, padding, dilation, width = case["stride"], case["padding"], case["dilation"], case["width"]
    x = channels_last(rng.standard_normal((n, c, h, w)).astype(np.float32))
    weight = rng.standard_normal((oc, c, *kernel)).astype(np.float32)
    bias = rng.standard_normal(oc).astype(np.float32) if case["bias"] else None
    oh = conv.output_size(h, kernel[0], stride[0], padding[0], padding[1], dilation[0])
    ow = conv.output_size(w, kernel[1], stride[1], padding[2], padding[3], dilation[1])
    g = channels_last(rng.standard_normal((n, oc, oh, ow)).astype(np.float32))
    y_ref, dx_ref, dw_ref = reference(x, weight, g, stride, padding, dilation)
    if bias is not None:
        y_ref = y_ref + bias.reshape(1, -1, 1, 1)

    y = direct_conv.conv_forward(x, weight, bias, stride, padding, dilation, width=width)
    dx = direct_conv.conv_input_grad(g, weight, x.shape, stride, padding, dilation, width=width)
    dw = direct_conv.conv_weight_grad(x, g, weight.shape, stride, padding, dilation, width=width)
    assert y.dtype == dx.dtype == dw.dtype == np.float32
    assert y.shape == y_ref.shape and dx.shape == x.shape and dw.shape == weight.shape
    assert y.transpose(0, 2, 3, 1).flags.c_contiguous and dx.transpose(0, 2, 3, 1).flags.c_contiguous  # NHWC
    assert_matches(y, y_ref, "forward")
    assert_matches(dx, dx_ref, "input gradient")
    assert_matches(dw, dw_ref, "weight gradient")
    assert_channel_sums(direct_conv.conv_forward(x, weight, bias, stride, padding, dilation, width=width,
                                                 channel_sums=True), y)


def assert_channel_sums(y_and_sums, y):
    """conv_forward(..., channel_sums=True): the same y, and the float64 sums of y and y squared per channel (the
    order of the adds differs from NumPy's, so equal to float64 rounding)."""
    y_again, sums = y_and_sums
    np.testing.assert_array_equal(y_again, y)
    y64 = y.astype(np.float64)
    expected = np.stack([y64.sum(axis=(0, 2, 3)), (y64 ** 2).sum(axis=(0, 2, 3))])
    assert sums.dtype == np.float64 and sums.shape == expected.shape
    np.testing.assert_allclose(sums, expected, rtol=1e-12, atol=1e-12 * float(expected[1].max(initial=1)))


@pytest.mark.parametrize("width", WIDTHS)
def test_resnet_layers_at_each_width(width):
    """The layer shapes the networks use (3x3 stride 1 and 2, RGB stem, 1x1 projection), whole vectors of channels,
    and wide layers whose channels fill four AVX-512 vectors (a 4 x 4 tile; 80: a tail in the second block)."""
    rng = np.random.default_rng(width)
    for c, oc, size, k, s in [(3, 16, 8, 3, 1), (16, 32, 8, 3, 2), (16, 32, 8, 1, 2), (32, 32, 5, 3, 1),
                              (64, 80, 4, 3, 1), (40, 64, 5, 3, 2)]:
        x = channels_last(rng.standard_normal((3, c, size, size)).astype(np.float32))
        weight = rng.standard_normal((oc, c, k, k)).astype(np.float32)
        geometry = (s, s), (k // 2,) * 4, (1, 1)
        y = direct_conv.conv_forward(x, weight, None, *geometry, width=width)
        g = channels_last(rng.standard_normal(y.shape).astype(np.float32))
        y_ref, dx_ref, dw_ref = reference(x, weight, g, *geometry)
        assert_matches(y, y_ref, "forward")
        assert_channel_sums(direct_conv.conv_forward(x, weight, None, *geometry, width=width, channel_sums=True), y)
        assert_matches(direct_conv.conv_input_grad(g, weight, x.shape, *geometry, width=width), dx_ref, "dx")
        assert_matches(direct_conv.conv_weight_grad(x, g, weight.shape, *geometry, width=width), dw_ref, "dW")


@pytest.mark.parametrize("width, tile_shape", [(width, shape) for width in WIDTHS
                                               for shapes in direct_conv.WEIGHT_GRAD_TILES[width].values()
                                               for shape in shapes])
def test_each_weight_grad_tile(monkeypatch, width, tile_shape):
    """Every register tile the weight gradient may choose (the hypothesis cases draw too few output channels to
    reach the four-vector tiles): rows (tap, channel) and output channels with tails, two blocks of output
    channels, the ranges split by images and by channel blocks, stride 1 and 2."""
    monkeypatch.setitem(direct_conv.WEIGHT_GRAD_TILES, width, {1: [tile_shape]})
    r_count, v_count = tile_shape
    rng = np.random.default_rng(r_count * v_count)
    x = channels_last(rng.standard_normal((3, 5, 6, 7)).astype(np.float32))
    weight = rng.standard_normal((2 * v_count * width - 3, 5, 3, 3)).astype(np.float32)
    for stride in ((1, 1), (2, 2)):
        geometry = stride, (1, 1, 1, 1), (1, 1)
        oh, ow = (6 - 1) // stride[0] + 1, (7 - 1) // stride[1] + 1
        g = channels_last(rng.standard_normal((3, weight.shape[0], oh, ow)).astype(np.float32))
        expected = reference(x, weight, g, *geometry)[2]
        for split_channels_bytes in (0, 1 << 40):
            monkeypatch.setattr(direct_conv, "SPLIT_CHANNELS_BYTES", split_channels_bytes)
            assert_matches(direct_conv.conv_weight_grad(x, g, weight.shape, *geometry, width=width), expected, "dW")


@pytest.mark.parametrize("split_channels_bytes", [0, 1 << 40])
def test_one_thread_or_two_give_the_same_bits(monkeypatch, split_channels_bytes):
    """Images split across threads (each range with its own scratch, the weight gradient's partial sums added
    in range order, the output's channel sums taken image by image), or the weight gradient split by output
    channels: the same bits on 1 or 2 threads."""
    monkeypatch.setattr(direct_conv, "SPLIT_CHANNELS_BYTES", split_channels_bytes)
    rng = np.random.default_rng(0)
    x = channels_last(rng.standard_normal((5, 6, 7, 7)).astype(np.float32))
    weight = rng.standard_normal((40, 6, 3, 3)).astype(np.float32)
    g = channels_last(rng.standard_normal((5, 40, 4, 4)).astype(np.float32))
    geometry = (2, 2), (1, 1, 1, 1), (1, 1)
    results = []
    for threads in ("1", "2"):
        monkeypatch.setenv("MINIDL_NUM_THREADS", threads)
        results.append([direct_conv.conv_forward(x, weight, None, *geometry),
                        direct_conv.conv_input_grad(g, weight, x.shape, *geometry),
                        direct_conv.conv_weight_grad(x, g, weight.shape, *geometry),
                        direct_conv.conv_forward(x, weight, None, *geometry, channel_sums=True)[1]])
    for one, two in zip(*results):
        np.testing.assert_array_equal(one, two)
    assert len(results[0]) == 4
    assert_matches(results[0][2], reference(x, weight, g, *geometry)[2], "weight gradient")
    assert cpu_threads.num_threads() == 2


def test_host_width_follows_llvm_and_the_environment():
    import llvmlite.binding as llvm
    features = llvm.get_host_cpu_features()
    expected = 16 if features.get("avx512f") else 8 if features.get("avx2") or features.get("avx") else 4
    if "MINIDL_SIMD_WIDTH" not in os.environ:
        assert simd.HOST_WIDTH == expected
    code = "from minidl.backends.cpu import simd; print(simd.HOST_WIDTH)"
    for forced in ("8", "16"):
        env = dict(os.environ, MINIDL_SIMD_WIDTH=forced)
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        assert out.stdout.strip() == forced
    env = dict(os.environ, MINIDL_SIMD_WIDTH="7")
    failed = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert failed.returncode != 0 and "MINIDL_SIMD_WIDTH must be 4, 8 or 16" in failed.stderr


def test_generated_micro_kernel_is_the_register_tile():
    """The convolution's inner loop: V weight loads, then per pixel one broadcast and V FMAs, R*V in all."""
    source = conv_codegen.conv_source(6, 2, 8)
    inner = source[source.index("for c in range(c1 - c0"):source.index("k += VB")]
    assert inner.count("load(w, k") == 2 and inner.count("splat_at(") == 6 and inner.count("fma(") == 12
    assert all(f"splat_at(src, p{r} + c)" in inner for r in range(6))  # each pixel from its own table entry
    source = conv_codegen.weight_grad_source(8, 1, 16)
    inner = source[source.index("for j in range(j0, j1):"):source.index("gi += VB")]
    assert inner.count("load(g, gi") == 1 and inner.count("splat_at(") == 8 and inner.count("fma(") == 8


def test_cache_dir_falls_back_when_the_user_cache_is_unusable(monkeypatch, tmp_path):
    """A read-only or broken home cache (here: a file where the folder should be) falls back to the temp dir."""
    not_a_folder = tmp_path / "cache"
    not_a_folder.write_text("")
    monkeypatch.delenv("MINIDL_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(not_a_folder))
    monkeypatch.setattr(conv_codegen.tempfile, "gettempdir", lambda: str(tmp_path / "tmp"))
    assert conv_codegen.cache_dir() == tmp_path / "tmp" / f"minidl-{os.getuid()}" / "kernels"
    monkeypatch.setenv("MINIDL_CACHE_DIR", str(tmp_path / "mine"))
    assert conv_codegen.cache_dir() == tmp_path / "mine" / "kernels"


def test_simd_intrinsics_reject_arrays_they_cannot_address():
    from numba import njit
    v = simd.lanes(8)
    load, lane = v.load, v.lane

    @njit
    def first_vector(a):
        return lane(load(a, 0), 7)

    assert first_vector(np.arange(8, dtype=np.float32)) == 7
    with pytest.raises(Exception, match="1-D C-contiguous float32"):
        first_vector(np.arange(8, dtype=np.float64))
