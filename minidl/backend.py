"""Array backends: NumPy on the CPU, CuPy on NVIDIA GPUs.

Every op is written once against an "array module" ``xp``: ``numpy`` for arrays
that live on the CPU and ``cupy`` for arrays on a GPU.  ``get_array_module``
picks the right one from the array itself, so the same forward and backward
code runs on both devices.  CuPy is imported only when a GPU is asked for:
``import minidl`` never needs it.
"""
import numpy as np

_cupy = None  # the cupy module once it has been imported successfully
_cupy_error = None  # why importing it failed, for the error message


def _import_cupy():
    global _cupy, _cupy_error
    if _cupy is None and _cupy_error is None:
        try:
            import cupy
            _cupy = cupy
        except Exception as error:  # ImportError, or a CUDA library that fails to load
            _cupy_error = error
    return _cupy


def cupy_if_imported():
    """The cupy module if something already imported it, else None (never imports)."""
    return _cupy


class device:
    """Where a tensor's data lives: ``device('cpu')`` or ``device('cuda', 0)``."""

    def __init__(self, type, index=None):
        if isinstance(type, device):
            type, index = type.type, type.index
        elif isinstance(type, str) and ":" in type:
            type, index = type.split(":")
            index = int(index)
        if type not in ("cpu", "cuda"):
            raise ValueError(f"unknown device type {type!r}; valid types are 'cpu' and 'cuda'")
        if type == "cuda" and index is None:
            index = 0
        self.type, self.index = type, index

    def __eq__(self, other):
        try:
            other = device(other)
        except (ValueError, TypeError):
            return NotImplemented
        return self.type == other.type and self.index == other.index

    def __hash__(self):
        return hash((self.type, self.index))

    def __str__(self):
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __repr__(self):
        if self.index is None:
            return f"device(type='{self.type}')"
        return f"device(type='{self.type}', index={self.index})"


CPU = device("cpu")


def get_array_module(array):
    """``numpy`` or ``cupy``, whichever owns ``array``."""
    if _cupy is not None and isinstance(array, _cupy.ndarray):
        return _cupy
    return np


def device_of(array):
    if _cupy is not None and isinstance(array, _cupy.ndarray):
        return device("cuda", array.device.id)
    return CPU


def require_cupy():
    """The cupy module, or a clear error saying what is missing and how to get it."""
    cupy = _import_cupy()
    if cupy is None:
        raise RuntimeError(
            "minidl needs CuPy to use a GPU, and it could not be imported "
            f"({type(_cupy_error).__name__}: {_cupy_error}). Install the extra that matches "
            "your CUDA version: pip install minidl[cuda12] (cupy-cuda12x) or "
            "pip install minidl[cuda13] (cupy-cuda13x)."
        )
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as error:
        raise RuntimeError(f"CuPy is installed but no usable CUDA GPU was found: {error}") from error
    if count == 0:
        raise RuntimeError("CuPy is installed but no CUDA GPU is visible (getDeviceCount() == 0)")
    return cupy


def move_array(array, target):
    """Copy ``array`` to ``target`` (a ``device``); returns it unchanged if already there."""
    target = device(target)
    if device_of(array) == target:
        return array
    if target.type == "cpu":
        return array.get()
    cupy = require_cupy()
    with cupy.cuda.Device(target.index):
        return cupy.asarray(array)
