"""E7's custom CIFAR-100 ResNet (IE 534 homework, PyTorch: 60.13% top-1 after 50 epochs with Adam).

The report describes the network twice, and the two disagree. Its **module printout** (Figure 2, the network
that ran) shows ``dropout2d: Dropout2d(p=0.2)`` and ``fc1: Linear(in_features=1024, out_features=100)``; its
**text** says "Dropout with probability p = 0.3" and a "fully connected layer with 256 input" units.
minidl follows the printout by default (``layout="printout"``) and offers the text (``layout="text"``):

    printout: conv1 Conv2d(3, 32, 3x3, pad 1) - ReLU - bn1 - Dropout2d(0.2)
              layer1 2x32 (stride 1) - upsample1 1x1 32->64 - layer2 4x64 (stride 1)   (32x32)
              - upsample2 1x1 64->128 - layer3 4x128 (stride 2)                        (16x16)
              - upsample3 1x1 128->256 - layer4 2x256 (stride 2)                       (8x8)
              - MaxPool2d(4, 4) (2x2) - flatten (1024) - fc Linear(1024, 100)
    text:     the same with Dropout(0.3), layer2 at stride 2, so layer4 ends at 4x4, the pool at 1x1 and
              fc is Linear(256, 100)

``Linear(1024, 100)`` after ``MaxPool2d(4, 4)`` needs an 8x8 map before the pool, so one of the text's three
stride-2 stages cannot have been strided in the run; the printout shows layer4's first block
(``basic_layer11``) at stride 2, and minidl takes layer2's first block as the unstrided one (the printout does
not show layers 1-10, so layer3 is as likely; that choice moves one strided 1x1 shortcut convolution from
layer2 to layer3: 4,108,004 parameters against 4,095,652). The printout also
lists a 1x1 ``match_dim`` convolution in a stride-1 block (``basic_layer12``); the text and its Figure 1 code
create it only where the stride is 2, which minidl follows (an unused convolution changes nothing the run
computes).

Each block is the library's ``BasicBlock`` with biased 3x3 convolutions (``conv - bn - ReLU - conv - bn``, plus
the shortcut, then ReLU as in He et al.'s block; the report's list ends at the add, and a module printout cannot
show a functional ReLU) and, where the block has stride 2, the strided 1x1 convolution ``Conv2d(c, c, 1x1,
stride 2)`` (no BatchNorm) as shortcut. All layers have PyTorch's default initialisation, as in the report's code.
"""
from .. import nn
from ..models.registry import register_model
from ..models.resnet import BasicBlock

__all__ = ["e7_block", "E7ResNet", "e7_resnet", "LAYOUTS"]

# layout -> (stage strides, the dropout after the stem)
LAYOUTS = {"printout": ((1, 1, 2, 2), nn.Dropout2d, 0.2), "text": ((1, 2, 2, 2), nn.Dropout, 0.3)}


def e7_block(channels, stride=1):
    """E7's block: same width in and out, biased convolutions, a strided 1x1 conv shortcut when stride > 1."""
    shortcut = nn.Conv2d(channels, channels, kernel_size=1, stride=stride) if stride > 1 else None
    return BasicBlock(channels, channels, stride, shortcut, bias=True)


class E7ResNet(nn.Module):
    """E7's network (see the module docstring). ``widths``/``blocks`` give the four stages."""

    def __init__(self, num_classes=100, layout="printout", widths=(32, 64, 128, 256), blocks=(2, 4, 4, 2),
                 in_channels=3, input_size=32):
        super().__init__()
        if layout not in LAYOUTS:
            raise ValueError(f"unknown E7 layout {layout!r}; valid layouts: {', '.join(LAYOUTS)}")
        if len(widths) != 4 or len(blocks) != 4:
            raise ValueError(f"E7ResNet takes 4 stages, got widths={widths}, blocks={blocks}")
        strides, dropout_class, p = LAYOUTS[layout]
        self.conv1 = nn.Conv2d(in_channels, widths[0], kernel_size=3, padding=1)
        self.relu = nn.ReLU()
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.dropout = dropout_class(p)
        self.layer1 = self._make_layer(widths[0], blocks[0], strides[0])
        self.upsample1 = nn.Conv2d(widths[0], widths[1], kernel_size=1)
        self.layer2 = self._make_layer(widths[1], blocks[1], strides[1])
        self.upsample2 = nn.Conv2d(widths[1], widths[2], kernel_size=1)
        self.layer3 = self._make_layer(widths[2], blocks[2], strides[2])
        self.upsample3 = nn.Conv2d(widths[2], widths[3], kernel_size=1)
        self.layer4 = self._make_layer(widths[3], blocks[3], strides[3])
        self.pool = nn.MaxPool2d(kernel_size=4, stride=4)
        side = input_size
        for stride in strides:
            side = -(-side // stride)
        side //= 4
        if side < 1:
            raise ValueError(f"E7ResNet: a {input_size}x{input_size} input is too small for the {layout} layout")
        self.fc = nn.Linear(widths[3] * side * side, num_classes)

    @staticmethod
    def _make_layer(channels, blocks, stride):
        return nn.Sequential(e7_block(channels, stride), *[e7_block(channels) for _ in range(1, blocks)])

    def forward(self, x):
        x = self.dropout(self.bn1(self.relu(self.conv1(x))))
        x = self.upsample1(self.layer1(x))
        x = self.upsample2(self.layer2(x))
        x = self.upsample3(self.layer3(x))
        x = self.pool(self.layer4(x))
        return self.fc(x.flatten(1))


@register_model("e7_resnet")
def e7_resnet(num_classes=100, layout="printout", **kwargs):
    """E7's custom ResNet for CIFAR-100, as its printout (default) or its text describes it."""
    return E7ResNet(num_classes=num_classes, layout=layout, **kwargs)
