"""The stand-in's ``cupy`` functions: only names CuPy 14.2 has (``CUPY_14_NAMES`` lists them, read
from CuPy's v14.2.0 ``cupy/__init__.py``), each taking what CuPy takes.

Ufuncs take device arrays and Python/NumPy scalars only, and refuse ``where=`` (CuPy's ufuncs accept
``out``, ``dtype`` and ``casting``); other functions refuse host arrays.  Functions whose result
size depends on the data (``nonzero``, ``unique``, one-argument ``where``) count a synchronisation;
``asarray`` of host data counts a host-to-device copy, ``asnumpy`` a device-to-host copy.
"""
from pathlib import Path

import numpy as np

from .array import COUNTS, POOL, matmul, ndarray, operand, wrap


def arg(value):
    """A function argument: device arrays unwrapped (also inside lists/tuples), host arrays refused."""
    if isinstance(value, ndarray):
        return value._h
    if isinstance(value, np.ndarray):
        raise TypeError(f"Unsupported type {type(value)}")
    if isinstance(value, (list, tuple)):
        return type(value)(arg(v) for v in value)
    return value


class ufunc:
    """A CuPy ufunc: device arrays and scalars in; ``out``, ``dtype`` and ``casting`` accepted."""

    def __init__(self, numpy_ufunc):
        self._ufunc = numpy_ufunc
        self.__name__ = self.name = numpy_ufunc.__name__
        self.nin, self.nout = numpy_ufunc.nin, numpy_ufunc.nout

    def __call__(self, *args, out=None, dtype=None, casting="same_kind", **kwargs):
        if kwargs:
            raise TypeError(f"Wrong arguments {kwargs}")
        inputs = [operand(a) for a in args[:self.nin]]
        if args[self.nin:]:
            out = args[self.nin]
        if out is None:
            return wrap(self._ufunc(*inputs, dtype=dtype, casting=casting))
        self._ufunc(*inputs, out=operand(out), dtype=dtype, casting=casting)
        return out

    def __repr__(self):
        return f"<ufunc '{self.name}'>"


def _function(numpy_function):
    def function(*args, **kwargs):
        out = kwargs.get("out")
        result = numpy_function(*(arg(a) for a in args), **{k: arg(v) for k, v in kwargs.items()})
        return out if out is not None else wrap(result)
    function.__name__ = numpy_function.__name__
    return function


def _syncing(numpy_function):
    """A function whose result's size depends on the data: the host must wait for the device."""
    plain = _function(numpy_function)

    def function(*args, **kwargs):
        COUNTS.record("sync")
        return plain(*args, **kwargs)
    function.__name__ = numpy_function.__name__
    return function


# Functions whose result's size depends on the values: CuPy must read it back before it can allocate.
SYNCING = frozenset("nonzero argwhere flatnonzero unique unique_all unique_counts unique_inverse unique_values "
                    "bincount extract compress intersect1d setdiff1d setxor1d union1d trim_zeros".split())
SPECIAL = frozenset("asarray array asanyarray ascontiguousarray asnumpy copyto where take_along_axis matmul "
                    "get_array_module get_default_memory_pool ndarray ufunc cuda random lib linalg RawKernel "
                    "RawModule is_available show_config".split())


def cupy_14_names():
    """The public names of CuPy 14.2's ``cupy`` module (cupy_14_2_names.txt)."""
    listed = Path(__file__).with_name("cupy_14_2_names.txt")
    return [line.strip() for line in listed.read_text().splitlines() if line.strip() and not line.startswith("#")]


def numpy_twins():
    """{name: stand-in} for every CuPy 14.2 name that NumPy has too (and that is not special-cased):
    ufuncs, functions (host arrays refused; data-dependent sizes count a sync), types and constants."""
    twins = {}
    for name in cupy_14_names():
        numpy_object = getattr(np, name, None)
        if name in SPECIAL or numpy_object is None or name.startswith("_"):
            continue
        if isinstance(numpy_object, np.ufunc):
            twins[name] = ufunc(numpy_object)
        elif isinstance(numpy_object, type) or not callable(numpy_object):
            twins[name] = numpy_object  # dtypes, scalar types, constants
        elif name in SYNCING:
            twins[name] = _syncing(numpy_object)
        else:
            twins[name] = _function(numpy_object)
    return twins


def _matmul(a, b, out=None, **kwargs):
    result = matmul(operand(a), operand(b), out=None if out is None else operand(out), **kwargs)
    return out if out is not None else wrap(result)


def asarray(a, dtype=None, order=None, *, copy=None, blocking=False):
    if isinstance(a, ndarray):
        return a if dtype is None or a.dtype == np.dtype(dtype) else a.astype(dtype)
    COUNTS.record("host_to_device")
    return ndarray(np.array(a, dtype=dtype, copy=True))


def array(obj, dtype=None, copy=True, order="K", subok=False, ndmin=0, *, blocking=False):
    if isinstance(obj, ndarray):
        return ndarray(np.array(obj._h, dtype=dtype, copy=True, ndmin=ndmin))
    COUNTS.record("host_to_device")
    return ndarray(np.array(obj, dtype=dtype, copy=True, ndmin=ndmin))


def ascontiguousarray(a, dtype=None):
    if not isinstance(a, ndarray):
        raise TypeError(f"Argument 'a' has incorrect type (expected cupy._core.core._ndarray_base, got "
                        f"{type(a).__name__})")
    if a.flags.c_contiguous and (dtype is None or a.dtype == np.dtype(dtype)):
        return a
    return ndarray(np.ascontiguousarray(a._h, dtype=dtype))


def asnumpy(a, stream=None, order="C", out=None, *, blocking=True):
    if isinstance(a, ndarray):
        return a.get()
    return np.asarray(a, order=order)


def copyto(dst, src, casting="same_kind", where=None):
    if isinstance(src, np.ndarray) and src.ndim > 0:
        raise TypeError("non-scalar numpy.ndarray cannot be used for copyto")
    np.copyto(dst._h, src._h if isinstance(src, ndarray) else src, casting=casting,
              where=True if where is None else operand(where))


def where(condition, x=None, y=None):
    if x is None and y is None:
        COUNTS.record("sync")
        return wrap(np.nonzero(operand(condition)))
    return wrap(np.where(operand(condition), operand(x), operand(y)))


def take_along_axis(a, indices, axis):
    """Out-of-bounds indices wrap around (CuPy's rule), where NumPy would raise."""
    indices = operand(indices)
    size = a.shape[axis if axis is not None else 0] if a.ndim else 1
    return wrap(np.take_along_axis(operand(a), np.mod(indices, size) if size else indices, axis))


def get_array_module(*args):
    import sys
    return sys.modules["cupy"] if any(isinstance(a, ndarray) for a in args) else np


def get_default_memory_pool():
    return MEMORY_POOL


class MemoryPool:
    """CuPy's pool, as far as minidl asks: live bytes, held bytes, and giving cached blocks back."""

    def used_bytes(self):
        return POOL.used

    def total_bytes(self):
        return max(POOL.high, POOL.used)

    def free_all_blocks(self, stream=None):
        POOL.high = POOL.used

    def n_free_blocks(self):
        return 0


MEMORY_POOL = MemoryPool()


def as_strided(x, shape=None, strides=None):
    return ndarray(np.lib.stride_tricks.as_strided(operand(x), shape=shape, strides=strides))


def scatter_add(a, slices, value):
    """``cupyx.scatter_add``: a[slices] += value, adding repeated indices (as np.add.at)."""
    from .array import _index
    np.add.at(a._h, _index(slices, a.shape), operand(value) if isinstance(value, ndarray) else value)


class Generator:
    """``cupy.random.default_rng(seed)``: draws on the device (no transfer), from a NumPy generator here."""

    def __init__(self, seed):
        if seed is not None and not isinstance(seed, (int, np.integer)):
            raise TypeError("the stand-in default_rng takes an int seed")
        self._numpy = np.random.default_rng(seed)

    def random(self, size=None, dtype=np.float64, out=None):
        return ndarray(np.asarray(self._numpy.random(size, dtype=np.dtype(dtype))))

    def standard_normal(self, size=None, dtype=np.float64, out=None):
        return ndarray(np.asarray(self._numpy.standard_normal(size, dtype=np.dtype(dtype))))

    def integers(self, low, high=None, size=None, dtype=np.int64, endpoint=False):
        return ndarray(np.asarray(self._numpy.integers(low, high, size, dtype=dtype, endpoint=endpoint)))


def default_rng(seed=None):
    return Generator(seed)


def norm(x, ord=None, axis=None, keepdims=False):
    return wrap(np.linalg.norm(operand(x), ord=ord, axis=axis, keepdims=keepdims))
