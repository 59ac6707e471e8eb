"""The benchmark's networks in PyTorch, built exactly as minidl.models builds them.

torchvision may be absent, so the two ResNets are written out here, with minidl's (and
torchvision's) parameter names, so that ``load_minidl_weights`` can copy a minidl model's
state dict into its PyTorch twin: the two frameworks then train the very same network.

- ``resnet18``: torchvision's ResNet-18 with the CIFAR stem (3x3 stride-1 conv1, no max-pool).
- ``resnet20/32/44/56/110``: He et al.'s CIFAR ResNets (6n+2 layers, 16/32/64 channels) with
  projection shortcuts (minidl's default, option B).
"""
import numpy as np
import torch
from torch import nn


def conv3x3(in_planes, out_planes, stride=1):
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_planes, out_planes, stride=1):
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


def _make_layer(inplanes, planes, blocks, stride):
    downsample = None
    if stride != 1 or inplanes != planes:
        downsample = nn.Sequential(conv1x1(inplanes, planes, stride), nn.BatchNorm2d(planes))
    layers = [BasicBlock(inplanes, planes, stride, downsample)]
    layers += [BasicBlock(planes, planes) for _ in range(1, blocks)]
    return nn.Sequential(*layers)


class ResNet(nn.Module):
    """ResNet with a CIFAR stem; ``widths`` per stage, ``blocks`` per stage."""

    def __init__(self, widths, blocks, num_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, widths[0], kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU()
        inplanes, stages = widths[0], []
        for index, (planes, count) in enumerate(zip(widths, blocks)):
            stages.append(_make_layer(inplanes, planes, count, 1 if index == 0 else 2))
            inplanes = planes
        for index, stage in enumerate(stages):
            self.add_module(f"layer{index + 1}", stage)
        self.stages = len(stages)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(widths[-1], num_classes)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        for index in range(self.stages):
            x = getattr(self, f"layer{index + 1}")(x)
        return self.fc(torch.flatten(self.avgpool(x), 1))


def resnet18(num_classes=10):
    return ResNet((64, 128, 256, 512), (2, 2, 2, 2), num_classes)


def cifar_resnet(depth, num_classes=10):
    if (depth - 2) % 6:
        raise ValueError(f"a CIFAR ResNet has depth 6n+2, got {depth}")
    n = (depth - 2) // 6
    return ResNet((16, 32, 64), (n, n, n), num_classes)


MODELS = {"resnet18": resnet18, **{f"resnet{d}": (lambda d: lambda num_classes=10: cifar_resnet(d, num_classes))(d)
                                   for d in (20, 32, 44, 56, 110)}}


def build(name, num_classes=10):
    if name not in MODELS:
        raise ValueError(f"no PyTorch twin for model {name!r}; available: {', '.join(sorted(MODELS))}")
    return MODELS[name](num_classes)


def load_minidl_weights(torch_model, state_dict):
    """Copies a minidl ``state_dict()`` (NumPy arrays under PyTorch's keys) into ``torch_model``."""
    tensors = {key: torch.from_numpy(np.ascontiguousarray(value)) for key, value in state_dict.items()}
    torch_model.load_state_dict(tensors, strict=True)
    return torch_model
