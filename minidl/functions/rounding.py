"""Rounding and sign: floor, ceil, round, trunc, frac, sign.

These are step functions: flat almost everywhere, so their gradient is 0 (PyTorch's choice too,
also at the jumps) -- except frac(x) = x - trunc(x), whose slope is 1.
"""
from ..autograd import Function
from ..backend import get_array_module


class _Step(Function):
    """y = step(x), a piecewise-constant function.   dL/dx = 0."""

    def forward(self, x, **params):
        self.shape = x.shape
        return self.step(get_array_module(x), x, **params)

    def backward(self, g):
        return get_array_module(g).zeros(self.shape, dtype=g.dtype)


class Floor(_Step):
    """y = the largest integer <= x.   dL/dx = 0."""

    def step(self, xp, x):
        return xp.floor(x)


class Ceil(_Step):
    """y = the smallest integer >= x.   dL/dx = 0."""

    def step(self, xp, x):
        return xp.ceil(x)


class Trunc(_Step):
    """y = x rounded toward zero.   dL/dx = 0."""

    def step(self, xp, x):
        return xp.trunc(x)


class Round(_Step):
    """y = x rounded to ``decimals`` places, halves to even (as PyTorch and NumPy).   dL/dx = 0."""

    def step(self, xp, x, decimals=0):
        return xp.round(x, decimals)


class Sign(_Step):
    """y = -1, 0 or 1 as x is negative, zero or positive.   dL/dx = 0."""

    def step(self, xp, x):
        return xp.sign(x)


class Frac(Function):
    """y = x - trunc(x), the fractional part with x's sign.   dL/dx = g."""

    def forward(self, x):
        return x - get_array_module(x).trunc(x)

    def backward(self, g):
        return g
