"""Scans along one dim: cumsum, cumprod, and the indices of cummax/cummin (y_i combines x_0 .. x_i).

Backward of cumsum: x_i reaches every y_j with j >= i, so dL/dx_i = sum_{j >= i} g_j, a cumsum
of g run backwards. cumprod's is below; cummax/cummin are a gather at ``cummax_indices``.
"""
from ..autograd import Function
from ..backend import get_array_module


def reverse_cumsum(xp, g, axis):
    """sum_{j >= i} g_j along ``axis``."""
    return xp.flip(xp.cumsum(xp.flip(g, axis), axis=axis), axis)


class CumSum(Function):
    """y_i = x_0 + ... + x_i along ``dim``.   dL/dx_i = sum_{j >= i} g_j."""

    def forward(self, x, dim=0):
        self.dim = dim
        return get_array_module(x).cumsum(x, axis=dim)

    def backward(self, g):
        return reverse_cumsum(get_array_module(g), g, self.dim)


class CumProd(Function):
    """y_i = x_0 * ... * x_i along ``dim``.

    dL/dx_i = sum_{j >= i} g_j * prod_{k <= j, k != i} x_k. Without zeros in x that is
    reverse_cumsum(g * y)_i / x_i; with zeros the products are formed directly, leaving out x_i
    (as PyTorch does, no 0/0).
    """

    def forward(self, x, dim=0):
        xp = get_array_module(x)
        self.dim, self.x = dim, x
        self.y = xp.cumprod(x, axis=dim)
        return self.y

    def backward(self, g):
        xp = get_array_module(g)
        if not bool(xp.any(self.x == 0)):
            return reverse_cumsum(xp, g * self.y, self.dim) / self.x
        x, g = xp.moveaxis(self.x, self.dim, -1), xp.moveaxis(g, self.dim, -1)
        grad = xp.empty_like(g)
        for i in range(x.shape[-1]):
            without_i = x.copy()
            without_i[..., i] = 1
            products = xp.cumprod(without_i[..., i:], axis=-1)  # prod_{k <= j, k != i} x_k for j >= i
            products *= xp.prod(without_i[..., :i], axis=-1, keepdims=True)
            grad[..., i] = (g[..., i:] * products).sum(axis=-1)
        return xp.moveaxis(grad, -1, self.dim)


def running_extreme(xp, x, dim, largest=True):
    """max(x_0, ..., x_i) (min if not ``largest``) for each i along ``dim``, NaN propagating: the
    doubling scan (after step k each entry covers the 2^k entries ending at it), so it needs only
    elementwise maximum -- CuPy has no ``maximum.accumulate``."""
    extreme = xp.maximum if largest else xp.minimum
    y = xp.moveaxis(x, dim, -1).copy()
    shift = 1
    while shift < y.shape[-1]:
        previous = y.copy()
        y[..., shift:] = extreme(previous[..., shift:], previous[..., :-shift])
        shift *= 2
    return xp.moveaxis(y, -1, dim)


def cummax_indices(x, dim, largest=True):
    """The index of max(x_0, ..., x_i) (min if not ``largest``) for each i along ``dim``: the latest
    one on a tie, and a NaN wins, as in PyTorch. cummax's values are then x gathered at these
    indices, so their gradient is gather's: g added back at the indices.

    i is a "record" where x_i equals the running extreme (or is NaN); the index of y_i is the
    latest record at or before i.
    """
    xp = get_array_module(x)
    running = running_extreme(xp, x, dim, largest)
    positions = xp.arange(x.shape[dim]).reshape([-1 if d == dim else 1 for d in range(x.ndim)])
    is_record = x == running
    if x.dtype.kind == "f":
        is_record |= xp.isnan(x)
    return running_extreme(xp, xp.where(is_record, positions, 0), dim)
