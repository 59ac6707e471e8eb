"""Batch transforms: augmentation and preprocessing of whole (N, C, H, W) float batches.

Unlike torchvision's per-image transforms, each transform here takes the whole batch
and works with its array module (``xp = get_array_module(batch)``), so the same code
runs on NumPy and, once a batch sits on the GPU, on CuPy.  Per-image random choices
(crop offsets, flip decisions, angles) are drawn on the host from a NumPy ``Generator``
(the ``generator`` argument, else minidl's global generator) and then applied in one
vectorised gather, so a seeded run is the same on every device.

    transform = Compose([RandomCrop(32, padding=4), RandomHorizontalFlip(),
                         Normalize((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))])
    batch = transform(batch, generator=np.random.default_rng(0))
"""
import numbers

import numpy as np

from .. import random as minidl_random
from ..backend import get_array_module
from ..tensor import Tensor


class Transform:
    """Base class: subclasses implement ``apply(batch, generator) -> batch`` on arrays."""

    def __call__(self, batch, generator=None):
        """Transforms an (N, C, H, W) array or Tensor; returns the same kind."""
        is_tensor = isinstance(batch, Tensor)
        array = batch.array if is_tensor else batch
        if array.ndim != 4:
            raise ValueError(f"{type(self).__name__} expects a batch of shape (N, C, H, W), "
                             f"got shape {tuple(array.shape)}")
        result = self.apply(array, generator if generator is not None else minidl_random.generator())
        return Tensor._from_array(result) if is_tensor else result

    def apply(self, batch, generator):
        raise NotImplementedError

    def __repr__(self):
        fields = ", ".join(f"{key}={value!r}" for key, value in vars(self).items())
        return f"{type(self).__name__}({fields})"


class Compose(Transform):
    """Applies ``transforms`` in order, all drawing from the same generator."""

    def __init__(self, transforms):
        self.transforms = list(transforms)

    def apply(self, batch, generator):
        for transform in self.transforms:
            batch = transform(batch, generator)
        return batch

    def __repr__(self):
        return "Compose([\n" + "".join(f"    {t!r},\n" for t in self.transforms) + "])"


def _pair(value, name):
    if isinstance(value, numbers.Number):
        return value, value
    if len(value) != 2:
        raise ValueError(f"{name} must be a number or a pair, got {value!r}")
    return tuple(value)


def _pad(batch, top, bottom, left, right, fill):
    xp = get_array_module(batch)
    if top == bottom == left == right == 0:
        return batch
    return xp.pad(batch, ((0, 0), (0, 0), (top, bottom), (left, right)), mode="constant", constant_values=fill)


def _gather_windows(batch, tops, lefts, height, width):
    """``out[n] = batch[n, :, tops[n]:tops[n]+height, lefts[n]:lefts[n]+width]`` in one fancy index."""
    xp = get_array_module(batch)
    n, c = batch.shape[:2]
    rows = xp.asarray(tops)[:, None] + xp.arange(height)  # (N, height)
    cols = xp.asarray(lefts)[:, None] + xp.arange(width)  # (N, width)
    return batch[xp.arange(n)[:, None, None, None], xp.arange(c)[None, :, None, None],
                 rows[:, None, :, None], cols[:, None, None, :]]


class RandomCrop(Transform):
    """Pads each image by ``padding`` (constant ``fill``) and crops a random ``size`` window.

    ``size`` is an int or (height, width); ``padding`` an int, (left/right, top/bottom) or
    (left, top, right, bottom) as in torchvision.  Offsets are drawn per image: the top row
    ``generator.integers(0, H_padded - height + 1, N)``, then the left column likewise.
    """

    def __init__(self, size, padding=None, fill=0):
        self.size = tuple(int(s) for s in _pair(size, "RandomCrop size"))
        self.padding = self._padding(padding)
        self.fill = fill

    @staticmethod
    def _padding(padding):
        if padding is None:
            return (0, 0, 0, 0)
        if isinstance(padding, numbers.Integral):
            return (padding,) * 4
        if len(padding) == 2:
            return (padding[0], padding[1], padding[0], padding[1])
        if len(padding) == 4:
            return tuple(padding)
        raise ValueError(f"RandomCrop padding must be an int, a pair or 4 numbers, got {padding!r}")

    def apply(self, batch, generator):
        left, top, right, bottom = self.padding
        padded = _pad(batch, top, bottom, left, right, self.fill)
        height, width = self.size
        padded_height, padded_width = padded.shape[2:]
        if height > padded_height or width > padded_width:
            raise ValueError(f"RandomCrop: crop size {self.size} is larger than the padded image "
                             f"({padded_height}, {padded_width})")
        n = len(batch)
        tops = generator.integers(0, padded_height - height + 1, n)
        lefts = generator.integers(0, padded_width - width + 1, n)
        return _gather_windows(padded, tops, lefts, height, width)


class RandomShift(Transform):
    """Shifts each image by a random whole number of pixels in [-max_shift, max_shift] per axis.

    Pixels shifted in are ``fill`` (Keras' ``fill_mode="constant"``).  ``max_shift`` is an
    int (pixels), a float in (0, 1) (a fraction of the height/width, rounded to pixels),
    or a pair (vertical, horizontal).  The vertical shift is drawn first, then the horizontal.

    ``keras_integer=True`` draws an integer ``max_shift`` m as Keras' ``ImageDataGenerator``
    does for ``width_shift_range=m`` (``np.random.choice(m) * np.random.choice([-1, 1])``):
    shifts in [-(m-1), m-1], with 0 twice as likely as each other value (for m = 4: -3..3).
    """

    def __init__(self, max_shift, fill=0, keras_integer=False):
        self.max_shift = _pair(max_shift, "RandomShift max_shift")
        self.fill = fill
        self.keras_integer = keras_integer
        if keras_integer and not all(isinstance(m, numbers.Integral) and m >= 1 for m in self.max_shift):
            raise ValueError(f"RandomShift: keras_integer needs whole-pixel max_shift >= 1, got {max_shift!r}")

    def _draw(self, generator, max_shift, n):
        if self.keras_integer:
            return generator.integers(0, max_shift, n) * generator.choice(np.array([-1, 1]), n)
        return generator.integers(-max_shift, max_shift + 1, n)

    def _pixels(self, shift, extent):
        if isinstance(shift, numbers.Integral):
            return int(shift)
        if 0 <= shift < 1:
            return int(round(shift * extent))
        raise ValueError(f"RandomShift: max_shift {shift!r} must be whole pixels or a fraction in [0, 1)")

    def apply(self, batch, generator):
        height, width = batch.shape[2:]
        max_y, max_x = self._pixels(self.max_shift[0], height), self._pixels(self.max_shift[1], width)
        padded = _pad(batch, max_y, max_y, max_x, max_x, self.fill)
        n = len(batch)
        shift_y = self._draw(generator, max_y, n)
        shift_x = self._draw(generator, max_x, n)
        # Output row y shows input row y - shift_y, which is padded row max_y - shift_y + y.
        return _gather_windows(padded, max_y - shift_y, max_x - shift_x, height, width)


def _where_images(flags, changed, original):
    """Per image: ``changed`` where ``flags`` (a host bool array of length N) else ``original``."""
    xp = get_array_module(original)
    return xp.where(xp.asarray(flags)[:, None, None, None], changed, original)


class RandomHorizontalFlip(Transform):
    """Mirrors each image left-right with probability ``p``."""

    def __init__(self, p=0.5):
        self.p = p

    def apply(self, batch, generator):
        return _where_images(generator.random(len(batch)) < self.p, batch[:, :, :, ::-1], batch)


class RandomVerticalFlip(Transform):
    """Mirrors each image top-bottom with probability ``p``."""

    def __init__(self, p=0.5):
        self.p = p

    def apply(self, batch, generator):
        return _where_images(generator.random(len(batch)) < self.p, batch[:, :, ::-1, :], batch)


class RandomGrayscale(Transform):
    """Turns each RGB image grey with probability ``p`` (ITU-R 601 luma, kept as 3 channels)."""

    def __init__(self, p=0.1):
        self.p = p

    def apply(self, batch, generator):
        if batch.shape[1] != 3:
            raise ValueError(f"RandomGrayscale expects 3 (RGB) channels, got {batch.shape[1]}")
        luma = 0.2989 * batch[:, 0:1] + 0.587 * batch[:, 1:2] + 0.114 * batch[:, 2:3]
        gray = get_array_module(batch).broadcast_to(luma, batch.shape)
        return _where_images(generator.random(len(batch)) < self.p, gray, batch)


INTERPOLATIONS = ("nearest", "bilinear")


def _sample(batch, rows, cols, interpolation, fill):
    """``batch`` sampled at real-valued source coordinates ``rows``, ``cols`` of shape (N, H', W').

    Points outside the image take ``fill``: the image gets a one-pixel ``fill`` border and
    coordinates are clamped onto it, so bilinear samples near an edge blend into ``fill``.
    """
    xp = get_array_module(batch)
    n, c, height, width = batch.shape
    padded = _pad(batch, 1, 1, 1, 1, fill)
    images, channels = xp.arange(n)[:, None, None, None], xp.arange(c)[None, :, None, None]

    def pixels(r, q):
        r = xp.clip(r + 1, 0, height + 1)[:, None]
        q = xp.clip(q + 1, 0, width + 1)[:, None]
        return padded[images, channels, r, q]

    if interpolation == "nearest":
        return pixels(xp.rint(rows).astype(np.int64), xp.rint(cols).astype(np.int64))
    top, left = xp.floor(rows), xp.floor(cols)
    wy, wx = (rows - top)[:, None], (cols - left)[:, None]
    top, left = top.astype(np.int64), left.astype(np.int64)
    return ((1 - wy) * ((1 - wx) * pixels(top, left) + wx * pixels(top, left + 1))
            + wy * ((1 - wx) * pixels(top + 1, left) + wx * pixels(top + 1, left + 1)))


class RandomRotation(Transform):
    """Rotates each image counter-clockwise by an angle drawn uniformly from ``degrees``.

    ``degrees`` is a number d (range [-d, d]) or a (min, max) pair.  Each output pixel is
    read from the input by the inverse rotation about the image centre ((H-1)/2, (W-1)/2),
    with ``interpolation`` "nearest" or "bilinear"; corners rotated in from outside are
    ``fill``.  Rotating a square image by 90° with "nearest" equals ``np.rot90``.
    """

    def __init__(self, degrees, interpolation="nearest", fill=0):
        if isinstance(degrees, numbers.Number):
            if degrees < 0:
                raise ValueError(f"RandomRotation: degrees must be non-negative when a single number, got {degrees}")
            degrees = (-degrees, degrees)
        self.degrees = tuple(float(d) for d in _pair(degrees, "RandomRotation degrees"))
        if interpolation not in INTERPOLATIONS:
            raise ValueError(f"RandomRotation: unknown interpolation {interpolation!r}; valid values are "
                             f"{', '.join(map(repr, INTERPOLATIONS))}")
        self.interpolation, self.fill = interpolation, fill

    def apply(self, batch, generator):
        xp = get_array_module(batch)
        n, _, height, width = batch.shape
        angles = np.deg2rad(generator.uniform(self.degrees[0], self.degrees[1], n))
        dtype = batch.dtype if batch.dtype.kind == "f" else np.float32
        cos = xp.asarray(np.cos(angles), dtype=dtype)[:, None, None]
        sin = xp.asarray(np.sin(angles), dtype=dtype)[:, None, None]
        center_y, center_x = (height - 1) / 2, (width - 1) / 2
        # Output pixel (y, x) in centred coordinates with the v axis pointing up.
        u = xp.arange(width, dtype=dtype)[None, :] - center_x
        v = center_y - xp.arange(height, dtype=dtype)[:, None]
        # Inverse of a counter-clockwise rotation: rotate clockwise to find the source.
        source_u = cos * u + sin * v
        source_v = cos * v - sin * u
        return _sample(batch, center_y - source_v, center_x + source_u, self.interpolation, self.fill)


def _bilinear_matrix(in_size, out_size, dtype):
    """(out_size, in_size) weights of PyTorch's bilinear resampling with align_corners=False.

    Output index i reads source position s = (i + 0.5) * in/out - 0.5 (clamped at 0),
    mixing pixels floor(s) and floor(s) + 1 (clamped to the last) with weights
    1 - (s - floor(s)) and s - floor(s).
    """
    # In the batch's dtype, as PyTorch computes them, so float32 results agree to rounding.
    scale = np.asarray(in_size, dtype) / np.asarray(out_size, dtype)
    source = np.maximum(scale * (np.arange(out_size, dtype=dtype) + dtype.type(0.5)) - dtype.type(0.5), 0)
    lower = np.minimum(source.astype(np.int64), in_size - 1)
    upper = np.minimum(lower + 1, in_size - 1)
    weight_upper = source - lower.astype(dtype)
    matrix = np.zeros((out_size, in_size), dtype)
    np.add.at(matrix, (np.arange(out_size), lower), 1 - weight_upper)
    np.add.at(matrix, (np.arange(out_size), upper), weight_upper)
    return matrix


class Resize(Transform):
    """Bilinear resize to ``size``, as ``F.interpolate(mode="bilinear", align_corners=False,
    antialias=False)``: e.g. 32→224 for ImageNet-pretrained networks (E8).

    ``size`` (height, width) is exact; a single int sets the shorter side and keeps the
    aspect ratio, as torchvision does.  Without antialiasing, strong downscaling aliases.
    """

    def __init__(self, size):
        if isinstance(size, numbers.Integral):
            self.size = int(size)
        else:
            self.size = tuple(int(s) for s in _pair(size, "Resize size"))

    def _output_size(self, height, width):
        if isinstance(self.size, tuple):
            return self.size
        if height <= width:
            return self.size, int(self.size * width / height)
        return int(self.size * height / width), self.size

    def apply(self, batch, generator):
        xp = get_array_module(batch)
        height, width = batch.shape[2:]
        out_height, out_width = self._output_size(height, width)
        dtype = batch.dtype if batch.dtype.kind == "f" else np.dtype(np.float32)
        rows = xp.asarray(_bilinear_matrix(height, out_height, dtype))
        cols = xp.asarray(_bilinear_matrix(width, out_width, dtype))
        # Two plain 2-D matmuls (a broadcast batched matmul is several times slower):
        # first along H on (H, N*C*W), then along W on (N*C*H', W), which leaves the result contiguous.
        n, c = batch.shape[:2]
        along_h = rows @ batch.astype(dtype, copy=False).transpose(2, 0, 1, 3).reshape(height, -1)
        along_h = along_h.reshape(out_height, n, c, width).transpose(1, 2, 0, 3).reshape(-1, width)
        return (along_h @ cols.T).reshape(n, c, out_height, out_width)


class Normalize(Transform):
    """``(batch - mean[c]) / std[c]`` per channel."""

    def __init__(self, mean, std):
        self.mean, self.std = tuple(float(m) for m in mean), tuple(float(s) for s in std)
        if len(self.mean) != len(self.std):
            raise ValueError(f"Normalize: {len(self.mean)} means but {len(self.std)} stds")
        if any(s == 0 for s in self.std):
            raise ValueError(f"Normalize: std {self.std} contains 0")

    def apply(self, batch, generator):
        xp = get_array_module(batch)
        if len(self.mean) not in (1, batch.shape[1]):
            raise ValueError(f"Normalize: {len(self.mean)} means and stds for a batch with "
                             f"{batch.shape[1]} channels")
        mean = xp.asarray(self.mean, dtype=batch.dtype).reshape(1, -1, 1, 1)
        std = xp.asarray(self.std, dtype=batch.dtype).reshape(1, -1, 1, 1)
        return (batch - mean) / std


class ToFloat(Transform):
    """Casts a batch (e.g. uint8) to ``dtype`` and multiplies it by ``scale`` (1/255: [0, 1])."""

    def __init__(self, scale=1 / 255, dtype=np.float32):
        self.scale, self.dtype = scale, np.dtype(dtype)

    def apply(self, batch, generator):
        xp = get_array_module(batch)
        return batch.astype(self.dtype) * xp.asarray(self.scale, dtype=self.dtype)
