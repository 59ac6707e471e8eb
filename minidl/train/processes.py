"""What training does differently when several processes train one model (``--distributed``).

Only rank 0 writes checkpoints, history and plots and shows progress bars; each process trains and
evaluates its share of the data (``DistributedSampler``) and the epoch's metrics are sums over all
processes; checkpoints hold the bare model's state (no ``module.`` prefix), so a run resumes with
the same or another number of processes, or without ``--distributed`` at all.
"""
import contextlib
import sys

import numpy as np

from .. import distributed


def rank_and_world():
    """(rank, world size) of the default process group; (0, 1) without one."""
    if not distributed.is_initialized():
        return 0, 1
    return distributed.get_rank(), distributed.get_world_size()


def is_main_process():
    return rank_and_world()[0] == 0


def unwrap(model):
    """The module inside DistributedDataParallel (the model itself otherwise)."""
    from ..nn.parallel import DistributedDataParallel
    return model.module if isinstance(model, DistributedDataParallel) else model


def wrap_for_processes(model):
    """``model`` in DistributedDataParallel when several processes train (as it is otherwise, or if
    it is wrapped already): without it the replicas would drift apart silently."""
    from ..nn.parallel import DistributedDataParallel
    if rank_and_world()[1] == 1 or isinstance(model, DistributedDataParallel):
        return model
    return DistributedDataParallel(model)


@contextlib.contextmanager
def stop_all_on_failure():
    """A ``sys.exit`` with an error in one process stops all of them (they would wait for it in
    their next collective until the timeout). Exceptions do so already (init_process_group)."""
    try:
        yield
    except SystemExit as stop:
        rank, world = rank_and_world()
        if world > 1 and stop.code not in (None, 0):
            if not isinstance(stop.code, int):
                print(stop.code, file=sys.stderr)
            print(f"minidl.distributed: rank {rank} of {world} exited; aborting all {world} processes",
                  file=sys.stderr, flush=True)
            distributed.default_group().abort(stop.code if isinstance(stop.code, int) else 1)
        raise


def sum_over_processes(values):
    """The element-wise sums of ``values`` (numbers) over all processes, as floats (float64 on the CPU)."""
    if rank_and_world()[1] == 1:
        return [float(v) for v in values]
    from ..tensor import Tensor
    totals = np.asarray(values, dtype=np.float64)
    if distributed.get_backend() == "nccl":
        from ..backend import require_cupy
        on_gpu = require_cupy().asarray(totals)
        distributed.all_reduce(Tensor._from_array(on_gpu))
        totals = on_gpu.get()
    else:
        distributed.all_reduce(Tensor._from_array(totals))
    return [float(v) for v in totals]


def init_from_device(device):
    """Joins the job started by mpirun (NCCL for a CUDA device, MPI otherwise) unless already joined;
    returns the device this process uses (``cuda:<node-local rank>`` for CUDA)."""
    from ..backend import device as Device
    device = Device(device)
    if not distributed.is_initialized():
        distributed.init_process_group("nccl" if device.type == "cuda" else "mpi")
    if device.type == "cuda":
        return Device("cuda", distributed.default_group().device.id)  # the GPU NCCL drives in this process
    return device
