"""The Tensor: an n-dimensional array (NumPy or CuPy) plus what autograd needs.

A tensor holds ``array`` (the NumPy or CuPy array), ``requires_grad``, ``grad`` (a Tensor,
filled by ``backward``) and ``_ctx``, the ``Function`` that created it (None
for leaves such as parameters and inputs).  Every operator below is a thin
wrapper that calls ``SomeFunction.apply``; the math lives in
``minidl/functions/``.
"""
import numbers

import numpy as np

from . import autograd, dtypes, memory_formats
from .backend import device as Device, device_of, get_array_module, move_array
from .errors import ArgumentError, ShapeError, check_dim
from .functions import arithmetic, elementwise, indexing, reduction, shape as shape_ops
from .size import Size
from .tensor_indexing import IndexingMethods
from .tensor_math import MathMethods, accepts_numpy_names


def _to_array(data, dtype=None):
    """Converts Python data or an array to an array, choosing dtypes as PyTorch does."""
    if isinstance(data, Tensor):
        data = data.array
    xp = get_array_module(data)
    if dtype is not None:
        return xp.asarray(data, dtype=np.dtype(dtype))
    if hasattr(data, "dtype"):  # an array or NumPy scalar keeps its dtype
        if np.dtype(data.dtype).kind in "OUSVMm":
            raise TypeError(f"can't convert an array of type {data.dtype}: a tensor holds numbers or bools")
        return xp.asarray(data)
    array = np.asarray(data)
    if array.dtype.kind not in "biuf":  # object, str, None, dict: PyTorch refuses them too
        _refuse(data)
    if array.dtype.kind == "f":
        return array.astype(dtypes.get_default_dtype())
    if array.dtype.kind in "iu":
        return array.astype(np.int64)
    return array


def _refuse(data):
    if isinstance(data, (str, bytes)):
        raise TypeError(f"new(): invalid data type '{type(data).__name__}'")
    inner = data
    while isinstance(inner, (list, tuple)) and inner:
        inner = inner[0]
    raise RuntimeError(f"Could not infer dtype of {type(inner).__name__}: a tensor holds numbers or bools "
                       "(nested lists of them, or an array)")


class Tensor(MathMethods, IndexingMethods):
    """(More methods -- trigonometry, rounding, bitwise ops, scans, gather/scatter, sort, flip, ... --
    come from the mixins in tensor_math.py and tensor_indexing.py.)"""

    __array_priority__ = 1000  # NumPy scalars defer to Tensor's reflected operators
    _version = 0  # bumped by every in-place change, so backward can tell saved data went stale
    _post_accumulate_grad_hooks = None  # {handle id: hook}, set by register_post_accumulate_grad_hook

    def __init__(self, data, dtype=None, requires_grad=False, device=None):
        array = _to_array(data, dtype)
        if device is not None:
            array = move_array(array, device)
        self.array = array
        self.grad = None
        self._ctx = None  # the Function that produced this tensor
        self._retains_grad = False
        self.requires_grad = requires_grad

    @classmethod
    def _from_array(cls, array, requires_grad=False, memory_format=memory_formats.contiguous_format):
        """Wraps an array that is already of the right dtype and device (no copy); ``memory_format``
        declares how it is stored (see the ``memory_format`` property)."""
        if isinstance(array, np.generic):  # NumPy reductions return scalars: keep .array an ndarray
            array = np.asarray(array)
        tensor = cls.__new__(cls)
        tensor.array, tensor.grad, tensor._ctx, tensor._retains_grad = array, None, None, False
        tensor._requires_grad = requires_grad
        if memory_format is not memory_formats.contiguous_format:
            tensor._memory_format = memory_format
        return tensor

    # ------------------------------------------------------------------ attributes
    @property
    def data(self):
        """PyTorch's ``Tensor.data``: a tensor sharing this one's memory, outside the graph.

        It never requires grad, and changing it in place (``p.data.mul_(0.9)``) changes this
        tensor without autograd knowing. minidl's own code uses ``.array``, the raw array."""
        return Tensor._from_array(self.array, memory_format=self.memory_format)

    @data.setter
    def data(self, value):
        if not isinstance(value, Tensor):
            raise TypeError(f"Tensor.data must be set to a Tensor, got {type(value).__name__}")
        self.array, self._memory_format = value.array, value.memory_format

    @property
    def requires_grad(self):
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value):
        if value and not dtypes.is_floating(self.array.dtype):
            raise RuntimeError(f"only floating-point tensors can require gradients, not {self.array.dtype}")
        if self._ctx is not None and not value:
            raise RuntimeError("you can only change requires_grad of leaf tensors; use detach() instead")
        self._requires_grad = bool(value)

    def requires_grad_(self, requires_grad=True):
        self.requires_grad = requires_grad
        return self

    @property
    def is_leaf(self):
        return self._ctx is None

    @property
    def grad_fn(self):
        return self._ctx

    def retain_grad(self):
        """Keeps ``.grad`` on a non-leaf tensor after backward."""
        self._retains_grad = True

    @property
    def shape(self):
        return tuple.__new__(Size, self.array.shape)  # an array's shape is a tuple of ints already: no conversion

    def size(self, dim=None):
        return self.shape if dim is None else self.array.shape[check_dim(dim, self.ndim)]

    @property
    def ndim(self):
        return self.array.ndim

    def dim(self):
        return self.array.ndim

    def numel(self):
        return int(self.array.size)

    @property
    def dtype(self):
        return self.array.dtype

    @property
    def device(self):
        return device_of(self.array)

    @property
    def is_cuda(self):
        return self.device.type == "cuda"

    def __len__(self):
        return len(self.array)

    def __repr__(self):
        xp = get_array_module(self.array)
        body = np.array2string(xp.asnumpy(self.array) if xp is not np else self.array, separator=", ", prefix="tensor(")
        extras = []
        if self.dtype not in (dtypes.get_default_dtype(), np.dtype(np.int64), np.dtype(bool)):
            extras.append(f"dtype=minidl.{self.dtype}")
        if self.device.type != "cpu":
            extras.append(f"device='{self.device}'")
        if self._ctx is not None:
            extras.append(f"grad_fn={self._ctx!r}")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return "tensor(" + body + "".join(", " + e for e in extras) + ")"

    # ------------------------------------------------------------------ conversion
    def numpy(self):
        if self.requires_grad:
            raise RuntimeError("Can't call numpy() on a tensor that requires grad. Use tensor.detach().numpy() instead.")
        if self.device.type != "cpu":
            raise TypeError(f"can't convert a {self.device} tensor to NumPy: use tensor.cpu() first")
        return self.array

    def item(self):
        if self.array.size != 1:
            raise ShapeError(f"a Tensor with {self.array.size} elements cannot be converted to Scalar: only "
                             f"one-element tensors can be converted to Python scalars, got shape {tuple(self.shape)}")
        return self.array.reshape(()).item()

    def tolist(self):
        return move_array(self.array, "cpu").tolist()

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __bool__(self):
        return bool(self.item())

    def __format__(self, spec):
        """``f"{loss:.4f}"`` formats a 0-d tensor's value, as PyTorch does."""
        if self.ndim == 0:
            return format(self.item(), spec)
        return object.__format__(self, spec)

    def __array__(self, dtype=None, copy=None):
        array = move_array(self.array, "cpu")
        return array if dtype is None else array.astype(dtype)

    def detach(self):
        """The same data, cut out of the graph."""
        return Tensor._from_array(self.array, memory_format=self.memory_format)

    def clone(self):
        return Cast.apply(self, dtype=self.dtype)  # astype always copies, in the same memory order

    # ------------------------------------------------------------------ memory format
    @property
    def memory_format(self):
        """How this tensor's elements are stored, as declared by the op that made it (docs/backends.md).

        ``minidl.channels_last`` (4-D only) promises (N, H, W, C) memory: the CPU convolution
        returns it, and BatchNorm, ReLU and the residual add keep it, so the next layer reads it
        without a copy.  ``minidl.contiguous_format`` (every tensor made from data, and the output
        of every reference op) promises nothing a fast path relies on.  Fast implementations choose
        their path from this tag, never from strides; ``is_contiguous`` asks the memory itself."""
        return self._memory_format

    _memory_format = memory_formats.contiguous_format

    def is_contiguous(self, memory_format=memory_formats.contiguous_format):
        """Whether the memory is laid out in ``memory_format`` (read from the strides, as in PyTorch)."""
        memory_format = memory_formats.check(memory_format, "is_contiguous")
        if memory_format is memory_formats.preserve_format:
            raise ArgumentError("is_contiguous: preserve_format is not a layout; ask for contiguous_format "
                                "or channels_last")
        return memory_formats.is_stored_as(self.array, memory_format)

    def contiguous(self, memory_format=memory_formats.contiguous_format):
        """This tensor stored and tagged in ``memory_format``: itself when it already is, else a copy
        (gradients flow through)."""
        memory_format = memory_formats.check(memory_format, "contiguous")
        if memory_format is memory_formats.preserve_format:
            raise ArgumentError("contiguous: preserve memory format is unsupported by the contiguous operator")
        if self.memory_format is memory_format and self.is_contiguous(memory_format):
            return self
        return ToMemoryFormat.apply(self, memory_format=memory_format)

    def to(self, *args, dtype=None, device=None, non_blocking=False, copy=False, memory_format=None):
        """``to(device)``, ``to(dtype)``, ``to(device, dtype)`` or ``to(other_tensor)``.

        ``non_blocking`` is accepted for PyTorch compatibility (copies are synchronous);
        ``copy=True`` returns a copy even when nothing changes; ``memory_format`` as in ``contiguous``
        (``preserve_format``: keep this tensor's)."""
        for arg in args:
            if isinstance(arg, Tensor):
                device, dtype = arg.device, arg.dtype
            elif isinstance(arg, (str, Device)):
                device = arg
            else:
                dtype = arg
        result = self
        if dtype is not None and np.dtype(dtype) != self.dtype:
            result = Cast.apply(result, dtype=np.dtype(dtype))
        if device is not None and Device(device) != self.device:
            result = ToDevice.apply(result, device=Device(device))
        if memory_format is None or memory_format is memory_formats.preserve_format:
            if result.memory_format is not self.memory_format:  # e.g. after a copy to another device
                result = result.contiguous(self.memory_format)
        else:
            result = result.contiguous(memory_format)
        return result.clone() if copy and result is self else result

    def cpu(self):
        return self.to("cpu")

    def cuda(self, index=0):
        return self.to(Device("cuda", index))

    def float(self):
        return self.to(dtype=dtypes.float32)

    def double(self):
        return self.to(dtype=dtypes.float64)

    def half(self):
        return self.to(dtype=dtypes.float16)

    def long(self):
        return self.to(dtype=dtypes.int64)

    def short(self):
        return self.to(dtype=dtypes.int16)

    def char(self):
        return self.to(dtype=dtypes.int8)

    def byte(self):
        return self.to(dtype=dtypes.uint8)

    def is_floating_point(self):
        return dtypes.is_floating(self.dtype)

    def int(self):
        return self.to(dtype=dtypes.int32)

    def bool(self):
        return self.to(dtype=dtypes.bool)

    def type(self, dtype):
        return self.to(dtype=dtype)

    # ------------------------------------------------------------------ autograd
    def backward(self, gradient=None, retain_graph=False):
        """Computes d(self)/d(leaf) for every leaf that requires grad, into ``leaf.grad``."""
        if not self.requires_grad:
            raise RuntimeError("element 0 of tensors does not require grad and does not have a grad_fn")
        if gradient is None:
            if self.array.size != 1:
                raise RuntimeError(
                    f"grad can be implicitly created only for scalar outputs, but this tensor has shape "
                    f"{tuple(self.shape)}: call backward(gradient) with a gradient of that shape, or reduce "
                    "the tensor first (e.g. loss.sum() or loss.mean())"
                )
            grad = get_array_module(self.array).ones_like(self.array)
        else:
            grad = _to_array(gradient, self.dtype)
            if grad.shape != self.array.shape:
                raise RuntimeError(f"gradient has shape {tuple(grad.shape)} but the tensor has shape {self.shape}")
        if self._ctx is None or self._retains_grad:  # the root's own gradient is the given one
            autograd._accumulate_into_grad(self, grad, Tensor)
        if self._ctx is None:
            if self._post_accumulate_grad_hooks:
                autograd.run_post_accumulate_grad_hooks(self)
            return
        autograd.backward(self, grad, retain_graph=retain_graph)

    def register_post_accumulate_grad_hook(self, hook):
        """``hook(tensor)`` runs during each ``backward()`` once this leaf's ``.grad`` holds all of
        that backward's contributions, while the engine goes on with the rest of the graph
        (DistributedDataParallel starts its gradient all-reduce there). Returns a handle whose
        ``remove()`` unregisters the hook."""
        if self._ctx is not None:
            raise RuntimeError("post accumulate grad hooks cannot be registered on non-leaf tensors")
        from .nn.modules.module import RemovableHandle
        if self._post_accumulate_grad_hooks is None:
            self._post_accumulate_grad_hooks = {}
        handle = RemovableHandle(self._post_accumulate_grad_hooks)
        self._post_accumulate_grad_hooks[handle.id] = hook
        return handle

    def zero_(self):
        self.array[...] = 0
        self._version += 1
        return self

    # ------------------------------------------------------------------ arithmetic
    def _operand(self, other):
        """``other`` as a Tensor; Python numbers take this tensor's dtype (no float64 upcast)."""
        if isinstance(other, Tensor):
            return other
        xp = get_array_module(self.array)
        if isinstance(other, numbers.Number) and not isinstance(other, bool):
            dtype = self.dtype
            if not isinstance(other, numbers.Integral) and not dtypes.is_floating(dtype):
                dtype = dtypes.get_default_dtype()
            elif dtype.kind == "b":
                dtype = dtypes.int64
            return Tensor._from_array(xp.full((), other, dtype=dtype))  # filled on the device: no host copy
        if not (isinstance(other, (numbers.Number, list, tuple)) or hasattr(other, "__array__")
                or hasattr(other, "__cuda_array_interface__")):
            raise TypeError(f"unsupported operand type(s): 'Tensor' and '{type(other).__name__}'")
        return Tensor._from_array(xp.asarray(_to_array(other)))

    def _operands(self, other):
        """(self, other) as Tensors promoted as PyTorch does: a float operand beats an integer or bool
        one and keeps its own dtype (int64 + float32 -> float32, where NumPy would give float64)."""
        a, b = self, self._operand(other)
        a_float, b_float = dtypes.is_floating(a.dtype), dtypes.is_floating(b.dtype)
        if a_float and not b_float:
            b = b.to(dtype=a.dtype)
        elif b_float and not a_float:
            a = a.to(dtype=b.dtype)
        return a, b

    def __add__(self, other):
        return arithmetic.Add.apply(*self._operands(other))

    def __radd__(self, other):
        b, a = self._operands(other)
        return arithmetic.Add.apply(a, b)

    def __sub__(self, other):
        return arithmetic.Sub.apply(*self._operands(other))

    def __rsub__(self, other):
        b, a = self._operands(other)
        return arithmetic.Sub.apply(a, b)

    def __mul__(self, other):
        return arithmetic.Mul.apply(*self._operands(other))

    def __rmul__(self, other):
        b, a = self._operands(other)
        return arithmetic.Mul.apply(a, b)

    def __truediv__(self, other):
        a, b = self._float_if_int()._operands(other)
        return arithmetic.Div.apply(a, b._float_if_int())

    def __rtruediv__(self, other):
        b, a = self._float_if_int()._operands(other)
        return arithmetic.Div.apply(a._float_if_int(), b)

    def __pow__(self, exponent):
        base, exponent_tensor = self._operands(exponent)
        if isinstance(exponent, Tensor):
            return arithmetic.Pow.apply(base, exponent_tensor)
        return arithmetic.Pow.apply(base, exponent_tensor.array)  # a constant exponent

    def __rpow__(self, base):
        exponent, base = self._operands(base)
        return arithmetic.Pow.apply(base, exponent)

    def __matmul__(self, other):
        a, b = self._operands(other)
        _check_matmul(a.shape, b.shape)
        return arithmetic.MatMul.apply(a, b)

    def __rmatmul__(self, other):
        b, a = self._operands(other)
        _check_matmul(a.shape, b.shape)
        return arithmetic.MatMul.apply(a, b)

    def __neg__(self):
        return arithmetic.Neg.apply(self)

    def __pos__(self):
        return self

    def _float_if_int(self):
        return self if dtypes.is_floating(self.dtype) else self.to(dtype=dtypes.get_default_dtype())

    # The method forms of the operators, as in PyTorch (x.add(y), x.pow(2), ...).
    def add(self, other, alpha=1):
        return self + (other if alpha == 1 else other * alpha)

    def sub(self, other, alpha=1):
        return self - (other if alpha == 1 else other * alpha)

    def mul(self, other):
        return self * other

    def div(self, other, *, rounding_mode=None):
        """a / b; ``rounding_mode='floor'`` or ``'trunc'`` rounds the quotient (integers stay integers)."""
        if rounding_mode is None:
            return self / other
        return _rounded_division(self, other, rounding_mode)

    divide = div

    def pow(self, exponent):
        return self ** exponent

    def matmul(self, other):
        return self @ other

    def neg(self):
        return -self

    # In-place ops change the data without recording anything, so they are for tensors whose
    # gradient is not being recorded (parameter updates under no_grad, accumulators).  Each one
    # bumps ``_version``: backward refuses to use an array a Function saved if it changed since.
    def _check_inplace(self):
        if self.requires_grad and autograd.is_grad_enabled():
            raise RuntimeError(
                "a tensor that requires grad is being used in an in-place operation; do it under "
                "minidl.no_grad(), or write the out-of-place form (x = x + y)"
            )

    def _inplace(self, other, op):
        self._check_inplace()
        value = other.array if isinstance(other, Tensor) else other
        op(self.array, value, out=self.array, casting="unsafe")
        self._version += 1
        return self

    # ``out += identity`` on a graph tensor (a ResNet block) is recorded as ``out = out + identity``:
    # the name is rebound to a new tensor, so the values saved for backward stay intact.
    def _augmented(self, other, out_of_place, op):
        if self.requires_grad and autograd.is_grad_enabled() and not self.is_leaf:
            return out_of_place(self, other)
        return self._inplace(other, op)

    def __iadd__(self, other):
        return self._augmented(other, Tensor.__add__, get_array_module(self.array).add)

    def __isub__(self, other):
        return self._augmented(other, Tensor.__sub__, get_array_module(self.array).subtract)

    def __imul__(self, other):
        return self._augmented(other, Tensor.__mul__, get_array_module(self.array).multiply)

    def __itruediv__(self, other):
        return self._augmented(other, Tensor.__truediv__, get_array_module(self.array).true_divide)

    def add_(self, other, alpha=1):
        value = other if alpha == 1 else alpha * (other.array if isinstance(other, Tensor) else other)
        return self._inplace(value, get_array_module(self.array).add)

    def sub_(self, other, alpha=1):
        return self.add_(other, alpha=-alpha)

    def mul_(self, other):
        return self._inplace(other, get_array_module(self.array).multiply)

    def div_(self, other):
        return self._inplace(other, get_array_module(self.array).true_divide)

    def clamp_(self, min=None, max=None):
        self._check_inplace()
        get_array_module(self.array).clip(self.array, min, max, out=self.array)
        self._version += 1
        return self

    def copy_(self, source):
        self.array[...] = move_array(_to_array(source), self.device)
        self._version += 1
        return self

    def fill_(self, value):
        self.array[...] = value
        self._version += 1
        return self

    # ------------------------------------------------------------------ comparisons (no gradient)
    def _compare(self, other, op):
        other = other.array if isinstance(other, Tensor) else other
        return Tensor._from_array(op(self.array, other))

    def __eq__(self, other):
        return self._compare(other, lambda a, b: a == b)

    def __ne__(self, other):
        return self._compare(other, lambda a, b: a != b)

    def __lt__(self, other):
        return self._compare(other, lambda a, b: a < b)

    def __le__(self, other):
        return self._compare(other, lambda a, b: a <= b)

    def __gt__(self, other):
        return self._compare(other, lambda a, b: a > b)

    def __ge__(self, other):
        return self._compare(other, lambda a, b: a >= b)

    eq, ne, lt, le, gt, ge = __eq__, __ne__, __lt__, __le__, __gt__, __ge__

    __hash__ = object.__hash__

    # ------------------------------------------------------------------ math
    def exp(self):
        return elementwise.Exp.apply(self._float_if_int())

    def log(self):
        return elementwise.Log.apply(self._float_if_int())

    def sqrt(self):
        return elementwise.Sqrt.apply(self._float_if_int())

    def tanh(self):
        return elementwise.Tanh.apply(self._float_if_int())

    def sigmoid(self):
        return elementwise.Sigmoid.apply(self._float_if_int())

    def abs(self):
        return elementwise.Abs.apply(self)

    __abs__ = abs

    def clamp(self, min=None, max=None):
        """Limits values to [min, max]; tensor bounds are constants (no gradient flows into them)."""
        if min is None and max is None:
            raise ArgumentError("clamp: at least one of 'min' or 'max' must not be None")
        min, max = (bound.array if isinstance(bound, Tensor) else bound for bound in (min, max))
        return elementwise.Clamp.apply(self, min=min, max=max)

    clip = clamp

    def where(self, condition, other):
        """``self`` where ``condition`` holds, else ``other`` (``minidl.where(condition, self, other)``)."""
        return where(condition, self, other)

    def relu(self):
        from .nn import functional as F
        return F.relu(self)

    def softmax(self, dim):
        from .nn import functional as F
        return F.softmax(self, dim)

    def log_softmax(self, dim):
        from .nn import functional as F
        return F.log_softmax(self, dim)

    # ------------------------------------------------------------------ reductions
    @accepts_numpy_names
    def sum(self, dim=None, keepdim=False):
        return reduction.Sum.apply(self, dim=dim, keepdim=keepdim)

    @accepts_numpy_names
    def mean(self, dim=None, keepdim=False):
        return reduction.Mean.apply(self._float_if_int(), dim=dim, keepdim=keepdim)

    @accepts_numpy_names
    def var(self, dim=None, unbiased=None, keepdim=False, *, correction=None):
        if correction is None:
            correction = 0 if unbiased is False else 1
        return reduction.Var.apply(self._float_if_int(), dim=dim, keepdim=keepdim, correction=correction)

    @accepts_numpy_names
    def std(self, dim=None, unbiased=None, keepdim=False, *, correction=None):
        return self.var(dim, unbiased, keepdim, correction=correction).sqrt()

    @accepts_numpy_names
    def max(self, dim=None, keepdim=False):
        """``max()`` -> the largest value; ``max(dim)`` -> (values, indices); ``max(other_tensor)`` ->
        the elementwise maximum, as PyTorch."""
        if isinstance(dim, Tensor):
            return self.maximum(dim)
        if dim is None:
            return reduction.Max.apply(self)
        check_dim(dim, self.ndim)
        values = reduction.MaxAlongDim.apply(self, dim=dim, keepdim=keepdim)
        return MaxResult(values, self.argmax(dim, keepdim))

    @accepts_numpy_names
    def min(self, dim=None, keepdim=False):
        """``min()`` -> the smallest value; ``min(dim)`` -> (values, indices); ``min(other_tensor)`` ->
        the elementwise minimum, as PyTorch."""
        if isinstance(dim, Tensor):
            return self.minimum(dim)
        if dim is None:
            return reduction.Min.apply(self)
        values = reduction.MinAlongDim.apply(self, dim=dim, keepdim=keepdim)
        return MaxResult(values, self.argmin(dim, keepdim))

    @accepts_numpy_names
    def amax(self, dim=None, keepdim=False):
        return reduction.Max.apply(self, dim=dim, keepdim=keepdim)

    @accepts_numpy_names
    def argmax(self, dim=None, keepdim=False):
        if dim is None:
            return Tensor._from_array(self.array.argmax())
        return Tensor._from_array(get_array_module(self.array).argmax(self.array, axis=dim, keepdims=keepdim))

    @accepts_numpy_names
    def argmin(self, dim=None, keepdim=False):
        if dim is None:
            return Tensor._from_array(self.array.argmin())
        return Tensor._from_array(get_array_module(self.array).argmin(self.array, axis=dim, keepdims=keepdim))

    # ------------------------------------------------------------------ shapes
    def reshape(self, *shape):
        shape = shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
        return shape_ops.Reshape.apply(self, shape=_check_reshape(tuple(shape), self.numel()))

    def view(self, *shape):
        """``view(*shape)`` is ``reshape``; ``view(dtype)`` reinterprets the bytes as another dtype
        (the last dim scales by the ratio of the item sizes; no gradient), as in PyTorch."""
        if len(shape) == 1 and not isinstance(shape[0], (int, tuple, list, Size)):
            return self._view_as_dtype(np.dtype(shape[0]))
        return self.reshape(*shape)

    def _view_as_dtype(self, dtype):
        old, new = self.dtype.itemsize, dtype.itemsize
        if old != new and (self.ndim == 0 or (self.shape[-1] * old) % new):
            raise ShapeError(f"view: cannot view a tensor of shape {tuple(self.shape)} and dtype {self.dtype} "
                             f"as {dtype}: the last dim's {self.shape[-1] if self.ndim else 0} * {old} bytes "
                             f"must divide into {new}-byte items")
        array = get_array_module(self.array).ascontiguousarray(self.array)
        return Tensor._from_array(array.view(dtype))

    def view_as(self, other):
        return self.reshape(other.shape)

    def flatten(self, start_dim=0, end_dim=-1):
        if self.ndim == 0:
            check_dim(start_dim, 0), check_dim(end_dim, 0)
            return self.reshape(1)
        start, end = check_dim(start_dim, self.ndim), check_dim(end_dim, self.ndim)
        if start > end:
            raise ShapeError(f"flatten() has invalid args: start_dim cannot come after end_dim "
                             f"(start_dim={start_dim}, end_dim={end_dim} for shape {tuple(self.shape)})")
        shape = self.shape[:start] + (-1,) + self.shape[end + 1:]
        return self.reshape(shape)

    def permute(self, *dims):
        dims = dims[0] if len(dims) == 1 and isinstance(dims[0], (tuple, list)) else dims
        if len(dims) != self.ndim:
            raise ShapeError(f"permute: number of dims don't match: the input has {self.ndim} dims "
                             f"(shape {tuple(self.shape)}), the order {tuple(dims)} has {len(dims)}")
        dims = tuple(check_dim(d, self.ndim) for d in dims)
        if len(set(dims)) != len(dims):
            raise ShapeError(f"permute(): duplicate dims are not allowed, got {dims}")
        return shape_ops.Permute.apply(self, dims=dims)

    def transpose(self, dim0, dim1):
        dims = list(range(self.ndim))
        dim0, dim1 = check_dim(dim0, self.ndim), check_dim(dim1, self.ndim)
        dims[dim0], dims[dim1] = dims[dim1], dims[dim0]
        return shape_ops.Permute.apply(self, dims=tuple(dims))

    @property
    def T(self):
        return shape_ops.Permute.apply(self, dims=tuple(reversed(range(self.ndim))))

    def t(self):
        return self.T

    def squeeze(self, dim=None):
        """Drops size-1 dims: all of them, or those among ``dim`` (an int or a tuple)."""
        if dim is None:
            return self.reshape([s for s in self.shape if s != 1])
        dims = reduction.normalize_dims(dim, self.ndim)
        return self.reshape([s for i, s in enumerate(self.shape) if not (i in dims and s == 1)])

    def unsqueeze(self, dim):
        if not -self.ndim - 1 <= dim <= self.ndim:
            raise IndexError(f"Dimension out of range (expected to be in range of [{-self.ndim - 1}, "
                             f"{self.ndim}], but got {dim})")
        dim = dim % (self.ndim + 1)
        return self.reshape(self.shape[:dim] + (1,) + self.shape[dim:])

    def expand(self, *shape):
        shape = shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
        shape = tuple(old if new == -1 else new for old, new in zip((None,) * (len(shape) - self.ndim) + self.shape, shape))
        return shape_ops.Expand.apply(self, shape=shape)

    def expand_as(self, other):
        return self.expand(other.shape)

    def __getitem__(self, index):
        first, then = indexing.split_index(_array_index(index))
        return indexing.GetItem.apply(self, index=first, then=then)

    def __setitem__(self, index, value):
        self._check_inplace()
        first, then = indexing.split_index(_array_index(index))
        target = self.array if then is None else self.array[first]  # a view: ints and slices only
        target[first if then is None else then] = value.array if isinstance(value, Tensor) else value
        self._version += 1

    def __iter__(self):
        return (self[i] for i in range(len(self)))


def where(condition, input=None, other=None):
    """Elementwise choice: ``input`` where ``condition`` is True, else ``other``; gradients flow to
    both (each where it was chosen).  ``input`` and ``other`` may be Python numbers.
    ``where(condition)`` alone is ``condition.nonzero(as_tuple=True)``."""
    if input is None and other is None:
        return Tensor(condition).nonzero(as_tuple=True)
    if not isinstance(input, Tensor) and not isinstance(other, Tensor):  # two Python numbers
        reference = condition if isinstance(condition, Tensor) else Tensor(condition)
        input = Tensor._from_array(get_array_module(reference.array).asarray(_to_array(input)))
    if isinstance(input, Tensor):
        a, b = input._operands(other)
    else:
        b, a = other._operands(input)
    condition = condition.array if isinstance(condition, Tensor) else get_array_module(a.array).asarray(condition)
    return elementwise.Where.apply(a, b, condition=condition.astype(bool, copy=False))


def _rounded_division(a, b, rounding_mode):
    """a / b rounded down (``'floor'``) or toward zero (``'trunc'``), promoted as + promotes."""
    from .functions.division import DivRounded
    a, b = a._operands(b)
    return DivRounded.apply(a, b, mode=rounding_mode)


def _check_matmul(a_shape, b_shape):
    """PyTorch's matmul errors, naming both shapes."""
    if not a_shape or not b_shape:
        raise ShapeError(f"both arguments to matmul need to be at least 1D, but they are {len(a_shape)}D "
                         f"and {len(b_shape)}D")
    inner_b = b_shape[0] if len(b_shape) == 1 else b_shape[-2]
    if a_shape[-1] != inner_b:
        raise ShapeError(f"matmul: shapes cannot be multiplied ({'x'.join(map(str, a_shape))} and "
                         f"{'x'.join(map(str, b_shape))}): the last dim of the first ({a_shape[-1]}) must equal "
                         f"the {'only' if len(b_shape) == 1 else 'second-to-last'} dim of the second ({inner_b})")


def _check_reshape(shape, numel):
    """``shape`` (ints, at most one -1), or PyTorch's error for reshaping ``numel`` elements into it."""
    if sum(1 for s in shape if s == -1) > 1:
        raise ShapeError(f"reshape: only one dimension can be inferred, got shape {list(shape)}")
    if any(s < -1 for s in shape):
        raise ShapeError(f"reshape: invalid shape dimension {min(shape)} in {list(shape)}")
    known = 1
    for s in shape:
        known *= s if s != -1 else 1
    fits = numel % known == 0 if -1 in shape and known else numel == known or (-1 in shape and numel == 0)
    if not fits:
        raise ShapeError(f"shape '{list(shape)}' is invalid for input of size {numel}")
    return shape


def _array_index(index):
    """An index with any Tensors inside replaced by their arrays."""
    if isinstance(index, Tensor):
        return index.array
    if isinstance(index, tuple):
        return tuple(i.array if isinstance(i, Tensor) else i for i in index)
    if isinstance(index, list):
        return np.asarray(index)
    return index


class MaxResult(tuple):
    """(values, indices), readable by position or name like torch's ``return_types.max``."""

    def __new__(cls, values, indices):
        return super().__new__(cls, (values, indices))

    values = property(lambda self: self[0])
    indices = property(lambda self: self[1])


class Cast(autograd.Function):
    """y = x converted to ``dtype``.   dL/dx = g converted back to x's dtype."""

    output_memory_format = memory_formats.preserve_format  # astype keeps the memory order

    def forward(self, x, dtype=None):
        self.dtype = x.dtype
        return x.astype(dtype)

    def backward(self, g):
        return g.astype(self.dtype)


class ToMemoryFormat(autograd.Function):
    """y = x stored in ``memory_format`` (x itself when it already is).   dL/dx = g."""

    def forward(self, x, memory_format=None):
        self.output_memory_format = memory_format
        return memory_formats.as_memory_format(x, memory_format)

    def backward(self, g):
        return g


class ToDevice(autograd.Function):
    """y = x copied to ``device``.   dL/dx = g copied back to x's device."""

    def forward(self, x, device=None):
        self.source = device_of(x)
        return move_array(x, device)

    def backward(self, g):
        return move_array(g, self.source)

