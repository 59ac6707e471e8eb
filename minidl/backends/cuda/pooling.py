"""Max pooling on the GPU (kernels/maxpool.cu).

Forward: y[n, c, oh, ow] = the window's maximum (padding counts as -inf; the first of equal values
and any NaN win, as in PyTorch), with the flat index h*W + w of the winner kept for backward.
Backward: dx[h, w] = the sum of g over the windows whose winner is (h, w), gathered per input pixel
(no atomics, even where windows overlap).  Geometry, ceil_mode and dilation are the reference's
(``functions.pooling.pool_layout``).
"""
import numpy as np

from ...functions.pooling import MaxPool2d, pool_layout
from ..registry import register
from .launch import i32, i64, is_float_array, launch


def _pool_args(input_shape, out_hw, kernel_size, stride, pads, dilation):
    """H, W, OH, OW, KH, KW, SH, SW, PH, PW, DH, DW as the kernels' int arguments (PH, PW: top, left)."""
    (h, w), (oh, ow) = input_shape[2:], out_hw
    return tuple(i32(v) for v in (h, w, oh, ow, *kernel_size, *stride, pads[0], pads[2], *dilation))


def max_pool_forward(x, kernel_size, stride, padding, dilation, ceil_mode):
    """kernels/maxpool.cu maxpool_forward: (y, indices), indices the int64 flat h*W + w of each maximum."""
    import cupy
    x = cupy.ascontiguousarray(x)
    out_hw, pads = pool_layout(x.shape, kernel_size, stride, padding, dilation, ceil_mode)
    y = cupy.empty(x.shape[:2] + out_hw, dtype=x.dtype)
    indices = cupy.empty(y.shape, dtype=cupy.int64)
    launch("maxpool.cu", "maxpool_forward",
           (x, y, indices, i64(y.size)) + _pool_args(x.shape, out_hw, kernel_size, stride, pads, dilation),
           y.size, x.dtype)
    return y, indices


def max_pool_backward(g, indices, input_shape, kernel_size, stride, padding, dilation, ceil_mode):
    """kernels/maxpool.cu maxpool_backward: dx (N, C, H, W), each g added at its window's winner."""
    import cupy
    if indices.dtype != np.int64 or indices.shape != g.shape:
        raise TypeError(f"max_pool_backward: indices must be int64 of the output's shape {tuple(g.shape)} (as "
                        f"max_pool_forward makes them), got {indices.dtype} of shape {tuple(indices.shape)}")
    g, indices = cupy.ascontiguousarray(g), cupy.ascontiguousarray(indices)
    out_hw, pads = pool_layout(input_shape, kernel_size, stride, padding, dilation, ceil_mode)
    dx = cupy.empty(tuple(input_shape), dtype=g.dtype)
    launch("maxpool.cu", "maxpool_backward",
           (g, indices, dx, i64(dx.size)) + _pool_args(input_shape, out_hw, kernel_size, stride, pads, dilation),
           dx.size, g.dtype)
    return dx


@register(MaxPool2d, "cuda")
class MaxPool2dCuda(MaxPool2d):
    """MaxPool2d with the kernels of kernels/maxpool.cu (see the module docstring)."""

    @classmethod
    def supports(cls, inputs, params):
        return is_float_array(getattr(inputs[0], "array", inputs[0]))

    def forward(self, x, kernel_size=(1, 1), stride=(1, 1), padding=(0, 0), dilation=(1, 1), ceil_mode=False):
        self.geometry = kernel_size, stride, padding, dilation, ceil_mode
        y, indices = max_pool_forward(x, *self.geometry)
        if self.recording:
            self.indices, self.input_shape = indices, x.shape
        return y

    def backward(self, g):
        return max_pool_backward(g, self.indices, self.input_shape, *self.geometry)
