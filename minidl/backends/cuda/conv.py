"""Conv2d on the GPU: minidl's im2col / col2im kernels and cuBLAS GEMMs (CuPy's matmul).

The maths and the matrix layout are the reference's (minidl/functions/conv.py):
cols (C*KH*KW, N*OH*OW), y = W (OC, C*KH*KW) @ cols.  What differs:

* ``im2col`` and ``col2im`` are one kernel launch each (kernels/im2col.cu, kernels/col2im.cu);
  col2im gathers per pixel, so it needs no atomics and sums in a fixed order.
* Backward keeps x, not cols (9x the activation for a 3x3 kernel), and rebuilds cols for the
  weight gradient, as Chainer does; cols and its gradient are never alive at the same time.
* Under ``minidl.amp.autocast`` the GEMMs go through ``amp.matmul`` (cuBLAS GemmEx in bf16/fp16).
"""
from ... import amp
from ...functions.conv import Conv2d, output_size
from ..registry import register
from .launch import i32, i64, is_float_array, launch


def _geometry_args(input_shape, kernel_size, stride, padding, dilation):
    """The kernels' scalar arguments N, C, H, W, KH, KW, OH, OW, SH, SW, PT, PL, DH, DW (all int)."""
    n, c, h, w = input_shape
    (kh, kw), (sh, sw), (dh, dw) = kernel_size, stride, dilation
    top, bottom, left, right = padding
    oh, ow = output_size(h, kh, sh, top, bottom, dh), output_size(w, kw, sw, left, right, dw)
    return (oh, ow), tuple(i32(v) for v in (n, c, h, w, kh, kw, oh, ow, sh, sw, top, left, dh, dw))


def im2col(x, kernel_size, stride, padding, dilation):
    """kernels/im2col.cu: cols[(c, kh, kw), (n, oh, ow)] = x[n, c, oh*SH - PT + kh*DH, ow*SW - PL + kw*DW]
    (0 in the padding); x (N, C, H, W) -> cols (C*KH*KW, N*OH*OW), as ``functions.conv.im2col``."""
    import cupy
    x = cupy.ascontiguousarray(x)
    (oh, ow), args = _geometry_args(x.shape, kernel_size, stride, padding, dilation)
    n, c = x.shape[:2]
    cols = cupy.empty((c * kernel_size[0] * kernel_size[1], n * oh * ow), dtype=x.dtype)
    launch("im2col.cu", "im2col", (x, cols, i64(cols.size)) + args, cols.size, x.dtype)
    return cols


def col2im(cols, input_shape, kernel_size, stride, padding, dilation):
    """kernels/col2im.cu, the adjoint of im2col: dx[n, c, h, w] = the sum of the cols entries that
    im2col read from (n, c, h, w); cols (C*KH*KW, N*OH*OW) -> dx (N, C, H, W)."""
    import cupy
    cols = cupy.ascontiguousarray(cols)
    (oh, ow), args = _geometry_args(input_shape, kernel_size, stride, padding, dilation)
    n, c = input_shape[:2]
    expected = (c * kernel_size[0] * kernel_size[1], n * oh * ow)
    if cols.shape != expected:
        raise ValueError(f"col2im: cols has shape {cols.shape}, but input {tuple(input_shape)} with this "
                         f"kernel/stride/padding/dilation needs {expected}")
    dx = cupy.empty(tuple(input_shape), dtype=cols.dtype)
    launch("col2im.cu", "col2im", (cols, dx, i64(dx.size)) + args, dx.size, cols.dtype)
    return dx


def _per_group(cols, groups):
    """cols (C*KH*KW, N*OH*OW) as (G, C/G*KH*KW, N*OH*OW): each group's rows are consecutive."""
    return cols.reshape(groups, cols.shape[0] // groups, cols.shape[1])


@register(Conv2d, "cuda")
class Conv2dCuda(Conv2d):
    """Conv2d with the im2col/col2im kernels; same maths as the reference (see its docstring)."""

    @classmethod
    def supports(cls, inputs, params):
        x, weight = inputs[0], inputs[1]
        x, weight = getattr(x, "array", x), getattr(weight, "array", weight)
        return is_float_array(x) and weight.dtype == x.dtype

    def forward(self, x, weight, bias, stride=(1, 1), padding=(0, 0, 0, 0), dilation=(1, 1), groups=1):
        self.compute_dtype = amp.autocast_dtype()
        n, (out_channels, _, kh, kw) = x.shape[0], weight.shape
        geometry = (kh, kw), stride, padding, dilation
        cols = im2col(x, *geometry)
        y = self._gemm(weight.reshape(groups, out_channels // groups, -1), _per_group(cols, groups))  # (G, OC/G, N*P)
        del cols
        oh, ow = _geometry_args(x.shape, *geometry)[0]
        y = y.reshape(out_channels, n, oh, ow).transpose(1, 0, 2, 3).copy()  # NCHW, C-contiguous
        if bias is not None:
            y += bias.reshape(1, -1, 1, 1)
        if self.recording:
            self.geometry, self.groups, self.input_shape = geometry, groups, x.shape
            self.weight = weight if self.needs_input_grad[0] else None
            self.x = x if self.needs_input_grad[1] else None  # cols is rebuilt in backward
        return y

    def backward(self, g):
        groups, out_channels = self.groups, g.shape[1]
        g_mat = g.transpose(1, 0, 2, 3).copy().reshape(groups, out_channels // groups, g.size // out_channels)
        grad_x = grad_w = grad_b = None
        if self.needs_input_grad[1]:
            cols = im2col(self.x, *self.geometry)
            grad_w = self._gemm(g_mat, _per_group(cols, groups).transpose(0, 2, 1))
            grad_w = grad_w.reshape(out_channels, -1, *self.geometry[0])
            del cols
        if self.needs_input_grad[0]:
            w_mat = self.weight.reshape(groups, out_channels // groups, -1)
            grad_cols = self._gemm(w_mat.transpose(0, 2, 1), g_mat)  # (G, C/G*KH*KW, N*OH*OW)
            grad_x = col2im(grad_cols.reshape(-1, g_mat.shape[2]), self.input_shape, *self.geometry)
        if self.needs_input_grad[2]:
            grad_b = g.sum(axis=(0, 2, 3))
        return grad_x, grad_w, grad_b

    def _gemm(self, a, b):
        """a @ b per group: one plain GEMM when there is one group (the common case), else batched."""
        if a.shape[0] == 1:
            return amp.matmul(a[0], b[0], self.compute_dtype)[None]
        return amp.matmul(a, b, self.compute_dtype)
