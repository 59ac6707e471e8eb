"""``BatchNorm1d`` and ``BatchNorm2d``: normalise each channel by batch statistics while
training and by running statistics in eval mode (the maths is in ``minidl/functions/batchnorm.py``)."""
import numpy as np

from ... import creation
from .. import functional as F, init
from .activation import ReLU
from ..parameter import Parameter
from .module import Module


class _BatchNorm(Module):
    _input_ranks = ()  # the ranks a subclass accepts
    _layout = ""  # how the expected shape is written in errors

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True,
                 device=None, dtype=None, *, bias=True):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        self.register_parameter("weight", Parameter(creation.empty(num_features, dtype=dtype, device=device))
                                if affine else None)
        self.register_parameter("bias", Parameter(creation.empty(num_features, dtype=dtype, device=device))
                                if affine and bias else None)
        if track_running_stats:
            self.register_buffer("running_mean", creation.zeros(num_features, dtype=dtype, device=device))
            self.register_buffer("running_var", creation.ones(num_features, dtype=dtype, device=device))
            self.register_buffer("num_batches_tracked", creation.tensor(0, dtype=np.int64, device=device))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)
        self.reset_parameters()

    def reset_running_stats(self):
        if self.track_running_stats:
            init.zeros_(self.running_mean)
            init.ones_(self.running_var)
            init.zeros_(self.num_batches_tracked)

    def reset_parameters(self):
        self.reset_running_stats()
        if self.weight is not None:
            init.ones_(self.weight)
        if self.bias is not None:
            init.zeros_(self.bias)

    def _check_input(self, input):
        if input.ndim not in self._input_ranks:
            ranks = " or ".join(f"{r}-D" for r in self._input_ranks)
            raise self._input_error(f"expected {ranks} input of shape {self._layout}, "
                                    f"got {input.ndim}-D input of shape {tuple(input.shape)}")
        if input.shape[1] != self.num_features:
            raise self._input_error(f"expected input with {self.num_features} channels "
                                    f"(shape {self._layout}), got {tuple(input.shape)}")

    def forward(self, input):
        """PyTorch's rule: while training, count the batch and update the running statistics
        with ``momentum`` (or, with ``momentum=None``, a cumulative average: 1 / batches seen)."""
        return F.batch_norm(input, *self._arguments(input))

    def forward_relu(self, input):
        """``relu(self(input))`` as one op where the device fuses them (``F.batch_norm_relu``); minidl's
        ResNet blocks call it when no hook watches this module.  A subclass with its own ``forward``
        (SyncBatchNorm) gets its forward and then the ReLU."""
        if type(self).forward is not _BatchNorm.forward:
            return F.relu(self(input))
        return F.batch_norm_relu(input, *self._arguments(input))

    def forward_add_relu(self, input, residual):
        """``relu(self(input) + residual)`` as one op where the device fuses them (``F.batch_norm_add_relu``): the
        last batch norm of a residual block and its join.  A subclass with its own ``forward`` gets its forward,
        then the add and the ReLU."""
        if type(self).forward is not _BatchNorm.forward:
            return F.add_relu(self(input), residual)
        return F.batch_norm_add_relu(input, residual, *self._arguments(input))

    def _arguments(self, input):
        """The arguments of ``F.batch_norm`` after ``input``, counting the batch when training."""
        self._check_input(input)
        momentum = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.array += 1
            if self.momentum is None:  # computed where the counter lives: no host read on a GPU
                momentum = 1.0 / self.num_batches_tracked.array
        use_batch_stats = self.training or self.running_mean is None
        give_running_stats = not self.training or self.track_running_stats
        return (self.running_mean if give_running_stats else None, self.running_var if give_running_stats else None,
                self.weight, self.bias, use_batch_stats, momentum, self.eps)

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"bias={self.bias is not None}, track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Over (N, C) or (N, C, L) input: statistics per channel C."""
    _input_ranks = (2, 3)

    @property
    def _layout(self):
        return f"(N, {self.num_features}) or (N, {self.num_features}, L)"


class BatchNorm2d(_BatchNorm):
    """Over (N, C, H, W) input: statistics per channel C, over N, H and W."""
    _input_ranks = (4,)

    @property
    def _layout(self):
        return f"(N, {self.num_features}, H, W)"


def fuses_with_relu(bn, relu):
    """True when ``relu(bn(x))`` may run as ``bn.forward_relu(x)``: ``bn`` is a BatchNorm, ``relu`` is exactly
    ``nn.ReLU`` (the result is the same with ``inplace``), and no forward hook watches either module (a hook
    must see the module's own call and output)."""
    return (isinstance(bn, _BatchNorm) and type(relu) is ReLU
            and not any(m._forward_hooks or m._forward_pre_hooks for m in (bn, relu)))
