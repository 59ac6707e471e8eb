"""``max_unpool2d``: the partial inverse of ``max_pool2d(return_indices=True)``.

Each input value goes back to the position its index names in a zero (OH, OW) plane; every
other output is 0.  With x and the output flattened per (n, c) plane:

    y[n, c, indices[n, c, i]] = x[n, c, i]          dL/dx[n, c, i] = g[n, c, indices[n, c, i]]

(where two values name one position, the last write wins, and its gradient reads that position).
"""
from ..autograd import Function
from ..backend import get_array_module
from ..errors import DTypeError, IndexRangeError, ShapeError
from .conv import pair


class MaxUnpool2d(Function):
    """y = zeros with x scattered to ``indices`` (flat h * OW + w per plane); dL/dx = g gathered there."""

    def forward(self, x, indices, output_hw=(1, 1)):
        xp = get_array_module(x)
        n, c = x.shape[:2]
        flat_indices = indices.reshape(n, c, -1)
        y = xp.zeros((n, c, output_hw[0] * output_hw[1]), dtype=x.dtype)
        xp.put_along_axis(y, flat_indices, x.reshape(n, c, -1), axis=2)
        self.flat_indices, self.input_shape = flat_indices, x.shape
        return y.reshape(n, c, *output_hw)

    def backward(self, g):
        xp = get_array_module(g)
        n, c = g.shape[:2]
        return xp.take_along_axis(g.reshape(n, c, -1), self.flat_indices, axis=2).reshape(self.input_shape), None


def max_unpool2d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    """Scatters input (N, C, H, W) to the positions ``indices`` (from max_pool2d(return_indices=True));
    the output is (N, C, OH, OW) with OH = (H - 1) * stride - 2 * padding + kernel_size unless
    ``output_size`` ((OH, OW), or a full shape) says otherwise."""
    if input.ndim != 4:
        raise ShapeError(f"max_unpool2d: expected a 4-D input (N, C, H, W), got shape {tuple(input.shape)}")
    if tuple(indices.shape) != tuple(input.shape):
        raise ShapeError(f"max_unpool2d: indices of shape {tuple(indices.shape)} must have the input's shape "
                         f"{tuple(input.shape)}")
    if indices.dtype.kind not in "iu":
        raise DTypeError(f"max_unpool2d: indices must be integers (from max_pool2d(return_indices=True)), "
                        f"got {indices.dtype}")
    kernel_size = pair(kernel_size, "kernel_size", "max_unpool2d")
    stride = kernel_size if stride is None else pair(stride, "stride", "max_unpool2d")
    padding = pair(padding, "padding", "max_unpool2d")
    default = tuple((size - 1) * s - 2 * p + k for size, s, p, k in zip(input.shape[2:], stride, padding, kernel_size))
    output_hw = default if output_size is None else tuple(int(v) for v in tuple(output_size)[-2:])
    if min(output_hw) <= 0:
        raise ShapeError(f"max_unpool2d: output size {output_hw} must be positive")
    array = indices.array
    if array.size and (int(array.min()) < 0 or int(array.max()) >= output_hw[0] * output_hw[1]):
        raise IndexRangeError(f"max_unpool2d: found an invalid max index {int(array.max())} (output size is "
                           f"{output_hw[0]}x{output_hw[1]}; valid indices 0 to {output_hw[0] * output_hw[1] - 1})")
    return MaxUnpool2d.apply(input, array, output_hw=output_hw)
