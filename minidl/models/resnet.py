"""torchvision's ResNet family (He et al. 2015), in the CIFAR form by default.

Layout (torchvision's, with its parameter names so state dicts load both ways)::

    conv1 - bn1 - relu - maxpool - layer1 - layer2 - layer3 - layer4 - avgpool - flatten - fc

``layerK`` is a ``Sequential`` of blocks; its first block changes the resolution (stride 2 for layers 2-4)
and/or the width, and then carries a ``downsample`` shortcut ``Sequential(conv1x1(stride), BatchNorm2d)``.

Two stems:

- ``stem="cifar"`` (default): ``conv1`` is a 3x3 stride-1 convolution and ``maxpool`` is an ``Identity``, so
  a 32x32 image reaches layer4 at 4x4. This is the network of the public CIFAR recipes (ResNet-18 at
  93-95% on CIFAR-10; E2-E6, E12, E14 in docs/experiments.md). ResNet-18 for 10 classes has 11,173,962 parameters.
- ``stem="imagenet"``: torchvision's 7x7 stride-2 convolution and 3x3 stride-2 max-pool, for ImageNet-pretrained
  weights (E8 and E13 load torchvision's state dict into it, with inputs resized to 224x224).

``maxpool`` exists in both forms, so ``model.children()`` lists the same ten modules as torchvision (E13
freezes the first 6 or first 10 children).
"""
from .. import nn
from ..nn import functional as F
from ..nn.modules.batchnorm import fuses_with_relu
from .registry import register_model

__all__ = ["BasicBlock", "Bottleneck", "ResNet", "resnet18", "resnet34", "resnet50"]

STEMS = ("cifar", "imagenet")


def conv3x3(in_planes, out_planes, stride=1):
    """3x3 convolution with padding 1 and no bias (the BatchNorm after it has the bias)."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_planes, out_planes, stride=1):
    """1x1 convolution without bias: the projection shortcut and the bottleneck's squeeze/expand."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


def _hooked(*modules):
    return any(m._forward_hooks or m._forward_pre_hooks for m in modules)


def bn_relu(bn, relu, x):
    """``relu(bn(x))``: one fused op where the device has it (``BatchNorm2d.forward_relu``), the two
    modules' own calls when a hook watches either (so hooks see what they expect)."""
    if not fuses_with_relu(bn, relu):
        return relu(bn(x))
    return bn.forward_relu(x)


def add_relu(relu, out, identity):
    """``relu(out + identity)``, the residual join: one fused op where the device has it (``F.add_relu``)."""
    if _hooked(relu) or type(relu) is not nn.ReLU:
        return relu(out + identity)
    return F.add_relu(out, identity)


def bn_add_relu(bn, relu, out, identity):
    """``relu(bn(out) + identity)``, a block's last batch norm and its join: one fused op where the device has it
    (``BatchNorm2d.forward_add_relu``), the modules' own calls when a hook watches either."""
    if not fuses_with_relu(bn, relu):
        return add_relu(relu, bn(out), identity)
    return bn.forward_add_relu(out, identity)


class BasicBlock(nn.Module):
    """Two convolutions and a shortcut: ``relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))``.

    ``downsample`` is the shortcut module when the shape changes (None means identity). The
    convolutions are 3x3 without bias (torchvision's block); ``kernel_size`` (odd, "same"
    padding) and ``bias`` give the variants the experiments use (E7's biased convolutions,
    E11's F x F kernels), so every ResNet in minidl runs this one forward.
    """

    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None, kernel_size=3, bias=False):
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"BasicBlock: kernel_size must be odd so 'same' padding keeps the shape, got {kernel_size}")
        padding = kernel_size // 2
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size, stride=stride, padding=padding, bias=bias)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, kernel_size, stride=1, padding=padding, bias=bias)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = bn_relu(self.bn1, self.relu, self.conv1(x))
        return bn_add_relu(self.bn2, self.relu, self.conv2(out), identity)


class Bottleneck(nn.Module):
    """1x1 squeeze, 3x3 (carrying the stride, as torchvision's "ResNet v1.5"), 1x1 expand by ``expansion``=4."""

    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU()
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = bn_relu(self.bn1, self.relu, self.conv1(x))
        out = bn_relu(self.bn2, self.relu, self.conv2(out))
        return bn_add_relu(self.bn3, self.relu, self.conv3(out), identity)


class ResNet(nn.Module):
    """torchvision's ``ResNet(block, layers, num_classes)`` with a choice of stem (see the module docstring).

    Initialisation as torchvision: convolutions ``kaiming_normal_(mode="fan_out", nonlinearity="relu")``,
    BatchNorm weight 1 and bias 0, ``fc`` PyTorch's default Linear init. ``zero_init_residual=True`` starts the
    last BatchNorm of every block at weight 0, so each residual branch begins as the identity. ``dropout`` > 0
    makes ``fc`` a ``Sequential(Dropout(dropout), Linear)`` (E14's classifier).
    """

    def __init__(self, block, layers, num_classes=1000, zero_init_residual=False, stem="cifar", in_channels=3,
                 dropout=0.0):
        super().__init__()
        if stem not in STEMS:
            raise ValueError(f"unknown ResNet stem {stem!r}; valid stems: {', '.join(STEMS)}")
        if len(layers) != 4:
            raise ValueError(f"ResNet takes 4 stage depths, got {len(layers)}: {layers}")
        self.inplanes = 64
        if stem == "cifar":
            self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        else:
            self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU()
        self.maxpool = nn.Identity() if stem == "cifar" else nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, num_classes)
        if dropout > 0:
            self.fc = nn.Sequential(nn.Dropout(dropout), self.fc)
        self._init_weights(zero_init_residual)

    def _make_layer(self, block, planes, blocks, stride=1):
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(conv1x1(self.inplanes, planes * block.expansion, stride),
                                       nn.BatchNorm2d(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def _init_weights(self, zero_init_residual):
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, Bottleneck):
                    nn.init.zeros_(m.bn3.weight)
                elif isinstance(m, BasicBlock):
                    nn.init.zeros_(m.bn2.weight)

    def forward(self, x):
        x = self.maxpool(bn_relu(self.bn1, self.relu, self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.avgpool(x).flatten(1)
        return self.fc(x)


@register_model("resnet18")
def resnet18(num_classes=10, **kwargs):
    """ResNet-18: BasicBlock x [2, 2, 2, 2]. CIFAR stem by default; ``stem="imagenet"`` for E8/E13."""
    return ResNet(BasicBlock, [2, 2, 2, 2], num_classes=num_classes, **kwargs)


@register_model("resnet34")
def resnet34(num_classes=10, **kwargs):
    """ResNet-34: BasicBlock x [3, 4, 6, 3]."""
    return ResNet(BasicBlock, [3, 4, 6, 3], num_classes=num_classes, **kwargs)


@register_model("resnet50")
def resnet50(num_classes=10, **kwargs):
    """ResNet-50: Bottleneck x [3, 4, 6, 3] (E3, E6). CIFAR form, 10 classes: 23,520,842 parameters."""
    return ResNet(Bottleneck, [3, 4, 6, 3], num_classes=num_classes, **kwargs)
