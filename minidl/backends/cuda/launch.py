"""Launching a kernel of ``kernels/*.cu``: launch sizes and the exact C types of scalar arguments.

Every kernel loops grid-stride (``GRID_STRIDE_LOOP`` in kernels/common.cuh), so any grid size is
correct and launch sizes are a performance choice only: ``THREADS`` threads per block and enough
blocks to cover the elements, at most ``MAX_BLOCKS``.  A launch over zero elements is skipped:
CUDA rejects an empty grid (and CuPy would round it up to one block running over nothing).

Scalar arguments are passed as NumPy scalars of the C parameter's exact type (``i32`` for
``int``, ``i64`` for ``long long``, ``u64`` for ``unsigned long long``, ``real`` for the
kernel's float type): CuPy would pass a Python int as 8 bytes, which an ``int`` parameter misreads.
"""
import numpy as np

from .compile import get_kernel

THREADS = 256
MAX_BLOCKS = 65535


def i32(value):
    return np.int32(value)


def i64(value):
    return np.int64(value)


def u64(value):
    return np.uint64(value)


def real(value, dtype):
    """``value`` as the float type of an array of ``dtype`` (float32 -> float, float64 -> double)."""
    return np.dtype(dtype).type(value)


def suffix(dtype):
    """The suffix of a kernel's float32 / float64 instantiation ("f32" / "f64")."""
    dtype = np.dtype(dtype)
    if dtype == np.float32:
        return "f32"
    if dtype == np.float64:
        return "f64"
    raise TypeError(f"minidl's CUDA kernels take float32 or float64 arrays, got {dtype}")


def blocks_for(total, threads=THREADS):
    return max(1, min(MAX_BLOCKS, -(-int(total) // threads)))


def launch(file, kernel, args, total, dtype=None, *, blocks=None, threads=THREADS, shared_mem=0):
    """Runs ``kernel`` (with ``_f32``/``_f64`` added for ``dtype``) of ``kernels/<file>`` over ``total``
    elements, or over ``blocks`` blocks when the kernel assigns work per block; nothing when there is none."""
    if total == 0 or blocks == 0:
        return
    name = kernel if dtype is None else f"{kernel}_{suffix(dtype)}"
    grid = blocks_for(total, threads) if blocks is None else int(blocks)
    get_kernel(file, name)((grid,), (threads,), tuple(args), shared_mem=shared_mem)


def is_float_array(array):
    """A device array of float32 or float64: what the kernels take."""
    return getattr(array, "dtype", None) in (np.float32, np.float64)
