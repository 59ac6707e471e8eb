"""``DistributedDataParallel``: one model replica per process, each on its share of the batch,
kept identical by averaging gradients over processes during backward (as PyTorch's DDP).

    dist.init_process_group("mpi")
    model = DistributedDataParallel(model)   # rank 0's parameters and buffers everywhere
    loss = loss_fn(model(images), targets)   # this process's share of the batch
    loss.backward()                          # gradients averaged over processes (reducer.py)
    optimizer.step()                         # every process takes the same step

The averaged gradient is the gradient of the mean loss over all processes' samples, so R
processes with batch B each take the step one process takes with batch R*B (except for layers
whose output depends on the batch: BatchNorm normalises by per-process statistics unless
converted with ``SyncBatchNorm.convert_sync_batchnorm``).
"""
import contextlib

import numpy as np

from ... import distributed
from ...autograd import is_grad_enabled
from ...backend import get_array_module
from ...tensor import Tensor
from ..modules.module import Module
from .reducer import Reducer


class DistributedDataParallel(Module):
    """Wraps ``module``; its state_dict keys gain the prefix ``module.`` (as in PyTorch; save
    ``ddp.module.state_dict()`` for a checkpoint that loads without DDP).

    Arguments (PyTorch's names):
        device_ids: None, or the one GPU index this process's module is on (checked).
        broadcast_buffers: copy rank 0's buffers (BatchNorm's running statistics) to every
            process at the start of each forward.
        bucket_cap_mb: the size of a gradient bucket (one all-reduce each).
        find_unused_parameters: let some parameters receive no gradient in a backward (their
            share counts as zero); costs one extra small all-reduce per step.
    """

    def __init__(self, module, device_ids=None, output_device=None, dim=0, broadcast_buffers=True,
                 process_group=None, bucket_cap_mb=25, find_unused_parameters=False, check_reduction=False,
                 gradient_as_bucket_view=False, static_graph=False):
        super().__init__()
        group = distributed.default_group() if process_group is None else _only_default(process_group)
        if dim != 0:
            raise ValueError(f"DistributedDataParallel: only dim=0 (the batch dim) is supported, got {dim}")
        self.module = module
        object.__setattr__(self, "group", group)
        self.broadcast_buffers = broadcast_buffers
        self.find_unused_parameters = find_unused_parameters
        self.require_backward_grad_sync = True
        named = [(name, p) for name, p in module.named_parameters() if p.requires_grad]
        if not named:
            raise RuntimeError("DistributedDataParallel is not needed when a module has no parameter that "
                               "requires a gradient")
        _check_devices(named, device_ids)
        _check_same_model(group, named)
        _broadcast_in_place([p for _, p in module.named_parameters()] + list(module.buffers()), group)
        object.__setattr__(self, "reducer", Reducer(named, group, int(bucket_cap_mb * 1024 * 1024),
                                                    find_unused_parameters))

    def forward(self, *inputs, **kwargs):
        if self.broadcast_buffers and self.group.world_size > 1:
            _broadcast_in_place(list(self.module.buffers()), self.group)
        output = self.module(*inputs, **kwargs)
        if is_grad_enabled() and self.require_backward_grad_sync:
            unused = _unreached(self.reducer.params, output) if self.find_unused_parameters else ()
            self.reducer.prepare(unused)
        return output

    @contextlib.contextmanager
    def no_sync(self):
        """Forwards inside this block make backwards that only accumulate ``.grad`` locally; the
        first backward after a forward outside it all-reduces the accumulated gradients."""
        previous, self.require_backward_grad_sync = self.require_backward_grad_sync, False
        try:
            yield
        finally:
            self.require_backward_grad_sync = previous

    def extra_repr(self):
        return f"world_size={self.group.world_size}, buckets={len(self.reducer.buckets)}"


def _only_default(group):
    raise ValueError("DistributedDataParallel: only the default process group (process_group=None) is supported")


def _check_devices(named, device_ids):
    devices = {p.device for _, p in named}
    if device_ids is None:
        return
    if len(device_ids) != 1 or any(d.type != "cuda" or d.index != int(device_ids[0]) for d in devices):
        raise ValueError(f"DistributedDataParallel: device_ids={list(device_ids)} but the module's parameters "
                         f"are on {sorted(map(str, devices))}; give one GPU index (the one the module is on), "
                         "or None for a CPU module")


def _check_same_model(group, named):
    """Every process must wrap the same architecture: compare parameter counts and sizes first
    (a mismatch would otherwise surface as garbage or a hang inside the first all-reduce)."""
    if group.world_size == 1:
        return
    mine = np.array([len(named), sum(p.numel() for _, p in named)], dtype=np.int64)
    xp = get_array_module(named[0][1].array)
    everyone = xp.zeros((group.world_size, 2), dtype=np.int64)
    group.all_gather(everyone, xp.asarray(mine)).wait()
    everyone = everyone.get() if hasattr(everyone, "get") else everyone
    if not (everyone == mine).all():
        counts = ", ".join(f"rank {r}: {n} tensors, {size} numbers" for r, (n, size) in enumerate(everyone))
        raise RuntimeError(f"DistributedDataParallel: the processes wrap different models ({counts})")


def _broadcast_in_place(tensors, group):
    """Rank 0's values into ``tensors`` on every process, one broadcast per dtype and device."""
    if group.world_size == 1:
        return
    by_kind = {}
    for tensor in tensors:
        by_kind.setdefault((tensor.dtype, tensor.device), []).append(tensor)
    for same_kind in by_kind.values():
        xp = get_array_module(same_kind[0].array)
        flat = xp.concatenate([t.array.reshape(-1) for t in same_kind])
        group.broadcast(flat, 0).wait()
        offset = 0
        for tensor in same_kind:
            tensor.array[...] = flat[offset:offset + tensor.array.size].reshape(tensor.shape)
            offset += tensor.array.size


def _unreached(params, output):
    """The parameters the graph of ``output`` does not reach (find_unused_parameters)."""
    reached, stack, seen = set(), [], set()
    stack.extend(t._ctx for t in _tensors_in(output) if t._ctx is not None)
    while stack:
        fn = stack.pop()
        if id(fn) in seen:
            continue
        seen.add(id(fn))
        for tensor in fn.inputs:
            if isinstance(tensor, Tensor):
                if tensor._ctx is None:
                    reached.add(id(tensor))
                else:
                    stack.append(tensor._ctx)
    return [p for p in params if id(p) not in reached]


def _tensors_in(output):
    if isinstance(output, Tensor):
        yield output
    elif isinstance(output, (list, tuple)):
        for item in output:
            yield from _tensors_in(item)
    elif isinstance(output, dict):
        for item in output.values():
            yield from _tensors_in(item)
