"""Ops that rearrange or copy elements: flip, roll, repeat, unfold (sliding windows), tril/triu.

Each backward undoes the move: flip g back, roll it back, sum the copies of repeat, add the
overlapping windows of unfold back, and keep the same triangle of g.
"""
from ..autograd import Function
from ..backend import get_array_module
from .indexing import add_at


class Flip(Function):
    """y = x reversed along ``dims``.   dL/dx = g reversed along the same dims."""

    def forward(self, x, dims=()):
        self.dims = dims
        return get_array_module(x).flip(x, dims).copy()

    def backward(self, g):
        return get_array_module(g).flip(g, self.dims)


class Roll(Function):
    """y = x shifted cyclically by ``shifts`` along ``dims`` (or the flattened x if dims is None).
    dL/dx = g shifted back by -shifts."""

    def forward(self, x, shifts=(), dims=None):
        self.shifts, self.dims = shifts, dims
        return get_array_module(x).roll(x, shifts, dims)

    def backward(self, g):
        back = tuple(-s for s in self.shifts) if isinstance(self.shifts, tuple) else -self.shifts
        return get_array_module(g).roll(g, back, self.dims)


class Repeat(Function):
    """y = x tiled ``repeats[d]`` times along each dim d (leading repeats add new dims), as
    PyTorch's ``Tensor.repeat``.   dL/dx = the sum of g over the copies."""

    def forward(self, x, repeats=()):
        self.shape, self.repeats = x.shape, repeats
        return get_array_module(x).tile(x, repeats)

    def backward(self, g):
        shape = (1,) * (len(self.repeats) - len(self.shape)) + tuple(self.shape)
        split = []  # (copies, size) pairs: the copies axes are summed out
        for copies, size in zip(self.repeats, shape):
            split += [copies, size]
        return g.reshape(split).sum(axis=tuple(range(0, len(split), 2))).reshape(self.shape)


class Unfold(Function):
    """y = the windows of ``size`` elements, ``step`` apart, along ``dim``: that dim becomes the
    window count and a new last dim of length ``size`` holds each window, as ``Tensor.unfold``.
    y[..., i, ..., k] = x[..., i * step + k, ...].   dL/dx = g added back into every window."""

    def forward(self, x, dim=0, size=1, step=1):
        xp = get_array_module(x)
        self.shape, self.dim = x.shape, dim
        count = (x.shape[dim] - size) // step + 1 if x.ndim else 1
        self.positions = xp.arange(count)[:, None] * step + xp.arange(size)[None, :]  # (count, size)
        if x.ndim == 0:
            return x.reshape(1)
        return xp.moveaxis(xp.take(x, self.positions, axis=dim), dim + 1, -1)

    def backward(self, g):
        xp = get_array_module(g)
        if not self.shape:
            return g.reshape(())
        grad = xp.zeros(self.shape, dtype=g.dtype)
        add_at(grad, (slice(None),) * self.dim + (self.positions,), xp.moveaxis(g, -1, self.dim + 1))
        return grad


class Triangle(Function):
    """y = x with the elements above (``upper=False``: tril) or below (``upper=True``: triu) the
    ``diagonal``-th diagonal of the last two dims set to 0.   dL/dx = g with the same zeros."""

    def forward(self, x, diagonal=0, upper=False):
        xp = get_array_module(x)
        rows, cols = x.shape[-2:]
        above = xp.arange(cols)[None, :] - xp.arange(rows)[:, None]  # j - i: how far right of the diagonal
        self.keep = above >= diagonal if upper else above <= diagonal
        return xp.where(self.keep, x, xp.zeros((), dtype=x.dtype))

    def backward(self, g):
        xp = get_array_module(g)
        return xp.where(self.keep, g, xp.zeros((), dtype=g.dtype))
