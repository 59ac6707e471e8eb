"""Checkpoints: nested dicts of arrays and plain values in one ``.npz`` file, never pickle.

A checkpoint is a tree (dicts, lists, numbers, strings, NumPy arrays) such as
``{"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": 3}``.
Arrays become named entries of the ``.npz``; everything else is written as JSON in the
entry ``__tree__``, with each array replaced by ``{"__array__": name}``.  Dict keys keep
their type (optimizer state is keyed by integers), so a load gives back exactly the
tree that was saved.  Loading uses ``allow_pickle=False``: a checkpoint cannot run code.

Writes are atomic: the file is written under a temporary name in the same folder
(``.minidl-tmp-<pid>-<random>``, created exclusively, never through a symlink), flushed to
disk, then renamed over the old one, so a crash midway leaves the previous checkpoint
whole. A killed process leaves its temporary behind; ``remove_stale_temporaries(folder)``
deletes those whose process is gone (the trainer calls it when a run starts).

Reading is bounded: ``load_checkpoint(path, max_bytes=...)`` refuses an archive whose
members would expand to more than ``max_bytes`` (a deflated member of a few kilobytes can
claim gigabytes) before decompressing anything; the trainer derives the bound from its
model's own shapes.
"""
import json
import os
import re
import tempfile
import zipfile

import numpy as np

from ..backend import move_array

TEMPORARY_PREFIX = ".minidl-tmp-"
_TEMPORARY_NAME = re.compile(re.escape(TEMPORARY_PREFIX) + r"(\d+)-")
DEFAULT_MAX_BYTES = 4 << 30  # what load_checkpoint accepts when no bound is given


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


def atomic_write(path, write, binary=True):
    """Calls ``write(file)`` on a fresh temporary file beside ``path``, then renames it to ``path``.

    The temporary is created with ``O_EXCL`` under an unpredictable name (``tempfile.mkstemp``),
    so a planted file or symlink is never written through; it is fsynced before the rename,
    and removed if anything (a full disk, Ctrl-C) interrupts the write. ``path`` is either
    its old content or the new one, never a truncated mix.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f"{TEMPORARY_PREFIX}{os.getpid()}-",
                                         suffix=os.path.splitext(path)[1], dir=folder)
    try:
        with os.fdopen(handle, "wb" if binary else "w", **({} if binary else {"newline": ""})) as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.lexists(temporary):
            os.remove(temporary)
        raise


def remove_stale_temporaries(folder):
    """Deletes the ``.minidl-tmp-<pid>-*`` files in ``folder`` whose process no longer runs; returns them.

    Only this module's own naming is touched (a user's files never match it), and a
    temporary of a process still alive (another run writing into the folder) is kept.
    """
    removed = []
    if folder is None or not os.path.isdir(folder):
        return removed
    for name in os.listdir(folder):
        match = _TEMPORARY_NAME.match(name)
        if match and not _process_alive(int(match.group(1))):
            path = os.path.join(folder, name)
            if os.path.isfile(path) or os.path.islink(path):
                os.remove(path)
                removed.append(path)
    return removed


def _process_alive(pid):
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True


def save_checkpoint(tree, path):
    """Writes ``tree`` to ``path`` atomically (temporary file, fsync, rename)."""
    arrays = {}
    structure = _encode(tree, arrays)
    arrays["__tree__"] = np.frombuffer(json.dumps(structure).encode("utf-8"), dtype=np.uint8)
    atomic_write(path, lambda file: np.savez(file, **arrays))


class CheckpointError(ValueError):
    """A checkpoint file is not one ``save_checkpoint`` wrote, or would expand past its bound."""


def load_checkpoint(path, max_bytes=None):
    """Reads a tree written by ``save_checkpoint`` (no pickle is ever unpickled).

    ``max_bytes`` bounds what the archive may expand to in memory (default 4 GiB); it is
    checked against every member's declared size and array header before any data is read.
    """
    path = os.fspath(path)
    limit = DEFAULT_MAX_BYTES if max_bytes is None else int(max_bytes)
    try:
        _check_expansion(path, limit)
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
        structure = json.loads(arrays.pop("__tree__").tobytes().decode("utf-8"))
        return _decode(structure, arrays)
    except CheckpointError:
        raise
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, UnicodeDecodeError) as error:
        if isinstance(error, FileNotFoundError):
            raise
        raise CheckpointError(f"{path} is not a readable minidl checkpoint ({type(error).__name__}: {error})") \
            from error


def _check_expansion(path, limit):
    """Refuses ``path`` if its members (declared sizes, npy headers) add up to more than ``limit`` bytes."""
    total = 0
    with zipfile.ZipFile(path) as archive:
        for member in archive.infolist():
            total += member.file_size
            if total > limit:
                raise CheckpointError(f"{path}: its members expand to more than {limit:,} bytes (member "
                                      f"{member.filename!r} alone declares {member.file_size:,}); a checkpoint of "
                                      "this model cannot be that large, so it was not read")
            if not member.filename.endswith(".npy"):
                continue
            with archive.open(member) as file:
                version = np.lib.format.read_magic(file)
                read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                               else np.lib.format.read_array_header_2_0)
                shape, _, dtype = read_header(file)
            claimed = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            if claimed > member.file_size:
                raise CheckpointError(f"{path}: member {member.filename!r} claims an array of shape {shape} "
                                      f"({claimed:,} bytes) in {member.file_size:,} bytes")
