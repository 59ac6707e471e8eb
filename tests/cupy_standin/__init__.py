"""A strict CuPy stand-in, so minidl's GPU path runs in CI without a GPU.

``StandIn().install()`` puts a fake ``cupy`` (with ``cupy.cuda``, ``cupy.random``, ``cupy.lib``,
``cupy.linalg``, ``cupyx`` and the cuBLAS module of ``cupy_backends``) into ``sys.modules`` and makes
minidl import it afresh; tests use it through the ``standin`` fixture of tests/conftest.py::

    def test_step(standin):
        x = minidl.randn(8, 3, 32, 32).to("cuda")      # a stand-in device array
        standin.counts.reset()
        ...                                              # the code under test
        assert standin.counts.syncs == 0, standin.counts.sites

What it is (array.py, namespace.py): device memory is a NumPy array inside a wrapper class that is
*not* an ndarray subclass and refuses what CuPy refuses -- ``np.asarray`` of a device array, NumPy
functions and ufuncs on device arrays, host arrays mixed into device operations, ``where=`` on
ufuncs -- and offers only names CuPy 14.2 has (cupy_14_2_names.txt).  It counts host
synchronisations and copies in both directions (``counts``, with the minidl line of each).

Kernels (kernels.py): ``RawModule``/``RawKernel`` launches are checked against the kernel's C
signature and run on the host build of the same ``.cu`` source (tests/kernel_emulator.py).
cuda.py: one device, the null stream, events, a memory pool, cuBLAS ``gemmEx`` on host memory.

What it cannot show: real GPU speed, races between the threads of a block (the host build runs
one thread per block), asynchronous errors.  ``pytest -m gpu`` runs the same checks on a GPU.
"""
import sys
import types

import numpy as np

from . import array, cuda, kernels, namespace

MODULE_NAMES = ("cupy", "cupy.cuda", "cupy.cuda.runtime", "cupy.cuda.device", "cupy.random", "cupy.lib",
                "cupy.lib.stride_tricks", "cupy.linalg", "cupy._core", "cupy._core._routines_linalg", "cupyx",
                "cupy_backends", "cupy_backends.cuda", "cupy_backends.cuda.libs", "cupy_backends.cuda.libs.cublas")


def _module(name, **attributes):
    module = types.ModuleType(name)
    module.__dict__.update(attributes)
    return module


def build_modules():
    """{module name: module} of the stand-in, as ``sys.modules`` would hold real CuPy."""
    cuda_module = _module("cupy.cuda", Device=cuda.Device, Stream=cuda.Stream, Event=cuda.Event,
                          get_current_stream=cuda.get_current_stream, get_elapsed_time=cuda.get_elapsed_time,
                          runtime=cuda.runtime, device=cuda.device, nvrtc=cuda.nvrtc,
                          MemoryPool=namespace.MemoryPool, CUDARuntimeError=cuda.CUDARuntimeError,
                          is_available=lambda: True)
    stride_tricks = _module("cupy.lib.stride_tricks", as_strided=namespace.as_strided)
    cupy = _module("cupy", __version__="14.2.0+standin", ndarray=array.ndarray, ufunc=namespace.ufunc,
                   cuda=cuda_module, lib=_module("cupy.lib", stride_tricks=stride_tricks),
                   random=_module("cupy.random", default_rng=namespace.default_rng, Generator=namespace.Generator),
                   linalg=_module("cupy.linalg", norm=namespace.norm),
                   RawKernel=kernels.RawKernel, RawModule=kernels.RawModule,
                   asarray=namespace.asarray, array=namespace.array,
                   ascontiguousarray=namespace.ascontiguousarray, asnumpy=namespace.asnumpy,
                   copyto=namespace.copyto, matmul=namespace._matmul, where=namespace.where, take_along_axis=namespace.take_along_axis,
                   get_array_module=namespace.get_array_module,
                   get_default_memory_pool=namespace.get_default_memory_pool,
                   is_available=lambda: True, show_config=lambda: print("CuPy stand-in (tests/cupy_standin)"))
    for name, twin in namespace.numpy_twins().items():
        setattr(cupy, name, twin)
    routines_linalg = _module("cupy._core._routines_linalg", **{
        name: getattr(cuda.linalg_config, name)
        for name in ("COMPUTE_TYPE_DEFAULT", "COMPUTE_TYPE_TF32", "set_compute_type", "get_compute_type")})
    core = _module("cupy._core", _routines_linalg=routines_linalg)
    cupy._core = core
    cublas = _module("cupy_backends.cuda.libs.cublas", gemmEx=cuda.cublas.gemmEx)
    libs = _module("cupy_backends.cuda.libs", cublas=cublas)
    backends_cuda = _module("cupy_backends.cuda", libs=libs)
    cupyx = _module("cupyx", scatter_add=namespace.scatter_add)
    return {"cupy": cupy, "cupy.cuda": cuda_module, "cupy.cuda.runtime": cuda.runtime,
            "cupy.cuda.device": cuda.device, "cupy.random": cupy.random, "cupy.lib": cupy.lib,
            "cupy.lib.stride_tricks": stride_tricks, "cupy.linalg": cupy.linalg, "cupy._core": core,
            "cupy._core._routines_linalg": routines_linalg, "cupyx": cupyx,
            "cupy_backends": _module("cupy_backends", cuda=backends_cuda), "cupy_backends.cuda": backends_cuda,
            "cupy_backends.cuda.libs": libs, "cupy_backends.cuda.libs.cublas": cublas}


class StandIn:
    """Installs the stand-in as ``cupy`` and removes it again; ``counts`` is what the code made it do."""

    counts = array.COUNTS
    pool = array.POOL

    def __init__(self):
        self.modules = build_modules()
        self.cupy = self.modules["cupy"]
        self._saved = {}

    def install(self):
        for name in MODULE_NAMES:
            self._saved[name] = sys.modules.get(name)
            sys.modules[name] = self.modules[name]
        _forget_cupy()
        self.counts.reset()
        return self

    def uninstall(self):
        for name, module in self._saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
        self._saved = {}
        _forget_cupy()

    def __enter__(self):
        return self.install()

    def __exit__(self, *exc):
        self.uninstall()
        return False


def _forget_cupy():
    """Makes minidl import ``cupy`` again (the stand-in, or the real one after uninstall) and drop
    what it cached from the previous one (compiled kernel modules, device random generators)."""
    from minidl import backend
    backend._cupy = backend._cupy_error = None
    from minidl import random
    from minidl.backends.cuda import compile
    compile._modules.clear()
    random._device_generators.clear()
