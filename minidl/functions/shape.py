"""Ops that move elements without changing them: reshape, permute, cat, stack, pad,
expand (indexing is in indexing.py).

Each backward routes every output gradient back to the input element it came
from: reshape the gradient back, apply the inverse permutation, scatter into
the indexed positions, split along the concatenated axis, crop the padding,
sum over expanded axes.
"""
from ..autograd import Function
from ..backend import get_array_module
from .arithmetic import unbroadcast
from .indexing import GetItem  # noqa: F401  (x[index] lives in indexing.py; kept importable from here)


class Reshape(Function):
    """y = x viewed with a new shape.   dL/dx = g reshaped to x's shape."""

    def forward(self, x, shape=()):
        self.shape = x.shape
        return x.reshape(shape)

    def backward(self, g):
        return g.reshape(self.shape)


class Permute(Function):
    """y = x with its axes reordered by ``dims``.   dL/dx = g with the inverse order."""

    def forward(self, x, dims=()):
        self.dims = dims
        return x.transpose(dims)

    def backward(self, g):
        inverse = [0] * len(self.dims)
        for position, axis in enumerate(self.dims):
            inverse[axis] = position
        return g.transpose(inverse)


class Expand(Function):
    """y = x broadcast to ``shape``.   dL/dx = g summed over the broadcast axes."""

    def forward(self, x, shape=()):
        self.shape = x.shape
        return get_array_module(x).broadcast_to(x, shape)

    def backward(self, g):
        return unbroadcast(g, self.shape)


class Cat(Function):
    """y = concatenate(xs, axis).   dL/dx_i = the slice of g that x_i filled."""

    def forward(self, *xs, dim=0):
        self.dim = dim % xs[0].ndim
        self.sizes = [x.shape[self.dim] for x in xs]
        return get_array_module(xs[0]).concatenate(xs, axis=self.dim)

    def backward(self, g):
        grads, start = [], 0
        for size in self.sizes:
            index = [slice(None)] * g.ndim
            index[self.dim] = slice(start, start + size)
            grads.append(g[tuple(index)])
            start += size
        return tuple(grads)


class Stack(Function):
    """y = stack(xs, axis) (a new axis).   dL/dx_i = g taken at index i of that axis."""

    def forward(self, *xs, dim=0):
        self.dim = dim % (xs[0].ndim + 1)
        return get_array_module(xs[0]).stack(xs, axis=self.dim)

    def backward(self, g):
        xp = get_array_module(g)
        return tuple(xp.take(g, i, axis=self.dim) for i in range(g.shape[self.dim]))


class Pad(Function):
    """y = x with constant padding; ``pad`` lists (before, after) pairs from the LAST axis
    backwards, as ``torch.nn.functional.pad``.   dL/dx = g with the padding cropped off.
    """

    def forward(self, x, pad=(), value=0.0):
        if len(pad) % 2 or len(pad) // 2 > x.ndim:
            raise ValueError(f"pad must hold (before, after) pairs for at most {x.ndim} dims, got {pad}")
        widths = [(0, 0)] * x.ndim
        for i in range(len(pad) // 2):
            widths[x.ndim - 1 - i] = (pad[2 * i], pad[2 * i + 1])
        if any(w < 0 for pair in widths for w in pair):
            raise ValueError(f"negative padding is not supported, got {pad}")
        self.crop = tuple(slice(before, before + size) for (before, _), size in zip(widths, x.shape))
        return get_array_module(x).pad(x, widths, mode="constant", constant_values=value)

    def backward(self, g):
        return g[self.crop]
