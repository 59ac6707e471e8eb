"""Datasets: indexable collections of (image, target) pairs, batched with one fancy index.

minidl's datasets keep their images as one uint8 array of shape (N, C, H, W) and their
targets as one int64 array, so ``get_batch(indices)`` gathers a whole batch with a single
NumPy index instead of a Python loop over samples.  ``Subset`` maps its indices onto its
parent's, and ``random_split``/``train_val_split``/``random_subset`` build seeded splits.
"""
import hashlib
import numbers
import os
import tempfile
import warnings

import numpy as np

from .. import random as minidl_random


class Dataset:
    """Base class: define ``__len__`` and ``__getitem__`` (or, faster, ``get_batch``)."""

    def __len__(self):
        raise NotImplementedError(f"{type(self).__name__} must define __len__")

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__")

    def get_batch(self, indices):
        """``(images, targets)`` arrays for the sample ``indices`` (stacked along a new axis 0)."""
        samples = [self[int(i)] for i in indices]
        images = np.stack([np.asarray(image) for image, _ in samples])
        targets = np.asarray([target for _, target in samples])
        return images, targets


CACHE_VERSION = 2  # bump when the decoded layout changes, so old caches are decoded again


class CacheError(ValueError):
    """A cache file does not hold what was decoded from the verified archive."""


def cached_arrays(path, decode, check=None):
    """The arrays cached at ``path`` (an .npz), or ``decode()``'s arrays, then cached there.

    Decoding an archive takes seconds; the cache makes the second start fast. The cache holds a
    SHA-256 of the decoded arrays and is used only when its arrays still have that digest and pass
    ``check(arrays)`` (which raises ``CacheError``: shapes, dtypes, label ranges); otherwise it is
    decoded again from the archive (whose checksum the dataset verified) and rewritten.
    """
    arrays = _load_cache(path, check)
    if arrays is None:
        arrays = decode()
        if check is not None:
            check(arrays)
        _save_cache(path, **arrays)
    return arrays


def arrays_digest(arrays):
    """SHA-256 over the names, dtypes, shapes and bytes of ``arrays`` (a dict), in name order."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.view(np.uint8).reshape(-1) if array.dtype.kind != "U" else array.tobytes())
    return digest.hexdigest()


def _save_cache(path, **arrays):
    """Writes the cache atomically through an unpredictable, exclusively created temporary (never a
    planted file or symlink); a read-only ``root`` just means no cache."""
    temporary = None
    try:
        folder = os.path.dirname(os.path.abspath(path))
        os.makedirs(folder, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=".minidl-cache-", suffix=".npz", dir=folder)
        with os.fdopen(handle, "wb") as file:
            np.savez(file, version=np.int64(CACHE_VERSION), digest=np.array(arrays_digest(arrays)), **arrays)
        os.replace(temporary, path)
    except OSError:
        if temporary is not None and os.path.lexists(temporary):
            os.remove(temporary)


def _load_cache(path, check=None):
    if not os.path.isfile(path):
        return None
    try:
        with np.load(path, allow_pickle=False) as cache:
            if "version" not in cache.files or int(cache["version"]) != CACHE_VERSION or "digest" not in cache.files:
                return None
            arrays = {name: cache[name] for name in cache.files if name not in ("version", "digest")}
            expected = str(cache["digest"])
        if arrays_digest(arrays) != expected:
            raise CacheError(f"its arrays do not match their SHA-256 {expected[:12]}...")
        if check is not None:
            check(arrays)
    except (CacheError, OSError, ValueError, KeyError) as error:
        warnings.warn(f"ignoring the data cache {path}: {error}; decoding the archive again", stacklevel=3)
        return None
    return arrays


def check_image_arrays(arrays, image_shape, num_classes, count=None, labels=("labels",), name="dataset"):
    """Raises ``CacheError`` unless ``arrays`` holds uint8 images of ``image_shape`` and int64 labels in
    [0, num_classes) (each of ``labels`` a label array, with its class count if ``num_classes`` is a dict)."""
    images = arrays.get("images")
    if images is None or images.dtype != np.uint8 or images.ndim != 4 or tuple(images.shape[1:]) != tuple(image_shape):
        raise CacheError(f"{name}: images must be uint8 of shape (N, {', '.join(map(str, image_shape))}), got "
                         f"{None if images is None else (images.dtype, images.shape)}")
    if count is not None and len(images) != count:
        raise CacheError(f"{name}: expected {count} images, found {len(images)}")
    for key in labels:
        values, classes = arrays.get(key), num_classes[key] if isinstance(num_classes, dict) else num_classes
        if values is None or values.dtype != np.int64 or values.shape != (len(images),):
            raise CacheError(f"{name}: {key} must be int64 of shape ({len(images)},)")
        if len(values) and (values.min() < 0 or values.max() >= classes):
            raise CacheError(f"{name}: {key} must lie in [0, {classes}), found {values.min()}..{values.max()}")


class InMemoryDataset(Dataset):
    """A dataset whose ``images`` (N, C, H, W) and ``targets`` (N,) are arrays in memory.

    Every dataset of minidl (CIFAR, MNIST, FakeData, ArrayDataset) is one, so a batch
    is one fancy index into each array.
    """

    images = targets = classes = None

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        """``(image, label)`` with the label as a Python number; batches come from ``get_batch``."""
        return self.images[index], self.targets[index].item()

    def get_batch(self, indices):
        return self.images[indices], self.targets[indices]

    @property
    def class_to_idx(self):
        return {name: index for index, name in enumerate(self.classes or [])}


class ArrayDataset(InMemoryDataset):
    """Images and targets already in memory: ``ArrayDataset(images, targets)``.

    ``images`` is (N, C, H, W) (uint8 images are scaled to [0, 1] by the DataLoader;
    float arrays are used as they are), ``targets`` has N entries (integer class labels
    are stored as int64).  ``classes`` optionally names the labels.
    """

    def __init__(self, images, targets, classes=None):
        images, targets = np.asarray(images), np.asarray(targets)
        if len(images) != len(targets):
            raise ValueError(f"ArrayDataset: {len(images)} images but {len(targets)} targets")
        if targets.dtype.kind in "iub":
            targets = targets.astype(np.int64)
        self.images, self.targets = images, targets
        self.classes = list(classes) if classes is not None else None


class TensorDataset(Dataset):
    """PyTorch's ``TensorDataset(*tensors)``: sample i is ``(t[i] for t in tensors)``, all sharing the
    first dimension.  The DataLoader batches them as they are (no scaling of uint8 data, no transform)."""

    def __init__(self, *tensors):
        from ..tensor import Tensor
        if not tensors:
            raise ValueError("TensorDataset: pass at least one tensor")
        self.tensors = tuple(t if isinstance(t, Tensor) else Tensor(t) for t in tensors)
        sizes = [t.shape[0] if t.ndim else None for t in self.tensors]
        if None in sizes or len(set(sizes)) != 1:
            raise ValueError(f"TensorDataset: size mismatch between tensors: every tensor needs the same "
                             f"first dimension, got shapes {[t.shape for t in self.tensors]}")

    def __len__(self):
        return self.tensors[0].shape[0]

    def __getitem__(self, index):
        return tuple(tensor[index] for tensor in self.tensors)

    def get_batch(self, indices):
        from ..tensor import Tensor
        indices = np.asarray(indices, dtype=np.int64)
        return tuple(Tensor._from_array(tensor.array[indices]) for tensor in self.tensors)


class Subset(Dataset):
    """The samples of ``dataset`` at ``indices``, in that order."""

    def __init__(self, dataset, indices):
        self.dataset = dataset
        self.indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        if len(self.indices) and (self.indices.min() < -len(dataset) or self.indices.max() >= len(dataset)):
            raise IndexError(f"Subset: indices must lie in [0, {len(dataset)}) for a dataset of that length")

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, index):
        if isinstance(index, list):
            return [self.dataset[int(self.indices[i])] for i in index]
        return self.dataset[int(self.indices[index])]

    def get_batch(self, indices):
        return self.dataset.get_batch(self.indices[np.asarray(indices)])

    @property
    def targets(self):
        return np.asarray(self.dataset.targets)[self.indices]

    @property
    def classes(self):
        return getattr(self.dataset, "classes", None)


def _generator(seed=None, generator=None):
    if generator is not None:
        return generator
    return np.random.default_rng(seed) if seed is not None else minidl_random.generator()


def _lengths_from(lengths, total):
    """Absolute lengths; fractions summing to 1 are turned into counts as PyTorch does."""
    if all(isinstance(n, numbers.Integral) for n in lengths):
        if sum(lengths) != total:
            raise ValueError(f"random_split: lengths {list(lengths)} sum to {sum(lengths)}, "
                             f"not to the dataset's length {total}")
        return [int(n) for n in lengths]
    if abs(sum(lengths) - 1) > 1e-9 or any(f < 0 for f in lengths):
        raise ValueError(f"random_split: fractions {list(lengths)} must be non-negative and sum to 1")
    counts = [int(np.floor(total * f)) for f in lengths]
    for i in range(total - sum(counts)):  # hand out the remainder round-robin
        counts[i % len(counts)] += 1
    return counts


def random_split(dataset, lengths, generator=None, seed=None):
    """Splits ``dataset`` into non-overlapping random ``Subset`` s of the given lengths (or fractions),
    PyTorch's ``random_split(dataset, lengths, generator)``.

    The permutation comes from ``generator`` (a NumPy ``Generator``, e.g. ``np.random.default_rng(42)``,
    or minidl's, which ``minidl.manual_seed(42)`` returns), else a fresh generator seeded with ``seed``,
    else minidl's global generator.
    """
    counts = _lengths_from(list(lengths), len(dataset))
    order = _generator(seed, generator).permutation(len(dataset))
    bounds = np.cumsum([0] + counts)
    return [Subset(dataset, order[start:stop]) for start, stop in zip(bounds[:-1], bounds[1:])]


def train_val_split(dataset, val_fraction=None, val_size=None, seed=0):
    """``(train, val)`` subsets with ``val_size`` samples, or ``val_fraction`` of them, in validation.

    Seeded (``seed=0`` by default) so that a resumed run validates on the same images.
    """
    if (val_fraction is None) == (val_size is None):
        raise ValueError("train_val_split: give exactly one of val_fraction and val_size")
    if val_size is None:
        if not 0 <= val_fraction <= 1:
            raise ValueError(f"train_val_split: val_fraction must lie in [0, 1], got {val_fraction}")
        val_size = int(round(len(dataset) * val_fraction))
    if not 0 <= val_size <= len(dataset):
        raise ValueError(f"train_val_split: val_size {val_size} is outside [0, {len(dataset)}]")
    train, val = random_split(dataset, [len(dataset) - val_size, val_size], seed=seed)
    return train, val


def random_subset(dataset, size, seed=0, balanced=True):
    """A seeded ``Subset`` of ``size`` samples, e.g. E14's 5,000-image "tiny CIFAR-10".

    ``balanced`` takes (nearly) the same number of samples from every class.
    """
    if not 0 <= size <= len(dataset):
        raise ValueError(f"random_subset: size {size} is outside [0, {len(dataset)}]")
    rng = np.random.default_rng(seed)
    if not balanced:
        return Subset(dataset, np.sort(rng.choice(len(dataset), size, replace=False)))
    targets = np.asarray(dataset.targets)
    classes = np.unique(targets)
    per_class = [rng.permutation(np.flatnonzero(targets == label)) for label in classes]
    # Round-robin over the classes so every class gets size // len(classes) (or one more).
    picked = []
    for rank in range(max(len(members) for members in per_class)):
        picked.extend(members[rank] for members in per_class if rank < len(members))
        if len(picked) >= size:
            break
    return Subset(dataset, np.sort(np.asarray(picked[:size], dtype=np.int64)))
