"""minidl.distributed, DistributedDataParallel, SyncBatchNorm and DistributedSampler (issue 14).

Two processes over loopback TCP (``mpirun -np 2``, Open MPI's tcp transport on ``lo``; every run bounded
by a timeout) train with DDP what one process trains with the whole batch (tests/distributed_worker.py
does the training; the assertions are here):

* DDP + SyncBatchNorm, 2 ranks of batch B == one process of batch 2B, after each of 3 SGD steps.
  Tolerance: the two runs do the same arithmetic in a different order (gradient sums split in two
  halves and added by the all-reduce; batch statistics combined from two halves by Chan's formula), so
  each step's result differs by a few roundings of the values involved. 32 units in the last place of
  the largest parameter (32 * eps * max|p|, about 4e-6 in float32 and 8e-15 in float64) leaves a margin
  of 10x over what is seen (1 ulp), yet is about 10^4 times smaller than the effect of per-rank statistics
  (3.7e-2), so a wrong reduction fails it. float64 shows the same identity to 1e-15.
* Plain BatchNorm under DDP differs from the full batch by what per-rank statistics predict: the
  prediction (each half normalised by its own statistics, rank 0's running statistics) is computed in
  one process and DDP matches it to the same tolerance, while the full batch is far away.
* no_sync: two micro-batches accumulated locally (ranks' gradients differ) and one synchronised
  backward == one process with all six micro-batches in one batch.
* find_unused_parameters: a head that one rank leaves out gets the mean of the ranks' gradients (zero
  from the rank that left it out), one no rank uses keeps no gradient; without the option, the next
  forward names the parameters that got no gradient.
* Overlap: with small buckets, a bucket's all-reduce starts before the stem's gradient (the last one)
  exists.
* A rank that raises, or is late beyond the timeout, stops the job with its error instead of a hang.
* ``examples/train_resnet18_cifar10.py --distributed --fake-data`` under ``mpirun -np 2``: one process
  prints and writes, its test loss is the one over both processes' shares, and the run resumes in one
  process (another world size).

The unit tests below need no MPI: SyncBatchNorm's maths on two threads that play two ranks (finite
differences in float64 and PyTorch parity), the sampler against PyTorch's, and the errors a user gets.
"""
import json
import os
import shutil
import subprocess
import sys
import threading

import numpy as np
import pytest
from hypothesis import given, strategies as st

import minidl
import minidl.distributed as dist
from minidl import nn
from minidl.data import DataLoader, DistributedSampler
from minidl.functions.sync_batchnorm import SyncBatchNorm as SyncBatchNormFunction
from minidl.train import experiment
from tests.helpers import torch_or_skip

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKER = os.path.join(ROOT, "tests", "distributed_worker.py")
EXAMPLE = os.path.join(ROOT, "examples", "train_resnet18_cifar10.py")


# ====================================================================== two processes under mpirun
def mpirun_or_skip():
    """The command that starts processes, or a skip (a failure in CI, which installs minidl[mpi])."""
    beside_python = os.path.join(os.path.dirname(sys.executable), "mpiexec")  # where pip puts Open MPI's wheel's
    launcher = beside_python if os.access(beside_python, os.X_OK) else shutil.which("mpiexec")
    missing = None if launcher and dist.is_mpi_available() else "mpi4py and mpiexec (pip install 'minidl[mpi]')"
    if missing and os.environ.get("CI"):
        pytest.fail(f"CI installs the mpi extra, but {missing} is missing")
    if missing:
        pytest.skip(f"needs {missing}")
    return launcher


def mpirun(*args, np_=2, timeout=240):
    launcher = mpirun_or_skip()
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), MPLBACKEND="Agg",
               OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",  # CI runs as root
               OMPI_MCA_btl="self,tcp", OMPI_MCA_btl_tcp_if_include="lo",  # processes talk over loopback TCP
               OMPI_MCA_rmaps_base_oversubscribe="1", PRTE_MCA_rmaps_default_mapping_policy=":oversubscribe")
    command = [launcher, "-n", str(np_), sys.executable, *map(str, args)]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def output(result):
    return f"exit code {result.returncode}\nstdout:\n{result.stdout[-4000:]}\nstderr:\n{result.stderr[-4000:]}"


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp") / "equivalence.json"
    result = mpirun(WORKER, "equivalence", out)
    assert result.returncode == 0, output(result)
    with open(out) as file:
        return json.load(file)


EPS = {"float32": float(np.finfo(np.float32).eps), "float64": float(np.finfo(np.float64).eps)}


def assert_steps_equal(steps, dtype, what):
    for step, (difference, scale) in enumerate(steps, 1):
        assert difference <= 32 * EPS[dtype] * scale, f"{what}, step {step}: max |difference| {difference:.3g}"


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_ddp_with_sync_batchnorm_equals_one_process_with_the_whole_batch(two_ranks, dtype):
    result = two_ranks[f"sync_bn_{dtype}"]
    assert len(result["vs_full_batch"]) == 3
    assert_steps_equal(result["vs_full_batch"], dtype, "DDP+SyncBatchNorm (2 x B) vs one process (2B)")
    assert result["ranks_identical"] == 0.0  # the same averaged gradient, the same step, on every rank
    assert result["state_dict_keys"] == ["module.conv1.weight", "module.bn1.weight"]  # PyTorch's prefix


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_ddp_with_plain_batchnorm_differs_as_per_rank_statistics_predict(two_ranks, dtype):
    result = two_ranks[f"plain_bn_{dtype}"]
    assert_steps_equal(result["vs_prediction"], dtype, "DDP+BatchNorm vs the per-rank-statistics prediction")
    for step, (difference, scale) in enumerate(result["prediction_vs_full_batch"], 1):
        assert difference > 1e3 * 32 * EPS["float32"] * scale, f"step {step}: the effect is too small to test"
    assert result["ranks_identical"] == 0.0


def test_no_sync_accumulation_equals_one_big_batch(two_ranks):
    result = two_ranks["no_sync"]
    difference, scale = result["vs_one_batch"]
    assert difference <= 32 * EPS["float64"] * scale
    assert result["ranks_differ_under_no_sync"] > 1e-3  # no communication inside no_sync
    assert result["ranks_identical"] == 0.0


def test_unused_parameters(two_ranks):
    result = two_ranks["unused"]
    difference, scale = result["vs_one_process"]
    assert difference <= 32 * EPS["float64"] * scale
    assert result["without_gradient"] == result["expected_without_gradient"] == ["c.bias", "c.weight"]
    assert "Expected to have finished reduction in the prior iteration" in result["unfinished_error"]
    assert "c.weight" in result["unfinished_error"] and "find_unused_parameters=True" in result["unfinished_error"]


def test_gradient_buckets_start_during_backward(two_ranks):
    result = two_ranks["overlap"]
    assert result["buckets"] >= 3
    log = result["log"]
    assert log.count("all_reduce") == result["buckets"]
    assert log.index("all_reduce") < log.index("stem gradient"), log


def test_collectives(two_ranks):
    result = two_ranks["collectives"]
    assert (result["backend"], result["world"]) == ("mpi", 2)
    assert result["sum"] == [3.0, 6.0]
    assert result["max"] == [1.0, 0.0]
    assert result["avg"] == [0.5]
    assert result["broadcast"] == [1.0, 1.0, 1.0]
    assert result["strided"] == (np.arange(6.0).reshape(2, 3).T * 3).tolist()
    assert result["work_completed"]
    expected = DistributedSampler(range(11), num_replicas=2, rank=0, seed=3)
    assert result["sampler_shares"][0] == expected.indices().tolist()
    together = result["sampler_shares"][0] + result["sampler_shares"][1]
    assert len(together) == 12 and set(together) == set(range(11))  # 11 samples, one repeated as padding


def test_a_rank_that_raises_stops_the_others(tmp_path):
    result = mpirun(WORKER, "raise", tmp_path / "out.json", timeout=120)
    assert result.returncode != 0, output(result)
    text = result.stdout + result.stderr
    assert "ValueError: rank 1 fails on purpose before its backward" in text, output(result)
    assert "rank 1 of 2 stopped with ValueError; aborting all 2 processes" in text, output(result)
    assert not (tmp_path / "out.json").exists()  # rank 0 never got past the collective


def test_a_late_rank_makes_the_collective_time_out(tmp_path):
    result = mpirun(WORKER, "timeout", tmp_path / "out.json", timeout=120)
    assert result.returncode != 0, output(result)
    assert "DistBackendError: all_reduce on rank 0 of 2 timed out after 2 s" in result.stderr, output(result)
    assert not (tmp_path / "out.json").exists()


def test_example_trains_on_two_processes_and_resumes_on_one(tmp_path):
    """``--distributed`` under mpirun -np 2: rank 0 alone prints and writes, the checkpoint holds the bare
    model, the test metrics are over both processes' shares, and the run resumes in one process."""
    out = tmp_path / "run"
    smoke = ["--fake-data", "--fake-size", "16", "--batch-size", "8", "--no-progress", "--out", out]
    result = mpirun(EXAMPLE, "--distributed", "--epochs", "1", *smoke, timeout=400)
    assert result.returncode == 0, output(result)
    assert result.stdout.count("epoch 1/1") == 1 and result.stdout.count("test:") == 1, output(result)
    assert "(4 on each of 2 processes)" in result.stdout, output(result)
    with open(out / "history.json") as file:
        row = json.load(file)[-1]
    state = minidl.train.load_checkpoint(str(out / "last.npz"))
    assert not any(key.startswith("module.") for key in state["model"])
    model = minidl.models.resnet18(num_classes=10)
    model.load_state_dict(state["model"])
    test_loader = DataLoader(minidl.data.FakeData(4, (3, 32, 32), 10, seed=0, train=False), batch_size=4,
                             transform=minidl.data.transforms.Normalize(*experiment.DATASET_STATS["cifar10"]))
    with minidl.no_grad():
        images, labels = next(iter(test_loader))
        loss = float(minidl.nn.functional.cross_entropy(model.eval()(images), labels).item())
    assert row["test_loss"] == pytest.approx(loss, rel=1e-4)  # over both shares (2 + 2 images)

    env = dict(os.environ, MPLBACKEND="Agg", PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    resumed = subprocess.run([sys.executable, EXAMPLE, "--epochs", "2", "--resume", *map(str, smoke)], cwd=ROOT,
                             env=env, capture_output=True, text=True, timeout=400)
    assert resumed.returncode == 0, output(resumed)
    with open(out / "history.json") as file:
        assert [r["epoch"] for r in json.load(file)] == [1, 2]


# ====================================================================== SyncBatchNorm's maths, two ranks as threads
class ThreadGroup:
    """Collectives between threads that play the ranks of one process group (for the unit tests)."""

    def __init__(self, world_size):
        self.world_size = world_size
        self.barrier = threading.Barrier(world_size, timeout=30)
        self.slots = [None] * world_size

    def rank(self, rank):
        group = self

        class Member:
            world_size = group.world_size

            def all_gather(self, output, array):
                group.slots[rank] = array.copy()
                group.barrier.wait()
                output[...] = np.stack(group.slots)
                group.barrier.wait()
                return dist.CompletedWork()

            def all_reduce(self, array, op=dist.ReduceOp.SUM):
                group.slots[rank] = array.copy()
                group.barrier.wait()
                array[...] = np.sum(group.slots, axis=0)
                group.barrier.wait()
                return dist.CompletedWork()
        return Member()


def run_ranks(world_size, work):
    """work(rank, group) on one thread per rank; their results in rank order."""
    group, results, errors = ThreadGroup(world_size), [None] * world_size, []

    def run(rank):
        try:
            results[rank] = work(rank, group.rank(rank))
        except BaseException as error:  # re-raised in the test's thread
            errors.append(error)
            group.barrier.abort()
    threads = [threading.Thread(target=run, args=(rank,)) for rank in range(world_size)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results


def sync_bn_losses(x, weight, bias, g, splits, grad=True):
    """Each rank normalises its share of x (split along N at ``splits``) with SyncBatchNorm; the loss of
    rank r is sum(y_r * g_r). Returns per-rank (loss, x share grad, weight grad, bias grad)."""
    shares, g_shares = np.split(x, splits), np.split(g, splits)

    def rank_work(rank, group):
        xs = minidl.tensor(shares[rank], requires_grad=grad)
        w = minidl.tensor(weight, requires_grad=grad)
        b = minidl.tensor(bias, requires_grad=grad)
        y = SyncBatchNormFunction.apply(xs, w, b, momentum=0.1, eps=1e-5, group=group)
        loss = (y * minidl.tensor(g_shares[rank])).sum()
        if not grad:
            return float(loss.item()), None, None, None
        loss.backward()
        return float(loss.item()), xs.grad.numpy(), w.grad.numpy(), b.grad.numpy()
    return run_ranks(len(splits) + 1, rank_work)


@given(n1=st.integers(1, 3), n2=st.integers(1, 3), c=st.integers(1, 3), h=st.integers(1, 3))
def test_sync_batchnorm_gradients_by_finite_differences(n1, n2, c, h):
    """d(sum of all ranks' losses)/d(inputs): x's gradient on each rank from the global sums, the
    parameters' as the sum of the ranks' local gradients (what DDP then averages)."""
    rng = np.random.default_rng(n1 * 100 + n2 * 10 + c + h)
    x = rng.standard_normal((n1 + n2, c, h, 2))
    weight, bias, g = rng.standard_normal(c), rng.standard_normal(c), rng.standard_normal(x.shape)
    results = sync_bn_losses(x, weight, bias, g, [n1])
    grad_x = np.concatenate([r[1] for r in results])
    grad_w, grad_b = sum(r[2] for r in results), sum(r[3] for r in results)

    def total(x_, w_, b_):
        return sum(r[0] for r in sync_bn_losses(x_, w_, b_, g, [n1], grad=False))
    for array, analytic in ((x, grad_x), (weight, grad_w), (bias, grad_b)):
        numeric = np.zeros_like(array)
        for index in np.ndindex(array.shape):
            saved = array[index]
            array[index] = saved + 1e-6
            plus = total(x, weight, bias)
            array[index] = saved - 1e-6
            minus = total(x, weight, bias)
            array[index] = saved
            numeric[index] = (plus - minus) / 2e-6
        np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-6)


def test_sync_batchnorm_on_two_ranks_equals_pytorch_batchnorm_on_the_whole_batch():
    torch = torch_or_skip()
    rng = np.random.default_rng(3)
    x, g = rng.standard_normal((6, 4, 3, 5)), rng.standard_normal((6, 4, 3, 5))
    weight, bias = rng.standard_normal(4), rng.standard_normal(4)
    running = [(np.zeros(4), np.ones(4)) for _ in range(2)]

    def rank_work(rank, group):
        share = slice(0, 2) if rank == 0 else slice(2, 6)  # unequal shares
        xs = minidl.tensor(x[share], requires_grad=True)
        w, b = minidl.tensor(weight, requires_grad=True), minidl.tensor(bias, requires_grad=True)
        y = SyncBatchNormFunction.apply(xs, w, b, running_mean=running[rank][0], running_var=running[rank][1],
                                        momentum=0.1, eps=1e-5, group=group)
        (y * minidl.tensor(g[share])).sum().backward()
        return y.detach().numpy(), xs.grad.numpy(), w.grad.numpy(), b.grad.numpy()
    results = run_ranks(2, rank_work)
    tx = torch.tensor(x, requires_grad=True)
    tw, tb = torch.tensor(weight, requires_grad=True), torch.tensor(bias, requires_grad=True)
    rm, rv = torch.zeros(4, dtype=torch.float64), torch.ones(4, dtype=torch.float64)
    ty = torch.nn.functional.batch_norm(tx, rm, rv, tw, tb, training=True, momentum=0.1, eps=1e-5)
    (ty * torch.tensor(g)).sum().backward()
    close = dict(rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(np.concatenate([r[0] for r in results]), ty.detach().numpy(), **close)
    np.testing.assert_allclose(np.concatenate([r[1] for r in results]), tx.grad.numpy(), **close)
    np.testing.assert_allclose(sum(r[2] for r in results), tw.grad.numpy(), **close)
    np.testing.assert_allclose(sum(r[3] for r in results), tb.grad.numpy(), **close)
    for mean, var in running:  # every rank updates its running statistics from the global batch
        np.testing.assert_allclose(mean, rm.numpy(), **close)
        np.testing.assert_allclose(var, rv.numpy(), **close)


def test_sync_batchnorm_module_without_a_group_is_batchnorm():
    torch = torch_or_skip()
    sync, plain = nn.SyncBatchNorm(3), nn.BatchNorm2d(3)
    assert list(sync.state_dict()) == list(plain.state_dict()) == list(torch.nn.SyncBatchNorm(3).state_dict())
    x = minidl.randn(4, 3, 2, 2, requires_grad=True)
    y_sync, y_plain = sync(x), plain(x)
    np.testing.assert_array_equal(y_sync.detach().numpy(), y_plain.detach().numpy())
    np.testing.assert_array_equal(sync.running_var.numpy(), plain.running_var.numpy())
    with pytest.raises(ValueError, match="at least 2D input"):
        sync(minidl.randn(3))


def test_convert_sync_batchnorm_keeps_the_very_tensors():
    model = minidl.models.resnet18(num_classes=10)
    before = dict(model.state_dict(keep_vars=True))
    model.bn1.eval()
    converted = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    after = converted.state_dict(keep_vars=True)
    assert list(after) == list(before)
    assert all(after[key] is before[key] for key in before)
    kinds = {type(m).__name__ for m in converted.modules()}
    assert "SyncBatchNorm" in kinds and "BatchNorm2d" not in kinds
    assert not converted.bn1.training and converted.layer1[0].bn1.training


# ====================================================================== DistributedSampler
@pytest.mark.parametrize("size,replicas,drop_last", [(10, 3, False), (10, 3, True), (2, 4, False),
                                                     (12, 4, False), (7, 2, True)])
def test_sampler_shares_and_padding_match_pytorch(size, replicas, drop_last):
    torch = torch_or_skip()
    from torch.utils.data.distributed import DistributedSampler as TorchSampler
    for rank in range(replicas):
        ours = DistributedSampler(range(size), num_replicas=replicas, rank=rank, shuffle=False, drop_last=drop_last)
        theirs = TorchSampler(range(size), num_replicas=replicas, rank=rank, shuffle=False, drop_last=drop_last)
        assert list(ours) == list(theirs)
        assert len(ours) == len(theirs)


def test_sampler_splits_the_epochs_permutation():
    shares = [DistributedSampler(range(10), num_replicas=3, rank=r, seed=5) for r in range(3)]
    for epoch in (0, 1):
        for sampler in shares:
            sampler.set_epoch(epoch)
        order = np.random.default_rng([5, epoch]).permutation(10)
        padded = np.concatenate([order, order[:2]])
        for rank, sampler in enumerate(shares):
            assert sampler.indices().tolist() == padded[rank::3].tolist()
    assert shares[0].indices().tolist() != DistributedSampler(range(10), 3, 0, seed=5).indices().tolist()


def test_dataloader_with_a_one_replica_sampler_is_the_shuffled_loader():
    data = minidl.data.ArrayDataset(np.arange(10, dtype=np.float32).reshape(10, 1), np.arange(10))
    plain = DataLoader(data, batch_size=4, shuffle=True, seed=9, prefetch=0)
    shared = DataLoader(data, batch_size=4, seed=9, prefetch=0,
                        sampler=DistributedSampler(data, num_replicas=1, rank=0, seed=9))
    for _ in range(2):  # two epochs: the loader sets the sampler's epoch
        assert [t.tolist() for _, t in plain] == [t.tolist() for _, t in shared]
    halves = [DataLoader(data, batch_size=4, prefetch=0, sampler=DistributedSampler(data, 2, r, seed=9))
              for r in range(2)]
    assert [len(h) for h in halves] == [2, 2]
    seen = sorted(v for h in halves for _, t in h for v in t.tolist())
    assert seen == list(range(10))
    with pytest.raises(ValueError, match="mutually exclusive with shuffle"):
        DataLoader(data, shuffle=True, sampler=halves[0].sampler)


# ====================================================================== errors without a group or a library
def test_errors_without_a_process_group():
    assert not dist.is_initialized()
    with pytest.raises(ValueError, match="init_process_group"):
        dist.get_rank()
    with pytest.raises(ValueError, match="init_process_group"):
        nn.parallel.DistributedDataParallel(nn.Linear(2, 2))
    with pytest.raises(RuntimeError, match="pass num_replicas and rank"):
        DistributedSampler(range(4))
    with pytest.raises(ValueError, match="Invalid rank 2"):
        DistributedSampler(range(4), num_replicas=2, rank=2)
    with pytest.raises(ValueError, match="valid backends are 'mpi'.*'nccl'"):
        dist.init_process_group("gloo")
    with pytest.raises(ValueError, match="mpirun"):
        dist.init_process_group("mpi", init_method="tcp://127.0.0.1:23456")


def test_missing_mpi4py_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # import mpi4py now raises ImportError
    with pytest.raises(RuntimeError, match=r"'mpi' backend needs mpi4py.*pip install 'minidl\[mpi\]'"):
        dist.init_process_group("mpi")
    assert not dist.is_initialized()


def test_missing_cupy_is_a_clear_error_for_nccl(monkeypatch):
    from minidl import backend
    monkeypatch.setattr(backend, "_cupy", None)
    monkeypatch.setattr(backend, "_cupy_error", ImportError("No module named 'cupy'"))
    with pytest.raises(RuntimeError, match="needs CuPy"):
        dist.init_process_group("nccl")
    assert not dist.is_initialized()


# ====================================================================== NCCL
def test_nccl_unique_id_reaches_every_rank_in_the_form_the_installed_cupy_takes():
    """Rank 0's id (a tuple of 128 signed chars before CuPy 14, bytes since) crosses MPI as 128 raw bytes
    and becomes what NcclCommunicator of either CuPy version accepts, unchanged."""
    from minidl.distributed import nccl as backend
    raw = bytes(range(128, 256))  # bytes above 127: negative as signed chars
    as_tuple = tuple(int(v) for v in np.frombuffer(raw, dtype=np.int8))

    class Broadcast:  # MPI's Bcast between "ranks" called one after the other
        sent = None

        def Bcast(self, buffer, root):
            if Broadcast.sent is None:
                Broadcast.sent = buffer.copy()
            buffer[:] = Broadcast.sent

    def communicator_class(takes):
        class NcclCommunicator:
            def __init__(self, ndev, comm_id, rank):
                if not isinstance(comm_id, takes):  # Cython's argument check, before NCCL runs
                    raise TypeError(f"Argument 'commId' has incorrect type (expected {takes.__name__})")
                self.comm_id = comm_id
        return type("nccl", (), {"NcclCommunicator": NcclCommunicator})

    for takes, made_by_rank_0, expected in ((bytes, raw, raw), (tuple, as_tuple, as_tuple)):
        Broadcast.sent = None
        for rank in (0, 1):
            shared = backend._share_unique_id(Broadcast(), made_by_rank_0 if rank == 0 else None)
            assert backend._communicator(communicator_class(takes), 2, shared, rank).comm_id == expected
    with pytest.raises(dist.DistBackendError, match="launch with mpirun"):
        backend._share_unique_id(None, raw)


# ====================================================================== NCCL on one GPU
@pytest.mark.gpu
def test_nccl_world_size_one_runs_the_single_process_step():
    """The NCCL backend with one process: collectives on CUDA tensors, and a DDP training step (with
    SyncBatchNorm, which falls back to BatchNorm) equal to the same step without DDP."""
    from minidl.experiments import configurable_resnet
    from minidl.nn import functional as F
    dist.init_process_group("nccl")
    try:
        assert (dist.get_backend(), dist.get_rank(), dist.get_world_size()) == ("nccl", 0, 1)
        t = minidl.tensor([1.0, 2.0], device="cuda")
        dist.all_reduce(t, op=dist.ReduceOp.AVG)
        dist.broadcast(t, src=0)
        assert t.tolist() == [1.0, 2.0]
        with pytest.raises(TypeError, match="communicates CUDA tensors"):
            dist.all_reduce(minidl.tensor([1.0]))
        steps = []
        for wrap in (False, True):
            minidl.manual_seed(0)
            model = configurable_resnet((1, 1), c1=4, num_classes=5, input_size=8).to("cuda")
            if wrap:
                model = nn.parallel.DistributedDataParallel(nn.SyncBatchNorm.convert_sync_batchnorm(model),
                                                            device_ids=[0], bucket_cap_mb=0.002)
            optimizer = minidl.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
            rng = np.random.default_rng(1)
            for _ in range(2):
                images = minidl.tensor(rng.standard_normal((8, 3, 8, 8)).astype(np.float32), device="cuda")
                labels = minidl.tensor(rng.integers(0, 5, size=8), device="cuda")
                optimizer.zero_grad()
                F.cross_entropy(model(images), labels).backward()
                optimizer.step()
            inner = model.module if wrap else model
            steps.append({k: np.asarray(v) for k, v in inner.state_dict().items()})
        for key in steps[0]:
            np.testing.assert_allclose(steps[1][key], steps[0][key], rtol=1e-6, atol=1e-7, err_msg=key)
    finally:
        dist.destroy_process_group()
