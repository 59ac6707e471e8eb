"""Per-device fast implementations of minidl's ops, behind one seam (``registry.py``).

``minidl/functions/`` holds the reference implementation of every op. The packages here hold
faster versions for one device each and register them against the reference they replace:
``cpu/`` (NumPy + numba) and ``cuda/`` (CuPy + minidl's kernels in ``kernels/*.cu``).
``import minidl`` loads both registrations; neither imports CuPy until a GPU is used.
"""
from .registry import choose, implementations, reference, register, use_reference, using_reference

__all__ = ["choose", "implementations", "reference", "register", "use_reference", "using_reference"]
