"""``minidl.data``: datasets (CIFAR-10/100, MNIST, Fashion-MNIST, FakeData, arrays in memory),
seeded splits, batch transforms and the ``DataLoader``.

    from minidl.data import CIFAR10, DataLoader, train_val_split, transforms as T
    train_set, val_set = train_val_split(CIFAR10("data", train=True), val_fraction=0.1, seed=0)
    loader = DataLoader(train_set, batch_size=128, shuffle=True, seed=0,
                        transform=T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip()]))
    for images, labels in loader:  # float32 (N, 3, 32, 32) in [0, 1], int64 (N,)
        ...
"""
from . import transforms
from .cifar import CIFAR10, CIFAR100
from .dataloader import DataLoader
from .dataset import (ArrayDataset, Dataset, InMemoryDataset, Subset, TensorDataset, random_split, random_subset,
                      train_val_split)
from .download import ChecksumError, DatasetNotFoundError, download_url
from .fake import FakeData
from .mnist import MNIST, FashionMNIST
from .sampler import DistributedSampler

__all__ = ["ArrayDataset", "CIFAR10", "CIFAR100", "ChecksumError", "DataLoader", "Dataset", "DatasetNotFoundError",
           "DistributedSampler", "FakeData", "FashionMNIST", "MNIST", "Subset", "TensorDataset", "download_url",
           "random_split", "random_subset", "train_val_split", "transforms"]
