"""PyTorch references for the model tests: torchvision's ResNet written out compactly (torchvision is not a
dependency) and He et al.'s CIFAR ResNet. Import only after ``torch_or_skip()``."""
import torch
import torch.nn as tnn
import torch.nn.functional as TF


class TorchBasicBlock(tnn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = tnn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = tnn.BatchNorm2d(planes)
        self.relu = tnn.ReLU(inplace=True)
        self.conv2 = tnn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = tnn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class TorchBottleneck(tnn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = tnn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = tnn.BatchNorm2d(planes)
        self.conv2 = tnn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = tnn.BatchNorm2d(planes)
        self.conv3 = tnn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = tnn.BatchNorm2d(planes * 4)
        self.relu = tnn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class TorchResNet(tnn.Module):
    """torchvision.models.ResNet (same module names), with the CIFAR stem as an option."""

    def __init__(self, block, layers, num_classes=1000, stem="imagenet"):
        super().__init__()
        self.inplanes = 64
        imagenet = stem == "imagenet"
        self.conv1 = tnn.Conv2d(3, 64, 7, 2, 3, bias=False) if imagenet else tnn.Conv2d(3, 64, 3, 1, 1, bias=False)
        self.bn1 = tnn.BatchNorm2d(64)
        self.relu = tnn.ReLU(inplace=True)
        self.maxpool = tnn.MaxPool2d(3, 2, 1) if imagenet else tnn.Identity()
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], 2)
        self.layer3 = self._make_layer(block, 256, layers[2], 2)
        self.layer4 = self._make_layer(block, 512, layers[3], 2)
        self.avgpool = tnn.AdaptiveAvgPool2d((1, 1))
        self.fc = tnn.Linear(512 * block.expansion, num_classes)

    def _make_layer(self, block, planes, blocks, stride=1):
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = tnn.Sequential(tnn.Conv2d(self.inplanes, planes * block.expansion, 1, stride, bias=False),
                                        tnn.BatchNorm2d(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return tnn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class TorchZeroPad(tnn.Module):
    """akamaster's option-A shortcut: ``F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, planes // 4, planes // 4))``."""

    def __init__(self, planes):
        super().__init__()
        self.planes = planes

    def forward(self, x):
        return TF.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.planes // 4, self.planes // 4))


class TorchCifarResNet(tnn.Module):
    """He et al.'s 6n+2 CIFAR ResNet with torchvision's module names."""

    def __init__(self, n, num_classes=10, shortcut="projection", in_channels=3):
        super().__init__()
        self.inplanes = 16
        self.conv1 = tnn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        self.bn1 = tnn.BatchNorm2d(16)
        self.relu = tnn.ReLU()
        self.layer1 = self._make_layer(16, n, 1, shortcut)
        self.layer2 = self._make_layer(32, n, 2, shortcut)
        self.layer3 = self._make_layer(64, n, 2, shortcut)
        self.avgpool = tnn.AdaptiveAvgPool2d(1)
        self.fc = tnn.Linear(64, num_classes)

    def _make_layer(self, planes, blocks, stride, shortcut):
        downsample = None
        if stride != 1 or self.inplanes != planes:
            if shortcut == "projection":
                downsample = tnn.Sequential(tnn.Conv2d(self.inplanes, planes, 1, stride, bias=False),
                                            tnn.BatchNorm2d(planes))
            else:
                downsample = TorchZeroPad(planes)
        layers = [TorchBasicBlock(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes
        layers += [TorchBasicBlock(planes, planes) for _ in range(1, blocks)]
        return tnn.Sequential(*layers)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def to_torch_state(minidl_state):
    """A minidl state dict (NumPy arrays) as a torch one (tensors, own copies)."""
    return {key: torch.from_numpy(value.copy()) for key, value in minidl_state.items()}


def to_numpy_state(torch_state):
    """A torch state dict as NumPy arrays, the form minidl's ``load_state_dict`` takes."""
    return {key: value.detach().numpy().copy() for key, value in torch_state.items()}
