"""The stand-in's ``cupy.ndarray``: "device" memory held in a NumPy array, with CuPy's rules.

It is a wrapper, not an ``np.ndarray`` subclass (NumPy never asks its own subclasses for
``__array__``), so every way a device array could leak into NumPy is closed the way CuPy closes
it: ``np.asarray(a)`` raises (``__array__``), a NumPy ufunc raises (``__array_ufunc__ = None``),
a NumPy function raises (``__array_function__``; CuPy would dispatch the ones it implements, but
minidl must name ``xp``, never rely on that), and a host array mixed into a device operation
raises ``TypeError: Unsupported type``.  Everything that makes CuPy wait for the GPU or copy
across the bus is counted in ``COUNTS``.
"""
import collections
import numbers
import sys
import traceback
import weakref

import numpy as np

_MINIDL = "minidl"


class Counts:
    """What the code under test made the "GPU" do; ``reset()`` before the part you measure."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.syncs = 0  # host waits for the device: .get(), .item(), bool()/int()/float(), synchronize()
        self.host_to_device = 0  # copies host -> device: asarray(host data), a[...] = host array, host indices
        self.device_to_host = 0  # copies device -> host
        self.launches = collections.Counter()  # RawKernel launches by kernel name
        self.sites = []  # (what, "file:line" in minidl) of every sync and transfer, to say where they came from

    def record(self, what):
        if what == "sync":
            self.syncs += 1
        elif what == "host_to_device":
            self.host_to_device += 1
        else:
            self.device_to_host += 1
        self.sites.append((what, _caller()))

    def __repr__(self):
        return (f"Counts(syncs={self.syncs}, host_to_device={self.host_to_device}, "
                f"device_to_host={self.device_to_host}, launches={sum(self.launches.values())})")


def _caller():
    """The innermost minidl frame of the current stack (where a sync or transfer came from)."""
    for frame in reversed(traceback.extract_stack(sys._getframe(2), limit=40)):
        if f"/{_MINIDL}/" in frame.filename:
            return f"{frame.filename.split('/' + _MINIDL + '/')[-1]}:{frame.lineno} {frame.name}"
    return "outside minidl"


COUNTS = Counts()


def sync_to_host(what=None):
    """A synchronisation that also copies device data to the host."""
    COUNTS.record("sync")
    COUNTS.record("device_to_host")


# ------------------------------------------------------------------------------------------- memory
class _Pool:
    """Bytes held by live device buffers (``used_bytes``) and their high-water mark (``total_bytes``)."""

    def __init__(self):
        self.used = 0
        self.high = 0
        self.tracked = set()

    def track(self, host):
        base = host
        while isinstance(base.base, np.ndarray):
            base = base.base
        key = id(base)
        if key in self.tracked or base.nbytes == 0:
            return
        size = -(-base.nbytes // 512) * 512  # CuPy's pool rounds to 512 bytes
        self.tracked.add(key)
        self.used += size
        self.high = max(self.high, self.used)
        weakref.finalize(base, self._free, key, size)

    def _free(self, key, size):
        self.tracked.discard(key)
        self.used -= size


POOL = _Pool()


# ------------------------------------------------------------------------------------------- operands
def _is_scalar(value):
    return isinstance(value, (numbers.Number, np.generic)) and not isinstance(value, np.ndarray)


def operand(value):
    """What a device operation may take: a device array (its buffer) or a Python/NumPy scalar."""
    if isinstance(value, ndarray):
        return value._h
    if _is_scalar(value):
        return value
    raise TypeError(f"Unsupported type {type(value)}")


def operands(values):
    """``operand`` over a (nested) sequence, as concatenate/stack take."""
    if isinstance(values, (list, tuple)):
        return type(values)(operands(v) for v in values)
    return operand(values)


def wrap(result):
    """NumPy results as device arrays: scalars become 0-d arrays (CuPy's reductions return 0-d arrays)."""
    if isinstance(result, np.ndarray):
        return ndarray(result)
    if isinstance(result, np.generic):
        return ndarray(np.asarray(result))
    if isinstance(result, (tuple, list)):
        return type(result)(wrap(r) for r in result)
    return result


def _defers_to(other):
    """True when ``other`` (e.g. a minidl Tensor) asks for its reflected operator, as CuPy honours."""
    return (not isinstance(other, (ndarray, np.ndarray, np.generic, numbers.Number))
            and getattr(other, "__array_priority__", -1) > ndarray.__array_priority__)


def _index(key, shape):
    """An index with device arrays unwrapped; host arrays and lists cost a host-to-device copy,
    boolean masks a synchronisation (the result's size depends on the data), and out-of-bounds
    integer indices wrap around as in CuPy."""
    items = key if isinstance(key, tuple) else (key,)
    simple = not any(i is None or i is Ellipsis for i in items)
    out = []
    for axis, item in enumerate(items):
        if isinstance(item, ndarray):
            item = item._h
        elif isinstance(item, (np.ndarray, list)):
            COUNTS.record("host_to_device")
            item = np.asarray(item)
        if isinstance(item, np.ndarray):
            if item.dtype == bool:
                COUNTS.record("sync")
            elif simple and item.dtype.kind in "iu" and axis < len(shape) and shape[axis]:
                item = np.mod(item, shape[axis])
        out.append(item)
    return tuple(out) if isinstance(key, tuple) else out[0]


# ------------------------------------------------------------------------------------------- ndarray
class _Flags:
    def __init__(self, host):
        self.c_contiguous = host.flags.c_contiguous
        self.f_contiguous = host.flags.f_contiguous
        self.owndata = host.flags.owndata

    def __getitem__(self, name):
        return {"C_CONTIGUOUS": self.c_contiguous, "F_CONTIGUOUS": self.f_contiguous,
                "OWNDATA": self.owndata}[name]


class MemoryPointer:
    """``a.data``: ``ptr`` is the address of the first element (host memory here)."""

    def __init__(self, host):
        self.ptr = host.__array_interface__["data"][0]
        self.device_id = 0


class _Device:
    id = 0

    def __repr__(self):
        return "<CUDA Device 0>"

    def __eq__(self, other):
        return getattr(other, "id", None) == 0

    def __hash__(self):
        return 0


_DEVICE = _Device()


def matmul(a, b, out=None, **kwargs):
    """np.matmul, with stacked products done one 2-d product at a time: NumPy's batched matmul does not
    call BLAS for transposed operands (50x slower), which would only slow the tests down."""
    if np.ndim(a) <= 2 or np.ndim(b) <= 2 or kwargs:
        return np.matmul(a, b, out=out, **kwargs)
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    a, b = np.broadcast_to(a, batch + a.shape[-2:]), np.broadcast_to(b, batch + b.shape[-2:])
    result = out if out is not None else np.empty(batch + (a.shape[-2], b.shape[-1]),
                                                  np.result_type(a.dtype, b.dtype))
    for index in np.ndindex(*batch):
        np.matmul(a[index], b[index], out=result[index])
    return result


def _binary(ufunc, reflected=False):
    def method(self, other):
        if _defers_to(other):
            return NotImplemented
        a, b = (operand(other), self._h) if reflected else (self._h, operand(other))
        return wrap(ufunc(a, b))
    return method


def _inplace(ufunc):
    def method(self, other):
        if _defers_to(other):
            return NotImplemented
        ufunc(self._h, operand(other), out=self._h, casting="same_kind")
        return self
    return method


def _delegate(name):
    def method(self, *args, **kwargs):
        out = kwargs.get("out")
        if out is not None:
            kwargs["out"] = operand(out)
        result = getattr(self._h, name)(*[operands(a) if isinstance(a, (ndarray, list, tuple)) else a
                                          for a in args], **kwargs)
        return out if out is not None else wrap(result)
    method.__name__ = name
    return method


class ndarray:
    """A CuPy array whose device memory is the NumPy array ``_h`` (tests only; see the module docstring)."""

    __slots__ = ("_h", "__weakref__")
    __array_priority__ = 100  # below minidl.Tensor's 1000, so ``array + tensor`` reaches Tensor.__radd__
    __array_ufunc__ = None  # NumPy ufuncs (np.exp(a), host_array * a) refuse device arrays

    def __init__(self, host):
        if not isinstance(host, np.ndarray):
            raise TypeError("the stand-in ndarray wraps a NumPy buffer; build arrays with cupy.asarray/empty/...")
        if host.dtype.kind not in "biufc":
            raise ValueError(f"Unsupported dtype {host.dtype}")
        self._h = host
        POOL.track(host)

    # -------------------------------------------------------------- refusals, as in CuPy
    def __array__(self, dtype=None, copy=None):
        raise TypeError("Implicit conversion to a NumPy array is not allowed. "
                        "Please use `.get()` to construct a NumPy array explicitly.")

    def __array_function__(self, func, types, args, kwargs):
        raise TypeError(f"the CuPy stand-in refuses numpy.{func.__name__} on a device array: call it through "
                        "the array module (xp = get_array_module(a)) so the device code is explicit")

    # -------------------------------------------------------------- attributes
    shape = property(lambda self: self._h.shape)
    dtype = property(lambda self: self._h.dtype)
    ndim = property(lambda self: self._h.ndim)
    size = property(lambda self: self._h.size)
    strides = property(lambda self: self._h.strides)
    itemsize = property(lambda self: self._h.itemsize)
    nbytes = property(lambda self: self._h.nbytes)
    flags = property(lambda self: _Flags(self._h))
    data = property(lambda self: MemoryPointer(self._h))
    device = property(lambda self: _DEVICE)
    T = property(lambda self: ndarray(self._h.T))
    mT = property(lambda self: ndarray(np.swapaxes(self._h, -1, -2)))

    @property
    def base(self):
        return None if self._h.base is None else self

    def __len__(self):
        if self._h.ndim == 0:
            raise TypeError("len() of unsized object")
        return len(self._h)

    def __iter__(self):
        if self._h.ndim == 0:
            raise TypeError("iteration over a 0-d array")
        return (self[i] for i in range(len(self._h)))

    # -------------------------------------------------------------- transfers and synchronisation
    def get(self, stream=None, order="C", out=None, blocking=True):
        sync_to_host()
        return self._h.copy()

    def set(self, arr, stream=None):
        COUNTS.record("host_to_device")
        self._h[...] = np.asarray(arr)

    def item(self):
        sync_to_host()
        return self._h.item()

    def tolist(self):
        sync_to_host()
        return self._h.tolist()

    def __bool__(self):
        if self._h.size != 1:
            raise ValueError("The truth value of an array with more than one element is ambiguous.")
        sync_to_host()
        return bool(self._h)

    def __int__(self):
        sync_to_host()
        return int(self._h)

    def __float__(self):
        sync_to_host()
        return float(self._h)

    def __index__(self):
        if self._h.ndim != 0 or self._h.dtype.kind not in "iu":
            raise TypeError("only integer scalar arrays can be converted to a scalar index")
        sync_to_host()
        return int(self._h)

    def __complex__(self):
        sync_to_host()
        return complex(self._h)

    def __format__(self, spec):
        sync_to_host()
        return format(self._h.item() if self._h.ndim == 0 else self._h, spec)

    def __repr__(self):
        sync_to_host()
        return repr(self._h)

    def __str__(self):
        sync_to_host()
        return str(self._h)

    # -------------------------------------------------------------- copies
    def copy(self, order="C"):
        return ndarray(self._h.copy(order=order))

    def __copy__(self):
        return self.copy()

    def __deepcopy__(self, memo):
        return self.copy()

    def __reduce__(self):
        raise TypeError("the CuPy stand-in does not pickle device arrays (minidl never should)")

    def astype(self, dtype, order="K", casting=None, subok=None, copy=True):
        if not copy and self._h.dtype == np.dtype(dtype):
            return self
        return ndarray(self._h.astype(dtype, order=order))

    def view(self, dtype=None):
        return ndarray(self._h if dtype is None else self._h.view(dtype))

    def reshape(self, *shape, order="C"):
        shape = shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
        return ndarray(self._h.reshape(shape, order=order))

    def transpose(self, *axes):
        axes = axes[0] if len(axes) == 1 and isinstance(axes[0], (tuple, list)) else axes
        return ndarray(self._h.transpose(*axes) if axes else self._h.transpose())

    # -------------------------------------------------------------- indexing
    def __getitem__(self, key):
        key = _index(key, self._h.shape)
        items = key if isinstance(key, tuple) else (key,)
        if all(isinstance(i, (numbers.Integral, np.integer)) for i in items):
            key = items + (Ellipsis,)  # CuPy returns a 0-d view, NumPy a scalar copy
        return wrap(self._h[key])

    def __setitem__(self, key, value):
        if isinstance(value, np.ndarray):
            COUNTS.record("host_to_device")
        elif not _is_scalar(value):
            value = operand(value)
        self._h[_index(key, self._h.shape)] = value

    def fill(self, value):
        self._h.fill(operand(value) if isinstance(value, ndarray) else value)

    def nonzero(self):
        COUNTS.record("sync")  # the number of non-zeros decides the result's size
        return wrap(self._h.nonzero())

    # -------------------------------------------------------------- operators
    __add__, __radd__, __iadd__ = _binary(np.add), _binary(np.add, True), _inplace(np.add)
    __sub__, __rsub__, __isub__ = _binary(np.subtract), _binary(np.subtract, True), _inplace(np.subtract)
    __mul__, __rmul__, __imul__ = _binary(np.multiply), _binary(np.multiply, True), _inplace(np.multiply)
    __truediv__, __rtruediv__ = _binary(np.true_divide), _binary(np.true_divide, True)
    __itruediv__ = _inplace(np.true_divide)
    __floordiv__, __rfloordiv__ = _binary(np.floor_divide), _binary(np.floor_divide, True)
    __mod__, __rmod__ = _binary(np.remainder), _binary(np.remainder, True)
    __pow__, __rpow__, __ipow__ = _binary(np.power), _binary(np.power, True), _inplace(np.power)
    __matmul__, __rmatmul__ = _binary(matmul), _binary(matmul, True)
    __and__, __rand__, __iand__ = _binary(np.bitwise_and), _binary(np.bitwise_and, True), _inplace(np.bitwise_and)
    __or__, __ror__, __ior__ = _binary(np.bitwise_or), _binary(np.bitwise_or, True), _inplace(np.bitwise_or)
    __xor__, __rxor__ = _binary(np.bitwise_xor), _binary(np.bitwise_xor, True)
    __lshift__, __rshift__ = _binary(np.left_shift), _binary(np.right_shift)
    __eq__, __ne__ = _binary(np.equal), _binary(np.not_equal)
    __lt__, __le__ = _binary(np.less), _binary(np.less_equal)
    __gt__, __ge__ = _binary(np.greater), _binary(np.greater_equal)
    __hash__ = None

    def __neg__(self):
        return wrap(-self._h)

    def __pos__(self):
        return wrap(+self._h)

    def __abs__(self):
        return wrap(np.abs(self._h))

    def __invert__(self):
        return wrap(~self._h)


_METHODS = ("sum", "mean", "var", "std", "max", "min", "prod", "argmax", "argmin", "all", "any", "cumsum",
            "cumprod", "clip", "take", "repeat", "dot", "round", "sort", "argsort", "swapaxes", "ravel",
            "flatten", "squeeze", "diagonal", "trace", "conj", "ptp")
for _name in _METHODS:
    setattr(ndarray, _name, _delegate(_name))
del _name
