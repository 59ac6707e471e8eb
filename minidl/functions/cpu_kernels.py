"""Fused CPU passes for batch norm over channels-last rows, compiled with numba when it is installed.

BatchNorm on an (N, C, H, W) activation stored channels-last (see conv_cpu.py) works on the
(N*H*W, C) matrix of rows: per-channel statistics are column sums, the normalisation is a
per-column scale and shift.  NumPy needs several whole-array passes and temporaries for each
step; these kernels do each step in one pass over the rows, split across the CPU's threads.

Every kernel has a plain NumPy twin (``*_numpy``) with the same result up to rounding;
tests/test_cpu_kernels.py checks one against the other.  Without numba (or with
MINIDL_DISABLE_NUMBA=1) the NumPy twins run.  numba is imported on first use, not at
``import minidl``, and compiled kernels are cached on disk.

Sums accumulate in float64 (per thread-block partial sums, then added): with float32 data this
costs nothing extra in time and keeps the variance accurate for 10^5+ rows.
"""
import os

import numpy as np

ROW_BLOCKS = 64  # partial sums per kernel call: enough blocks for any thread count, few to add up


# ------------------------------------------------------------------ NumPy twins
def column_sums_numpy(x):
    """(sum over rows of x, sum over rows of (x - mean)^2) per column, float64."""
    total = x.sum(axis=0, dtype=np.float64)
    centred = x - (total / len(x)).astype(x.dtype)
    return total, np.einsum("rc,rc->c", centred, centred, dtype=np.float64)


def scale_shift_numpy(x, scale, shift, out):
    """out = x * scale + shift, per column."""
    np.multiply(x, scale, out=out)
    out += shift
    return out


def grad_sums_numpy(g, x, mean):
    """(sum over rows of g, sum over rows of g * (x - mean)) per column, float64."""
    centred = x - mean
    return g.sum(axis=0, dtype=np.float64), np.einsum("rc,rc->c", g, centred, dtype=np.float64)


def input_grad_numpy(g, x, mean, a, b, c, out):
    """out = g * a + (x - mean) * b + c, per column."""
    np.multiply(g, a, out=out)
    centred = x - mean
    centred *= b
    out += centred
    out += c
    return out


# ------------------------------------------------------------------ numba kernels
def _compile():
    import numba

    jit = numba.njit(parallel=True, cache=True, fastmath=False)

    @jit
    def column_sums(x):
        rows, cols = x.shape
        per_block = (rows + ROW_BLOCKS - 1) // ROW_BLOCKS
        partial = np.zeros((ROW_BLOCKS, cols), dtype=np.float64)
        for b in numba.prange(ROW_BLOCKS):
            for r in range(b * per_block, min(rows, (b + 1) * per_block)):
                for c in range(cols):
                    partial[b, c] += x[r, c]
        total = partial.sum(axis=0)
        mean = total / rows
        squares = np.zeros((ROW_BLOCKS, cols), dtype=np.float64)
        for b in numba.prange(ROW_BLOCKS):
            for r in range(b * per_block, min(rows, (b + 1) * per_block)):
                for c in range(cols):
                    d = x[r, c] - mean[c]
                    squares[b, c] += d * d
        return total, squares.sum(axis=0)

    @jit
    def scale_shift(x, scale, shift, out):
        rows, cols = x.shape
        for r in numba.prange(rows):
            for c in range(cols):
                out[r, c] = x[r, c] * scale[c] + shift[c]
        return out

    @jit
    def grad_sums(g, x, mean):
        rows, cols = x.shape
        per_block = (rows + ROW_BLOCKS - 1) // ROW_BLOCKS
        sum_g = np.zeros((ROW_BLOCKS, cols), dtype=np.float64)
        sum_gx = np.zeros((ROW_BLOCKS, cols), dtype=np.float64)
        for b in numba.prange(ROW_BLOCKS):
            for r in range(b * per_block, min(rows, (b + 1) * per_block)):
                for c in range(cols):
                    sum_g[b, c] += g[r, c]
                    sum_gx[b, c] += g[r, c] * (x[r, c] - mean[c])
        return sum_g.sum(axis=0), sum_gx.sum(axis=0)

    @jit
    def input_grad(g, x, mean, a, b, c_, out):
        rows, cols = x.shape
        for r in numba.prange(rows):
            for c in range(cols):
                out[r, c] = g[r, c] * a[c] + (x[r, c] - mean[c]) * b[c] + c_[c]
        return out

    return column_sums, scale_shift, grad_sums, input_grad


_kernels = None


def kernels():
    """(column_sums, scale_shift, grad_sums, input_grad): numba-compiled when possible, else the NumPy twins."""
    global _kernels
    if _kernels is None:
        _kernels = (column_sums_numpy, scale_shift_numpy, grad_sums_numpy, input_grad_numpy)
        if os.environ.get("MINIDL_DISABLE_NUMBA", "") not in ("1", "true"):
            try:
                _kernels = _compile()
            except ImportError:
                pass
    return _kernels
