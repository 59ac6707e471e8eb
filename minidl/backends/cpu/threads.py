"""Coarse-grained CPU threading: split a batch into a few slices and run them on every core at once.

NumPy's copies and the GEMMs of small chunks each run on one core; OpenBLAS threads every GEMM call
itself, which on small, many calls costs one synchronisation per call (and on a busy machine one
late thread stalls the other).  Here the batch is cut into a few contiguous slices per core; the
calling thread and the pool's workers each take the next slice not yet taken until none is left,
with their BLAS calls single-threaded (OpenBLAS's per-thread setting), so a whole op synchronises
once.  Taking slices as they come (rather than one fixed half per thread) keeps both cores busy when
a worker wakes up late or runs slower: waking a thread costs tens of microseconds on a VM, and the
calling thread starts on the first slice at once.  NumPy releases the GIL inside copies, ufuncs and
matmul, so the threads really run in parallel.

``MINIDL_NUM_THREADS`` sets the number of threads (default: the CPUs this process may use).
"""
import contextlib
import ctypes
import glob
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

_pool = None
_inside = threading.local()  # .worker: this thread is running a slice of map_ranges


def num_threads():
    value = os.environ.get("MINIDL_NUM_THREADS")
    if value:
        return max(1, int(value))
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def split(count, parts):
    """``parts`` contiguous (first, stop) ranges covering range(count), none empty."""
    parts = max(1, min(parts, count))
    bounds = [count * i // parts for i in range(parts + 1)]
    return list(zip(bounds[:-1], bounds[1:]))


# Handing a range to another thread is not free here: a few tens of microseconds per op to wake a worker, and
# as much again each time both threads want the GIL at once (between two ranges, a thread runs Python: it
# takes the next range and calls the kernel).  So the split makes few ranges: on 2 cores these three rules
# made ResNet-20's training step 15-20% faster at batch 16 and 32, a few percent at batch 128 (docs/performance.md).
PARALLEL_MIN_SIZE = 1 << 19  # values; below this one thread is faster than two
# Every parallel sum is cut into at most this many slices, whatever the thread count (reproducible sums; see
# map_ranges): 4 per thread on 4 cores, enough to balance 2 to 8 threads...
FIXED_SLICES = 16
MIN_SLICE_SIZE = 1 << 16  # ...and into fewer for a smaller op: slices of at least this many values
# Work whose ranges write their own part of the result (for_ranges) takes this many ranges per thread: two
# still balance a worker that starts late, and each range more costs one more GIL handover.
RANGES_PER_THREAD = 2


def map_ranges(work, count, size=None, min_size=None):
    """[work(first, stop) for each range of split(count, ...)], in range order, run in parallel threads.

    The op is cut into FIXED_SLICES ranges (fewer if ``count`` is smaller, or if ``size`` is given in values
    and slices of MIN_SLICE_SIZE values would be fewer), whatever the number of threads, so results do not
    depend on it; the calling thread and num_threads() - 1 pool workers take the ranges one at a time,
    each the next one nobody has taken yet.  A worker that has not started when the ranges run out is
    cancelled instead of waited for.  ``size``: the number of values the whole op reads or writes;
    below ``min_size`` (default PARALLEL_MIN_SIZE) the calling thread does it all in one range, since
    waking a worker and sharing the GIL with it costs 50-200 us here (a small batch trains 2-3x
    faster on one thread).  A ``min_size`` in other units (FLOPs) keeps FIXED_SLICES.
    """
    if _one_call(size, min_size):
        return [work(0, count)]
    # The ranges depend on the op's size only, never on the number of threads, and each runs with
    # single-threaded BLAS: so a sum over ranges (BatchNorm's statistics, a weight gradient) adds the
    # same partial sums in the same order on 1 thread or 16, and a run gives the same bits either way.
    return _run_ranges(work, split(count, _slice_count(size, min_size)))


def _slice_count(size, min_size):
    """How many slices a sum of ``size`` values (or FLOPs, with ``min_size``) is cut into; see map_ranges."""
    if size is None or min_size is not None:
        return FIXED_SLICES
    return max(2, min(FIXED_SLICES, size // MIN_SLICE_SIZE))


def _one_call(size, min_size):
    """Whether an op runs as one call on the calling thread: it is smaller than ``min_size`` (default
    PARALLEL_MIN_SIZE), or this thread is already running a range of another op."""
    small = size is not None and size < (PARALLEL_MIN_SIZE if min_size is None else min_size)
    return small or getattr(_inside, "worker", False)


def _run_ranges(work, ranges):
    """[work(*bounds) for bounds in ranges], the ranges shared by the calling thread and the pool's workers."""
    threads = min(num_threads(), len(ranges))
    if threads == 1:
        return _single_threaded_blas(lambda: [work(*bounds) for bounds in ranges])
    pool = _get_pool(threads - 1)
    results = [None] * len(ranges)
    next_index = iter(range(len(ranges)))  # next() on a range iterator is atomic under the GIL
    lock = threading.Lock()

    def take_ranges():
        while True:
            with lock:
                index = next(next_index, None)
            if index is None:
                return
            results[index] = work(*ranges[index])

    futures = [pool.submit(_single_threaded_blas, take_ranges) for _ in range(threads - 1)]
    _single_threaded_blas(take_ranges)
    for future in futures:
        if not future.cancel():  # cancel() is False once the worker started: wait for its last range
            future.result()
    return results


def map_ranges_later(work, count, finish, size=None, min_size=None):
    """``finish(map_ranges(work, count, size, min_size))``, computed while the calling thread goes on: the pool's
    workers start on the ranges now; ``.result()`` of what this returns takes the ranges nobody has taken yet,
    waits for the others and returns the value.  (A convolution's weight gradient, which nothing else in
    backward reads: the second core computes it while the first runs the rest of the graph.)  The same
    ranges as map_ranges, so the same bits; one thread, or a small op, computes it now."""
    if num_threads() == 1 or _one_call(size, min_size):
        return Ready(finish(map_ranges(work, count, size, min_size)))
    return Background(work, split(count, _slice_count(size, min_size)), finish)


class Ready:
    """A value map_ranges_later computed at once."""

    def __init__(self, value):
        self.value = value

    def result(self):
        return self.value


class Background:
    """Ranges that the pool's workers start at once and the calling thread joins in on when it asks for the result
    (see map_ranges_later): ``finish(parts)`` runs on the thread that completes the last range."""

    def __init__(self, work, ranges, finish):
        self.work, self.ranges, self.finish = work, ranges, finish
        self.parts = [None] * len(ranges)
        self.next_index = iter(range(len(ranges)))
        self.left = len(ranges)
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.value = self.error = None
        workers = min(num_threads(), len(ranges)) - 1
        self.futures = [_get_pool(workers).submit(_single_threaded_blas, self._take_ranges) for _ in range(workers)]

    def _take_ranges(self):
        try:
            while True:
                with self.lock:
                    index = next(self.next_index, None)
                if index is None:
                    return
                self.parts[index] = self.work(*self.ranges[index])
                with self.lock:
                    self.left -= 1
                    last = self.left == 0
                if last:
                    self.value = self.finish(self.parts)
                    self.done.set()
        except BaseException as error:  # re-raised by result(), on the thread that asks
            self.error = error
            self.done.set()
            raise

    def result(self):
        if not self.done.is_set():
            for future in self.futures:
                future.cancel()  # a worker that has not started need not: this thread takes its ranges
            _single_threaded_blas(self._take_ranges)
            self.done.wait()
        if self.error is not None:
            raise self.error
        return self.value


def for_ranges(work, count, size=None, min_size=None):
    """work(first, stop) over ranges covering range(count), for work whose ranges each write their own part
    of the result, so that the split cannot change it (a copy, an elementwise pass, a convolution image by
    image).  One thread, or an op smaller than ``min_size`` (as in map_ranges), makes one call
    ``work(0, count)``; more threads take RANGES_PER_THREAD ranges each.  (A sum over ranges must use
    map_ranges itself: its fixed ranges make the sum the same on any number of threads.)"""
    parts = for_ranges_parts(size, min_size)
    if parts == 1:
        work(0, count)
    else:
        _run_ranges(work, split(count, parts))


def for_ranges_parts(size=None, min_size=None):
    """How many ranges for_ranges cuts an op into (fewer when it has fewer items): 1, one call on the calling
    thread, or RANGES_PER_THREAD per thread."""
    threads = num_threads()
    return 1 if threads == 1 or _one_call(size, min_size) else threads * RANGES_PER_THREAD


def _get_pool(workers):
    global _pool
    if _pool is None or _pool._max_workers < workers or _pool.pid != os.getpid():
        # a new pool also after a fork: the child process has none of the parent's worker threads
        _pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="minidl-cpu")
        _pool.pid = os.getpid()
    return _pool


def _single_threaded_blas(work):
    _inside.worker = True
    try:
        with blas_threads(1):
            return work()
    finally:
        _inside.worker = False


_set_local = False  # not looked up yet


def _openblas_set_num_threads_local():
    """NumPy's OpenBLAS ``openblas_set_num_threads_local`` (per calling thread), or None."""
    global _set_local
    if _set_local is False:
        _set_local = None
        libs = os.path.join(os.path.dirname(np.__file__), os.pardir, "numpy.libs")
        for path in glob.glob(os.path.join(libs, "*openblas*")):
            try:
                function = ctypes.CDLL(path).openblas_set_num_threads_local
            except (OSError, AttributeError):
                continue
            function.restype, function.argtypes = ctypes.c_int, [ctypes.c_int]
            _set_local = function
            break
    return _set_local


@contextlib.contextmanager
def blas_threads(count):
    """Limit NumPy's OpenBLAS to ``count`` threads for BLAS calls made by this thread (no-op elsewhere)."""
    set_local = _openblas_set_num_threads_local()
    previous = set_local(count) if set_local is not None else None
    try:
        yield
    finally:
        if set_local is not None:
            set_local(previous)


def ufunc(function, a, b, out_dtype=None):
    """``function(a, b)`` (a NumPy ufunc) with the leading axis split across threads.

    ``a`` is a NumPy array, ``b`` an array of the same shape or a scalar; the result has ``a``'s
    memory layout (like NumPy's order='K') and dtype ``out_dtype`` (default ``a.dtype``), which
    must be the dtype ``function(a, b)`` gives.  Small arrays take one call on this thread.
    """
    if a.ndim == 0:
        return function(a, b)
    out = np.empty_like(a, dtype=out_dtype)
    if 3 * a.size < PARALLEL_MIN_SIZE or num_threads() == 1:  # reads 2 values, writes 1
        function(a, b, out=out)
    elif np.ndim(b) == 0:
        for_ranges(lambda first, stop: function(a[first:stop], b, out=out[first:stop]), len(a))
    else:
        for_ranges(lambda first, stop: function(a[first:stop], b[first:stop], out=out[first:stop]), len(a))
    return out


def add(a, b):
    """a + b, a new array; when both are NumPy arrays of one shape and dtype (a residual add, or the
    two gradients of a residual branch) it has a's memory layout and is split across threads,
    else it is one plain ``a + b``."""
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.shape == b.shape and a.dtype == b.dtype:
        return ufunc(np.add, a, b)
    return a + b
