"""The stand-in's ``cupy.RawModule`` / ``cupy.RawKernel``: every launch is checked against the
kernel's C signature, then run on the host build of the same source (tests/kernel_emulator.py).

The checks are the mistakes a real launch would not report, or would report as a crash:

* the number of arguments;
* a pointer parameter gets a device array (or None, a null pointer) whose dtype is the pointee's
  and which is C-contiguous (the kernels index flat memory); never a host array;
* a scalar parameter gets a NumPy scalar of exactly the C type (``np.int32`` for ``int``,
  ``np.uint64`` for ``unsigned long long``, ...): CuPy passes a Python int as 8 bytes and a
  Python float as a double, which an ``int``/``float`` parameter would misread;
* a struct parameter gets a NumPy array of one element whose itemsize is the struct's ``sizeof``
  (how CuPy passes a struct by value);
* the grid has at least one block in every dimension (CuPy turns a 0 into 1, which would run a
  block over an empty array), at most 1024 threads per block and at most 48 KiB of dynamic
  shared memory.
"""
import ctypes

import numpy as np

from tests import kernel_emulator
from .array import COUNTS, ndarray

MAX_THREADS = 1024
MAX_SHARED_BYTES = 48 * 1024


class RawModule:
    """``cupy.RawModule(code=..., options=...)``; compiled (for the host) when first asked for a kernel."""

    def __init__(self, code=None, *, path=None, options=(), backend="nvrtc", translate_cucomplex=False,
                 jitify=False, name_expressions=None):
        if code is None:
            raise ValueError("the stand-in RawModule needs code= (minidl passes the kernel source)")
        if not isinstance(options, tuple):
            raise TypeError("options must be a tuple of str")
        self.code, self.options = code, options
        self._module = None

    def get_function(self, name):
        if self._module is None:
            self._module = kernel_emulator.build(self.code)
        try:
            return RawKernel._from_host(self._module.kernels[name])
        except KeyError:
            raise RuntimeError(f"CUDA_ERROR_NOT_FOUND: named symbol not found: {name!r}") from None


class RawKernel:
    """``cupy.RawKernel(code, name, options)``: ``kernel(grid, block, args, shared_mem=0)``."""

    def __init__(self, code, name, options=(), backend="nvrtc", translate_cucomplex=False, *,
                 enable_cooperative_groups=False, jitify=False):
        self._host = kernel_emulator.build(code).kernels[name]

    @classmethod
    def _from_host(cls, host):
        kernel = cls.__new__(cls)
        kernel._host = host
        return kernel

    @property
    def name(self):
        return self._host.name

    def __call__(self, grid, block, args, *, shared_mem=0, stream=None, enable_cooperative_groups=False):
        name, params = self._host.name, self._host.params
        _check_launch(name, grid, block, shared_mem)
        if not isinstance(args, tuple):
            raise TypeError(f"{name}: args must be a tuple")
        if len(args) != len(params):
            raise TypeError(f"{name}: the kernel takes {len(params)} arguments "
                            f"({', '.join(p.ctype + ' ' + p.name for p in params)}), the launch passed {len(args)}")
        keep = []  # the buffers the addresses point into, alive until the launch returns
        addresses = [_argument_address(name, index, param, value, keep)
                     for index, (param, value) in enumerate(zip(params, args))]
        COUNTS.launches[name] += 1
        self._host.launch(int(np.prod(grid)), addresses)


def _check_launch(name, grid, block, shared_mem):
    if not isinstance(grid, tuple) or not isinstance(block, tuple):
        raise TypeError(f"{name}: grid and block must be tuples")
    if any(int(g) < 1 for g in grid):
        raise ValueError(f"{name}: grid {grid} has an empty dimension; CUDA rejects a 0-block launch and CuPy "
                         "turns it into 1 block, which would run over an empty array (skip the launch)")
    threads = int(np.prod(block))
    if not 1 <= threads <= MAX_THREADS:
        raise ValueError(f"{name}: block {block} has {threads} threads (1 to {MAX_THREADS} allowed)")
    if len(grid) != 1 or len(block) != 1:
        raise ValueError(f"{name}: the host build runs 1-d launches only, got grid {grid}, block {block}")
    if not 0 <= int(shared_mem) <= MAX_SHARED_BYTES:
        raise ValueError(f"{name}: {shared_mem} bytes of dynamic shared memory (at most {MAX_SHARED_BYTES})")


def _argument_address(kernel, index, param, value, keep):
    where = f"{kernel}: argument {index} ({param.ctype} {param.name})"
    if param.pointer:
        if value is None:
            cell = ctypes.c_void_p(0)
        elif isinstance(value, ndarray):
            if param.dtype is not None and value.dtype != param.dtype:
                raise TypeError(f"{where} got a device array of {value.dtype}, the kernel reads "
                                f"{np.dtype(param.dtype)}")
            if not value.flags.c_contiguous:
                raise ValueError(f"{where} got a non-contiguous device array of shape {value.shape}")
            cell = ctypes.c_void_p(value.data.ptr)
        else:
            raise TypeError(f"{where} is a device pointer; got {type(value).__name__} (a host array or number "
                            "would be passed by value)")
        keep.append(cell)
        return ctypes.addressof(cell)
    if param.dtype is None:  # a struct passed by value
        if not (isinstance(value, np.ndarray) and value.size == 1 and value.itemsize == param.size):
            raise TypeError(f"{where} is a {param.size}-byte struct; pass it as a NumPy array of one element of "
                            f"that itemsize, got {type(value).__name__} "
                            f"{getattr(value, 'dtype', '')} of itemsize {getattr(value, 'itemsize', '?')}")
        buffer = np.ascontiguousarray(value)
    else:
        if isinstance(value, ndarray) or not isinstance(value, np.generic) or value.dtype != param.dtype:
            raise TypeError(f"{where} needs a NumPy {np.dtype(param.dtype)} scalar, got {type(value).__name__}"
                            + (f" of {value.dtype}" if hasattr(value, "dtype") else ""))
        buffer = np.array(value)
    keep.append(buffer)
    return buffer.ctypes.data
