"""Max pooling over channels-last images: numba kernels with NumPy twins, a batch split across threads.

x is (N, H, W, C) in memory, so the C values of one pixel lie side by side.  Forward walks the
output pixels; for each it scans the window's real input pixels in row-major order and keeps, per
channel, the running maximum and the number k = i * KW + j of the kernel offset where it was found
(one pass over x, the inner loop over C contiguous).  The rule is the reference's
(``functions/pooling.py``'s ``window_max``) to the bit:

* the running maximum starts at -inf with k = 0: what the reference holds after offset 0 when that is
  padding, and what the first comparison turns into its value when offset 0 is real; padding elsewhere
  is -inf too and can never win, so padded positions are skipped;
* a value replaces it when it is strictly greater (the first of equal values stays) or NaN (a NaN
  always wins, so a later NaN takes over from an earlier one, as in the reference).

Backward *gathers*: each input pixel adds, in the order of the kernel offset k at which the windows
containing it see it, the g of every window whose winner it is.  That is the order in which the
reference's per-offset ``grad[slice] += where(argmax == k, g, 0)`` adds them, so overlapping windows
(stride < kernel) sum to the same bits, and there are no write conflicts between threads.  A window
whose winner is padding gives no gradient (the reference crops it away).

Each kernel works on one slice of the batch and writes only that slice's part of the result;
``threads.for_ranges`` runs the slices on the CPU's cores (numba kernels release the GIL).  Without
numba (or with MINIDL_DISABLE_NUMBA=1) the NumPy twins run: the reference's strided slices, in
(N, H, W, C) order.
"""
import functools

import numpy as np

from .kernels import compiled_or_twins
from .threads import for_ranges


# ------------------------------------------------------------------ NumPy twins (one batch slice each)
def _offset_slices(i, j, out_hw, stride, dilation):
    """The (N, OH, OW, C) strided slice of the padded input that kernel offset (i, j) reads."""
    (oh, ow), (sh, sw), (dh, dw) = out_hw, stride, dilation
    return (slice(None), slice(i * dh, i * dh + sh * (oh - 1) + 1, sh),
            slice(j * dw, j * dw + sw * (ow - 1) + 1, sw), slice(None))


def _padded_size(out_size, kernel, stride, dilation):
    return (out_size - 1) * stride + dilation * (kernel - 1) + 1


def max_pool_forward_numpy(x, y, argmax, kh, kw, sh, sw, top, left, dh, dw):
    """y = each window's maximum, argmax = its offset number k, for x (n, H, W, C) and y (n, OH, OW, C)."""
    n, h, w, c = x.shape
    oh, ow = y.shape[1:3]
    padded = np.full((n, max(_padded_size(oh, kh, sh, dh), top + h), max(_padded_size(ow, kw, sw, dw), left + w), c),
                     -np.inf, dtype=x.dtype)
    padded[:, top:top + h, left:left + w] = x
    y[...] = padded[_offset_slices(0, 0, (oh, ow), (sh, sw), (dh, dw))]
    argmax[...] = 0
    for k in range(1, kh * kw):
        candidate = padded[_offset_slices(k // kw, k % kw, (oh, ow), (sh, sw), (dh, dw))]
        better = (candidate > y) | np.isnan(candidate)  # strictly greater: the first of equal values stays
        np.copyto(y, candidate, where=better)
        np.copyto(argmax, k, where=better)


def max_pool_backward_numpy(g, argmax, dx, kh, kw, sh, sw, top, left, dh, dw):
    """dx (n, H, W, C) = the sum of g over the windows whose winner each input is, added in offset order."""
    n, h, w, c = dx.shape
    oh, ow = g.shape[1:3]
    grad = np.zeros((n, max(_padded_size(oh, kh, sh, dh), top + h), max(_padded_size(ow, kw, sw, dw), left + w), c),
                    dtype=g.dtype)
    for k in range(kh * kw):
        grad[_offset_slices(k // kw, k % kw, (oh, ow), (sh, sw), (dh, dw))] += np.where(argmax == k, g, 0)
    dx[...] = grad[:, top:top + h, left:left + w]


# ------------------------------------------------------------------ numba kernels (same signatures)
def _compile():
    import numba

    jit = numba.njit(nogil=True, cache=True)  # nogil: the batch slices run in parallel threads

    @jit
    def max_pool_forward(x, y, argmax, kh, kw, sh, sw, top, left, dh, dw):
        n, h, w, c = x.shape
        oh, ow = y.shape[1], y.shape[2]
        lowest = x.dtype.type(-np.inf)
        for b in range(n):
            for r in range(oh):
                for s in range(ow):
                    best, where = y[b, r, s], argmax[b, r, s]
                    for ch in range(c):
                        best[ch] = lowest
                        where[ch] = 0
                    for i in range(kh):
                        row = r * sh - top + i * dh
                        if row < 0 or row >= h:
                            continue
                        for j in range(kw):
                            col = s * sw - left + j * dw
                            if col < 0 or col >= w:
                                continue
                            k = argmax.dtype.type(i * kw + j)
                            pixel = x[b, row, col]
                            for ch in range(c):
                                v = pixel[ch]
                                # selects, not branches (a branch on data mispredicts); | not `or`, which branches
                                better = (v > best[ch]) | (v != v)
                                best[ch] = v if better else best[ch]
                                where[ch] = k if better else where[ch]

    @jit
    def max_pool_backward(g, argmax, dx, kh, kw, sh, sw, top, left, dh, dw):
        n, h, w, c = dx.shape
        oh, ow = g.shape[1], g.shape[2]
        zero = g.dtype.type(0)
        for b in range(n):
            for row in range(h):
                for col in range(w):
                    total = dx[b, row, col]
                    for ch in range(c):
                        total[ch] = 0
                    for i in range(kh):
                        # the output row r whose window sees this row at offset i: r * sh = row + top - i * dh
                        t = row + top - i * dh
                        if t < 0 or t % sh != 0 or t // sh >= oh:
                            continue
                        r = t // sh
                        for j in range(kw):
                            u = col + left - j * dw
                            if u < 0 or u % sw != 0 or u // sw >= ow:
                                continue
                            s = u // sw
                            k = argmax.dtype.type(i * kw + j)
                            g_rs, where = g[b, r, s], argmax[b, r, s]
                            for ch in range(c):
                                total[ch] += g_rs[ch] if where[ch] == k else zero

    return dict(max_pool_forward=max_pool_forward, max_pool_backward=max_pool_backward)


@functools.cache  # compiled, or loaded from numba's cache, once: on first use
def kernels():
    """The batch-slice kernels by name: numba-compiled when possible, else the NumPy twins."""
    return compiled_or_twins(_compile, numpy_kernels)


def numpy_kernels():
    return dict(max_pool_forward=max_pool_forward_numpy, max_pool_backward=max_pool_backward_numpy)


# ------------------------------------------------------------------ whole batches, split across threads
def argmax_dtype(kernel_size):
    """The reference's: one byte per output while the offset number k < KH*KW fits in it."""
    return np.uint8 if kernel_size[0] * kernel_size[1] <= 256 else np.int32


def max_pool(x, out_hw, kernel_size, stride, pads, dilation, kernels=None):
    """(y, argmax) for x (N, H, W, C): both (N, OH, OW, C) C-contiguous arrays; ``pads`` is
    (top, bottom, left, right) as ``functions.pooling.pool_layout`` gives it."""
    k = kernels or globals()["kernels"]()
    n, c = x.shape[0], x.shape[3]
    y = np.empty((n, *out_hw, c), dtype=x.dtype)
    argmax = np.empty(y.shape, dtype=argmax_dtype(kernel_size))
    geometry = (*kernel_size, *stride, pads[0], pads[2], *dilation)
    for_ranges(lambda a, b: k["max_pool_forward"](x[a:b], y[a:b], argmax[a:b], *geometry), n, x.size + 2 * y.size)
    return y, argmax


def max_pool_grad(g, argmax, input_hw, kernel_size, stride, pads, dilation, kernels=None):
    """dx (N, H, W, C) for g and argmax (N, OH, OW, C) C-contiguous."""
    k = kernels or globals()["kernels"]()
    n, c = g.shape[0], g.shape[3]
    dx = np.empty((n, *input_hw, c), dtype=g.dtype)
    geometry = (*kernel_size, *stride, pads[0], pads[2], *dilation)
    for_ranges(lambda a, b: k["max_pool_backward"](g[a:b], argmax[a:b], dx[a:b], *geometry), n,
               dx.size + 2 * g.size)
    return dx
