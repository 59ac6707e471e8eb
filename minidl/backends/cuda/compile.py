"""Loading minidl's CUDA kernels: source from ``kernels/*.cu``, compiled once per device.

The ``.cu`` files ship inside the wheel as the package ``minidl.kernels`` (the repository's
``kernels/`` folder, see setup.py); in a source checkout they are read from ``kernels/`` directly.
``#include "common.cuh"`` lines are replaced by that file's text, so the source handed to
NVRTC is self-contained and needs no include path (``kernel_source`` returns that text, and
tests/test_kernels_compile.py compiles it with ``nvcc``).

``get_kernel("im2col.cu", "im2col_f32")`` compiles the file with ``cupy.RawModule`` the first
time it is asked for on a device and keeps the module and its kernels in ``_modules``; CuPy also
caches the compiled binary on disk (``~/.cupy/kernel_cache``), so a new process skips NVRTC too.
"""
import re
from pathlib import Path

DEFAULT_OPTIONS = ("-std=c++17",)
_INCLUDE = re.compile(r'^\s*#include\s+"([^"]+)"\s*$', re.MULTILINE)
_modules = {}  # (file name, options, device id) -> (cupy.RawModule, {kernel name: kernel})


def kernels_dir():
    """The folder holding the ``.cu`` files: the ``kernels/`` of the source tree this module sits in,
    else the installed package ``minidl.kernels``.  (The source tree comes first: an editable install's
    finder maps ``minidl.kernels`` to the checkout it was installed from, which may be another one.)"""
    source_tree = Path(__file__).resolve().parents[3] / "kernels"
    if (source_tree / "common.cuh").is_file():
        return source_tree
    from importlib.resources import files
    return files("minidl.kernels")


def kernel_files():
    """Names of every ``.cu`` file minidl ships, sorted."""
    return sorted(entry.name for entry in kernels_dir().iterdir() if entry.name.endswith(".cu"))


def kernel_source(name):
    """The text of ``kernels/<name>`` with its local includes pasted in (each at most once)."""
    folder = kernels_dir()
    seen = set()

    def expand(match):
        included = match.group(1)
        if included in seen:
            return ""
        seen.add(included)
        return _INCLUDE.sub(expand, _strip_pragma_once(folder.joinpath(included).read_text(encoding="utf-8")))

    return _INCLUDE.sub(expand, folder.joinpath(name).read_text(encoding="utf-8"))


def _strip_pragma_once(text):
    return text.replace("#pragma once", "")


def _compiled(name, options):
    from ...backend import require_cupy
    cupy = require_cupy()
    key = (name, tuple(options), cupy.cuda.Device().id)
    entry = _modules.get(key)
    if entry is None:
        entry = _modules[key] = (cupy.RawModule(code=kernel_source(name), options=tuple(options)), {})
    return entry


def get_module(name, options=DEFAULT_OPTIONS):
    """The compiled ``cupy.RawModule`` of ``kernels/<name>`` on the current device."""
    return _compiled(name, options)[0]


def get_kernel(name, function, options=DEFAULT_OPTIONS):
    """The ``extern "C"`` kernel ``function`` of ``kernels/<name>``, ready to launch."""
    module, kernels = _compiled(name, options)
    kernel = kernels.get(function)
    if kernel is None:
        kernel = kernels[function] = module.get_function(function)
    return kernel
