"""Checkpoints: nested dicts of arrays and plain values in one ``.npz`` file, never pickle.

A checkpoint is a tree (dicts, lists, numbers, strings, NumPy arrays) such as
``{"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": 3}``.
Arrays become named entries of the ``.npz``; everything else is written as JSON in the
entry ``__tree__``, with each array replaced by ``{"__array__": name}``.  Dict keys keep
their type (optimizer state is keyed by integers), so a load gives back exactly the
tree that was saved.  Loading uses ``allow_pickle=False``: a checkpoint cannot run code.

Writes are atomic: the file is written under a temporary name in the same folder,
flushed to disk, then renamed over the old one, so a crash midway leaves the previous
checkpoint whole.
"""
import json
import os
import tempfile

import numpy as np

from ..backend import move_array


def _encode(value, arrays):
    if isinstance(value, dict):
        return {"__dict__": [[key, _encode(item, arrays)] for key, item in value.items()]}
    if isinstance(value, (list, tuple)):
        return [_encode(item, arrays) for item in value]
    if hasattr(value, "__array__") and not isinstance(value, (np.generic, bool, int, float, str)):
        name = f"a{len(arrays)}"
        arrays[name] = np.asarray(move_array(getattr(value, "array", value), "cpu"))
        return {"__array__": name}
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot store a {type(value).__name__} in a checkpoint (only dicts, lists, numbers, "
                    "strings, None and arrays)")


def _decode(value, arrays):
    if isinstance(value, dict):
        if "__array__" in value:
            return arrays[value["__array__"]]
        return {key: _decode(item, arrays) for key, item in value["__dict__"]}
    if isinstance(value, list):
        return [_decode(item, arrays) for item in value]
    return value


def save_checkpoint(tree, path):
    """Writes ``tree`` to ``path`` atomically (temporary file, fsync, rename)."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    arrays = {}
    structure = _encode(tree, arrays)
    arrays["__tree__"] = np.frombuffer(json.dumps(structure).encode("utf-8"), dtype=np.uint8)
    handle, temporary = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=folder)
    try:
        with os.fdopen(handle, "wb") as file:
            np.savez(file, **arrays)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def load_checkpoint(path):
    """Reads a tree written by ``save_checkpoint`` (no pickle is ever unpickled)."""
    with np.load(os.fspath(path), allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    structure = json.loads(arrays.pop("__tree__").tobytes().decode("utf-8"))
    return _decode(structure, arrays)
