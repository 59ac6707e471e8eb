"""ReLU on the CPU in one pass: the fast twin of ``functions/activation.py``'s ReLU.

The reference makes ``x > 0`` and ``np.maximum(x, 0)`` in two passes over x, and its backward
``np.where`` in two more (the mask and the result).  The numba kernels (``kernels.relu`` and
``kernels.relu_grad``) write y and the mask in one pass, and the gradient in one, split across
the CPU's threads for large arrays; the output keeps x's memory order.
"""
import numpy as np

from ...functions.activation import ReLU
from ...memory_formats import preserve_format
from ..registry import register
from . import kernels

FUSED_MIN_SIZE = 1 << 12  # values; below this the kernel call costs more than the pass it saves


@register(ReLU, "cpu")
class ReLUFused(ReLU):
    """The same y and dL/dx as ReLU, each in one pass."""

    output_memory_format = preserve_format  # y is written in x's memory order

    @classmethod
    def supports(cls, inputs, params):
        x = getattr(inputs[0], "array", inputs[0])
        return x.dtype in (np.float32, np.float64) and x.size >= FUSED_MIN_SIZE

    def forward(self, x):
        fused = kernels.relu(x)  # None when x has no flat view to walk (a strided slice)
        if fused is None:
            return super().forward(x)
        y, positive = fused
        if self.recording:
            self.positive = positive
        return y

    def backward(self, g):
        fused = kernels.relu_grad(g, self.positive)  # None when g and the mask lie in memory differently
        return super().backward(g) if fused is None else fused
