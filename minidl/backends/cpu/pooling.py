"""Adaptive average pooling of a channels-last input on the CPU, with a channels-last gradient.

The reference backward spreads g over the windows in NCHW order.  After a channels-last network
(ResNet's last stage) the ReLU and BatchNorm backward that come next walk their arrays in
(N, H, W, C) order; a gradient in that order saves them a transposing copy.
"""
import numpy as np

from ...functions.pooling import AdaptiveAvgPool2d
from ..registry import register
from .batchnorm import is_channels_last_float


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
