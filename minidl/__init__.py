"""minidl: a deep-learning framework written from scratch on NumPy (CPU) and CuPy (GPU).

The public API follows PyTorch's names and semantics::

    import minidl
    x = minidl.tensor([[1.0, 2.0]], requires_grad=True)
    loss = (x * x).sum()
    loss.backward()
    x.grad  # tensor([[2., 4.]])
"""
from . import autograd, dtypes, errors, random
from .autograd import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from .backend import device
from .creation import (arange, as_tensor, cat, concatenate, empty, empty_like, eye, from_numpy, full, full_like,
                       linspace, logspace, meshgrid, ones, ones_like, rand, rand_like, randint, randn, randn_like,
                       stack, tensor, zeros, zeros_like)
from .dtypes import (bool, double, float, float16, float32, float64, get_default_dtype, half, int, int8, int16,
                     int32, int64, long, set_default_dtype, short, uint8, uint16, uint32, uint64)
from .memory_formats import channels_last, contiguous_format, memory_format, preserve_format
from .random import get_rng_state, manual_seed, seed, set_rng_state
from .serialization import load, save
from .size import Size
from .tensor import Tensor, where
from .tensor_math import einsum, std_mean, var_mean

from .backends import cpu as _cpu_backend  # registers the CPU's fast implementations (backends/cpu/)
from .backends import cuda as _cuda_backend  # registers the CUDA kernels' ops (backends/cuda/)

__version__ = "0.1.0"


def _tensor_function(name):
    def function(input, *args, **kwargs):
        return getattr(input, name)(*args, **kwargs)
    function.__name__ = name
    function.__doc__ = f"``minidl.{name}(x, ...)`` is ``x.{name}(...)``."
    return function


for _name in ("exp", "log", "sqrt", "tanh", "sigmoid", "abs", "clamp", "sum", "mean", "max", "min", "var",
              "std", "argmax", "argmin", "reshape", "flatten", "transpose", "permute", "squeeze",
              "unsqueeze", "matmul", "topk", "amax", "relu", "softmax", "log_softmax",
              # PyTorch's functions of the math, shape and indexing groups (methods in tensor_math.py and
              # tensor_indexing.py)
              "add", "sub", "mul", "div", "divide", "true_divide", "floor_divide", "pow",
              "neg", "clip", "square", "reciprocal", "sin", "cos", "tan", "asin", "acos", "atan",
              "arcsin", "arccos", "arctan", "sinh", "cosh", "asinh", "acosh", "atanh", "arcsinh", "arccosh",
              "arctanh", "atan2", "arctan2", "exp2", "expm1", "log2", "log10", "log1p", "rsqrt", "erf", "floor",
              "ceil", "round", "trunc", "fix", "frac", "sign", "sgn", "maximum", "minimum", "fmod", "remainder",
              "copysign", "isclose", "allclose", "equal", "prod", "amin", "logsumexp", "any", "all",
              "count_nonzero", "cumsum", "cumprod", "cummax", "cummin", "bitwise_and", "bitwise_or",
              "bitwise_xor", "bitwise_not", "bitwise_left_shift", "bitwise_right_shift", "logical_and",
              "logical_or", "logical_xor", "logical_not", "gather", "scatter", "scatter_add", "scatter_reduce",
              "index_select", "take_along_dim", "masked_fill", "masked_select", "nonzero", "argwhere", "sort",
              "argsort", "msort", "flip", "fliplr", "flipud", "roll", "tril", "triu", "diagonal", "diag",
              "split", "chunk", "unbind", "narrow", "select", "tile", "numel", "t", "index_put", "bernoulli"):
    globals()[_name] = _tensor_function(_name) if _name != "matmul" else (lambda a, b: a @ b)
del _name


def negative(input):
    return -input


subtract, multiply = _tensor_function("sub"), _tensor_function("mul")


def is_tensor(obj):
    return isinstance(obj, Tensor)


def __getattr__(name):
    # Submodules that import much (nn, optim, data, models, cuda) load on first use.
    import importlib
    if name in ("nn", "optim", "data", "models", "train", "cuda", "amp", "utils", "distributed"):
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'minidl' has no attribute {name!r}")
