"""Bitwise operators on integer and bool tensors: & | ^ ~ << >>.

They are defined on bits, not on real numbers, so they have no gradient; on floats they raise
(PyTorch: NotImplementedError, or TypeError for ~; minidl's UnsupportedDTypeError is both).
"""
from ..autograd import Function
from ..backend import get_array_module
from ..errors import UnsupportedDTypeError


def _check_integers(name, arrays, bool_ok=True):
    for array in arrays:
        kinds = "iub" if bool_ok else "iu"
        if array.dtype.kind not in kinds:
            raise UnsupportedDTypeError(f'"{name}" not implemented for {array.dtype}: bitwise ops need integer '
                                        f"{'or bool ' if bool_ok else ''}tensors")


class _Bitwise(Function):
    """y = a OP b bit by bit (broadcasting). No gradient."""

    bool_ok = True

    def forward(self, a, b):
        _check_integers(self.ufunc, (a, b), self.bool_ok)
        return getattr(get_array_module(a), self.ufunc)(a, b)


class BitwiseAnd(_Bitwise):
    """y = a & b."""
    ufunc = "bitwise_and"


class BitwiseOr(_Bitwise):
    """y = a | b."""
    ufunc = "bitwise_or"


class BitwiseXor(_Bitwise):
    """y = a ^ b."""
    ufunc = "bitwise_xor"


class LeftShift(_Bitwise):
    """y = a << b (a * 2^b)."""
    ufunc, bool_ok = "left_shift", False


class RightShift(_Bitwise):
    """y = a >> b (a // 2^b, rounding down)."""
    ufunc, bool_ok = "right_shift", False


class BitwiseNot(Function):
    """y = ~x: every bit flipped (logical not for bool). No gradient."""

    def forward(self, x):
        _check_integers("bitwise_not", (x,))
        return get_array_module(x).invert(x)
