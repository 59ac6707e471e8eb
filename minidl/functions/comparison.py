"""Elementwise comparisons that pick or test values: maximum, minimum, isclose.

maximum(a, b) passes the gradient to whichever input is larger; where they are equal PyTorch
splits it, half to each, and so does minidl.
"""
from ..autograd import Function
from ..backend import get_array_module
from .arithmetic import unbroadcast


class Maximum(Function):
    """y = max(a, b) elementwise (NaN if either is NaN).

    dL/da = g where a > b, g/2 where a == b, else 0;  dL/db likewise (each unbroadcast).
    """

    pick = "maximum"  # Minimum sets "minimum"

    def forward(self, a, b):
        xp = get_array_module(a)
        self.shapes = a.shape, b.shape
        y = getattr(xp, self.pick)(a, b)
        if self.recording:
            self.share_a = (a == y).astype(y.dtype) - (a == b).astype(y.dtype) * 0.5  # 1, 1/2 or 0
            self.share_b = (b == y).astype(y.dtype) - (a == b).astype(y.dtype) * 0.5
        return y

    def backward(self, g):
        grad_a = unbroadcast(g * self.share_a, self.shapes[0]) if self.needs_input_grad[0] else None
        grad_b = unbroadcast(g * self.share_b, self.shapes[1]) if self.needs_input_grad[1] else None
        return grad_a, grad_b


class Minimum(Maximum):
    """y = min(a, b) elementwise.   dL/da = g where a < b, g/2 where a == b, else 0 (dL/db likewise)."""

    pick = "minimum"


class IsClose(Function):
    """y = |a - b| <= atol + rtol * |b| (bool; NaNs equal only with ``equal_nan``). No gradient."""

    def forward(self, a, b, rtol=1e-5, atol=1e-8, equal_nan=False):
        return get_array_module(a).isclose(a, b, rtol=rtol, atol=atol, equal_nan=equal_nan)
