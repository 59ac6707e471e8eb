"""He et al. (2016) CIFAR ResNets: ResNet-20/32/44/56/110 (E2, E6; the ResNet-20 anchor is 91.25-91.73%).

Layout for depth 6n+2::

    conv1 (3x3, 3->16, no bias) - bn1 - relu
    layer1: n BasicBlocks, 16 channels, 32x32
    layer2: n BasicBlocks, 32 channels, 16x16 (first block stride 2)
    layer3: n BasicBlocks, 64 channels,  8x8  (first block stride 2)
    avgpool (global) - flatten - fc (64 -> num_classes)

The blocks are ``minidl.models.resnet.BasicBlock``, so parameter names are torchvision's (``layer2.0.conv1``,
``layer2.0.downsample.0``, ``fc``...). Where a block halves the resolution and doubles the width its shortcut is

- ``shortcut="projection"`` (default, He et al.'s option B): ``downsample = Sequential(conv1x1(stride 2), BN)``;
  ResNet-20 for 10 classes has 272,474 parameters.
- ``shortcut="zero_pad"`` (option A, the paper's CIFAR choice): ``downsample = ZeroPadShortcut``, the input
  subsampled by 2 and zero-padded with the missing channels; no parameters, so ResNet-20 has 269,722 ("0.27M").

Initialisation as the common PyTorch re-implementation (akamaster/pytorch_resnet_cifar10): every Conv2d and
Linear weight ``kaiming_normal_`` (fan_in, gain sqrt(2)); BatchNorm weight 1, bias 0; Linear bias PyTorch's default.
"""
from .. import nn
from ..nn import functional as F
from .registry import register_model
from .resnet import BasicBlock, bn_relu, conv1x1

__all__ = ["ZeroPadShortcut", "CifarResNet", "resnet20", "resnet32", "resnet44", "resnet56", "resnet110"]

SHORTCUTS = ("projection", "zero_pad")


def kaiming_init(model):
    """He et al.'s CIFAR initialisation: Kaiming normal (fan_in) for every conv and linear weight, BN weight 1
    and bias 0 (the biases of linear layers keep PyTorch's default)."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class ZeroPadShortcut(nn.Module):
    """He et al.'s option A shortcut: ``x[:, :, ::stride, ::stride]`` with zero channels added on both sides.

    Backward (through slicing and padding): the gradient of the kept pixels and channels is passed through,
    the skipped pixels and the padded channels get none.
    """

    def __init__(self, in_channels, out_channels, stride=2):
        super().__init__()
        if out_channels < in_channels:
            raise ValueError(f"ZeroPadShortcut cannot shrink channels: {in_channels} -> {out_channels}")
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride

    def forward(self, x):
        missing = self.out_channels - self.in_channels
        subsampled = x[:, :, ::self.stride, ::self.stride]
        return F.pad(subsampled, (0, 0, 0, 0, missing // 2, missing - missing // 2))

    def extra_repr(self):
        return f"{self.in_channels}, {self.out_channels}, stride={self.stride}"


class CifarResNet(nn.Module):
    """The 6n+2-layer CIFAR ResNet with ``blocks_per_stage`` = n (see the module docstring)."""

    def __init__(self, blocks_per_stage, num_classes=10, shortcut="projection", in_channels=3):
        super().__init__()
        if shortcut not in SHORTCUTS:
            raise ValueError(f"unknown shortcut {shortcut!r}; valid shortcuts: {', '.join(SHORTCUTS)}")
        self.shortcut = shortcut
        self.inplanes = 16
        self.conv1 = nn.Conv2d(in_channels, 16, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU()
        self.layer1 = self._make_layer(16, blocks_per_stage, stride=1)
        self.layer2 = self._make_layer(32, blocks_per_stage, stride=2)
        self.layer3 = self._make_layer(64, blocks_per_stage, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(64, num_classes)
        kaiming_init(self)

    def _make_layer(self, planes, blocks, stride):
        downsample = None
        if stride != 1 or self.inplanes != planes:
            if self.shortcut == "projection":
                downsample = nn.Sequential(conv1x1(self.inplanes, planes, stride), nn.BatchNorm2d(planes))
            else:
                downsample = ZeroPadShortcut(self.inplanes, planes, stride)
        layers = [BasicBlock(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes
        layers += [BasicBlock(planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = bn_relu(self.bn1, self.relu, self.conv1(x))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(self.avgpool(x).flatten(1))


@register_model("resnet20")
def resnet20(num_classes=10, shortcut="projection", **kwargs):
    """ResNet-20 (n=3): E2's network and the 91.25% anchor of He et al."""
    return CifarResNet(3, num_classes=num_classes, shortcut=shortcut, **kwargs)


@register_model("resnet32")
def resnet32(num_classes=10, shortcut="projection", **kwargs):
    """ResNet-32 (n=5)."""
    return CifarResNet(5, num_classes=num_classes, shortcut=shortcut, **kwargs)


@register_model("resnet44")
def resnet44(num_classes=10, shortcut="projection", **kwargs):
    """ResNet-44 (n=7)."""
    return CifarResNet(7, num_classes=num_classes, shortcut=shortcut, **kwargs)


@register_model("resnet56")
def resnet56(num_classes=10, shortcut="projection", **kwargs):
    """ResNet-56 (n=9)."""
    return CifarResNet(9, num_classes=num_classes, shortcut=shortcut, **kwargs)


@register_model("resnet110")
def resnet110(num_classes=10, shortcut="projection", **kwargs):
    """ResNet-110 (n=18): E6's deep net (93.57% anchor on CIFAR-10 with a warm-up epoch at lr 0.01)."""
    return CifarResNet(18, num_classes=num_classes, shortcut=shortcut, **kwargs)
