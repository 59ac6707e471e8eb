"""MNIST and Fashion-MNIST from their gzipped IDX files.

An IDX file is a 4-byte magic number ``00 00 <type> <ndim>`` (2051 = 0x00000803 for a
uint8 3-D image file, 2049 = 0x00000801 for a uint8 1-D label file), then ``ndim``
big-endian uint32 sizes, then the values in row-major order.

Files are looked for in ``root``; Fashion-MNIST then falls back to the files Debian's
``dataset-fashion-mnist`` package installs under ``/usr/share/datasets/fashion-mnist/``,
and finally both download from the upstream mirrors.  Debian recompressed its files, so
their ``.gz`` bytes differ from upstream's: a file is accepted when either the ``.gz``
has the published md5 or its decompressed content has the md5 of the official IDX data.
"""
import gzip
import os

import numpy as np

from .dataset import InMemoryDataset, cached_arrays, check_image_arrays
from .download import ChecksumError, file_digest, fetch

IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
IMAGES_MAGIC, LABELS_MAGIC = 2051, 2049


def parse_idx(raw, expected_magic=None, name="IDX data"):
    """The array stored in IDX bytes ``raw`` (already decompressed), with its header checked."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_DTYPES:
        raise ValueError(f"{name}: not an IDX file (first bytes {bytes(raw[:4]).hex()})")
    magic = int.from_bytes(raw[:4], "big")
    if expected_magic is not None and magic != expected_magic:
        raise ValueError(f"{name}: IDX magic number {magic} (0x{magic:08x}), expected {expected_magic} "
                         f"(0x{expected_magic:08x})")
    dtype, ndim = np.dtype(IDX_DTYPES[raw[2]]), raw[3]
    header = 4 + 4 * ndim
    shape = tuple(int(n) for n in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected_bytes = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected_bytes:
        raise ValueError(f"{name}: header says shape {shape} ({expected_bytes} bytes of data) but the file "
                         f"holds {len(raw) - header} bytes after its {header}-byte header")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def read_idx_gz(path, expected_magic=None):
    with gzip.open(path, "rb") as file:
        return parse_idx(file.read(), expected_magic, name=path)


class _MNISTBase(InMemoryDataset):
    """Shared machinery; subclasses list their files and checksums."""

    mirrors = ()
    gz_md5 = {}  # file name -> md5 of the upstream .gz file
    raw_md5 = {}  # file name -> md5 of the decompressed IDX content (accepts recompressed copies)
    fallback_dirs = ()
    cache_prefix = None
    classes = []

    def __init__(self, root="data", train=True, download=True):
        self.root, self.train = os.fspath(root), bool(train)
        prefix = "train" if self.train else "t10k"
        cache_path = os.path.join(self.root, f"{self.cache_prefix}-{'train' if self.train else 'test'}.npz")
        arrays = cached_arrays(cache_path, lambda: self._read_idx(prefix, download), self._check)
        self.images, self.targets = arrays["images"], arrays["labels"]

    def _check(self, arrays):
        check_image_arrays(arrays, (1, 28, 28), 10, name=type(self).__name__)

    def _read_idx(self, prefix, download):
        images = read_idx_gz(self._locate(f"{prefix}-images-idx3-ubyte.gz", download), IMAGES_MAGIC)
        labels = read_idx_gz(self._locate(f"{prefix}-labels-idx1-ubyte.gz", download), LABELS_MAGIC)
        if len(images) != len(labels):
            raise ValueError(f"{type(self).__name__}: {len(images)} images but {len(labels)} labels")
        return {"images": images[:, None], "labels": labels.astype(np.int64)}

    def _locate(self, filename, download):
        """Path of a verified copy of ``filename``: in root, in a fallback folder, or downloaded."""
        for folder in (self.root, *self.fallback_dirs):
            path = os.path.join(folder, filename)
            if os.path.exists(path):
                self._verify(path, filename)
                return path
        return fetch(self.mirrors[0] + filename, self.root, filename, md5=self.gz_md5.get(filename),
                     download=download)

    def _verify(self, path, filename):
        if self.gz_md5.get(filename) in (None, file_digest(path, "md5")):
            return
        expected_raw = self.raw_md5.get(filename)
        if expected_raw is not None and file_digest(path, "md5", opener=gzip.open) == expected_raw:
            return  # a recompressed copy of the official content (e.g. Debian's)
        raise ChecksumError(
            f"{path} matches neither the published md5 of {filename} ({self.gz_md5[filename]})"
            + (f" nor the md5 of its decompressed content ({expected_raw})" if expected_raw else "")
            + ". Delete it (it is corrupt or a different version) and fetch it again.")

    def __repr__(self):
        return (f"{type(self).__name__}(split={'train' if self.train else 'test'}, size={len(self)}, "
                f"root={self.root!r})")


class MNIST(_MNISTBase):
    """MNIST handwritten digits: 60,000 training and 10,000 test images, uint8 (N, 1, 28, 28)."""

    mirrors = ("https://ossci-datasets.s3.amazonaws.com/mnist/",)
    gz_md5 = {"train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
              "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
              "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
              "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c"}
    cache_prefix = "mnist"
    classes = ["0 - zero", "1 - one", "2 - two", "3 - three", "4 - four", "5 - five", "6 - six", "7 - seven",
               "8 - eight", "9 - nine"]


DEBIAN_FASHION_MNIST = "/usr/share/datasets/fashion-mnist"


class FashionMNIST(_MNISTBase):
    """Zalando's Fashion-MNIST: 60,000 training and 10,000 test clothing images, uint8 (N, 1, 28, 28).

    With nothing in ``root``, the files of Debian's ``dataset-fashion-mnist`` package
    (``apt-get install dataset-fashion-mnist``) are used, so the real data works offline.
    """

    mirrors = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)
    gz_md5 = {"train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
              "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
              "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
              "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310"}
    # md5 of the decompressed IDX files, computed from Debian's dataset-fashion-mnist
    # 0.0~git20200523.55506a9-1 (whose .gz files are recompressed).
    raw_md5 = {"train-images-idx3-ubyte.gz": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
               "train-labels-idx1-ubyte.gz": "9018921c3c673c538a1fc5bad174d6f9",
               "t10k-images-idx3-ubyte.gz": "8181f5470baa50b63fa0f6fddb340f0a",
               "t10k-labels-idx1-ubyte.gz": "15d484375f8d13e6eb1aabb0c3f46965"}
    fallback_dirs = (DEBIAN_FASHION_MNIST,)
    cache_prefix = "fashion-mnist"
    classes = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
               "Ankle boot"]
