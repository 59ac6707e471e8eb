"""VGG-11/13/16/19 with BatchNorm for 32x32 images, and E1's VGG-19-like network.

Layout: ``features`` is torchvision's ``make_layers(cfg, batch_norm=True)``: for each number in the config a
``Conv2d(3x3, padding 1) - BatchNorm2d - ReLU``, for each ``"M"`` a ``MaxPool2d(2, 2)``. Five max-pools take a
32x32 image to 1x1x512, so the head is ``flatten - classifier`` with ``classifier = Linear(512, num_classes)``
(the form of the public CIFAR recipes that reach 92.6-94.0%; VGG-16 for 10 classes: 14,728,266 parameters).

Initialisation as torchvision: conv ``kaiming_normal_(fan_out, relu)`` with zero bias, BatchNorm 1/0, Linear
``normal_(0, 0.01)`` with zero bias.
"""
from .. import nn
from .registry import register_model

__all__ = ["VGG", "CFGS", "vgg11", "vgg13", "vgg16", "vgg19", "vgg19_like"]

CFGS = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg13": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
              512, 512, 512, 512, "M"],
}


def make_layers(cfg, in_channels=3):
    """torchvision's feature extractor with BatchNorm (indices match ``features.N`` of ``vgg*_bn``)."""
    layers = []
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(in_channels, v, kernel_size=3, padding=1), nn.BatchNorm2d(v), nn.ReLU()]
            in_channels = v
    return nn.Sequential(*layers)


class VGG(nn.Module):
    """``features`` (conv-BN-ReLU stacks and max-pools), ``flatten``, ``classifier``.

    ``hidden=None`` gives ``classifier = Linear(512, num_classes)``; ``hidden=h`` gives VGG's original three-layer
    head scaled to CIFAR: ``Linear(512, h) - ReLU - Dropout - Linear(h, h) - ReLU - Dropout - Linear(h, classes)``.
    """

    def __init__(self, cfg, num_classes=10, hidden=None, dropout=0.5, in_channels=3):
        super().__init__()
        self.features = make_layers(cfg, in_channels)
        width = [v for v in cfg if v != "M"][-1]
        if hidden is None:
            self.classifier = nn.Linear(width, num_classes)
        else:
            self.classifier = nn.Sequential(
                nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(dropout),
                nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout),
                nn.Linear(hidden, num_classes))
        self._init_weights()

    def _init_weights(self):
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        return self.classifier(self.features(x).flatten(1))


@register_model("vgg11")
def vgg11(num_classes=10, **kwargs):
    """VGG-11 with BatchNorm for 32x32 input."""
    return VGG(CFGS["vgg11"], num_classes=num_classes, **kwargs)


@register_model("vgg13")
def vgg13(num_classes=10, **kwargs):
    """VGG-13 with BatchNorm for 32x32 input."""
    return VGG(CFGS["vgg13"], num_classes=num_classes, **kwargs)


@register_model("vgg16")
def vgg16(num_classes=10, **kwargs):
    """VGG-16 with BatchNorm for 32x32 input (14,728,266 parameters for 10 classes)."""
    return VGG(CFGS["vgg16"], num_classes=num_classes, **kwargs)


@register_model("vgg19")
def vgg19(num_classes=10, **kwargs):
    """VGG-19 with BatchNorm for 32x32 input."""
    return VGG(CFGS["vgg19"], num_classes=num_classes, **kwargs)


@register_model("vgg19_like")
def vgg19_like(num_classes=10, hidden=512, dropout=0.5, **kwargs):
    """E1's "VGG-19-like" network: deep conv-BN stacks with no residuals (the net whose loss spikes under Adam
    until a step LR drop; ~70% reported).

    The report gives no layer table, only "VGG-19 with modifications in the depth to suit CIFAR-10" and
    conv-BN stacks, so minidl builds VGG-19's 16 conv-BN-ReLU layers (64-128-256-512-512, five max-pools) with
    VGG's three-layer classifier shrunk to CIFAR scale: 512 -> ``hidden`` -> ``hidden`` -> classes, ReLU and
    ``dropout`` between (20,565,834 parameters for 10 classes with ``hidden=512``).
    """
    return VGG(CFGS["vgg19"], num_classes=num_classes, hidden=hidden, dropout=dropout, **kwargs)
