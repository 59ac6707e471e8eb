"""The Tensor's shape and indexing methods beyond the core ones of tensor.py: gather/scatter,
index_select, masked_fill/masked_select, nonzero, sort/argsort/topk, flip, roll, tril/triu,
repeat, unfold, diagonal, split/chunk/narrow/unbind.

``Tensor`` inherits them from ``IndexingMethods``. Each checks its arguments (PyTorch's errors),
then calls a ``Function`` from ``minidl/functions/`` (``indexing.py``, ``rearrange.py``,
``sorting.py``) or is built from other differentiable ops (sort = a gather at the sorting
indices, so its gradient is gather's).
"""
import numbers

import numpy as np

from .backend import get_array_module
from .errors import ArgumentError, ShapeError, check_dim
from .functions import indexing, rearrange, sorting
from .tensor_math import inplace_form


def _array(value):
    return value.array if hasattr(value, "array") else value


def _dims_arg(dims):
    """``(1, 2)``, ``[1, 2]`` or ``1`` as a tuple."""
    return tuple(dims) if isinstance(dims, (tuple, list)) else (dims,)


def _sizes_arg(sizes):
    """``f(2, 3)`` or ``f((2, 3))`` as a tuple."""
    return tuple(sizes[0]) if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)) else tuple(sizes)


class IndexingMethods:
    """Shape and indexing methods of ``Tensor`` (mixed in; see the module docstring)."""

    # ---------------------------------------------------------------- gather / scatter
    def gather(self, dim, index):
        """y[p] = self[p with its ``dim`` coordinate replaced by index[p]]."""
        dim, index = check_dim(dim, self.ndim), _array(index)
        indexing.check_gather_shapes("gather", self, index, dim)
        return indexing.Gather.apply(self, index=index, dim=dim)

    def take_along_dim(self, indices, dim=None):
        """gather with the index broadcast against the input (``dim=None``: of the flattened input)."""
        if dim is None:
            return self.reshape(-1).gather(0, indices.reshape(-1))
        xp = get_array_module(self.array)
        dim, indices = check_dim(dim, self.ndim), _array(indices)
        if indices.ndim != self.ndim:
            raise ShapeError(f"take_along_dim: input and indices should have the same number of dimensions, "
                             f"but got {self.ndim} dimensions for input, and {indices.ndim} dimensions for indices")
        without_dim = [list(s) for s in (self.shape, indices.shape)]
        without_dim[0][dim] = without_dim[1][dim] = 1
        shape = list(np.broadcast_shapes(*map(tuple, without_dim)))
        x_shape, index_shape = list(shape), list(shape)
        x_shape[dim], index_shape[dim] = self.shape[dim], indices.shape[dim]
        return self.expand(*x_shape).gather(dim, xp.broadcast_to(indices, index_shape))

    def scatter(self, dim, index, src=None, value=None, *, reduce=None):
        """A copy with src[p] (or ``value``) written at p's position with its ``dim`` coordinate
        replaced by index[p]. ``reduce='add'``/``'multiply'`` combines instead (scatter_reduce)."""
        from .tensor import Tensor
        if src is not None and not isinstance(src, Tensor):  # scatter(dim, index, 2.5): a value
            src, value = None, src
        if src is None and value is None:
            raise ArgumentError("scatter: pass src (a tensor) or value (a number)")
        if reduce is not None:
            modes = {"add": "sum", "multiply": "prod"}
            if reduce not in modes:
                raise ArgumentError(f"scatter: reduce must be 'add' or 'multiply', got {reduce!r}")
            if src is None:
                src = Tensor._from_array(get_array_module(self.array).full(_array(index).shape, value, self.dtype))
            return self.scatter_reduce(dim, index, src, modes[reduce])
        dim, index = check_dim(dim, self.ndim), _array(index)
        indexing.check_gather_shapes("scatter", self, index, dim, None if src is None else src)
        if src is not None:
            src = src.to(dtype=self.dtype)
        return indexing.Scatter.apply(self, src, index=index, dim=dim, value=value)

    def scatter_add(self, dim, index, src):
        """A copy with each src[p] added at p's position with its ``dim`` coordinate replaced by index[p]."""
        return self.scatter_reduce(dim, index, src, "sum")

    def scatter_reduce(self, dim, index, src, reduce, *, include_self=True):
        """A copy with the src values combined into their positions by ``reduce``: 'sum', 'prod',
        'mean', 'amax' or 'amin' (``include_self=False``: without self's value where any arrives)."""
        if reduce not in ("sum", "prod", "mean", "amax", "amin"):
            raise ArgumentError(f"scatter_reduce: reduce argument must be either sum, prod, mean, amax or amin, "
                                f"got {reduce!r}")
        dim, index = check_dim(dim, self.ndim), _array(index)
        indexing.check_gather_shapes("scatter_reduce", self, index, dim, src)
        return indexing.ScatterReduce.apply(self, src.to(dtype=self.dtype), index=index, dim=dim, reduce=reduce,
                                            include_self=include_self)

    def index_select(self, dim, index):
        """The slices of ``dim`` at the positions in the 1-D ``index``."""
        dim, index = check_dim(dim, self.ndim), _array(index)
        if index.ndim > 1:
            raise ShapeError(f"index_select(): Index is supposed to be a vector, got shape {tuple(index.shape)}")
        indexing.check_index_bounds("index_select", index, self.shape[dim] if self.ndim else 1, dim)
        if not self.ndim:
            return self.reshape(1)[index.reshape(-1)].reshape(index.shape)
        return self[(slice(None),) * dim + (index.reshape(-1),)]

    def select(self, dim, index):
        dim = check_dim(dim, self.ndim)
        return self[(slice(None),) * dim + (index,)]

    def narrow(self, dim, start, length):
        dim = check_dim(dim, self.ndim)
        start = start + self.shape[dim] if start < 0 else start
        if not 0 <= start <= start + length <= self.shape[dim]:
            raise IndexError(f"narrow: start ({start}) + length ({length}) exceeds dimension size "
                             f"({self.shape[dim]})")
        return self[(slice(None),) * dim + (slice(start, start + length),)]

    # ---------------------------------------------------------------- masks
    def masked_fill(self, mask, value):
        """``value`` where ``mask`` is True, else self (mask broadcasts against self)."""
        from .tensor import Tensor, where
        mask = _array(mask)
        if mask.dtype != bool:
            raise ShapeError(f"masked_fill only supports boolean masks, but got mask with dtype {mask.dtype}")
        if isinstance(value, Tensor) and value.ndim:
            raise ShapeError(f"masked_fill only supports a 0-dimensional value tensor, but got tensor with "
                             f"{value.ndim} dimension(s)")
        value = value.to(dtype=self.dtype) if isinstance(value, Tensor) else value
        result = where(Tensor._from_array(mask), value, self)
        result = result if result.dtype == self.dtype else result.to(dtype=self.dtype)
        return result.expand(*self.shape) if result.shape != self.shape else result

    def masked_select(self, mask):
        """1-D: the elements where ``mask`` (broadcast with self) is True."""
        xp = get_array_module(self.array)
        mask = _array(mask)
        shape = np.broadcast_shapes(self.shape, mask.shape)
        return self.expand(*shape)[xp.broadcast_to(mask, shape)]

    def nonzero(self, as_tuple=False):
        """The indices of the nonzero elements: an (n, ndim) int64 tensor, or one 1-D tensor per dim."""
        from .tensor import Tensor
        xp = get_array_module(self.array)
        where = xp.nonzero(self.array.reshape(1) if not self.ndim else self.array)
        if as_tuple:
            return tuple(Tensor._from_array(w.astype(xp.int64)) for w in where)
        stacked = xp.stack(where, axis=1) if where else xp.zeros((0, 0))
        return Tensor._from_array(stacked.astype(xp.int64).reshape(-1, self.ndim))

    def argwhere(self):
        return self.nonzero()

    # ---------------------------------------------------------------- sorting
    def argsort(self, dim=-1, descending=False, stable=False):
        """The indices that sort along ``dim`` (always stable here; NaN is the largest value)."""
        from .tensor import Tensor
        dim = check_dim(dim, self.ndim)
        return Tensor._from_array(sorting.sort_indices(self.array, dim, descending))

    def sort(self, dim=-1, descending=False, stable=False):
        """(values, indices) sorted along ``dim``; the values carry gradients (a gather)."""
        from .tensor import MaxResult
        indices = self.argsort(dim, descending)
        if not self.ndim:
            return MaxResult(self.clone(), indices)
        return MaxResult(indexing.Gather.apply(self, index=indices.array, dim=check_dim(dim, self.ndim)), indices)

    def msort(self):
        return self.sort(0).values

    def topk(self, k, dim=-1, largest=True, sorted=True):
        """(values, indices) of the k largest (or smallest) entries along ``dim``, always sorted;
        the values carry gradients (a gather)."""
        from .errors import IndexRangeError
        from .tensor import MaxResult
        dim = check_dim(dim, self.ndim)
        size = self.shape[dim] if self.ndim else 1
        if not 0 <= k <= size:
            raise IndexRangeError(f"topk: selected index k out of range: k={k} for dim {dim} of size {size} "
                                  f"(input of shape {tuple(self.shape)})")
        x = self.reshape(1) if not self.ndim else self
        order = x.argsort(dim, descending=largest)
        indices = order.narrow(dim, 0, k)
        values = indexing.Gather.apply(x, index=indices.array, dim=dim)
        if not self.ndim:
            values, indices = values.reshape(()), indices.reshape(())
        return MaxResult(values, indices)

    # ---------------------------------------------------------------- rearranging
    def flip(self, *dims):
        """Reversed along ``dims``."""
        dims = tuple(check_dim(d, self.ndim) for d in _sizes_arg(dims))
        if len(set(dims)) != len(dims):
            raise ShapeError(f"flip: dims has duplicates, original flip dims size={len(dims)}")
        return rearrange.Flip.apply(self, dims=dims) if self.ndim else self.clone()

    def fliplr(self):
        if self.ndim < 2:
            raise ShapeError(f"fliplr: input must be >= 2-d, got shape {tuple(self.shape)}")
        return self.flip(1)

    def flipud(self):
        if self.ndim < 1:
            raise ShapeError("flipud: input must be >= 1-d")
        return self.flip(0)

    def roll(self, shifts, dims=None):
        """Shifted cyclically by ``shifts`` along ``dims`` (the flattened tensor if dims is None)."""
        if dims is None:
            if isinstance(shifts, (tuple, list)) and len(shifts) != 1:
                raise ShapeError(f"roll: with no dims, shifts must be one number, got {shifts}")
            shift = shifts[0] if isinstance(shifts, (tuple, list)) else shifts
            return rearrange.Roll.apply(self.reshape(-1), shifts=int(shift), dims=0).reshape(self.shape)
        shifts, dims = _dims_arg(shifts), _dims_arg(dims)
        if len(shifts) != len(dims):
            raise ShapeError(f"roll: shifts and dimensions must align. shifts: {len(shifts)}, dims: {len(dims)}")
        dims = tuple(check_dim(d, self.ndim) for d in dims)
        return rearrange.Roll.apply(self, shifts=tuple(int(s) for s in shifts), dims=dims)

    def tril(self, diagonal=0):
        """Zeros above the ``diagonal``-th diagonal of the last two dims."""
        self._check_matrix("tril")
        return rearrange.Triangle.apply(self, diagonal=diagonal, upper=False)

    def triu(self, diagonal=0):
        """Zeros below the ``diagonal``-th diagonal of the last two dims."""
        self._check_matrix("triu")
        return rearrange.Triangle.apply(self, diagonal=diagonal, upper=True)

    def _check_matrix(self, op):
        if self.ndim < 2:
            raise ShapeError(f"{op}: input tensor must have at least 2 dimensions, got shape {tuple(self.shape)}")

    def repeat(self, *sizes):
        """Tiled ``sizes[d]`` times along each dim (extra leading sizes add dims)."""
        sizes = _sizes_arg(sizes)
        if len(sizes) < self.ndim:
            raise ShapeError(f"repeat: Number of dimensions of repeat dims ({len(sizes)}) can not be smaller "
                             f"than number of dimensions of tensor ({self.ndim})")
        if any(s < 0 for s in sizes):
            raise ShapeError(f"repeat: repeats can not be negative, got {sizes}")
        return rearrange.Repeat.apply(self, repeats=sizes)

    def tile(self, *dims):
        """Like repeat, but fewer sizes than dims repeat the last dims (NumPy's tile)."""
        dims = _sizes_arg(dims)
        return self.repeat(*((1,) * (self.ndim - len(dims)) + dims))

    def unfold(self, dimension, size, step):
        """Windows of ``size`` elements, ``step`` apart, along ``dimension`` (a new last dim of ``size``)."""
        dim = check_dim(dimension, self.ndim)
        length = self.shape[dim] if self.ndim else 1
        if size > length:
            raise ShapeError(f"unfold: maximum size for tensor at dimension {dim} is {length} but size is {size}")
        if step <= 0:
            raise ShapeError(f"unfold: step is {step} but must be > 0")
        return rearrange.Unfold.apply(self, dim=dim, size=size, step=step)

    def diagonal(self, offset=0, dim1=0, dim2=1):
        """The ``offset``-th diagonal over dims (dim1, dim2), as a new last dim."""
        dim1, dim2 = check_dim(dim1, self.ndim), check_dim(dim2, self.ndim)
        if dim1 == dim2:
            raise ShapeError(f"diagonal dimensions cannot be identical {dim1}, {dim2}")
        return indexing.Diagonal.apply(self, offset=offset, dim1=dim1, dim2=dim2)

    def diag(self, diagonal=0):
        """1-D: the square matrix with this on its ``diagonal``; 2-D: that diagonal."""
        if self.ndim == 2:
            return self.diagonal(diagonal)
        if self.ndim != 1:
            raise ShapeError(f"diag(): Supports 1D or 2D tensors. Got {self.ndim}D")
        from .creation import zeros
        n = self.shape[0] + abs(diagonal)
        square = zeros(n, n, dtype=self.dtype, device=self.device)
        rows = get_array_module(self.array).arange(self.shape[0])
        return square.index_put((rows + max(-diagonal, 0), rows + max(diagonal, 0)), self)

    def index_put(self, indices, values, accumulate=False):
        """A copy with ``values`` written (or added, ``accumulate=True``) at ``self[indices]``."""
        from .tensor import Tensor
        values = values.to(dtype=self.dtype) if isinstance(values, Tensor) else self._operand(values).to(dtype=self.dtype)
        return indexing.IndexPut.apply(self, values, index=tuple(_array(i) for i in indices), accumulate=accumulate)

    # ---------------------------------------------------------------- splitting
    def split(self, split_size_or_sections, dim=0):
        """Pieces of ``split_size`` along ``dim`` (the last may be smaller), or of the listed sizes."""
        dim = check_dim(dim, self.ndim)
        length = self.shape[dim]
        if isinstance(split_size_or_sections, numbers.Integral):
            step = int(split_size_or_sections)
            if step <= 0 and length:
                raise ShapeError(f"split: split_size must be positive, got {step}")
            sizes = [min(step, length - start) for start in range(0, length, step)] if length else [0]
        else:
            sizes = list(split_size_or_sections)
            if sum(sizes) != length:
                raise ShapeError(f"split_with_sizes expects split_sizes to sum exactly to {length} (input tensor's "
                                 f"size at dimension {dim}), but got split_sizes={sizes}")
        pieces, start = [], 0
        for size in sizes:
            pieces.append(self.narrow(dim, start, size))
            start += size
        return tuple(pieces)

    def chunk(self, chunks, dim=0):
        """At most ``chunks`` pieces of equal size along ``dim`` (the last may be smaller)."""
        if chunks <= 0:
            raise ShapeError(f"chunk expects `chunks` to be greater than 0, got: {chunks}")
        length = self.shape[check_dim(dim, self.ndim)]
        return self.split(max(-(-length // chunks), 1), dim)

    def unbind(self, dim=0):
        """The slices along ``dim``, each without that dim."""
        dim = check_dim(dim, self.ndim)
        return tuple(self.select(dim, i) for i in range(self.shape[dim]))


# In-place forms PyTorch has (``x.masked_fill_(mask, 0)``), each the out-of-place method written back.
for _name in ("masked_fill", "scatter", "scatter_add", "scatter_reduce", "index_put", "tril", "triu"):
    setattr(IndexingMethods, _name + "_", inplace_form(_name))
del _name
