"""Runs minidl's CUDA kernels on the CPU, so their index arithmetic is tested without a GPU.

``build(code)`` compiles the self-contained kernel source that NVRTC would receive
(``minidl.backends.cuda.compile.kernel_source``) as plain C++ with the host compiler, after a
shim that turns ``__global__``/``__device__`` into ordinary functions.  For every
``extern "C" __global__`` kernel it also generates a launcher that takes the arguments the way
``cuLaunchKernel`` does -- an array of pointers, one to each argument's bytes -- and runs the
grid as ``blockDim.x = 1`` thread per block, the blocks one after another.  That is a legal
CUDA launch of these kernels: they loop grid-stride and their block reductions work for any
power-of-two block size, 1 included.  What it cannot catch -- races between threads of a block,
shared-memory sizing, warp effects -- only a real GPU shows (``pytest -m gpu``).

Each kernel's C signature is read from the preprocessed source, so a launch can be checked
against it (tests/cupy_standin/kernels.py does that before every launch), and the launcher
reports ``sizeof`` of every parameter, so structs passed by value are checked too.
"""
import ctypes
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

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
#define __restrict__
#define __syncthreads()
inline float __int_as_float(unsigned int v) { float f; std::memcpy(&f, &v, 4); return f; }
inline unsigned int __float_as_uint(float f) { unsigned int v; std::memcpy(&v, &f, 4); return v; }
inline double __longlong_as_double(long long v) { double d; std::memcpy(&d, &v, 8); return d; }
inline unsigned int __umulhi(unsigned int a, unsigned int b) {
    return (unsigned int)(((unsigned long long)a * b) >> 32);
}
using std::fmax; using std::fmin; using std::exp; using std::log; using std::sqrt;
"""

FLAGS = ("-std=c++17", "-O2", "-fno-fast-math")
_KERNEL = re.compile(r'extern\s+"C"\s+__global__\s+void\s+(\w+)\s*\(([^)]*)\)')
_NUMPY_OF_C = {"float": np.float32, "double": np.float64, "int": np.int32, "long long": np.int64,
               "unsigned int": np.uint32, "unsigned long long": np.uint64, "unsigned char": np.uint8,
               "unsigned short": np.uint16, "short": np.int16, "char": np.int8, "bool": np.bool_}


@dataclass(frozen=True)
class Param:
    """One kernel parameter: its C type (``const float*``), whether it is a pointer, the NumPy
    dtype of the pointee or of the scalar (None for a struct), and ``sizeof`` of the parameter."""
    name: str
    ctype: str
    pointer: bool
    dtype: object
    size: int


def host_compiler():
    return shutil.which("g++") or shutil.which("clang++")


def kernel_signatures(code):
    """{kernel name: [(C type, parameter name), ...]} of every ``extern "C" __global__`` kernel."""
    preprocessed = subprocess.run([host_compiler(), "-E", "-P", "-x", "c++", "-"], input=code, text=True,
                                  capture_output=True, timeout=120, check=True).stdout
    signatures = {}
    for name, params in _KERNEL.findall(preprocessed):
        parsed = []
        for param in filter(None, (p.strip() for p in params.split(","))):
            match = re.fullmatch(r"(.*?[\s*&])(\w+)", param)
            parsed.append((" ".join(match.group(1).split()), match.group(2)))
        signatures[name] = parsed
    return signatures


def _launcher(name, params):
    """C++ for ``emu_launch_<name>(grid, args)`` and ``emu_size_<name>(i)``."""
    casts = ", ".join(f"*reinterpret_cast<{ctype} *>(args[{i}])" for i, (ctype, _) in enumerate(params))
    sizes = ", ".join(f"sizeof({ctype})" for ctype, _ in params) or "0"
    return (f'extern "C" void emu_launch_{name}(unsigned int grid, void** args) {{\n'
            f"    gridDim.x = grid; blockDim.x = 1; threadIdx.x = 0;\n"
            f"    for (unsigned int b = 0; b < grid; ++b) {{ blockIdx.x = b; {name}({casts}); }}\n}}\n"
            f'extern "C" unsigned long long emu_size_{name}(int i) {{\n'
            f"    static const unsigned long long sizes[] = {{{sizes}}};\n    return sizes[i];\n}}\n")


def _cache_dir():
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "minidl" / "host-kernels"


class HostModule:
    """The host build of one kernel source: ``kernels`` maps each kernel name to a ``HostKernel``."""

    def __init__(self, library, signatures):
        self.library = library
        self.kernels = {name: HostKernel(library, name, params) for name, params in signatures.items()}


class HostKernel:
    """Runs one kernel of a ``HostModule``: ``launch(grid, argument_buffers)``."""

    _lock = threading.Lock()  # the shim's blockIdx/gridDim are process-wide

    def __init__(self, library, name, params):
        self.name = name
        launch = getattr(library, f"emu_launch_{name}")
        launch.argtypes, launch.restype = [ctypes.c_uint, ctypes.POINTER(ctypes.c_void_p)], None
        size = getattr(library, f"emu_size_{name}")
        size.argtypes, size.restype = [ctypes.c_int], ctypes.c_ulonglong
        self._launch = launch
        self.params = []
        for i, (ctype, pname) in enumerate(params):
            pointer = ctype.endswith("*")
            base = " ".join(ctype.rstrip("*").replace("const", " ").split())
            self.params.append(Param(pname, ctype, pointer, _NUMPY_OF_C.get(base), int(size(i))))

    def launch(self, grid, addresses):
        """Runs the grid; ``addresses[i]`` is the address of argument i's bytes (as cuLaunchKernel's kernelParams)."""
        pointers = (ctypes.c_void_p * max(1, len(addresses)))(*addresses)
        with self._lock:
            self._launch(ctypes.c_uint(int(grid)), pointers)


_built = {}  # sha256 of the source -> HostModule
_build_lock = threading.Lock()


def build(code):
    """The ``HostModule`` of a kernel source, compiled once per process (and cached on disk by content)."""
    key = hashlib.sha256((SHIM + code + (host_compiler() or "") + " ".join(FLAGS)).encode()).hexdigest()
    with _build_lock:
        module = _built.get(key)
        if module is None:
            signatures = kernel_signatures(code)
            source = SHIM + code + "\n" + "".join(_launcher(name, params) for name, params in signatures.items())
            module = _built[key] = HostModule(ctypes.CDLL(str(_compile(source, key))), signatures)
    return module


def _compile(source, key):
    folder = _cache_dir()
    library = folder / f"{key[:32]}.so"
    if library.exists():
        return library
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder) as scratch:
        source_path = Path(scratch) / "kernels.cpp"
        source_path.write_text(source)
        built = Path(scratch) / "kernels.so"
        command = [host_compiler(), *FLAGS, "-shared", "-fPIC", "-x", "c++", str(source_path), "-o", str(built)]
        result = subprocess.run(command, capture_output=True, text=True, timeout=300)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{result.stderr}")
        os.replace(built, library)  # atomic: a concurrent run sees the whole file or none
    return library
