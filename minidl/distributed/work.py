"""What every backend shares: reduction operations, the error a failed collective raises, and the
``Work`` handle an asynchronous collective returns."""
import enum
import time


class ReduceOp(enum.Enum):
    """How ``all_reduce`` combines the processes' values (``torch.distributed.ReduceOp``)."""
    SUM = "sum"
    PRODUCT = "product"
    MIN = "min"
    MAX = "max"
    AVG = "avg"  # the sum divided by the world size, after the reduction


class DistBackendError(RuntimeError):
    """A collective failed or timed out (another process stopped, raised, or called a different
    collective). ``torch.distributed`` raises an error of this name for the same reasons."""


class Work:
    """The handle of a collective started with ``async_op=True``: ``wait()`` returns once the
    result is in the array (or, for NCCL, once the current CUDA stream is ordered after it)."""

    def wait(self, timeout=None):
        raise NotImplementedError

    def is_completed(self):
        raise NotImplementedError


class CompletedWork(Work):
    """A collective that finished when it was called (world size 1, or a blocking one)."""

    def __init__(self, finish=None):
        self._finish = finish

    def wait(self, timeout=None):
        if self._finish is not None:
            finish, self._finish = self._finish, None
            finish()
        return True

    def is_completed(self):
        return True


def wait_polling(test, timeout, describe):
    """Calls ``test()`` (True once done) until it is True; raises DistBackendError after ``timeout``
    seconds. The pause between tests grows from nothing to 1 ms, so a long wait leaves the CPU to
    the other processes (two ranks share two cores here) while a short one costs no latency."""
    deadline = time.monotonic() + timeout
    pause = 0.0
    while not test():
        if time.monotonic() > deadline:
            raise DistBackendError(f"{describe()} timed out after {timeout:g} s: another process stopped, "
                                   "raised, or called a different collective (every process must call the "
                                   "same collectives in the same order). Set the limit with "
                                   "init_process_group(timeout=...).")
        time.sleep(pause)
        pause = min(2 * pause + 1e-5, 1e-3)
