"""BatchNorm on the CPU for channels-last input: the fast twin of ``functions/batchnorm.py``'s BatchNorm.

An (N, C, H, W) activation stored (N, H, W, C), as the CPU convolution makes it, is an (N*H*W, C)
matrix of rows without a copy.  The maths is the reference's (see BatchNorm there); each step is
one fused pass over the rows (``kernels.py``, numba), split across the CPU's threads, instead of
several whole-array NumPy passes with temporaries.  It runs for inputs tagged
``minidl.channels_last`` (the CPU convolution's output) and returns channels-last output, so the
layers after it stay on their fast paths.

relu(batch_norm(x)) (``functions/fused.py``'s BatchNormReLU, which minidl's ResNet blocks ask for)
runs in the same passes: the scale-shift pass clamps at 0 and writes the mask y > 0 beside y, and
backward's two passes over g read it where the mask is set, so the ReLU costs no pass of its own
in either direction.  relu(batch_norm(x) + r) (BatchNormAddReLU: a residual block's last batch
norm and its join) adds r in that pass too; backward's masked g is then also dL/dr.

In training the statistics usually cost no pass either: the CPU convolution sums each output channel and its
square (float64, image by image) while its output is still in cache, and keeps the sums on its graph node; a
batch norm whose input is that output, unchanged, takes mean = S1/m and var = S2/m - mean^2 from them
(``convolution_sums``).  The sums of float32 values in float64 keep var free of cancellation.
"""
import numpy as np

from ...functions.batchnorm import BatchNorm, _update_running_stats
from ...functions.fused import BatchNormAddReLU, BatchNormReLU
from ...memory_formats import channels_last
from ..registry import register
from . import kernels


@register(BatchNorm, "cpu")
class BatchNormChannelsLast(BatchNorm):
    """The same y and gradients as BatchNorm, on the (N*H*W, C) rows of a channels-last input."""

    output_memory_format = channels_last
    relu = False  # BatchNormReLUChannelsLast fuses the ReLU that follows

    @classmethod
    def supports(cls, inputs, params):
        return is_channels_last_float(inputs[0])

    def forward(self, x, weight=None, bias=None, running_mean=None, running_var=None,
                training=False, momentum=0.1, eps=1e-5):
        rows = channel_rows(x)
        if training:
            mean, var = self.batch_statistics(rows)
            mean, var = mean.astype(x.dtype), var.astype(x.dtype)
            if running_mean is not None:
                _update_running_stats(running_mean, running_var, mean, var, momentum, len(rows))
        else:
            mean, var = running_mean.copy(), running_var
        invstd = (1 / np.sqrt(var + eps)).astype(x.dtype)
        scale = invstd if weight is None else invstd * weight
        shift = -mean * scale if bias is None else bias - mean * scale
        if self.recording:
            self.x, self.mean, self.invstd, self.weight, self.training = x, mean, invstd, weight, training
        y = self.normalize(rows, scale, shift)
        return as_nchw(y, x.shape)

    def batch_statistics(self, rows):
        """Per-channel mean and biased variance of the (N*H*W, C) rows, float64: from the sums that the convolution
        which made x took in its output pass, when it did (no pass over x here), else in one pass over the rows."""
        sums = convolution_sums(self.inputs[0])
        if sums is None:
            return kernels.column_mean_and_var(rows)
        mean = sums[0] / len(rows)
        return mean, np.maximum(sums[1] / len(rows) - mean ** 2, 0)

    def normalize(self, rows, scale, shift):
        """The pass that writes y: rows * scale + shift (BatchNormReLUChannelsLast clamps it at 0)."""
        return kernels.scale_shift(rows, scale, shift)

    def keep_mask(self, y, positive):
        """y, keeping the (rows, C) mask y > 0 for backward: where g reaches the batch norm."""
        if self.recording:
            self.positive = positive
        return y

    def backward(self, g):
        x, mean, invstd = self.x, self.mean, self.invstd
        need_x, need_weight, need_bias = self.needs_input_grad[:3]
        rows = channel_rows(x)
        g_rows = np.ascontiguousarray(g.transpose(0, 2, 3, 1)).reshape(rows.shape)
        positive = self.positive if self.relu else None  # fused ReLU: g counts only where y > 0
        sum_g, sum_g_centred = kernels.grad_sums(g_rows, rows, mean, positive)
        sum_g_xhat = sum_g_centred * invstd
        grad_x = None
        if need_x:
            scale = invstd if self.weight is None else invstd * self.weight
            if self.training:  # g * scale - (scale / m) * (sum(g) + xhat * sum(g xhat)), xhat = (x - mean) * invstd
                m = len(rows)
                b, c = -scale * invstd * sum_g_xhat / m, -scale * sum_g / m
            else:
                b = c = np.zeros_like(scale)
            grad_x = as_nchw(self.input_grad(g_rows, rows, mean, scale, b.astype(x.dtype), c.astype(x.dtype),
                                             positive), x.shape)
        grad_weight = sum_g_xhat.astype(x.dtype) if need_weight else None
        grad_bias = sum_g.astype(x.dtype) if need_bias else None
        return grad_x, grad_weight, grad_bias

    def input_grad(self, g_rows, rows, mean, scale, b, c, positive):
        """dL/dx's pass over the rows (BatchNormAddReLUChannelsLast also keeps the masked g from it)."""
        return kernels.input_grad(g_rows, rows, mean, scale, b, c, positive)


@register(BatchNormReLU, "cpu")
class BatchNormReLUChannelsLast(BatchNormChannelsLast, BatchNormReLU):
    """relu(batch_norm(x)) in BatchNormChannelsLast's passes: the forward pass clamps and writes the
    mask y > 0, the backward passes take g only where it is set (BatchNormReLU's backward, unfused)."""

    relu = True

    @classmethod
    def supports(cls, inputs, params):
        return is_channels_last_float(inputs[0])

    def normalize(self, rows, scale, shift):
        return self.keep_mask(*kernels.scale_shift_relu(rows, scale, shift))


@register(BatchNormAddReLU, "cpu")
class BatchNormAddReLUChannelsLast(BatchNormChannelsLast, BatchNormAddReLU):
    """relu(batch_norm(x) + r) in BatchNormChannelsLast's passes: the forward pass adds r, clamps and writes the
    mask; backward takes g where it is set, as BatchNormReLUChannelsLast, and that masked g is dL/dr (written by the
    input gradient's pass).
    The same bits as the batch norm, then AddReLUThreaded."""

    relu = True

    @classmethod
    def supports(cls, inputs, params):
        x, residual = inputs[0], inputs[3]
        return (is_channels_last_float(x) and is_channels_last_float(residual) and residual.shape == x.shape
                and residual.dtype == x.dtype)

    def forward(self, x, weight=None, bias=None, residual=None, **params):
        self.residual = residual
        try:
            return super().forward(x, weight, bias, **params)
        finally:
            del self.residual  # only the forward pass reads it

    def normalize(self, rows, scale, shift):
        return self.keep_mask(*kernels.scale_shift_add_relu(rows, scale, shift, channel_rows(self.residual)))

    def backward(self, g):
        self.masked_g = None
        grad_x, grad_weight, grad_bias = super().backward(g)
        masked_g = self.masked_g
        if masked_g is None and self.needs_input_grad[3]:  # x needs no gradient: no input-gradient pass ran
            g_rows = np.ascontiguousarray(g.transpose(0, 2, 3, 1)).reshape(self.positive.shape)  # as backward's
            masked_g = kernels.relu_grad(g_rows, self.positive)
        return grad_x, grad_weight, grad_bias, None if masked_g is None else as_nchw(masked_g, g.shape)

    def input_grad(self, g_rows, rows, mean, scale, b, c, positive):
        if not self.needs_input_grad[3]:
            return super().input_grad(g_rows, rows, mean, scale, b, c, positive)
        grad_x, self.masked_g = kernels.input_grad(g_rows, rows, mean, scale, b, c, positive, keep_masked=True)
        return grad_x


def convolution_sums(x):
    """The (2, C) float64 sums of the tensor x and of its squares over batch and pixels that the CPU convolution which
    made x took in its output pass (Conv2dChannelsLast.output_sums), or None: x made by another op, changed in
    place since (its version is no longer 0), or given another array (``x.data = ...``).  (A change through another
    tensor sharing the array, ``x.data.add_(1)``, or through the array itself bumps no version: as with any tensor
    saved for backward, the sums then describe the old values.)"""
    made_by = getattr(x, "_ctx", None)
    sums = getattr(made_by, "output_sums", None)
    if sums is None or x._version != 0 or made_by.output() is not x.array:
        return None
    return sums


def is_channels_last_float(x):
    """Whether ``x`` is a tensor tagged ``channels_last`` (so 4-D) of float32/float64 NumPy data: the
    input the rows path and its numba kernels handle."""
    return (getattr(x, "memory_format", None) is channels_last and isinstance(x.array, np.ndarray)
            and x.dtype in (np.float32, np.float64))


def channel_rows(x):
    """x (N, C, H, W) as its (N*H*W, C) matrix of rows: a view when x is stored channels-last (else a copy)."""
    return x.transpose(0, 2, 3, 1).reshape(-1, x.shape[1])


def as_nchw(rows, shape):
    """(N*H*W, C) rows viewed as an (N, C, H, W) array with channels-last memory."""
    n, c, h, w = shape
    return rows.reshape(n, h, w, c).transpose(0, 3, 1, 2)
