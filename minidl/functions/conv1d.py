"""``conv1d``: a 1-D convolution is a 2-D one over an image of height 1.

Input (N, C, L) becomes (N, C, 1, L) and weight (OC, C/groups, K) becomes (OC, C/groups, 1, K); the
stride, padding and dilation act on the width only.  conv2d's forward and backward (``conv.py``)
do the work, so the gradients are conv2d's, reshaped back.
"""
from ..errors import ArgumentError, ShapeError
from .conv import conv2d


def _single(value, name):
    value = value[0] if isinstance(value, (tuple, list)) and len(value) == 1 else value
    if not isinstance(value, int):
        raise ArgumentError(f"conv1d: {name} must be an int or a 1-tuple, got {value!r}")
    return value


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """1-D convolution (cross-correlation) of input (N, C, L) with weight (OC, C/groups, K); (N, OC, OL)."""
    if input.ndim != 3:
        raise ShapeError(f"conv1d: expected a 3-D input (N, C, L), got input of shape {tuple(input.shape)}")
    if weight.ndim != 3:
        raise ShapeError(f"conv1d: expected a 3-D weight (out_channels, in_channels/groups, K), "
                         f"got weight of shape {tuple(weight.shape)}")
    stride, dilation = _single(stride, "stride"), _single(dilation, "dilation")
    padding = padding if isinstance(padding, str) else (0, _single(padding, "padding"))
    output = conv2d(input.unsqueeze(2), weight.unsqueeze(2), bias, stride=(1, stride), padding=padding,
                    dilation=(1, dilation), groups=groups)
    return output.squeeze(2)
