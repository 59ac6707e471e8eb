"""The benchmark's networks in PyTorch: the same twins the parity tests prove equal to minidl's.

torchvision may be absent, so ``tests/torch_resnets.py`` writes torchvision's ResNet and He et al.'s
CIFAR ResNet out in PyTorch, with minidl's (and torchvision's) parameter names. The parity tests
show that, from the same weights, they compute what minidl.models computes; the benchmark times
those very networks, loaded with the minidl model's initial weights.

- ``resnet18``: torchvision's ResNet-18 with the CIFAR stem (3x3 stride-1 conv1, no max-pool).
- ``resnet20/32/44/56/110``: He et al.'s CIFAR ResNets with projection shortcuts (minidl's default).
- ``vgg11/13/16/19``: VGG with BatchNorm for 32x32 images, as ``minidl/models/vgg.py`` (torchvision's
  ``features`` layout, ``classifier = Linear(512, classes)``).
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from torch_resnets import TorchBasicBlock, TorchCifarResNet, TorchResNet, to_torch_state  # noqa: E402

CIFAR_DEPTHS = (20, 32, 44, 56, 110)


def vgg(cfg, num_classes):
    """torchvision's ``vgg*_bn`` features for 32x32 input and one linear classifier (minidl's VGG)."""
    import torch.nn as tnn
    layers, channels = [], 3
    for v in cfg:
        if v == "M":
            layers.append(tnn.MaxPool2d(2, 2))
        else:
            layers += [tnn.Conv2d(channels, v, 3, padding=1), tnn.BatchNorm2d(v), tnn.ReLU(inplace=True)]
            channels = v
    model = tnn.Module()
    model.features, model.classifier = tnn.Sequential(*layers), tnn.Linear(channels, num_classes)
    model.forward = lambda x: model.classifier(model.features(x).flatten(1))
    return model


def build(name, num_classes=10):
    """The PyTorch twin of ``minidl.models.<name>(num_classes)``."""
    if name.startswith("vgg") and name[3:].isdigit():
        from minidl.models.vgg import CFGS
        return vgg(CFGS[name], num_classes)
    if name == "resnet18":
        return TorchResNet(TorchBasicBlock, [2, 2, 2, 2], num_classes=num_classes, stem="cifar")
    depths = {f"resnet{depth}": depth for depth in CIFAR_DEPTHS}
    if name not in depths:
        raise ValueError(f"no PyTorch twin for model {name!r}; available: resnet18, vgg11/13/16/19, "
                         + ", ".join(sorted(depths)))
    return TorchCifarResNet((depths[name] - 2) // 6, num_classes=num_classes, shortcut="projection")


def load_minidl_weights(torch_model, state_dict):
    """Copies a minidl ``state_dict()`` (NumPy arrays under PyTorch's keys) into ``torch_model``."""
    torch_model.load_state_dict(to_torch_state(state_dict), strict=True)
    return torch_model
