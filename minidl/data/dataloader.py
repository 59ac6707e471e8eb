"""``DataLoader``: batches of (images, labels) Tensors, shuffled and augmented reproducibly.

Each batch is gathered from the dataset with one fancy index (``dataset.get_batch``),
scaled from uint8 to float32 in [0, 1], moved to ``device``, passed through the batch
``transform``, and wrapped as Tensors.  A background thread prepares the next
``prefetch`` batches while the model works on the current one.

Determinism.  All randomness of an epoch (the shuffle order and every augmentation) is
drawn from a NumPy generator seeded with ``(seed, epoch)``, created for that epoch only.
So epoch 7 is the same whether the run went straight through or resumed from a
checkpoint after epoch 6, and the prefetch thread never touches minidl's global
generator (which dropout uses in the main thread at the same time).  With
``seed=None`` one seed is drawn from minidl's generator when the loader is created.
"""
import queue
import threading

import numpy as np

from .. import random as minidl_random
from ..backend import device as Device, move_array
from ..tensor import Tensor


class DataLoader:
    """Iterates over ``dataset`` in batches of ``batch_size``.

    Arguments:
        shuffle: a new random order every epoch (from the epoch's generator).
        drop_last: leave out a last batch smaller than ``batch_size``.
        transform: a batch transform (``minidl.data.transforms``) applied to the float images.
        seed: seeds every epoch's generator together with the epoch number.
        prefetch: how many batches a background thread prepares ahead (0: none, no thread).
        device: move each batch there before the transform (e.g. "cuda" to augment on the GPU).
        sampler: the indices of each epoch instead of the loader's own order (e.g. this process's
            share, ``DistributedSampler``); the loader sets its epoch (``sampler.set_epoch``)
            before each iteration. Exclusive with ``shuffle``. With a sampler of several
            replicas, each process's augmentations come from ``(seed, epoch, rank)``.

    ``len(loader)`` is the number of batches per epoch.  Each ``iter()`` runs the epoch set
    by ``set_epoch`` (or the one after the previous iteration), then advances to the next.
    """

    def __init__(self, dataset, batch_size=1, shuffle=False, drop_last=False, transform=None, seed=None,
                 prefetch=2, device=None, sampler=None, num_workers=0, pin_memory=False):
        # num_workers and pin_memory are PyTorch's; accepted so its loops run, and unused: batches are
        # one fancy index each, prepared by the prefetch thread.
        if sampler is not None and shuffle:
            raise ValueError("DataLoader: sampler option is mutually exclusive with shuffle")
        if batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be at least 1, got {batch_size}")
        if prefetch < 0:
            raise ValueError(f"DataLoader: prefetch must be non-negative, got {prefetch}")
        self.dataset, self.batch_size = dataset, int(batch_size)
        self.shuffle, self.drop_last = bool(shuffle), bool(drop_last)
        self.transform, self.prefetch = transform, int(prefetch)
        self.device = Device(device) if device is not None else None
        self.seed = int(seed) if seed is not None else int(minidl_random.generator().integers(2**63))
        self.sampler = sampler
        self.epoch = 0  # the epoch the next iteration runs

    def __len__(self):
        full, rest = divmod(len(self.dataset) if self.sampler is None else len(self.sampler), self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)

    def set_epoch(self, epoch):
        """Makes the next iteration run epoch ``epoch`` (its order and augmentations)."""
        self.epoch = int(epoch)

    def state_dict(self):
        return {"seed": self.seed, "epoch": self.epoch}

    def load_state_dict(self, state):
        self.seed, self.epoch = int(state["seed"]), int(state["epoch"])

    def epoch_generator(self, epoch):
        """The generator all of ``epoch``'s randomness comes from."""
        if getattr(self.sampler, "num_replicas", 1) > 1:  # each process its own augmentations
            return np.random.default_rng([self.seed, epoch, self.sampler.rank])
        return np.random.default_rng([self.seed, epoch])

    def batch_indices(self, generator):
        """The index arrays of one epoch's batches (the first draw of the epoch is the shuffle)."""
        if self.sampler is not None:
            order = np.fromiter(iter(self.sampler), dtype=np.int64)
        else:
            n = len(self.dataset)
            order = generator.permutation(n) if self.shuffle else np.arange(n)
        return [order[start:start + self.batch_size] for start in range(0, len(self) * self.batch_size,
                                                                          self.batch_size)]

    def __iter__(self):
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(self.epoch)
        generator = self.epoch_generator(self.epoch)
        self.epoch += 1
        batches = (self._make_batch(indices, generator) for indices in self.batch_indices(generator))
        if self.prefetch == 0:
            return batches
        return _prefetched(batches, self.prefetch)

    def _make_batch(self, indices, generator):
        batch = self.dataset.get_batch(indices)
        if any(isinstance(part, Tensor) for part in batch):  # a TensorDataset: its tensors as they are
            return [Tensor._from_array(move_array(part.array, self.device)) if self.device else part for part in batch]
        images, targets = batch
        images, targets = _as_float_images(np.asarray(images)), np.asarray(targets)
        if targets.dtype.kind in "iub":
            targets = targets.astype(np.int64, copy=False)
        if self.device is not None:
            images, targets = move_array(images, self.device), move_array(targets, self.device)
        if self.transform is not None:
            images = self.transform(images, generator)
        return Tensor._from_array(images), Tensor._from_array(targets)

    def __repr__(self):
        return (f"DataLoader(batches={len(self)}, batch_size={self.batch_size}, shuffle={self.shuffle}, "
                f"drop_last={self.drop_last}, seed={self.seed}, epoch={self.epoch})")


def _as_float_images(images):
    """uint8 images become float32 in [0, 1]; floating images stay as they are; other ints are cast."""
    if images.dtype == np.uint8:
        return images.astype(np.float32) / np.float32(255)  # as torchvision's ToTensor
    if images.dtype.kind == "f":
        return images
    return images.astype(np.float32)


_DONE = object()


def _prefetched(batches, depth):
    """Yields the items of ``batches``, computed ``depth`` ahead by a background thread.

    An exception in the thread is re-raised in the consumer; a consumer that stops early
    (``break``) makes the thread stop at its next item.
    """
    ready = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce():
        try:
            for item in batches:
                if not _put(ready, (item, None), stop):
                    return
        except BaseException as error:  # handed to the consumer, which re-raises it
            _put(ready, (None, error), stop)
            return
        _put(ready, (_DONE, None), stop)

    worker = threading.Thread(target=produce, name="minidl-DataLoader-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item, error = ready.get()
            if error is not None:
                raise error
            if item is _DONE:
                return
            yield item
    finally:
        stop.set()
        worker.join()


def _put(ready, item, stop):
    """Puts ``item`` unless ``stop`` is set first; returns whether it was put."""
    while not stop.is_set():
        try:
            ready.put(item, timeout=0.05)
            return True
        except queue.Full:
            continue
    return False
