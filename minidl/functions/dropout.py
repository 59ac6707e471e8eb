"""Dropout: zero random elements (or whole channels) during training.

"Inverted" dropout scales the kept values by 1 / (1 - p) during training, so the
expected value of every output equals its input and evaluation needs no rescaling.
The mask comes from ``minidl.random.uniform``, so ``minidl.manual_seed`` fixes it.
"""
from .. import random
from ..autograd import Function
from ..backend import get_array_module


class Dropout(Function):
    """y = x * keep / (1 - p), with keep a 0/1 mask drawn once per forward.

    ``mask_shape`` may have size-1 dims that broadcast (dropout2d draws one value per channel).
    dL/dx = g * keep / (1 - p): the same scaled mask.
    """

    def forward(self, x, p, mask_shape):
        xp = get_array_module(x)
        keep = random.uniform(mask_shape, xp, xp.float32) >= p  # P(keep) = 1 - p
        scale = 0.0 if p == 1 else 1.0 / (1.0 - p)
        if self.recording:
            self.keep, self.scale = keep, scale  # a boolean mask: one byte per element
        y = x * keep
        y *= scale
        return y

    def backward(self, g):
        grad = g * self.keep
        grad *= self.scale
        return grad


def _check_p(name, p):
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{name}: dropout probability has to be between 0 and 1, but got {p}")


def dropout(input, p=0.5, training=True, inplace=False):
    """Zeroes each element with probability ``p`` and scales the rest by 1 / (1 - p).

    Returns ``input`` itself when not training or when p == 0, as PyTorch does.
    ``inplace`` is accepted for PyTorch compatibility; the result is always a new tensor.
    """
    _check_p("dropout", p)
    if not training or p == 0:
        return input
    return Dropout.apply(input, p=p, mask_shape=tuple(input.shape))


def dropout2d(input, p=0.5, training=True, inplace=False):
    """Zeroes whole channels of (N, C, H, W) or (C, H, W) input with probability ``p``.

    One draw per (sample, channel) is broadcast over H and W. A 3-D input is read as one
    unbatched image (C, H, W) -- the behaviour PyTorch's warning announces; PyTorch 2.x still
    reads it as (N, C, L) for backward compatibility.
    """
    _check_p("dropout2d", p)
    if input.ndim not in (3, 4):
        raise ValueError(f"dropout2d: expected input of shape (N, C, H, W) or (C, H, W), got shape {tuple(input.shape)}")
    if not training or p == 0:
        return input
    mask_shape = tuple(input.shape[:-2]) + (1, 1)
    return Dropout.apply(input, p=p, mask_shape=mask_shape)
