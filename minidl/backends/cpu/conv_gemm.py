"""The GEMMs of the CPU convolution (``conv.py``): an NHWC input, im2col one cache-sized chunk at a time.

Both strategies here take a *padded* channels-last input (N, Hp, Wp, C), or an unpadded one plus
the padding to add chunk by chunk, and a weight as rows ``(kh, kw, c)`` x OC:

* im2col in chunks (``forward_rows``, ``weight_grad_rows``).  The windows of the padded NHWC input
  form rows ``(kh, kw, c)`` of length KH*KW*C, so

      Y (N*OH*OW, OC) = cols (N*OH*OW, KH*KW*C) @ Wt (KH*KW*C, OC)

  and Y *is* the NHWC output.  The im2col rows of a few images at a time (about 1 MB) are copied
  into one reused buffer that stays in cache and multiplied at once, so the big matrix never exists.

* Row shifts (``conv_rows_shifted``, ``weight_grad_shifted``; stride 1).  Instead of all KH*KW
  windows, only the KW windows of each padded row are copied; the KH kernel rows then read blocks
  of that matrix shifted by whole image rows: KH times less copying for KH GEMMs instead of one.

Each op splits the batch into slices of images taken by the CPU's threads (``threads.map_ranges``),
each worked through with single-threaded BLAS, so an op synchronises its threads once, not once per
GEMM.  Which strategy a layer takes is decided in one place: ``conv.strategy``.
"""
import numpy as np

from ...functions.conv import output_size
from .threads import map_ranges

CHUNK_FLOATS = 1 << 18  # im2col values per chunk: 1 MiB of float32, 2 MiB of float64 (a core's L2 is 2 MiB)
# im2col values (the GEMM's rows x K) below which one thread runs the whole convolution: measured on
# 2 cores, a 16-channel 32x32 layer gains from the second thread from a batch of about 16-32 on
PARALLEL_MIN_COLS = 1 << 21


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


def row_windows(padded, kernel_size, dilation):
    """The (N, Hp, OW, KW, C) view B[n, hp, ow, kw] = padded[n, hp, ow + kw*dw] (stride 1; nothing copied)."""
    kw, dw = kernel_size[1], dilation[1]
    n, hp, wp, c = padded.shape
    s_n, s_h, s_w, s_c = padded.strides
    return np.lib.stride_tricks.as_strided(padded, shape=(n, hp, output_size(wp, kw, 1, 0, 0, dw), kw, c),
                                           strides=(s_n, s_h, s_w, s_w * dw, s_c), writeable=False)


def conv_rows_shifted(source, weight_rows, kernel_size, dilation, padding=(0, 0, 0, 0)):
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
    row-window matrices of those images (see conv_rows_shifted), built in one reused buffer.  With
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


def weight_grad_shifted(source, g_rows, kernel_size, dilation, padding=(0, 0, 0, 0)):
    """Stride 1, as conv_rows_shifted: for kernel row kh, image n's output rows meet the rows of its
    row-window matrix B_n shifted by kh*dh*OW, so

        dW[kh] = sum over images n of G_n^T @ B_n[kh*dh*OW : (kh*dh + OH)*OW]

    one batched GEMM per kernel row and chunk (G_n^T is a transposed view: nothing copied), summed
    over the chunk's images.  ``source`` is the NHWC input, already padded unless ``padding`` is given
    (then each chunk is padded in a small scratch array, as in conv_rows_shifted).
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
