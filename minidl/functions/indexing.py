"""Indexing: ``x[index]`` with PyTorch's rules, gather, scatter, scatter_add, scatter_reduce,
diagonal, and one_hot.

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
from ..errors import ArgumentError, IndexRangeError, ShapeError
from .arithmetic import unbroadcast


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


def combine_at(target, where, values, dim, ufunc):
    """target[where] = ufunc(target[where], values) for an ``along_dim`` index, adding up repeats:
    one position of ``dim`` at a time, since within one the targets are all different (so plain
    indexing is exact, and no ``ufunc.at`` is needed, which CuPy lacks for multiply)."""
    op = getattr(get_array_module(target), ufunc)
    for j in range(values.shape[dim]):
        part = tuple(w if w.shape[dim] == 1 else w[(slice(None),) * dim + (slice(j, j + 1),)] for w in where)
        target[part] = op(target[part], values[(slice(None),) * dim + (slice(j, j + 1),)])


def along_dim(indices, dim):
    """The advanced index that reads, for each position p of ``indices``, the element whose
    coordinate along ``dim`` is indices[p] and whose other coordinates are p's (gather's rule)."""
    xp = get_array_module(indices)
    grids = list(xp.ix_(*[xp.arange(size) for size in indices.shape]))
    grids[dim] = indices
    return tuple(grids)


def check_index_bounds(op, index, size, dim):
    """PyTorch's error for an index outside [0, size) (no wrapping of negatives, unlike NumPy)."""
    xp = get_array_module(index)
    if index.size and bool(xp.any((index < 0) | (index >= size))):
        bad = int(index[(index < 0) | (index >= size)].reshape(-1)[0])
        raise IndexRangeError(f"{op}: index {bad} is out of bounds for dimension {dim} with size {size}")


def check_gather_shapes(op, x, index, dim, src=None):
    if index.dtype.kind not in "iu":
        raise ShapeError(f"{op}(): Expected dtype int64 for index, got {index.dtype}")
    if index.ndim != x.ndim and not (index.ndim <= 1 and x.ndim <= 1):
        raise ShapeError(f"{op}: index tensor must have the same number of dimensions as input tensor "
                         f"(index of shape {tuple(index.shape)}, input of shape {tuple(x.shape)})")
    for d in range(index.ndim):
        if d != dim and index.shape[d] > x.shape[d]:
            raise ShapeError(f"{op}: size of index {tuple(index.shape)} must be at most the input's "
                             f"{tuple(x.shape)} in every dim but {dim}")
        if src is not None and index.shape[d] > src.shape[d]:
            raise ShapeError(f"{op}: size of index {tuple(index.shape)} must be at most src's "
                             f"{tuple(src.shape)} in every dim")
    check_index_bounds(op, index, x.shape[dim] if x.ndim else 1, dim)


def _head(array, shape):
    """The leading ``shape`` block of ``array`` (src may be larger than index in scatter)."""
    return array[tuple(slice(0, n) for n in shape)]


class Gather(Function):
    """y[p] = x[p with its ``dim`` coordinate replaced by index[p]].

    dL/dx = g added back at the gathered positions (an element gathered twice gets both).
    """

    def forward(self, x, index=None, dim=0):
        self.shape, self.where = x.shape, along_dim(index, dim)
        return x[self.where]

    def backward(self, g):
        grad = get_array_module(g).zeros(self.shape, dtype=g.dtype)
        add_at(grad, self.where, g)
        return grad


class Scatter(Function):
    """y = x with y[p with its ``dim`` coordinate replaced by index[p]] = src[p] (or ``value``).

    dL/dx = g with the written positions zeroed;  dL/dsrc[p] = g at the position p was written to.
    """

    def forward(self, x, src=None, index=None, dim=0, value=None):
        self.where = along_dim(index, dim)
        y = x.copy()
        y[self.where] = value if src is None else _head(src, index.shape)
        self.src_shape = None if src is None else src.shape
        return y

    def backward(self, g):
        xp = get_array_module(g)
        grad_x = g.copy()
        grad_x[self.where] = 0
        grad_src = None
        if self.src_shape is not None and self.needs_input_grad[1]:
            grad_src = xp.zeros(self.src_shape, dtype=g.dtype)
            grad_src[tuple(slice(0, n) for n in self.where[0].shape)] = g[self.where]
        return grad_x, grad_src


class ScatterReduce(Function):
    """y = x with each src[p] combined into position q(p) (index[p] along ``dim``) by ``reduce``:
    'sum', 'prod', 'mean', 'amax' or 'amin'; ``include_self=False`` leaves x's own value out at the
    positions that receive something. ``scatter_add`` is reduce='sum'.

    Gradients, per position q and each value v that met there (x's and the src values):
    sum: dL/dv = g_q;  mean: g_q / count_q;  prod: g_q * (product of the others at q);
    amax/amin: g_q shared equally among the values equal to y_q (PyTorch's rule for ties).
    x's value gets nothing where include_self=False and something arrived.
    """

    def forward(self, x, src=None, index=None, dim=0, reduce="sum", include_self=True):
        xp = get_array_module(x)
        self.where, self.reduce, self.include_self, self.dim = along_dim(index, dim), reduce, include_self, dim
        self.src_shape = src.shape
        src = _head(src, index.shape)
        hit = xp.zeros(x.shape, dtype=bool)
        hit[self.where] = True
        self.hit = hit
        start = {"sum": 0, "mean": 0, "prod": 1, "amax": -xp.inf, "amin": xp.inf}[reduce]
        if not include_self and x.dtype.kind != "f" and reduce in ("amax", "amin"):
            info = xp.iinfo(x.dtype) if x.dtype.kind in "iu" else None
            start = info.min if reduce == "amax" else info.max
        y = x.copy() if include_self else xp.where(hit, xp.asarray(start).astype(x.dtype), x)
        ufunc = {"sum": "add", "mean": "add", "prod": "multiply", "amax": "maximum", "amin": "minimum"}[reduce]
        combine_at(y, self.where, src, dim, ufunc)
        self.count = None
        if reduce == "mean":
            count = xp.zeros(x.shape, dtype=x.dtype) + (1 if include_self else 0)
            add_at(count, self.where, xp.ones(src.shape, dtype=x.dtype))
            self.count = xp.maximum(count, 1)
            y = y / self.count if x.dtype.kind == "f" else y // self.count
        if self.recording:
            self.x, self.src, self.y = x, src, y
        return y

    def backward(self, g):
        xp = get_array_module(g)
        if self.reduce in ("sum", "mean"):
            share = g if self.count is None else g / self.count
            grad_x, grad_src = share, share[self.where]
        elif self.reduce == "prod":
            grad_x, grad_src = self._prod_grads(xp, g)
        else:
            grad_x, grad_src = self._extreme_grads(xp, g)
        if not self.include_self:
            grad_x = xp.where(self.hit, 0, grad_x).astype(g.dtype)
        full_src = xp.zeros(self.src_shape, dtype=g.dtype)
        full_src[tuple(slice(0, n) for n in self.src.shape)] = grad_src
        return grad_x, full_src

    def _prod_grads(self, xp, g):
        """g times the product of the other values at the position, formed without dividing by 0:
        the product of the nonzero values and the count of zeros per position."""
        own = self.x if self.include_self else xp.where(self.hit, 1, self.x).astype(self.x.dtype)
        nonzero_product = xp.where(own == 0, 1, own)
        zeros = (own == 0).astype(g.dtype)
        combine_at(nonzero_product, self.where, xp.where(self.src == 0, 1, self.src), self.dim, "multiply")
        add_at(zeros, self.where, (self.src == 0).astype(g.dtype))

        def others(value, product, zero_count):
            alone = xp.where(zero_count == 0, product / xp.where(value == 0, 1, value), 0)
            return xp.where((value == 0) & (zero_count == 1), product, alone)

        grad_x = g * others(own, nonzero_product, zeros)
        grad_src = g[self.where] * others(self.src, nonzero_product[self.where], zeros[self.where])
        return grad_x, grad_src

    def _extreme_grads(self, xp, g):
        x_counts = self.x == self.y  # x's value is the extreme at its position ...
        if not self.include_self:
            x_counts &= ~self.hit  # ... unless it was left out
        src_counts = self.src == self.y[self.where]
        ties = x_counts.astype(g.dtype)
        add_at(ties, self.where, src_counts.astype(g.dtype))
        share = g / xp.maximum(ties, 1)
        return share * x_counts, share[self.where] * src_counts


class IndexPut(Function):
    """y = x with y[index] = v (or y[index] += v with ``accumulate``, adding repeated positions).

    dL/dx = g, with the written positions zeroed unless accumulating;  dL/dv = g[index] summed
    back to v's shape (v is broadcast over the indexed positions).
    """

    def forward(self, x, v, index=(), accumulate=False):
        self.index, self.accumulate, self.v_shape = index, accumulate, v.shape
        y = x.copy()
        if accumulate:
            add_at(y, index, get_array_module(x).broadcast_to(v, y[index].shape))
        else:
            y[index] = v
        return y

    def backward(self, g):
        grad_x = g
        if not self.accumulate:
            grad_x = g.copy()
            grad_x[self.index] = 0
        grad_v = unbroadcast(g[self.index], self.v_shape) if self.needs_input_grad[1] else None
        return grad_x, grad_v


class Diagonal(Function):
    """y = the diagonal of x over dims (dim1, dim2), ``offset`` above (> 0) or below (< 0) the main
    one, as a last dim.   dL/dx = zeros with g written back onto that diagonal."""

    def forward(self, x, offset=0, dim1=0, dim2=1):
        self.shape, self.offset, self.dims = x.shape, offset, (dim1, dim2)
        return get_array_module(x).diagonal(x, offset, dim1, dim2).copy()

    def backward(self, g):
        xp = get_array_module(g)
        grad = xp.zeros(self.shape, dtype=g.dtype)
        plane = xp.moveaxis(grad, self.dims, (-2, -1))  # a view of grad
        i = xp.arange(g.shape[-1])
        plane[..., i + max(-self.offset, 0), i + max(self.offset, 0)] = g
        return grad


def one_hot(indices, num_classes=-1):
    """int64 array (*indices.shape, num_classes) with a 1 at each index (no gradient)."""
    xp = get_array_module(indices)
    if indices.dtype.kind not in "iu":
        raise ShapeError(f"one_hot is only applicable to index tensors, got dtype {indices.dtype}")
    if num_classes == -1:
        num_classes = int(indices.max()) + 1 if indices.size else 0
    if indices.size and (int(indices.min()) < 0 or int(indices.max()) >= num_classes):
        raise ArgumentError(f"one_hot: class values must be in [0, num_classes={num_classes}), got "
                            f"{int(indices.min())} .. {int(indices.max())}")
    return (indices[..., None] == xp.arange(num_classes)).astype(xp.int64)
