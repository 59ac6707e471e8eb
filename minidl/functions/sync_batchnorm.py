"""Batch normalisation whose statistics are over the batches of all processes (SyncBatchNorm).

With R processes holding n_r values of a channel each (n = sum n_r), the forward normalises by
the statistics of all n values, as one process holding the whole batch would:

    every process sends (mean_r, M2_r = sum (x - mean_r)^2, n_r) of its own values (all_gather)
    mean = sum n_r mean_r / n
    var  = (sum M2_r + sum n_r (mean_r - mean)^2) / n       (Chan et al.: no E[x^2] - E[x]^2)

and the backward needs two per-channel sums over all values (one all_reduce):

    dL/dx = w * invstd * (g - sum_all(g) / n - xhat * sum_all(g * xhat) / n)
    dL/dw = sum_local(g * xhat),   dL/db = sum_local(g)

Here g on each process is the gradient of that process's own loss. The sums over all processes
make dL/dx the gradient of the sum of all processes' losses, and DistributedDataParallel
averages the parameter gradients over processes: together, the gradient of the mean loss, as
one process with the whole batch computes it. The weight and bias gradients stay local sums
for the same reason (DDP reduces them).
"""
from ..autograd import Function
from ..backend import get_array_module
from .batchnorm import _as_channel, _channel_dot, _count, _reduced_axes, _update_running_stats


class SyncBatchNorm(Function):
    """Training-mode batch norm over (N, C, *) input, statistics shared by ``group`` (a backend of
    ``minidl.distributed``); eval mode is plain batch norm (nn.SyncBatchNorm calls that)."""

    def forward(self, x, weight=None, bias=None, running_mean=None, running_var=None, momentum=0.1, eps=1e-5,
                group=None):
        xp = get_array_module(x)
        axes, channels = _reduced_axes(x), x.shape[1]
        local_mean = x.mean(axis=axes, keepdims=True)
        centred = x - local_mean
        stats = xp.concatenate([local_mean.reshape(-1), _channel_dot(centred, centred).reshape(-1),
                                xp.asarray([_count(x)], dtype=x.dtype)]).astype(xp.float64)
        gathered = xp.empty((group.world_size, stats.size), dtype=xp.float64)
        group.all_gather(gathered, stats).wait()
        means, m2s, counts = gathered[:, :channels], gathered[:, channels:2 * channels], gathered[:, -1:]
        count = counts.sum()
        mean = (counts * means).sum(axis=0) / count
        var = (m2s.sum(axis=0) + (counts * (means - mean) ** 2).sum(axis=0)) / count
        mean, var = mean.astype(x.dtype), var.astype(x.dtype)
        if running_mean is not None:
            _update_running_stats(running_mean, running_var, mean, var, momentum, float(count))
        mean, invstd = _as_channel(mean, x), _as_channel(1 / xp.sqrt(var + eps), x)
        scale = invstd if weight is None else invstd * _as_channel(weight, x)
        shift = -mean * scale if bias is None else _as_channel(bias, x) - mean * scale
        if self.recording:
            self.x, self.mean, self.invstd, self.weight = x, mean, invstd, weight
            self.group, self.count = group, float(count)
        y = x * scale
        y += shift
        return y

    def backward(self, g):
        xp = get_array_module(g)
        x, axes = self.x, _reduced_axes(self.x)
        need_x, need_weight, need_bias = self.needs_input_grad
        xhat = x - self.mean
        xhat *= self.invstd
        sum_g = g.sum(axis=axes).reshape(-1)
        sum_g_xhat = _channel_dot(g, xhat).reshape(-1)
        grad_x = None
        if need_x:
            sums = xp.concatenate([sum_g, sum_g_xhat])
            self.group.all_reduce(sums).wait()  # every process, in the same order: the graphs are alike
            total_g, total_g_xhat = sums[:len(sum_g)], sums[len(sum_g):]
            scale = self.invstd if self.weight is None else self.invstd * _as_channel(self.weight, x)
            xhat *= _as_channel(total_g_xhat / self.count, x)
            grad_x = g - _as_channel(total_g / self.count, x)
            grad_x -= xhat
            grad_x *= scale
        return grad_x, sum_g_xhat if need_weight else None, sum_g if need_bias else None
