"""CIFAR-10 and CIFAR-100 from the official binary archives (no pickle is ever loaded).

The archives at https://www.cs.toronto.edu/~kriz/cifar.html come in a "binary version":
fixed-size records of label byte(s) followed by 3,072 pixel bytes (1,024 red, then
1,024 green, then 1,024 blue, each a 32×32 image in row-major order).  NumPy reads the
records straight out of the tar.gz, after the archive's md5 was checked against the
published one.  The decoded arrays are cached as ``.npz`` in ``root``, so later starts
skip the tar entirely.

    CIFAR-10 record:  <1 byte label><3072 bytes pixels>           (cifar-10-batches-bin/)
    CIFAR-100 record: <1 byte coarse><1 byte fine><3072 bytes>    (cifar-100-binary/)
"""
import os
import tarfile

import numpy as np

from .dataset import InMemoryDataset, cached_arrays, check_image_arrays
from .download import fetch

BASE_URL = "https://www.cs.toronto.edu/~kriz/"
IMAGE_SHAPE = (3, 32, 32)
PIXELS = 3 * 32 * 32


def _read_records(tar, member, label_bytes):
    """``(labels (N, label_bytes), images (N, 3, 32, 32))`` uint8 from one .bin member."""
    raw = np.frombuffer(tar.extractfile(member).read(), dtype=np.uint8)
    record = label_bytes + PIXELS
    if raw.size % record:
        raise ValueError(f"{member}: {raw.size} bytes is not a whole number of {record}-byte records")
    records = raw.reshape(-1, record)
    return records[:, :label_bytes], records[:, label_bytes:].reshape(-1, *IMAGE_SHAPE)


def _read_names(tar, member):
    text = tar.extractfile(member).read().decode("utf-8")
    return [line.strip() for line in text.splitlines() if line.strip()]


class _CIFAR(InMemoryDataset):
    """Shared machinery; subclasses name the archive and decode its members."""

    filename = url = md5 = cache_prefix = None

    def __init__(self, root="data", train=True, download=True):
        self.root, self.train = os.fspath(root), bool(train)
        split = "train" if self.train else "test"
        arrays = cached_arrays(os.path.join(self.root, f"{self.cache_prefix}-{split}.npz"),
                               lambda: self._read_archive(download), self._check)
        self.images = arrays["images"]
        self._set_targets(arrays)

    def _read_archive(self, download):
        archive = fetch(self.url, self.root, self.filename, md5=self.md5, download=download)
        with tarfile.open(archive, "r:gz") as tar:
            return self._decode(tar)

    def __repr__(self):
        return (f"{type(self).__name__}(split={'train' if self.train else 'test'}, size={len(self)}, "
                f"root={self.root!r})")


class CIFAR10(_CIFAR):
    """CIFAR-10: 50,000 training and 10,000 test 32×32 colour images in 10 classes.

    ``images`` is uint8 (N, 3, 32, 32), ``targets`` int64 (N,), ``classes`` the names.
    ``download=True`` fetches ``cifar-10-binary.tar.gz`` into ``root`` when it is missing.
    """

    filename = "cifar-10-binary.tar.gz"
    url = BASE_URL + filename
    md5 = "c32a1d4ab5d03f1284b67883e8d87530"
    cache_prefix = "cifar-10"
    folder = "cifar-10-batches-bin"

    def _decode(self, tar):
        names = ([f"data_batch_{i}.bin" for i in range(1, 6)] if self.train else ["test_batch.bin"])
        parts = [_read_records(tar, f"{self.folder}/{name}", label_bytes=1) for name in names]
        labels = np.concatenate([part[0] for part in parts])
        return {"images": np.concatenate([part[1] for part in parts]),
                "labels": labels[:, 0].astype(np.int64),
                "classes": np.array(_read_names(tar, f"{self.folder}/batches.meta.txt"))}

    def _check(self, arrays):
        check_image_arrays(arrays, IMAGE_SHAPE, 10, name=type(self).__name__)

    def _set_targets(self, arrays):
        self.targets = arrays["labels"]
        self.classes = [str(name) for name in arrays["classes"]]


class CIFAR100(_CIFAR):
    """CIFAR-100: 50,000 training and 10,000 test images in 100 fine classes (20 coarse superclasses).

    ``label_type="fine"`` (default) or ``"coarse"`` chooses which label is the target;
    both are kept as ``fine_targets`` and ``coarse_targets``.
    """

    filename = "cifar-100-binary.tar.gz"
    url = BASE_URL + filename
    md5 = "03b5dce01913d631647c71ecec9e9cb8"
    cache_prefix = "cifar-100"
    folder = "cifar-100-binary"
    label_types = ("fine", "coarse")

    def __init__(self, root="data", train=True, download=True, label_type="fine"):
        if label_type not in self.label_types:
            raise ValueError(f"CIFAR100: unknown label_type {label_type!r}; valid values are 'fine' and 'coarse'")
        self.label_type = label_type
        super().__init__(root, train, download)

    def _decode(self, tar):
        labels, images = _read_records(tar, f"{self.folder}/{'train' if self.train else 'test'}.bin", label_bytes=2)
        return {"images": images,
                "coarse_labels": labels[:, 0].astype(np.int64),
                "fine_labels": labels[:, 1].astype(np.int64),
                "coarse_classes": np.array(_read_names(tar, f"{self.folder}/coarse_label_names.txt")),
                "fine_classes": np.array(_read_names(tar, f"{self.folder}/fine_label_names.txt"))}

    def _check(self, arrays):
        check_image_arrays(arrays, IMAGE_SHAPE, {"coarse_labels": 20, "fine_labels": 100},
                           labels=("coarse_labels", "fine_labels"),
                           name=type(self).__name__)

    def _set_targets(self, arrays):
        self.coarse_targets, self.fine_targets = arrays["coarse_labels"], arrays["fine_labels"]
        self.coarse_classes = [str(name) for name in arrays["coarse_classes"]]
        self.fine_classes = [str(name) for name in arrays["fine_classes"]]
        fine = self.label_type == "fine"
        self.targets = self.fine_targets if fine else self.coarse_targets
        self.classes = self.fine_classes if fine else self.coarse_classes
