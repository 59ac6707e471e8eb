"""E9/E10's plain CNN (a Keras net: 90.29% on CIFAR-10, 57.44% top-1 on CIFAR-100).

Layout, for a 32x32 image::

    features: 4 blocks, widths 32/64/128/256, dropout 0.25/0.35/0.45/0.35, each
        Conv2d(3x3, same) - ReLU - BatchNorm2d - Conv2d(3x3, same) - ReLU - BatchNorm2d - MaxPool2d(2) - Dropout
    flatten (256 x 2 x 2 = 1024) - Linear(1024, 1024) - ReLU - Linear(1024, num_classes)

Note the order conv-ReLU-BN (the activation is inside Keras' ``Conv2D``, BN after it). The model returns logits;
the report's final softmax belongs to the loss (``cross_entropy``).

Keras defaults are kept so the run is the report's run: convolutions and dense layers have biases and start
``xavier_uniform_`` (Keras' glorot_uniform) with zero bias; BatchNorm uses Keras' ``epsilon=1e-3`` and
``momentum=0.99``, which is PyTorch's ``momentum=0.01`` (``bn_eps``/``bn_momentum`` change them).
"""
from .. import nn
from ..models.registry import register_model

__all__ = ["PlainCNN", "plain_cnn"]


def conv_block(in_channels, out_channels, dropout, bn_eps, bn_momentum):
    """[conv3x3-ReLU, BN] x 2, MaxPool2d(2), Dropout(dropout)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1), nn.ReLU(),
        nn.BatchNorm2d(out_channels, eps=bn_eps, momentum=bn_momentum),
        nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1), nn.ReLU(),
        nn.BatchNorm2d(out_channels, eps=bn_eps, momentum=bn_momentum),
        nn.MaxPool2d(2, stride=2), nn.Dropout(dropout))


class PlainCNN(nn.Module):
    """E9's network (see the module docstring); ``input_size`` is the image side (32 for CIFAR)."""

    def __init__(self, num_classes=10, widths=(32, 64, 128, 256), dropouts=(0.25, 0.35, 0.45, 0.35),
                 hidden=1024, in_channels=3, input_size=32, bn_eps=1e-3, bn_momentum=0.01):
        super().__init__()
        if len(widths) != len(dropouts):
            raise ValueError(f"PlainCNN needs one dropout per block: {len(widths)} widths, {len(dropouts)} dropouts")
        blocks = []
        for width, p in zip(widths, dropouts):
            blocks.append(conv_block(in_channels, width, p, bn_eps, bn_momentum))
            in_channels = width
        self.features = nn.Sequential(*blocks)
        side = input_size // 2 ** len(widths)
        if side < 1:
            raise ValueError(f"PlainCNN: input_size {input_size} is too small for {len(widths)} max-pools")
        self.classifier = nn.Sequential(nn.Linear(widths[-1] * side * side, hidden), nn.ReLU(),
                                        nn.Linear(hidden, num_classes))
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        return self.classifier(self.features(x).flatten(1))


@register_model("plain_cnn")
def plain_cnn(num_classes=10, **kwargs):
    """E9 (``num_classes=10``) and E10 (``num_classes=100``): 2,234,026 parameters for 10 classes."""
    return PlainCNN(num_classes=num_classes, **kwargs)
