"""Fused CPU passes for batch norm over channels-last rows (and ReLU), compiled with numba when installed.

BatchNorm on an (N, C, H, W) activation stored channels-last (see conv.py) works on the
(N*H*W, C) matrix of rows: per-channel statistics are column sums, the normalisation is a
per-column scale and shift.  NumPy needs several whole-array passes and temporaries for each
step; these kernels do each step in one pass over the rows, split across the CPU's threads.

Every kernel has a plain NumPy twin (``*_numpy``) with the same result up to rounding;
tests/test_cpu_backend.py checks one against the other.  Without numba (or with
MINIDL_DISABLE_NUMBA=1) the NumPy twins run.  numba is imported on first use, not at
``import minidl``, and compiled kernels are cached on disk.

Each kernel works on one range of rows; ``threads.map_ranges`` runs one range per core (numba
kernels release the GIL).  The numba kernels accumulate sums in float64 (per range, then added):
with float32 data this costs nothing extra in time and keeps the mean and variance accurate over
10^5+ rows.  The NumPy twins sum in the data's dtype with BLAS (a float64 column sum of float32
data is several times slower in NumPy), as accurate as float32 summation allows.
"""
import os

import numpy as np

from .threads import map_ranges


# ------------------------------------------------------------------ NumPy twins (one row range each)
def shifted_sums_numpy(x, shift):
    """(sum over rows of x - shift, sum over rows of (x - shift)^2) per column, as one (2, C) float64 array.

    Sums are accumulated in x's dtype with BLAS/einsum (a float64 column sum of float32 data is
    several times slower in NumPy), as accurate as float32 summation allows.
    """
    centred = x - shift.astype(x.dtype)
    return np.stack([np.ones(len(x), dtype=x.dtype) @ centred,
                     np.einsum("rc,rc->c", centred, centred)]).astype(np.float64)


def scale_shift_numpy(x, scale, shift, out):
    """out = x * scale + shift, per column."""
    np.multiply(x, scale, out=out)
    out += shift


def grad_sums_numpy(g, x, mean):
    """(sum over rows of g, sum over rows of g * (x - mean)) per column, float64, as one (2, C) array."""
    centred = x - mean
    return np.stack([np.ones(len(g), dtype=g.dtype) @ g, np.einsum("rc,rc->c", g, centred)]).astype(np.float64)


def input_grad_numpy(g, x, mean, a, b, c, out):
    """out = g * a + (x - mean) * b + c, per column."""
    np.multiply(g, a, out=out)
    centred = x - mean
    centred *= b
    out += centred
    out += c


def relu_numpy(x, y, positive):
    """y = max(x, 0) (NaN stays NaN) and positive = x > 0, for 1-D x."""
    np.maximum(x, 0, out=y)
    np.greater(x, 0, out=positive)


def relu_grad_numpy(g, positive, out):
    """out = g where positive, else 0 (as PyTorch's threshold_backward: a NaN g where x <= 0 gives 0), 1-D."""
    out[...] = 0
    np.copyto(out, g, where=positive)


# ------------------------------------------------------------------ numba kernels (same signatures)
def _compile():
    import numba

    jit = numba.njit(nogil=True, cache=True)  # nogil: the row ranges run in parallel threads

    @jit
    def shifted_sums(x, shift):
        sums = np.zeros((2, x.shape[1]), dtype=np.float64)
        for r in range(x.shape[0]):
            for c in range(x.shape[1]):
                d = x[r, c] - shift[c]
                sums[0, c] += d
                sums[1, c] += d * d
        return sums

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

    @jit
    def relu(x, y, positive):
        for i in range(x.shape[0]):
            v = x[i]
            positive[i] = v > 0
            y[i] = 0 if v <= 0 else v  # NaN > 0 and NaN <= 0 are both false: NaN passes through, as in np.maximum

    @jit
    def relu_grad(g, positive, out):
        for i in range(g.shape[0]):
            out[i] = g[i] if positive[i] else 0

    return dict(shifted_sums=shifted_sums, scale_shift=scale_shift, grad_sums=grad_sums, input_grad=input_grad,
                relu=relu, relu_grad=relu_grad)


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
    return dict(shifted_sums=shifted_sums_numpy, scale_shift=scale_shift_numpy, grad_sums=grad_sums_numpy,
                input_grad=input_grad_numpy, relu=relu_numpy, relu_grad=relu_grad_numpy)


# ------------------------------------------------------------------ whole-array passes, rows split across threads
def column_mean_and_var(x, kernels=None):
    """Per-column mean and biased variance of x (rows, C), float64, in one pass.

    With the sums taken of x - K for K = the first row (a sample, so close to the mean):
    mean = K + S1/m and var = S2/m - (S1/m)^2; the shift keeps the subtraction free of the
    cancellation that E[x^2] - E[x]^2 suffers when the mean is large against the spread.
    """
    k = kernels or globals()["kernels"]()
    rows = len(x)
    shift = x[0].astype(np.float64)
    sums = sum(map_ranges(lambda a, b: k["shifted_sums"](x[a:b], shift), rows, x.size)) / rows
    return shift + sums[0], np.maximum(sums[1] - sums[0] ** 2, 0)


def scale_shift(x, scale, shift, kernels=None):
    """x * scale + shift per column, a new (rows, C) array."""
    k = kernels or globals()["kernels"]()
    out = np.empty_like(x)
    map_ranges(lambda a, b: k["scale_shift"](x[a:b], scale, shift, out[a:b]), len(x), 2 * x.size)
    return out


def grad_sums(g, x, mean, kernels=None):
    """(sum of g, sum of g * (x - mean)) per column, float64."""
    k = kernels or globals()["kernels"]()
    sums = sum(map_ranges(lambda a, b: k["grad_sums"](g[a:b], x[a:b], mean), len(x), 2 * x.size))
    return sums[0], sums[1]


def input_grad(g, x, mean, a, b, c, kernels=None):
    """g * a + (x - mean) * b + c per column, a new (rows, C) array."""
    k = kernels or globals()["kernels"]()
    out = np.empty_like(x)
    map_ranges(lambda first, stop: k["input_grad"](g[first:stop], x[first:stop], mean, a, b, c, out[first:stop]),
               len(x), 3 * x.size)
    return out


def relu(x, kernels=None):
    """(max(x, 0), x > 0) in one pass over x's memory; both results have x's layout.

    None when x is not float32/float64 or not contiguous in some axis order (then it has no flat view
    to walk).
    """
    k = kernels or globals()["kernels"]()
    order = _memory_order(x)
    if x.dtype not in (np.float32, np.float64) or order is None:
        return None
    y, positive = np.empty_like(x), np.empty_like(x, dtype=bool)  # empty_like keeps x's axis order
    _flat_pass(k["relu"], (x, y, positive), order)
    return y, positive


def relu_grad(g, positive, kernels=None):
    """g where positive else 0, in one pass; None unless g is float32/float64 and g and positive
    lie in memory in the same dense axis order (then there is one flat view of each to walk)."""
    k = kernels or globals()["kernels"]()
    order = _memory_order(positive)
    if g.dtype not in (np.float32, np.float64) or order is None or g.shape != positive.shape \
            or not g.transpose(order).flags.c_contiguous:
        return None
    out = np.empty_like(positive, dtype=g.dtype)
    _flat_pass(k["relu_grad"], (g, positive, out), order)
    return out


def _flat_pass(kernel, arrays, order):
    """kernel(*flat slices) over equal-shaped arrays dense in axis ``order``, split across threads
    (each element read once and written once: 2 values per element for the threading threshold)."""
    flat = [a.transpose(order).reshape(-1) for a in arrays]
    size = flat[0].size
    map_ranges(lambda first, stop: kernel(*(a[first:stop] for a in flat)), size, 2 * size)


def _memory_order(x):
    """The axis order in which x is C-contiguous (largest stride first), or None when it is not dense."""
    order = np.argsort(x.strides, kind="stable")[::-1]
    return order if x.transpose(order).flags.c_contiguous else None
