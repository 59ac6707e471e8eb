"""The Keras report's ``ResNet_N(layers)`` (E1-E6's ``resnet.py``): pre-activation blocks, ELU and strong dropout.

It is the report's only model code, and it names what it builds ``"ResNet-" + str(2 * sum(layers) + 2)``: its
``cifar_class.py`` builds ``ResNet_N(layers=[2, 2, 2, 2])``, the "ResNet-18" of E4 (86.75% on CIFAR-10) and E5
(top-5 78.42% on CIFAR-100). ``report_resnet(depth)`` builds the ``ResNet_N`` that the report's naming calls
ResNet-``depth``, which is what its other ResNets most likely were:

- ResNet-18: ``layers=[2, 2, 2, 2]`` (the listed code);
- ResNet-20 (E2): ``[3, 3, 3]``; ResNet-110 (E6): ``[18, 18, 18]`` (He et al.'s 6n+2 depths, three stages);
- ResNet-50 (E3, E6): ``[6, 6, 6, 6]`` (four stages as the listed code; ``2 * 24 + 2 = 50``).

Its ``BOTTLENECK = True`` flag cannot have built the ResNet-50: as listed, ``basic_blk`` then reads ``k[2]`` of the
2-tuple ``(3, 3)`` every caller passes (an IndexError), and its ``4 * f`` output channels could not be added to
the ``f``-channel shortcut. So the report's ResNet-50 was a plain ``ResNet_N`` of depth 50 (above), and minidl
offers no bottleneck form of it. These differ from He et al.'s CIFAR nets (``minidl.models.resnet20``: 16/32/64
channels, stride-1 stem, no dropout, 0.27M parameters) and from torchvision's ResNet-50 (bottlenecks).

Layout, for a 3x32x32 image::

    conv1 Conv2d(3, 64, 3x3, stride 2) - bn1 - ELU                          (16x16)
    layer1..layer4: 64/128/256/512 channels, strides 1/2/2/2, 2 blocks each   (16, 8, 4, 2)
    avgpool AvgPool2d(2) - flatten - dropout Dropout(0.3) - fc Linear(512, num_classes)

The first block of each stage is a "conv block", the others "identity blocks" (``PreActBlock``)::

    conv block:      out = branch(x) + downsample(x),        downsample = BN - ELU - Conv2d(1x1, stride)
    identity block:  out = dropout2d(branch(dropout(x)) + x)  with Dropout(0.5) and Dropout2d(0.5)
    branch = BN - ELU - Conv2d(3x3, stride) - BN - ELU - Conv2d(3x3)

(the pre-activation unit of He et al.'s "Identity Mappings", with the report's dropouts). Every convolution and
the linear layer have a bias (zero at start) and he_normal weights (``kaiming_normal_``, fan_in, gain sqrt(2));
Keras draws he_normal from a truncated normal, minidl from the normal. BatchNorm uses Keras' ``epsilon=1e-3``
and ``momentum=0.9``, which is PyTorch's ``momentum=0.1``. The model returns logits (the report's softmax goes
into the loss). The report's L2 1e-4 kernel regularizer is an optimizer setting, not part of the model.

Dropout before the classifier: the report's text says 0.3 (``classifier_dropout``, the default here); its code
listing has 0.5. The stem is stride 2 as in that code; Keras pads a stride-2 'same' 3x3 conv only after each
row/column (PyTorch's padding=1 pads both sides), which shifts the sampling grid by one pixel, not the shapes.
"""
from .. import nn
from ..models.registry import register_model

__all__ = ["PreActBlock", "PreActResNet", "preact_resnet18", "report_resnet", "REPORT_LAYERS"]

# depth as the report's code names it -> layers (see the module docstring)
REPORT_LAYERS = {18: [2, 2, 2, 2], 20: [3, 3, 3], 50: [6, 6, 6, 6], 110: [18, 18, 18]}


def bn_elu(channels, eps):
    return [nn.BatchNorm2d(channels, eps=eps, momentum=0.1), nn.ELU()]


class PreActBlock(nn.Module):
    """One block of E4's net: a conv block (``projection=True``) or an identity block (see the module docstring)."""

    def __init__(self, inplanes, planes, stride=1, projection=False, dropout=0.5, spatial_dropout=0.5,
                 bn_eps=1e-3):
        super().__init__()
        if not projection and (stride != 1 or inplanes != planes):
            raise ValueError(f"PreActBlock: an identity block needs stride 1 and equal widths, "
                             f"got {inplanes}->{planes}, stride {stride}")
        self.bn1, self.elu = nn.BatchNorm2d(inplanes, eps=bn_eps, momentum=0.1), nn.ELU()
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=3, stride=stride, padding=1)
        self.bn2 = nn.BatchNorm2d(planes, eps=bn_eps, momentum=0.1)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, padding=1)
        if projection:
            self.downsample = nn.Sequential(*bn_elu(inplanes, bn_eps),
                                            nn.Conv2d(inplanes, planes, kernel_size=1, stride=stride))
        else:
            self.downsample = None
            self.dropout = nn.Dropout(dropout)
            self.dropout2d = nn.Dropout2d(spatial_dropout)

    def branch(self, x):
        out = self.conv1(self.elu(self.bn1(x)))
        return self.conv2(self.elu(self.bn2(out)))

    def forward(self, x):
        if self.downsample is not None:
            return self.branch(x) + self.downsample(x)
        return self.dropout2d(self.branch(self.dropout(x)) + x)


class PreActResNet(nn.Module):
    """E4's network with ``layers`` blocks per stage (``[2, 2, 2, 2]`` is the report's ResNet-18)."""

    def __init__(self, layers=(2, 2, 2, 2), num_classes=10, width=64, stem_stride=2, dropout=0.5,
                 spatial_dropout=0.5, classifier_dropout=0.3, bn_eps=1e-3, in_channels=3, input_size=32):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, kernel_size=3, stride=stem_stride, padding=1)
        self.bn1, self.elu = bn_elu(width, bn_eps)
        stages, inplanes = [], width
        for i, blocks in enumerate(layers):
            planes = width * 2 ** i
            stage = [PreActBlock(inplanes, planes, stride=1 if i == 0 else 2, projection=True, bn_eps=bn_eps)]
            stage += [PreActBlock(planes, planes, dropout=dropout, spatial_dropout=spatial_dropout, bn_eps=bn_eps)
                      for _ in range(1, blocks)]
            stages.append(nn.Sequential(*stage))
            inplanes = planes
        self.layers = len(layers)
        for i, stage in enumerate(stages):
            setattr(self, f"layer{i + 1}", stage)
        side = -(-input_size // stem_stride) // 2 ** (len(layers) - 1)
        self.avgpool = nn.AvgPool2d(2) if side >= 2 else nn.Identity()
        side = max(side // 2, 1)
        self.dropout = nn.Dropout(classifier_dropout)
        self.fc = nn.Linear(inplanes * side * side, num_classes)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = self.elu(self.bn1(self.conv1(x)))
        for i in range(self.layers):
            x = getattr(self, f"layer{i + 1}")(x)
        return self.fc(self.dropout(self.avgpool(x).flatten(1)))


@register_model("preact_resnet18")
def preact_resnet18(num_classes=10, **kwargs):
    """E4 (CIFAR-10) and E5 (CIFAR-100, ``num_classes=100``): the report's ResNet-18."""
    return PreActResNet((2, 2, 2, 2), num_classes=num_classes, **kwargs)


@register_model("report_resnet")
def report_resnet(depth=18, num_classes=10, layers=None, **kwargs):
    """The report's ``ResNet_N`` it calls ResNet-``depth`` (``REPORT_LAYERS``), or with explicit ``layers``."""
    if layers is None:
        if depth not in REPORT_LAYERS:
            raise ValueError(f"report_resnet: no layers known for depth {depth}; known: {sorted(REPORT_LAYERS)} "
                             "(or pass layers=[...])")
        layers = REPORT_LAYERS[depth]
    if 2 * sum(layers) + 2 != depth:
        raise ValueError(f"report_resnet: layers {list(layers)} make the report's ResNet-{2 * sum(layers) + 2}, "
                         f"not ResNet-{depth}")
    return PreActResNet(tuple(layers), num_classes=num_classes, **kwargs)
