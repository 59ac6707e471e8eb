"""Copying images into the scratch layouts the direct convolution kernels read (see direct_conv.py).

numba functions called by the generated kernels (conv_codegen.py): a change here gives those kernels a
new name and a fresh compile (their file name hashes this file too).
"""
from numba import njit

from . import simd

_copy16 = simd.lanes(16).copy


@njit(nogil=True, cache=True, inline="always")
def copy_floats(dst, d, src, s, count):
    """dst[d:d+count] = src[s:s+count] for flat float32 arrays, 16 floats at a time (the inner loop of every copy
    into a scratch image: LLVM cannot tell that the two arrays do not overlap, so it would not vectorise it)."""
    i = 0
    while i + 16 <= count:
        _copy16(dst, d + i, src, s + i)
        i += 16
    while i < count:
        dst[d + i] = src[s + i]
        i += 1


# The int64 ``plan`` array conv_images and weight_grad_images read (see Plan):
(MODE, C_IN, WV, CHUNK, IMAGE_SIZE, C_GROUP, H, W, TOP, LEFT, SH, SW, PLANE_ROWS, KH, KW, DH, DW, OH, OW,
 SLACK) = range(20)
IN_PLACE, PLANES, COLUMNS = 0, 1, 2  # the modes


@njit(nogil=True, cache=True)
def fill_image(src, s0, x, n, plan):
    """Copies image n of the flat NHWC ``x`` into the planes of ``src`` from index s0 (see direct_conv.py).

    Padded pixel (h+top, w+left) goes to plane ((h+top) % sh, (w+left) % sw), row (h+top) // sh, column
    (w+left) // sw of planes plan[PLANE_ROWS] x plan[WV].  The padding's positions are never written: they
    keep the zeros of a fresh scratch.
    """
    c_count, wv, h_count, w_count, top, left, sh, sw, plane_rows = (
        plan[1], plan[2], plan[6], plan[7], plan[8], plan[9], plan[10], plan[11], plan[12])
    for h in range(h_count):
        row = (h + top) // sh
        a = h + top - row * sh
        s_row = (n * h_count + h) * w_count * c_count
        if sw == 1:  # the whole row at once
            d = s0 + ((a * plane_rows + row) * wv + left) * c_count
            copy_floats(src, d, x, s_row, w_count * c_count)
            continue
        for b in range(sw):  # the columns w = w0, w0 + sw, ... go to plane column b, one after the other
            w0 = (b - left) % sw
            d = s0 + (((a * sw + b) * plane_rows + row) * wv + (w0 + left) // sw) * c_count
            for w in range(w0, w_count, sw):
                copy_floats(src, d, x, s_row + w * c_count, c_count)
                d += c_count


@njit(nogil=True, cache=True)
def fill_columns(src, x, n, count, plan):
    """The im2col rows of images n..n+count-1 of the flat NHWC ``x``: row (image, oh, ow) of src holds, tap by
    tap (kh, kw), the C channels of input pixel (oh*sh + kh*dh - top, ow*sw + kw*dw - left); taps that fall in
    the padding are never written (they keep the zeros of a fresh scratch)."""
    k_total, h_count, w_count, top, left, sh, sw = plan[1], plan[6], plan[7], plan[8], plan[9], plan[10], plan[11]
    c_count = k_total // (plan[13] * plan[14])
    kh_count, kw_count, dh, dw, oh_count, ow_count = plan[13], plan[14], plan[15], plan[16], plan[17], plan[18]
    d = 0
    for i in range(count):
        for oh in range(oh_count):
            for ow in range(ow_count):
                for kh in range(kh_count):
                    h = oh * sh + kh * dh - top
                    if h < 0 or h >= h_count:
                        continue
                    for kw in range(kw_count):
                        w = ow * sw + kw * dw - left
                        if 0 <= w < w_count:
                            copy_floats(src, d + (kh * kw_count + kw) * c_count, x,
                                        (((n + i) * h_count + h) * w_count + w) * c_count, c_count)
                d += k_total
