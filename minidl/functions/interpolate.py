"""``interpolate`` (and ``nn.Upsample``): resizing the spatial dims by nearest or (bi)linear sampling.

Resizing is separable: each spatial axis is resized on its own, the last axis first.  Along one
axis of input size n and output size m, output position j reads input positions ``i0[j]``, ``i1[j]``
with weights ``w0[j]``, ``w1[j]`` (PyTorch's source coordinates, with s = n/m, or 1/scale_factor
when one is given):

    nearest         src = floor(j * s) (in float32, as PyTorch)       i0 = src, w0 = 1
    nearest-exact   src = floor((j + 0.5) * s)                         i0 = src, w0 = 1
    linear          src = (j + 0.5) * s - 0.5, at least 0; or j * (n - 1)/(m - 1) with align_corners
                    i0 = floor(src), i1 = min(i0 + 1, n - 1), w1 = src - i0, w0 = 1 - w1

so y = w0 * x.take(i0) + w1 * x.take(i1) along the axis.  That is a linear map y = A x with a
sparse (m, n) matrix A, so the backward along the axis is dL/dx = A^T g, one matrix product.
"""
import math

import numpy as np

from ..autograd import Function
from ..backend import get_array_module

MODES = {"nearest": 1, "nearest-exact": 1, "linear": 1, "bilinear": 2}  # mode -> spatial dims (nearest: any)


def axis_sampling(in_size, out_size, mode, align_corners, scale_factor):
    """[(indices, weights), ...] along one axis: output j = sum of weights[j] * input[indices[j]]."""
    j = np.arange(out_size)
    if mode in ("nearest", "nearest-exact"):
        scale = np.float32(1.0 / scale_factor if scale_factor else in_size / out_size)
        shift = np.float32(0.5 if mode == "nearest-exact" else 0.0)
        source = np.floor((j.astype(np.float32) + shift) * scale).astype(np.int64)
        return [(np.minimum(source, in_size - 1), np.ones(out_size))]
    if align_corners:
        scale = (in_size - 1) / (out_size - 1) if out_size > 1 else 0.0
        source = j * scale
    else:
        scale = 1.0 / scale_factor if scale_factor else in_size / out_size
        source = np.maximum(scale * (j + 0.5) - 0.5, 0.0)
    low = np.floor(source).astype(np.int64)
    high = np.minimum(low + 1, in_size - 1)
    high_weight = source - low
    return [(low, 1.0 - high_weight), (high, high_weight)]


class Interpolate(Function):
    """y = x resampled along each spatial axis by its (indices, weights) pairs (module docstring).

    dL/dx = A^T g along each axis, in reverse order, A the axis's (out, in) sampling matrix."""

    def forward(self, x, samplings=()):
        xp = get_array_module(x)
        self.samplings = samplings  # [(axis, in size, [(indices, weights), ...]), ...], last axis first
        y = x
        for axis, _, pairs in samplings:
            shape = (-1,) + (1,) * (x.ndim - axis - 1)  # the weights vary along `axis` only
            resampled = None
            for indices, weights in pairs:
                term = xp.take(y, xp.asarray(indices), axis=axis) * xp.asarray(weights, dtype=x.dtype).reshape(shape)
                resampled = term if resampled is None else resampled + term
            y = resampled
        return y

    def backward(self, g):
        xp = get_array_module(g)
        for axis, in_size, pairs in reversed(self.samplings):
            matrix = np.zeros((len(pairs[0][0]), in_size))
            for indices, weights in pairs:
                np.add.at(matrix, (np.arange(len(indices)), indices), weights)
            moved = xp.moveaxis(g, axis, -1)
            g = xp.ascontiguousarray(xp.moveaxis(moved @ xp.asarray(matrix, dtype=g.dtype), -1, axis))
        return g


def interpolate(input, size=None, scale_factor=None, mode="nearest", align_corners=None,
                recompute_scale_factor=None, antialias=False):
    """Resizes the spatial dims of input (N, C, *spatial) to ``size`` or by ``scale_factor``.

    modes: 'nearest' and 'nearest-exact' (any number of spatial dims), 'linear' (N, C, L) and
    'bilinear' (N, C, H, W); ``align_corners`` (linear modes only) maps the corner pixels' centres
    onto each other."""
    if mode not in MODES:
        raise NotImplementedError(f"interpolate: mode {mode!r} is not supported by minidl; valid modes: "
                                  f"{', '.join(MODES)}")
    if antialias:
        raise NotImplementedError("interpolate: antialias=True is not supported by minidl")
    spatial = input.ndim - 2
    if spatial < 1:
        raise ValueError(f"interpolate: expected input (N, C, *spatial), got shape {tuple(input.shape)}")
    if mode in ("linear", "bilinear") and spatial != MODES[mode]:
        raise NotImplementedError(f"interpolate: mode {mode!r} needs a {MODES[mode] + 2}-D input, got shape "
                                  f"{tuple(input.shape)}" + (" (use 'bilinear' for 4-D)" if mode == "linear" else ""))
    if align_corners is not None and mode.startswith("nearest"):
        raise ValueError("interpolate: align_corners option can only be set with the interpolating modes: "
                         "linear | bilinear")
    out_sizes, factors = _output_sizes(input, size, scale_factor, spatial, recompute_scale_factor)
    samplings = []
    for axis in reversed(range(2, input.ndim)):
        in_size, out_size = input.shape[axis], out_sizes[axis - 2]
        pairs = axis_sampling(in_size, out_size, mode, bool(align_corners), factors[axis - 2])
        samplings.append((axis, in_size, pairs))
    return Interpolate.apply(input, samplings=samplings)


def _output_sizes(input, size, scale_factor, spatial, recompute_scale_factor):
    """(output sizes, the scale factors the source coordinates use: None where in/out is used)."""
    if (size is None) == (scale_factor is None):
        raise ValueError("interpolate: give exactly one of size and scale_factor")
    if size is not None:
        sizes = (size,) * spatial if isinstance(size, int) else tuple(size)
        if len(sizes) != spatial or not all(isinstance(s, int) and s > 0 for s in sizes):
            raise ValueError(f"interpolate: size must be {spatial} positive int(s) for input of shape "
                             f"{tuple(input.shape)}, got {size!r}")
        return sizes, (None,) * spatial
    factors = (scale_factor,) * spatial if isinstance(scale_factor, (int, float)) else tuple(scale_factor)
    if len(factors) != spatial or not all(f > 0 for f in factors):
        raise ValueError(f"interpolate: scale_factor must be {spatial} positive number(s) for input of shape "
                         f"{tuple(input.shape)}, got {scale_factor!r}")
    sizes = tuple(int(math.floor(n * f)) for n, f in zip(input.shape[2:], factors))
    if min(sizes) <= 0:
        raise ValueError(f"interpolate: scale_factor {scale_factor!r} leaves nothing of input {tuple(input.shape)}")
    return sizes, ((None,) * spatial if recompute_scale_factor else tuple(float(f) for f in factors))
