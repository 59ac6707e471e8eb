"""``F.pad``: constant padding (any number of dims, negative widths crop), and the reflect,
replicate and circular modes.

The three non-constant modes are one op: along each padded axis, output position j reads input
position ``source[j]``, an index map built from the mode (for an axis of size n padded by b before):

    reflect    source(p) = |p| mirrored at n - 1 (the edge itself is not repeated)    3 2 | 1 2 3 4 | 3 2
    replicate  source(p) = clip(p, 0, n - 1)                                          1 1 | 1 2 3 4 | 4 4
    circular   source(p) = p mod n                                                    3 4 | 1 2 3 4 | 1 2

with p = j - b.  Forward gathers ``x.take(source, axis)`` axis by axis; backward scatters the
gradient back, adding where several outputs read one input (the reflected and repeated ones).
A negative width simply starts (or stops) the map inside the input: the axis is cropped.
"""
from ..autograd import Function
from ..backend import get_array_module
from ..errors import ArgumentError, ShapeError
from .shape import Pad

MODES = ("constant", "reflect", "replicate", "circular")


def source_index(xp, size, before, after, mode):
    """For each output position along one axis, the input position it copies."""
    p = xp.arange(-before, size + after)
    if mode == "replicate":
        return xp.clip(p, 0, size - 1)
    if mode == "circular":
        return p % size
    p = xp.abs(p)  # reflect: mirror at 0, then at size - 1
    return xp.where(p > size - 1, 2 * (size - 1) - p, p)


class IndexPad(Function):
    """y = x gathered along each padded axis by its index map (see the module docstring).

    dL/dx = g scattered back along the same maps, in reverse order, summing repeated reads."""

    def forward(self, x, pad=(), mode="reflect"):
        xp = get_array_module(x)
        self.maps = []  # (axis, input size along it, index map)
        for i in range(len(pad) // 2):
            axis = x.ndim - 1 - i
            self.maps.append((axis, x.shape[axis], source_index(xp, x.shape[axis], pad[2 * i], pad[2 * i + 1], mode)))
        y = x
        for axis, _, source in self.maps:
            y = xp.take(y, source, axis=axis)
        return y

    def backward(self, g):
        xp = get_array_module(g)
        for axis, size, source in reversed(self.maps):
            shape = list(g.shape)
            shape[axis] = size
            grad = xp.zeros(shape, dtype=g.dtype)
            index = (slice(None),) * axis + (source,)
            if xp.__name__ == "numpy":
                xp.add.at(grad, index, g)  # unbuffered: an input read twice gets both gradients
            else:
                import cupyx
                cupyx.scatter_add(grad, index, g)
            g = grad
        return g


def pad(input, pad, mode="constant", value=None):
    """Pads ``input``; ``pad`` = (left, right, top, bottom, front, back) from the last dim backwards.

    mode 'constant' fills with ``value`` (0 by default) on any number of dims; 'reflect', 'replicate'
    and 'circular' pad the last 1, 2 or 3 dims of a 2-3, 3-4 or 4-5-D input, as PyTorch.  Negative
    widths crop."""
    pad = tuple(int(p) for p in pad)
    if mode not in MODES:
        raise NotImplementedError(f"pad: unrecognised padding mode {mode!r}; valid modes: {', '.join(MODES)}")
    if len(pad) % 2 or len(pad) // 2 > input.ndim:
        raise ArgumentError(f"pad: padding length must be even and at most twice the input's dims "
                         f"({2 * input.ndim} for shape {tuple(input.shape)}), got {pad}")
    if mode == "constant":
        return _constant(input, pad, 0.0 if value is None else value)
    if value is not None and value != 0:
        raise ArgumentError(f'pad: padding mode "{mode}" doesn\'t take in value argument')
    dims = len(pad) // 2
    if dims not in (1, 2, 3) or input.ndim not in (dims + 1, dims + 2):
        raise NotImplementedError(
            f"pad: padding size {len(pad)} is not supported for {input.ndim}D input of shape "
            f"{tuple(input.shape)} in mode {mode!r}; supported: 2D or 3D input with 2 pads (last dim), "
            "3D or 4D with 4 (last 2 dims), 4D or 5D with 6 (last 3 dims)")
    for i in range(dims):
        axis, size = input.ndim - 1 - i, input.shape[input.ndim - 1 - i]
        before, after = pad[2 * i], pad[2 * i + 1]
        limit = size - 1 if mode == "reflect" else size if mode == "circular" else None
        if limit is not None and max(before, after) > limit:
            raise ShapeError(f"pad: {mode} padding must be {'less than' if mode == 'reflect' else 'at most'} "
                               f"the input's size along that dim, got padding ({before}, {after}) for dim {axis} "
                               f"of size {size} (input shape {tuple(input.shape)})")
        if size + before + after <= 0 or (mode == "replicate" and size == 0):
            raise ShapeError(f"pad: padding ({before}, {after}) leaves nothing of dim {axis} (size {size}) "
                               f"of input shape {tuple(input.shape)}")
    return IndexPad.apply(input, pad=pad, mode=mode)


def _constant(input, pad, value):
    """Crops the negative widths away (an ordinary slice), then pads with ``value``."""
    if any(p < 0 for p in pad):
        crop = [slice(None)] * input.ndim
        for i in range(len(pad) // 2):
            axis, size = input.ndim - 1 - i, input.shape[input.ndim - 1 - i]
            before, after = -min(pad[2 * i], 0), -min(pad[2 * i + 1], 0)
            if before + after > size:
                raise ShapeError(f"pad: cropping ({before}, {after}) is more than dim {axis} of size {size} "
                                   f"(input shape {tuple(input.shape)})")
            crop[axis] = slice(before, size - after)
        input = input[tuple(crop)]
        pad = tuple(max(p, 0) for p in pad)
    return Pad.apply(input, pad=pad, value=value)
