"""E11's configurable ResNet: N residual layers, B_i blocks and C_i channels per layer, conv kernel F_i, skip
kernel K_i, average-pool kernel P (the "ResNet under 5M parameters" search; best: 94.80% with combination 6).

Layout (the standard CIFAR ResNet), for a 3x32x32 image::

    conv1 Conv2d(3, C_1, 3x3, padding 1, no bias) - bn1 - ReLU
    layer1..layerN: B_i BasicBlocks of C_i = C_1 * 2^(i-1) channels; stride 1 for layer1, 2 after
    avgpool - flatten - fc Linear(C_N * s * s, num_classes)

A block is the library's ``BasicBlock`` (``relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))``) with
F_i x F_i convolutions (padding F_i // 2, no bias); where the shape changes, ``downsample = Sequential(Conv2d(K_i x
K_i, stride, padding K_i // 2, no bias), BatchNorm2d)``, else the identity. ``dropout`` > 0 puts ``Dropout(p)``
before ``fc`` (the report's final runs added dropout without saying where; ``fc`` becomes ``Sequential(Dropout,
Linear)``). ``pool_kernel=None`` (default) pools globally (s = 1); an integer P is
``AvgPool2d(P)`` and s = (final side) // P.

With these defaults (F=3, K=1, global pool) combinations 3, 5 and 6 have exactly the report's 4,903,242,
4,771,146 and 4,327,754 parameters. For the others the report's counts depend on pooling details it does not
give; minidl's own counts (10 classes) are in ``E11_PARAMS``.
"""
from .. import nn
from ..models.registry import register_model
from ..models.resnet import BasicBlock

__all__ = ["config_block", "ConfigurableResNet", "configurable_resnet", "E11_CONFIGS", "E11_REPORTED_PARAMS",
           "E11_PARAMS", "e11_resnet"]

# Combination number -> (N implied by len(num_blocks)) first-layer channels C1 and blocks per layer B.
E11_CONFIGS = {
    1: dict(c1=16, num_blocks=[2, 2, 2, 2, 2]),
    2: dict(c1=32, num_blocks=[2, 1, 1, 1, 1]),
    3: dict(c1=64, num_blocks=[1, 1, 1, 1]),
    4: dict(c1=32, num_blocks=[4, 4, 4, 2]),
    5: dict(c1=64, num_blocks=[5, 4, 3]),
    6: dict(c1=64, num_blocks=[3, 3, 3]),
    7: dict(c1=128, num_blocks=[4, 3]),
    8: dict(c1=128, num_blocks=[4]),
}

# Table 1 of the E11 report.
E11_REPORTED_PARAMS = {1: 2_811_818, 2: 4_935_434, 3: 4_903_242, 4: 3_585_802, 5: 4_771_146, 6: 4_327_754,
                       7: 4_401_226, 8: 1_119_562}

# What minidl's definition counts with the defaults and 10 classes (equal to the report for 3, 5 and 6).
E11_PARAMS = {1: 2_802_458, 2: 4_923_178, 3: 4_903_242, 4: 3_573_546, 5: 4_771_146, 6: 4_327_754,
              7: 4_468_362, 8: 1_186_698}


def _per_layer(value, n, what):
    values = list(value) if isinstance(value, (list, tuple)) else [value] * n
    if len(values) != n:
        raise ValueError(f"ConfigurableResNet: {what} needs one value per layer ({n}), got {values}")
    return values


def config_block(inplanes, planes, stride=1, conv_kernel=3, skip_kernel=1):
    """E11's block: a ``BasicBlock`` with F x F convolutions and a K x K projection shortcut where the shape changes."""
    downsample = None
    if stride != 1 or inplanes != planes:
        downsample = nn.Sequential(
            nn.Conv2d(inplanes, planes, skip_kernel, stride=stride, padding=skip_kernel // 2, bias=False),
            nn.BatchNorm2d(planes))
    return BasicBlock(inplanes, planes, stride, downsample, kernel_size=conv_kernel)


class ConfigurableResNet(nn.Module):
    """E11's ResNet: ``num_blocks`` = [B_1..B_N], ``c1`` = C_1; ``conv_kernel`` F and ``skip_kernel`` K are an int
    or one per layer; ``pool_kernel`` P (None = global); ``input_size`` is the image side."""

    def __init__(self, num_blocks, c1=64, conv_kernel=3, skip_kernel=1, pool_kernel=None, num_classes=10,
                 in_channels=3, input_size=32, dropout=0.0):
        super().__init__()
        n = len(num_blocks)
        if n < 1:
            raise ValueError("ConfigurableResNet needs at least one residual layer")
        conv_kernels = _per_layer(conv_kernel, n, "conv_kernel")
        skip_kernels = _per_layer(skip_kernel, n, "skip_kernel")
        if any(k % 2 == 0 for k in conv_kernels + skip_kernels):
            raise ValueError(f"ConfigurableResNet: kernels must be odd so 'same' padding keeps the shapes; "
                             f"got conv_kernel={conv_kernels}, skip_kernel={skip_kernels}")
        self.num_layers = n
        self.conv1 = nn.Conv2d(in_channels, c1, kernel_size=3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c1)
        self.relu = nn.ReLU()
        inplanes, side = c1, input_size
        for i in range(n):
            planes, stride = c1 * 2 ** i, 1 if i == 0 else 2
            blocks = [config_block(inplanes, planes, stride, conv_kernels[i], skip_kernels[i])]
            blocks += [config_block(planes, planes, 1, conv_kernels[i], skip_kernels[i])
                       for _ in range(1, num_blocks[i])]
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
            inplanes, side = planes, -(-side // stride)
        if pool_kernel is None:
            self.avgpool, side = nn.AdaptiveAvgPool2d((1, 1)), 1
        else:
            if pool_kernel > side:
                raise ValueError(f"ConfigurableResNet: pool_kernel {pool_kernel} exceeds the final feature map "
                                 f"side {side} (input_size {input_size}, {n} layers)")
            self.avgpool, side = nn.AvgPool2d(pool_kernel), side // pool_kernel
        self.fc = nn.Linear(inplanes * side * side, num_classes)
        if dropout > 0:
            self.fc = nn.Sequential(nn.Dropout(dropout), self.fc)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        for i in range(self.num_layers):
            x = getattr(self, f"layer{i + 1}")(x)
        return self.fc(self.avgpool(x).flatten(1))


@register_model("configurable_resnet")
def configurable_resnet(num_blocks=(3, 3, 3), c1=64, num_classes=10, **kwargs):
    """E11's ResNet; the defaults are the winning combination 6 (N=3, C1=64, B=[3, 3, 3], 4,327,754 params)."""
    return ConfigurableResNet(list(num_blocks), c1=c1, num_classes=num_classes, **kwargs)


@register_model("e11_resnet")
def e11_resnet(combination=6, num_classes=10, **kwargs):
    """The network of E11's combination 1-8 (``E11_CONFIGS``); extra keywords as ``ConfigurableResNet``."""
    if combination not in E11_CONFIGS:
        raise ValueError(f"unknown E11 combination {combination!r}; valid: {sorted(E11_CONFIGS)}")
    config = E11_CONFIGS[combination]
    return ConfigurableResNet(config["num_blocks"], c1=config["c1"], num_classes=num_classes, **kwargs)
