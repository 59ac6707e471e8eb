"""The Tensor's math methods beyond the core arithmetic of tensor.py: trigonometric, exponential and
rounding functions, remainders, elementwise maximum/minimum, bitwise operators, products,
logsumexp, any/all, cumulative scans, and their in-place forms (``x.floor_()``).

``Tensor`` inherits them from ``MathMethods``. Each is a thin wrapper: it promotes integer input to
the default float where PyTorch does, then calls a ``Function`` from ``minidl/functions/`` (the
math and its backward live there). The ``minidl.*`` function forms are made in ``minidl/__init__.py``.
"""
import functools

import numpy as np

from . import autograd, dtypes
from .backend import get_array_module, move_array
from .errors import DTypeError, check_dim
from .functions import bitwise, comparison, division, exp_log, reduction, rounding, scan, trig
from .functions.indexing import Gather


def accepts_numpy_names(method):
    """Lets a reduction take NumPy's ``axis=``/``keepdims=`` for PyTorch's ``dim=``/``keepdim=`` (PyTorch
    accepts both), and ``dtype=``, which converts the input first (``x.sum(dtype=minidl.float64)``)."""

    @functools.wraps(method)
    def wrapper(self, *args, axis=None, keepdims=None, dtype=None, **kwargs):
        if axis is not None:
            kwargs["dim"] = axis
        if keepdims is not None:
            kwargs["keepdim"] = keepdims
        if dtype is not None:
            self = self.to(dtype=dtype)
        return method(self, *args, **kwargs)

    return wrapper


def _float_function(function):
    """A method that applies ``function`` to the tensor, integers promoted to the default float."""

    def method(self):
        return function.apply(self._float_if_int())

    method.__doc__ = function.__doc__
    return method


def _integer_keeping(function):
    """A rounding method: on integers (already whole) it returns a copy, as PyTorch does."""

    def method(self, **params):
        if not dtypes.is_floating(self.dtype):
            return self.clone()
        return function.apply(self, **params)

    method.__doc__ = function.__doc__
    return method


def inplace_form(name):
    """The in-place form of the method ``name``: computes it and writes the result into the tensor
    (not recorded by autograd, like minidl's other in-place ops)."""

    def method(self, *args, **kwargs):
        self._check_inplace()
        with autograd.no_grad():
            result = getattr(self, name)(*args, **kwargs)
        if not np.can_cast(result.dtype, self.dtype, "same_kind"):
            raise DTypeError(f"{name}_: result type {result.dtype} can't be cast to the desired output type "
                             f"{self.dtype}")
        self.array[...] = result.array
        self._version += 1
        return self

    method.__name__ = name + "_"
    method.__doc__ = f"In-place ``{name}``: ``x.{name}_(...)`` writes ``x.{name}(...)`` into x."
    return method


class MathMethods:
    """Math methods of ``Tensor`` (mixed in; see the module docstring)."""

    # ---------------------------------------------------------------- elementwise functions
    sin, cos, tan = (_float_function(f) for f in (trig.Sin, trig.Cos, trig.Tan))
    asin, acos, atan = (_float_function(f) for f in (trig.Asin, trig.Acos, trig.Atan))
    sinh, cosh = _float_function(trig.Sinh), _float_function(trig.Cosh)
    asinh, acosh, atanh = (_float_function(f) for f in (trig.Asinh, trig.Acosh, trig.Atanh))
    arcsin, arccos, arctan, arcsinh, arccosh, arctanh = asin, acos, atan, asinh, acosh, atanh
    exp2, expm1 = _float_function(exp_log.Exp2), _float_function(exp_log.Expm1)
    log2, log10, log1p = (_float_function(f) for f in (exp_log.Log2, exp_log.Log10, exp_log.Log1p))
    rsqrt, erf = _float_function(exp_log.Rsqrt), _float_function(exp_log.Erf)
    floor, ceil, trunc = (_integer_keeping(f) for f in (rounding.Floor, rounding.Ceil, rounding.Trunc))
    fix = trunc
    frac = _float_function(rounding.Frac)

    def round(self, decimals=0):
        """Rounds half to even, to ``decimals`` places."""
        if not dtypes.is_floating(self.dtype):
            return self.clone()
        return rounding.Round.apply(self, decimals=decimals)

    def sign(self):
        """-1, 0 or 1 (integers stay integers; bool stays bool)."""
        if self.dtype == dtypes.bool:
            return self.clone()
        return rounding.Sign.apply(self)

    sgn = sign

    def square(self):
        return self * self

    def reciprocal(self):
        return 1 / self._float_if_int()

    # ---------------------------------------------------------------- binary elementwise
    def maximum(self, other):
        """Elementwise max (the gradient is split equally where both are equal)."""
        return comparison.Maximum.apply(*self._operands(other))

    def minimum(self, other):
        return comparison.Minimum.apply(*self._operands(other))

    def fmod(self, other):
        """a - trunc(a / b) * b: the remainder with the sign of a (C's fmod)."""
        return division.Fmod.apply(*self._operands(other))

    def remainder(self, other):
        """a - floor(a / b) * b: the remainder with the sign of b (Python's %)."""
        return division.Remainder.apply(*self._operands(other))

    def __mod__(self, other):
        return self.remainder(other)

    def __rmod__(self, other):
        b, a = self._operands(other)
        return division.Remainder.apply(a, b)

    def floor_divide(self, other):
        return self.div(other, rounding_mode="floor")

    def __floordiv__(self, other):
        return self.div(other, rounding_mode="floor")

    def __rfloordiv__(self, other):
        b, a = self._operands(other)
        return division.DivRounded.apply(a, b, mode="floor")

    def true_divide(self, other):
        return self / other

    def copysign(self, other):
        """|a| with the sign of b."""
        a, b = self._float_if_int()._operands(other)
        return division.CopySign.apply(a, b._float_if_int())

    def atan2(self, other):
        """The angle of the point (other, self), in (-pi, pi]."""
        a, b = self._float_if_int()._operands(other)
        return trig.Atan2.apply(a, b._float_if_int())

    arctan2 = atan2

    def isclose(self, other, rtol=1e-05, atol=1e-08, equal_nan=False):
        """|a - b| <= atol + rtol * |b| elementwise (bool, no gradient)."""
        return comparison.IsClose.apply(*self._operands(other), rtol=rtol, atol=atol, equal_nan=equal_nan)

    def allclose(self, other, rtol=1e-05, atol=1e-08, equal_nan=False):
        return bool(self.isclose(other, rtol, atol, equal_nan).all())

    def equal(self, other):
        """True if both have the same shape and elements."""
        return self.shape == other.shape and bool((self == other).all())

    # ---------------------------------------------------------------- bitwise (integers and bools)
    def _bitwise(self, function, other):
        if isinstance(other, float):
            raise bitwise.UnsupportedDTypeError(f'"{function.ufunc}" not implemented for a float operand')
        return function.apply(*self._operands(other))

    def bitwise_and(self, other):
        return self._bitwise(bitwise.BitwiseAnd, other)

    def bitwise_or(self, other):
        return self._bitwise(bitwise.BitwiseOr, other)

    def bitwise_xor(self, other):
        return self._bitwise(bitwise.BitwiseXor, other)

    def bitwise_left_shift(self, other):
        return self._bitwise(bitwise.LeftShift, other)

    def bitwise_right_shift(self, other):
        return self._bitwise(bitwise.RightShift, other)

    def bitwise_not(self):
        return bitwise.BitwiseNot.apply(self)

    __and__, __or__, __xor__ = bitwise_and, bitwise_or, bitwise_xor
    __lshift__, __rshift__, __invert__ = bitwise_left_shift, bitwise_right_shift, bitwise_not

    def __rand__(self, other):
        return self & other

    def __ror__(self, other):
        return self | other

    def __rxor__(self, other):
        return self ^ other

    def __rlshift__(self, other):
        b, a = self._operands(other)
        return bitwise.LeftShift.apply(a, b)

    def __rrshift__(self, other):
        b, a = self._operands(other)
        return bitwise.RightShift.apply(a, b)

    def logical_not(self):
        return self == 0

    def logical_and(self, other):
        return (self != 0) & (other != 0 if hasattr(other, "shape") else bool(other))

    def logical_or(self, other):
        return (self != 0) | (other != 0 if hasattr(other, "shape") else bool(other))

    def logical_xor(self, other):
        return (self != 0) ^ (other != 0 if hasattr(other, "shape") else bool(other))

    # ---------------------------------------------------------------- reductions
    @accepts_numpy_names
    def prod(self, dim=None, keepdim=False):
        """The product over one dim (or all elements); integers and bools give int64, as PyTorch."""
        x = self if dtypes.is_floating(self.dtype) else self.to(dtype=dtypes.int64)
        if dim is not None:
            dim = check_dim(dim, self.ndim)
        return reduction.Prod.apply(x, dim=dim, keepdim=keepdim)

    @accepts_numpy_names
    def amin(self, dim=None, keepdim=False):
        return reduction.Min.apply(self, dim=dim, keepdim=keepdim)

    @accepts_numpy_names
    def logsumexp(self, dim=None, keepdim=False):
        """log(sum(exp(x))) over ``dim``, without overflow."""
        return reduction.LogSumExp.apply(self._float_if_int(), dim=dim, keepdim=keepdim)

    @accepts_numpy_names
    def any(self, dim=None, keepdim=False):
        return reduction.Any.apply(self, dim=dim, keepdim=keepdim)

    @accepts_numpy_names
    def all(self, dim=None, keepdim=False):
        return reduction.All.apply(self, dim=dim, keepdim=keepdim)

    @accepts_numpy_names
    def count_nonzero(self, dim=None):
        return (self != 0).sum(dim=dim)

    # ---------------------------------------------------------------- scans along a dim
    def _scan_input(self, dim):
        """(input, dim): integers and bools accumulate in int64, as PyTorch; a 0-d tensor scans as (1,)."""
        x = self if dtypes.is_floating(self.dtype) else self.to(dtype=dtypes.int64)
        return x, check_dim(dim, self.ndim)

    @accepts_numpy_names
    def cumsum(self, dim):
        """y_i = x_0 + ... + x_i along ``dim``."""
        x, dim = self._scan_input(dim)
        return scan.CumSum.apply(x.reshape(1), dim=0).reshape(()) if not x.ndim else scan.CumSum.apply(x, dim=dim)

    @accepts_numpy_names
    def cumprod(self, dim):
        """y_i = x_0 * ... * x_i along ``dim``."""
        x, dim = self._scan_input(dim)
        return scan.CumProd.apply(x.reshape(1), dim=0).reshape(()) if not x.ndim else scan.CumProd.apply(x, dim=dim)

    def _cumulative_extreme(self, dim, largest):
        from .tensor import MaxResult, Tensor
        dim = check_dim(dim, self.ndim)
        x = self.reshape(1) if not self.ndim else self
        indices = Tensor._from_array(scan.cummax_indices(x.array, dim, largest))
        values = Gather.apply(x, index=indices.array, dim=dim)
        if not self.ndim:
            values, indices = values.reshape(()), indices.reshape(())
        return MaxResult(values, indices)

    def cummax(self, dim):
        """(values, indices): the running maximum along ``dim`` and where it came from."""
        return self._cumulative_extreme(dim, largest=True)

    def cummin(self, dim):
        return self._cumulative_extreme(dim, largest=False)

    # ---------------------------------------------------------------- random fills (in place)
    def normal_(self, mean=0.0, std=1.0):
        """Fills with samples of N(mean, std^2) from minidl's generator."""
        from . import random
        self._check_inplace()
        samples = random.generator().normal(mean, std, self.shape).astype(self.dtype)
        self.array[...] = get_array_module(self.array).asarray(samples)
        self._version += 1
        return self

    def uniform_(self, a=0.0, b=1.0):
        """Fills with samples of U(a, b) from minidl's generator."""
        from . import random
        self._check_inplace()
        samples = random.generator().uniform(a, b, self.shape).astype(self.dtype)
        self.array[...] = get_array_module(self.array).asarray(samples)
        self._version += 1
        return self

    def bernoulli_(self, p=0.5):
        """Fills with 1 (probability ``p``, a number or a tensor of probabilities) or 0."""
        from . import random
        self._check_inplace()
        p = move_array(p.array, "cpu") if hasattr(p, "array") else p  # drawn on the CPU, as normal_ is
        draws = random.generator().random(self.shape) < p
        self.array[...] = get_array_module(self.array).asarray(draws.astype(self.dtype))
        self._version += 1
        return self

    def bernoulli(self):
        """0/1 samples, each 1 with the probability this tensor holds there."""
        from .tensor import Tensor
        return Tensor._from_array(get_array_module(self.array).zeros_like(self.array)).bernoulli_(self)


# In-place forms PyTorch has, each the out-of-place method written back into the tensor.
for _name in ("abs", "neg", "exp", "log", "sqrt", "tanh", "sigmoid", "sin", "cos", "tan", "asin", "acos", "atan",
              "sinh", "cosh", "asinh", "acosh", "atanh", "exp2", "expm1", "log2", "log10", "log1p", "rsqrt", "erf",
              "floor", "ceil", "trunc", "round", "frac", "sign", "square", "reciprocal", "pow", "fmod", "remainder",
              "copysign", "atan2", "maximum", "minimum", "floor_divide", "bitwise_and", "bitwise_or",
              "bitwise_xor", "bitwise_not", "bitwise_left_shift", "bitwise_right_shift", "logical_not", "relu",
              "cumsum", "cumprod", "clip", "fix", "true_divide"):
    setattr(MathMethods, _name + "_", inplace_form(_name))
del _name


def var_mean(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    """(variance, mean) over ``dim``, as ``torch.var_mean``."""
    return input.var(dim, unbiased, keepdim, correction=correction), input.mean(dim, keepdim)


def std_mean(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    """(standard deviation, mean) over ``dim``, as ``torch.std_mean``."""
    return input.std(dim, unbiased, keepdim, correction=correction), input.mean(dim, keepdim)


def einsum(equation, *operands):
    """Sums of products over named indices: ``einsum("bij,bjk->bik", a, b)`` (operands may also come
    as one list). Integer operands with a float one are promoted as ``+`` promotes."""
    from .functions.einsum import Einsum
    operands = tuple(operands[0]) if len(operands) == 1 and isinstance(operands[0], (list, tuple)) else operands
    if any(dtypes.is_floating(x.dtype) for x in operands):
        operands = tuple(x._float_if_int() for x in operands)
        common = np.result_type(*[x.dtype for x in operands])
        operands = tuple(x.to(dtype=common) for x in operands)
    return Einsum.apply(*operands, equation=equation)
