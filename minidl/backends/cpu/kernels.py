"""Fused CPU passes for batch norm over channels-last rows (and ReLU), compiled with numba when installed.

BatchNorm on an (N, C, H, W) activation stored channels-last (see conv.py) works on the
(N*H*W, C) matrix of rows: per-channel statistics are column sums, the normalisation is a
per-column scale and shift.  NumPy needs several whole-array passes and temporaries for each
step; these kernels do each step in one pass over the rows, split across the CPU's threads.

A ReLU after the batch norm (``functions/fused.py``'s BatchNormReLU) rides along in the same
passes: the scale-shift pass also clamps at 0 and writes the mask y > 0, and the two backward
passes read g only where the mask is set (``positive`` below), so g is never masked in a pass of
its own.  The residual join relu(a + b) is one flat pass the same way (``add_relu``), and a block's
last batch norm with its join, relu(batch_norm(x) + r), adds r in the scale-shift pass
(``scale_shift_add_relu``: one pass fewer, writing and reading y no more).

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
import functools
import os

import numpy as np

from .threads import for_ranges, map_ranges


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


def scale_shift_relu_numpy(x, scale, shift, out, positive):
    """out = max(x * scale + shift, 0) (NaN stays NaN) and positive = x * scale + shift > 0, per column."""
    scale_shift_numpy(x, scale, shift, out)
    np.greater(out, 0, out=positive)
    np.maximum(out, 0, out=out)


def scale_shift_add_relu_numpy(x, scale, shift, residual, out, positive):
    """out = max(x * scale + shift + residual, 0) and positive = out > 0 before the clamp, per column."""
    scale_shift_numpy(x, scale, shift, out)
    out += residual
    np.greater(out, 0, out=positive)
    np.maximum(out, 0, out=out)


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


def masked_grad_sums_numpy(g, positive, x, mean):
    """grad_sums of g where positive, else 0."""
    return grad_sums_numpy(_masked(g, positive), x, mean)


def masked_input_grad_numpy(g, positive, x, mean, a, b, c, out):
    """input_grad of g where positive, else 0."""
    input_grad_numpy(_masked(g, positive), x, mean, a, b, c, out)


def masked_input_grad_keeping_g_numpy(g, positive, x, mean, a, b, c, out, masked):
    """masked_input_grad, and masked = g where positive, else 0."""
    masked[...] = _masked(g, positive)
    input_grad_numpy(masked, x, mean, a, b, c, out)


def _masked(g, positive):
    return np.where(positive, g, 0).astype(g.dtype, copy=False)


def relu_numpy(x, y, positive):
    """y = max(x, 0) (NaN stays NaN) and positive = x > 0, for 1-D x."""
    np.maximum(x, 0, out=y)
    np.greater(x, 0, out=positive)


def add_relu_numpy(a, b, y, positive):
    """y = max(a + b, 0) and positive = a + b > 0, for 1-D a and b."""
    np.add(a, b, out=y)
    np.greater(y, 0, out=positive)
    np.maximum(y, 0, out=y)


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
    def scale_shift_relu(x, scale, shift, out, positive):
        for r in range(x.shape[0]):
            for c in range(x.shape[1]):
                v = x[r, c] * scale[c] + shift[c]
                positive[r, c] = v > 0
                out[r, c] = 0 if v <= 0 else v  # NaN passes through, as in relu below

    @jit
    def scale_shift_add_relu(x, scale, shift, residual, out, positive):
        for r in range(x.shape[0]):
            for c in range(x.shape[1]):
                v = x[r, c] * scale[c] + shift[c]  # rounded to x's dtype, then the add: the unfused ops' bits
                v = v + residual[r, c]
                positive[r, c] = v > 0
                out[r, c] = 0 if v <= 0 else v

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

    # The masked twins of grad_sums and input_grad: g counts only where positive (ReLU's gradient,
    # fused).  A select of g or a zero of g's dtype, not g * mask (a NaN g where the mask is off must
    # give 0, as the ReLU's own backward does) and not an if around the sums (a branch on a random mask
    # mispredicts: 14x slower here); the arithmetic stays in g's dtype, so the results are, to the bit,
    # those of the unmasked kernels run on the masked g.
    @jit
    def masked_grad_sums(g, positive, x, mean):
        sums = np.zeros((2, x.shape[1]), dtype=np.float64)
        zero = g.dtype.type(0)
        for r in range(x.shape[0]):
            for c in range(x.shape[1]):
                g_rc = g[r, c] if positive[r, c] else zero
                sums[0, c] += g_rc
                sums[1, c] += g_rc * (x[r, c] - mean[c])
        return sums

    @jit
    def masked_input_grad(g, positive, x, mean, a, b, c_, out):
        zero = g.dtype.type(0)
        for r in range(x.shape[0]):
            for c in range(x.shape[1]):
                g_rc = g[r, c] if positive[r, c] else zero
                out[r, c] = g_rc * a[c] + (x[r, c] - mean[c]) * b[c] + c_[c]

    @jit
    def masked_input_grad_keeping_g(g, positive, x, mean, a, b, c_, out, masked):
        zero = g.dtype.type(0)
        for r in range(x.shape[0]):
            for c in range(x.shape[1]):
                g_rc = g[r, c] if positive[r, c] else zero
                masked[r, c] = g_rc  # an elementwise pass: the extra store keeps it vectorized
                out[r, c] = g_rc * a[c] + (x[r, c] - mean[c]) * b[c] + c_[c]

    @jit
    def relu(x, y, positive):
        for i in range(x.shape[0]):
            v = x[i]
            positive[i] = v > 0
            y[i] = 0 if v <= 0 else v  # NaN > 0 and NaN <= 0 are both false: NaN passes through, as in np.maximum

    @jit
    def add_relu(a, b, y, positive):
        for i in range(a.shape[0]):
            v = a[i] + b[i]
            positive[i] = v > 0
            y[i] = 0 if v <= 0 else v

    @jit
    def relu_grad(g, positive, out):
        for i in range(g.shape[0]):
            out[i] = g[i] if positive[i] else 0

    return dict(shifted_sums=shifted_sums, scale_shift=scale_shift, scale_shift_relu=scale_shift_relu,
                scale_shift_add_relu=scale_shift_add_relu, grad_sums=grad_sums, input_grad=input_grad,
                masked_grad_sums=masked_grad_sums, masked_input_grad=masked_input_grad,
                masked_input_grad_keeping_g=masked_input_grad_keeping_g, relu=relu, add_relu=add_relu,
                relu_grad=relu_grad)


def compiled_or_twins(compile, numpy_kernels):
    """``compile()`` (a module's numba kernels by name), or ``numpy_kernels()`` (their NumPy twins) when numba is
    not installed or MINIDL_DISABLE_NUMBA=1."""
    if os.environ.get("MINIDL_DISABLE_NUMBA", "") not in ("1", "true"):
        try:
            return compile()
        except ImportError:
            pass
    return numpy_kernels()


@functools.cache  # compiled, or loaded from numba's cache, once: on first use
def kernels():
    """The row-range kernels by name: numba-compiled when possible, else the NumPy twins."""
    return compiled_or_twins(_compile, numpy_kernels)


def numpy_kernels():
    return dict(shifted_sums=shifted_sums_numpy, scale_shift=scale_shift_numpy, scale_shift_relu=scale_shift_relu_numpy,
                scale_shift_add_relu=scale_shift_add_relu_numpy, grad_sums=grad_sums_numpy, input_grad=input_grad_numpy,
                masked_grad_sums=masked_grad_sums_numpy, masked_input_grad=masked_input_grad_numpy,
                masked_input_grad_keeping_g=masked_input_grad_keeping_g_numpy, relu=relu_numpy,
                add_relu=add_relu_numpy, relu_grad=relu_grad_numpy)


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
    for_ranges(lambda a, b: k["scale_shift"](x[a:b], scale, shift, out[a:b]), len(x), 2 * x.size)
    return out


def scale_shift_relu(x, scale, shift, kernels=None):
    """(max(x * scale + shift, 0), x * scale + shift > 0) per column, two new (rows, C) arrays, one pass."""
    k = kernels or globals()["kernels"]()
    out, positive = np.empty_like(x), np.empty(x.shape, dtype=bool)
    for_ranges(lambda a, b: k["scale_shift_relu"](x[a:b], scale, shift, out[a:b], positive[a:b]), len(x),
               2 * x.size)
    return out, positive


def scale_shift_add_relu(x, scale, shift, residual, kernels=None):
    """(max(x * scale + shift + residual, 0), x * scale + shift + residual > 0) per column, two new (rows, C)
    arrays, one pass (``residual``: (rows, C) too)."""
    k = kernels or globals()["kernels"]()
    out, positive = np.empty_like(x), np.empty(x.shape, dtype=bool)
    for_ranges(lambda a, b: k["scale_shift_add_relu"](x[a:b], scale, shift, residual[a:b], out[a:b], positive[a:b]),
               len(x), 3 * x.size)
    return out, positive


def grad_sums(g, x, mean, positive=None, kernels=None):
    """(sum of g, sum of g * (x - mean)) per column, float64; with ``positive``, of g where positive, else 0."""
    k = kernels or globals()["kernels"]()
    if positive is None:
        sums = map_ranges(lambda a, b: k["grad_sums"](g[a:b], x[a:b], mean), len(x), 2 * x.size)
    else:
        sums = map_ranges(lambda a, b: k["masked_grad_sums"](g[a:b], positive[a:b], x[a:b], mean), len(x),
                          2 * x.size)
    sums = sum(sums)
    return sums[0], sums[1]


def input_grad(g, x, mean, a, b, c, positive=None, kernels=None, keep_masked=False):
    """g * a + (x - mean) * b + c per column, a new (rows, C) array; with ``positive``, of g where
    positive, else 0.  ``keep_masked``: return (that array, the masked g), both from the one pass."""
    k = kernels or globals()["kernels"]()
    out = np.empty_like(x)
    if positive is None:
        def work(first, stop):
            k["input_grad"](g[first:stop], x[first:stop], mean, a, b, c, out[first:stop])
    elif keep_masked:
        masked = np.empty_like(g)

        def work(first, stop):
            k["masked_input_grad_keeping_g"](g[first:stop], positive[first:stop], x[first:stop], mean, a, b, c,
                                             out[first:stop], masked[first:stop])
    else:
        def work(first, stop):
            k["masked_input_grad"](g[first:stop], positive[first:stop], x[first:stop], mean, a, b, c, out[first:stop])
    for_ranges(work, len(x), 3 * x.size)
    return (out, masked) if keep_masked else out


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


def add_relu(a, b, kernels=None):
    """(max(a + b, 0), a + b > 0) in one pass; both results have a's layout.

    None unless a and b are float32/float64 arrays of one shape and dtype that lie in memory in the
    same dense axis order (then there is one flat view of each to walk).
    """
    k = kernels or globals()["kernels"]()
    order = _memory_order(a)
    if a.dtype not in (np.float32, np.float64) or b.dtype != a.dtype or b.shape != a.shape or order is None \
            or not b.transpose(order).flags.c_contiguous:
        return None
    y, positive = np.empty_like(a), np.empty_like(a, dtype=bool)
    _flat_pass(k["add_relu"], (a, b, y, positive), order, values_per_element=3)
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


def _flat_pass(kernel, arrays, order, values_per_element=2):
    """kernel(*flat slices) over equal-shaped arrays dense in axis ``order``, split across threads
    (``values_per_element`` read or written, for the threading threshold: ReLU reads one, writes one)."""
    flat = [a.transpose(order).reshape(-1) for a in arrays]
    size = flat[0].size
    for_ranges(lambda first, stop: kernel(*(a[first:stop] for a in flat)), size, values_per_element * size)


def _memory_order(x):
    """The axis order in which x is C-contiguous (largest stride first), or None when it is not dense."""
    order = np.argsort(x.strides, kind="stable")[::-1]
    return order if x.transpose(order).flags.c_contiguous else None
