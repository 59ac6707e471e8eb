"""Fused CPU passes for batch norm over channels-last rows, compiled with numba when it is installed.

BatchNorm on an (N, C, H, W) activation stored channels-last (see conv_cpu.py) works on the
(N*H*W, C) matrix of rows: per-channel statistics are column sums, the normalisation is a
per-column scale and shift.  NumPy needs several whole-array passes and temporaries for each
step; these kernels do each step in one pass over the rows, split across the CPU's threads.

Every kernel has a plain NumPy twin (``*_numpy``) with the same result up to rounding;
tests/test_cpu_kernels.py checks one against the other.  Without numba (or with
MINIDL_DISABLE_NUMBA=1) the NumPy twins run.  numba is imported on first use, not at
``import minidl``, and compiled kernels are cached on disk.

Each kernel works on one range of rows; ``cpu_threads.map_ranges`` runs one range per core (numba
kernels release the GIL).  Sums accumulate in float64 (per range, then added): with float32 data
this costs nothing extra in time and keeps the variance accurate for 10^5+ rows.
"""
import os

import numpy as np

from .cpu_threads import map_ranges


# ------------------------------------------------------------------ NumPy twins (one row range each)
def column_sum_numpy(x):
    """Sum over rows, per column, float64."""
    return x.sum(axis=0, dtype=np.float64)


def centred_squares_numpy(x, mean):
    """Sum over rows of (x - mean)^2, per column, float64."""
    centred = x - mean.astype(x.dtype)
    return np.einsum("rc,rc->c", centred, centred, dtype=np.float64)


def scale_shift_numpy(x, scale, shift, out):
    """out = x * scale + shift, per column."""
    np.multiply(x, scale, out=out)
    out += shift


def grad_sums_numpy(g, x, mean):
    """(sum over rows of g, sum over rows of g * (x - mean)) per column, float64, as one (2, C) array."""
    centred = x - mean
    return np.stack([g.sum(axis=0, dtype=np.float64), np.einsum("rc,rc->c", g, centred, dtype=np.float64)])


def input_grad_numpy(g, x, mean, a, b, c, out):
    """out = g * a + (x - mean) * b + c, per column."""
    np.multiply(g, a, out=out)
    centred = x - mean
    centred *= b
    out += centred
    out += c


# ------------------------------------------------------------------ numba kernels (same signatures)
def _compile():
    import numba

    jit = numba.njit(nogil=True, cache=True)  # nogil: the row ranges run in parallel threads

    @jit
    def column_sum(x):
        total = np.zeros(x.shape[1], dtype=np.float64)
        for r in range(x.shape[0]):
            for c in range(x.shape[1]):
                total[c] += x[r, c]
        return total

    @jit
    def centred_squares(x, mean):
        total = np.zeros(x.shape[1], dtype=np.float64)
        for r in range(x.shape[0]):
            for c in range(x.shape[1]):
                d = x[r, c] - mean[c]
                total[c] += d * d
        return total

    @jit
    def scale_shift(x, scale, shift, out):
        for r in range(x.shape[0]):
            for c in range(x.shape[1]):
                out[r, c] = x[r, c] * scale[c] + shift[c]

    @jit
    def grad_sums(g, x, mean):
        sums = np.zeros((2, x.shape[1]), dtype=np.float64)
        for r in range(x.shape[0]):
            for c in range(x.shape[1]):
                sums[0, c] += g[r, c]
                sums[1, c] += g[r, c] * (x[r, c] - mean[c])
        return sums

    @jit
    def input_grad(g, x, mean, a, b, c_, out):
        for r in range(x.shape[0]):
            for c in range(x.shape[1]):
                out[r, c] = g[r, c] * a[c] + (x[r, c] - mean[c]) * b[c] + c_[c]

    return dict(column_sum=column_sum, centred_squares=centred_squares, scale_shift=scale_shift,
                grad_sums=grad_sums, input_grad=input_grad)


_kernels = None


def kernels():
    """The row-range kernels by name: numba-compiled when possible, else the NumPy twins."""
    global _kernels
    if _kernels is None:
        _kernels = numpy_kernels()
        if os.environ.get("MINIDL_DISABLE_NUMBA", "") not in ("1", "true"):
            try:
                _kernels = _compile()
            except ImportError:
                pass
    return _kernels


def numpy_kernels():
    return dict(column_sum=column_sum_numpy, centred_squares=centred_squares_numpy, scale_shift=scale_shift_numpy,
                grad_sums=grad_sums_numpy, input_grad=input_grad_numpy)


# ------------------------------------------------------------------ whole-array passes, rows split across threads
def column_mean_and_var(x, kernels=None):
    """Per-column mean and biased variance of x (rows, C), float64, in two passes (no cancellation)."""
    k = kernels or globals()["kernels"]()
    rows = len(x)
    mean = sum(map_ranges(lambda a, b: k["column_sum"](x[a:b]), rows)) / rows
    var = sum(map_ranges(lambda a, b: k["centred_squares"](x[a:b], mean), rows)) / rows
    return mean, var


def scale_shift(x, scale, shift, kernels=None):
    """x * scale + shift per column, a new (rows, C) array."""
    k = kernels or globals()["kernels"]()
    out = np.empty_like(x)
    map_ranges(lambda a, b: k["scale_shift"](x[a:b], scale, shift, out[a:b]), len(x))
    return out


def grad_sums(g, x, mean, kernels=None):
    """(sum of g, sum of g * (x - mean)) per column, float64."""
    k = kernels or globals()["kernels"]()
    sums = sum(map_ranges(lambda a, b: k["grad_sums"](g[a:b], x[a:b], mean), len(x)))
    return sums[0], sums[1]


def input_grad(g, x, mean, a, b, c, kernels=None):
    """g * a + (x - mean) * b + c per column, a new (rows, C) array."""
    k = kernels or globals()["kernels"]()
    out = np.empty_like(x)
    map_ranges(lambda first, stop: k["input_grad"](g[first:stop], x[first:stop], mean, a, b, c, out[first:stop]),
               len(x))
    return out
