"""``minidl.distributed``: several processes that train one model together, as ``torch.distributed``.

    import minidl.distributed as dist
    dist.init_process_group("mpi")      # in each process of: mpirun -np 2 python train.py
    dist.get_rank(), dist.get_world_size()
    dist.all_reduce(tensor)             # in place: the sum over all processes
    dist.broadcast(tensor, src=0)       # in place: rank 0's values everywhere
    dist.barrier()
    dist.destroy_process_group()

Two backends, each on an existing communication library (nothing here opens a socket itself):

* ``"mpi"``: CPU (NumPy) tensors through mpi4py and an MPI library (Open MPI or MPICH).
* ``"nccl"``: GPU (CuPy) tensors through NVIDIA's NCCL, as CuPy exposes it (``cupy.cuda.nccl``);
  each process drives the GPU of its node-local rank. With more than one process, NCCL's
  rendezvous goes over MPI, so NCCL runs are launched with ``mpirun`` too.

Rank and world size come from the MPI library (``mpirun`` and ``srun`` start the processes); the
``rank``/``world_size`` arguments and torchrun's ``RANK``/``WORLD_SIZE`` are checked against it.
Importing this module needs neither mpi4py nor CuPy: ``init_process_group`` says which is missing.

Failures stop the whole job instead of hanging it: once a group of more than one process is up,
an exception that ends a process makes it print its traceback and abort every process
(``MPI_Abort``), and a collective that waits longer than ``timeout`` raises ``DistBackendError``
(the MPI backend; NCCL collectives are waited for by the GPU, see docs/distributed.md).
"""
import datetime
import sys

from ..backend import get_array_module
from . import launch
from .launch import node_local_rank as get_node_local_rank
from .work import CompletedWork, DistBackendError, ReduceOp, Work

BACKENDS = ("mpi", "nccl")
DEFAULT_TIMEOUT = datetime.timedelta(minutes=30)  # torch.distributed's default

_group = None  # the backend object of the default process group once init_process_group ran


def is_available():
    return True


def is_mpi_available():
    """True when mpi4py is installed (the check does not import it, so MPI is not initialised)."""
    import importlib.util
    try:
        return importlib.util.find_spec("mpi4py") is not None
    except (ImportError, ValueError):  # a broken or blocked mpi4py
        return False


def is_nccl_available():
    try:
        from .nccl import import_nccl
        import_nccl()
        return True
    except Exception:
        return False


def is_initialized():
    return _group is not None


def init_process_group(backend=None, init_method=None, timeout=None, world_size=-1, rank=-1, store=None,
                       group_name="", pg_options=None, device_id=None):
    """Joins this process to the default group of all processes of the job.

    backend: "mpi" (CPU tensors; the default) or "nccl" (CUDA tensors).
    init_method: None or "env://" (the launcher's environment); rendezvous is MPI's job.
    timeout: seconds or a ``datetime.timedelta`` a collective may wait (30 minutes by default).
    world_size, rank: optional; when given they must match what the launcher started.
    device_id: for "nccl", the GPU index to use (default: the node-local rank).
    """
    global _group
    if _group is not None:
        raise RuntimeError("trying to initialize the default process group twice; call "
                           "destroy_process_group() first")
    backend = "mpi" if backend is None else str(backend).lower()
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; valid backends are 'mpi' (CPU tensors, through mpi4py) "
                         "and 'nccl' (CUDA tensors, through CuPy's NCCL)")
    if init_method not in (None, "env://"):
        raise ValueError(f"init_method {init_method!r} is not supported: processes meet through MPI, so start "
                         "them with mpirun (or srun) and pass init_method=None or 'env://'")
    if store is not None:
        raise ValueError("store is not supported: processes meet through MPI (start them with mpirun)")
    seconds = _seconds(timeout)
    if backend == "mpi":
        from .mpi import MPIBackend
        group = MPIBackend(seconds)
    else:
        group = _nccl_group(seconds, device_id)
    _check_launch(group, world_size, rank)
    _group = group
    if group.world_size > 1:
        _abort_all_on_uncaught_exception()


def _nccl_group(seconds, device_id):
    from .nccl import NCCLBackend, import_nccl
    import_nccl()  # a missing CuPy or NCCL is reported before MPI is involved
    found, mpi_comm = launch.launched_by(), None
    if launch.started_by_mpi():
        from .mpi import import_mpi
        mpi_comm = import_mpi().COMM_WORLD
        rank, world_size = mpi_comm.Get_rank(), mpi_comm.Get_size()
    elif found is not None and found[2] > 1:  # torchrun: NCCL's rendezvous would need a store; MPI is ours
        raise RuntimeError(f"{found[0]} started {found[2]} processes, but the 'nccl' backend gets NCCL's unique "
                           f"id to every process over MPI: launch with mpirun -np {found[2]} instead")
    else:
        rank, world_size = 0, 1  # a plain `python script.py`
    local_rank = device_id if device_id is not None else launch.node_local_rank(fallback_rank=rank)
    return NCCLBackend(rank, world_size, local_rank, seconds, mpi_comm)


def _check_launch(group, world_size, rank):
    found = launch.launched_by()
    if found is not None and found[2] != group.world_size:
        name, _, launched, _ = found
        raise RuntimeError(f"{name} started {launched} processes but the {group.name.upper()} world has "
                           f"{group.world_size}: the '{group.name}' backend needs its processes started by "
                           f"mpirun (or srun), e.g. mpirun -np {launched} python script.py")
    if world_size not in (-1, None) and int(world_size) != group.world_size:
        raise ValueError(f"world_size={world_size} was given, but {group.world_size} processes were launched")
    if rank not in (-1, None) and int(rank) != group.rank:
        raise ValueError(f"rank={rank} was given, but the launcher made this process rank {group.rank}")


def _seconds(timeout):
    if timeout is None:
        timeout = DEFAULT_TIMEOUT
    seconds = timeout.total_seconds() if isinstance(timeout, datetime.timedelta) else float(timeout)
    if not seconds > 0:
        raise ValueError(f"timeout must be positive, got {timeout!r}")
    return seconds


def _abort_all_on_uncaught_exception():
    """An exception that ends this process also ends the others (they would wait for it forever)."""
    previous = sys.excepthook

    def abort_all(kind, value, traceback):
        previous(kind, value, traceback)
        group = _group
        if group is None:
            return
        sys.stderr.write(f"minidl.distributed: rank {group.rank} of {group.world_size} stopped with "
                         f"{kind.__name__}; aborting all {group.world_size} processes\n")
        sys.stderr.flush()
        group.abort(1)
    sys.excepthook = abort_all


def destroy_process_group(group=None):
    global _group
    _require_default(group)
    _group.shutdown()
    _group = None


def default_group():
    """The backend object of the default group (for DistributedDataParallel and SyncBatchNorm)."""
    return _require_default(None)


def _require_default(group):
    if group is not None and group is not GroupMember.WORLD:
        raise ValueError("only the default group (group=None) is supported")
    if _group is None:
        raise ValueError("Default process group has not been initialized, please make sure to call "
                         "init_process_group.")
    return _group


class GroupMember:
    WORLD = None  # the default group, as torch.distributed.GroupMember.WORLD


def get_rank(group=None):
    return _require_default(group).rank


def get_world_size(group=None):
    return _require_default(group).world_size


def get_backend(group=None):
    return _require_default(group).name


def _finish(work, async_op):
    if async_op:
        return work
    work.wait()
    return None


def all_reduce(tensor, op=ReduceOp.SUM, group=None, async_op=False):
    """Replaces ``tensor`` (in place, on every process) by the reduction of all processes' values."""
    if not isinstance(op, ReduceOp):
        raise ValueError(f"all_reduce: op must be a ReduceOp ({', '.join(o.name for o in ReduceOp)}), got {op!r}")
    backend = _require_default(group)
    return _finish(_in_place(tensor, lambda array: backend.all_reduce(array, op)), async_op)


def broadcast(tensor, src=0, group=None, async_op=False):
    """Copies rank ``src``'s ``tensor`` into ``tensor`` on every process."""
    backend = _require_default(group)
    _check_rank(src, backend, "broadcast", "src")
    return _finish(_in_place(tensor, lambda array: backend.broadcast(array, src)), async_op)


def all_gather(tensor_list, tensor, group=None, async_op=False):
    """Fills ``tensor_list[r]`` with rank r's ``tensor``, on every process."""
    backend = _require_default(group)
    if len(tensor_list) != backend.world_size:
        raise ValueError(f"all_gather: tensor_list has {len(tensor_list)} tensors, the world size is "
                         f"{backend.world_size}")
    xp = get_array_module(tensor.array)
    gathered = xp.empty((backend.world_size,) + tensor.array.shape, dtype=tensor.array.dtype)
    work = backend.all_gather(gathered, xp.ascontiguousarray(tensor.array))

    def scatter_to_list():
        for out, part in zip(tensor_list, gathered):
            if tuple(out.shape) != tuple(part.shape):
                raise ValueError(f"all_gather: output of shape {tuple(out.shape)} for an input of shape "
                                 f"{tuple(part.shape)}")
            out.array[...] = part
    return _finish(_Then(work, scatter_to_list), async_op)


def barrier(group=None, async_op=False):
    """Returns once every process has called it (or raises DistBackendError after the timeout)."""
    return _finish(_require_default(group).barrier(), async_op)


def _check_rank(value, backend, what, name):
    if not 0 <= int(value) < backend.world_size:
        raise ValueError(f"{what}: {name}={value} is not a rank of this group (0 to {backend.world_size - 1})")


def _in_place(tensor, collective):
    """Runs ``collective`` on the tensor's array, through a contiguous copy where needed."""
    array = tensor.array
    if array.flags.c_contiguous:
        return collective(array)
    xp = get_array_module(array)
    contiguous = xp.ascontiguousarray(array)
    work = collective(contiguous)

    def copy_back():
        array[...] = contiguous
    return _Then(work, copy_back)


class _Then(Work):
    """A Work that runs ``then()`` after the collective it wraps completes."""

    def __init__(self, work, then):
        self.work, self.then = work, then

    def wait(self, timeout=None):
        self.work.wait(timeout)
        if self.then is not None:
            then, self.then = self.then, None
            then()
        return True

    def is_completed(self):
        return self.work.is_completed()


__all__ = ["CompletedWork", "DistBackendError", "GroupMember", "ReduceOp", "Work", "all_gather", "all_reduce",
           "barrier", "broadcast", "default_group", "destroy_process_group", "get_backend", "get_node_local_rank",
           "get_rank", "get_world_size", "init_process_group", "is_available", "is_initialized",
           "is_mpi_available", "is_nccl_available"]
