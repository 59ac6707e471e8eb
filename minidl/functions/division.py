"""Division with rounding and remainders: div(rounding_mode='floor' | 'trunc'), fmod, remainder,
and copysign.

For q = a / b rounded to an integer (q_floor = floor(a / b) or q_trunc = trunc(a / b)):
  * the rounded quotient is a step function: gradient 0 (as in PyTorch);
  * remainder(a, b) = a - q_floor * b (the sign of b, Python's %) and fmod(a, b) = a - q_trunc * b
    (the sign of a, C's fmod): away from the jumps q is constant, so dL/da = g, dL/db = -g * q.
Integer inputs give integer results (no gradient); integer division by zero raises, as in PyTorch.
"""
from ..autograd import Function
from ..backend import get_array_module
from ..errors import ArgumentError
from .arithmetic import unbroadcast


def _check_integer_divisor(b):
    xp = get_array_module(b)
    if getattr(b, "dtype", None) is not None and b.dtype.kind in "iub" and bool(xp.any(b == 0)):
        raise ZeroDivisionError("integer division by zero (ZeroDivisionError in PyTorch's RuntimeError)")


class DivRounded(Function):
    """y = a / b rounded down (``mode='floor'``) or toward zero (``'trunc'``).   dL/da = dL/db = 0."""

    def forward(self, a, b, mode="floor"):
        xp = get_array_module(a)
        self.shapes = a.shape, b.shape
        if mode not in ("floor", "trunc"):
            raise ArgumentError(f"div expected rounding_mode to be one of None, 'trunc', or 'floor' but found {mode!r}")
        if a.dtype.kind in "iu" and b.dtype.kind in "iu":
            _check_integer_divisor(b)
            quotient = xp.floor_divide(a, b)
            if mode == "trunc":  # step back toward zero where the signs differ and b does not divide a
                quotient += ((quotient < 0) & (a % b != 0)).astype(quotient.dtype)
            return quotient
        return xp.floor(a / b) if mode == "floor" else xp.trunc(a / b)

    def backward(self, g):
        xp = get_array_module(g)
        return tuple(xp.zeros(shape, dtype=g.dtype) for shape in self.shapes)


class _Modulo(Function):
    """Shared backward of remainder and fmod: dL/da = g, dL/db = -g * q (each unbroadcast)."""

    def forward(self, a, b):
        xp = get_array_module(a)
        self.shapes = a.shape, b.shape
        if a.dtype.kind in "iu":
            _check_integer_divisor(b)
        if self.needs_input_grad[1]:
            self.quotient = self.rounded_quotient(xp, a, b)
        return self.modulo(xp, a, b)

    def backward(self, g):
        grad_a = unbroadcast(g, self.shapes[0]) if self.needs_input_grad[0] else None
        grad_b = unbroadcast(-g * self.quotient, self.shapes[1]) if self.needs_input_grad[1] else None
        return grad_a, grad_b


class Remainder(_Modulo):
    """y = a - floor(a / b) * b, with the sign of b (Python's %).   dL/da = g,  dL/db = -g * floor(a / b)."""

    def rounded_quotient(self, xp, a, b):
        return xp.floor(a / b)

    def modulo(self, xp, a, b):
        return xp.remainder(a, b)


class Fmod(_Modulo):
    """y = a - trunc(a / b) * b, with the sign of a (C's fmod).   dL/da = g,  dL/db = -g * trunc(a / b)."""

    def rounded_quotient(self, xp, a, b):
        return xp.trunc(a / b)

    def modulo(self, xp, a, b):
        return xp.fmod(a, b)


class CopySign(Function):
    """y = |a| with the sign of b.

    dL/da = g * y / a (the sign flip, +-1; 0 where a == 0, as PyTorch);  dL/db = 0.
    """

    def forward(self, a, b):
        xp = get_array_module(a)
        self.shapes = a.shape, b.shape
        y = xp.copysign(a, b)
        self.flip = xp.where(a == 0, 0, xp.sign(a) * xp.sign(y)) if self.needs_input_grad[0] else None
        return y

    def backward(self, g):
        xp = get_array_module(g)
        grad_a = unbroadcast(g * self.flip, self.shapes[0]) if self.needs_input_grad[0] else None
        grad_b = xp.zeros(self.shapes[1], dtype=g.dtype) if self.needs_input_grad[1] else None
        return grad_a, grad_b
