"""Batch transforms: shapes, exact identities, per-image references under the same random
draws, Resize against PyTorch's bilinear interpolate, and determinism under a seed."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import minidl
from minidl.data import transforms as T
from tests.helpers import torch_or_skip


def batch(n=5, c=3, h=8, w=8, dtype=np.float32, seed=0):
    return np.random.default_rng(seed).random((n, c, h, w)).astype(dtype)


def same_draws(seed=0):
    return np.random.default_rng(seed), np.random.default_rng(seed)


@given(n=st.integers(1, 4), size=st.integers(3, 8), padding=st.integers(0, 3), fill=st.sampled_from([0.0, 0.5]),
       seed=st.integers(0, 2**16))
def test_random_crop_matches_per_image_reference(n, size, padding, fill, seed):
    x = batch(n, 2, 8, 8, seed=seed)
    mine, reference = same_draws(seed)
    out = T.RandomCrop(size, padding=padding, fill=fill)(x, mine)
    assert out.shape == (n, 2, size, size) and out.dtype == x.dtype
    padded_extent = 8 + 2 * padding
    tops = reference.integers(0, padded_extent - size + 1, n)
    lefts = reference.integers(0, padded_extent - size + 1, n)
    for i in range(n):
        padded = np.pad(x[i], ((0, 0), (padding, padding), (padding, padding)), constant_values=fill)
        np.testing.assert_array_equal(out[i], padded[:, tops[i]:tops[i] + size, lefts[i]:lefts[i] + size])


def test_random_crop_rectangular_and_bad_size():
    x = batch(3, 3, 6, 10)
    assert T.RandomCrop((4, 7), padding=(1, 2))(x, np.random.default_rng(0)).shape == (3, 3, 4, 7)
    with pytest.raises(ValueError, match="larger than the padded image"):
        T.RandomCrop(12)(x)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        T.RandomCrop(4)(x[0])


def test_random_shift_matches_reference():
    x = batch(6, 3, 8, 8)
    mine, reference = same_draws(1)
    out = T.RandomShift(2, fill=-1.0)(x, mine)
    dy, dx = reference.integers(-2, 3, 6), reference.integers(-2, 3, 6)
    for i in range(6):
        expected = np.full_like(x[i], -1.0)
        for y in range(8):
            for col in range(8):
                if 0 <= y - dy[i] < 8 and 0 <= col - dx[i] < 8:
                    expected[:, y, col] = x[i, :, y - dy[i], col - dx[i]]
        np.testing.assert_array_equal(out[i], expected)
    assert T.RandomShift(0.25)(x, np.random.default_rng(0)).shape == x.shape  # ±2 px of 8


def test_flips():
    x = batch()
    for flip, axis in ((T.RandomHorizontalFlip, 3), (T.RandomVerticalFlip, 2)):
        once = flip(p=1.0)(x)
        np.testing.assert_array_equal(once, np.flip(x, axis))
        np.testing.assert_array_equal(flip(p=1.0)(once), x)
        np.testing.assert_array_equal(flip(p=0.0)(x), x)
        mine, reference = same_draws(2)
        out = flip(p=0.5)(x, mine)
        flags = reference.random(len(x)) < 0.5
        for i in range(len(x)):
            np.testing.assert_array_equal(out[i], np.flip(x[i], axis - 1) if flags[i] else x[i])


def test_grayscale():
    x = batch()
    gray = T.RandomGrayscale(p=1.0)(x)
    luma = 0.2989 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]
    for c in range(3):
        np.testing.assert_allclose(gray[:, c], luma, rtol=1e-6)
    np.testing.assert_array_equal(T.RandomGrayscale(p=0.0)(x), x)
    assert gray.dtype == np.float32


@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
def test_rotation_by_zero_is_identity(interpolation):
    x = batch(3, 3, 7, 9, dtype=np.float64)
    np.testing.assert_allclose(T.RandomRotation((0, 0), interpolation)(x), x, atol=1e-12)


@pytest.mark.parametrize("size", [6, 7])
def test_rotation_by_90_is_rot90(size):
    x = batch(2, 3, size, size)
    out = T.RandomRotation((90, 90), "nearest")(x)
    np.testing.assert_array_equal(out, np.rot90(x, 1, axes=(2, 3)))
    np.testing.assert_allclose(T.RandomRotation((90, 90), "bilinear")(x), np.rot90(x, 1, axes=(2, 3)), atol=1e-5)
    np.testing.assert_array_equal(T.RandomRotation((-90, -90))(x), np.rot90(x, -1, axes=(2, 3)))


def test_rotation_fills_corners_and_keeps_dtype():
    x = np.ones((1, 1, 9, 9), np.float32)
    out = T.RandomRotation((45, 45), "bilinear", fill=0)(x)
    assert out.dtype == np.float32
    assert out[0, 0, 0, 0] == 0 and out[0, 0, 4, 4] == 1  # a corner rotated in from outside; the centre
    with pytest.raises(ValueError, match="'nearest', 'bilinear'"):
        T.RandomRotation(10, "bicubic")


@pytest.mark.parametrize("in_size,out_size", [((32, 32), (224, 224)), ((8, 8), (13, 5)), ((10, 7), (4, 3))])
def test_resize_matches_torch_interpolate(in_size, out_size):
    torch = torch_or_skip()
    for dtype, tolerance in ((np.float64, 1e-12), (np.float32, 1e-6)):
        x = batch(2, 3, *in_size, dtype=dtype)
        out = T.Resize(out_size)(x)
        expected = torch.nn.functional.interpolate(torch.from_numpy(x), size=out_size, mode="bilinear",
                                                   align_corners=False, antialias=False).numpy()
        assert out.shape == expected.shape and out.dtype == dtype
        np.testing.assert_allclose(out, expected, atol=tolerance, rtol=0)


def test_resize_int_sets_shorter_side():
    assert T.Resize(16)(batch(1, 3, 8, 12)).shape == (1, 3, 16, 24)


def test_normalize_exact():
    x = batch()
    mean, std = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)
    out = T.Normalize(mean, std)(x)
    expected = (x - np.array(mean, np.float32)[:, None, None]) / np.array(std, np.float32)[:, None, None]
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, expected)
    with pytest.raises(ValueError, match="3 means and stds for a batch with 2 channels"):
        T.Normalize(mean, std)(x[:, :2])


def test_to_float():
    x = np.arange(256, dtype=np.uint8).reshape(1, 1, 16, 16)
    out = T.ToFloat()(x)
    assert out.dtype == np.float32 and out.max() == 1.0 and out.min() == 0.0


def test_compose_is_deterministic_under_a_seed_and_accepts_tensors():
    transform = T.Compose([T.RandomCrop(8, padding=2), T.RandomHorizontalFlip(), T.RandomRotation(20, "bilinear"),
                           T.RandomGrayscale(0.5), T.Normalize((0.5,) * 3, (0.25,) * 3)])
    x = batch(4)
    first = transform(x, np.random.default_rng(7))
    np.testing.assert_array_equal(first, transform(x, np.random.default_rng(7)))
    assert not np.array_equal(first, transform(x, np.random.default_rng(8)))
    minidl.manual_seed(3)
    from_global = transform(minidl.tensor(x))
    minidl.manual_seed(3)
    assert isinstance(from_global, minidl.Tensor)
    np.testing.assert_array_equal(from_global.numpy(), transform(x).astype(np.float32))


@pytest.mark.gpu
def test_transforms_on_cupy_equal_numpy():
    import cupy
    transforms = [T.RandomCrop(8, padding=2, fill=0.5), T.RandomShift(2), T.RandomHorizontalFlip(),
                  T.RandomVerticalFlip(), T.RandomGrayscale(0.5), T.RandomRotation(30, "nearest"),
                  T.RandomRotation(30, "bilinear"), T.Resize((13, 5)), T.Normalize((0.5,) * 3, (0.25,) * 3)]
    x = batch(6, dtype=np.float64)
    for transform in transforms:
        on_gpu = transform(cupy.asarray(x), np.random.default_rng(4))
        assert isinstance(on_gpu, cupy.ndarray), type(transform).__name__
        np.testing.assert_allclose(cupy.asnumpy(on_gpu), transform(x, np.random.default_rng(4)), atol=1e-12,
                                   err_msg=type(transform).__name__)
