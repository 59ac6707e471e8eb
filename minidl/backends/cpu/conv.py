"""Conv2d on the CPU in channels-last memory: the fast twin of ``functions/conv.py``'s Conv2d.

The reference convolution (one im2col matrix, one GEMM, col2im) runs on NumPy and CuPy alike.
On the CPU its cost is memory traffic, not arithmetic: for ResNet-20's first stage (128 x 16 x
32 x 32, 3x3) the im2col matrix is 75 MB, nine times the activation, and the NCHW <-> (C, N*H*W)
transposes add more passes.  This class computes the same convolution with two changes:

* Channels-last memory.  An activation is an (N, C, H, W) array whose memory is ordered
  (N, H, W, C); ``x.transpose(0, 2, 3, 1)`` is then contiguous for free, the windows of the
  padded input are rows ``(kh, kw, c)``, and the GEMM's (N*OH*OW, OC) result *is* the NHWC output
  (``as_nchw`` gives it the NCHW shape without a copy).  The output's ``memory_format`` is
  ``channels_last``; the CPU BatchNorm, ReLU and residual add keep it, so the next convolution
  reads its input without a copy.

* No big matrix.  float32 convolutions wider than 1x1 run direct SIMD kernels (``direct_conv.py``:
  register-tiled micro-kernels compiled with numba, no im2col and no GEMM call); the others run
  GEMMs chunk by chunk (``conv_gemm.py``): im2col a few images at a time in cache, or, for narrow
  stride-1 layers, the row-shifted GEMMs.  ``strategy`` decides per layer.

Backward, with G = dL/dY as (N*OH*OW, OC) rows:

    dL/dW = sum over chunks of G_chunk^T @ cols_chunk   (the chunks rebuilt from x, nothing kept)
    dL/dx, stride 1: the convolution of G (zero-padded) with the flipped, transposed kernel,
                     which reuses the forward code;
    dL/dx, stride > 1: dcols = G @ W per chunk, added back onto the windows (col2im, NHWC).

While recording, the direct kernels also sum each output channel and its square as they write y (for the
batch norm that usually comes next: batchnorm.py), kept as ``output_sums``.

dL/dW is needed by nothing else in backward: with more than one thread the direct kernels' comes back as an
``autograd.LaterGradient``, computed by the pool's workers while the calling thread runs the rest of the
graph (the BatchNorm passes, the next input gradient, Python), and added to ``.grad`` at the end.

It runs for NumPy arrays with ``groups == 1`` outside autocast; results equal the reference's up
to float rounding (tests/test_cpu_backend.py).  Measurements: docs/performance.md.
"""
import importlib.util
import math
import os
import weakref

import numpy as np

from ... import amp
from ...autograd import LaterGradient
from ...functions.conv import Conv2d, output_size, window_slice
from ...memory_formats import channels_last
from ..registry import register
from . import conv_gemm as gemm
from .threads import Ready, for_ranges, map_ranges

# KW*C up to which the row-shifted GEMMs beat the full im2col (measured with 3x3 kernels: the forward
# and the weight gradient gain at C = 16 and 32, neither at 64).  Below ROW_SHIFT_MIN_CHANNELS the
# row-shifted GEMMs are too thin (K = 3*3 for an RGB stem): one im2col GEMM with K = 27 is faster.
ROW_SHIFT_MAX_WIDTH = 96
ROW_SHIFT_MIN_CHANNELS = 8
# input channels below which a 1x1 layer's weight gradient runs the direct kernel (measured on one thread on the
# projections of ResNet-20 and ResNet-18: faster at 16 and 32 channels, even at 64, slower from 128 on)
POINTWISE_DIRECT_CHANNELS = 64
# multiply-adds from which a strided 1x1 layer (a ResNet's projection) runs the direct kernels in every pass: they
# read every s-th pixel in place and split the batch across threads, where the GEMM path copies the pixels out on
# the calling thread.  In a training step on 2 threads: ResNet-18's projections at batch 32 (67-134M) 6.3 ms less
# per step, ResNet-20's at batch 128 (16.8M) 2.4 ms less, at batch 32 (4.2M) 0.8 ms more (docs/performance.md)
POINTWISE_DIRECT_MIN_MACS = 1 << 24


def strategy(channels, kernel_size, stride, dtype=None, direct=True, pass_="forward", macs=0):
    """How the CPU convolves an NHWC input of ``channels`` channels: 'direct', 'row_shift' or 'im2col'.

    The forward pass, the weight gradient and the stride-1 input gradient (a convolution of G,
    whose channels are the layer's output channels) each ask this, so one rule picks the kernels:
    the direct SIMD kernels (direct_conv.py) for float32 wider than 1x1 while numba is on (``direct``:
    False leaves them out, for comparisons).  A 1x1 convolution is one GEMM (docs/performance.md), except a
    strided one of at least POINTWISE_DIRECT_MIN_MACS multiply-adds (``macs``, the pass's), and the weight
    gradient of one with fewer than POINTWISE_DIRECT_CHANNELS input channels: those run the direct kernels.
    """
    if direct and dtype == np.float32 and direct_conv_available():
        if tuple(kernel_size) != (1, 1) or (tuple(stride) != (1, 1) and macs >= POINTWISE_DIRECT_MIN_MACS) \
                or (pass_ == "weight_grad" and channels < POINTWISE_DIRECT_CHANNELS):
            return "direct"
    if (stride == (1, 1) and kernel_size[0] > 1 and channels >= ROW_SHIFT_MIN_CHANNELS
            and kernel_size[1] * channels <= ROW_SHIFT_MAX_WIDTH):
        return "row_shift"
    return "im2col"


def direct_conv_available():
    """numba installed and not switched off (MINIDL_DISABLE_NUMBA=1, or MINIDL_DIRECT_CONV=0 for the direct
    kernels alone): the direct kernels can run."""
    global _direct_available
    if _direct_available is None:
        _direct_available = (os.environ.get("MINIDL_DISABLE_NUMBA", "") not in ("1", "true")
                             and os.environ.get("MINIDL_DIRECT_CONV", "1") not in ("0", "false")
                             and importlib.util.find_spec("numba") is not None)
    return _direct_available


_direct_available = None


def _direct():
    from . import direct_conv  # imports numba: on the first convolution, not at ``import minidl``
    return direct_conv


@register(Conv2d, "cpu")
class Conv2dChannelsLast(Conv2d):
    """The same y, dL/dx, dL/dW, dL/db as Conv2d (see there), computed in channels-last memory."""

    output_memory_format = channels_last  # y is a transposed view of the (N*OH*OW, OC) GEMM result

    @classmethod
    def supports(cls, inputs, params):
        return params["groups"] == 1 and amp.autocast_dtype() is None

    def forward(self, x, weight, bias, stride=(1, 1), padding=(0, 0, 0, 0), dilation=(1, 1), groups=1):
        y, padded, sums = conv_forward(x, weight, bias, stride, padding, dilation, channel_sums=self.recording)
        if self.recording:
            # for a batch norm that reads y next (batchnorm.py's convolution_sums); y itself is not kept alive
            self.output_sums, self.output = sums, weakref.ref(y)
            self.geometry, self.input_shape, self.weight_shape = (stride, padding, dilation), x.shape, weight.shape
            self.weight = weight if self.needs_input_grad[0] else None
            # for dL/dW: x (the graph keeps it anyway) and, where the forward made one, its padded NHWC copy
            self.x = x if self.needs_input_grad[1] else None
            self.padded = padded if self.needs_input_grad[1] else None
        return y

    def backward(self, g):
        stride, padding, dilation = self.geometry
        grad_x = grad_w = grad_b = None
        if self.needs_input_grad[0]:
            grad_x = conv_input_grad(g, self.weight, self.input_shape, stride, padding, dilation)
        if self.needs_input_grad[1]:  # on the other cores while backward goes on, where there are some
            pending = conv_weight_grad(self.x, self.padded, g, self.weight_shape, stride, padding, dilation, later=True)
            grad_w = pending.result() if isinstance(pending, Ready) else LaterGradient(self.weight_shape, self.x.dtype,
                                                                                       pending)
        if self.needs_input_grad[2]:
            grad_b = g.sum(axis=(0, 2, 3))
        return grad_x, grad_w, grad_b


# ------------------------------------------------------------------ layouts
def as_nhwc(x):
    """x (N, C, H, W) as a C-contiguous (N, H, W, C) array: a view when x is channels-last, else a copy."""
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1))


def as_nchw(rows, n, h, w):
    """(N*H*W, C) rows of NHWC memory viewed as an (N, C, H, W) array, no copy."""
    return rows.reshape(n, h, w, -1).transpose(0, 3, 1, 2)


def weight_as_rows(weight):
    """(OC, C, KH, KW) -> (KH*KW*C, OC), rows ordered (kh, kw, c) like the NHWC windows."""
    oc = weight.shape[0]
    return np.ascontiguousarray(weight.transpose(2, 3, 1, 0)).reshape(-1, oc)


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

    for_ranges(images, n, padded.size + x_nhwc.size)
    return padded


# ------------------------------------------------------------------ forward and the two gradients
def conv_rows(padded, weight_rows, kernel_size, stride, dilation):
    """The convolution of a padded NHWC input as (N*OH*OW, OC) rows (``weight_rows`` as weight_as_rows gives)."""
    if strategy(padded.shape[3], kernel_size, stride) == "row_shift":
        return gemm.conv_rows_shifted(padded, weight_rows, kernel_size, dilation)
    return gemm.forward_rows(padded, weight_rows, kernel_size, stride, dilation)


def conv_forward(x, weight, bias, stride, padding, dilation, channel_sums=False):
    """y (N, OC, OH, OW) as a channels-last view; the padded NHWC input for backward, or None; and, when
    ``channel_sums`` asks and the direct kernels run, the (2, OC) float64 sums of y and y squared, else None.

    No padded copy is made where row-shifted layers pad each chunk in cache: their backward starts again
    from x (see conv_weight_grad).
    """
    n, c, h, w = x.shape
    kernel_size = weight.shape[2:]
    out_pixels = n * -(-h // stride[0]) * -(-w // stride[1])  # without padding: near enough for a threshold
    how = strategy(c, kernel_size, stride, x.dtype, macs=_macs(out_pixels, weight.shape))
    if how == "direct":
        result = _direct().conv_forward(x, weight, bias, stride, padding, dilation, channel_sums=channel_sums)
        y, sums = result if channel_sums else (result, None)
        return y, None, sums
    x_nhwc, weight_rows = as_nhwc(x), weight_as_rows(weight)
    if how == "row_shift":
        padded = None
        y = gemm.conv_rows_shifted(x_nhwc, weight_rows, kernel_size, dilation, padding)
    else:
        padded = pad_channels_last(x_nhwc, padding)
        y = gemm.forward_rows(padded, weight_rows, kernel_size, stride, dilation)
    if bias is not None:
        y += bias
    oh = output_size(h, kernel_size[0], stride[0], padding[0], padding[1], dilation[0])
    ow = output_size(w, kernel_size[1], stride[1], padding[2], padding[3], dilation[1])
    return as_nchw(y, n, oh, ow), padded, None


def conv_weight_grad(x, padded, g, weight_shape, stride, padding, dilation, later=False):
    """dL/dW (OC, C, KH, KW) from the input x (N, C, H, W), the padded NHWC copy conv_forward made
    (or None: then row-shifted layers pad chunk by chunk, others pad x now), and g (N, OC, OH, OW).
    ``later``: an object whose ``result()`` is dL/dW, the direct kernels' still running on the pool's workers
    (threads.map_ranges_later); the GEMM paths' computed now."""
    oc, c, kh, kw = weight_shape
    how = strategy(c, (kh, kw), stride, x.dtype, pass_="weight_grad", macs=_macs(g.size // oc, weight_shape))
    if how == "direct":
        return _direct().conv_weight_grad(x, g, weight_shape, stride, padding, dilation, later=later)
    if later:
        return Ready(conv_weight_grad(x, padded, g, weight_shape, stride, padding, dilation))
    g_rows = as_nhwc(g).reshape(-1, oc)
    if padded is None and how == "row_shift":
        grad = gemm.weight_grad_shifted(as_nhwc(x), g_rows, (kh, kw), dilation, padding)
    else:
        if padded is None:
            padded = pad_channels_last(as_nhwc(x), padding)
        grad = gemm.weight_grad_rows(padded, g_rows, (kh, kw), stride, dilation)
    return np.ascontiguousarray(grad.reshape(oc, kh, kw, c).transpose(0, 3, 1, 2))


def _macs(output_pixels, weight_shape):
    """The multiply-adds of each pass of a layer with ``output_pixels`` output pixels (N * OH * OW) and weights of
    ``weight_shape`` (OC, C, KH, KW): every pixel takes every weight once."""
    return output_pixels * math.prod(weight_shape)


def conv_input_grad(g, weight, input_shape, stride, padding, dilation):
    """dL/dx (N, C, H, W), a channels-last view, for g (N, OC, OH, OW)."""
    macs = _macs(g.size // g.shape[1], weight.shape)
    if strategy(g.shape[1], weight.shape[2:], stride, g.dtype, pass_="input_grad", macs=macs) == "direct":
        return _direct().conv_input_grad(g, weight, input_shape, stride, padding, dilation)
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
    g_nhwc = as_nhwc(g)
    # g row j lands on padded row j + shift (the padded g has H + (KH-1)*dh rows)
    shift_h, shift_w = (kh - 1) * dh - top, (kw - 1) * dw - left
    sides = (shift_h, h + (kh - 1) * dh - g.shape[2] - shift_h, shift_w, w + (kw - 1) * dw - g.shape[3] - shift_w)
    flipped = np.ascontiguousarray(weight[:, :, ::-1, ::-1].transpose(2, 3, 0, 1)).reshape(-1, c)
    if min(sides) >= 0 and strategy(oc, (kh, kw), (1, 1)) == "row_shift":  # padded chunk by chunk
        return as_nchw(gemm.conv_rows_shifted(g_nhwc, flipped, (kh, kw), dilation, sides), n, h, w)
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
    g_rows = as_nhwc(g).reshape(-1, oc)
    w_rows = weight.transpose(0, 2, 3, 1).reshape(oc, -1)  # (OC, KH*KW*C)
    dx = np.zeros((n, h + top + bottom, w + left + right, c), dtype=g.dtype)
    step = max(1, min(n, gemm.CHUNK_FLOATS // (oh * ow * kh * kw * c)))

    def images(first_image, stop_image):
        for first in range(first_image, stop_image, step):
            count = min(step, stop_image - first)
            dcols = (g_rows[first * oh * ow:(first + count) * oh * ow] @ w_rows).reshape(count, oh, ow, kh, kw, c)
            target = dx[first:first + count]
            for i in range(kh):
                for j in range(kw):
                    target[:, window_slice(i * dh, oh, sh), window_slice(j * dw, ow, sw)] += dcols[:, :, :, i, j]

    map_ranges(images, n, n * oh * ow * kh * kw * c, gemm.PARALLEL_MIN_COLS)
    return dx[:, top:top + h, left:left + w].transpose(0, 3, 1, 2)
