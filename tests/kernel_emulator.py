"""Runs minidl's CUDA kernels on the CPU, so their index arithmetic is tested without a GPU.

Each ``kernels/*.cu`` file is compiled as plain C++ by the host compiler, with a shim that
turns ``__global__``/``__device__`` into ordinary functions and emulates a launch as
``blockDim.x = 1`` thread per block, the blocks run one after another (``blockIdx.x`` set
before each call).  That is a legal CUDA launch of these kernels: they loop grid-stride and
their block reductions work for any power-of-two block size, 1 included.  What it cannot
catch -- races between threads of a block, shared-memory sizing, warp effects -- the real GPU
tests in tests/test_gpu.py check.

``emulated_cupy(monkeypatch, build_dir)`` makes ``minidl.cuda.ops`` launch these CPU builds on
NumPy arrays: ``import cupy`` inside the wrappers gets NumPy, and ``ops.get_kernel`` returns
the emulated kernels.
"""
import ctypes
import shutil
import subprocess
import sys
import types

import numpy as np

from minidl.cuda import compile as kernel_compile
from minidl.cuda import ops

SHIM = r"""
#include <cmath>
#include <cstring>
struct EmuDim3 { unsigned int x, y, z; };
static EmuDim3 blockIdx = {0, 0, 0}, threadIdx = {0, 0, 0}, blockDim = {1, 1, 1}, gridDim = {1, 1, 1};
alignas(16) unsigned char shared_bytes[1 << 16];
#define __global__
#define __device__
#define __forceinline__ inline
#define __align__(n)
#define __shared__
#define __syncthreads()
inline float __int_as_float(unsigned int v) { float f; std::memcpy(&f, &v, 4); return f; }
inline unsigned int __float_as_uint(float f) { unsigned int v; std::memcpy(&v, &f, 4); return v; }
inline double __longlong_as_double(long long v) { double d; std::memcpy(&d, &v, 8); return d; }
inline unsigned int __umulhi(unsigned int a, unsigned int b) {
    return (unsigned int)(((unsigned long long)a * b) >> 32);
}
using std::fmax; using std::exp; using std::log; using std::sqrt;
extern "C" void emu_set_launch(unsigned int block, unsigned int grid) { blockIdx.x = block; gridDim.x = grid; }
"""

_C_TYPES = {np.int32: ctypes.c_int32, np.int64: ctypes.c_int64, np.uint64: ctypes.c_uint64,
            np.float32: ctypes.c_float, np.float64: ctypes.c_double}


def host_compiler():
    return shutil.which("g++") or shutil.which("clang++")


def build(build_dir):
    """Compiles every kernel file into ``build_dir``; returns {file name: ctypes library}."""
    shim = build_dir / "cuda_cpu_shim.h"
    shim.write_text(SHIM)
    libraries = {}
    for name in kernel_compile.kernel_files():
        source = build_dir / name
        source.write_text(kernel_compile.kernel_source(name))
        library = build_dir / (name + ".so")
        command = [host_compiler(), "-std=c++17", "-O1", "-shared", "-fPIC", "-x", "c++", "-include", str(shim),
                   str(source), "-o", str(library)]
        result = subprocess.run(command, capture_output=True, text=True, timeout=300)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{result.stderr}")
        libraries[name] = ctypes.CDLL(str(library))
    return libraries


class EmulatedKernel:
    """Callable like a ``cupy.RawKernel``: ``kernel(grid, block, args, shared_mem=0)``."""

    def __init__(self, library, name):
        self.library, self.function = library, getattr(library, name)
        self.function.restype = None

    def __call__(self, grid, block, args, shared_mem=0):
        c_args = [self._convert(a) for a in args]
        blocks = int(grid[0])
        for b in range(blocks):
            self.library.emu_set_launch(ctypes.c_uint(b), ctypes.c_uint(blocks))
            self.function(*c_args)

    @staticmethod
    def _convert(value):
        if isinstance(value, np.ndarray):
            if not value.flags.c_contiguous:
                raise ValueError("kernel arguments must be C-contiguous arrays")
            return ctypes.c_void_p(value.ctypes.data)
        return _C_TYPES[type(value)](value)


def _fake_cupy():
    fake = types.ModuleType("cupy")
    fake.__getattr__ = lambda name: getattr(np, name)  # cupy.empty, cupy.ascontiguousarray, ...
    fake.asnumpy = np.asarray
    fake.asarray = lambda array, dtype=None: np.array(array, dtype=dtype, copy=True)  # host -> "device" copies
    fake.ndarray = np.ndarray
    fake.emulated = True
    return fake


def emulated_cupy(monkeypatch, libraries):
    """Makes ``minidl.cuda.ops`` run the CPU builds on NumPy arrays; returns the stand-in cupy."""
    fake = _fake_cupy()
    monkeypatch.setitem(sys.modules, "cupy", fake)
    def get_kernel(file, function, options=None):
        return EmulatedKernel(libraries[file], function)

    monkeypatch.setattr(ops, "get_kernel", get_kernel)
    monkeypatch.setattr(ops, "_tables", {})
    return fake
