"""``Conv2d``: a learned 2-D convolution (the maths is in ``minidl/functions/conv.py``)."""
import math

from .. import functional as F, init
from .module import Module
from .utils import _empty_parameter, _pair

_PADDING_MODES = ("zeros",)


class Conv2d(Module):
    """y = conv2d(x, weight, bias); weight has shape (out_channels, in_channels / groups, kH, kW)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, padding_mode="zeros", device=None, dtype=None):
        super().__init__()
        _check_groups("Conv2d", in_channels, out_channels, groups)
        if padding_mode not in _PADDING_MODES:
            raise ValueError(f"padding_mode {padding_mode!r} is not supported; "
                             f"valid modes: {', '.join(_PADDING_MODES)}")
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size, self.stride, self.dilation = _pair(kernel_size), _pair(stride), _pair(dilation)
        self.padding = self._resolve_padding(padding)
        self.padding_mode = padding_mode
        _add_parameters(self, (out_channels, in_channels // groups) + self.kernel_size, bias, dtype, device)

    def _resolve_padding(self, padding):
        """An int, a pair, 'valid' (no padding) or 'same' (output size = input size, stride 1)."""
        if padding == "valid":
            return (0, 0)
        if padding == "same":
            if self.stride != (1, 1):
                raise ValueError("padding='same' is not supported for strided convolutions")
            totals = [d * (k - 1) for d, k in zip(self.dilation, self.kernel_size)]
            if any(total % 2 for total in totals):
                raise ValueError(f"padding='same' with kernel_size={self.kernel_size} and dilation={self.dilation} "
                                 "needs uneven padding, which minidl's Conv2d does not support")
            return tuple(total // 2 for total in totals)
        if isinstance(padding, str):
            raise ValueError(f"invalid padding string {padding!r}; valid ones are 'valid' and 'same'")
        return _pair(padding)

    def reset_parameters(self):
        """PyTorch's default: weight ~ kaiming_uniform(a=sqrt(5)), bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
        _reset_like_pytorch(self)

    def forward(self, input):
        if input.ndim != 4:
            raise self._input_error(f"expected 4-D input of shape (N, {self.in_channels}, H, W), "
                                    f"got {input.ndim}-D input of shape {tuple(input.shape)}")
        if input.shape[1] != self.in_channels:
            raise self._input_error(f"expected input with {self.in_channels} channels "
                                    f"(shape (N, {self.in_channels}, H, W)), got {tuple(input.shape)}")
        return F.conv2d(input, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)

    def extra_repr(self):
        return _conv_repr(self, ("padding", "dilation"))


def _reset_like_pytorch(layer):
    """PyTorch's default for every convolution: weight ~ kaiming_uniform(a=sqrt(5)), bias ~ U(+-1/sqrt(fan_in)),
    fan_in computed from the weight's dim 1 (C_in/groups for Conv1d, C_out/groups for ConvTranspose2d)."""
    init.kaiming_uniform_(layer.weight, a=math.sqrt(5))
    if layer.bias is not None:
        fan_in, _ = init._calculate_fan_in_and_fan_out(layer.weight)
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
        init.uniform_(layer.bias, -bound, bound)


def _add_parameters(layer, weight_shape, bias, dtype, device, out_channels=None):
    """``layer.weight`` of ``weight_shape`` and ``layer.bias`` (out_channels,) or None, then PyTorch's init."""
    layer.weight = _empty_parameter(weight_shape, dtype, device)
    if bias:
        layer.bias = _empty_parameter((weight_shape[0] if out_channels is None else out_channels,), dtype, device)
    else:
        layer.register_parameter("bias", None)
    layer.reset_parameters()


def _conv_repr(layer, optional):
    """PyTorch's repr of a convolution: channels, kernel and stride, then the ``optional`` attributes that
    differ from their defaults (padding/output_padding 0, dilation 1), groups and bias=False."""
    text = f"{layer.in_channels}, {layer.out_channels}, kernel_size={layer.kernel_size}, stride={layer.stride}"
    dims = len(layer.kernel_size)
    for name in optional:
        value = getattr(layer, name)
        if value != ((1,) * dims if name == "dilation" else (0,) * dims):
            text += f", {name}={value}"
    if layer.groups != 1:
        text += f", groups={layer.groups}"
    return text + (", bias=False" if layer.bias is None else "")


def _check_groups(name, in_channels, out_channels, groups):
    if in_channels % groups or out_channels % groups:
        raise ValueError(f"{name}: in_channels ({in_channels}) and out_channels ({out_channels}) must both be "
                         f"divisible by groups ({groups})")


class Conv1d(Module):
    """y = conv1d(x, weight, bias) over input (N, C, L); weight (out_channels, in_channels / groups, K)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, padding_mode="zeros", device=None, dtype=None):
        super().__init__()
        _check_groups("Conv1d", in_channels, out_channels, groups)
        if padding_mode not in _PADDING_MODES:
            raise ValueError(f"padding_mode {padding_mode!r} is not supported; "
                             f"valid modes: {', '.join(_PADDING_MODES)}")
        single = lambda v: tuple(v) if isinstance(v, (tuple, list)) else (v,)  # noqa: E731
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size, self.stride, self.dilation = single(kernel_size), single(stride), single(dilation)
        self.padding = padding if isinstance(padding, str) else single(padding)
        self.padding_mode = padding_mode
        _add_parameters(self, (out_channels, in_channels // groups) + self.kernel_size, bias, dtype, device)

    def reset_parameters(self):
        _reset_like_pytorch(self)

    def forward(self, input):
        if input.ndim != 3 or input.shape[1] != self.in_channels:
            raise self._input_error(f"expected input of shape (N, {self.in_channels}, L), got {input.shape}")
        padding = self.padding if isinstance(self.padding, str) else self.padding[0]
        return F.conv1d(input, self.weight, self.bias, self.stride[0], padding, self.dilation[0], self.groups)

    def extra_repr(self):
        return _conv_repr(self, ("padding", "dilation"))


class ConvTranspose2d(Module):
    """y = conv_transpose2d(x, weight, bias); weight (in_channels, out_channels / groups, kH, kW), PyTorch's layout.

    ``forward(input, output_size=None)``: an ``output_size`` (H', W') picks the output_padding that
    reaches it, as PyTorch's does (a stride-2 layer can give either of two sizes)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0, groups=1,
                 bias=True, dilation=1, padding_mode="zeros", device=None, dtype=None):
        super().__init__()
        _check_groups("ConvTranspose2d", in_channels, out_channels, groups)
        if padding_mode != "zeros":
            raise ValueError(f'Only "zeros" padding mode is supported for ConvTranspose2d, got {padding_mode!r}')
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size, self.stride, self.padding = _pair(kernel_size), _pair(stride), _pair(padding)
        self.output_padding, self.dilation = _pair(output_padding), _pair(dilation)
        self.padding_mode = padding_mode
        _add_parameters(self, (in_channels, out_channels // groups) + self.kernel_size, bias, dtype, device,
                        out_channels)

    def reset_parameters(self):
        _reset_like_pytorch(self)

    def forward(self, input, output_size=None):
        if input.ndim != 4 or input.shape[1] != self.in_channels:
            raise self._input_error(f"expected input of shape (N, {self.in_channels}, H, W), got {input.shape}")
        output_padding = self.output_padding if output_size is None else self._output_padding(input, output_size)
        return F.conv_transpose2d(input, self.weight, self.bias, self.stride, self.padding, output_padding,
                                  self.groups, self.dilation)

    def _output_padding(self, input, output_size):
        padding = []
        for axis, wanted in enumerate(tuple(output_size)[-2:]):
            smallest = ((input.shape[2 + axis] - 1) * self.stride[axis] - 2 * self.padding[axis]
                        + self.dilation[axis] * (self.kernel_size[axis] - 1) + 1)
            if not smallest <= wanted < smallest + self.stride[axis]:
                raise self._input_error(f"requested an output size of {tuple(output_size)}, but valid sizes for "
                                        f"input {input.shape} range from {smallest} to {smallest + self.stride[axis] - 1}"
                                        f" along dim {2 + axis}")
            padding.append(wanted - smallest)
        return tuple(padding)

    def extra_repr(self):
        return _conv_repr(self, ("padding", "output_padding", "dilation"))
