"""2-D pooling: max, average and adaptive average over (KH, KW) windows.

Max and average pooling loop over the KH*KW kernel offsets, never over pixels:
for offset (i, j) the strided slice ``x_padded[:, :, i*dilation::stride, j*dilation::stride]``
(cut to OH x OW) holds, for every output position at once, the one input each
window reads at that offset.  Backward adds the gradient back through the same
slices.  Adaptive average pooling takes the mean of each window, one axis at a time (a reshape +
mean when the sizes divide).
"""
from ..autograd import Function
from ..backend import get_array_module
from ..errors import ArgumentError, ShapeError, UnsupportedDTypeError
from .conv import pad_spatial, pair, window_slice


def pool_output_size(size, kernel, stride, padding, dilation=1, ceil_mode=False):
    """Window positions along one axis, PyTorch's rule.

    ceil_mode rounds the count up, but the last window must still start inside the
    input or its left padding.
    """
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    count = (span + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (count - 1) * stride >= size + padding:
        count -= 1
    return count


def pool_layout(input_shape, kernel_size, stride, padding, dilation, ceil_mode):
    """(OH, OW) and the (top, bottom, left, right) padding that makes every window fit.

    Beyond ``padding``, ceil_mode's last windows may hang over the bottom/right edge:
    that overhang is padded too (and never counted as input).
    """
    out_hw, pads = [], []
    for size, k, s, p, d in zip(input_shape[2:], kernel_size, stride, padding, dilation):
        count = pool_output_size(size, k, s, p, d, ceil_mode)
        overhang = max(0, (count - 1) * s + d * (k - 1) + 1 - (size + 2 * p))
        out_hw.append(count)
        pads += [p, p + overhang]
    return tuple(out_hw), tuple(pads)


def _crop(grad, pads, shape):
    """The gradient of the unpadded input: the interior of the padded gradient, as its own array."""
    top, _, left, _ = pads
    h, w = shape[2:]
    if grad.shape[2:] == (h, w):
        return grad
    return get_array_module(grad).ascontiguousarray(grad[:, :, top:top + h, left:left + w])


def _offset_windows(kernel_size, stride, dilation, out_hw):
    """Yields (offset number, index of its strided (N, C, OH, OW) slice) per kernel offset, row-major."""
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = kernel_size, stride, dilation, out_hw
    for i in range(kh):
        for j in range(kw):
            yield i * kw + j, (slice(None), slice(None), window_slice(i * dh, oh, sh), window_slice(j * dw, ow, sw))


class MaxPool2d(Function):
    """y[n, c, oh, ow] = max of the window; padding counts as -inf.

    dL/dx = g routed to the arg-max of each window (the first one, in row-major
    order, when several inputs tie), summed where windows overlap.
    """

    def forward(self, x, kernel_size=(1, 1), stride=(1, 1), padding=(0, 0), dilation=(1, 1), ceil_mode=False):
        out_hw, pads = pool_layout(x.shape, kernel_size, stride, padding, dilation, ceil_mode)
        y, argmax, padded = window_max(x, kernel_size, stride, dilation, out_hw, pads)
        if self.recording:
            self.argmax, self.padded_shape, self.input_shape = argmax, padded.shape, x.shape
            self.windows = kernel_size, stride, dilation, out_hw
            self.pads = pads
        return y

    def backward(self, g):
        xp = get_array_module(g)
        grad = xp.zeros(self.padded_shape, dtype=g.dtype)
        for k, index in _offset_windows(*self.windows):
            grad[index] += xp.where(self.argmax == k, g, 0)
        return _crop(grad, self.pads, self.input_shape)


def window_max(x, kernel_size, stride, dilation, out_hw, pads):
    """(y, argmax, padded): each window's maximum and the number k = i * KW + j of the kernel offset
    where it was found, scanning x padded with -inf."""
    xp = get_array_module(x)
    padded = pad_spatial(x, pads, value=-xp.inf)
    windows = _offset_windows(kernel_size, stride, dilation, out_hw)
    _, first = next(windows)
    y = padded[first].copy()
    argmax = xp.zeros(y.shape, dtype=xp.uint8 if kernel_size[0] * kernel_size[1] <= 256 else xp.int32)
    for k, index in windows:
        candidate = padded[index]
        # Strictly greater keeps the first of equal values; a NaN always wins (as in PyTorch).
        better = (candidate > y) | xp.isnan(candidate)
        xp.copyto(y, candidate, where=better)
        xp.copyto(argmax, k, where=better)
    return y, argmax, padded


def max_pool2d_indices(x, kernel_size, stride, padding, dilation, ceil_mode):
    """PyTorch's ``return_indices``: where each window's maximum sits in its (H, W) input plane, as the
    flat index h * W + w (int64, shape (N, C, OH, OW)); max_unpool2d puts values back there."""
    xp = get_array_module(x)
    out_hw, pads = pool_layout(x.shape, kernel_size, stride, padding, dilation, ceil_mode)
    _, argmax, _ = window_max(x, kernel_size, stride, dilation, out_hw, pads)
    offset_row, offset_col = xp.divmod(argmax.astype(xp.int64), kernel_size[1])
    row = xp.arange(out_hw[0])[:, None] * stride[0] - pads[0] + offset_row * dilation[0]
    col = xp.arange(out_hw[1])[None, :] * stride[1] - pads[2] + offset_col * dilation[1]
    return row * x.shape[3] + col


class AvgPool2d(Function):
    """y[n, c, oh, ow] = (sum of the zero-padded window) / divisor.

    divisor = the window's size within input + padding (KH*KW unless ceil_mode cuts
    it) with count_include_pad, else its number of real inputs, or divisor_override.
    dL/dx = g / divisor added to every input of the window.
    """

    def forward(self, x, kernel_size=(1, 1), stride=(1, 1), padding=(0, 0), ceil_mode=False,
                count_include_pad=True, divisor_override=None):
        xp = get_array_module(x)
        no_dilation = (1, 1)
        out_hw, pads = pool_layout(x.shape, kernel_size, stride, padding, no_dilation, ceil_mode)
        padded = pad_spatial(x, pads)
        windows = _offset_windows(kernel_size, stride, no_dilation, out_hw)
        _, first = next(windows)
        y = padded[first].copy()
        for _, index in windows:
            y += padded[index]
        if divisor_override:
            divisor = xp.asarray(divisor_override, dtype=x.dtype)
        else:
            divisor = self._divisor(xp, x, kernel_size, stride, padding, out_hw, count_include_pad)
        y /= divisor
        if self.recording:
            self.divisor, self.padded_shape, self.input_shape = divisor, padded.shape, x.shape
            self.windows = kernel_size, stride, no_dilation, out_hw
            self.pads = pads
        return y

    @staticmethod
    def _divisor(xp, x, kernel_size, stride, padding, out_hw, count_include_pad):
        """(OH, OW) window sizes: the product of each axis' count, as PyTorch computes them."""
        counts = []
        for size, k, s, p, o in zip(x.shape[2:], kernel_size, stride, padding, out_hw):
            start = xp.arange(o) * s - p  # window start along this axis, in unpadded coordinates
            end = xp.minimum(start + k, size + p)
            if count_include_pad:
                counts.append(end - start)
            else:
                counts.append(xp.minimum(end, size) - xp.maximum(start, 0))
        return (counts[0][:, None] * counts[1][None, :]).astype(x.dtype)

    def backward(self, g):
        xp = get_array_module(g)
        share = g / self.divisor
        grad = xp.zeros(self.padded_shape, dtype=g.dtype)
        for _, index in _offset_windows(*self.windows):
            grad[index] += share
        return _crop(grad, self.pads, self.input_shape)


def adaptive_windows(in_size, out_size):
    """PyTorch's adaptive windows along one axis: output i averages inputs
    floor(i*in/out) .. ceil((i+1)*in/out) - 1, as (start, end) pairs."""
    return [((i * in_size) // out_size, -((-(i + 1) * in_size) // out_size)) for i in range(out_size)]


class AdaptiveAvgPool2d(Function):
    """y[n, c, i, j] = mean of x[n, c, rows_i, cols_j] over PyTorch's adaptive windows.

    dL/dx[rows_i, cols_j] += g[i, j] / (len(rows_i) * len(cols_j)) (windows may overlap by one).
    When OH divides H and OW divides W every window is (H/OH, W/OW): y is a reshape + mean,
    and dL/dx spreads g / (kh*kw) over each window. Otherwise the mean is taken one axis at a
    time, window by window, so a NaN reaches only the outputs whose windows contain it.
    """

    def forward(self, x, output_size=(1, 1)):
        xp = get_array_module(x)
        n, c, h, w = x.shape
        oh, ow = output_size
        self.input_shape = x.shape
        self.divisible = h % oh == 0 and w % ow == 0
        if self.divisible:
            return x.reshape(n, c, oh, h // oh, ow, w // ow).mean(axis=(3, 5))
        self.rows, self.cols = adaptive_windows(h, oh), adaptive_windows(w, ow)
        by_rows = xp.stack([x[:, :, a:b].mean(axis=2) for a, b in self.rows], axis=2)
        return xp.stack([by_rows[:, :, :, a:b].mean(axis=3) for a, b in self.cols], axis=3)

    def backward(self, g):
        xp = get_array_module(g)
        n, c, h, w = self.input_shape
        oh, ow = g.shape[2:]
        if self.divisible:
            kh, kw = h // oh, w // ow
            share = (g / (kh * kw))[:, :, :, None, :, None]
            return xp.broadcast_to(share, (n, c, oh, kh, ow, kw)).reshape(n, c, h, w)
        by_rows = xp.zeros((n, c, oh, w), dtype=g.dtype)
        for j, (a, b) in enumerate(self.cols):
            by_rows[:, :, :, a:b] += g[:, :, :, j:j + 1] / (b - a)
        grad = xp.zeros((n, c, h, w), dtype=g.dtype)
        for i, (a, b) in enumerate(self.rows):
            grad[:, :, a:b] += by_rows[:, :, i:i + 1] / (b - a)
        return grad


def _check_input(op, input):
    if input.ndim != 4:
        raise ShapeError(f"{op}: expected a 4-D input (N, C, H, W), got input of shape {tuple(input.shape)}")


def _pool_geometry(op, input, kernel_size, stride, padding, dilation=1, ceil_mode=False):
    """Validated (kernel_size, stride, padding, dilation) pairs; stride defaults to kernel_size as in PyTorch."""
    _check_input(op, input)
    kernel_size = pair(kernel_size, "kernel_size", op)
    stride = kernel_size if stride is None or stride == () else pair(stride, "stride", op)
    padding, dilation = pair(padding, "padding", op), pair(dilation, "dilation", op)
    if min(kernel_size) < 1 or min(stride) < 1 or min(dilation) < 1:
        raise ArgumentError(f"{op}: kernel_size, stride and dilation must be positive, got {kernel_size}, "
                         f"{stride} and {dilation}")
    if min(padding) < 0 or any(2 * p > k for p, k in zip(padding, kernel_size)):
        raise ArgumentError(f"{op}: padding must be between 0 and half the kernel size, got padding={padding} "
                         f"for kernel_size={kernel_size}")
    out_hw, _ = pool_layout(input.shape, kernel_size, stride, padding, dilation, ceil_mode)
    if min(out_hw) <= 0:
        raise ShapeError(f"{op}: input of shape {tuple(input.shape)} is too small for kernel_size={kernel_size} "
                         f"with padding={padding}, dilation={dilation}: the output would be "
                         f"{out_hw[0]}x{out_hw[1]}")
    return kernel_size, stride, padding, dilation


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """Max over (KH, KW) windows of input (N, C, H, W), padded with -inf; stride defaults to kernel_size.

    ``return_indices=True`` returns (output, indices), indices the flat h * W + w position of each
    maximum in its input plane (what ``max_unpool2d`` takes)."""
    kernel_size, stride, padding, dilation = _pool_geometry(
        "max_pool2d", input, kernel_size, stride, padding, dilation, ceil_mode)
    output = MaxPool2d.apply(input, kernel_size=kernel_size, stride=stride, padding=padding, dilation=dilation,
                             ceil_mode=bool(ceil_mode))
    if not return_indices:
        return output
    from ..tensor import Tensor
    indices = max_pool2d_indices(input.array, kernel_size, stride, padding, dilation, bool(ceil_mode))
    return output, Tensor._from_array(indices)


def avg_pool2d(input, kernel_size, stride=None, padding=0, count_include_pad=True, *, ceil_mode=False,
               divisor_override=None):
    """Mean over (KH, KW) windows of input (N, C, H, W), zero-padded; stride defaults to kernel_size.

    count_include_pad=True (PyTorch's default) counts the padding in the divisor, False only
    the real inputs; divisor_override, if given, replaces the divisor.  Unlike PyTorch, whose
    5th positional argument is ceil_mode, ceil_mode and divisor_override are keyword-only here.
    """
    kernel_size, stride, padding, _ = _pool_geometry("avg_pool2d", input, kernel_size, stride, padding,
                                                     ceil_mode=ceil_mode)
    if divisor_override is not None and (not isinstance(divisor_override, int) or divisor_override <= 0):
        raise ArgumentError(f"avg_pool2d: divisor_override must be a positive int, got {divisor_override!r}")
    return AvgPool2d.apply(input, kernel_size=kernel_size, stride=stride, padding=padding, ceil_mode=bool(ceil_mode),
                           count_include_pad=bool(count_include_pad), divisor_override=divisor_override)


def adaptive_avg_pool2d(input, output_size):
    """Average pooling to a fixed (OH, OW) whatever the input size; None keeps that input dimension."""
    _check_input("adaptive_avg_pool2d", input)
    if input.dtype.kind not in "f":
        raise UnsupportedDTypeError(f'"adaptive_avg_pool2d" not implemented for {input.dtype}: '
                                    "convert the input with .float() first")
    sizes = (output_size, output_size) if output_size is None or isinstance(output_size, int) else tuple(output_size)
    if len(sizes) != 2:
        raise ShapeError(f"adaptive_avg_pool2d: output_size must be an int or a pair, got {output_size!r}")
    sizes = tuple(input.shape[2 + axis] if size is None else size for axis, size in enumerate(sizes))
    if not all(isinstance(s, int) and s > 0 for s in sizes):
        raise ArgumentError(f"adaptive_avg_pool2d: output_size must be positive ints, got {output_size!r}")
    return AdaptiveAvgPool2d.apply(input, output_size=sizes)
