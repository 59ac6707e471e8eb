"""DataLoader: batch contents and dtypes, drop_last, shuffling that covers every index once,
determinism under a seed (per epoch, across resume), and prefetch equal to no prefetch."""
import threading

import numpy as np
import pytest

import minidl
from minidl.data import ArrayDataset, DataLoader, Dataset, FakeData, Subset, transforms as T


def indexed_dataset(n=23):
    """Image i is filled with the value i, so a batch tells which samples it holds."""
    images = np.broadcast_to(np.arange(n, dtype=np.uint8)[:, None, None, None], (n, 1, 2, 2)).copy()
    return ArrayDataset(images, np.arange(n))


def collect(loader):
    return [(images.numpy(), labels.numpy()) for images, labels in loader]


def test_batches_hold_scaled_float_images_and_int64_labels():
    dataset = indexed_dataset()
    loader = DataLoader(dataset, batch_size=5)
    batches = collect(loader)
    assert len(loader) == len(batches) == 5
    images, labels = batches[0]
    assert images.dtype == np.float32 and images.shape == (5, 1, 2, 2)
    assert labels.dtype == np.int64
    np.testing.assert_array_equal(labels, np.arange(5))
    np.testing.assert_array_equal(images, dataset.images[:5].astype(np.float32) / np.float32(255))
    assert [len(b[1]) for b in batches] == [5, 5, 5, 5, 3]
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), np.arange(23))


def test_drop_last():
    loader = DataLoader(indexed_dataset(23), batch_size=5, drop_last=True)
    assert len(loader) == 4
    assert [len(labels) for _, labels in collect(loader)] == [5, 5, 5, 5]
    assert len(DataLoader(indexed_dataset(20), batch_size=5, drop_last=True)) == 4


def test_shuffle_covers_each_index_once_per_epoch_and_changes_between_epochs():
    loader = DataLoader(indexed_dataset(23), batch_size=4, shuffle=True, seed=0)
    orders = []
    for _ in range(3):
        batches = collect(loader)
        order = np.concatenate([labels for _, labels in batches])
        assert sorted(order) == list(range(23))
        for images, labels in batches:  # images still belong to their labels
            np.testing.assert_array_equal(np.rint(images[:, 0, 0, 0] * 255), labels)
        orders.append(order)
    assert not np.array_equal(orders[0], orders[1]) and not np.array_equal(orders[1], orders[2])


def augmenting_loader(seed, prefetch=2):
    transform = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip()])
    return DataLoader(FakeData(size=40, seed=0), batch_size=16, shuffle=True, transform=transform, seed=seed,
                      prefetch=prefetch)


def assert_same_batches(first, second):
    assert len(first) == len(second)
    for (images_a, labels_a), (images_b, labels_b) in zip(first, second):
        np.testing.assert_array_equal(labels_a, labels_b)
        np.testing.assert_array_equal(images_a, images_b)


def test_same_seed_same_epochs_and_set_epoch_replays():
    first, second = augmenting_loader(5), augmenting_loader(5)
    epochs = [collect(first) for _ in range(2)]
    assert_same_batches(epochs[0], collect(second))
    assert_same_batches(epochs[1], collect(second))
    second.set_epoch(0)
    assert_same_batches(epochs[0], collect(second))
    different = collect(augmenting_loader(6))
    assert not np.array_equal(different[0][1], epochs[0][0][1])


def test_state_dict_resumes_the_next_epoch():
    loader = augmenting_loader(11)
    collect(loader)
    state = loader.state_dict()
    assert state == {"seed": 11, "epoch": 1}
    expected = collect(loader)
    resumed = augmenting_loader(seed=None)
    resumed.load_state_dict(state)
    assert_same_batches(expected, collect(resumed))


def test_seed_none_draws_once_from_minidls_generator_and_never_again():
    minidl.manual_seed(42)
    loader = augmenting_loader(seed=None)
    minidl.manual_seed(42)
    assert augmenting_loader(seed=None).seed == loader.seed
    state_before = minidl.get_rng_state()
    collect(loader)  # shuffling and augmentation leave the global generator alone
    assert minidl.get_rng_state() == state_before


def test_prefetch_gives_the_same_batches_as_no_prefetch():
    assert_same_batches(collect(augmenting_loader(3, prefetch=0)), collect(augmenting_loader(3, prefetch=3)))


def test_prefetch_thread_stops_when_the_consumer_breaks_early():
    loader = DataLoader(FakeData(size=64), batch_size=4, prefetch=2)
    threads_before = threading.active_count()
    for _ in loader:
        break
    assert threading.active_count() == threads_before


class Exploding(Dataset):
    def __len__(self):
        return 8

    def __getitem__(self, index):
        if index == 5:
            raise KeyError("sample 5 is unreadable")
        return np.zeros((1, 2, 2), np.uint8), 0


def test_errors_in_the_prefetch_thread_reach_the_caller():
    loader = DataLoader(Exploding(), batch_size=2, prefetch=2)
    with pytest.raises(KeyError, match="sample 5"):
        collect(loader)


def test_generic_dataset_and_subset_batches():
    subset = Subset(indexed_dataset(10), [9, 2, 4])
    images, labels = collect(DataLoader(subset, batch_size=3))[0]
    np.testing.assert_array_equal(labels, [9, 2, 4])
    float_images = ArrayDataset(np.full((4, 1, 2, 2), 0.25, np.float64), np.zeros(4))
    images, labels = collect(DataLoader(float_images, batch_size=4))[0]
    assert images.dtype == np.float64 and images.max() == 0.25  # floats are used as they are


def test_bad_arguments():
    with pytest.raises(ValueError, match="batch_size"):
        DataLoader(indexed_dataset(), batch_size=0)


@pytest.mark.gpu
def test_device_batches_are_augmented_on_the_gpu_like_on_the_cpu():
    import cupy
    cpu = collect(augmenting_loader(2))
    loader = augmenting_loader(2)
    loader.device = minidl.device("cuda")
    gpu = []
    for images, labels in loader:
        assert isinstance(images.array, cupy.ndarray) and isinstance(labels.array, cupy.ndarray)
        gpu.append((cupy.asnumpy(images.array), cupy.asnumpy(labels.array)))
    assert_same_batches(cpu, gpu)
