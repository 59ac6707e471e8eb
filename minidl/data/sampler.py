"""``DistributedSampler``: each process's share of every epoch's order, as PyTorch's.

Each epoch's order is a permutation drawn from a NumPy generator seeded with ``(seed, epoch)``
(the DataLoader's own rule, so one process with ``DistributedSampler(num_replicas=1)`` sees the
order ``DataLoader(shuffle=True, seed=seed)`` sees). The permutation is padded to a multiple of
the number of processes by repeating its beginning (or cut to one, with ``drop_last``), and
process ``rank`` takes every ``num_replicas``-th index from position ``rank``: the processes'
shares are disjoint apart from the padding, equal in size, and together cover the data set.

    sampler = DistributedSampler(train_set, shuffle=True, seed=0)   # rank and size from minidl.distributed
    loader = DataLoader(train_set, batch_size=64, sampler=sampler)  # the loader sets the sampler's epoch
"""
import math

import numpy as np


class DistributedSampler:
    def __init__(self, dataset, num_replicas=None, rank=None, shuffle=True, seed=0, drop_last=False):
        if num_replicas is None or rank is None:
            from .. import distributed
            if not distributed.is_initialized():
                raise RuntimeError("DistributedSampler: pass num_replicas and rank, or call "
                                   "minidl.distributed.init_process_group() first")
            num_replicas = distributed.get_world_size() if num_replicas is None else num_replicas
            rank = distributed.get_rank() if rank is None else rank
        if not 0 <= rank < num_replicas:
            raise ValueError(f"Invalid rank {rank}, rank should be in the interval [0, {num_replicas - 1}]")
        self.dataset, self.num_replicas, self.rank = dataset, int(num_replicas), int(rank)
        self.shuffle, self.seed, self.drop_last = bool(shuffle), int(seed), bool(drop_last)
        self.epoch = 0
        size = len(dataset)
        if drop_last and size % self.num_replicas:
            self.num_samples = math.ceil((size - self.num_replicas) / self.num_replicas)
        else:
            self.num_samples = math.ceil(size / self.num_replicas)
        self.total_size = self.num_samples * self.num_replicas

    def set_epoch(self, epoch):
        """Makes the next iteration use epoch ``epoch``'s permutation (the DataLoader calls it)."""
        self.epoch = int(epoch)

    def indices(self):
        """This process's indices for the current epoch, as an int64 array."""
        size = len(self.dataset)
        order = np.random.default_rng([self.seed, self.epoch]).permutation(size) if self.shuffle else np.arange(size)
        if self.drop_last:
            order = order[:self.total_size]
        elif self.total_size > size:  # pad with the order's beginning, repeated if it is that short
            order = np.concatenate([order, np.resize(order, self.total_size - size)])
        return order[self.rank:self.total_size:self.num_replicas].astype(np.int64)

    def __iter__(self):
        return iter(self.indices().tolist())

    def __len__(self):
        return self.num_samples

    def __repr__(self):
        return (f"DistributedSampler(num_replicas={self.num_replicas}, rank={self.rank}, shuffle={self.shuffle}, "
                f"seed={self.seed}, drop_last={self.drop_last}, epoch={self.epoch})")
