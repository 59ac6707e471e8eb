"""Pooling of channels-last inputs on the CPU, with channels-last outputs and gradients.

Max pooling: the reference (``functions/pooling.py``) takes one strided slice of the padded input
per kernel offset, with a masked copy each, and its backward one ``where`` per offset into a zero
array, all in NCHW order.  ``pool_kernels.py`` does forward in one pass over the (N, H, W, C)
memory (running maximum and its offset number per channel) and backward in one pass over dx,
split across threads; results are the reference's to the bit.  Output and gradient stay
channels-last, so the BatchNorm and ReLU around the pool keep their fast paths (a ReLU whose mask
is channels-last and whose gradient is not falls back to its reference backward).

Adaptive average pooling: the reference backward spreads g over the windows in NCHW order.  After a
channels-last network (ResNet's last stage) the ReLU and BatchNorm backward that come next walk
their arrays in (N, H, W, C) order; a gradient in that order saves them a transposing copy.
"""
import numpy as np

from ...functions.pooling import AdaptiveAvgPool2d, MaxPool2d, pool_layout
from ...memory_formats import channels_last
from ..registry import register
from . import pool_kernels
from .batchnorm import is_channels_last_float


@register(MaxPool2d, "cpu")
class MaxPool2dChannelsLast(MaxPool2d):
    """The same y and dL/dx as MaxPool2d (every geometry: kernel, stride, padding, dilation, ceil_mode),
    both stored (N, H, W, C); the winner's offset number is kept per output, one byte each."""

    output_memory_format = channels_last

    @classmethod
    def supports(cls, inputs, params):
        return is_channels_last_float(inputs[0])

    def forward(self, x, kernel_size=(1, 1), stride=(1, 1), padding=(0, 0), dilation=(1, 1), ceil_mode=False):
        out_hw, pads = pool_layout(x.shape, kernel_size, stride, padding, dilation, ceil_mode)
        pixels = np.ascontiguousarray(x.transpose(0, 2, 3, 1))  # a view: x is stored channels-last
        y, argmax = pool_kernels.max_pool(pixels, out_hw, kernel_size, stride, pads, dilation)
        if self.recording:
            self.argmax, self.input_hw = argmax, x.shape[2:]
            self.geometry = kernel_size, stride, pads, dilation
        return y.transpose(0, 3, 1, 2)

    def backward(self, g):
        g_pixels = np.ascontiguousarray(g.transpose(0, 2, 3, 1))  # a view when g is channels-last
        dx = pool_kernels.max_pool_grad(g_pixels, self.argmax, self.input_hw, *self.geometry)
        return dx.transpose(0, 3, 1, 2)


@register(AdaptiveAvgPool2d, "cpu")
class AdaptiveAvgPool2dChannelsLast(AdaptiveAvgPool2d):
    """The same y and dL/dx as AdaptiveAvgPool2d, the gradient stored (N, H, W, C) when windows divide."""

    @classmethod
    def supports(cls, inputs, params):
        return is_channels_last_float(inputs[0])

    def backward(self, g):
        if not self.divisible:
            return super().backward(g)
        n, c, h, w = self.input_shape
        oh, ow = g.shape[2:]
        kh, kw = h // oh, w // ow
        share = (g / (kh * kw)).transpose(0, 2, 3, 1)[:, :, None, :, None, :]
        grad = np.ascontiguousarray(np.broadcast_to(share, (n, oh, kh, ow, kw, c))).reshape(n, h, w, c)
        return grad.transpose(0, 3, 1, 2)
