"""The errors minidl raises, as PyTorch raises them.

minidl raises the class PyTorch raises for the same mistake, with a message that names the op and the
shapes (or dtypes, or valid options). PyTorch raises ``RuntimeError`` for most bad input -- shapes that
do not fit, a ``k`` larger than the dim, an unsupported dtype -- where Python code (and minidl before
it followed PyTorch) would raise ``ValueError``, ``IndexError`` or ``TypeError``. The classes below
derive from both, so ``except RuntimeError`` (code written for PyTorch) and ``except ValueError`` (code
written for older minidl, or for NumPy) both catch them::

    try:
        x.reshape(-1, -1)
    except RuntimeError as error:   # ShapeError is a RuntimeError ...
        ...                         # ... and a ValueError: either clause catches it

Where PyTorch itself raises ``IndexError`` (a dim out of range, an index past the end), ``ValueError``
or ``TypeError``, minidl raises exactly that class.
"""
import numbers


class ArgumentError(RuntimeError, ValueError):
    """A bad argument value where PyTorch raises ``RuntimeError``: a stride of 0, an unknown
    padding string, a ``label_smoothing`` outside [0, 1]."""


class ShapeError(ArgumentError):
    """Shapes or sizes that do not fit the op: ``mat1 and mat2 shapes cannot be multiplied``, a
    kernel larger than the input, two -1s in ``reshape``. PyTorch: ``RuntimeError``."""


class IndexRangeError(RuntimeError, IndexError):
    """An index or count out of range where PyTorch raises ``RuntimeError`` (``topk`` with k > n,
    an index out of bounds in ``gather``/``scatter``)."""


class DTypeError(RuntimeError, TypeError):
    """Operands of dtypes that do not go together (``conv2d`` of a float32 input and a float64
    weight). PyTorch: ``RuntimeError``."""


class UnsupportedDTypeError(DTypeError, NotImplementedError):
    """An op that has no implementation for a dtype (``adaptive_avg_pool2d`` of integers,
    ``<<`` of floats). PyTorch: ``NotImplementedError``, itself a ``RuntimeError``."""


def dim_out_of_range(dim, ndim):
    """PyTorch's error for a dim outside [-ndim, ndim - 1] (a 0-d tensor accepts -1 and 0)."""
    low, high = -max(ndim, 1), max(ndim, 1) - 1
    return IndexError(f"Dimension out of range (expected to be in range of [{low}, {high}], but got {dim})")


def check_dim(dim, ndim):
    """``dim`` as a non-negative axis, or PyTorch's IndexError."""
    size = max(ndim, 1)
    if not isinstance(dim, numbers.Integral) or isinstance(dim, bool):
        raise TypeError(f"dim must be an int, got {type(dim).__name__}")
    if not -size <= dim < size:
        raise dim_out_of_range(dim, ndim)
    return int(dim) % size


def broadcast_mismatch(shape_a, shape_b):
    """PyTorch's message for two shapes that do not broadcast, or None if they do."""
    for offset in range(1, min(len(shape_a), len(shape_b)) + 1):
        a, b = shape_a[-offset], shape_b[-offset]
        if a != b and a != 1 and b != 1:
            dim = max(len(shape_a), len(shape_b)) - offset
            return (f"The size of tensor a ({a}) must match the size of tensor b ({b}) at non-singleton "
                    f"dimension {dim}")
    return None
