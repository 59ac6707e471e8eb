"""Indexing: ``x[index]`` with PyTorch's rules, gather, scatter, masked ops.

Each backward sends the output gradient back to the input positions it was read from,
*adding* where one position was read more than once (a repeated index).

PyTorch and NumPy index alike except in one case: an int next to an index array. NumPy counts
the int as one more index array, and when the index arrays are separated by a slice it moves
the result's indexed dims to the front; PyTorch applies ints first (like ``select``) and then
only the real index arrays. ``x[1, :, 3:11:2, d, 0:2]`` has shape (3, 4, 2, 3, 2) in PyTorch for
x of shape (2, 3, 12, 5, 4) and d of shape (2, 3), but (2, 3, 3, 4, 2) in NumPy. ``split_index``
turns such an index into two NumPy indexes applied one after the other: the ints and slices
first, then the index arrays.
"""
import numbers

from ..autograd import Function
from ..backend import get_array_module


def _is_index_array(part):
    return hasattr(part, "shape") and hasattr(part, "dtype") and part.ndim > 0


def _as_int_if_scalar_index(part):
    """A 0-d integer array (or NumPy integer) is an int index, as in PyTorch."""
    if hasattr(part, "dtype") and getattr(part, "ndim", 0) == 0 and part.dtype.kind in "iu":
        return int(part)
    return part


def split_index(index):
    """(first, then): NumPy indexes such that ``x[first][then]`` is PyTorch's ``x[index]``;
    ``then`` is None where NumPy's ``x[first]`` already is. ``index`` holds arrays, not Tensors."""
    parts = tuple(_as_int_if_scalar_index(part) for part in (index if isinstance(index, tuple) else (index,)))
    has_int = any(isinstance(part, numbers.Integral) and not isinstance(part, bool) for part in parts)
    if not (has_int and any(_is_index_array(part) for part in parts)):
        return (parts if isinstance(index, tuple) else parts[0]), None
    first, then = [], []
    for part in parts:
        if isinstance(part, numbers.Integral) and not isinstance(part, bool):
            first.append(part)  # the dim is gone after the first step
        elif _is_index_array(part):
            first.extend([slice(None)] * (part.ndim if part.dtype == bool else 1))
            then.append(part)
        elif part is Ellipsis:
            first.append(part)
            then.append(part)
        else:  # a slice or None: done in the first step, passed over in the second
            first.append(part)
            then.append(slice(None))
    return tuple(first), tuple(then)


def _picks_each_element_once(index):
    """True for ints, slices, None, Ellipsis and boolean masks: no input element is picked twice,
    so the backward can write the gradient instead of adding it."""
    parts = index if isinstance(index, tuple) else (index,)
    return all(p is None or p is Ellipsis or isinstance(p, (int, slice))
               or getattr(p, "dtype", None) == bool for p in parts)


def add_at(target, index, values):
    """target[index] += values, adding once per occurrence of a repeated index (unbuffered)."""
    xp = get_array_module(target)
    if _picks_each_element_once(index):
        target[index] += values
    elif xp.__name__ == "numpy":
        xp.add.at(target, index, values)
    else:
        import cupyx
        cupyx.scatter_add(target, index, values)


class GetItem(Function):
    """y = x[first][then] (see ``split_index``; ``then`` is usually None).

    dL/dx = zeros with g written (basic slicing) or added (advanced indexing,
    where an element may be picked more than once) at the indexed positions.
    """

    def forward(self, x, index=None, then=None):
        self.shape, self.index, self.then = x.shape, index, then
        y = x[index]
        return y if then is None else y[then]

    def backward(self, g):
        xp = get_array_module(g)
        grad = xp.zeros(self.shape, dtype=g.dtype)
        if self.then is None:
            add_at(grad, self.index, g)
        else:
            add_at(grad[self.index], self.then, g)  # grad[index] is a view: ints and slices only
        return grad
