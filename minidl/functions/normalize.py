"""``normalize``: x divided by its p-norm along ``dim`` (at least ``eps``), as ``F.normalize``.

With n = (sum_d |x_d|^p)^(1/p) along ``dim`` and m = max(n, eps):

    y = x / m
    dL/dx = g / m - [n > eps] * (sum_d g_d x_d) / m^2 * dn/dx,   dn/dx = sign(x) |x|^(p-1) / n^(p-1)

(for p = 2: dL/dx = (g - y * sum(g * y)) / n).  Where n <= eps the divisor is the constant eps,
so dL/dx = g / eps, PyTorch's gradient there too.
"""
import math

from ..autograd import Function
from ..backend import get_array_module
from ..errors import UnsupportedDTypeError


class Normalize(Function):
    """y = x / max(||x||_p, eps) along ``dim`` (see the module docstring for the backward)."""

    def forward(self, x, p=2.0, dim=1, eps=1e-12):
        xp = get_array_module(x)
        norm = _vector_norm(xp, x, p, dim)
        divisor = xp.maximum(norm, eps)
        self.x, self.p, self.dim, self.norm, self.divisor, self.above = x, p, dim, norm, divisor, norm > eps
        return x / divisor

    def backward(self, g):
        xp = get_array_module(g)
        x, p, norm, divisor = self.x, self.p, self.norm, self.divisor
        dot = (g * x).sum(axis=self.dim, keepdims=True)
        safe_norm = xp.where(self.above, norm, 1)  # the second term only exists where n > eps
        if p == 2:
            dnorm = x / safe_norm
        elif p == 1:
            dnorm = xp.sign(x)
        elif math.isinf(p):
            dnorm = xp.sign(x) * (xp.abs(x) == norm) / (xp.abs(x) == norm).sum(axis=self.dim, keepdims=True)
        else:
            dnorm = xp.sign(x) * xp.abs(x) ** (p - 1) / safe_norm ** (p - 1)
        return g / divisor - xp.where(self.above, dot / (divisor * divisor), 0) * dnorm


def _vector_norm(xp, x, p, dim):
    magnitude = xp.abs(x)
    if math.isinf(p):
        return magnitude.max(axis=dim, keepdims=True) if p > 0 else magnitude.min(axis=dim, keepdims=True)
    if p == 2:
        return xp.sqrt((x * x).sum(axis=dim, keepdims=True))
    if p == 1:
        return magnitude.sum(axis=dim, keepdims=True)
    return (magnitude ** p).sum(axis=dim, keepdims=True) ** (1 / p)


def normalize(input, p=2.0, dim=1, eps=1e-12, out=None):
    """``input`` scaled to unit p-norm along ``dim`` (vectors shorter than ``eps`` are divided by eps)."""
    if out is not None:
        raise TypeError("normalize: out= is not supported by minidl; use the returned tensor")
    ndim = input.ndim
    if not -ndim <= dim < ndim:
        raise IndexError(f"normalize: dim {dim} is out of range for an input of shape {tuple(input.shape)} "
                         f"(expected -{ndim} <= dim < {ndim})")
    if p <= 0 and not math.isinf(p):
        raise ValueError(f"normalize: p must be positive (or inf), got {p}")
    if input.dtype.kind != "f":
        raise UnsupportedDTypeError(f"normalize: expected a floating-point input, got {input.dtype}")
    return Normalize.apply(input, p=float(p), dim=dim, eps=eps)
