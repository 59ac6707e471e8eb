"""The gradient all-reduce of DistributedDataParallel: buckets that start communicating while
backward still runs.

Parameters are grouped, in the reverse of their registration order (roughly the order backward
produces their gradients), into buckets of one dtype and device of at most ``bucket_cap_bytes``
(the first one smaller, so that communication starts early). Each parameter has a
post-accumulate-grad hook: when a bucket's last gradient is in, its gradients are flattened
into one array, divided by the world size and all-reduced (summed) without waiting. Buckets
start strictly in order, so that every process issues the same collectives in the same order.
When the last bucket has started, the reducer waits for all of them and gives each parameter
its averaged gradient (a view of its bucket's array).
"""
import numpy as np

from ...backend import get_array_module
from ...distributed import ReduceOp
from ...tensor import Tensor

FIRST_BUCKET_BYTES = 1024 * 1024  # as PyTorch's DDP: a small first bucket starts communication early


class Bucket:
    def __init__(self, params):
        self.params = params
        self.pending = len(params)  # gradients not yet in during this backward
        self.flat = self.work = None


def make_buckets(params, bucket_cap_bytes, first_bucket_bytes=FIRST_BUCKET_BYTES):
    """Lists of parameters: reverse registration order, one dtype and device per bucket."""
    buckets, open_buckets = [], {}  # (dtype, device) -> [params, bytes] being filled
    for param in reversed(params):
        key = (param.dtype, param.device)
        current = open_buckets.setdefault(key, [[], 0])
        current[0].append(param)
        current[1] += param.array.nbytes
        cap = min(first_bucket_bytes, bucket_cap_bytes) if not buckets else bucket_cap_bytes
        if current[1] >= cap:
            buckets.append(current[0])
            del open_buckets[key]
    buckets.extend(bucket for bucket, _ in open_buckets.values() if bucket)
    return buckets


class Reducer:
    def __init__(self, named_params, group, bucket_cap_bytes, find_unused_parameters=False):
        self.names = {id(p): name for name, p in named_params}
        self.params, self.group = [p for _, p in named_params], group
        params = self.params
        self.find_unused_parameters = find_unused_parameters
        self.buckets = [Bucket(bucket) for bucket in make_buckets(params, bucket_cap_bytes)]
        self.bucket_of = {id(p): index for index, bucket in enumerate(self.buckets) for p in bucket.params}
        self.index_of = {id(p): index for index, p in enumerate(params)}
        self.handles = [p.register_post_accumulate_grad_hook(self._grad_ready) for p in params]
        self.expecting = False  # a forward that needs synchronised gradients ran; its backward has not
        self.unused = []

    # ------------------------------------------------------------------ each iteration
    def prepare(self, unused=()):
        """Called by a forward that will synchronise: arms every bucket for the coming backward."""
        if self.expecting and any(b.pending < len(b.params) for b in self.buckets):
            missing = [self.names[id(p)] for p in self.params if id(p) not in self.ready]
            raise RuntimeError(
                "Expected to have finished reduction in the prior iteration before starting a new one: some "
                "parameters received no gradient in the last backward" +
                (f" ({', '.join(missing[:8])}{', ...' if len(missing) > 8 else ''})" if missing else "") +
                ". Make sure all forward outputs take part in the loss, or pass find_unused_parameters=True "
                "to DistributedDataParallel.")
        for bucket in self.buckets:
            bucket.pending, bucket.flat, bucket.work = len(bucket.params), None, None
        self.ready, self.next_bucket, self.used_work = set(), 0, None
        self.unused = list(unused)
        self.expecting = True

    def _grad_ready(self, param):
        if not self.expecting:  # the forward ran under no_sync() (or this backward follows no DDP forward,
            return              # which PyTorch ignores too): the gradients stay local
        if self.unused:  # parameters the forward did not reach: their (zero) share is ready at once
            unused, self.unused = self.unused, []
            for other in unused:
                self._mark_ready(other)
        self._mark_ready(param)

    def _mark_ready(self, param):
        if id(param) in self.ready:
            raise RuntimeError(f"DistributedDataParallel: parameter {self.names[id(param)]} was marked ready twice "
                               "in one backward")
        self.ready.add(id(param))
        self.buckets[self.bucket_of[id(param)]].pending -= 1
        while self.next_bucket < len(self.buckets) and self.buckets[self.next_bucket].pending == 0:
            self._start(self.buckets[self.next_bucket])
            self.next_bucket += 1
        self.group.progress()
        if self.next_bucket == len(self.buckets):
            self._finish()

    def _start(self, bucket):
        first = bucket.params[0].array
        xp = get_array_module(first)
        parts = [p.grad.array.reshape(-1) if id(p) in self.ready and p.grad is not None
                 else xp.zeros(p.array.size, dtype=p.dtype) for p in bucket.params]
        bucket.flat = xp.concatenate(parts)
        bucket.flat *= bucket.flat.dtype.type(1.0 / self.group.world_size)  # the mean, from the sum
        bucket.work = self.group.all_reduce(bucket.flat, ReduceOp.SUM)
        if bucket is self.buckets[-1] and self.find_unused_parameters:
            self.used = xp.zeros(len(self.params), dtype=np.int32)
            self.used[[self.index_of[id(p)] for p in self.params if p.grad is not None]] = 1
            self.used_work = self.group.all_reduce(self.used, ReduceOp.MAX)

    def _finish(self):
        """Waits for every bucket and hands each parameter its averaged gradient."""
        self.expecting = False
        if self.used_work is not None:
            self.used_work.wait()
            used_anywhere = {id(p) for p, flag in zip(self.params, get_host(self.used)) if flag}
        for bucket in self.buckets:
            bucket.work.wait()
            offset = 0
            for param in bucket.params:
                size = param.array.size
                if self.used_work is None or id(param) in used_anywhere:
                    param.grad = Tensor._from_array(bucket.flat[offset:offset + size].reshape(param.shape))
                offset += size
            bucket.flat = bucket.work = None

    def remove_hooks(self):
        for handle in self.handles:
            handle.remove()


def get_host(array):
    return array.get() if hasattr(array, "get") else array
