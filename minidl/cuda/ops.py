"""Python wrappers around minidl's CUDA kernels (``kernels/*.cu``).

Each ``*_gpu`` function takes and returns CuPy arrays and does what a piece of generic array
code does.  That code is either the op itself (im2col/col2im have exactly the signature of
``functions.conv.im2col``/``col2im``) or, where the op's own internals differ (its saved
arg-max format, its reduction), a ``*_reference`` written out here in plain ``xp`` calls and
checked against PyTorch; the GPU tests compare each kernel with both.

==========================  ===================================  ==================================
kernel wrapper              generic code it replaces             semantics pinned by
==========================  ===================================  ==================================
im2col_gpu                  functions.conv.im2col                (the same function)
col2im_gpu                  functions.conv.col2im                (the same function)
batch_norm_forward_gpu      functions.batchnorm.BatchNorm (+ReLU) batch_norm_forward_reference
batch_norm_inference_gpu    BatchNorm in eval mode               (x - rm)/sqrt(rv + eps)*w + b
batch_norm_backward_gpu     BatchNorm.backward                   batch_norm_backward_reference
max_pool2d_forward_gpu      functions.pooling.MaxPool2d          max_pool2d_forward_reference
max_pool2d_backward_gpu     MaxPool2d.backward                   max_pool2d_backward_reference
softmax_cross_entropy_*     functions.loss.CrossEntropy (rows)   softmax_cross_entropy_*_reference
dropout_*_gpu               functions.dropout.Dropout            x * (u >= p) / (1 - p)
sgd_update_multi            optim.sgd.sgd_update, per tensor     sgd_update_reference
adam_update_multi           optim Adam/AdamW update, per tensor  adam_update_reference
float_to_bf16_bits_gpu      amp.round_to_bfloat16                (the same rounding)
==========================  ===================================  ==================================

Kernels take float32 or float64 (the ``_f32``/``_f64`` instantiations) and C-contiguous
arrays; the wrappers make inputs contiguous.  Every kernel loops grid-stride, so any size
works.  Launch sizes: ``_THREADS`` threads per block, at most ``_MAX_BLOCKS`` blocks.
"""
import math

import numpy as np

from .compile import dtype_suffix, get_kernel

_THREADS = 256
_MAX_BLOCKS = 65535


def _pair(value, name):
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
        return int(value[0]), int(value[1])
    return int(value), int(value)


def _blocks(total, threads=_THREADS):
    return max(1, min(_MAX_BLOCKS, (int(total) + threads - 1) // threads))


def _launch(file, function, dtype, total, args, threads=_THREADS):
    name = function if dtype is None else f"{function}_{dtype_suffix(dtype)}"
    get_kernel(file, name)((_blocks(total, threads),), (threads,), args)


def _scalar(value, dtype):
    return np.dtype(dtype).type(value)


# ---------------------------------------------------------------------------------- im2col
def _conv_geometry(input_shape, kernel_size, stride, padding, dilation):
    """Normalised pairs, ``padding`` as (top, bottom, left, right), and (OH, OW)."""
    (KH, KW), (SH, SW), (DH, DW) = (_pair(kernel_size, "kernel_size"), _pair(stride, "stride"),
                                    _pair(dilation, "dilation"))
    if isinstance(padding, (tuple, list)) and len(padding) == 4:
        top, bottom, left, right = (int(p) for p in padding)
    else:
        (top, left) = _pair(padding, "padding")
        bottom, right = top, left
    H, W = input_shape[2:]
    OH = (H + top + bottom - DH * (KH - 1) - 1) // SH + 1
    OW = (W + left + right - DW * (KW - 1) - 1) // SW + 1
    if OH <= 0 or OW <= 0:
        raise ValueError(f"im2col: kernel ({KH}, {KW}) with dilation ({DH}, {DW}) does not fit the padded input "
                         f"({H + top + bottom}, {W + left + right})")
    return (KH, KW), (SH, SW), (top, left), (DH, DW), (OH, OW)


def _conv_args(total, input_shape, geometry):
    N, C, H, W = input_shape
    (KH, KW), (SH, SW), (PT, PL), (DH, DW), (OH, OW) = geometry
    return tuple(np.int32(v) for v in (N, C, H, W, KH, KW, OH, OW, SH, SW, PT, PL, DH, DW))


def im2col_gpu(x, kernel_size, stride, padding, dilation):
    """Kernel version of ``minidl.functions.conv.im2col`` (same arguments and result).

    x (N, C, H, W) -> cols (C*KH*KW, N*OH*OW); ``padding`` = (top, bottom, left, right)
    (a pair or an int is accepted too).  One kernel launch replaces the strided view and
    the reshaping copy.
    """
    import cupy
    x = cupy.ascontiguousarray(x)
    geometry = _conv_geometry(x.shape, kernel_size, stride, padding, dilation)
    (KH, KW), _, _, _, (OH, OW) = geometry
    N, C = x.shape[:2]
    cols = cupy.empty((C * KH * KW, N * OH * OW), dtype=x.dtype)
    _launch("im2col.cu", "im2col", x.dtype, cols.size,
            (x, cols, np.int64(cols.size)) + _conv_args(cols.size, x.shape, geometry))
    return cols


def col2im_gpu(cols, input_shape, kernel_size, stride, padding, dilation):
    """Kernel version of ``minidl.functions.conv.col2im``: cols (C*KH*KW, N*OH*OW) -> dx (N, C, H, W).

    A gather (each thread sums the entries that read its pixel) instead of the KH*KW
    strided scatter-adds: no atomics, deterministic.
    """
    import cupy
    cols = cupy.ascontiguousarray(cols)
    input_shape = tuple(input_shape)
    geometry = _conv_geometry(input_shape, kernel_size, stride, padding, dilation)
    (KH, KW), _, _, _, (OH, OW) = geometry
    N, C = input_shape[:2]
    expected = (C * KH * KW, N * OH * OW)
    if cols.size != expected[0] * expected[1]:
        raise ValueError(f"col2im: cols has shape {cols.shape}, but input {input_shape} with this "
                         f"kernel/stride/padding/dilation needs {expected}")
    dx = cupy.empty(input_shape, dtype=cols.dtype)
    _launch("col2im.cu", "col2im", cols.dtype, dx.size,
            (cols, dx, np.int64(dx.size)) + _conv_args(dx.size, input_shape, geometry))
    return dx


# ---------------------------------------------------------------------------------- batch norm
def _channel_axes(x):
    return (0,) + tuple(range(2, x.ndim))


def _per_channel(v, x):
    return v.reshape((1, -1) + (1,) * (x.ndim - 2))


def batch_norm_forward_reference(x, gamma, beta, eps, relu=False):
    """Training-mode batch norm over every axis but 1: returns (y, mean, var, invstd), var biased."""
    from ..backend import get_array_module
    xp = get_array_module(x)
    axes = _channel_axes(x)
    mean = x.mean(axis=axes)
    var = ((x - _per_channel(mean, x)) ** 2).mean(axis=axes)
    invstd = 1 / xp.sqrt(var + xp.asarray(eps, dtype=x.dtype))
    y = (x - _per_channel(mean, x)) * _per_channel(invstd * gamma, x) + _per_channel(beta, x)
    return (xp.maximum(y, 0) if relu else y), mean, var, invstd


def batch_norm_backward_reference(g, x, y, gamma, mean, invstd, relu=False):
    """(dx, dgamma, dbeta) by the closed form; ``y`` (the forward output) masks g when relu."""
    axes = _channel_axes(x)
    if relu:
        g = g * (y > 0)
    xhat = (x - _per_channel(mean, x)) * _per_channel(invstd, x)
    M = x.size // x.shape[1]
    dbeta = g.sum(axis=axes)
    dgamma = (g * xhat).sum(axis=axes)
    dx = _per_channel(gamma * invstd, x) * (g - _per_channel(dbeta / M, x) - xhat * _per_channel(dgamma / M, x))
    return dx, dgamma, dbeta


def _bn_shapes(x):
    if x.ndim < 2:
        raise ValueError(f"batch_norm: expected an input with at least 2 dims (N, C, ...), got shape {x.shape}")
    N, C = x.shape[:2]
    return N, C, int(np.prod(x.shape[2:], dtype=np.int64))


_BN_CHUNK = 2048  # at least this many values per (channel, chunk) block
_BN_BLOCKS = 1024  # enough blocks to fill a large GPU several times over


def _bn_slices(M, C):
    """How many chunks each channel's M values are cut into for the per-channel reductions."""
    return max(1, min(-(-M // _BN_CHUNK), -(-_BN_BLOCKS // C)))


def _affine(gamma, beta, C, dtype):
    import cupy
    gamma = cupy.ones(C, dtype=dtype) if gamma is None else cupy.ascontiguousarray(gamma, dtype=dtype)
    beta = cupy.zeros(C, dtype=dtype) if beta is None else cupy.ascontiguousarray(beta, dtype=dtype)
    return gamma, beta


def batch_norm_forward_gpu(x, gamma, beta, eps, relu=False):
    """Kernel version of ``batch_norm_forward_reference``: (y, mean, var, invstd).

    The caller updates the running statistics from mean and var (running_var uses the
    unbiased var * M / (M - 1), as PyTorch does).
    """
    import cupy
    x = cupy.ascontiguousarray(x)
    N, C, HW = _bn_shapes(x)
    gamma, beta = _affine(gamma, beta, C, x.dtype)
    slices = _bn_slices(N * HW, C)
    partial_mean = cupy.empty(C * slices, dtype=x.dtype)
    partial_m2 = cupy.empty(C * slices, dtype=x.dtype)
    mean = cupy.empty(C, dtype=x.dtype)
    var = cupy.empty(C, dtype=x.dtype)
    suffix = dtype_suffix(x.dtype)
    get_kernel("batchnorm.cu", f"bn_stats_partial_{suffix}")(
        (C * slices,), (_THREADS,), (x, partial_mean, partial_m2, np.int32(N), np.int32(C), np.int64(HW),
                                     np.int32(slices)),
        shared_mem=_THREADS * x.dtype.itemsize)
    _launch("batchnorm.cu", "bn_stats_finalize", x.dtype, C,
            (partial_mean, partial_m2, mean, var, np.int32(N), np.int32(C), np.int64(HW), np.int32(slices)))
    invstd = cupy.reciprocal(cupy.sqrt(var + _scalar(eps, x.dtype)))
    return _bn_apply(x, mean, invstd, gamma, beta, relu), mean, var, invstd


def batch_norm_inference_gpu(x, running_mean, running_var, gamma, beta, eps, relu=False):
    """Eval-mode batch norm: y = (x - running_mean) / sqrt(running_var + eps) * gamma + beta."""
    import cupy
    x = cupy.ascontiguousarray(x)
    _, C, _ = _bn_shapes(x)
    gamma, beta = _affine(gamma, beta, C, x.dtype)
    mean = cupy.ascontiguousarray(running_mean, dtype=x.dtype)
    invstd = cupy.reciprocal(cupy.sqrt(cupy.asarray(running_var, dtype=x.dtype) + _scalar(eps, x.dtype)))
    return _bn_apply(x, mean, invstd, gamma, beta, relu)


def _bn_apply(x, mean, invstd, gamma, beta, relu):
    import cupy
    _, C, HW = _bn_shapes(x)
    y = cupy.empty_like(x)
    _launch("batchnorm.cu", "bn_apply", x.dtype, x.size,
            (x, mean, invstd, gamma, beta, y, np.int64(x.size), np.int32(C), np.int64(HW), np.int32(relu)))
    return y


def batch_norm_backward_gpu(g, x, y, gamma, mean, invstd, relu=False):
    """Kernel version of ``batch_norm_backward_reference``: (dx, dgamma, dbeta)."""
    import cupy
    x, g = cupy.ascontiguousarray(x), cupy.ascontiguousarray(g)
    N, C, HW = _bn_shapes(x)
    gamma, _ = _affine(gamma, None, C, x.dtype)
    y = cupy.ascontiguousarray(y) if relu else x  # y is read only when relu is on
    slices = _bn_slices(N * HW, C)
    partial_g = cupy.empty(C * slices, dtype=x.dtype)
    partial_gx = cupy.empty(C * slices, dtype=x.dtype)
    dgamma = cupy.empty(C, dtype=x.dtype)
    dbeta = cupy.empty(C, dtype=x.dtype)
    suffix = dtype_suffix(x.dtype)
    get_kernel("batchnorm.cu", f"bn_backward_partial_{suffix}")(
        (C * slices,), (_THREADS,),
        (x, g, y, mean, partial_g, partial_gx, np.int32(N), np.int32(C), np.int64(HW), np.int32(relu),
         np.int32(slices)),
        shared_mem=_THREADS * x.dtype.itemsize)
    _launch("batchnorm.cu", "bn_backward_finalize", x.dtype, C,
            (partial_g, partial_gx, invstd, dgamma, dbeta, np.int32(C), np.int32(slices)))
    dx = cupy.empty_like(x)
    _launch("batchnorm.cu", "bn_backward_apply", x.dtype, x.size,
            (x, g, y, mean, invstd, gamma, dgamma, dbeta, dx, np.int64(x.size), np.int32(N), np.int32(C),
             np.int64(HW), np.int32(relu)))
    return dx, dgamma, dbeta


# ---------------------------------------------------------------------------------- max pooling
def pool_output_size(size, kernel, stride, padding, dilation, ceil_mode):
    """PyTorch's rule, including ceil_mode's "the last window must start inside the input"."""
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out


def _pool_geometry(x_shape, kernel_size, stride, padding, dilation, ceil_mode):
    KH, KW = _pair(kernel_size, "kernel_size")
    SH, SW = _pair(kernel_size if stride is None else stride, "stride")
    PH, PW = _pair(padding, "padding")
    DH, DW = _pair(dilation, "dilation")
    if PH > KH // 2 or PW > KW // 2:
        raise ValueError(f"max_pool2d: padding ({PH}, {PW}) must be at most half the kernel size ({KH}, {KW})")
    H, W = x_shape[-2:]
    OH = pool_output_size(H, KH, SH, PH, DH, ceil_mode)
    OW = pool_output_size(W, KW, SW, PW, DW, ceil_mode)
    return (H, W), (OH, OW), (KH, KW), (SH, SW), (PH, PW), (DH, DW)


def max_pool2d_forward_reference(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    """(y, indices): y the window maxima of (N, C, H, W), indices the flat h*W + w of each."""
    from ..backend import get_array_module
    xp = get_array_module(x)
    (H, W), (OH, OW), (KH, KW), (SH, SW), (PH, PW), (DH, DW) = _pool_geometry(
        x.shape, kernel_size, stride, padding, dilation, ceil_mode)
    extra_h = max(0, (OH - 1) * SH + DH * (KH - 1) + 1 - H - 2 * PH)  # ceil_mode's partial windows
    extra_w = max(0, (OW - 1) * SW + DW * (KW - 1) + 1 - W - 2 * PW)
    padded = xp.pad(x, ((0, 0), (0, 0), (PH, PH + extra_h), (PW, PW + extra_w)), constant_values=-xp.inf)
    windows = xp.stack([padded[:, :, kh * DH:kh * DH + SH * (OH - 1) + 1:SH, kw * DW:kw * DW + SW * (OW - 1) + 1:SW]
                        for kh in range(KH) for kw in range(KW)], axis=-1)
    best = windows.argmax(axis=-1)
    y = xp.take_along_axis(windows, best[..., None], axis=-1)[..., 0]
    kh, kw = best // KW, best % KW
    h = xp.arange(OH)[:, None] * SH - PH + kh * DH
    w = xp.arange(OW)[None, :] * SW - PW + kw * DW
    return y, (h * W + w).astype(np.int64)


def max_pool2d_backward_reference(g, indices, input_shape):
    """dx: each output's gradient added to the input position its index names."""
    from ..backend import get_array_module
    xp = get_array_module(g)
    N, C, H, W = input_shape
    dx = xp.zeros((N * C, H * W), dtype=g.dtype)
    rows = xp.repeat(xp.arange(N * C), g[0, 0].size)
    if xp is np:
        np.add.at(dx, (rows, indices.reshape(-1)), g.reshape(-1))
    else:
        import cupyx
        cupyx.scatter_add(dx, (rows, indices.reshape(-1)), g.reshape(-1))
    return dx.reshape(input_shape)


def max_pool2d_forward_gpu(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    """Kernel version of ``max_pool2d_forward_reference``: (y, int64 indices)."""
    import cupy
    x = cupy.ascontiguousarray(x)
    (H, W), (OH, OW), (KH, KW), (SH, SW), (PH, PW), (DH, DW) = _pool_geometry(
        x.shape, kernel_size, stride, padding, dilation, ceil_mode)
    y = cupy.empty(x.shape[:-2] + (OH, OW), dtype=x.dtype)
    indices = cupy.empty(y.shape, dtype=cupy.int64)
    i32 = np.int32
    _launch("maxpool.cu", "maxpool_forward", x.dtype, y.size,
            (x, y, indices, np.int64(y.size), i32(H), i32(W), i32(OH), i32(OW), i32(KH), i32(KW), i32(SH), i32(SW),
             i32(PH), i32(PW), i32(DH), i32(DW)))
    return y, indices


def max_pool2d_backward_gpu(g, indices, input_shape, kernel_size, stride=None, padding=0, dilation=1):
    """Kernel version of ``max_pool2d_backward_reference`` (a gather: no atomics)."""
    import cupy
    g, indices = cupy.ascontiguousarray(g), cupy.ascontiguousarray(indices)
    KH, KW = _pair(kernel_size, "kernel_size")
    SH, SW = _pair(kernel_size if stride is None else stride, "stride")
    PH, PW = _pair(padding, "padding")
    DH, DW = _pair(dilation, "dilation")
    H, W = input_shape[-2:]
    OH, OW = g.shape[-2:]
    dx = cupy.empty(tuple(input_shape), dtype=g.dtype)
    i32 = np.int32
    _launch("maxpool.cu", "maxpool_backward", g.dtype, dx.size,
            (g, indices, dx, np.int64(dx.size), i32(H), i32(W), i32(OH), i32(OW), i32(KH), i32(KW), i32(SH), i32(SW),
             i32(PH), i32(PW), i32(DH), i32(DW)))
    return dx


# ---------------------------------------------------------------------------------- cross-entropy
def softmax_cross_entropy_forward_reference(logits, target, label_smoothing=0.0, ignore_index=-100):
    """(loss per row, logsumexp per row); rows with target == ignore_index lose 0."""
    from ..backend import get_array_module
    xp = get_array_module(logits)
    N, K = logits.shape
    row_max = logits.max(axis=1, keepdims=True)
    lse = (row_max + xp.log(xp.exp(logits - row_max).sum(axis=1, keepdims=True)))[:, 0]
    ignored = target == ignore_index
    safe_target = xp.where(ignored, 0, target)
    picked = logits[xp.arange(N), safe_target]
    eps = xp.asarray(label_smoothing, dtype=logits.dtype)
    loss = lse - (1 - eps) * picked - eps / K * logits.sum(axis=1)
    return xp.where(ignored, xp.zeros((), dtype=logits.dtype), loss), lse


def softmax_cross_entropy_backward_reference(logits, target, lse, grad_rows, label_smoothing=0.0, ignore_index=-100):
    """dx = grad_rows[:, None] * (softmax - q), q the smoothed one-hot target; 0 on ignored rows."""
    from ..backend import get_array_module
    xp = get_array_module(logits)
    N, K = logits.shape
    ignored = target == ignore_index
    eps = xp.asarray(label_smoothing, dtype=logits.dtype)
    q = xp.full((N, K), eps / K, dtype=logits.dtype)
    q[xp.arange(N), xp.where(ignored, 0, target)] += 1 - eps
    dx = grad_rows[:, None] * (xp.exp(logits - lse[:, None]) - q)
    return xp.where(ignored[:, None], xp.zeros((), dtype=logits.dtype), dx)


def _check_xent(logits, target):
    if logits.ndim != 2 or target.shape != logits.shape[:1]:
        raise ValueError(f"softmax_cross_entropy: expected logits (N, K) and target (N,), got {logits.shape} "
                         f"and {target.shape}")


def _row_threads(K):
    return min(_THREADS, max(32, 1 << (int(K) - 1).bit_length()))


def softmax_cross_entropy_forward_gpu(logits, target, label_smoothing=0.0, ignore_index=-100):
    """Kernel version of ``softmax_cross_entropy_forward_reference``: one block per row."""
    import cupy
    logits, target = cupy.ascontiguousarray(logits), cupy.ascontiguousarray(target, dtype=cupy.int64)
    _check_xent(logits, target)
    N, K = logits.shape
    loss = cupy.empty(N, dtype=logits.dtype)
    lse = cupy.empty(N, dtype=logits.dtype)
    threads = _row_threads(K)
    get_kernel("softmax_cross_entropy.cu", f"softmax_xent_forward_{dtype_suffix(logits.dtype)}")(
        (N,), (threads,),
        (logits, target, loss, lse, np.int32(K), _scalar(label_smoothing, logits.dtype), np.int64(ignore_index)),
        shared_mem=threads * logits.dtype.itemsize)
    return loss, lse


def softmax_cross_entropy_backward_gpu(logits, target, lse, grad_rows, label_smoothing=0.0, ignore_index=-100):
    """Kernel version of ``softmax_cross_entropy_backward_reference``."""
    import cupy
    logits, target = cupy.ascontiguousarray(logits), cupy.ascontiguousarray(target, dtype=cupy.int64)
    grad_rows = cupy.asarray(grad_rows, dtype=logits.dtype)  # a scalar (e.g. g / N for 'mean') or one per row
    grad_rows = cupy.ascontiguousarray(cupy.broadcast_to(grad_rows, lse.shape))
    N, K = logits.shape
    dx = cupy.empty_like(logits)
    _launch("softmax_cross_entropy.cu", "softmax_xent_backward", logits.dtype, dx.size,
            (logits, target, lse, grad_rows, dx, np.int64(dx.size), np.int32(K),
             _scalar(label_smoothing, logits.dtype), np.int64(ignore_index)))
    return dx


# ---------------------------------------------------------------------------------- dropout
_PHILOX_M = (np.uint64(0xD2511F53), np.uint64(0xCD9E8D57))
_PHILOX_W = (np.uint32(0x9E3779B9), np.uint32(0xBB67AE85))


def philox4x32_10(counter, key):
    """Philox4x32-10 in NumPy: ``counter`` (4, n) uint32, ``key`` (2,) uint32 -> (4, n) uint32."""
    c = [np.asarray(word, dtype=np.uint32) for word in counter]
    k0, k1 = np.uint32(key[0]), np.uint32(key[1])
    with np.errstate(over="ignore"):
        for _ in range(10):
            p0 = _PHILOX_M[0] * c[0].astype(np.uint64)
            p1 = _PHILOX_M[1] * c[2].astype(np.uint64)
            hi0, lo0 = (p0 >> np.uint64(32)).astype(np.uint32), p0.astype(np.uint32)
            hi1, lo1 = (p1 >> np.uint64(32)).astype(np.uint32), p1.astype(np.uint32)
            c = [hi1 ^ c[1] ^ k0, lo1, hi0 ^ c[3] ^ k1, lo0]
            k0, k1 = k0 + _PHILOX_W[0], k1 + _PHILOX_W[1]
    return np.stack(c)


def dropout_uniform_reference(size, seed, offset=0):
    """The uniforms [0, 1) the dropout kernels draw for elements 0..size-1 (NumPy, float32)."""
    position = np.arange(size, dtype=np.uint64) + np.uint64(offset)
    group = position >> np.uint64(2)
    zeros = np.zeros(size, dtype=np.uint32)
    words = philox4x32_10([group.astype(np.uint32), (group >> np.uint64(32)).astype(np.uint32), zeros, zeros],
                          [np.uint32(seed & 0xFFFFFFFF), np.uint32(seed >> 32)])
    chosen = words[(position & np.uint64(3)).astype(np.intp), np.arange(size)]
    return (chosen >> np.uint32(8)).astype(np.float32) * np.float32(1.0 / 16777216.0)


def new_dropout_seed():
    """A 64-bit seed drawn from minidl's generator, so ``manual_seed`` fixes GPU masks too."""
    from .. import random
    return int(random.generator().integers(2**63))


def _dropout_scale(p):
    return 0.0 if p == 1 else 1.0 / (1.0 - p)  # p = 1 drops everything (as functions/dropout.py)


def dropout_mask_gpu(shape, p, seed=None, offset=0):
    """keep (uint8, 1 = kept) with keep_i = u_i >= p, u from ``dropout_uniform_reference``."""
    import cupy
    seed = new_dropout_seed() if seed is None else int(seed)
    keep = cupy.empty(shape, dtype=cupy.uint8)
    _launch("dropout.cu", "dropout_mask", None, keep.size,
            (keep, np.int64(keep.size), np.float32(p), np.uint64(seed), np.uint64(offset)))
    return keep


def dropout_forward_gpu(x, p, seed=None, offset=0):
    """(y, keep) with y = x * keep / (1 - p), mask and output in one pass."""
    import cupy
    x = cupy.ascontiguousarray(x)
    seed = new_dropout_seed() if seed is None else int(seed)
    keep = cupy.empty(x.shape, dtype=cupy.uint8)
    y = cupy.empty_like(x)
    _launch("dropout.cu", "dropout_forward", x.dtype, x.size,
            (x, keep, y, np.int64(x.size), np.float32(p), _scalar(_dropout_scale(p), x.dtype), np.uint64(seed),
             np.uint64(offset)))
    return y, keep


def dropout_backward_gpu(g, keep, p):
    """dx = g * keep / (1 - p)."""
    import cupy
    g = cupy.ascontiguousarray(g)
    dx = cupy.empty_like(g)
    _launch("dropout.cu", "dropout_apply", g.dtype, g.size,
            (g, cupy.ascontiguousarray(keep), dx, np.int64(g.size), _scalar(_dropout_scale(p), g.dtype)))
    return dx


# ---------------------------------------------------------------------------------- optimizers
def sgd_update_reference(param, grad, buf, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False,
                         first_step=False):
    """torch.optim.SGD's update of one tensor, in place on ``param`` and ``buf``."""
    d = grad + weight_decay * param if weight_decay else grad
    if momentum:
        if first_step:
            buf[...] = d
        else:
            buf *= momentum
            buf += (1 - dampening) * d
        d = d + momentum * buf if nesterov else buf
    param -= lr * d


def adam_update_reference(param, grad, exp_avg, exp_avg_sq, step, lr, beta1=0.9, beta2=0.999, eps=1e-8,
                          weight_decay=0.0, decoupled=False, max_exp_avg_sq=None):
    """torch.optim.Adam (decoupled=False) / AdamW (True) update of one tensor, in place."""
    from ..backend import get_array_module
    xp = get_array_module(param)
    if decoupled:
        param *= 1 - lr * weight_decay
    elif weight_decay:
        grad = grad + weight_decay * param
    exp_avg *= beta1
    exp_avg += (1 - beta1) * grad
    exp_avg_sq *= beta2
    exp_avg_sq += (1 - beta2) * grad * grad
    second = exp_avg_sq
    if max_exp_avg_sq is not None:
        xp.maximum(max_exp_avg_sq, exp_avg_sq, out=max_exp_avg_sq)
        second = max_exp_avg_sq
    denom = xp.sqrt(second) / math.sqrt(1 - beta2 ** step) + eps
    param -= (lr / (1 - beta1 ** step)) * exp_avg / denom


def _address(array):
    """The address of an array's first element (CuPy: device pointer; NumPy, for the CPU emulation of the tests)."""
    return array.data.ptr if hasattr(array.data, "ptr") else array.ctypes.data


_tables = {}  # tuple of device pointers -> (pointer table, offsets) on the device


def _pointer_table(arrays):
    """Device arrays of the arrays' data pointers (uint64), cached: parameters keep their memory."""
    import cupy
    pointers = tuple(_address(a) for a in arrays)
    table = _tables.get(pointers)
    if table is None:
        if len(_tables) > 256:
            _tables.clear()
        table = _tables[pointers] = cupy.asarray(np.array(pointers, dtype=np.uint64))
    return table


def _offsets(arrays):
    import cupy
    sizes = tuple(a.size for a in arrays)
    key = ("offsets",) + sizes
    offsets = _tables.get(key)
    if offsets is None:
        offsets = _tables[key] = cupy.asarray(np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64))
    return offsets, int(sum(sizes))


def _check_multi(name, dtype, *lists):
    count = len(lists[0])
    for arrays in lists:
        if arrays is None:
            continue
        if len(arrays) != count:
            raise ValueError(f"{name}: every list must hold one array per parameter ({count}), got {len(arrays)}")
        for a in arrays:
            if a.dtype != dtype or not a.flags.c_contiguous:
                raise ValueError(f"{name}: every array must be C-contiguous {dtype}, got {a.dtype} "
                                 f"(contiguous: {a.flags.c_contiguous}); group parameters by dtype")


def sgd_update_multi(params, grads, bufs, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False,
                     first_step=False):
    """``sgd_update_reference`` on every (param, grad, buf) at once: one kernel launch.

    All arrays share one dtype and are C-contiguous; ``bufs`` may be None when momentum == 0.
    """
    if not params:
        return
    dtype = params[0].dtype
    _check_multi("sgd_update_multi", dtype, params, grads, bufs if momentum else None)
    offsets, total = _offsets(params)
    buf_table = _pointer_table(bufs) if momentum else _pointer_table(params)  # unread when momentum == 0
    s = lambda v: _scalar(v, dtype)  # noqa: E731
    _launch("optimizers.cu", "sgd_multi", dtype, total,
            (_pointer_table(params), _pointer_table(grads), buf_table, offsets, np.int32(len(params)),
             np.int64(total), s(lr), s(momentum), s(dampening), s(weight_decay), np.int32(bool(nesterov)),
             np.int32(bool(first_step))))


def adam_update_multi(params, grads, exp_avgs, exp_avg_sqs, step, lr, beta1=0.9, beta2=0.999, eps=1e-8,
                      weight_decay=0.0, decoupled=False, max_exp_avg_sqs=None):
    """``adam_update_reference`` on every parameter at once: one kernel launch (``step`` from 1)."""
    if not params:
        return
    dtype = params[0].dtype
    _check_multi("adam_update_multi", dtype, params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs)
    offsets, total = _offsets(params)
    vmax_table = _pointer_table(max_exp_avg_sqs) if max_exp_avg_sqs is not None else np.uint64(0)
    s = lambda v: _scalar(v, dtype)  # noqa: E731
    _launch("optimizers.cu", "adam_multi", dtype, total,
            (_pointer_table(params), _pointer_table(grads), _pointer_table(exp_avgs), _pointer_table(exp_avg_sqs),
             vmax_table, offsets, np.int32(len(params)), np.int64(total), s(lr), s(beta1), s(beta2), s(eps),
             s(weight_decay), np.int32(bool(decoupled)), s(1 - beta1 ** step), s(math.sqrt(1 - beta2 ** step))))


# ---------------------------------------------------------------------------------- bf16
def float_to_bf16_bits_gpu(x):
    """float32 -> the uint16 bit patterns of bfloat16, round-to-nearest-even (see kernels/bf16.cu)."""
    import cupy
    x = cupy.ascontiguousarray(x, dtype=cupy.float32)
    bits = cupy.empty(x.shape, dtype=cupy.uint16)
    _launch("bf16.cu", "float_to_bf16_bits", None, x.size, (x, bits, np.int64(x.size)))
    return bits
