"""Activations: relu, leaky_relu, elu, sigmoid, tanh, softmax, log_softmax.

The pointwise ones multiply the output gradient by the local slope f'(x) and
keep only what that slope needs (a boolean mask for relu, the output for elu).
softmax and log_softmax mix a whole slice along ``dim``, so their backward
subtracts a sum over that slice (the Jacobian is diag(y) - y y^T).
"""

from ..autograd import Function
from ..backend import get_array_module
from .elementwise import Sigmoid, Tanh


class ReLU(Function):
    """y = max(x, 0).   dL/dx = g where x > 0, else 0 (also where g is NaN, as in PyTorch)."""

    def forward(self, x):
        xp = get_array_module(x)
        if self.recording:
            self.positive = x > 0  # one byte per element instead of keeping x or y
        return xp.maximum(x, 0)

    def backward(self, g):
        xp = get_array_module(g)
        return xp.where(self.positive, g, 0).astype(g.dtype, copy=False)


class LeakyReLU(Function):
    """y = x if x > 0 else slope * x.   dL/dx = g if x > 0 else slope * g."""

    def forward(self, x, negative_slope=0.01):
        xp = get_array_module(x)
        positive = x > 0
        if self.recording:
            self.positive, self.negative_slope = positive, negative_slope
        return xp.where(positive, x, x * negative_slope)

    def backward(self, g):
        xp = get_array_module(g)
        return xp.where(self.positive, g, g * self.negative_slope)


class ELU(Function):
    """y = x if x > 0 else alpha * (exp(x) - 1).

    dL/dx = g if x > 0 else g * alpha * exp(x) = g * (y + alpha), so backward needs only y.
    """

    def forward(self, x, alpha=1.0):
        xp = get_array_module(x)
        y = xp.where(x > 0, x, xp.expm1(xp.minimum(x, 0)) * alpha)  # min: no overflow in the unused branch
        if self.recording:
            self.y, self.alpha = y, alpha
        return y

    def backward(self, g):
        xp = get_array_module(g)
        return xp.where(self.y > 0, g, g * (self.y + self.alpha))


class Softmax(Function):
    """y = exp(x - max) / sum(exp(x - max)) along ``dim`` (subtracting the max avoids overflow).

    dL/dx = y * (g - sum(g * y, dim)).
    """

    def forward(self, x, dim):
        xp = get_array_module(x)
        y = x - x.max(axis=dim, keepdims=True)
        xp.exp(y, out=y)
        y /= y.sum(axis=dim, keepdims=True)
        if self.recording:
            self.y, self.dim = y, dim
        return y

    def backward(self, g):
        grad = g * self.y
        dot = grad.sum(axis=self.dim, keepdims=True)
        grad -= self.y * dot
        return grad


class LogSoftmax(Function):
    """y = x - max - log(sum(exp(x - max))) along ``dim``.

    dL/dx = g - exp(y) * sum(g, dim)   (exp(y) is the softmax).
    """

    def forward(self, x, dim):
        y = log_softmax_array(x, dim)
        if self.recording:
            self.y, self.dim = y, dim
        return y

    def backward(self, g):
        xp = get_array_module(g)
        grad = xp.exp(self.y)
        grad *= g.sum(axis=self.dim, keepdims=True)
        return g - grad


def log_softmax_array(x, dim):
    """The numerically stable log-softmax of an array (shared with the fused cross_entropy)."""
    xp = get_array_module(x)
    shifted = x - x.max(axis=dim, keepdims=True)
    log_sum = xp.log(xp.exp(shifted).sum(axis=dim, keepdims=True))
    shifted -= log_sum
    return shifted


def _check_dim(name, input, dim):
    if dim is None:
        raise TypeError(f"{name}: pass the dimension to normalise over, e.g. {name}(x, dim=1)")
    ndim = max(input.ndim, 1)
    if not -ndim <= dim < ndim:
        raise IndexError(f"{name}: dim {dim} is out of range for an input of shape {tuple(input.shape)} "
                         f"(expected -{ndim} <= dim < {ndim})")


def relu(input, inplace=False):
    """max(input, 0) elementwise. ``inplace`` is accepted for PyTorch compatibility; the result is a new tensor."""
    return ReLU.apply(input)


def leaky_relu(input, negative_slope=0.01, inplace=False):
    return LeakyReLU.apply(input, negative_slope=negative_slope)


def elu(input, alpha=1.0, inplace=False):
    return ELU.apply(input, alpha=alpha)


def sigmoid(input):
    return Sigmoid.apply(input)


def tanh(input):
    return Tanh.apply(input)


def softmax(input, dim):
    _check_dim("softmax", input, dim)
    if input.ndim == 0:  # one value: softmax over it is 1 (as in PyTorch)
        return Softmax.apply(input.reshape(1), dim=0).reshape(())
    return Softmax.apply(input, dim=dim)


def log_softmax(input, dim):
    _check_dim("log_softmax", input, dim)
    if input.ndim == 0:
        return LogSoftmax.apply(input.reshape(1), dim=0).reshape(())
    return LogSoftmax.apply(input, dim=dim)
