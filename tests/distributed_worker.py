"""The process side of tests/test_distributed.py, run as ``mpirun -np 2 python tests/distributed_worker.py
SCENARIO OUT.json``. Each process trains its half of every batch with DistributedDataParallel; rank 0 also
trains the single-process twin that the test compares against, and writes the comparisons to OUT.json
(the assertions are in the test, where they report well).

Scenarios: ``equivalence`` (SyncBatchNorm, plain BatchNorm, no_sync, overlap, collectives), ``raise``
(rank 1 raises while rank 0 waits in an all-reduce) and ``timeout`` (rank 1 is late; rank 0's
collective gives up after 2 s).
"""
import copy
import json
import sys
import time

import numpy as np

import minidl
import minidl.distributed as dist
from minidl import nn, optim
from minidl.experiments import configurable_resnet
from minidl.nn import functional as F
from minidl.nn.parallel import DistributedDataParallel as DDP

B = 4  # images per process per step; the single-process twin takes 2B
STEPS = 3


def small_resnet(seed, dtype):
    minidl.manual_seed(seed)
    model = configurable_resnet((1, 1), c1=4, num_classes=5, input_size=8)  # BatchNorm in stem, blocks, shortcut
    return model.double() if dtype == "float64" else model


def batches(dtype, world):
    rng = np.random.default_rng(42)
    images = rng.standard_normal((STEPS, world * B, 3, 8, 8)).astype(dtype)
    labels = rng.integers(0, 5, size=(STEPS, world * B))
    return [(minidl.tensor(x), minidl.tensor(y)) for x, y in zip(images, labels)]


def sgd(model):
    return optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)


def state(module):
    return {key: np.array(value, dtype=np.float64) for key, value in module.state_dict().items()}


def max_difference(a, b):
    """(max |a - b| over the parameters and running statistics, the largest |b| among them); the
    counters num_batches_tracked are compared exactly instead."""
    counters = [k for k in a if k.endswith("num_batches_tracked")]
    if any(a[k] != b[k] for k in counters):
        return [float("inf"), 0.0]
    keys = [k for k in a if k not in counters]
    return [max(float(np.abs(a[k] - b[k]).max()) for k in keys), max(float(np.abs(b[k]).max()) for k in keys)]


def rank_share(x, rank):
    return x[rank * B:(rank + 1) * B]


def train_distributed(model, data, rank):
    """DDP steps on this rank's share; the module's state after each step."""
    ddp, states = DDP(model), []
    optimizer = sgd(ddp)
    for images, labels in data:
        optimizer.zero_grad()
        F.cross_entropy(ddp(rank_share(images, rank)), rank_share(labels, rank)).backward()
        optimizer.step()
        states.append(state(ddp.module))
    return ddp, states


def train_single(model, data, loss_of_batch):
    optimizer, states = sgd(model), []
    for images, labels in data:
        optimizer.zero_grad()
        loss_of_batch(model, images, labels).backward()
        optimizer.step()
        states.append(state(model))
    return states


def full_batch_loss(model, images, labels):
    return F.cross_entropy(model(images), labels)


def per_rank_statistics_loss(model, images, labels):
    """What DDP with plain BatchNorm computes, in one process: each half of the batch is normalised by
    its own statistics, the loss is the mean of the halves' mean losses, and the running statistics are
    rank 0's (DDP broadcasts rank 0's buffers at each forward): rank 1's half runs first, then the
    buffers are put back and rank 0's half runs."""
    buffers = {name: b.array.copy() for name, b in model.named_buffers()}
    loss_1 = F.cross_entropy(model(rank_share(images, 1)), rank_share(labels, 1))
    for name, b in model.named_buffers():
        b.array[...] = buffers[name]
    loss_0 = F.cross_entropy(model(rank_share(images, 0)), rank_share(labels, 0))
    return (loss_0 + loss_1) / 2


def gather_vector(vector):
    parts = [minidl.zeros(vector.size, dtype=minidl.float64) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, minidl.tensor(vector.astype(np.float64)))
    return [p.numpy() for p in parts]


def flat_parameters(module):
    return np.concatenate([p.detach().numpy().ravel().astype(np.float64) for p in module.parameters()])


def compare_training(rank, dtype, sync_bn):
    """DDP on 2 ranks (replicas initialised differently: DDP must broadcast rank 0's) against one process."""
    data = batches(dtype, 2)
    model = small_resnet(seed=rank, dtype=dtype)
    if sync_bn:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    ddp, states = train_distributed(model, data, rank)
    gathered = gather_vector(flat_parameters(model))
    if rank != 0:
        return None
    result = {"ranks_identical": float(np.abs(gathered[0] - gathered[1]).max()),
              "state_dict_keys": list(ddp.state_dict())[:2]}
    if sync_bn:
        twin = train_single(small_resnet(0, dtype), data, full_batch_loss)
        result["vs_full_batch"] = [max_difference(s, t) for s, t in zip(states, twin)]
    else:
        prediction = train_single(small_resnet(0, dtype), data, per_rank_statistics_loss)
        full = train_single(small_resnet(0, dtype), data, full_batch_loss)
        result["vs_prediction"] = [max_difference(s, t) for s, t in zip(states, prediction)]
        result["prediction_vs_full_batch"] = [max_difference(p, f) for p, f in zip(prediction, full)]
    return result


def no_bn_net(seed):
    minidl.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(6, 5))


def compare_no_sync(rank):
    """3 micro-batches per rank (2 under no_sync, then one synchronised backward) against one process that
    takes all 2 x 3 x B images in one batch."""
    micro, world = 3, 2
    rng = np.random.default_rng(7)
    images = minidl.tensor(rng.standard_normal((world * micro * B, 3, 8, 8)))
    labels = minidl.tensor(rng.integers(0, 5, size=world * micro * B))
    ddp = DDP(no_bn_net(seed=rank).double())
    mine = [(images[(rank * micro + m) * B:(rank * micro + m + 1) * B],
             labels[(rank * micro + m) * B:(rank * micro + m + 1) * B]) for m in range(micro)]
    with ddp.no_sync():
        for x, y in mine[:-1]:
            (F.cross_entropy(ddp(x), y) / micro).backward()
    local = np.concatenate([p.grad.numpy().ravel() for p in ddp.parameters()])
    after_no_sync = gather_vector(local)
    x, y = mine[-1]
    (F.cross_entropy(ddp(x), y) / micro).backward()
    grads = {name: p.grad.numpy() for name, p in ddp.module.named_parameters()}
    gathered = gather_vector(np.concatenate([g.ravel() for g in grads.values()]))
    if rank != 0:
        return None
    twin = no_bn_net(seed=0).double()
    F.cross_entropy(twin(images), labels).backward()
    expected = {name: p.grad.numpy() for name, p in twin.named_parameters()}
    return {"vs_one_batch": max_difference(grads, expected),
            "ranks_differ_under_no_sync": float(np.abs(after_no_sync[0] - after_no_sync[1]).max()),
            "ranks_identical": float(np.abs(gathered[0] - gathered[1]).max())}


def check_overlap(rank):
    """Several buckets; a bucket's all-reduce starts before the stem's gradient (the last one) is in."""
    model = small_resnet(seed=0, dtype="float32")
    log = []
    model.conv1.weight.register_post_accumulate_grad_hook(lambda t: log.append("stem gradient"))  # before DDP's
    ddp = DDP(model, bucket_cap_mb=0.002)
    group = ddp.reducer.group

    class Logging:
        world_size = group.world_size

        def all_reduce(self, array, op):
            log.append("all_reduce")
            return group.all_reduce(array, op)

        def progress(self):
            group.progress()
    ddp.reducer.group = Logging()
    images, labels = batches("float32", 2)[0]
    F.cross_entropy(ddp(rank_share(images, rank)), rank_share(labels, rank)).backward()
    return {"buckets": len(ddp.reducer.buckets), "log": log}


class TwoHeads(nn.Module):
    """A trunk and three heads: ``a`` always used, ``b`` only when asked, ``c`` never."""

    def __init__(self):
        super().__init__()
        self.trunk, self.a, self.b, self.c = nn.Linear(4, 4), nn.Linear(4, 2), nn.Linear(4, 2), nn.Linear(4, 2)

    def forward(self, x, use_b):
        h = self.trunk(x).tanh()
        return self.a(h) + self.b(h) if use_b else self.a(h)


def compare_unused_parameters(rank):
    """find_unused_parameters: rank 0 leaves head b out, rank 1 uses it; head c is used nowhere. Against
    one process: the mean of rank 0's loss (without b) and rank 1's (with b); c keeps no gradient."""
    rng = np.random.default_rng(3)
    x, y = minidl.tensor(rng.standard_normal((2, B, 4))), minidl.tensor(rng.standard_normal((2, B, 2)))
    minidl.manual_seed(0)
    ddp = DDP(TwoHeads().double(), find_unused_parameters=True)
    F.mse_loss(ddp(x[rank], use_b=rank == 1), y[rank]).backward()
    grads = {n: (None if p.grad is None else p.grad.numpy()) for n, p in ddp.module.named_parameters()}
    minidl.manual_seed(1)
    strict = DDP(TwoHeads().double())  # without find_unused_parameters: c never gets a gradient
    F.mse_loss(strict(x[rank], use_b=True), y[rank]).backward()
    try:
        strict(x[rank], use_b=True)
        error = None
    except RuntimeError as caught:
        error = str(caught)
    if rank != 0:
        return None
    minidl.manual_seed(0)
    twin = TwoHeads().double()
    ((F.mse_loss(twin(x[0], use_b=False), y[0]) + F.mse_loss(twin(x[1], use_b=True), y[1])) / 2).backward()
    expected = {n: (None if p.grad is None else p.grad.numpy()) for n, p in twin.named_parameters()}
    missing = sorted(n for n, g in grads.items() if g is None)
    used = [n for n in grads if grads[n] is not None]
    return {"vs_one_process": max_difference({n: grads[n] for n in used}, {n: expected[n] for n in used}),
            "without_gradient": missing, "expected_without_gradient": sorted(n for n, g in expected.items()
                                                                             if g is None),
            "unfinished_error": error}


def check_collectives(rank, world):
    t = minidl.tensor([1.0, 2.0]) * (rank + 1)
    dist.all_reduce(t)
    m = minidl.tensor([float(rank), -float(rank)])
    dist.all_reduce(m, op=dist.ReduceOp.MAX)
    a = minidl.tensor([float(rank)])
    dist.all_reduce(a, op=dist.ReduceOp.AVG)
    b = minidl.tensor([float(rank)] * 3)
    dist.broadcast(b, src=1)
    work = dist.all_reduce(minidl.tensor([1.0]), async_op=True)
    work.wait()
    strided = minidl.tensor(np.arange(6.0).reshape(2, 3)).transpose(0, 1) * (rank + 1)  # not contiguous
    dist.all_reduce(strided)
    shares = gather_vector(minidl.data.DistributedSampler(range(11), seed=3).indices().astype(np.float64))
    return {"sum": t.tolist(), "max": m.tolist(), "avg": a.tolist(), "broadcast": b.tolist(),
            "strided": strided.tolist(), "work_completed": work.is_completed(),
            "sampler_shares": [s.astype(int).tolist() for s in shares], "world": world, "backend": dist.get_backend()}


def equivalence(rank, world):
    result = {"collectives": check_collectives(rank, world)}
    for dtype in ("float32", "float64"):
        result[f"sync_bn_{dtype}"] = compare_training(rank, dtype, sync_bn=True)
        result[f"plain_bn_{dtype}"] = compare_training(rank, dtype, sync_bn=False)
    result["no_sync"] = compare_no_sync(rank)
    result["unused"] = compare_unused_parameters(rank)
    result["overlap"] = check_overlap(rank)
    return result


def main():
    scenario, out = sys.argv[1], sys.argv[2]
    dist.init_process_group("mpi", timeout=2.0 if scenario == "timeout" else 60.0)
    rank, world = dist.get_rank(), dist.get_world_size()
    if scenario == "equivalence":
        result = equivalence(rank, world)
    elif scenario == "raise":
        model = DDP(small_resnet(0, "float32"))
        images, labels = batches("float32", world)[0]
        if rank == 1:
            raise ValueError("rank 1 fails on purpose before its backward")
        F.cross_entropy(model(rank_share(images, rank)), rank_share(labels, rank)).backward()  # waits for rank 1
        result = {"error": "rank 0 finished a backward that needed rank 1"}
    elif scenario == "timeout":
        if rank == 1:
            time.sleep(30)
        dist.all_reduce(minidl.tensor([1.0]))
        result = {"error": "rank 0's all_reduce returned without rank 1"}
    else:
        raise ValueError(f"unknown scenario {scenario!r}")
    if rank == 0:
        with open(out, "w") as file:
            json.dump(result, file)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
