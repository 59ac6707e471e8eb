"""The "nccl" backend: collectives on CuPy arrays through NCCL (``cupy.cuda.nccl``).

Each process drives one GPU: the one whose index is the process's node-local rank (modulo the
GPUs it sees). NCCL needs every process to hold one "unique id" made by rank 0; with more than
one process it travels over MPI (mpi4py), so a multi-process NCCL run is launched with
``mpirun``; a single process needs no MPI.

Collectives run on a stream of their own. Before each one that stream waits for what the
current stream has queued (the gradients being computed); ``Work.wait()`` makes the current
stream wait for the collective. Neither blocks the host, so the all-reduce of one bucket of
gradients overlaps with the backward pass that computes the next.
"""
import numpy as np

from ..backend import require_cupy
from .work import CompletedWork, DistBackendError, ReduceOp, Work

INSTALL_HINT = ("pip install 'minidl[cuda12]' (or [cuda13]) with an NCCL that CuPy can load "
                "(e.g. pip install nvidia-nccl-cu12), see CuPy's installation guide")

# NCCL's ncclDataType_t and ncclRedOp_t values (nccl.h), as cupy.cuda.nccl names them
NCCL_TYPES = {np.dtype(np.int8): 0, np.dtype(np.uint8): 1, np.dtype(np.int32): 2, np.dtype(np.uint32): 3,
              np.dtype(np.int64): 4, np.dtype(np.uint64): 5, np.dtype(np.float16): 6,
              np.dtype(np.float32): 7, np.dtype(np.float64): 8}
NCCL_OPS = {ReduceOp.SUM: 0, ReduceOp.PRODUCT: 1, ReduceOp.MAX: 2, ReduceOp.MIN: 3, ReduceOp.AVG: 0}


def import_nccl():
    """(cupy, cupy.cuda.nccl), or a clear error saying what is missing."""
    cupy = require_cupy()
    try:
        from cupy.cuda import nccl
    except Exception as error:
        raise RuntimeError(f"the 'nccl' backend needs CuPy built with NCCL, and importing cupy.cuda.nccl failed "
                           f"({type(error).__name__}: {error}). Install it: {INSTALL_HINT}.") from error
    if not getattr(nccl, "available", True):
        raise RuntimeError(f"the 'nccl' backend needs NCCL, and CuPy found none. Install it: {INSTALL_HINT}.")
    return cupy, nccl


class NCCLWork(Work):
    def __init__(self, cupy, done, finish=None):
        self.cupy, self.done, self._finish = cupy, done, finish

    def is_completed(self):
        return self.done.done

    def wait(self, timeout=None):
        self.cupy.cuda.get_current_stream().wait_event(self.done)
        if self._finish is not None:
            finish, self._finish = self._finish, None
            finish()  # queued on the current stream, after the collective
        return True


class NCCLBackend:
    name = "nccl"

    def __init__(self, rank, world_size, local_rank, timeout, mpi_comm=None):
        cupy, nccl = import_nccl()
        self.cupy, self.nccl = cupy, nccl
        self.rank, self.world_size, self.timeout, self.mpi_comm = rank, world_size, timeout, mpi_comm
        self.device = cupy.cuda.Device(local_rank % cupy.cuda.runtime.getDeviceCount())
        self.device.use()  # this process's GPU ("cuda" tensors of this process should live there)
        unique_id = nccl.get_unique_id() if rank == 0 else None
        if world_size > 1:
            unique_id = _share_unique_id(mpi_comm, unique_id)
        with self.device:
            self.comm = _communicator(nccl, world_size, unique_id, rank)
            self.stream = cupy.cuda.Stream(non_blocking=True)

    def all_reduce(self, array, op=ReduceOp.SUM):
        self._check(array, "all_reduce")
        finish = None
        if op is ReduceOp.AVG:
            def finish():
                array[...] /= self.world_size
        return self._start(lambda stream: self.comm.allReduce(array.data.ptr, array.data.ptr, array.size,
                                                              NCCL_TYPES[array.dtype], NCCL_OPS[op], stream),
                           finish)

    def broadcast(self, array, src=0):
        self._check(array, "broadcast")
        return self._start(lambda stream: self.comm.broadcast(array.data.ptr, array.data.ptr, array.size,
                                                              NCCL_TYPES[array.dtype], src, stream))

    def all_gather(self, output, array):
        self._check(array, "all_gather")
        self._check(output, "all_gather")
        return self._start(lambda stream: self.comm.allGather(array.data.ptr, output.data.ptr, array.size,
                                                              NCCL_TYPES[array.dtype], stream))

    def barrier(self):
        """An all-reduce of one number, waited for on the host."""
        with self.device:
            token = self.cupy.zeros(1, dtype=np.float32)
            self.all_reduce(token).wait()
            self.cupy.cuda.get_current_stream().synchronize()
        return CompletedWork()

    def _start(self, collective, finish=None):
        cupy = self.cupy
        with self.device:
            queued = cupy.cuda.Event(disable_timing=True)
            queued.record(cupy.cuda.get_current_stream())
            self.stream.wait_event(queued)  # the collective reads what the current stream computes
            collective(self.stream.ptr)
            done = cupy.cuda.Event(disable_timing=True)
            done.record(self.stream)
        return NCCLWork(cupy, done, finish)

    def _check(self, array, what):
        if not isinstance(array, self.cupy.ndarray):
            raise TypeError(f"{what}: the 'nccl' backend communicates CUDA tensors, got a {type(array).__name__} "
                            "(CPU) array; move it with .to('cuda'), or use the 'mpi' backend for CPU tensors")
        if array.device.id != self.device.id:
            raise ValueError(f"{what}: this process's NCCL communicator drives cuda:{self.device.id}, but the "
                             f"tensor is on cuda:{array.device.id}; move it with .to('cuda:{self.device.id}')")
        if not array.flags.c_contiguous:
            raise ValueError(f"{what}: the 'nccl' backend needs a contiguous tensor; call .contiguous() first")
        if array.dtype not in NCCL_TYPES:
            raise TypeError(f"{what}: NCCL has no type for {array.dtype}; valid dtypes: "
                            + ", ".join(str(t) for t in NCCL_TYPES))

    def progress(self):
        pass  # NCCL runs on its stream by itself

    def abort(self, code=1):
        self.comm.abort()
        if self.mpi_comm is not None:
            self.mpi_comm.Abort(code)

    def shutdown(self):
        self.stream.synchronize()
        self.comm.destroy()


def _share_unique_id(mpi_comm, unique_id):
    """Rank 0's NCCL unique id (128 bytes) sent to every rank over MPI, as raw bytes (no pickle)."""
    if mpi_comm is None:
        raise DistBackendError("the 'nccl' backend with more than one process gets NCCL's unique id to every "
                               "process over MPI: launch with mpirun (and install mpi4py)")
    buffer = np.zeros(128, dtype=np.uint8)
    if unique_id is not None:
        buffer[:] = np.frombuffer(_as_bytes(unique_id), dtype=np.uint8)
    mpi_comm.Bcast(buffer, root=0)
    return buffer.tobytes()


def _as_bytes(unique_id):
    """CuPy 14 gives the id as bytes; older CuPy as a tuple of 128 signed chars."""
    if isinstance(unique_id, bytes):
        return unique_id
    return np.asarray(unique_id, dtype=np.int64).astype(np.int8).tobytes()


def _communicator(nccl, world_size, unique_id, rank):
    """``NcclCommunicator(world_size, id, rank)``, passing the id as the installed CuPy wants it."""
    raw = _as_bytes(unique_id)
    try:
        return nccl.NcclCommunicator(world_size, raw, rank)  # CuPy >= 14: bytes
    except TypeError:  # CuPy < 14 takes a tuple of signed chars (the type check runs before NCCL does)
        return nccl.NcclCommunicator(world_size, tuple(int(v) for v in np.frombuffer(raw, dtype=np.int8)), rank)
