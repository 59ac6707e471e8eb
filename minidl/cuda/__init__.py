"""``minidl.cuda``: the GPU, as ``torch.cuda`` presents it.

Importing this module never imports CuPy; each function imports it on first use.
``is_available()`` answers False (never raises) when CuPy is missing or sees no GPU.

Memory: CuPy keeps freed blocks in its memory pool for reuse, so ``memory_allocated()``
(bytes in live arrays) stays flat across training steps once the first step has sized the
pool, and ``memory_reserved()`` (bytes the pool holds from the driver) only grows until
``empty_cache()``.  The pool does not record a high-water mark of live bytes, so
``max_memory_reserved()`` -- what the pool had to hold for the peak -- is the peak that
minidl reports (``reset_peak_memory_stats()`` returns cached blocks so the next peak is
measured from scratch).

The kernels themselves live in ``kernels/*.cu``; the CUDA backend (``minidl/backends/cuda``)
loads them and runs them behind the ops of CUDA tensors (see README.md beside this file).
"""
from .. import backend as _backend


def _cupy():
    return _backend._import_cupy()


def is_available():
    """True when CuPy imports and at least one CUDA GPU is visible."""
    return device_count() > 0


def device_count():
    cupy = _cupy()
    if cupy is None:
        return 0
    try:
        return int(cupy.cuda.runtime.getDeviceCount())
    except Exception:  # no driver, no device, or a broken CUDA install
        return 0


def current_device():
    return _backend.require_cupy().cuda.Device().id


def set_device(index):
    _backend.require_cupy().cuda.Device(int(index)).use()


def get_device_name(index=None):
    cupy = _backend.require_cupy()
    index = cupy.cuda.Device().id if index is None else int(index)
    return cupy.cuda.runtime.getDeviceProperties(index)["name"].decode()


def synchronize():
    """Waits for every kernel queued on the current stream (a no-op without CuPy)."""
    cupy = _backend.cupy_if_imported()
    if cupy is not None:
        cupy.cuda.get_current_stream().synchronize()


def manual_seed(seed):
    """Seeds minidl's generator, from which GPU random ops draw their seeds too."""
    from .. import random
    return random.manual_seed(seed)


manual_seed_all = manual_seed


def _pool():
    return _backend.require_cupy().get_default_memory_pool()


def memory_allocated():
    """Bytes held by live CuPy arrays (0 without CuPy)."""
    return _pool().used_bytes() if _backend.cupy_if_imported() is not None else 0


def memory_reserved():
    """Bytes CuPy's memory pool holds from the driver, in use or cached."""
    return _pool().total_bytes() if _backend.cupy_if_imported() is not None else 0


def max_memory_reserved():
    """The pool's size, which is its high-water mark since the last ``reset_peak_memory_stats``."""
    return memory_reserved()


def empty_cache():
    """Returns the pool's cached (unused) blocks to the driver."""
    if _backend.cupy_if_imported() is not None:
        _pool().free_all_blocks()


def reset_peak_memory_stats():
    """Starts a new peak measurement: cached blocks go back, so the pool regrows to the next peak."""
    empty_cache()


def memory_stats():
    return {"allocated_bytes": memory_allocated(), "reserved_bytes": memory_reserved()}
