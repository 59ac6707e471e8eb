"""conv2d: finite differences, PyTorch parity, im2col/col2im, dtypes and error messages.

On NumPy, conv2d with groups == 1 takes the channels-last CPU path (minidl/backends/cpu/conv.py); the
reference im2col path (the one every device can run) is tested on the CPU too, under
``minidl.backends.reference()``.
"""
import contextlib

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import minidl
from minidl.functions.conv import col2im, conv2d, im2col
from minidl.gradcheck import gradcheck
from tests.helpers import assert_close, leaf, torch_or_skip


@st.composite
def conv_cases(draw, max_size=6, max_batch=2, max_group_channels=2):
    """A valid conv2d configuration: shapes, stride, padding, dilation, groups, bias."""
    groups = draw(st.integers(1, 2))
    in_channels = groups * draw(st.integers(1, max_group_channels))
    out_channels = groups * draw(st.integers(1, 2))
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 2)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = (draw(st.integers(0, 2)), draw(st.integers(0, 1)))
    spatial = []
    for k, d, p in zip(kernel, dilation, padding):
        smallest = max(1, d * (k - 1) + 1 - 2 * p)  # the smallest input that leaves one output position
        spatial.append(draw(st.integers(smallest, max(smallest, max_size))))
    return dict(
        input_shape=(draw(st.integers(1, max_batch)), in_channels, *spatial),
        weight_shape=(out_channels, in_channels // groups, *kernel),
        bias=draw(st.booleans()), stride=stride, padding=padding, dilation=dilation, groups=groups,
        seed=draw(st.integers(0, 2**16)),
    )


def conv_path(path):
    """Runs conv2d on the default path (the CPU's fast one, unless MINIDL_REFERENCE=1), or on the
    reference im2col path ("reference")."""
    return minidl.backends.reference() if path == "reference" else contextlib.nullcontext()


PATHS = pytest.mark.parametrize("path", ["default", "reference"])


def make_inputs(case):
    rng = np.random.default_rng(case["seed"])
    x = leaf(rng.standard_normal(case["input_shape"]))
    w = leaf(rng.standard_normal(case["weight_shape"]))
    b = leaf(rng.standard_normal(case["weight_shape"][0])) if case["bias"] else None
    return x, w, b


def conv_params(case):
    return {name: case[name] for name in ("stride", "padding", "dilation", "groups")}


@PATHS
@settings(max_examples=25)
@given(case=conv_cases())
def test_conv2d_gradcheck(path, case):
    x, w, b = make_inputs(case)
    params = conv_params(case)
    inputs = (x, w) if b is None else (x, w, b)
    with conv_path(path):
        assert gradcheck(lambda *t: conv2d(*t, **params), *inputs)


@PATHS
@settings(max_examples=30)
@given(case=conv_cases(max_size=11, max_batch=3, max_group_channels=3))
def test_conv2d_matches_torch(path, case):
    torch = torch_or_skip()
    x, w, b = make_inputs(case)
    params = conv_params(case)
    with conv_path(path):
        y = conv2d(x, w, b, **params)
        upstream = np.random.default_rng(1).standard_normal(y.shape)
        (y * minidl.tensor(upstream)).sum().backward()

    tx, tw = (torch.tensor(t.array, requires_grad=True) for t in (x, w))
    tb = None if b is None else torch.tensor(b.array, requires_grad=True)
    ty = torch.nn.functional.conv2d(tx, tw, tb, **params)
    ty.backward(torch.tensor(upstream))

    assert_close(y, ty, rtol=1e-10, atol=1e-10, what="output")
    assert_close(x.grad, tx.grad, rtol=1e-10, atol=1e-10, what="input grad")
    assert_close(w.grad, tw.grad, rtol=1e-10, atol=1e-10, what="weight grad")
    if b is not None:
        assert_close(b.grad, tb.grad, rtol=1e-10, atol=1e-10, what="bias grad")


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("kernel, dilation", [(3, 1), (4, 1), ((2, 5), (2, 1))])
def test_conv2d_padding_same_and_valid_match_torch(kernel, dilation):
    torch = torch_or_skip()
    rng = np.random.default_rng(0)
    kernel = (kernel, kernel) if isinstance(kernel, int) else kernel
    x, w = leaf(rng.standard_normal((2, 3, 7, 8))), leaf(rng.standard_normal((4, 3, *kernel)))
    for padding in ("same", "valid"):
        y = conv2d(x, w, padding=padding, dilation=dilation)
        expected = torch.nn.functional.conv2d(torch.tensor(x.array), torch.tensor(w.array), padding=padding,
                                              dilation=dilation)
        assert_close(y, expected, what=f"padding={padding!r}")


@PATHS
def test_conv2d_resnet_shapes_match_torch_with_partial_grads(path):
    """A 3x3 stride-2 layer and a 1x1 stride-2 shortcut; input without grad, then weight frozen."""
    torch = torch_or_skip()
    rng = np.random.default_rng(3)
    x_data, upstream = rng.standard_normal((4, 8, 9, 9)), rng.standard_normal((4, 16, 5, 5))
    for kernel, padding in ((3, 1), (1, 0)):
        w_data = rng.standard_normal((16, 8, kernel, kernel))
        tx, tw = torch.tensor(x_data, requires_grad=True), torch.tensor(w_data, requires_grad=True)
        torch.nn.functional.conv2d(tx, tw, stride=2, padding=padding).backward(torch.tensor(upstream))

        x, w = leaf(x_data, requires_grad=False), leaf(w_data)
        with conv_path(path):
            (conv2d(x, w, stride=2, padding=padding) * minidl.tensor(upstream)).sum().backward()
        assert x.grad is None
        assert_close(w.grad, tw.grad, what="weight grad, input without grad")

        x, w = leaf(x_data), leaf(w_data, requires_grad=False)
        with conv_path(path):
            (conv2d(x, w, stride=2, padding=padding) * minidl.tensor(upstream)).sum().backward()
        assert w.grad is None
        assert_close(x.grad, tx.grad, what="input grad, frozen weight")


def test_im2col_reads_the_windows_and_col2im_is_its_adjoint():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 6, 5))
    geometry = (2, 3), (2, 1), (1, 0, 2, 1), (1, 2)  # kernel, stride, (top, bottom, left, right), dilation
    cols = im2col(x, *geometry)
    (kh, kw), (sh, sw), (top, bottom, left, right), (dh, dw) = geometry
    padded = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
    oh = (6 + top + bottom - dh * (kh - 1) - 1) // sh + 1
    ow = (5 + left + right - dw * (kw - 1) - 1) // sw + 1
    assert cols.shape == (3 * kh * kw, 2 * oh * ow)
    expected = np.empty((3, kh, kw, 2, oh, ow))
    for c, i, j, n, r, s in np.ndindex(expected.shape):
        expected[c, i, j, n, r, s] = padded[n, c, r * sh + i * dh, s * sw + j * dw]
    np.testing.assert_array_equal(cols, expected.reshape(cols.shape))
    # <im2col(x), c> == <x, col2im(c)> for every x and c: col2im is the transpose of im2col.
    c = rng.standard_normal(cols.shape)
    np.testing.assert_allclose((cols * c).sum(), (x * col2im(c, x.shape, *geometry)).sum(), rtol=1e-12)


@PATHS
def test_conv2d_float32_stays_float32(path):
    rng = np.random.default_rng(0)
    x = minidl.tensor(rng.standard_normal((2, 3, 8, 8)).astype(np.float32), requires_grad=True)
    w = minidl.tensor(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), requires_grad=True)
    b = minidl.tensor(rng.standard_normal(4).astype(np.float32), requires_grad=True)
    with conv_path(path):
        y = conv2d(x, w, b, stride=2, padding=1)
        assert y.dtype == np.float32
        y.sum().backward()
    assert x.grad.dtype == w.grad.dtype == b.grad.dtype == np.float32
    reference = conv2d(leaf(x.array), leaf(w.array), leaf(b.array), stride=2, padding=1)
    assert_close(y, reference.detach().numpy().astype(np.float32), rtol=1e-5, atol=1e-5)


def test_conv2d_without_grad_records_nothing():
    x, w = leaf(np.ones((1, 2, 4, 4))), leaf(np.ones((3, 2, 3, 3)))
    with minidl.no_grad():
        y = conv2d(x, w, padding=1)
    assert not y.requires_grad and y.grad_fn is None
    assert y.array[0, 0, 1, 1] == 18.0 and y.array[0, 0, 0, 0] == 8.0


def test_conv2d_error_messages():
    x = minidl.zeros((8, 4, 32, 32))
    w = minidl.zeros((16, 3, 3, 3))
    with pytest.raises(ValueError, match=r"conv2d: weight of shape \(16, 3, 3, 3\) expects input with 3 "
                                         r"channels, got input of shape \(8, 4, 32, 32\)"):
        conv2d(x, w)
    with pytest.raises(ValueError, match=r"expected a 4-D input \(N, C, H, W\), got input of shape \(4, 32, 32\)"):
        conv2d(minidl.zeros((4, 32, 32)), minidl.zeros((16, 4, 3, 3)))
    with pytest.raises(ValueError, match=r"expected a 4-D weight .* got weight of shape \(16, 4, 3\)"):
        conv2d(x, minidl.zeros((16, 4, 3)))
    with pytest.raises(ValueError, match=r"too small for kernel \(5, 5\).*output would be -1x-1"):
        conv2d(minidl.zeros((1, 4, 3, 3)), minidl.zeros((2, 4, 5, 5)))
    with pytest.raises(ValueError, match=r"out_channels \(5\) must be divisible by groups \(2\)"):
        conv2d(x, minidl.zeros((5, 2, 3, 3)), groups=2)
    with pytest.raises(ValueError, match=r"bias must have shape \(16,\), got \(8,\)"):
        conv2d(x, minidl.zeros((16, 4, 3, 3)), minidl.zeros(8))
    with pytest.raises(ValueError, match=r"unknown padding 'full'; valid strings are 'valid' and 'same'"):
        conv2d(x, minidl.zeros((16, 4, 3, 3)), padding="full")
    with pytest.raises(ValueError, match=r"padding='same' is not supported for strided"):
        conv2d(x, minidl.zeros((16, 4, 3, 3)), stride=2, padding="same")
    with pytest.raises(ValueError, match=r"stride and dilation must be positive"):
        conv2d(x, minidl.zeros((16, 4, 3, 3)), stride=0)
    with pytest.raises(TypeError, match=r"input is float32 but weight is float64"):
        conv2d(x, leaf(np.zeros((16, 4, 3, 3))))
