"""Functions that make new tensors: ``tensor``, ``zeros``, ``ones``, ``randn``, ``rand``,
``arange``, ``full``, ``empty`` and their ``*_like`` forms, plus ``cat`` and ``stack``."""
import numpy as np

from . import dtypes, random
from .backend import device as Device, move_array
from .errors import DTypeError, ShapeError, check_dim
from .functions.shape import Cat, Stack
from .tensor import Tensor


def tensor(data, dtype=None, requires_grad=False, device=None):
    """A new leaf tensor holding a copy of ``data``."""
    if isinstance(data, Tensor):
        data = data.array
    result = Tensor(data, dtype=dtype, device=device)
    if result.array is data or getattr(result.array, "base", None) is data:
        result.array = result.array.copy()  # never share memory with the caller's array
    return result.requires_grad_(requires_grad) if requires_grad else result


def from_numpy(array):
    """A tensor sharing memory with ``array``."""
    return Tensor._from_array(array)


def as_tensor(data, dtype=None, device=None):
    return data if isinstance(data, Tensor) and dtype is None and device is None else Tensor(data, dtype=dtype, device=device)


def _shape_arg(shape):
    return tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else tuple(shape)


def _make(array, dtype, device, requires_grad):
    if device is not None:
        array = move_array(array, Device(device))
    return Tensor._from_array(array).requires_grad_(requires_grad) if requires_grad else Tensor._from_array(array)


def _float(dtype):
    return np.dtype(dtype) if dtype is not None else dtypes.get_default_dtype()


def zeros(*shape, dtype=None, device=None, requires_grad=False):
    return _make(np.zeros(_shape_arg(shape), _float(dtype)), dtype, device, requires_grad)


def ones(*shape, dtype=None, device=None, requires_grad=False):
    return _make(np.ones(_shape_arg(shape), _float(dtype)), dtype, device, requires_grad)


def empty(*shape, dtype=None, device=None, requires_grad=False):
    return zeros(*shape, dtype=dtype, device=device, requires_grad=requires_grad)


def full(shape, fill_value, dtype=None, device=None, requires_grad=False):
    """``shape`` filled with ``fill_value``; the dtype follows the value (bool, int64 or the default float)."""
    if dtype is None and isinstance(fill_value, (bool, int, np.bool_, np.integer)):
        dtype = np.bool_ if isinstance(fill_value, (bool, np.bool_)) else np.int64
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    return _make(np.full(shape, fill_value, _float(dtype)), dtype, device, requires_grad)


def randn(*shape, dtype=None, device=None, requires_grad=False):
    """Standard normal samples from minidl's generator (see ``manual_seed``)."""
    array = random.generator().standard_normal(_shape_arg(shape)).astype(_float(dtype))
    return _make(array, dtype, device, requires_grad)


def rand(*shape, dtype=None, device=None, requires_grad=False):
    array = random.generator().random(_shape_arg(shape)).astype(_float(dtype))
    return _make(array, dtype, device, requires_grad)


def randint(low, high=None, size=(), dtype=None, device=None):
    """Integers in [low, high): ``randint(high, size)`` or ``randint(low, high, size)``, as PyTorch."""
    if isinstance(high, (tuple, list)):  # randint(high, size)
        low, high, size = 0, low, high
    elif high is None:
        low, high = 0, low
    array = random.generator().integers(low, high, size=tuple(size)).astype(dtype or np.int64)
    return _make(array, dtype, device, False)


def arange(start, end=None, step=1, dtype=None, device=None):
    if end is None:
        start, end = 0, start
    array = np.arange(start, end, step)
    if dtype is not None:
        array = array.astype(dtype)
    elif array.dtype.kind == "f":
        array = array.astype(dtypes.get_default_dtype())
    return _make(array, dtype, device, False)


def _like(other, dtype, device):
    return dtype or other.dtype, device or other.device


def zeros_like(other, dtype=None, device=None, requires_grad=False):
    dtype, device = _like(other, dtype, device)
    return zeros(other.shape, dtype=dtype, device=device, requires_grad=requires_grad)


def ones_like(other, dtype=None, device=None, requires_grad=False):
    dtype, device = _like(other, dtype, device)
    return ones(other.shape, dtype=dtype, device=device, requires_grad=requires_grad)


def empty_like(other, dtype=None, device=None, requires_grad=False):
    return zeros_like(other, dtype=dtype, device=device, requires_grad=requires_grad)


def full_like(other, fill_value, dtype=None, device=None, requires_grad=False):
    dtype, device = _like(other, dtype, device)
    return full(other.shape, fill_value, dtype=dtype, device=device, requires_grad=requires_grad)


def randn_like(other, dtype=None, device=None):
    dtype, device = _like(other, dtype, device)
    return randn(other.shape, dtype=dtype, device=device)


def rand_like(other, dtype=None, device=None):
    dtype, device = _like(other, dtype, device)
    return rand(other.shape, dtype=dtype, device=device)


def cat(tensors, dim=0, *, axis=None):
    """Concatenates tensors along an existing dim (``axis`` is NumPy's name for it)."""
    dim = dim if axis is None else axis
    tensors = list(tensors)
    if not tensors:
        raise ValueError("cat(): expected a non-empty list of Tensors")
    ndim = tensors[0].ndim
    if ndim == 0:
        raise ShapeError("cat: zero-dimensional tensor (at position 0) cannot be concatenated")
    dim = check_dim(dim, ndim)
    for i, t in enumerate(tensors):
        if t.ndim != ndim:
            raise ShapeError(f"cat: tensors must have the same number of dimensions: got {ndim} and {t.ndim} "
                             f"(shapes {tuple(tensors[0].shape)} and {tuple(t.shape)}, tensor number {i})")
        for d in range(ndim):
            if d != dim and t.shape[d] != tensors[0].shape[d]:
                raise ShapeError(f"cat: sizes of tensors must match except in dimension {dim}. Expected size "
                                 f"{tensors[0].shape[d]} but got size {t.shape[d]} for tensor number {i} in the "
                                 f"list (shapes {tuple(tensors[0].shape)} and {tuple(t.shape)})")
    return Cat.apply(*tensors, dim=dim)


concatenate = cat


def stack(tensors, dim=0, *, axis=None):
    """Stacks tensors of equal shape along a new dim."""
    dim = dim if axis is None else axis
    tensors = list(tensors)
    if not tensors:
        raise ValueError("stack(): expected a non-empty list of Tensors")
    for i, t in enumerate(tensors):
        if t.shape != tensors[0].shape:
            raise ShapeError(f"stack expects each tensor to be equal size, but got {list(tensors[0].shape)} at "
                             f"entry 0 and {list(t.shape)} at entry {i}")
    dim = check_dim(dim, tensors[0].ndim + 1)
    return Stack.apply(*tensors, dim=dim)


def eye(n, m=None, dtype=None, device=None, requires_grad=False):
    """The n x m (default n x n) matrix with ones on its diagonal."""
    return _make(np.eye(n, n if m is None else m, dtype=_float(dtype)), dtype, device, requires_grad)


def linspace(start, end, steps, dtype=None, device=None, requires_grad=False):
    """``steps`` evenly spaced values from ``start`` to ``end`` inclusive (integer dtypes truncate)."""
    if steps < 0:
        raise ShapeError(f"linspace: number of steps must be non-negative, got {steps}")
    values = np.linspace(float(start), float(end), steps)
    return _make(values.astype(_float(dtype)), dtype, device, requires_grad)


def logspace(start, end, steps, base=10.0, dtype=None, device=None, requires_grad=False):
    """``steps`` values base**t for t evenly spaced from ``start`` to ``end`` inclusive."""
    values = float(base) ** np.linspace(float(start), float(end), steps)
    return _make(values.astype(_float(dtype)), dtype, device, requires_grad)


def meshgrid(*tensors, indexing="ij"):
    """Coordinate grids: the i-th output holds tensors[i] along dim i ('ij') and is expanded over the
    others; 'xy' swaps the first two dims, as NumPy. Gradients flow back through the expansion."""
    tensors = tuple(tensors[0]) if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)) else tensors
    if indexing not in ("ij", "xy"):
        raise ValueError(f"meshgrid: indexing must be one of 'xy' or 'ij', got {indexing!r}")
    for t in tensors:
        if t.ndim > 1:
            raise ShapeError(f"meshgrid expects all tensors to be 0-d or 1-d, got shape {tuple(t.shape)}")
        if t.dtype != tensors[0].dtype:
            raise DTypeError(f"meshgrid expects all tensors to have the same dtype, got {tensors[0].dtype} "
                             f"and {t.dtype}")
    order = list(range(len(tensors)))
    if indexing == "xy" and len(tensors) >= 2:
        order[0], order[1] = 1, 0
    shape = [tensors[i].numel() for i in order]
    grids = []
    for i, t in enumerate(tensors):
        axis = order.index(i)
        view = [1] * len(tensors)
        view[axis] = -1
        grids.append(t.reshape(view).expand(*shape))
    return tuple(grids)
