"""nn.functional ops beyond the core ones: normalize, pad's modes, max_pool2d's indices and max_unpool2d,
interpolate, conv1d and conv_transpose2d. One line per case: finite differences in float64 on
hypothesis-drawn shapes, and PyTorch parity in float64 (forward and every input's gradient)."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import minidl
from minidl import nn
from minidl.gradcheck import gradcheck
from tests.helpers import assert_close, leaf, torch_or_skip

seeds = st.integers(0, 2**16)


def normal(rng, *shape):
    return rng.standard_normal(shape)


def distinct(rng, *shape):
    """No ties, at least 0.1 apart: max pooling's choice is stable under finite differences."""
    size = int(np.prod(shape))
    return rng.permutation(np.arange(size) * 0.1 - size * 0.05).reshape(shape)


@st.composite
def images(draw, min_side=1, max_side=5, dims=2):
    """(N, C, *spatial) with a drawn N, C and spatial sizes."""
    return (draw(st.integers(1, 2)), draw(st.integers(1, 3))) + tuple(
        draw(st.integers(min_side, max_side)) for _ in range(dims))


# name -> (fn(F, *inputs), draw(data, rng) -> list of input arrays); F is minidl's or torch's nn.functional
CASES = {
    "normalize": (lambda F, x: F.normalize(x, dim=-1), lambda d, r: [normal(r, *d.draw(images(dims=1)))]),
    "normalize_p1_dim0": (lambda F, x: F.normalize(x, p=1.0, dim=0), lambda d, r: [normal(r, *d.draw(images()))]),
    "normalize_p3": (lambda F, x: F.normalize(x, p=3.0, dim=1), lambda d, r: [normal(r, *d.draw(images(dims=1)))]),
    "pad_reflect": (lambda F, x: F.pad(x, (2, 1, 0, 3), mode="reflect"), lambda d, r: [normal(r, *d.draw(images(4, 5)))]),
    "pad_replicate": (lambda F, x: F.pad(x, (3, 0, 1, 2), mode="replicate"), lambda d, r: [normal(r, *d.draw(images()))]),
    "pad_circular": (lambda F, x: F.pad(x, (2, 1, 1, 0), mode="circular"), lambda d, r: [normal(r, *d.draw(images(2)))]),
    "pad_reflect_1d": (lambda F, x: F.pad(x, (1, 2), mode="reflect"), lambda d, r: [normal(r, *d.draw(images(3, dims=1)))]),
    "pad_replicate_3d": (lambda F, x: F.pad(x, (1, 0, 0, 1, 1, 1), mode="replicate"),
                         lambda d, r: [normal(r, *d.draw(images(1, 3, dims=3)))]),
    "pad_negative": (lambda F, x: F.pad(x, (-1, 2, 1, -2), value=0.5), lambda d, r: [normal(r, *d.draw(images(3)))]),
    "pad_negative_reflect": (lambda F, x: F.pad(x, (-1, 2, 1, -1), mode="reflect"),
                             lambda d, r: [normal(r, *d.draw(images(3)))]),
    "max_unpool2d": (lambda F, x: F.max_unpool2d(*F.max_pool2d(x, 2, return_indices=True), 2),
                     lambda d, r: [distinct(r, *d.draw(images(2, 3).map(lambda s: s[:2] + (2 * s[2], 2 * s[3]))))]),
    "max_unpool2d_padded": (lambda F, x: F.max_unpool2d(*F.max_pool2d(x, 2, 2, 1, return_indices=True), 2, 2, 1,
                                                        output_size=x.shape[2:]),
                             lambda d, r: [distinct(r, *d.draw(images(2, 6)))]),
    "interpolate_nearest": (lambda F, x: F.interpolate(x, scale_factor=2), lambda d, r: [normal(r, *d.draw(images()))]),
    "interpolate_nearest_size": (lambda F, x: F.interpolate(x, size=(3, 7)), lambda d, r: [normal(r, *d.draw(images()))]),
    "interpolate_nearest_1d": (lambda F, x: F.interpolate(x, scale_factor=1.7),
                               lambda d, r: [normal(r, *d.draw(images(dims=1)))]),
    "interpolate_nearest_exact": (lambda F, x: F.interpolate(x, size=(5, 2), mode="nearest-exact"),
                                  lambda d, r: [normal(r, *d.draw(images()))]),
    "interpolate_bilinear": (lambda F, x: F.interpolate(x, size=(4, 7), mode="bilinear"),
                             lambda d, r: [normal(r, *d.draw(images()))]),
    "interpolate_bilinear_corners": (lambda F, x: F.interpolate(x, scale_factor=(2.5, 0.6), mode="bilinear",
                                                                align_corners=True),
                                     lambda d, r: [normal(r, *d.draw(images(2)))]),
    "interpolate_bilinear_scale": (lambda F, x: F.interpolate(x, scale_factor=1.5, mode="bilinear"),
                                   lambda d, r: [normal(r, *d.draw(images()))]),
    "interpolate_linear": (lambda F, x: F.interpolate(x, size=6, mode="linear", align_corners=False),
                           lambda d, r: [normal(r, *d.draw(images(dims=1)))]),
    "conv1d": (lambda F, x, w, b: F.conv1d(x, w, b, stride=2, padding=1), lambda d, r: _conv1d_inputs(d, r, 1)),
    "conv1d_groups_dilation": (lambda F, x, w, b: F.conv1d(x, w, b, dilation=2, padding="same", groups=2),
                               lambda d, r: _conv1d_inputs(d, r, 2)),
    "conv_transpose2d": (lambda F, x, w, b: F.conv_transpose2d(x, w, b), lambda d, r: _transpose_inputs(d, r, 1)),
    "conv_transpose2d_strided": (lambda F, x, w, b: F.conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=1),
                                 lambda d, r: _transpose_inputs(d, r, 1)),
    "conv_transpose2d_groups": (lambda F, x, w, b: F.conv_transpose2d(x, w, b, stride=(1, 2), padding=(1, 0),
                                                                      groups=2, dilation=2),
                                lambda d, r: _transpose_inputs(d, r, 2)),
}


def _conv1d_inputs(data, rng, groups):
    n, c_in, c_out = data.draw(st.integers(1, 2)), groups * data.draw(st.integers(1, 2)), groups * data.draw(
        st.integers(1, 2))
    k, length = data.draw(st.integers(1, 3)), data.draw(st.integers(5, 8))
    return [normal(rng, n, c_in, length), normal(rng, c_out, c_in // groups, k), normal(rng, c_out)]


def _transpose_inputs(data, rng, groups):
    n, c_in, c_out = data.draw(st.integers(1, 2)), groups * data.draw(st.integers(1, 2)), groups * data.draw(
        st.integers(1, 2))
    kh, kw = data.draw(st.integers(2, 3)), data.draw(st.integers(2, 3))
    h, w = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 4))
    return [normal(rng, n, c_in, h, w), normal(rng, c_in, c_out // groups, kh, kw), normal(rng, c_out)]


@pytest.mark.parametrize("name", CASES)
@settings(max_examples=8)
@given(data=st.data(), seed=seeds)
def test_gradcheck(name, data, seed):
    fn, draw = CASES[name]
    inputs = [leaf(array) for array in draw(data, np.random.default_rng(seed))]
    assert gradcheck(lambda *xs: fn(minidl.nn.functional, *xs), *inputs)


@pytest.mark.parametrize("name", CASES)
@settings(max_examples=8)
@given(data=st.data(), seed=seeds)
def test_matches_torch(name, data, seed):
    torch = torch_or_skip()
    fn, draw = CASES[name]
    arrays = draw(data, np.random.default_rng(seed))
    ours = [leaf(a) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    ours_y, torch_y = fn(minidl.nn.functional, *ours), fn(torch.nn.functional, *theirs)
    assert_close(ours_y, torch_y.detach().numpy(), what=f"{name} forward")
    g = np.random.default_rng(seed + 1).standard_normal(tuple(torch_y.shape))
    (ours_y * minidl.tensor(g)).sum().backward()
    (torch_y * torch.tensor(g)).sum().backward()
    for i, (x, t) in enumerate(zip(ours, theirs)):
        assert_close(x.grad, t.grad.numpy(), what=f"{name} gradient of input {i}")


def test_max_pool2d_indices_match_torch_with_ties_and_padding():
    torch = torch_or_skip()
    x = np.random.default_rng(0).integers(0, 3, (2, 3, 7, 6)).astype(np.float64)  # many ties
    for kernel, stride, padding, dilation, ceil_mode in [(2, 2, 0, 1, False), (3, 2, 1, 1, True), (3, 1, 1, 2, False)]:
        _, ours = minidl.nn.functional.max_pool2d(leaf(x), kernel, stride, padding, dilation, ceil_mode,
                                                  return_indices=True)
        _, theirs = torch.nn.functional.max_pool2d(torch.tensor(x), kernel, stride, padding, dilation, ceil_mode,
                                                   return_indices=True)
        assert ours.dtype == minidl.int64
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    # overlapping windows may pick one input twice: unpooling writes it once, and its backward (a gather)
    # hands both windows the gradient there, as PyTorch's does
    def pool_unpool(F, x):
        return F.max_unpool2d(*F.max_pool2d(x, 3, 2, 1, return_indices=True), 3, 2, 1, output_size=x.shape[2:])
    ours_x, torch_x = leaf(x), torch.tensor(x, requires_grad=True)
    ours_y, torch_y = pool_unpool(minidl.nn.functional, ours_x), pool_unpool(torch.nn.functional, torch_x)
    assert_close(ours_y, torch_y.detach().numpy())
    g = np.random.default_rng(1).standard_normal(x.shape)
    (ours_y * minidl.tensor(g)).sum().backward()
    (torch_y * torch.tensor(g)).sum().backward()
    assert_close(ours_x.grad, torch_x.grad.numpy())


def test_modules_match_torch_with_the_same_weights():
    torch = torch_or_skip()
    rng = np.random.default_rng(0)
    pairs = [(nn.Conv1d(4, 6, 3, stride=2, padding=1, groups=2), torch.nn.Conv1d(4, 6, 3, stride=2, padding=1, groups=2),
              (2, 4, 9)),
             (nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, bias=False),
              torch.nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, bias=False), (2, 4, 5, 3)),
             (nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True),
              torch.nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True), (1, 2, 3, 4))]
    for ours, theirs, shape in pairs:
        ours.double(), theirs.double()
        assert list(ours.state_dict()) == list(theirs.state_dict())
        for key, value in theirs.state_dict().items():
            assert ours.state_dict()[key].shape == tuple(value.shape)
        ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
        x = rng.standard_normal(shape)
        assert_close(ours(leaf(x)), theirs(torch.tensor(x)).detach().numpy())
        assert repr(ours) == repr(theirs)
    up = nn.ConvTranspose2d(2, 2, 3, stride=2, padding=1).double()
    assert up(leaf(np.ones((1, 2, 4, 4))), output_size=(8, 8)).shape == (1, 2, 8, 8)
    pool, unpool = nn.MaxPool2d(2, return_indices=True), nn.MaxUnpool2d(2)
    y, indices = pool(leaf(rng.standard_normal((1, 1, 4, 4))))
    assert unpool(y, indices).shape == (1, 1, 4, 4)


def test_conv_init_follows_pytorchs_fans():
    """kaiming_uniform(a=sqrt(5)) over fan_in = weight.shape[1] * kernel: bound 1/sqrt(fan_in) for the weight
    and the bias; ConvTranspose2d's fan_in is its out_channels / groups times the kernel."""
    for layer, fan_in in [(nn.Conv1d(6, 300, 5, groups=2), 3 * 5), (nn.ConvTranspose2d(8, 300, 3, groups=2), 150 * 9)]:
        bound = 1 / np.sqrt(fan_in)
        for values in (layer.weight.detach().numpy(), layer.bias.detach().numpy()):
            assert np.abs(values).max() <= bound and np.abs(values).max() > 0.9 * bound


def test_errors_name_the_op_and_the_options():
    F = minidl.nn.functional
    x = minidl.zeros(1, 2, 3, 4)
    with pytest.raises(NotImplementedError, match="padding size 2 is not supported for 4D input"):
        F.pad(x, (1, 1), mode="reflect")
    with pytest.raises(RuntimeError, match="reflect padding must be less than"):
        F.pad(x, (4, 0, 0, 0), mode="reflect")
    with pytest.raises(NotImplementedError, match="valid modes: constant, reflect, replicate, circular"):
        F.pad(x, (1, 1), mode="mirror")
    with pytest.raises(RuntimeError, match="doesn't take in value"):
        F.pad(x, (1, 1, 1, 1), mode="replicate", value=2.0)
    with pytest.raises(NotImplementedError, match="valid modes: nearest, nearest-exact, linear, bilinear"):
        F.interpolate(x, scale_factor=2, mode="bicubic")
    with pytest.raises(ValueError, match="exactly one of size and scale_factor"):
        F.interpolate(x)
    with pytest.raises(ValueError, match="align_corners option can only be set"):
        F.interpolate(x, scale_factor=2, align_corners=True)
    with pytest.raises(RuntimeError, match="invalid max index"):
        F.max_unpool2d(x, minidl.full((1, 2, 3, 4), 99), 2)
    with pytest.raises(RuntimeError, match=r"expects input with 3 channels, got input of shape \(1, 2, 3, 4\)"):
        F.conv_transpose2d(x, minidl.zeros(3, 2, 3, 3))
    with pytest.raises(ValueError, match="output_padding must be smaller"):
        F.conv_transpose2d(x, minidl.zeros(2, 2, 3, 3), stride=2, output_padding=2)
    with pytest.raises(ValueError, match=r"conv1d: expected a 3-D input"):
        F.conv1d(x, minidl.zeros(2, 2, 3))
    with pytest.raises(IndexError, match="normalize: dim 4 is out of range"):
        F.normalize(x, dim=4)
