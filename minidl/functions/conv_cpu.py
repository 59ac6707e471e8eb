"""Convolution on the CPU in channels-last memory: im2col and GEMM one cache-sized chunk at a time.

``conv.py`` holds the generic im2col/GEMM convolution that runs on NumPy and CuPy alike.  On the
CPU its cost is memory traffic, not arithmetic: for ResNet-20's first stage (128 x 16 x 32 x 32,
3x3) the im2col matrix is 75 MB, nine times the activation, written once, read by the GEMM and
read again by the weight gradient, and the NCHW <-> (C, N*H*W) transposes add more passes.

This file computes the same convolution with two changes:

* Channels-last memory.  An activation is an (N, C, H, W) array whose memory is ordered
  (N, H, W, C); ``x.transpose(0, 2, 3, 1)`` is then contiguous for free.  The windows of the
  padded NHWC input form rows ``(kh, kw, c)`` of length KH*KW*C, so

      Y (N*OH*OW, OC) = cols (N*OH*OW, KH*KW*C) @ Wt (KH*KW*C, OC)

  and Y *is* the NHWC output: ``Y.reshape(N, OH, OW, OC).transpose(0, 3, 1, 2)`` has NCHW shape
  without a copy.  Elementwise NumPy ops keep their input's memory order, so BatchNorm, ReLU and
  the residual add pass the layout on to the next convolution.

* Chunks.  The im2col rows of a few images at a time (about 1 MB) are copied into one reused
  buffer that stays in cache and multiplied at once, so the big matrix never exists.  Backward
  rebuilds the chunks for dL/dW instead of keeping them (it keeps only the padded input).  The
  batch is split into one slice of images per core (cpu_threads.map_ranges), each worked through
  with single-threaded BLAS, so an op synchronises its threads once, not once per GEMM.

* Row shifts (stride 1, narrow layers).  Instead of all KH*KW windows, only the KW windows of each
  padded row are copied; the KH kernel rows then read blocks of that matrix shifted by whole image
  rows (``_conv_rows_shifted``): KH times less copying for KH GEMMs instead of one.

Backward, with G = dL/dY as (N*OH*OW, OC) rows:

    dL/dW = sum over chunks of G_chunk^T @ cols_chunk
    dL/dx, stride 1: the convolution of G (zero-padded) with the flipped, transposed kernel,
                     which reuses the forward code;
    dL/dx, stride > 1: dcols = G @ W per chunk, added back onto the windows (col2im, NHWC).

Only the CPU with ``groups == 1`` takes this path (``conv.uses_channels_last``); results equal
the generic path's up to float rounding (tests/test_cpu_kernels.py).  Measurements:
docs/performance.md.
"""
import numpy as np

from .conv import output_size, window_slice
from .cpu_threads import map_ranges

CHUNK_FLOATS = 1 << 18  # im2col values per chunk: 1 MiB of float32, 2 MiB of float64 (a core's L2 is 2 MiB)
# im2col values (the GEMM's rows x K) below which one thread runs the whole convolution: measured on
# 2 cores, a 16-channel 32x32 layer gains from the second thread from a batch of about 16-32 on
PARALLEL_MIN_COLS = 1 << 21


def channels_last(x):
    """x (N, C, H, W) as a C-contiguous (N, H, W, C) array: a view when x is channels-last, else a copy."""
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1))


def as_nchw(rows, n, h, w):
    """(N*H*W, C) rows of NHWC memory viewed as an (N, C, H, W) array, no copy."""
    return rows.reshape(n, h, w, -1).transpose(0, 3, 1, 2)


def pad_channels_last(x_nhwc, padding):
    """x (N, H, W, C) with (top, bottom, left, right) zero rows/columns added (x itself when there are none)."""
    top, bottom, left, right = padding
    if not any(padding):
        return x_nhwc
    n, h, w, c = x_nhwc.shape
    padded = np.empty((n, h + top + bottom, w + left + right, c), dtype=x_nhwc.dtype)

    def images(first, stop):
        part = padded[first:stop]
        part[:, :top], part[:, top + h:], part[:, :, :left], part[:, :, left + w:] = 0, 0, 0, 0
        part[:, top:top + h, left:left + w] = x_nhwc[first:stop]

    map_ranges(images, n, padded.size + x_nhwc.size)
    return padded


def windows(padded, kernel_size, stride, dilation):
    """The (N, OH, OW, KH, KW, C) view of every window of a padded NHWC input (nothing copied)."""
    (kh, kw), (sh, sw), (dh, dw) = kernel_size, stride, dilation
    n, hp, wp, c = padded.shape
    oh, ow = output_size(hp, kh, sh, 0, 0, dh), output_size(wp, kw, sw, 0, 0, dw)
    s_n, s_h, s_w, s_c = padded.strides
    return np.lib.stride_tricks.as_strided(
        padded, shape=(n, oh, ow, kh, kw, c), strides=(s_n, s_h * sh, s_w * sw, s_h * dh, s_w * dw, s_c),
        writeable=False)


def images_per_chunk(window_view):
    n, oh, ow, kh, kw, c = window_view.shape
    return max(1, min(n, CHUNK_FLOATS // (oh * ow * kh * kw * c)))


def chunks(window_view):
    """(first image, im2col rows of images first..first+count) per chunk, reusing one buffer.

    A 1x1 stride-1 convolution needs no copy: its rows are the input itself.
    """
    n, oh, ow, kh, kw, c = window_view.shape
    step = images_per_chunk(window_view)
    is_plain_view = kh == kw == 1 and window_view.strides[2] == window_view.strides[5] * c
    buffer = None if is_plain_view else np.empty((step, oh, ow, kh, kw, c), dtype=window_view.dtype)
    for first in range(0, n, step):
        part = window_view[first:first + step]
        if buffer is None:
            yield first, part.reshape(-1, c)  # a view: rows of the contiguous input
            continue
        target = buffer[:len(part)]
        np.copyto(target, part)
        yield first, target.reshape(len(part) * oh * ow, -1)


def forward_rows(padded, weight_rows, kernel_size, stride, dilation):
    """Convolution of a padded NHWC input: (N*OH*OW, OC) rows = im2col(padded) @ weight_rows.

    ``weight_rows`` is (KH*KW*C, OC), rows ordered (kh, kw, c) like the windows.
    """
    view = windows(padded, kernel_size, stride, dilation)
    n, oh, ow = view.shape[:3]
    per_image = oh * ow
    y = np.empty((n * per_image, weight_rows.shape[1]), dtype=padded.dtype)

    def images(first, stop):
        for start, cols in chunks(view[first:stop]):
            row = (first + start) * per_image
            np.matmul(cols, weight_rows, out=y[row:row + len(cols)])

    map_ranges(images, n, view.size, PARALLEL_MIN_COLS)
    return y


# KW*C up to which the row-shifted GEMMs beat the full im2col (measured with 3x3 kernels: the forward
# and the weight gradient gain at C = 16 and 32, neither at 64).  Below ROW_SHIFT_MIN_CHANNELS the
# row-shifted GEMMs are too thin (K = 3*3 for an RGB stem): one im2col GEMM with K = 27 is faster.
ROW_SHIFT_MAX_WIDTH = 96
ROW_SHIFT_MIN_CHANNELS = 8


def uses_row_shift(padded, kernel_size, stride):
    channels = padded.shape[3]
    return (stride == (1, 1) and kernel_size[0] > 1 and channels >= ROW_SHIFT_MIN_CHANNELS
            and kernel_size[1] * channels <= ROW_SHIFT_MAX_WIDTH)


def conv_rows(padded, weight_rows, kernel_size, stride, dilation):
    """The convolution of a padded NHWC input as (N*OH*OW, OC) rows (``weight_rows`` as in forward_rows)."""
    if uses_row_shift(padded, kernel_size, stride):
        return _conv_rows_shifted(padded, weight_rows, kernel_size, dilation)
    return forward_rows(padded, weight_rows, kernel_size, stride, dilation)


def row_windows(padded, kernel_size, dilation):
    """The (N, Hp, OW, KW, C) view B[n, hp, ow, kw] = padded[n, hp, ow + kw*dw] (stride 1; nothing copied)."""
    kw, dw = kernel_size[1], dilation[1]
    n, hp, wp, c = padded.shape
    s_n, s_h, s_w, s_c = padded.strides
    return np.lib.stride_tricks.as_strided(padded, shape=(n, hp, output_size(wp, kw, 1, 0, 0, dw), kw, c),
                                           strides=(s_n, s_h, s_w, s_w * dw, s_c), writeable=False)


def _conv_rows_shifted(source, weight_rows, kernel_size, dilation, padding=(0, 0, 0, 0)):
    """Stride 1: copy only the KW windows of each padded row, then one GEMM per kernel row.

    With B[n, hp, ow] = padded[n, hp, ow + kw*dw, :] over kw (a (Hp*OW, KW*C) matrix per image,
    about KH times smaller than im2col), output row oh needs padded rows oh + kh*dh, i.e. rows
    (oh + kh*dh)*OW + ow of B: for each kh one contiguous block of OH*OW rows, so

        Y = sum_kh B[kh*dh*OW : (kh*dh + OH)*OW] @ W[kh]     (W[kh]: the (KW*C, OC) block of kernel row kh)

    ``source`` is the NHWC input, already padded unless ``padding`` is given: then each chunk is
    padded into a small zero-bordered scratch array (in cache), and no padded copy of the batch is made.
    """
    (kh, kw), dh = kernel_size, dilation[0]
    n, c = source.shape[0], source.shape[3]
    _, oh, ow, _ = _row_shift_geometry(source, kernel_size, dilation, padding)
    oc, per_image = weight_rows.shape[1], oh * ow
    y = np.empty((n, per_image, oc), dtype=source.dtype)

    def images(first_image, stop_image):
        partial = None
        for first, rows in _row_window_chunks(source, kernel_size, dilation, padding, first_image, stop_image):
            count = len(rows)
            out = y[first:first + count]
            for i in range(kh):
                block = rows[:, i * dh * ow:(i * dh + oh) * ow]
                weight = weight_rows[i * kw * c:(i + 1) * kw * c]
                if i == 0:
                    np.matmul(block, weight, out=out)
                    continue
                if partial is None:  # the first chunk is the largest
                    partial = np.empty((count, per_image, oc), dtype=source.dtype)
                np.matmul(block, weight, out=partial[:count])
                out += partial[:count]

    map_ranges(images, n, n * per_image * weight_rows.shape[0], PARALLEL_MIN_COLS)  # as many as im2col holds
    return y.reshape(n * per_image, oc)


def _row_shift_geometry(source, kernel_size, dilation, padding):
    """(Hp, OH, OW, images per chunk) of the stride-1 row shifts over the NHWC ``source`` padded by ``padding``."""
    (kh, kw), (dh, dw) = kernel_size, dilation
    top, bottom, left, right = padding
    n, h, w, c = source.shape
    hp, wp = h + top + bottom, w + left + right
    ow = output_size(wp, kw, 1, 0, 0, dw)
    return hp, output_size(hp, kh, 1, 0, 0, dh), ow, max(1, min(n, CHUNK_FLOATS // (hp * ow * kw * c)))


def _row_window_chunks(source, kernel_size, dilation, padding, first_image, stop_image):
    """(first image, B) for each chunk of images first_image..stop_image - 1, B the (count, Hp*OW, KW*C)
    row-window matrices of those images (see _conv_rows_shifted), built in one reused buffer.  With
    ``padding``, each chunk is first copied into a zero-bordered scratch array that stays in cache."""
    top, bottom, left, right = padding
    n, h, w, c = source.shape
    hp, _, ow, step = _row_shift_geometry(source, kernel_size, dilation, padding)
    count_max = min(step, stop_image - first_image)
    buffer = np.empty((count_max, hp, ow, kernel_size[1], c), dtype=source.dtype)
    scratch = np.zeros((count_max, hp, w + left + right, c), dtype=source.dtype) if any(padding) else None
    for first in range(first_image, stop_image, step):
        count = min(step, stop_image - first)
        if scratch is None:
            padded = source[first:first + count]
        else:
            padded = scratch[:count]
            padded[:, top:top + h, left:left + w] = source[first:first + count]  # the border stays zero
        np.copyto(buffer[:count], row_windows(padded, kernel_size, dilation))
        yield first, buffer[:count].reshape(count, hp * ow, -1)


def weight_grad_rows(padded, g_rows, kernel_size, stride, dilation):
    """dL/dW as (OC, KH*KW*C) = sum over chunks of G_chunk^T @ cols_chunk."""
    view = windows(padded, kernel_size, stride, dilation)
    per_image = view.shape[1] * view.shape[2]

    def images(first, stop):
        grad = part = None
        for start, cols in chunks(view[first:stop]):
            row = (first + start) * per_image
            g_chunk = g_rows[row:row + len(cols)]
            if grad is None:
                grad = g_chunk.T @ cols
                part = np.empty_like(grad)
            else:
                np.matmul(g_chunk.T, cols, out=part)
                grad += part
        return grad

    return sum(map_ranges(images, view.shape[0], view.size, PARALLEL_MIN_COLS))


def weight_grad(padded, g_rows, kernel_size, stride, dilation):
    """dL/dW as (OC, KH*KW*C), rows (kh, kw, c), from the padded NHWC input and G (N*OH*OW, OC)."""
    if uses_row_shift(padded, kernel_size, stride):
        return _weight_grad_shifted(padded, g_rows, kernel_size, dilation)
    return weight_grad_rows(padded, g_rows, kernel_size, stride, dilation)


def _weight_grad_shifted(source, g_rows, kernel_size, dilation, padding=(0, 0, 0, 0)):
    """Stride 1, as _conv_rows_shifted: for kernel row kh, image n's output rows meet the rows of its
    row-window matrix B_n shifted by kh*dh*OW, so

        dW[kh] = sum over images n of G_n^T @ B_n[kh*dh*OW : (kh*dh + OH)*OW]

    one batched GEMM per kernel row and chunk (G_n^T is a transposed view: nothing copied), summed
    over the chunk's images.  ``source`` is the NHWC input, already padded unless ``padding`` is given
    (then each chunk is padded in a small scratch array, as in _conv_rows_shifted).
    """
    (kh, kw), dh = kernel_size, dilation[0]
    n, c = source.shape[0], source.shape[3]
    _, oh, ow, _ = _row_shift_geometry(source, kernel_size, dilation, padding)
    oc = g_rows.shape[1]
    g_transposed = g_rows.reshape(n, oh * ow, oc).transpose(0, 2, 1)  # (N, OC, OH*OW) views

    def images(first_image, stop_image):
        grad = np.zeros((kh, oc, kw * c), dtype=source.dtype)
        per_image = None
        for first, rows in _row_window_chunks(source, kernel_size, dilation, padding, first_image, stop_image):
            count = len(rows)
            if per_image is None:  # the first chunk is the largest
                per_image = np.empty((count, oc, kw * c), dtype=source.dtype)
            for i in range(kh):
                np.matmul(g_transposed[first:first + count], rows[:, i * dh * ow:(i * dh + oh) * ow],
                          out=per_image[:count])
                grad[i] += per_image[:count].sum(axis=0)
        return grad

    grad = sum(map_ranges(images, n, n * oh * ow * kh * kw * c, PARALLEL_MIN_COLS))  # (KH, OC, KW*C)
    return np.ascontiguousarray(grad.transpose(1, 0, 2)).reshape(oc, kh * kw * c)


def weight_as_rows(weight):
    """(OC, C, KH, KW) -> (KH*KW*C, OC), rows ordered (kh, kw, c) like the NHWC windows."""
    oc = weight.shape[0]
    return np.ascontiguousarray(weight.transpose(2, 3, 1, 0)).reshape(-1, oc)


def conv_forward(x, weight, bias, stride, padding, dilation):
    """y (N, OC, OH, OW) as a channels-last view, and the padded NHWC input for backward, or None.

    None when no padded copy was made: narrow stride-1 layers pad each chunk in cache
    (_conv_rows_shifted), and their backward starts again from x (see conv_weight_grad).
    """
    n = x.shape[0]
    kernel_size = weight.shape[2:]
    x_nhwc = channels_last(x)
    if uses_row_shift(x_nhwc, kernel_size, stride):
        padded = None
        y = _conv_rows_shifted(x_nhwc, weight_as_rows(weight), kernel_size, dilation, padding)
    else:
        padded = pad_channels_last(x_nhwc, padding)
        y = forward_rows(padded, weight_as_rows(weight), kernel_size, stride, dilation)
    if bias is not None:
        y += bias
    n, c, h, w = x.shape
    oh = output_size(h, kernel_size[0], stride[0], padding[0], padding[1], dilation[0])
    ow = output_size(w, kernel_size[1], stride[1], padding[2], padding[3], dilation[1])
    return as_nchw(y, n, oh, ow), padded


def conv_weight_grad(x, padded, g, weight_shape, stride, padding, dilation):
    """dL/dW (OC, C, KH, KW) from the input x (N, C, H, W), the padded NHWC copy conv_forward made
    (or None: then narrow stride-1 layers pad chunk by chunk, others pad x now), and g (N, OC, OH, OW)."""
    oc, c, kh, kw = weight_shape
    g_rows = channels_last(g).reshape(-1, oc)
    if padded is None and uses_row_shift(x.transpose(0, 2, 3, 1), (kh, kw), stride):
        grad = _weight_grad_shifted(channels_last(x), g_rows, (kh, kw), dilation, padding)
    else:
        if padded is None:
            padded = pad_channels_last(channels_last(x), padding)
        grad = weight_grad(padded, g_rows, (kh, kw), stride, dilation)
    return np.ascontiguousarray(grad.reshape(oc, kh, kw, c).transpose(0, 3, 1, 2))


def conv_input_grad(g, weight, input_shape, stride, padding, dilation):
    """dL/dx (N, C, H, W), a channels-last view, for g (N, OC, OH, OW)."""
    if stride == (1, 1):
        return _input_grad_stride1(g, weight, input_shape, padding, dilation)
    return _input_grad_col2im(g, weight, input_shape, stride, padding, dilation)


def _input_grad_stride1(g, weight, input_shape, padding, dilation):
    """dx[h, w] = sum_{kh, kw} g[h + top - kh*dh, w + left - kw*dw] . W[:, :, kh, kw]:
    the stride-1 convolution of g, zero-padded by (KH-1)*dh - top above (and so on), with the
    kernel flipped in space and its channel axes swapped."""
    n, c, h, w = input_shape
    oc, _, kh, kw = weight.shape
    (dh, dw), (top, _, left, _) = dilation, padding
    g_nhwc = channels_last(g)
    # g row j lands on padded row j + shift (the padded g has H + (KH-1)*dh rows)
    shift_h, shift_w = (kh - 1) * dh - top, (kw - 1) * dw - left
    sides = (shift_h, h + (kh - 1) * dh - g.shape[2] - shift_h, shift_w, w + (kw - 1) * dw - g.shape[3] - shift_w)
    flipped = np.ascontiguousarray(weight[:, :, ::-1, ::-1].transpose(2, 3, 0, 1)).reshape(-1, c)
    if min(sides) >= 0 and uses_row_shift(g_nhwc, (kh, kw), (1, 1)):  # padded chunk by chunk
        return as_nchw(_conv_rows_shifted(g_nhwc, flipped, (kh, kw), dilation, sides), n, h, w)
    if min(sides) >= 0:
        return as_nchw(conv_rows(pad_channels_last(g_nhwc, sides), flipped, (kh, kw), (1, 1), dilation), n, h, w)
    # padding wider than the kernel reach: some rows of g read only padding and drop out
    g_padded = np.zeros((n, h + (kh - 1) * dh, w + (kw - 1) * dw, oc), dtype=g.dtype)
    rows = _overlap(g_nhwc.shape[1], shift_h, g_padded.shape[1])
    cols = _overlap(g_nhwc.shape[2], shift_w, g_padded.shape[2])
    g_padded[:, rows[0]:rows[1], cols[0]:cols[1]] = g_nhwc[:, rows[0] - shift_h:rows[1] - shift_h,
                                                           cols[0] - shift_w:cols[1] - shift_w]
    return as_nchw(conv_rows(g_padded, flipped, (kh, kw), (1, 1), dilation), n, h, w)


def _overlap(length, shift, size):
    """[start, stop) in the target of positions j + shift, 0 <= j < length, that fall in [0, size)."""
    return max(0, shift), min(size, length + shift)


def _input_grad_col2im(g, weight, input_shape, stride, padding, dilation):
    """dcols = G @ W (rows (kh, kw, c)) per chunk, each window added back onto the padded dx."""
    n, c, h, w = input_shape
    oc, _, kh, kw = weight.shape
    (sh, sw), (dh, dw), (top, bottom, left, right) = stride, dilation, padding
    oh, ow = g.shape[2:]
    g_rows = channels_last(g).reshape(-1, oc)
    w_rows = weight.transpose(0, 2, 3, 1).reshape(oc, -1)  # (OC, KH*KW*C)
    dx = np.zeros((n, h + top + bottom, w + left + right, c), dtype=g.dtype)
    step = max(1, min(n, CHUNK_FLOATS // (oh * ow * kh * kw * c)))

    def images(first_image, stop_image):
        for first in range(first_image, stop_image, step):
            count = min(step, stop_image - first)
            dcols = (g_rows[first * oh * ow:(first + count) * oh * ow] @ w_rows).reshape(count, oh, ow, kh, kw, c)
            target = dx[first:first + count]
            for i in range(kh):
                for j in range(kw):
                    target[:, window_slice(i * dh, oh, sh), window_slice(j * dw, ow, sw)] += dcols[:, :, :, i, j]

    map_ranges(images, n, n * oh * ow * kh * kw * c, PARALLEL_MIN_COLS)
    return dx[:, top:top + h, left:left + w].transpose(0, 3, 1, 2)
