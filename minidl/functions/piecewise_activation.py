"""Piecewise-linear activations: hardtanh, relu6, hardsigmoid, hardswish.

Cheap stand-ins for tanh, sigmoid and swish made of straight pieces (MobileNetV3 uses the last
two).  Each backward is dL/dx = g * slope(x), the slope of the piece x falls on; at the joins
the slopes are PyTorch's, so gradients match it exactly there too.
"""
from ..autograd import Function
from ..backend import get_array_module
from .smooth_activation import _check_floating


class Hardtanh(Function):
    """y = clip(x, min_val, max_val).   dy/dx = 1 where min_val < x < max_val, else 0 (also at the ends).

    relu6(x) is hardtanh(x, 0, 6)."""

    def forward(self, x, min_val=-1.0, max_val=1.0):
        xp = get_array_module(x)
        self.inside = (x > min_val) & (x < max_val)
        return xp.clip(x, min_val, max_val).astype(x.dtype, copy=False)

    def backward(self, g):
        xp = get_array_module(g)
        return xp.where(self.inside, g, 0).astype(g.dtype, copy=False)


class Hardsigmoid(Function):
    """y = clip(x / 6 + 1/2, 0, 1).   dy/dx = 1/6 where -3 < x < 3, else 0."""

    def forward(self, x):
        xp = get_array_module(x)
        self.inside = (x > -3) & (x < 3)
        return xp.clip(x / 6 + 0.5, 0, 1).astype(x.dtype, copy=False)

    def backward(self, g):
        xp = get_array_module(g)
        return xp.where(self.inside, g / 6, 0).astype(g.dtype, copy=False)


class Hardswish(Function):
    """y = x * relu6(x + 3) / 6: 0 for x <= -3, x for x >= 3, x (x + 3) / 6 between.

    dy/dx = 0 for x <= -3, x / 3 + 1/2 for -3 < x < 3, 1 for x >= 3 (PyTorch's choice at the joins).
    """

    def forward(self, x):
        xp = get_array_module(x)
        self.x = x
        return x * xp.clip(x + 3, 0, 6) / 6

    def backward(self, g):
        xp = get_array_module(g)
        x = self.x
        slope = xp.where(x <= -3, 0, xp.where(x < 3, x / 3 + 0.5, 1))
        return (g * slope).astype(g.dtype, copy=False)


def hardtanh(input, min_val=-1.0, max_val=1.0, inplace=False):
    if min_val > max_val:
        raise ValueError(f"hardtanh: min_val ({min_val}) cannot be greater than max_val ({max_val})")
    _check_floating("hardtanh", input)
    return Hardtanh.apply(input, min_val=min_val, max_val=max_val)


def relu6(input, inplace=False):
    _check_floating("relu6", input)
    return Hardtanh.apply(input, min_val=0.0, max_val=6.0)


def hardsigmoid(input, inplace=False):
    _check_floating("hardsigmoid", input)
    return Hardsigmoid.apply(input)


def hardswish(input, inplace=False):
    _check_floating("hardswish", input)
    return Hardswish.apply(input)
