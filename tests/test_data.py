"""Datasets: CIFAR and (Fashion-)MNIST read from small archives built here in the official
formats, checksums, the offline message, caching, splits, FakeData, and Debian's real
Fashion-MNIST when the package is installed."""
import gzip
import hashlib
import io
import os
import tarfile
import urllib.error
import urllib.request

import numpy as np
import pytest

from minidl.data import (CIFAR10, CIFAR100, ArrayDataset, ChecksumError, DatasetNotFoundError, FakeData,
                         FashionMNIST, MNIST, Subset, random_split, random_subset, train_val_split)
from minidl.data import mnist as mnist_module
from minidl.data.mnist import parse_idx


def md5_of(path):
    return hashlib.md5(open(path, "rb").read()).hexdigest()


# ---------------------------------------------------------------------------- CIFAR archives
def cifar_records(rng, count, label_bytes, label_high):
    """Random records in the binary layout: label byte(s), then 3072 pixel bytes (R, G, B planes)."""
    labels = rng.integers(0, label_high, (count, label_bytes), dtype=np.uint8)
    images = rng.integers(0, 256, (count, 3, 32, 32), dtype=np.uint8)
    raw = np.concatenate([labels, images.reshape(count, -1)], axis=1).tobytes()
    return raw, labels.astype(np.int64), images


def add_member(tar, name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def make_cifar10_archive(folder, seed=0):
    """A cifar-10-binary.tar.gz with 3 records per training batch and 4 test records."""
    rng = np.random.default_rng(seed)
    expected = {"train": [], "test": []}
    path = os.path.join(folder, "cifar-10-binary.tar.gz")
    with tarfile.open(path, "w:gz") as tar:
        add_member(tar, "cifar-10-batches-bin/batches.meta.txt", ("\n".join(CIFAR10_NAMES) + "\n\n").encode())
        for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
            raw, labels, images = cifar_records(rng, 4 if name.startswith("test") else 3, 1, 10)
            add_member(tar, f"cifar-10-batches-bin/{name}", raw)
            expected["test" if name.startswith("test") else "train"].append((labels[:, 0], images))
        add_member(tar, "cifar-10-batches-bin/readme.html", b"<html></html>")
    return path, {split: (np.concatenate([l for l, _ in parts]), np.concatenate([i for _, i in parts]))
                  for split, parts in expected.items()}


def make_cifar100_archive(folder, seed=0):
    rng = np.random.default_rng(seed)
    path = os.path.join(folder, "cifar-100-binary.tar.gz")
    expected = {}
    with tarfile.open(path, "w:gz") as tar:
        add_member(tar, "cifar-100-binary/coarse_label_names.txt",
                   "\n".join(f"coarse{i}" for i in range(20)).encode())
        add_member(tar, "cifar-100-binary/fine_label_names.txt", "\n".join(f"fine{i}" for i in range(100)).encode())
        for split, count in (("train", 5), ("test", 3)):
            raw, labels, images = cifar_records(rng, count, 2, 20)
            add_member(tar, f"cifar-100-binary/{split}.bin", raw)
            expected[split] = (labels, images)
    return path, expected


@pytest.fixture
def cifar10_root(tmp_path, monkeypatch):
    path, expected = make_cifar10_archive(tmp_path)
    monkeypatch.setattr(CIFAR10, "md5", md5_of(path))
    return tmp_path, expected


def test_cifar10_reads_the_binary_records_exactly(cifar10_root):
    root, expected = cifar10_root
    for train, split in ((True, "train"), (False, "test")):
        dataset = CIFAR10(root, train=train, download=False)
        labels, images = expected[split]
        assert dataset.images.dtype == np.uint8 and dataset.images.shape == (len(labels), 3, 32, 32)
        np.testing.assert_array_equal(dataset.images, images)
        assert dataset.targets.dtype == np.int64
        np.testing.assert_array_equal(dataset.targets, labels)
        assert dataset.classes == CIFAR10_NAMES
        image, label = dataset[1]
        np.testing.assert_array_equal(image, images[1])
        assert label == labels[1]
    assert len(CIFAR10(root, train=True, download=False)) == 15


def test_cifar10_second_start_uses_the_cache(cifar10_root):
    root, expected = cifar10_root
    first = CIFAR10(root, train=True, download=False)
    assert os.path.exists(root / "cifar-10-train.npz")
    os.remove(root / "cifar-10-binary.tar.gz")  # only the cache is left
    second = CIFAR10(root, train=True, download=False)
    np.testing.assert_array_equal(second.images, first.images)
    np.testing.assert_array_equal(second.targets, expected["train"][0])
    assert second.classes == CIFAR10_NAMES


def test_cifar100_fine_and_coarse_labels(tmp_path, monkeypatch):
    path, expected = make_cifar100_archive(tmp_path)
    monkeypatch.setattr(CIFAR100, "md5", md5_of(path))
    for train, split in ((True, "train"), (False, "test")):
        labels, images = expected[split]
        fine = CIFAR100(tmp_path, train=train, download=False)
        coarse = CIFAR100(tmp_path, train=train, download=False, label_type="coarse")
        np.testing.assert_array_equal(fine.images, images)
        np.testing.assert_array_equal(fine.targets, labels[:, 1])
        np.testing.assert_array_equal(coarse.targets, labels[:, 0])
        assert fine.classes[7] == "fine7" and len(fine.classes) == 100
        assert coarse.classes[3] == "coarse3" and len(coarse.classes) == 20
    with pytest.raises(ValueError, match="'fine' and 'coarse'"):
        CIFAR100(tmp_path, label_type="medium")


def test_wrong_checksum_is_refused(tmp_path):
    make_cifar10_archive(tmp_path)  # the real md5 of the official archive cannot match this one
    with pytest.raises(ChecksumError, match="md5 checksum mismatch.*c32a1d4ab5d03f1284b67883e8d87530"):
        CIFAR10(tmp_path, download=False)
    assert not os.path.exists(tmp_path / "cifar-10-train.npz")


def test_missing_archive_offline_names_file_url_and_folder(tmp_path, monkeypatch):
    root = tmp_path / "cifar"
    with pytest.raises(DatasetNotFoundError) as info:
        CIFAR10(root, download=False)
    for part in ("cifar-10-binary.tar.gz", "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz", str(root)):
        assert part in str(info.value)

    def offline(*args, **kwargs):
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(DatasetNotFoundError) as info:
        CIFAR100(root, download=True)
    message = str(info.value)
    assert "cifar-100-binary.tar.gz" in message and str(root) in message and "name resolution" in message
    assert "https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz" in message
    assert os.listdir(root) == []  # no partial file left behind


class FakeResponse(io.BytesIO):
    def __init__(self, data):
        super().__init__(data)
        self.headers = {"Content-Length": str(len(data))}


def serve(monkeypatch, data, urls):
    def urlopen(url, timeout=None):
        urls.append(url)
        return FakeResponse(data)
    monkeypatch.setattr(urllib.request, "urlopen", urlopen)


def test_download_verifies_and_reads(tmp_path, monkeypatch):
    archive, expected = make_cifar10_archive(tmp_path)
    data = open(archive, "rb").read()
    monkeypatch.setattr(CIFAR10, "md5", hashlib.md5(data).hexdigest())
    urls = []
    serve(monkeypatch, data, urls)
    dataset = CIFAR10(tmp_path / "fresh", train=False, download=True)
    assert urls == ["https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"]
    np.testing.assert_array_equal(dataset.images, expected["test"][1])
    assert sorted(os.listdir(tmp_path / "fresh")) == ["cifar-10-binary.tar.gz", "cifar-10-test.npz"]


def test_corrupt_download_is_removed(tmp_path, monkeypatch):
    archive, _ = make_cifar10_archive(tmp_path)
    data = bytearray(open(archive, "rb").read())
    monkeypatch.setattr(CIFAR10, "md5", hashlib.md5(bytes(data)).hexdigest())
    data[100] ^= 0xFF  # one flipped byte in transit
    serve(monkeypatch, bytes(data), [])
    with pytest.raises(ChecksumError, match="removed"):
        CIFAR10(tmp_path / "fresh", download=True)
    assert os.listdir(tmp_path / "fresh") == []


# ---------------------------------------------------------------------------- IDX files
def idx_bytes(array, magic):
    header = magic.to_bytes(4, "big") + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return header + array.astype(">u1").tobytes()


def write_mnist_files(folder, rng, counts=(7, 5), level=9):
    expected = {}
    for prefix, count in zip(("train", "t10k"), counts):
        images = rng.integers(0, 256, (count, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, count, dtype=np.uint8)
        for kind, array, magic in (("images-idx3", images, 2051), ("labels-idx1", labels, 2049)):
            with gzip.open(os.path.join(folder, f"{prefix}-{kind}-ubyte.gz"), "wb", compresslevel=level) as file:
                file.write(idx_bytes(array, magic))
        expected[prefix] = (images, labels)
    return expected


def raw_md5s(folder):
    return {name: hashlib.md5(gzip.open(os.path.join(folder, name)).read()).hexdigest()
            for name in os.listdir(folder) if name.endswith(".gz")}


def gz_md5s(folder):
    return {name: md5_of(os.path.join(folder, name)) for name in os.listdir(folder) if name.endswith(".gz")}


def test_parse_idx_checks_magic_and_length():
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    np.testing.assert_array_equal(parse_idx(idx_bytes(array, 2051), 2051), array)
    big_endian = np.array([1, -2, 300], dtype=">i4")
    raw = bytes([0, 0, 0x0C, 1]) + (3).to_bytes(4, "big") + big_endian.tobytes()
    np.testing.assert_array_equal(parse_idx(raw), [1, -2, 300])
    with pytest.raises(ValueError, match="magic number 2051.*expected 2049"):
        parse_idx(idx_bytes(array, 2051), 2049)
    with pytest.raises(ValueError, match="24 bytes of data.*23 bytes"):
        parse_idx(idx_bytes(array, 2051)[:-1], 2051)
    with pytest.raises(ValueError, match="not an IDX file"):
        parse_idx(b"\x1f\x8b\x08\x00junk")


def test_mnist_reads_idx_files_exactly(tmp_path, monkeypatch):
    expected = write_mnist_files(tmp_path, np.random.default_rng(0))
    monkeypatch.setattr(MNIST, "gz_md5", gz_md5s(tmp_path))
    for train, prefix in ((True, "train"), (False, "t10k")):
        dataset = MNIST(tmp_path, train=train, download=False)
        images, labels = expected[prefix]
        assert dataset.images.shape == (len(labels), 1, 28, 28) and dataset.images.dtype == np.uint8
        np.testing.assert_array_equal(dataset.images[:, 0], images)
        np.testing.assert_array_equal(dataset.targets, labels)
        assert dataset.targets.dtype == np.int64
    for name in os.listdir(tmp_path):
        if name.endswith(".gz"):
            os.remove(tmp_path / name)
    np.testing.assert_array_equal(MNIST(tmp_path, train=True, download=False).targets, expected["train"][1])


def test_mnist_wrong_checksum_is_refused(tmp_path):
    write_mnist_files(tmp_path, np.random.default_rng(0))
    with pytest.raises(ChecksumError, match="train-images-idx3-ubyte.gz"):
        MNIST(tmp_path, download=False)


def test_fashion_mnist_accepts_recompressed_files_by_their_content(tmp_path, monkeypatch):
    official, recompressed = tmp_path / "official", tmp_path / "debian"
    official.mkdir(), recompressed.mkdir()
    expected = write_mnist_files(official, np.random.default_rng(1), level=9)
    write_mnist_files(recompressed, np.random.default_rng(1), level=1)
    assert gz_md5s(official) != gz_md5s(recompressed) and raw_md5s(official) == raw_md5s(recompressed)
    monkeypatch.setattr(FashionMNIST, "gz_md5", gz_md5s(official))
    monkeypatch.setattr(FashionMNIST, "raw_md5", raw_md5s(official))
    monkeypatch.setattr(FashionMNIST, "fallback_dirs", (str(recompressed),))
    dataset = FashionMNIST(tmp_path / "empty", train=False, download=False)  # root holds nothing
    np.testing.assert_array_equal(dataset.images[:, 0], expected["t10k"][0])
    monkeypatch.setattr(FashionMNIST, "raw_md5", {})
    with pytest.raises(ChecksumError, match="t10k-images"):
        FashionMNIST(tmp_path / "empty2", train=False, download=False)


def test_fashion_mnist_missing_everywhere(tmp_path, monkeypatch):
    monkeypatch.setattr(FashionMNIST, "fallback_dirs", ())
    with pytest.raises(DatasetNotFoundError) as info:
        FashionMNIST(tmp_path, download=False)
    message = str(info.value)
    assert "train-images-idx3-ubyte.gz" in message and str(tmp_path) in message
    assert "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/train-images-idx3-ubyte.gz" in message


@pytest.mark.skipif(not os.path.isdir(mnist_module.DEBIAN_FASHION_MNIST),
                    reason="Debian's dataset-fashion-mnist is not installed (apt-get install dataset-fashion-mnist)")
def test_fashion_mnist_from_the_debian_package(tmp_path):
    test_set = FashionMNIST(tmp_path, train=False, download=False)
    assert test_set.images.shape == (10000, 1, 28, 28) and test_set.images.dtype == np.uint8
    np.testing.assert_array_equal(np.bincount(test_set.targets), [1000] * 10)
    assert test_set.classes[9] == "Ankle boot"
    assert 60 < test_set.images.mean() < 90  # mostly dark background, as Fashion-MNIST is (mean ~73)
    assert os.path.exists(tmp_path / "fashion-mnist-test.npz")


# ---------------------------------------------------------------------------- splits, FakeData
def test_train_val_split_is_seeded_and_disjoint():
    dataset = ArrayDataset(np.zeros((100, 1, 2, 2), np.uint8), np.arange(100))
    train, val = train_val_split(dataset, val_fraction=0.2, seed=3)
    assert len(train) == 80 and len(val) == 20
    assert sorted(np.concatenate([train.indices, val.indices])) == list(range(100))
    again_train, again_val = train_val_split(dataset, val_size=20, seed=3)
    np.testing.assert_array_equal(val.indices, again_val.indices)
    other_train, other_val = train_val_split(dataset, val_size=20, seed=4)
    assert not np.array_equal(val.indices, other_val.indices)
    np.testing.assert_array_equal(val.targets, val.indices)
    images, targets = val.get_batch(np.array([0, 3]))
    np.testing.assert_array_equal(targets, val.indices[[0, 3]])
    with pytest.raises(ValueError, match="exactly one"):
        train_val_split(dataset)


def test_random_split_lengths_and_fractions():
    dataset = ArrayDataset(np.zeros((10, 1, 1, 1)), np.arange(10))
    parts = random_split(dataset, [0.5, 0.3, 0.2], seed=0)
    assert [len(p) for p in parts] == [5, 3, 2]
    assert sorted(np.concatenate([p.indices for p in parts])) == list(range(10))
    with pytest.raises(ValueError, match="sum to 9"):
        random_split(dataset, [4, 5])


def test_random_subset_is_balanced():
    dataset = FakeData(size=600, num_classes=10, seed=0)
    subset = random_subset(dataset, 100, seed=0)
    assert isinstance(subset, Subset) and len(set(subset.indices)) == 100
    np.testing.assert_array_equal(np.bincount(subset.targets, minlength=10), [10] * 10)


def test_fake_data_is_deterministic_and_learnable():
    first, second = FakeData(size=200, seed=5), FakeData(size=200, seed=5)
    np.testing.assert_array_equal(first.images, second.images)
    np.testing.assert_array_equal(first.targets, second.targets)
    assert first.images.shape == (200, 3, 32, 32) and first.images.dtype == np.uint8
    assert not np.array_equal(FakeData(size=200, seed=6).images, first.images)
    # Nearest class mean from the training set classifies a separate test set almost perfectly.
    test = FakeData(size=200, seed=5, train=False)
    means = np.stack([first.images[first.targets == k].reshape(-1, 3072).mean(0) for k in range(10)])
    distances = ((test.images.reshape(-1, 1, 3072) - means[None]) ** 2).sum(-1)
    assert (distances.argmin(1) == test.targets).mean() > 0.9


def test_download_url_checks_sha256(tmp_path, monkeypatch):
    from minidl.data import download_url
    data = b"some archive bytes" * 1000
    serve(monkeypatch, data, [])
    path = download_url("https://example.org/a.bin", tmp_path, "a.bin", sha256=hashlib.sha256(data).hexdigest(),
                        progress=False)
    assert open(path, "rb").read() == data
    with pytest.raises(ChecksumError, match="sha256 checksum mismatch"):
        download_url("https://example.org/b.bin", tmp_path, "b.bin", sha256="0" * 64, progress=False)
    assert sorted(os.listdir(tmp_path)) == ["a.bin"]


def test_tensor_dataset_subset_random_split_with_pytorchs_signatures():
    import minidl
    from minidl.data import DataLoader, Subset, TensorDataset
    x = minidl.arange(20).reshape(10, 2).float()
    y = minidl.arange(10)
    dataset = TensorDataset(x, y)
    assert len(dataset) == 10
    sample_x, sample_y = dataset[3]
    assert sample_x.tolist() == [6.0, 7.0] and sample_y.item() == 3
    train, val = random_split(dataset, [7, 3], generator=np.random.default_rng(42))
    assert sorted(train.indices.tolist() + val.indices.tolist()) == list(range(10))
    again, _ = random_split(dataset, [0.7, 0.3], generator=np.random.default_rng(42))
    assert again.indices.tolist() == train.indices.tolist()
    subset = Subset(dataset, [4, 1])
    assert [s[1].item() for s in subset[[0, 1]]] == [4, 1]
    batches = list(DataLoader(train, batch_size=4, shuffle=True, num_workers=2, seed=0))
    assert [len(b[1]) for b in batches] == [4, 3]
    seen = np.concatenate([b[1].numpy() for b in batches])
    assert sorted(seen.tolist()) == sorted(train.indices.tolist())
    for batch_x, batch_y in batches:  # rows stay paired, values unscaled, dtypes kept
        assert batch_x.dtype == minidl.float32 and batch_y.dtype == minidl.int64
        np.testing.assert_array_equal(batch_x.numpy(), np.stack([2 * batch_y.numpy(), 2 * batch_y.numpy() + 1], 1))
    with pytest.raises(ValueError, match="size mismatch"):
        TensorDataset(x, minidl.arange(9))
