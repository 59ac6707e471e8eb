"""The benchmark's networks in PyTorch: the same twins the parity tests prove equal to minidl's.

torchvision may be absent, so ``tests/torch_resnets.py`` writes torchvision's ResNet and He et al.'s
CIFAR ResNet out in PyTorch, with minidl's (and torchvision's) parameter names. The parity tests
show that, from the same weights, they compute what minidl.models computes; the benchmark times
those very networks, loaded with the minidl model's initial weights.

- ``resnet18``: torchvision's ResNet-18 with the CIFAR stem (3x3 stride-1 conv1, no max-pool).
- ``resnet20/32/44/56/110``: He et al.'s CIFAR ResNets with projection shortcuts (minidl's default).
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from torch_resnets import TorchBasicBlock, TorchCifarResNet, TorchResNet, to_torch_state  # noqa: E402

CIFAR_DEPTHS = (20, 32, 44, 56, 110)


def build(name, num_classes=10):
    """The PyTorch twin of ``minidl.models.<name>(num_classes)``."""
    if name == "resnet18":
        return TorchResNet(TorchBasicBlock, [2, 2, 2, 2], num_classes=num_classes, stem="cifar")
    depths = {f"resnet{depth}": depth for depth in CIFAR_DEPTHS}
    if name not in depths:
        raise ValueError(f"no PyTorch twin for model {name!r}; available: resnet18, "
                         + ", ".join(sorted(depths)))
    return TorchCifarResNet((depths[name] - 2) // 6, num_classes=num_classes, shortcut="projection")


def load_minidl_weights(torch_model, state_dict):
    """Copies a minidl ``state_dict()`` (NumPy arrays under PyTorch's keys) into ``torch_model``."""
    torch_model.load_state_dict(to_torch_state(state_dict), strict=True)
    return torch_model
