"""``SyncBatchNorm``: batch norm whose training statistics are over the batches of all processes
of ``minidl.distributed`` (the maths is in ``minidl/functions/sync_batchnorm.py``)."""
from ... import distributed
from ...functions.sync_batchnorm import SyncBatchNorm as SyncBatchNormFunction
from .batchnorm import _BatchNorm


class SyncBatchNorm(_BatchNorm):
    """Over (N, C, *) input: statistics per channel C over N and every further dim, and over all
    processes while training. Outside training, or without a process group of more than one
    process, it is plain batch norm (as PyTorch's). Its state_dict keys are BatchNorm's.

    Every process must run each SyncBatchNorm layer the same number of times in the same order
    (each forward and backward is a collective)."""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True,
                 process_group=None, device=None, dtype=None):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device=device, dtype=dtype)
        if process_group is not None:
            raise ValueError("SyncBatchNorm: only the default process group (process_group=None) is supported")
        self.process_group = process_group

    def _check_input(self, input):
        if input.ndim < 2:
            raise self._input_error(f"expected at least 2D input of shape (N, {self.num_features}, *), "
                                    f"got {input.ndim}D input of shape {input.shape}")
        if input.shape[1] != self.num_features:
            raise self._input_error(f"expected input with {self.num_features} channels "
                                    f"(shape (N, {self.num_features}, *)), got {input.shape}")

    def forward(self, input):
        synced = self.training and distributed.is_initialized() and distributed.get_world_size() > 1
        if not synced:
            return super().forward(input)
        self._check_input(input)
        momentum = 0.0 if self.momentum is None else self.momentum
        if self.track_running_stats:
            self.num_batches_tracked.array += 1
            if self.momentum is None:
                momentum = 1.0 / int(self.num_batches_tracked.array)
        running = self.track_running_stats
        return SyncBatchNormFunction.apply(
            input, self.weight, self.bias,
            running_mean=self.running_mean.array if running else None,
            running_var=self.running_var.array if running else None,
            momentum=momentum, eps=self.eps, group=distributed.default_group())

    @classmethod
    def convert_sync_batchnorm(cls, module, process_group=None):
        """``module`` with every BatchNorm1d/2d replaced by a SyncBatchNorm that holds the same
        parameters and buffers (the very tensors, so an optimizer made before still holds them)."""
        if isinstance(module, _BatchNorm) and not isinstance(module, SyncBatchNorm):
            converted = cls(module.num_features, module.eps, module.momentum, module.affine,
                            module.track_running_stats, process_group)
            for name in ("weight", "bias"):
                converted.register_parameter(name, module._parameters.get(name))
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                converted.register_buffer(name, module._buffers.get(name))
            converted.train(module.training)
            return converted
        for name, child in list(module._modules.items()):
            if child is not None:
                module._modules[name] = cls.convert_sync_batchnorm(child, process_group)
        return module


