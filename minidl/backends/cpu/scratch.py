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
 SLACK, CHANNELS) = range(21)
IN_PLACE, PLANES = 0, 1  # the modes


@njit(nogil=True, cache=True)
def fill_image(src, s0, x, n, plan):
    """Copies image n of the flat NHWC ``x`` into the planes of ``src`` from index s0 (see direct_conv.py).

    Padded pixel (h+top, w+left) goes to plane ((h+top) % sh, (w+left) % sw), row (h+top) // sh, column
    (w+left) // sw of planes plan[PLANE_ROWS] x plan[WV].  The padding's positions are never written: they
    keep the zeros of a fresh scratch.
    """
    stride, wv, h_count, w_count, top, left, sh, sw, plane_rows, c_count = (
        plan[1], plan[2], plan[6], plan[7], plan[8], plan[9], plan[10], plan[11], plan[12], plan[20])
    for h in range(h_count):
        row = (h + top) // sh
        a = h + top - row * sh
        s_row = (n * h_count + h) * w_count * c_count
        if sw == 1 and stride == c_count:  # the whole row at once
            d = s0 + ((a * plane_rows + row) * wv + left) * stride
            copy_floats(src, d, x, s_row, w_count * c_count)
            continue
        for b in range(sw):  # the columns w = w0, w0 + sw, ... go to plane column b, one after the other
            w0 = (b - left) % sw
            d = s0 + (((a * sw + b) * plane_rows + row) * wv + (w0 + left) // sw) * stride
            for w in range(w0, w_count, sw):
                copy_floats(src, d, x, s_row + w * c_count, c_count)
                d += stride


@njit(nogil=True, cache=True)
def fill_batch(src, x, n0, n1, plan):
    """Images n0..n1-1 into a scratch copy of a whole batch, image n at src[n * plan[IMAGE_SIZE]:], as planes."""
    for n in range(n0, n1):
        fill_image(src, n * plan[4], x, n, plan)


@njit(nogil=True, cache=True)
def pack_weight_blocks(w, out, offset, positions, outputs, inputs, kernel_hw, kernel_w, block, transpose, ob0, ob1):
    """Blocks ob0..ob1-1 of the packed weights (direct_conv.pack_weights): out[offset + ((ob*T + t)*inputs + i)*block
    + o] = W[o', i, kh, kw] with o' = ob*block + o and (kh, kw) = positions[t], for the flat (OC, C, KH, KW)
    weights ``w`` (W[o', i] = w[o', i], or w[i, o'] when ``transpose``).  Outputs past ``outputs`` are set to zero."""
    t_count = positions.shape[0]
    for ob in range(ob0, ob1):
        base = offset + ob * t_count * inputs * block
        stop = min(block, outputs - ob * block)
        if stop < block:  # the last block's padding outputs
            for k in range(t_count * inputs):
                for o in range(stop, block):
                    out[base + k * block + o] = 0.0
        if transpose:  # W[o', i] = w[i, o']: the block's outputs o' are (block, KH*KW) floats in a row of w
            for i in range(inputs):
                for t in range(t_count):
                    d = base + (t * inputs + i) * block
                    s = (i * outputs + ob * block) * kernel_hw + positions[t, 0] * kernel_w + positions[t, 1]
                    for o in range(stop):
                        out[d + o] = w[s + o * kernel_hw]
        else:  # W[o', i] = w[o', i]: the block's rows o' are read side by side, the output written in order
            for t in range(t_count):
                tap = positions[t, 0] * kernel_w + positions[t, 1]
                for i in range(inputs):
                    d = base + (t * inputs + i) * block
                    for o in range(stop):
                        out[d + o] = w[((ob * block + o) * inputs + i) * kernel_hw + tap]


@njit(nogil=True, cache=True)
def pack_gradient_blocks(g, q0, q_count, oc, oc_first, oc_stop, block, out):
    """Pixels q0..q0+q_count-1 of the flat (pixel, OC) ``g``, channels oc_first..oc_stop-1, into ``out`` block by
    block of ``block`` channels: out[(b * q_count + q) * block + j] = g[q0 + q, oc_first + b * block + j], zero
    past OC.  A weight-gradient tile then reads its pixels' channels one after the other (in g they lie OC
    floats apart: with OC a multiple of 256 the reads of a band fall into a few sets of the L1 cache)."""
    blocks = (oc_stop - oc_first) // block
    for q in range(q_count):
        row = (q0 + q) * oc
        for b in range(blocks):
            first = oc_first + b * block
            d = (b * q_count + q) * block
            valid = min(block, oc - first)
            if valid == block:
                copy_floats(out, d, g, row + first, block)
            else:
                for j in range(max(valid, 0)):
                    out[d + j] = g[row + first + j]
                for j in range(max(valid, 0), block):
                    out[d + j] = 0.0


@njit(nogil=True, cache=True)
def unpack_weight_grad(dw, k_pad, block, taps, channels, oc_first, oc_stop, oc, out):
    """Output channels oc_first..oc_stop-1 of dL/dW into ``out``, the flat (OC, C, KH*KW) weight gradient, from the
    weight-gradient kernels' blocks of ``block`` channels: channel o of row k = (tap t, input channel c), k = t * C + c,
    at dw[((o - oc_first) // block * k_pad + k) * block + (o - oc_first) % block]."""
    for o in range(oc_first, min(oc_stop, oc)):
        base = (o - oc_first) // block * k_pad * block + (o - oc_first) % block
        for t in range(taps):
            for c in range(channels):
                out[(o * channels + c) * taps + t] = dw[base + (t * channels + c) * block]
