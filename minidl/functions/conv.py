"""2-D convolution as one matrix product: im2col, GEMM, col2im.

A convolution multiplies every (C, KH, KW) window of the input with every
filter.  ``im2col`` copies all windows into the columns of one matrix

    cols[(c, kh, kw), (n, oh, ow)] = x_padded[n, c, oh*sh + kh*dh, ow*sw + kw*dw]

so that the whole convolution is a single GEMM, ``W (OC, C*KH*KW) @ cols``.
The windows are read through a strided *view* of the padded input (no Python
loop over pixels) and copied once.  ``col2im`` is the adjoint of ``im2col``: it
adds every column entry back onto the pixel it was read from, looping only over
the KH*KW kernel offsets.

Layout: cols is (C*KH*KW, N*OH*OW), with the batch folded into the columns, so
forward and both halves of backward are each one large GEMM (BLAS is at its
best on few large products).  It beat a per-sample batched matmul
``(N, C*KH*KW, OH*OW)`` on ResNet-20's layers; the price is one transpose of the
output (OC, N, OH, OW) -> (N, OC, OH, OW) and of its gradient.

This is the reference convolution, the one every device can run.  The CPU runs a faster twin
in channels-last memory (``minidl/backends/cpu/conv.py``, see docs/backends.md).
"""
from .. import amp
from ..autograd import Function
from ..backend import get_array_module
from ..errors import ArgumentError, DTypeError, ShapeError


def pair(value, name, op):
    """``value`` as a pair of ints (an int stands for both height and width)."""
    pair_ = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair_) != 2 or not all(isinstance(v, int) for v in pair_):
        raise ShapeError(f"{op}: {name} must be an int or a pair of ints, got {value!r}")
    return pair_


def output_size(size, kernel, stride, pad_before, pad_after, dilation=1):
    """Number of window positions along one axis (PyTorch's floor rule)."""
    return (size + pad_before + pad_after - dilation * (kernel - 1) - 1) // stride + 1


def pad_spatial(x, padding, value=0):
    """x (N, C, H, W) with ``padding`` = (top, bottom, left, right) rows/columns of ``value`` added."""
    top, bottom, left, right = padding
    if not any(padding):
        return x
    xp = get_array_module(x)
    n, c, h, w = x.shape
    padded = xp.full((n, c, h + top + bottom, w + left + right), value, dtype=x.dtype)
    padded[:, :, top:top + h, left:left + w] = x
    return padded


def window_slice(offset, count, stride):
    """The input positions that kernel offset ``offset`` reads for output positions 0..count-1."""
    return slice(offset, offset + stride * (count - 1) + 1, stride)


def im2col(x, kernel_size, stride, padding, dilation):
    """x (N, C, H, W) -> cols (C*KH*KW, N*OH*OW); ``padding`` = (top, bottom, left, right)."""
    xp = get_array_module(x)
    (kh, kw), (sh, sw), (dh, dw) = kernel_size, stride, dilation
    n, c, h, w = x.shape
    oh = output_size(h, kh, sh, padding[0], padding[1], dh)
    ow = output_size(w, kw, sw, padding[2], padding[3], dw)
    padded = pad_spatial(x, padding)
    s_n, s_c, s_h, s_w = padded.strides
    windows = xp.lib.stride_tricks.as_strided(
        padded, shape=(c, kh, kw, n, oh, ow),
        strides=(s_c, s_h * dh, s_w * dw, s_n, s_h * sh, s_w * sw))
    return windows.reshape(c * kh * kw, n * oh * ow)  # the one copy


def col2im(cols, input_shape, kernel_size, stride, padding, dilation):
    """Adjoint of im2col: cols (C*KH*KW, N*OH*OW) -> dx (N, C, H, W), summing overlapping windows."""
    xp = get_array_module(cols)
    (kh, kw), (sh, sw), (dh, dw) = kernel_size, stride, dilation
    top, bottom, left, right = padding
    n, c, h, w = input_shape
    oh = output_size(h, kh, sh, top, bottom, dh)
    ow = output_size(w, kw, sw, left, right, dw)
    cols = cols.reshape(c, kh, kw, n, oh, ow)
    # Accumulate in (C, N, H, W) order, the order cols is stored in; transpose once at the end.
    dx = xp.zeros((c, n, h + top + bottom, w + left + right), dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            dx[:, :, window_slice(i * dh, oh, sh), window_slice(j * dw, ow, sw)] += cols[:, i, j]
    dx = dx[:, :, top:top + h, left:left + w]
    return xp.ascontiguousarray(dx.transpose(1, 0, 2, 3))


class Conv2d(Function):
    """y[n, o] = sum_{c, kh, kw} W[o, c, kh, kw] * x_padded[n, c, oh*s + kh*d, ow*s + kw*d] + b[o].

    As matrices, per group: Y (OC, N*OH*OW) = W (OC, C*KH*KW) @ cols + b, so with
    G = dL/dY reshaped the same way:

        dL/dW = G @ cols^T          (cols rebuilt from x: keeping x costs 1/(KH*KW) of keeping cols)
        dL/dx = col2im(W^T @ G)
        dL/db = g summed over (N, OH, OW)

    Under ``minidl.amp.autocast`` the three products run in bf16/fp16 with float32 accumulation.
    """

    def forward(self, x, weight, bias, stride=(1, 1), padding=(0, 0, 0, 0), dilation=(1, 1), groups=1):
        xp = get_array_module(x)
        self.compute_dtype = amp.autocast_dtype()
        n = x.shape[0]
        out_channels, _, kh, kw = weight.shape
        geometry = (kh, kw), stride, padding, dilation
        cols = im2col(x, *geometry)
        oh = output_size(x.shape[2], kh, stride[0], padding[0], padding[1], dilation[0])
        ow = output_size(x.shape[3], kw, stride[1], padding[2], padding[3], dilation[1])
        w_mat = weight.reshape(groups, out_channels // groups, -1)        # (G, OC/G, C/G*KH*KW)
        y = amp.matmul(w_mat, cols.reshape(groups, w_mat.shape[2], -1), self.compute_dtype)  # (G, OC/G, N*OH*OW)
        y = y.reshape(out_channels, n, oh, ow).transpose(1, 0, 2, 3)
        y = xp.ascontiguousarray(y)
        if bias is not None:
            y += bias.reshape(1, -1, 1, 1)
        if self.recording:
            self.geometry, self.groups, self.input_shape = geometry, groups, x.shape
            self.weight = weight if self.needs_input_grad[0] else None
            self.x = x if self.needs_input_grad[1] else None
        return y

    def backward(self, g):
        xp = get_array_module(g)
        groups, out_channels = self.groups, g.shape[1]
        g_mat = xp.ascontiguousarray(g.transpose(1, 0, 2, 3)).reshape(groups, out_channels // groups, -1)
        grad_x = grad_w = grad_b = None
        if self.needs_input_grad[0]:
            w_mat = self.weight.reshape(groups, out_channels // groups, -1)
            grad_cols = amp.matmul(w_mat.transpose(0, 2, 1), g_mat, self.compute_dtype)  # (G, C/G*KH*KW, N*OH*OW)
            grad_x = col2im(grad_cols.reshape(-1, g_mat.shape[2]), self.input_shape, *self.geometry)
        if self.needs_input_grad[1]:
            cols = im2col(self.x, *self.geometry)
            cols = cols.reshape(groups, -1, cols.shape[1])
            grad_w = amp.matmul(g_mat, cols.transpose(0, 2, 1), self.compute_dtype)
            grad_w = grad_w.reshape(out_channels, -1, *self.geometry[0])
        if self.needs_input_grad[2]:
            grad_b = g.sum(axis=(0, 2, 3))
        return grad_x, grad_w, grad_b


def _padding(padding, kernel_size, stride, dilation):
    """(top, bottom, left, right) from an int, a pair, 'valid' or 'same' (PyTorch's rules)."""
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0, 0, 0)
        if padding != "same":
            raise ArgumentError(f"conv2d: unknown padding {padding!r}; valid strings are 'valid' and 'same'")
        if stride != (1, 1):
            raise ArgumentError(f"conv2d: padding='same' is not supported for strided convolutions (stride={stride})")
        sides = []
        for k, d in zip(kernel_size, dilation):
            total = d * (k - 1)
            sides += [total // 2, total - total // 2]  # the odd extra row/column goes after, as in PyTorch
        return tuple(sides)
    ph, pw = pair(padding, "padding", "conv2d")
    if ph < 0 or pw < 0:
        raise ArgumentError(f"conv2d: padding must be non-negative, got {padding!r}")
    return (ph, ph, pw, pw)


def _check_conv_shapes(input, weight, bias, groups):
    if input.ndim != 4:
        raise ShapeError(f"conv2d: expected a 4-D input (N, C, H, W), got input of shape {tuple(input.shape)}")
    if weight.ndim != 4:
        raise ShapeError(
            f"conv2d: expected a 4-D weight (out_channels, in_channels/groups, KH, KW), "
            f"got weight of shape {tuple(weight.shape)}")
    if not isinstance(groups, int) or groups < 1:
        raise ArgumentError(f"conv2d: groups must be a positive int, got {groups!r}")
    out_channels, group_channels = weight.shape[:2]
    if out_channels % groups:
        raise ShapeError(f"conv2d: out_channels ({out_channels}) must be divisible by groups ({groups})")
    if input.shape[1] != group_channels * groups:
        raise ShapeError(
            f"conv2d: weight of shape {tuple(weight.shape)} expects input with {group_channels * groups} "
            f"channels, got input of shape {tuple(input.shape)}" + (f" (groups={groups})" if groups > 1 else ""))
    if bias is not None and tuple(bias.shape) != (out_channels,):
        raise ShapeError(f"conv2d: bias must have shape ({out_channels},), got {tuple(bias.shape)}")
    for name, tensor in (("weight", weight), ("bias", bias)):
        if tensor is not None and tensor.dtype != input.dtype:
            raise DTypeError(f"conv2d: input is {input.dtype} but {name} is {tensor.dtype}; convert one of them")


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D convolution (cross-correlation) of input (N, C, H, W) with weight (OC, C/groups, KH, KW).

    ``stride``, ``dilation``: int or (h, w); ``padding``: int, (h, w), 'valid' or 'same'.
    Returns (N, OC, OH, OW), OH = (H + 2*pad - dilation*(KH-1) - 1) // stride + 1.
    """
    _check_conv_shapes(input, weight, bias, groups)
    stride, dilation = pair(stride, "stride", "conv2d"), pair(dilation, "dilation", "conv2d")
    if min(stride) < 1 or min(dilation) < 1:
        raise ArgumentError(f"conv2d: stride and dilation must be positive, got stride={stride}, dilation={dilation}")
    kernel_size = tuple(weight.shape[2:])
    pads = _padding(padding, kernel_size, stride, dilation)
    h, w = input.shape[2:]
    oh = output_size(h, kernel_size[0], stride[0], pads[0], pads[1], dilation[0])
    ow = output_size(w, kernel_size[1], stride[1], pads[2], pads[3], dilation[1])
    if oh <= 0 or ow <= 0:
        raise ShapeError(
            f"conv2d: input of shape {tuple(input.shape)} is too small for kernel {kernel_size} with "
            f"padding {padding!r}, dilation {dilation}: the output would be {oh}x{ow}")
    return Conv2d.apply(input, weight, bias, stride=stride, padding=pads, dilation=dilation, groups=groups)
