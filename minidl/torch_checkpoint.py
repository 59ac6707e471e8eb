"""Reading PyTorch's own checkpoints (``torch.save`` files) without PyTorch and without running pickle.

A ``.pth``/``.pt`` file from ``torch.save`` is a zip archive::

    archive/data.pkl      a pickle of the saved object (a state dict: an OrderedDict of tensors)
    archive/data/0, ...   the raw bytes of each storage (the flat memory tensors are views of)
    archive/byteorder     'little' (or 'big')

(files from PyTorch before 1.6 are instead a sequence of pickles followed by the raw storages: the
"legacy" format, also read here).  Inside ``data.pkl`` each tensor is a call
``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)``, and each storage a
"persistent id" ``('storage', torch.FloatStorage, key, location, numel)``.

Unpickling normally imports and calls whatever the pickle names, so a file can run any code
(``os.system`` through ``__reduce__``).  ``CheckpointUnpickler`` is PyTorch's ``weights_only=True`` idea:
``find_class`` hands out only the names below, each mapped to minidl's own function, and refuses
every other one with ``UnsafeCheckpointError`` before anything is called:

    collections.OrderedDict, builtins.set/frozenset     plain containers (dicts, lists, tuples and
                                                        numbers need no name)
    torch._utils._rebuild_tensor{,_v2,_v3}              a tensor: a view of a storage
    torch._utils._rebuild_parameter{,_with_state}       an nn.Parameter
    torch._tensor._rebuild_from_type_v2                 the wrapper newer PyTorch puts around the above
    torch.<Dtype>Storage, torch.storage.UntypedStorage  storage types -> NumPy dtypes
    torch.float32 and the other dtypes, torch.Size      values

A tensor comes back as a minidl Tensor viewing its storage's bytes (views of one storage share
memory, as in PyTorch); bfloat16 storages, which NumPy lacks, are widened to float32 (exactly).
The expansion is bounded: every view must lie inside its storage, each storage's byte count must
match its declared size, and the tensors together may not exceed ``max_bytes``.
"""
import collections
import io
import os
import pickle
import struct
import zipfile

import numpy as np

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001
MAX_PICKLE_BYTES = 1 << 28  # the structure of a checkpoint, not its data: 256 MiB is far beyond any real one

STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16, "BFloat16Storage": "bfloat16",
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16, "CharStorage": np.int8,
    "ByteStorage": np.uint8, "BoolStorage": np.bool_, "ComplexFloatStorage": np.complex64,
    "ComplexDoubleStorage": np.complex128,
}
TORCH_DTYPES = {
    "float32": np.float32, "float": np.float32, "float64": np.float64, "double": np.float64, "float16": np.float16,
    "half": np.float16, "bfloat16": "bfloat16", "int64": np.int64, "long": np.int64, "int32": np.int32,
    "int": np.int32, "int16": np.int16, "short": np.int16, "int8": np.int8, "uint8": np.uint8, "uint16": np.uint16,
    "uint32": np.uint32, "uint64": np.uint64, "bool": np.bool_, "complex64": np.complex64,
    "complex128": np.complex128,
}


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint asked for something other than tensors and plain data (nothing of it was run)."""


class CheckpointFormatError(ValueError):
    """A checkpoint whose structure is broken or inconsistent (sizes, shapes, paths)."""


# ------------------------------------------------------------------ what the pickle may name
class _StorageType:
    """``torch.FloatStorage`` and friends: only their dtype matters here."""

    def __init__(self, name, dtype):
        self.name, self.dtype = name, dtype


class _Dtype:
    """``torch.float32`` and friends, as the argument of ``_rebuild_tensor_v3``."""

    def __init__(self, name, dtype):
        self.name, self.dtype = name, dtype


class _Marker:
    """``torch.Tensor`` / ``torch.nn.Parameter``, named only as ``_rebuild_from_type_v2``'s type."""

    def __init__(self, name):
        self.name = name


class _Storage:
    """One storage: its dtype, declared element count, and (once read) its NumPy array."""

    def __init__(self, key, dtype, numel, untyped=False):
        self.key, self.dtype, self.numel, self.array, self.untyped = key, dtype, numel, None, untyped


class _PendingTensor:
    """A tensor named by the pickle, built once the storages are read (the legacy format stores
    them after the pickle)."""

    def __init__(self, storage, offset, size, stride, parameter=False, requires_grad=False):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride
        self.parameter, self.requires_grad = parameter, requires_grad


def _ints(value, what):
    if not isinstance(value, (tuple, list)) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise CheckpointFormatError(f"a tensor's {what} must be a tuple of ints, got {value!r}")
    return tuple(value)


def _rebuild_tensor(storage, storage_offset, size, stride, *_ignored):
    """``torch._utils._rebuild_tensor{,_v2}(storage, offset, size, stride, requires_grad, hooks, ...)``."""
    if not isinstance(storage, _Storage) or not isinstance(storage_offset, int):
        raise CheckpointFormatError("a tensor must be rebuilt from a storage and an integer offset")
    return _PendingTensor(storage, storage_offset, _ints(size, "size"), _ints(stride, "stride"))


def _rebuild_tensor_v3(storage, storage_offset, size, stride, requires_grad, backward_hooks, dtype, *_ignored):
    """PyTorch >= 2.1 for dtypes without a legacy storage class: an untyped storage plus a dtype."""
    if not isinstance(dtype, _Dtype) or not isinstance(storage, _Storage):
        raise CheckpointFormatError("_rebuild_tensor_v3 needs a storage and a torch dtype")
    storage.dtype = dtype.dtype  # the untyped storage's bytes are of this dtype
    return _rebuild_tensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=True, backward_hooks=None, state=None):
    if not isinstance(data, _PendingTensor):
        raise CheckpointFormatError("an nn.Parameter must wrap a tensor")
    if state:
        raise UnsafeCheckpointError("a Parameter with extra Python attributes (state) is not plain data")
    data.parameter, data.requires_grad = True, bool(requires_grad)
    return data


def _rebuild_from_type_v2(function, new_type, args, state):
    if function not in (_rebuild_tensor, _rebuild_tensor_v3, _rebuild_parameter) or state:
        raise UnsafeCheckpointError("_rebuild_from_type_v2 may only rebuild a plain tensor or Parameter")
    if not (isinstance(new_type, _Marker) and new_type.name in ("torch.Tensor", "torch.nn.parameter.Parameter")):
        raise UnsafeCheckpointError(f"refusing to rebuild a tensor subclass {getattr(new_type, 'name', new_type)!r}")
    tensor = function(*args)
    if new_type.name.endswith("Parameter"):
        tensor.parameter = True
    return tensor


def _size(values=()):
    return tuple(values)


def _device(*args):
    return ":".join(str(a) for a in args)


ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v3"): _rebuild_tensor_v3,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type_v2,
    ("torch", "Tensor"): _Marker("torch.Tensor"),
    ("torch.nn.parameter", "Parameter"): _Marker("torch.nn.parameter.Parameter"),
    ("torch", "Size"): _size,
    ("torch", "device"): _device,
    ("torch.storage", "UntypedStorage"): _StorageType("UntypedStorage", np.uint8),
    **{("torch", name): _StorageType(name, dtype) for name, dtype in STORAGE_DTYPES.items()},
    **{("torch", name): _Dtype(name, dtype) for name, dtype in TORCH_DTYPES.items()},
}


class CheckpointUnpickler(pickle._Unpickler):
    """An unpickler that can build only tensors and plain data (see the module docstring).

    It is the pure-Python unpickler, so that BUILD (which would set attributes or call
    ``__setstate__``) can be limited too: it is allowed only on an OrderedDict (PyTorch attaches
    ``_metadata`` to state dicts), whose state is dropped."""

    def __init__(self, file, source, storages):
        super().__init__(file)
        self.source, self.storages = source, storages  # storages: key -> _Storage, filled as they are named

    def find_class(self, module, name):
        found = ALLOWED.get((module, name))
        if found is None:
            raise UnsafeCheckpointError(
                f"{self.source}: refusing to load the global {module}.{name}: a checkpoint may only hold tensors "
                "and plain data (dicts, lists, numbers, strings), as with PyTorch's torch.load(weights_only=True). "
                "Nothing in the file was executed. If you trust the file and it holds more (a whole pickled model, "
                "NumPy arrays), load it with PyTorch and save its state_dict() instead.")
        return found

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise CheckpointFormatError(f"{self.source}: unknown persistent id {str(pid)[:80]!r}")
        storage_type, key, _location, numel = pid[1:5]
        if not isinstance(storage_type, _StorageType) or not isinstance(numel, int) or numel < 0:
            raise CheckpointFormatError(f"{self.source}: storage {key!r} has no valid type and size")
        if len(pid) > 5 and pid[5] is not None:
            raise CheckpointFormatError(f"{self.source}: storage views of PyTorch < 0.4 are not supported")
        if key not in self.storages:
            self.storages[str(key)] = _Storage(str(key), storage_type.dtype, numel, storage_type.name == "UntypedStorage")
        return self.storages[str(key)]

    def load_build(self):
        state = self.stack.pop()
        if not isinstance(self.stack[-1], collections.OrderedDict):
            raise UnsafeCheckpointError(f"{self.source}: refusing to set the state of a "
                                        f"{type(self.stack[-1]).__name__} (only plain data is loaded)")
        del state  # PyTorch's state-dict _metadata (module versions): not needed here

    dispatch = dict(pickle._Unpickler.dispatch)
    dispatch[pickle.BUILD[0]] = load_build


# ------------------------------------------------------------------ the two file formats
def is_torch_zip(head):
    return head[:4] == b"PK\x03\x04"


def is_legacy_pickle(head):
    return head[:1] == b"\x80"  # a pickle's PROTO opcode


def load_torch_file(file, source, max_bytes):
    """The object saved by ``torch.save`` in ``file`` (a binary, seekable file object)."""
    head = file.read(4)
    file.seek(0)
    if is_torch_zip(head):
        return _load_zip(file, source, max_bytes)
    if is_legacy_pickle(head):
        return _load_legacy(file, source, max_bytes)
    raise CheckpointFormatError(f"{source}: not a PyTorch checkpoint (neither a zip archive nor a pickle)")


def _check_member_names(names, source):
    seen = set()
    for name in names:
        parts = name.replace("\\", "/").split("/")
        if name.startswith(("/", "\\")) or ".." in parts or ":" in parts[0] or "\\" in name:
            raise CheckpointFormatError(f"{source}: refusing a zip member with an unsafe path {name!r} "
                                        "(absolute, or climbing out with '..')")
        if name in seen:
            raise CheckpointFormatError(f"{source}: the zip archive names {name!r} twice")
        seen.add(name)


def _load_zip(file, source, max_bytes):
    try:
        archive = zipfile.ZipFile(file)
    except zipfile.BadZipFile as error:
        raise CheckpointFormatError(f"{source}: a broken zip archive ({error})") from None
    with archive:
        infos = {info.filename: info for info in archive.infolist()}
        _check_member_names(list(infos), source)
        pickles = [name for name in infos if name.endswith("/data.pkl") and name.count("/") == 1]
        if any(name.endswith(("/constants.pkl", "/code/")) or "/code/" in name for name in infos):
            raise CheckpointFormatError(f"{source}: a TorchScript archive (torch.jit.save) holds code, not just weights; "
                                        "save the model's state_dict() with torch.save instead")
        if len(pickles) != 1:
            raise CheckpointFormatError(f"{source}: a zip archive, but not one written by torch.save "
                                        f"(expected one '<name>/data.pkl', found {len(pickles)})")
        prefix = pickles[0][:-len("data.pkl")]
        big_endian = prefix + "byteorder" in infos and archive.read(prefix + "byteorder").strip() == b"big"
        pickle_bytes = _read_member(archive, infos[pickles[0]], MAX_PICKLE_BYTES, source)
        storages = {}
        result = CheckpointUnpickler(io.BytesIO(pickle_bytes), source, storages).load()
        budget = _Budget(max_bytes, source)
        for key, storage in storages.items():
            info = infos.get(f"{prefix}data/{key}")
            if info is None:
                raise CheckpointFormatError(f"{source}: the pickle names storage {key!r} but the archive has no "
                                            f"member {prefix}data/{key}")
            raw = _read_member(archive, info, budget.left, source)
            storage.array = _storage_array(raw, storage, big_endian, source)
        return _materialize(result, budget, {})


def _read_member(archive, info, limit, source):
    if info.file_size > limit:
        raise CheckpointFormatError(f"{source}: member {info.filename} would expand to {info.file_size:,} bytes, "
                                    f"more than the {limit:,} allowed (max_bytes)")
    with archive.open(info) as member:  # reads at most file_size bytes, and checks the CRC
        return bytearray(member.read())


def _load_legacy(file, source, max_bytes):
    """PyTorch < 1.6 (or ``_use_new_zipfile_serialization=False``): magic number, protocol, system
    info, the object's pickle, the list of storage keys, then each storage as (int64 count, bytes)."""
    def plain():
        return CheckpointUnpickler(file, source, {}).load()

    if plain() != LEGACY_MAGIC:
        raise CheckpointFormatError(f"{source}: a pickle, but not a PyTorch checkpoint (wrong magic number)")
    if plain() != LEGACY_PROTOCOL:
        raise CheckpointFormatError(f"{source}: unsupported legacy PyTorch protocol")
    system = plain()
    big_endian = isinstance(system, dict) and system.get("little_endian") is False
    storages = {}
    result = CheckpointUnpickler(file, source, storages).load()
    keys = CheckpointUnpickler(file, source, {}).load()
    if not isinstance(keys, list) or set(map(str, keys)) != set(storages):
        raise CheckpointFormatError(f"{source}: the storage list does not match the storages the pickle names")
    budget = _Budget(max_bytes, source)
    for key in keys:
        storage = storages[str(key)]
        count_bytes = file.read(8)
        if len(count_bytes) != 8 or struct.unpack("<q", count_bytes)[0] != storage.numel:
            raise CheckpointFormatError(f"{source}: storage {key!r} is truncated or its size disagrees with the pickle")
        nbytes = storage.numel if storage.untyped else storage.numel * _itemsize(storage.dtype)
        if nbytes > budget.left:
            raise CheckpointFormatError(f"{source}: storage {key!r} would expand to {nbytes:,} bytes, more than the "
                                        f"{budget.left:,} allowed (max_bytes)")
        raw = bytearray(file.read(nbytes))
        storage.array = _storage_array(raw, storage, big_endian, source)
    return _materialize(result, budget, {})


# ------------------------------------------------------------------ storages and tensors
def _itemsize(dtype):
    return 2 if isinstance(dtype, str) else np.dtype(dtype).itemsize  # 'bfloat16'


def _storage_array(raw, storage, big_endian, source):
    """The storage's bytes as a 1-D NumPy array of its dtype (bfloat16 widened to float32)."""
    dtype, itemsize = storage.dtype, _itemsize(storage.dtype)
    expected = storage.numel if storage.untyped else storage.numel * itemsize  # an untyped storage counts bytes
    if len(raw) != expected or expected % itemsize:
        name = dtype if isinstance(dtype, str) else np.dtype(dtype).name
        raise CheckpointFormatError(f"{source}: storage {storage.key!r} holds {len(raw):,} bytes, but the pickle "
                                    f"declares {expected:,} bytes of {name}")
    order = ">" if big_endian else "<"
    if isinstance(dtype, str):  # bfloat16 is the top 16 bits of a float32
        return (np.frombuffer(raw, dtype=order + "u2").astype(np.uint32) << 16).view(np.float32)
    array = np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder(order))
    return array.astype(np.dtype(dtype)) if big_endian else array


class _Budget:
    """The bytes the rebuilt tensors may still take (``max_bytes`` in all)."""

    def __init__(self, max_bytes, source):
        self.left, self.total, self.source = max_bytes, max_bytes, source

    def spend(self, nbytes, what):
        if nbytes > self.left:
            raise CheckpointFormatError(f"{self.source}: {what} would take {nbytes:,} bytes, beyond the {self.total:,} "
                                        "bytes this load may expand to (pass a larger max_bytes if you trust the file)")
        self.left -= nbytes


def _tensor(pending, budget):
    """A minidl Tensor viewing the storage (checked to lie inside it), or a Parameter."""
    from .tensor import Tensor
    storage, offset, size, stride = pending.storage, pending.offset, pending.size, pending.stride
    array = storage.array
    if len(size) != len(stride) or any(s < 0 for s in size + stride) or offset < 0:
        raise CheckpointFormatError(f"{budget.source}: a tensor of size {size} has stride {stride} and offset {offset}")
    numel = int(np.prod(size, dtype=np.int64)) if size else 1
    if numel:
        last = offset + sum((n - 1) * s for n, s in zip(size, stride))
        if last >= len(array):
            raise CheckpointFormatError(f"{budget.source}: a tensor of size {size}, stride {stride}, offset {offset} "
                                        f"reaches element {last:,} of a storage of {len(array):,} elements")
    budget.spend(numel * array.itemsize, f"a tensor of size {size}")
    if numel:
        view = np.lib.stride_tricks.as_strided(array[offset:], shape=size, strides=[s * array.itemsize for s in stride])
    else:
        view = np.zeros(size, dtype=array.dtype)
    tensor = Tensor._from_array(view)
    if pending.parameter:
        from .nn.parameter import Parameter
        return Parameter(tensor, requires_grad=pending.requires_grad and view.dtype.kind == "f")
    return tensor


def _materialize(obj, budget, memo):
    """``obj`` with every pending tensor built, containers rebuilt in kind (shared ones once)."""
    if id(obj) in memo:
        return memo[id(obj)]
    if isinstance(obj, _PendingTensor):
        result = memo[id(obj)] = _tensor(obj, budget)
    elif isinstance(obj, dict):
        memo[id(obj)] = obj
        for key in list(obj):
            obj[key] = _materialize(obj[key], budget, memo)
        result = obj
    elif isinstance(obj, list):
        memo[id(obj)] = obj
        obj[:] = [_materialize(item, budget, memo) for item in obj]
        result = obj
    elif isinstance(obj, tuple):
        result = memo[id(obj)] = tuple(_materialize(item, budget, memo) for item in obj)
    elif isinstance(obj, (_Storage, _StorageType, _Dtype, _Marker)) or callable(obj):
        raise CheckpointFormatError(f"{budget.source}: the checkpoint holds a bare {type(obj).__name__.strip('_')}, "
                                    "not a tensor")
    else:
        result = obj
    return result


def default_max_bytes(file_size):
    """What a checkpoint of ``file_size`` bytes may expand to: its tensors are views of its storages,
    so a real one stays near its size; 4x (and at least 1 GiB) leaves room for views that repeat data."""
    return max(4 * file_size, 1 << 30)


def file_size_of(file):
    position = file.tell()
    file.seek(0, os.SEEK_END)
    size = file.tell()
    file.seek(position)
    return size
