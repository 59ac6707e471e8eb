"""``conv_transpose2d``: the transposed ("fractionally strided") convolution, the adjoint of conv2d.

conv2d with weight W (C_in, C_out/groups, KH, KW) maps a (C_out, H', W') image to (C_in, H, W);
its transpose maps (C_in, H, W) back to (C_out, H', W'), with H' = (H - 1) * stride - 2 * padding +
dilation * (KH - 1) + output_padding + 1.  It is exactly conv2d's input gradient, so it is built
from the same two steps as ``conv.py`` (im2col, col2im), swapped.  Per group, with X the input as a
matrix (C_in/groups, N*H*W):

    y      = col2im(W^T @ X)                W as (C_in/groups, C_out/groups*KH*KW)
    dL/dX  = W @ im2col(g)                  (the forward of conv2d, applied to g)
    dL/dW  = X @ im2col(g)^T
    dL/db  = g summed over (N, H', W')
"""
from ..autograd import Function
from ..backend import get_array_module
from ..errors import ArgumentError, DTypeError, ShapeError
from .conv import col2im, im2col, pair


class ConvTranspose2d(Function):
    """y = conv_transpose2d(x, W) + b (see the module docstring for the three gradients)."""

    def forward(self, x, weight, bias, stride=(1, 1), padding=(0, 0), output_padding=(0, 0), dilation=(1, 1),
                groups=1):
        xp = get_array_module(x)
        n, in_channels, h, w = x.shape
        kh, kw = weight.shape[2:]
        out_channels = weight.shape[1] * groups
        out_hw = tuple((size - 1) * s - 2 * p + d * (k - 1) + op + 1
                       for size, s, p, d, k, op in zip((h, w), stride, padding, dilation, (kh, kw), output_padding))
        x_mat = xp.ascontiguousarray(x.transpose(1, 0, 2, 3)).reshape(groups, in_channels // groups, -1)
        w_mat = weight.reshape(groups, in_channels // groups, -1)                 # (G, C_in/G, C_out/G*KH*KW)
        cols = xp.matmul(w_mat.transpose(0, 2, 1), x_mat)                         # (G, C_out/G*KH*KW, N*H*W)
        self.geometry = (kh, kw), stride, (padding[0], padding[0], padding[1], padding[1]), dilation
        y = col2im(cols.reshape(-1, n * h * w), (n, out_channels) + out_hw, *self.geometry)
        if bias is not None:
            y += bias.reshape(1, -1, 1, 1)
        self.x_mat, self.weight, self.groups, self.input_shape = x_mat, weight, groups, x.shape
        return y

    def backward(self, g):
        xp = get_array_module(g)
        groups, weight = self.groups, self.weight
        cols = im2col(g, *self.geometry)                                          # (C_out*KH*KW, N*H*W)
        cols = cols.reshape(groups, -1, cols.shape[1])
        grad_x = grad_w = grad_b = None
        if self.needs_input_grad[0]:
            w_mat = weight.reshape(groups, weight.shape[0] // groups, -1)
            n, in_channels, h, w = self.input_shape
            grad_x = xp.matmul(w_mat, cols).reshape(in_channels, n, h, w).transpose(1, 0, 2, 3)
            grad_x = xp.ascontiguousarray(grad_x)
        if self.needs_input_grad[1]:
            grad_w = xp.matmul(self.x_mat, cols.transpose(0, 2, 1)).reshape(weight.shape)
        if self.needs_input_grad[2]:
            grad_b = g.sum(axis=(0, 2, 3))
        return grad_x, grad_w, grad_b


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """Transposed convolution of input (N, C_in, H, W) with weight (C_in, C_out/groups, KH, KW);
    returns (N, C_out, H', W'), H' = (H - 1) * stride - 2 * padding + dilation * (KH - 1) + output_padding + 1."""
    op = "conv_transpose2d"
    if input.ndim != 4 or weight.ndim != 4:
        raise ShapeError(f"{op}: expected a 4-D input (N, C_in, H, W) and weight (C_in, C_out/groups, KH, KW), "
                         f"got input of shape {tuple(input.shape)} and weight of shape {tuple(weight.shape)}")
    if not isinstance(groups, int) or groups < 1 or weight.shape[0] % groups:
        raise ArgumentError(f"{op}: groups must be a positive int dividing the weight's {weight.shape[0]} input "
                         f"channels, got {groups!r}")
    if input.shape[1] != weight.shape[0]:
        raise ShapeError(f"{op}: weight of shape {tuple(weight.shape)} expects input with {weight.shape[0]} "
                           f"channels, got input of shape {tuple(input.shape)}")
    stride, padding = pair(stride, "stride", op), pair(padding, "padding", op)
    output_padding, dilation = pair(output_padding, "output_padding", op), pair(dilation, "dilation", op)
    if min(stride) < 1 or min(dilation) < 1 or min(padding) < 0:
        raise ArgumentError(f"{op}: stride and dilation must be positive and padding non-negative, got stride={stride}, "
                         f"dilation={dilation}, padding={padding}")
    if any(o < 0 or (o >= s and o >= d) for o, s, d in zip(output_padding, stride, dilation)):
        raise ArgumentError(f"{op}: output_padding must be smaller than either stride or dilation, got "
                         f"output_padding={output_padding}, stride={stride}, dilation={dilation}")
    out_channels = weight.shape[1] * groups
    if bias is not None and tuple(bias.shape) != (out_channels,):
        raise ShapeError(f"{op}: bias must have shape ({out_channels},), got {tuple(bias.shape)}")
    for name, tensor in (("weight", weight), ("bias", bias)):
        if tensor is not None and tensor.dtype != input.dtype:
            raise DTypeError(f"{op}: input is {input.dtype} but {name} is {tensor.dtype}; convert one of them")
    out_hw = [(size - 1) * s - 2 * p + d * (k - 1) + o + 1 for size, s, p, d, k, o in
              zip(input.shape[2:], stride, padding, dilation, weight.shape[2:], output_padding)]
    if min(out_hw) <= 0:
        raise ShapeError(f"{op}: the output would be {out_hw[0]}x{out_hw[1]} for input of shape "
                           f"{tuple(input.shape)} with padding {padding}")
    return ConvTranspose2d.apply(input, weight, bias, stride=stride, padding=padding, output_padding=output_padding,
                                 dilation=dilation, groups=groups)
