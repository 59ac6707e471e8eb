"""Reductions: sum, mean, max, var over all elements or chosen dims.

A reduction maps many inputs to one output, so its backward *spreads* the
output gradient back over the reduced axes: ``expand_reduced`` re-inserts the
reduced axes (size 1) so the gradient broadcasts against the input.
"""
import numpy as np

from ..autograd import Function
from ..backend import get_array_module


def normalize_dims(dim, ndim):
    """``dim`` (None, int or sequence, negatives allowed) as a sorted tuple of axes."""
    if dim is None:
        return tuple(range(ndim))
    dims = (dim,) if isinstance(dim, int) else tuple(dim)
    for d in dims:
        if not -max(ndim, 1) <= d < max(ndim, 1):
            raise IndexError(f"Dimension out of range (expected to be in range of [{-ndim}, {ndim - 1}], but got {d})")
    return tuple(sorted(d % max(ndim, 1) for d in dims)) if ndim else ()


def expand_reduced(g, axes, keepdim):
    """Give ``g`` size-1 axes where the forward reduced them (a no-op if keepdim)."""
    if keepdim or not axes:
        return g
    xp = get_array_module(g)
    return xp.expand_dims(g, axes)


def reduced_count(shape, axes):
    count = 1
    for axis in axes:
        count *= shape[axis]
    return count


class Sum(Function):
    """y = sum of x over axes.   dL/dx = g broadcast back over those axes."""

    def forward(self, x, dim=None, keepdim=False):
        self.shape, self.keepdim = x.shape, keepdim
        self.axes = normalize_dims(dim, x.ndim)
        return x.sum(axis=self.axes, keepdims=keepdim)

    def backward(self, g):
        xp = get_array_module(g)
        return xp.broadcast_to(expand_reduced(g, self.axes, self.keepdim), self.shape).copy()


class Mean(Function):
    """y = sum(x) / n over axes.   dL/dx = g / n broadcast back over those axes."""

    def forward(self, x, dim=None, keepdim=False):
        self.shape, self.keepdim = x.shape, keepdim
        self.axes = normalize_dims(dim, x.ndim)
        return x.mean(axis=self.axes, keepdims=keepdim)

    def backward(self, g):
        xp = get_array_module(g)
        count = reduced_count(self.shape, self.axes)
        return xp.broadcast_to(expand_reduced(g, self.axes, self.keepdim) / count, self.shape).copy()


class Max(Function):
    """y = max of x over axes.

    dL/dx = g at the positions that hold the maximum, 0 elsewhere; when
    several positions tie, the gradient is shared equally among them (as
    PyTorch's ``amax`` and full ``max()``).
    """

    reduce = "max"  # the array method that reduces: Min sets "min"

    def forward(self, x, dim=None, keepdim=False):
        self.axes, self.keepdim = normalize_dims(dim, x.ndim), keepdim
        y = getattr(x, self.reduce)(axis=self.axes, keepdims=True)
        self.is_max = x == y
        return y if keepdim else y.reshape([s for i, s in enumerate(y.shape) if i not in self.axes])

    def backward(self, g):
        g = expand_reduced(g, self.axes, self.keepdim)
        ties = self.is_max.sum(axis=self.axes, keepdims=True)
        return (g / ties) * self.is_max


class Min(Max):
    """y = min of x over axes.   dL/dx = g shared equally among the positions holding the minimum."""

    reduce = "min"


class MaxAlongDim(Function):
    """values = max of x along one dim, with the arg-max indices.

    dL/dx = g scattered to the arg-max position of each slice (one position
    per slice, as PyTorch's ``max(dim)``).
    """

    arg = "argmax"  # MinAlongDim sets "argmin"

    def forward(self, x, dim=0, keepdim=False):
        xp = get_array_module(x)
        self.dim, self.keepdim, self.shape = dim % max(x.ndim, 1), keepdim, x.shape
        if x.ndim == 0:
            self.indices = None
            return x.copy()
        self.indices = xp.expand_dims(getattr(x, self.arg)(axis=self.dim), self.dim)
        values = xp.take_along_axis(x, self.indices, axis=self.dim)
        return values if keepdim else values.squeeze(self.dim)

    def backward(self, g):
        xp = get_array_module(g)
        if self.indices is None:
            return g
        grad = xp.zeros(self.shape, dtype=g.dtype)
        g = g if self.keepdim else xp.expand_dims(g, self.dim)
        xp.put_along_axis(grad, self.indices, g, axis=self.dim)
        return grad


class MinAlongDim(MaxAlongDim):
    """values = min of x along one dim.   dL/dx = g scattered to the arg-min of each slice."""

    arg = "argmin"


class Var(Function):
    """y = sum((x - mean)^2) / (n - correction) over axes.

    dL/dx = g * 2 (x - mean) / (n - correction); the mean's own dependence on x
    contributes nothing because sum(x - mean) = 0.  When correction >= n the divisor
    is 0, as in PyTorch: y is inf (nan where all values are equal).
    """

    def forward(self, x, dim=None, keepdim=False, correction=1):
        self.axes, self.keepdim = normalize_dims(dim, x.ndim), keepdim
        self.centered = x - x.mean(axis=self.axes, keepdims=True)
        self.denominator = max(reduced_count(x.shape, self.axes) - correction, 0)
        squares = (self.centered * self.centered).sum(axis=self.axes, keepdims=keepdim)
        with np.errstate(divide="ignore", invalid="ignore"):
            return squares / x.dtype.type(self.denominator)

    def backward(self, g):
        g = expand_reduced(g, self.axes, self.keepdim)
        with np.errstate(divide="ignore", invalid="ignore"):
            return g * (2 / g.dtype.type(self.denominator)) * self.centered


class Prod(Function):
    """y = product of x over one dim (or all of x).

    dL/dx_i = g * (product of the other x_j in x_i's slice), formed as the product of everything
    before i times everything after i (two cumulative products), so zeros need no division.
    """

    def forward(self, x, dim=None, keepdim=False):
        self.x, self.dim, self.keepdim = x, dim, keepdim
        if dim is None:
            return x.prod()
        return x.prod(axis=dim, keepdims=keepdim)

    def backward(self, g):
        xp = get_array_module(g)
        if self.dim is None:
            return (g * _product_of_others(xp, self.x.reshape(-1))).reshape(self.x.shape)
        g = g if self.keepdim else xp.expand_dims(g, self.dim)
        x = xp.moveaxis(self.x, self.dim, -1)
        return g * xp.moveaxis(_product_of_others(xp, x), -1, self.dim)


def _product_of_others(xp, x):
    """For each i along the last axis: prod_{j != i} x_j."""
    ones = xp.ones(x.shape[:-1] + (1,), dtype=x.dtype)
    before = xp.concatenate([ones, xp.cumprod(x[..., :-1], axis=-1)], axis=-1)
    after = xp.flip(xp.concatenate([ones, xp.cumprod(xp.flip(x, -1)[..., :-1], axis=-1)], axis=-1), -1)
    return (before * after)[..., :x.shape[-1]]


class LogSumExp(Function):
    """y = log(sum(exp(x))) over axes, computed as m + log(sum(exp(x - m))) with m the max (no
    overflow).   dL/dx = g * exp(x - y), the softmax of x over those axes."""

    def forward(self, x, dim=None, keepdim=False):
        xp = get_array_module(x)
        self.x, self.axes, self.keepdim = x, normalize_dims(dim, x.ndim), keepdim
        if x.size == 0:
            return xp.full([s for i, s in enumerate(x.shape) if i not in self.axes or keepdim], -xp.inf, x.dtype)
        m = x.max(axis=self.axes, keepdims=True)
        m = xp.where(xp.isfinite(m), m, 0)  # all -inf (or an inf): leave the shift out
        with np.errstate(divide="ignore"):  # log(0) = -inf where every x is -inf
            self.y = xp.log(xp.exp(x - m).sum(axis=self.axes, keepdims=True)) + m
        return self.y if keepdim else self.y.reshape([s for i, s in enumerate(x.shape) if i not in self.axes])

    def backward(self, g):
        return expand_reduced(g, self.axes, self.keepdim) * get_array_module(g).exp(self.x - self.y)


class Any(Function):
    """y = True where some x over the axes is nonzero. No gradient."""

    def forward(self, x, dim=None, keepdim=False):
        return get_array_module(x).any(x, axis=normalize_dims(dim, x.ndim), keepdims=keepdim)


class All(Function):
    """y = True where every x over the axes is nonzero. No gradient."""

    def forward(self, x, dim=None, keepdim=False):
        return get_array_module(x).all(x, axis=normalize_dims(dim, x.ndim), keepdims=keepdim)
