"""E7's custom CIFAR-100 ResNet (IE 534 homework, PyTorch: 60.13% top-1 after 50 epochs with Adam).

Layout, as the report lists it, for a 3x32x32 image::

    conv1 Conv2d(3, 32, 3x3, padding 1) - ReLU - bn1 BatchNorm2d(32) - Dropout(0.3)
    layer1: 2 blocks, 32 channels                    (32x32)
    upsample1: Conv2d(32, 64, 1x1)                   channel up-sampling between stages
    layer2: 4 blocks, 64 channels, first stride 2    (16x16)
    upsample2: Conv2d(64, 128, 1x1)
    layer3: 4 blocks, 128 channels, first stride 2   (8x8)
    upsample3: Conv2d(128, 256, 1x1)
    layer4: 2 blocks, 256 channels, first stride 2   (4x4)
    pool MaxPool2d(4, 4) - flatten - fc Linear(256, num_classes)

Each block (``E7Block``): ``conv1(3x3, stride) - bn1 - ReLU - conv2(3x3) - bn2``, plus the shortcut, which is
the input itself or, where the block has stride 2, ``shortcut = Conv2d(c, c, 1x1, stride 2)`` (no BatchNorm);
ReLU after the add as in He et al.'s block (the report's list ends at the add, and its module printout cannot show
functional ReLUs). All convolutions have biases and PyTorch's default initialisation, as in the report's code.
"""
from .. import nn

__all__ = ["E7Block", "Cifar100ResNet", "cifar100_resnet"]


class E7Block(nn.Module):
    """Basic block with the same width in and out; a strided 1x1 convolution on the shortcut when stride > 1."""

    def __init__(self, channels, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, kernel_size=3, stride=stride, padding=1)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=3, stride=1, padding=1)
        self.bn2 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU()
        self.shortcut = nn.Conv2d(channels, channels, kernel_size=1, stride=stride) if stride > 1 else None

    def forward(self, x):
        identity = x if self.shortcut is None else self.shortcut(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Cifar100ResNet(nn.Module):
    """E7's network (see the module docstring). ``widths`` and ``blocks`` give the four stages."""

    def __init__(self, num_classes=100, widths=(32, 64, 128, 256), blocks=(2, 4, 4, 2), dropout=0.3,
                 in_channels=3):
        super().__init__()
        if len(widths) != 4 or len(blocks) != 4:
            raise ValueError(f"Cifar100ResNet takes 4 stages, got widths={widths}, blocks={blocks}")
        self.conv1 = nn.Conv2d(in_channels, widths[0], kernel_size=3, padding=1)
        self.relu = nn.ReLU()
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.dropout = nn.Dropout(dropout)
        self.layer1 = self._make_layer(widths[0], blocks[0], stride=1)
        self.upsample1 = nn.Conv2d(widths[0], widths[1], kernel_size=1)
        self.layer2 = self._make_layer(widths[1], blocks[1], stride=2)
        self.upsample2 = nn.Conv2d(widths[1], widths[2], kernel_size=1)
        self.layer3 = self._make_layer(widths[2], blocks[2], stride=2)
        self.upsample3 = nn.Conv2d(widths[2], widths[3], kernel_size=1)
        self.layer4 = self._make_layer(widths[3], blocks[3], stride=2)
        self.pool = nn.MaxPool2d(kernel_size=4, stride=4)
        self.fc = nn.Linear(widths[3], num_classes)

    @staticmethod
    def _make_layer(channels, blocks, stride):
        return nn.Sequential(E7Block(channels, stride), *[E7Block(channels) for _ in range(1, blocks)])

    def forward(self, x):
        x = self.dropout(self.bn1(self.relu(self.conv1(x))))
        x = self.upsample1(self.layer1(x))
        x = self.upsample2(self.layer2(x))
        x = self.upsample3(self.layer3(x))
        x = self.pool(self.layer4(x))
        return self.fc(x.flatten(1))


def cifar100_resnet(num_classes=100, **kwargs):
    """E7's custom ResNet for CIFAR-100."""
    return Cifar100ResNet(num_classes=num_classes, **kwargs)
