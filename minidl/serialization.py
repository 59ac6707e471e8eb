"""``minidl.save`` and ``minidl.load``: tensors and state dicts in files, never through pickle.

``save`` writes the safetensors format (the ``safetensors`` package's NumPy API): an 8-byte header
length, a JSON header naming each tensor's dtype, shape and byte range, then the raw bytes.  No
code can hide in it, and other tools read it (``safetensors.torch.load_file`` gives PyTorch the
same state dict).  What is saved may be

* a tensor (or NumPy array),
* a state dict (``{name: tensor}``): each tensor is stored under its own name, so the file is an
  ordinary safetensors state dict,
* a nested tree of dicts, lists and tuples with tensors, numbers, strings and None as leaves, such as
  ``{"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": 3}``: tensors are
  stored under their dotted paths (``model.fc.weight``, ``optimizer.state.0.momentum_buffer``) and
  the tree itself, as JSON, in the header's metadata, so ``load`` gives back the same structure.

``load`` reads what ``save`` wrote, PyTorch's own ``torch.save`` files (``.pth``/``.pt``: a zip with a
pickle, or the legacy format) through ``torch_checkpoint.py``, which rebuilds tensors without
PyTorch and refuses anything else in the pickle, and NumPy ``.npz`` state dicts.  It returns
minidl Tensors where PyTorch returns tensors.  Writes are atomic (temporary file, fsync, rename).
"""
import io
import json
import os
import tempfile

import numpy as np

from . import torch_checkpoint
from .backend import move_array

TREE_KEY = "minidl.tree"  # the metadata entry that holds the saved object's structure
SAFETENSORS_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32,
                      "I16": np.int16, "I8": np.int8, "U64": np.uint64, "U32": np.uint32, "U16": np.uint16,
                      "U8": np.uint8, "BOOL": np.bool_, "C64": np.complex64}
MAX_HEADER_BYTES = 100_000_000  # the safetensors package's own limit


class _Arrays:
    """The tensors of a tree being saved: name -> NumPy array, each under its dotted path."""

    def __init__(self):
        self.by_name = {}

    def add(self, path, value):
        name = ".".join(path) if path else "tensor"
        if name in self.by_name:
            raise ValueError(f"minidl.save: two tensors would be stored under the name {name!r}; "
                             "rename a key (keys are joined with '.')")
        array = np.asarray(move_array(getattr(value, "array", value), "cpu"))
        if array.dtype.kind not in "biufc" or array.dtype.byteorder == ">":
            raise TypeError(f"minidl.save: cannot store the {array.dtype} array at {name!r}")
        self.by_name[name] = np.require(array, requirements="C")  # (ascontiguousarray would make 0-d 1-d)
        return {"__tensor__": name}


def _encode(value, path, arrays):
    """``value`` as JSON, each tensor replaced by ``{"__tensor__": name}`` (dict keys keep their type)."""
    from .tensor import Tensor
    if isinstance(value, (Tensor, np.ndarray)):
        return arrays.add(path, value)
    if isinstance(value, dict):
        for key in value:
            if not isinstance(key, (str, int, float, bool)) and key is not None:
                raise TypeError(f"minidl.save: dict keys must be strings or numbers, got {type(key).__name__} "
                                f"at {'.'.join(path) or 'the top'}")
        return {"__dict__": [[key, _encode(item, path + [str(key)], arrays)] for key, item in value.items()]}
    if isinstance(value, (list, tuple)):
        items = [_encode(item, path + [str(i)], arrays) for i, item in enumerate(value)]
        return {"__tuple__": items} if isinstance(value, tuple) else items
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"minidl.save: cannot store a {type(value).__name__} at {'.'.join(path) or 'the top'}; only "
                    "tensors, arrays, dicts, lists, tuples, numbers, strings and None (save a module's state_dict())")


def _decode(value, tensors):
    if isinstance(value, list):
        return [_decode(item, tensors) for item in value]
    if isinstance(value, dict):
        if "__tensor__" in value:
            return tensors[value["__tensor__"]]
        if "__tuple__" in value:
            return tuple(_decode(item, tensors) for item in value["__tuple__"])
        return {key: _decode(item, tensors) for key, item in value["__dict__"]}
    return value


def _is_state_dict(obj):
    from .tensor import Tensor
    return isinstance(obj, dict) and obj and all(
        isinstance(k, str) and isinstance(v, (Tensor, np.ndarray)) for k, v in obj.items())


def save(obj, f, pickle_module=None, pickle_protocol=None, _use_new_zipfile_serialization=True):
    """Saves a tensor, a state dict or a tree of them (see the module docstring) to ``f``, a path or a
    binary file object, in the safetensors format. The pickle arguments of ``torch.save`` are accepted
    and ignored: nothing is pickled."""
    from safetensors.numpy import save as safetensors_bytes
    arrays = _Arrays()
    tree = _encode(obj, [], arrays)
    metadata = {"format": "pt"}  # what safetensors.torch writes: the file is a PyTorch-loadable state dict
    if not _is_state_dict(obj):
        metadata[TREE_KEY] = json.dumps(tree)
    else:
        metadata[TREE_KEY] = json.dumps({"__state_dict__": list(obj)})  # the keys in their order
    data = safetensors_bytes(arrays.by_name, metadata=metadata)
    if hasattr(f, "write"):
        f.write(data)
        return
    _write_atomically(os.fspath(f), data)


def _write_atomically(path, data):
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=".tmp-", suffix=".safetensors", dir=folder)
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def load(f, map_location=None, pickle_module=None, *, weights_only=True, mmap=None, max_bytes=None, **kwargs):
    """Loads what ``save`` wrote, a PyTorch checkpoint (``torch.save``'s zip or legacy format), or a
    NumPy ``.npz`` state dict, from a path or a binary file object.

    Pickled data is never executed: PyTorch checkpoints are read as with ``weights_only=True`` whatever
    ``weights_only`` says (anything but tensors and plain data is refused with
    ``torch_checkpoint.UnsafeCheckpointError``).  Tensors load on the CPU; ``map_location`` may name
    another device ('cuda') to move them there.  ``max_bytes`` bounds what a PyTorch checkpoint may
    expand to (default: 4x its size, at least 1 GiB).
    """
    source = repr(os.fspath(f)) if not hasattr(f, "read") else "the checkpoint"
    if hasattr(f, "read"):
        file = f if hasattr(f, "seek") else io.BytesIO(f.read())
        result = _load_file(file, source, max_bytes)
    else:
        with open(os.fspath(f), "rb") as file:
            result = _load_file(file, source, max_bytes)
    if isinstance(map_location, str) and map_location.split(":")[0] == "cuda":
        result = _move(result, map_location)
    return result


def _load_file(file, source, max_bytes):
    size = torch_checkpoint.file_size_of(file)
    max_bytes = torch_checkpoint.default_max_bytes(size) if max_bytes is None else max_bytes
    head = file.read(9)
    file.seek(0)
    if torch_checkpoint.is_torch_zip(head):
        import zipfile
        with zipfile.ZipFile(file) as archive:
            names = archive.namelist()
        file.seek(0)
        if names and all(name.endswith(".npy") for name in names):
            return _load_npz(file)
        return torch_checkpoint.load_torch_file(file, source, max_bytes)
    if torch_checkpoint.is_legacy_pickle(head):
        return torch_checkpoint.load_torch_file(file, source, max_bytes)
    if head[8:9] == b"{" and 2 <= int.from_bytes(head[:8], "little") <= min(MAX_HEADER_BYTES, size - 8):
        return _load_safetensors(file.read(), source)
    raise torch_checkpoint.CheckpointFormatError(
        f"minidl.load: {source} is not a checkpoint minidl reads (safetensors from minidl.save, a PyTorch "
        ".pth/.pt from torch.save, or a NumPy .npz)")


def _load_npz(file):
    from collections import OrderedDict
    from .tensor import Tensor
    with np.load(file, allow_pickle=False) as archive:
        return OrderedDict((key, Tensor._from_array(archive[key])) for key in archive.files)


def _load_safetensors(data, source):
    from .tensor import Tensor
    header_size = int.from_bytes(data[:8], "little")
    try:
        header = json.loads(data[8:8 + header_size])
    except ValueError:
        raise torch_checkpoint.CheckpointFormatError(f"minidl.load: {source} has a broken safetensors header") from None
    metadata = header.pop("__metadata__", None) or {}
    if any(entry.get("dtype") == "BF16" for entry in header.values()):
        arrays = _arrays_with_bfloat16(data, header, header_size, source)
    else:
        from safetensors.numpy import load as safetensors_arrays
        try:
            arrays = safetensors_arrays(data)
        except Exception as error:
            raise torch_checkpoint.CheckpointFormatError(f"minidl.load: {source}: {error}") from None
    tensors = {name: Tensor._from_array(np.array(array)) for name, array in arrays.items()}
    tree = json.loads(metadata[TREE_KEY]) if TREE_KEY in metadata else None
    from collections import OrderedDict
    if tree is None:  # a plain safetensors file from another tool: its tensors in the header's order
        return OrderedDict((name, tensors[name]) for name in header)
    if isinstance(tree, dict) and "__state_dict__" in tree:
        return OrderedDict((name, tensors[name]) for name in tree["__state_dict__"])
    return _decode(tree, tensors)


def _arrays_with_bfloat16(data, header, header_size, source):
    """Every entry read from its byte range (the package's NumPy API has no bfloat16); bfloat16 is
    widened to float32, exactly (it is float32's top half)."""
    arrays, body = {}, len(data) - 8 - header_size
    for name, entry in header.items():
        kind = entry.get("dtype")
        dtype = np.dtype("<u2") if kind == "BF16" else np.dtype(SAFETENSORS_DTYPES.get(kind, np.void)).newbyteorder("<")
        shape, (begin, end) = tuple(entry["shape"]), entry["data_offsets"]
        if dtype.kind == "V" or not 0 <= begin <= end <= body or end - begin != int(np.prod(shape)) * dtype.itemsize:
            raise torch_checkpoint.CheckpointFormatError(
                f"minidl.load: {source}: entry {name!r} ({kind}, shape {list(shape)}) has an invalid byte range "
                f"[{begin}, {end}) or an unknown dtype")
        array = np.frombuffer(data, dtype=dtype, count=(end - begin) // dtype.itemsize, offset=8 + header_size + begin)
        if kind == "BF16":
            array = (array.astype(np.uint32) << 16).view(np.float32)
        arrays[name] = array.reshape(shape)
    return arrays


def _move(obj, device):
    from .tensor import Tensor
    if isinstance(obj, Tensor):
        return obj.to(device)
    if isinstance(obj, dict):
        return type(obj)((key, _move(value, device)) for key, value in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(_move(item, device) for item in obj)
    return obj
