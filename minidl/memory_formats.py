"""How the elements of a 4-D tensor lie in memory, with PyTorch's names (docs/backends.md).

An activation always has the shape (N, C, H, W).  ``contiguous_format`` stores it in that order;
``channels_last`` stores it (N, H, W, C), the C values of one pixel side by side, which is what the
CPU's fast convolution reads and writes without a copy.  Every tensor carries one of the two as
``Tensor.memory_format``: the op that made it declares it (``Function.output_memory_format``), and
fast implementations choose their path from it, never from strides.  ``preserve_format`` is what an
op declares when its output is stored like its first input.
"""
from .backend import get_array_module
from .errors import ShapeError


class memory_format:
    """One of ``minidl.contiguous_format``, ``minidl.channels_last``, ``minidl.preserve_format``."""

    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return f"minidl.{self.name}"

    def __reduce__(self):  # copied and pickled as the one module-level object of that name
        return self.name


contiguous_format = memory_format("contiguous_format")
channels_last = memory_format("channels_last")
preserve_format = memory_format("preserve_format")


def check(value, op):
    """``value`` if it is a memory format, else a TypeError naming ``op`` and the valid ones."""
    if not isinstance(value, memory_format):
        raise TypeError(f"{op}: memory_format must be minidl.contiguous_format, minidl.channels_last or "
                        f"minidl.preserve_format, got {value!r}")
    return value


def is_stored_as(array, memory_format):
    """Whether ``array``'s memory is laid out in ``memory_format`` (a fact about its strides)."""
    if memory_format is channels_last:
        return array.ndim == 4 and array.transpose(0, 2, 3, 1).flags.c_contiguous
    return array.flags.c_contiguous


def as_memory_format(array, memory_format):
    """``array`` stored in ``memory_format``: itself when it already is, else a copy."""
    xp = get_array_module(array)
    if memory_format is channels_last:
        if array.ndim != 4:
            raise ShapeError(f"required rank 4 tensor to use channels_last format, got shape {tuple(array.shape)}")
        return xp.ascontiguousarray(array.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    return xp.ascontiguousarray(array)
