"""Batch normalisation as one fused op (forward, closed-form backward, running statistics).

For each channel c, over the m = N*H*W values that share it:

    training:  mean, var = batch mean and biased batch variance of x
    eval:      mean, var = the running estimates
    xhat = (x - mean) * invstd,   invstd = 1 / sqrt(var + eps)
    y    = w * xhat + b

The forward computes y as x * scale + shift (scale = w * invstd, shift = b - mean * scale), so
the only full-size array it makes besides y is one temporary for the variance; backward keeps
x (which the graph holds anyway) and recomputes xhat from the saved per-channel mean and invstd.
The CPU runs a faster twin on channels-last input (``minidl/backends/cpu/batchnorm.py``).
"""
from ..autograd import Function
from ..backend import get_array_module
from ..errors import ArgumentError, ShapeError
from ..tensor import Tensor


class BatchNorm(Function):
    """Fused batch norm over the channel dim 1 of (N, C) or (N, C, *spatial) input.

    With sums over every dim but the channel one (m values per channel):

        dL/db = sum(g),   dL/dw = sum(g * xhat)
        training: dL/dx = (w * invstd / m) * (m * g - sum(g) - xhat * sum(g * xhat))
                  (the batch mean and variance depend on x, which gives the two sum terms)
        eval:     dL/dx = g * w * invstd
                  (the running statistics are constants)
    """

    def forward(self, x, weight=None, bias=None, running_mean=None, running_var=None,
                training=False, momentum=0.1, eps=1e-5):
        xp = get_array_module(x)
        axes = _reduced_axes(x)
        if training:
            mean, var = _batch_mean_and_var(x, axes)
            if running_mean is not None:
                _update_running_stats(running_mean, running_var, mean, var, momentum, _count(x))
        else:
            # a copy of the running mean: backward must not see later in-place updates of the buffer
            mean, var = _as_channel(running_mean, x).copy(), _as_channel(running_var, x)
        invstd = 1 / xp.sqrt(var + eps)
        scale = invstd if weight is None else invstd * _as_channel(weight, x)
        shift = -mean * scale if bias is None else _as_channel(bias, x) - mean * scale
        if self.recording:
            self.x, self.mean, self.invstd, self.weight = x, mean, invstd, weight
            self.training, self.axes = training, axes
        y = x * scale
        y += shift
        return y

    def backward(self, g):
        x, axes = self.x, self.axes
        need_x, need_weight, need_bias = self.needs_input_grad[:3]  # (x, weight, bias, and more in a fused op)
        sum_g = g.sum(axis=axes, keepdims=True)
        grad_x = grad_weight = grad_bias = None
        if need_weight or (need_x and self.training):
            xhat = x - self.mean
            xhat *= self.invstd
            sum_g_xhat = _channel_dot(g, xhat)
            if need_weight:
                grad_weight = sum_g_xhat.reshape(-1)
        if need_x:
            scale = self.invstd if self.weight is None else self.invstd * _as_channel(self.weight, x)
            grad_x = g * scale
            if self.training:
                # (scale / m) * (m g - sum(g) - xhat sum(g xhat)), with the per-channel factors
                # folded so that only xhat (reused in place) and grad_x are full-size
                m = _count(x)
                grad_x -= scale * sum_g / m
                xhat *= scale * sum_g_xhat / m
                grad_x -= xhat
        if need_bias:
            grad_bias = sum_g.reshape(-1)
        return grad_x, grad_weight, grad_bias


def _reduced_axes(x):
    return (0,) + tuple(range(2, x.ndim))


def _count(x):
    """Values per channel: m = N * H * W."""
    return x.size // x.shape[1]


def _as_channel(vector, x):
    """A (C,) vector shaped (1, C, 1, ...) to broadcast against x."""
    return vector.reshape((1, -1) + (1,) * (x.ndim - 2))


def _batch_mean_and_var(x, axes):
    """Per-channel mean and biased variance, kept as (1, C, 1, ...), summed in x's dtype.

    Two passes (mean first, then the mean square of x - mean) avoid the cancellation of
    E[x^2] - E[x]^2.
    """
    mean = x.mean(axis=axes, keepdims=True)
    centred = x - mean
    return mean, _channel_dot(centred, centred) / _count(x)


def _channel_dot(a, b):
    """sum(a * b) over every dim but the channel one, as (1, C, 1, ...).

    einsum multiplies and sums in one pass without an a * b temporary (several times faster
    than (a * b).sum(axes) in NumPy, and it stays in the arrays' dtype).
    """
    xp = get_array_module(a)
    dims = "nc" + "hwdefgijk"[:a.ndim - 2]
    return xp.einsum(f"{dims},{dims}->c", a, b).reshape((1, -1) + (1,) * (a.ndim - 2))


def _update_running_stats(running_mean, running_var, mean, var, momentum, m):
    """running = (1 - momentum) * running + momentum * batch statistic, in place.

    The running variance takes the unbiased batch variance var * m / (m - 1), as PyTorch does.
    """
    running_mean *= 1 - momentum
    running_mean += momentum * mean.reshape(-1)
    running_var *= 1 - momentum
    running_var += (momentum * m / (m - 1)) * var.reshape(-1)


def _array(value):
    return value.array if isinstance(value, Tensor) else value


def _check_arguments(input, running_mean, running_var, weight, bias, training, momentum):
    if input.ndim < 2:
        raise ShapeError(f"batch_norm: expected input of shape (N, C), (N, C, L) or (N, C, H, W), "
                         f"got shape {tuple(input.shape)}")
    channels = input.shape[1]
    for name, value in (("running_mean", running_mean), ("running_var", running_var),
                        ("weight", weight), ("bias", bias)):
        if value is not None and tuple(value.shape) != (channels,):
            raise ShapeError(f"batch_norm: expected {name} of shape ({channels},) for input of shape "
                             f"{tuple(input.shape)} with {channels} channels, got shape {tuple(value.shape)}")
    if (running_mean is None) != (running_var is None):
        raise ArgumentError("batch_norm: pass both running_mean and running_var, or neither")
    if not training and running_mean is None:
        raise ArgumentError("batch_norm: evaluation mode (training=False) needs running_mean and running_var")
    if training and _array(input).size // channels <= 1:
        raise ValueError(f"batch_norm: expected more than 1 value per channel when training, "
                         f"got input of shape {tuple(input.shape)}")
    if training and running_mean is not None and momentum is None:
        raise ValueError(
            "batch_norm: momentum=None (a cumulative moving average) needs the number of batches seen; "
            "pass momentum=1/num_batches_tracked, as nn.BatchNorm2d(momentum=None) does")


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5):
    """Batch norm of (N, C), (N, C, L) or (N, C, H, W) input, as ``torch.nn.functional.batch_norm``.

    Training normalises with the batch statistics and, when running_mean/running_var are given,
    updates them in place: running = (1 - momentum) * running + momentum * batch statistic (the
    unbiased variance for running_var). Evaluation normalises with the running statistics.

    ``momentum=None`` means PyTorch's cumulative moving average; a functional call cannot know how
    many batches came before, so the caller passes momentum = 1 / num_batches_tracked for each
    batch (exactly what PyTorch's BatchNorm modules do). ``momentum=None`` is accepted wherever no
    running statistic is updated (evaluation, or no running stats); otherwise it is an error.
    """
    _check_arguments(input, running_mean, running_var, weight, bias, training, momentum)
    # Running statistics are buffers, not graph inputs: pass their arrays as parameters so the op
    # can update them in place.
    return BatchNorm.apply(input, weight, bias, running_mean=_array(running_mean), running_var=_array(running_var),
                           training=training, momentum=momentum, eps=eps)
