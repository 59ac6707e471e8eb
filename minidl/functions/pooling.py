"""2-D pooling: max, average and adaptive average over (KH, KW) windows.

Max and average pooling loop over the KH*KW kernel offsets, never over pixels:
for offset (i, j) the strided slice ``x_padded[:, :, i::stride, j::stride]``
(cut to OH x OW) holds, for every output position at once, the one input each
window reads at that offset.  Backward adds the gradient back through the same
slices.  Adaptive average pooling is a linear map along each spatial axis, so it
is two small matrix products (or a reshape + mean when the sizes divide).
"""
from ..autograd import Function
from ..backend import get_array_module
from .conv import output_size, pad_spatial, pair, window_slice


def _crop(grad, padding, shape):
    """The gradient of the unpadded input: the interior of the padded gradient, as its own array."""
    (ph, pw), (h, w) = padding, shape[2:]
    if ph == pw == 0:
        return grad
    return get_array_module(grad).ascontiguousarray(grad[:, :, ph:ph + h, pw:pw + w])


def _offset_windows(kernel_size, stride, out_hw):
    """Yields (offset number, index of its strided (N, C, OH, OW) slice) per kernel offset, row-major."""
    (kh, kw), (sh, sw), (oh, ow) = kernel_size, stride, out_hw
    for i in range(kh):
        for j in range(kw):
            yield i * kw + j, (slice(None), slice(None), window_slice(i, oh, sh), window_slice(j, ow, sw))


class MaxPool2d(Function):
    """y[n, c, oh, ow] = max of the window; padding counts as -inf.

    dL/dx = g routed to the arg-max of each window (the first one, in row-major
    order, when several inputs tie), summed where windows overlap.
    """

    def forward(self, x, kernel_size=(1, 1), stride=(1, 1), padding=(0, 0)):
        xp = get_array_module(x)
        ph, pw = padding
        padded = pad_spatial(x, (ph, ph, pw, pw), value=-xp.inf)
        out_hw = (output_size(x.shape[2], kernel_size[0], stride[0], ph, ph),
                  output_size(x.shape[3], kernel_size[1], stride[1], pw, pw))
        windows = _offset_windows(kernel_size, stride, out_hw)
        _, first = next(windows)
        y = padded[first].copy()
        argmax = xp.zeros(y.shape, dtype=xp.uint8 if kernel_size[0] * kernel_size[1] <= 256 else xp.int32)
        for k, index in windows:
            candidate = padded[index]
            # Strictly greater keeps the first of equal values; a NaN always wins (as in PyTorch).
            better = (candidate > y) | xp.isnan(candidate)
            xp.copyto(y, candidate, where=better)
            xp.copyto(argmax, k, where=better)
        if self.recording:
            self.argmax, self.padded_shape = argmax, padded.shape
            self.geometry = kernel_size, stride, out_hw, padding, x.shape
        return y

    def backward(self, g):
        xp = get_array_module(g)
        kernel_size, stride, out_hw, padding, input_shape = self.geometry
        grad = xp.zeros(self.padded_shape, dtype=g.dtype)
        for k, index in _offset_windows(kernel_size, stride, out_hw):
            grad[index] += xp.where(self.argmax == k, g, 0)
        return _crop(grad, padding, input_shape)


class AvgPool2d(Function):
    """y[n, c, oh, ow] = (sum of the zero-padded window) / divisor.

    divisor = KH*KW (count_include_pad=True) or the number of non-padding
    inputs in the window.   dL/dx = g / divisor added to every input of the window.
    """

    def forward(self, x, kernel_size=(1, 1), stride=(1, 1), padding=(0, 0), count_include_pad=True):
        xp = get_array_module(x)
        ph, pw = padding
        padded = pad_spatial(x, (ph, ph, pw, pw))
        out_hw = (output_size(x.shape[2], kernel_size[0], stride[0], ph, ph),
                  output_size(x.shape[3], kernel_size[1], stride[1], pw, pw))
        windows = _offset_windows(kernel_size, stride, out_hw)
        _, first = next(windows)
        y = padded[first].copy()
        for _, index in windows:
            y += padded[index]
        divisor = self._divisor(xp, x, kernel_size, stride, padding, out_hw, count_include_pad)
        y /= divisor
        if self.recording:
            self.divisor, self.padded_shape = divisor, padded.shape
            self.geometry = kernel_size, stride, out_hw, padding, x.shape
        return y

    @staticmethod
    def _divisor(xp, x, kernel_size, stride, padding, out_hw, count_include_pad):
        if count_include_pad:
            return xp.asarray(kernel_size[0] * kernel_size[1], dtype=x.dtype)
        counts = []
        for size, k, s, p, o in zip(x.shape[2:], kernel_size, stride, padding, out_hw):
            start = xp.arange(o) * s - p  # window start along this axis, in unpadded coordinates
            counts.append(xp.clip(start + k, 0, size) - xp.clip(start, 0, size))
        return (counts[0][:, None] * counts[1][None, :]).astype(x.dtype)

    def backward(self, g):
        xp = get_array_module(g)
        kernel_size, stride, out_hw, padding, input_shape = self.geometry
        share = g / self.divisor
        grad = xp.zeros(self.padded_shape, dtype=g.dtype)
        for _, index in _offset_windows(kernel_size, stride, out_hw):
            grad[index] += share
        return _crop(grad, padding, input_shape)


def adaptive_pool_matrix(xp, in_size, out_size, dtype):
    """A (out, in): row i averages inputs floor(i*in/out) .. ceil((i+1)*in/out) - 1, PyTorch's windows."""
    i = xp.arange(out_size)
    start = (i * in_size) // out_size
    end = -((-(i + 1) * in_size) // out_size)  # ceil division
    j = xp.arange(in_size)
    inside = (j[None, :] >= start[:, None]) & (j[None, :] < end[:, None])
    return (inside / (end - start)[:, None]).astype(dtype)


class AdaptiveAvgPool2d(Function):
    """y = A_h @ x @ A_w^T per (n, c), A the averaging matrices of adaptive_pool_matrix.

    dL/dx = A_h^T @ g @ A_w.  When OH divides H and OW divides W every window is
    (H/OH, W/OW): y is a reshape + mean, and dL/dx spreads g / (kh*kw) over each window.
    """

    def forward(self, x, output_size=(1, 1)):
        xp = get_array_module(x)
        n, c, h, w = x.shape
        oh, ow = output_size
        self.input_shape = x.shape
        self.divisible = h % oh == 0 and w % ow == 0
        if self.divisible:
            return x.reshape(n, c, oh, h // oh, ow, w // ow).mean(axis=(3, 5))
        self.a_h = adaptive_pool_matrix(xp, h, oh, x.dtype)
        self.a_w = adaptive_pool_matrix(xp, w, ow, x.dtype)
        return xp.matmul(xp.matmul(self.a_h, x), self.a_w.T)

    def backward(self, g):
        xp = get_array_module(g)
        n, c, h, w = self.input_shape
        oh, ow = g.shape[2:]
        if self.divisible:
            kh, kw = h // oh, w // ow
            share = (g / (kh * kw))[:, :, :, None, :, None]
            return xp.broadcast_to(share, (n, c, oh, kh, ow, kw)).reshape(n, c, h, w)
        return xp.matmul(xp.matmul(self.a_h.T, g), self.a_w)


def _check_input(op, input):
    if input.ndim != 4:
        raise ValueError(f"{op}: expected a 4-D input (N, C, H, W), got input of shape {tuple(input.shape)}")


def _pool_geometry(op, input, kernel_size, stride, padding):
    """Validated (kernel_size, stride, padding) pairs; stride defaults to kernel_size as in PyTorch."""
    _check_input(op, input)
    kernel_size = pair(kernel_size, "kernel_size", op)
    stride = kernel_size if stride is None or stride == () else pair(stride, "stride", op)
    padding = pair(padding, "padding", op)
    if min(kernel_size) < 1 or min(stride) < 1:
        raise ValueError(f"{op}: kernel_size and stride must be positive, got {kernel_size} and {stride}")
    if min(padding) < 0 or any(2 * p > k for p, k in zip(padding, kernel_size)):
        raise ValueError(f"{op}: padding must be between 0 and half the kernel size, got padding={padding} "
                         f"for kernel_size={kernel_size}")
    out_hw = [output_size(size, k, s, p, p) for size, k, s, p in zip(input.shape[2:], kernel_size, stride, padding)]
    if min(out_hw) <= 0:
        raise ValueError(f"{op}: input of shape {tuple(input.shape)} is too small for kernel_size={kernel_size} "
                         f"with padding={padding}: the output would be {out_hw[0]}x{out_hw[1]}")
    return kernel_size, stride, padding


def max_pool2d(input, kernel_size, stride=None, padding=0):
    """Max over (KH, KW) windows of input (N, C, H, W), padded with -inf; stride defaults to kernel_size."""
    kernel_size, stride, padding = _pool_geometry("max_pool2d", input, kernel_size, stride, padding)
    return MaxPool2d.apply(input, kernel_size=kernel_size, stride=stride, padding=padding)


def avg_pool2d(input, kernel_size, stride=None, padding=0, count_include_pad=True):
    """Mean over (KH, KW) windows of input (N, C, H, W), zero-padded; stride defaults to kernel_size.

    count_include_pad=True (PyTorch's default) divides by KH*KW, False by the number of real inputs.
    """
    kernel_size, stride, padding = _pool_geometry("avg_pool2d", input, kernel_size, stride, padding)
    return AvgPool2d.apply(input, kernel_size=kernel_size, stride=stride, padding=padding,
                           count_include_pad=bool(count_include_pad))


def adaptive_avg_pool2d(input, output_size):
    """Average pooling to a fixed (OH, OW) whatever the input size; None keeps that input dimension."""
    _check_input("adaptive_avg_pool2d", input)
    sizes = (output_size, output_size) if output_size is None or isinstance(output_size, int) else tuple(output_size)
    if len(sizes) != 2:
        raise ValueError(f"adaptive_avg_pool2d: output_size must be an int or a pair, got {output_size!r}")
    sizes = tuple(input.shape[2 + axis] if size is None else size for axis, size in enumerate(sizes))
    if not all(isinstance(s, int) and s > 0 for s in sizes):
        raise ValueError(f"adaptive_avg_pool2d: output_size must be positive ints, got {output_size!r}")
    return AdaptiveAvgPool2d.apply(input, output_size=sizes)
