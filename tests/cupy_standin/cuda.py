"""The stand-in's ``cupy.cuda`` and cuBLAS: one device, the null stream, events, a cuBLAS GemmEx.

Thin: what minidl calls, with CuPy's names.  ``Stream.synchronize``, ``Device.synchronize`` and
``Event.synchronize`` count a host synchronisation.
"""
import ctypes
import time

import numpy as np

from .array import COUNTS


class CUDARuntimeError(RuntimeError):
    pass


class Device:
    """``cupy.cuda.Device(i)``: only device 0 exists."""

    def __init__(self, device=None):
        self.id = 0 if device is None else int(device)
        if self.id != 0:
            raise CUDARuntimeError("cudaErrorInvalidDevice: invalid device ordinal")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def use(self):
        pass

    def synchronize(self):
        COUNTS.record("sync")

    compute_capability = "90"


class Stream:
    """The null stream (``cupy.cuda.get_current_stream()``); work is done when a launch returns."""

    ptr = 0

    def __init__(self, null=False, non_blocking=False, ptds=False):
        pass

    def synchronize(self):
        COUNTS.record("sync")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


_NULL_STREAM = Stream(null=True)


def get_current_stream(device_id=-1):
    return _NULL_STREAM


class Event:
    def __init__(self, block=False, disable_timing=False, interprocess=False):
        self.time = None

    def record(self, stream=None):
        self.time = time.perf_counter()

    def synchronize(self):
        COUNTS.record("sync")

    def query(self):
        return True


def get_elapsed_time(start_event, end_event):
    return 1000.0 * (end_event.time - start_event.time)


class runtime:
    """``cupy.cuda.runtime``."""

    @staticmethod
    def getDeviceCount():
        return 1

    @staticmethod
    def getDeviceProperties(device):
        Device(device)
        return {"name": b"CuPy stand-in (NumPy on the host)", "major": 9, "minor": 0,
                "totalGlobalMem": 16 << 30, "multiProcessorCount": 1}

    @staticmethod
    def runtimeGetVersion():
        return 13000

    @staticmethod
    def driverGetVersion():
        return 13000


class nvrtc:
    @staticmethod
    def getVersion():
        return (13, 0)


class device:
    """``cupy.cuda.device``: the cuBLAS handle."""
    Device = Device
    HANDLE = 0x5ca1ab1e

    @staticmethod
    def get_cublas_handle():
        return device.HANDLE


# ------------------------------------------------------------------------------------------- cuBLAS
class cublas:
    """``cupy_backends.cuda.libs.cublas``: ``gemmEx`` on host memory, column-major as cuBLAS reads it."""

    CUDA_R_32F, CUDA_R_16F, CUDA_R_16BF = 0, 2, 14
    CUBLAS_COMPUTE_32F = 68
    _WIDTH = {CUDA_R_32F: (np.float32, 4), CUDA_R_16F: (np.float16, 2), CUDA_R_16BF: (np.uint16, 2)}
    calls = 0

    @staticmethod
    def _matrix(pointer, kind, rows, cols, ld):
        dtype, width = cublas._WIDTH[kind]
        flat = np.frombuffer((ctypes.c_char * (ld * cols * width)).from_address(pointer), dtype=dtype)
        if kind == cublas.CUDA_R_16BF:  # bfloat16 bits -> float32
            flat = (flat.astype(np.uint32) << 16).view(np.float32)
        return flat.reshape(cols, ld).T[:rows].astype(np.float64)  # column j is flat[j*ld : j*ld + rows]

    @staticmethod
    def gemmEx(handle, transa, transb, m, n, k, alpha, A, Atype, lda, B, Btype, ldb, beta, C, Ctype, ldc,
               computeType, algo):
        if handle != device.HANDLE:
            raise ValueError("gemmEx: not a cuBLAS handle from cupy.cuda.device.get_cublas_handle()")
        if (transa, transb, Ctype, computeType) != (0, 0, cublas.CUDA_R_32F, cublas.CUBLAS_COMPUTE_32F):
            raise NotImplementedError("the stand-in gemmEx does C = A B with float32 output and compute type 32F")
        if Atype != Btype or Atype not in (cublas.CUDA_R_16F, cublas.CUDA_R_16BF):
            raise NotImplementedError(f"the stand-in gemmEx takes two 16-bit operands, got types {Atype}, {Btype}")
        if lda < m or ldb < k or ldc < m:
            raise ValueError(f"gemmEx: leading dimensions lda={lda}, ldb={ldb}, ldc={ldc} too small for "
                             f"m={m}, n={n}, k={k}")
        scale = np.frombuffer((ctypes.c_char * 4).from_address(alpha), dtype=np.float32)[0]
        shift = np.frombuffer((ctypes.c_char * 4).from_address(beta), dtype=np.float32)[0]
        product = cublas._matrix(A, Atype, m, k, lda) @ cublas._matrix(B, Btype, k, n, ldb)
        out = np.frombuffer((ctypes.c_char * (ldc * n * 4)).from_address(C), dtype=np.float32).reshape(n, ldc)
        result = scale * product.T
        if shift != 0:  # with beta == 0 cuBLAS does not read C (it may hold NaN)
            result += shift * out[:, :m]
        out[:, :m] = result.astype(np.float32)
        cublas.calls += 1


class linalg_config:
    """``cupy._core._routines_linalg``: the compute type of float32 GEMMs (TF32 on/off)."""

    COMPUTE_TYPE_DEFAULT, COMPUTE_TYPE_TF32 = 1, 7
    _types = {}

    @staticmethod
    def set_compute_type(dtype, compute_type):
        linalg_config._types[np.dtype(dtype)] = compute_type

    @staticmethod
    def get_compute_type(dtype):
        return linalg_config._types.get(np.dtype(dtype), linalg_config.COMPUTE_TYPE_DEFAULT)
