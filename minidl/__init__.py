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
from .creation import (arange, as_tensor, cat, concatenate, empty, empty_like, from_numpy, full, full_like, ones,
                       ones_like, rand, rand_like, randint, randn, randn_like, stack, tensor, zeros, zeros_like)
from .dtypes import (bool, double, float, float16, float32, float64, get_default_dtype, half, int, int8, int16,
                     int32, int64, long, set_default_dtype, short, uint8, uint16, uint32, uint64)
from .random import get_rng_state, manual_seed, seed, set_rng_state
from .size import Size
from .tensor import Tensor, where

from .backends import cpu as _cpu_backend  # registers the CPU's fast implementations (backends/cpu/)

__version__ = "0.1.0"


def _tensor_function(name):
    def function(input, *args, **kwargs):
        return getattr(input, name)(*args, **kwargs)
    function.__name__ = name
    function.__doc__ = f"``minidl.{name}(x, ...)`` is ``x.{name}(...)``."
    return function


for _name in ("exp", "log", "sqrt", "tanh", "sigmoid", "abs", "clamp", "sum", "mean", "max", "min", "var",
              "std", "argmax", "argmin", "reshape", "flatten", "transpose", "permute", "squeeze",
              "unsqueeze", "matmul", "topk", "amax", "relu", "softmax", "log_softmax"):
    globals()[_name] = _tensor_function(_name) if _name != "matmul" else (lambda a, b: a @ b)
del _name


def is_tensor(obj):
    return isinstance(obj, Tensor)


def __getattr__(name):
    # Submodules that import much (nn, optim, data, models, cuda) load on first use.
    import importlib
    if name in ("nn", "optim", "data", "models", "train", "cuda", "amp", "utils", "distributed"):
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'minidl' has no attribute {name!r}")
