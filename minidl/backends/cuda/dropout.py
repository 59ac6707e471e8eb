"""Dropout on the GPU (kernels/dropout.cu): masks from a counter-based generator, Philox4x32-10.

Element i of a mask is a pure function of (key, counter + i): keep_i = u_i >= p with u_i uniform in
[0, 1) from the top 24 bits of one Philox word.  The key and the counter come from
``minidl.random.philox_counter`` -- one stream per device, fixed by ``manual_seed``, saved with the
random state -- so no generator is built per call and nothing is copied to the device.
    y = x * keep / (1 - p);   dL/dx = g * keep / (1 - p)
``dropout2d`` draws one mask value per (sample, channel) and broadcasts it over the image.
"""
from ... import random
from ...functions.dropout import Dropout
from ..registry import register
from .launch import is_float_array, i64, launch, real, u64


def _scale(p):
    return 0.0 if p == 1 else 1.0 / (1.0 - p)  # p = 1 drops everything (as functions/dropout.py)


def dropout_mask(shape, p, key, counter):
    """kernels/dropout.cu dropout_mask: keep (uint8, 1 = kept), keep_i = u(key, counter + i) >= p."""
    import cupy
    keep = cupy.empty(shape, dtype=cupy.uint8)
    launch("dropout.cu", "dropout_mask", (keep, i64(keep.size), real(p, "float32"), u64(key), u64(counter)),
           keep.size)
    return keep


def dropout_forward(x, p, key, counter):
    """kernels/dropout.cu dropout_forward: (y, keep) with y = x * keep / (1 - p), mask and output in one pass."""
    import cupy
    x = cupy.ascontiguousarray(x)
    keep, y = cupy.empty(x.shape, dtype=cupy.uint8), cupy.empty_like(x)
    launch("dropout.cu", "dropout_forward", (x, keep, y, i64(x.size), real(p, "float32"), real(_scale(p), x.dtype),
                                             u64(key), u64(counter)), x.size, x.dtype)
    return y, keep


def dropout_backward(g, keep, p):
    """kernels/dropout.cu dropout_apply: dx = g * keep / (1 - p)."""
    import cupy
    g = cupy.ascontiguousarray(g)
    dx = cupy.empty_like(g)
    launch("dropout.cu", "dropout_apply", (g, keep, dx, i64(g.size), real(_scale(p), g.dtype)), g.size, g.dtype)
    return dx


@register(Dropout, "cuda")
class DropoutCuda(Dropout):
    """Dropout with Philox masks made on the device (see the module docstring)."""

    @classmethod
    def supports(cls, inputs, params):
        return is_float_array(getattr(inputs[0], "array", inputs[0]))

    def forward(self, x, p, mask_shape):
        key, counter = random.philox_counter(x.device.id, x.size if tuple(mask_shape) == x.shape else
                                             int(_prod(mask_shape)))
        self.p, self.elementwise = p, tuple(mask_shape) == x.shape
        if self.elementwise:
            y, keep = dropout_forward(x, p, key, counter)
        else:  # dropout2d: one draw per channel, broadcast over H and W
            keep = dropout_mask(tuple(mask_shape), p, key, counter)
            y = x * keep
            y *= real(_scale(p), x.dtype)
        if self.recording:
            self.keep = keep
        return y

    def backward(self, g):
        if self.elementwise:
            return dropout_backward(g, self.keep, self.p)
        grad = g * self.keep
        grad *= real(_scale(self.p), g.dtype)
        return grad


def _prod(shape):
    count = 1
    for size in shape:
        count *= int(size)
    return count
