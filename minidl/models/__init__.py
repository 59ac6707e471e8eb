"""``minidl.models``: general networks for 32x32 and ImageNet-sized images.

- ``resnet18/34/50`` (``resnet.py``): torchvision's ResNets, CIFAR stem by default, ``stem="imagenet"`` for
  pretrained torchvision weights. ``BasicBlock`` is the one residual block every ResNet in minidl runs.
- ``resnet20/32/44/56/110`` (``resnet_cifar.py``): He et al.'s CIFAR ResNets, option A (``shortcut="zero_pad"``)
  or B (``"projection"``).
- ``vgg11/13/16/19`` and ``vgg19_like`` (``vgg.py``): VGG with BatchNorm for 32x32 images.

The networks particular to one experiment of ``docs/experiments.md`` (the Keras report's ``ResNet_N``, E7's
CIFAR-100 ResNet, E9's plain CNN, E11's configurable ResNet) live in ``minidl.experiments``.

``get_model(name, **kwargs)`` builds any registered network by name, those of ``minidl.experiments`` included;
every model it (or a registered constructor) builds records its name and arguments, which the trainer stores in
its checkpoints, so ``from_checkpoint(path)`` rebuilds the network and loads its weights (``registry.py``).
"""
from .registry import (MODELS, ArchitectureMismatch, architecture_of, build, describe, from_checkpoint, get_model,
                       list_models, register_model, set_architecture)
from .resnet import BasicBlock, Bottleneck, ResNet, resnet18, resnet34, resnet50
from .resnet_cifar import CifarResNet, ZeroPadShortcut, resnet20, resnet32, resnet44, resnet56, resnet110
from .vgg import VGG, vgg11, vgg13, vgg16, vgg19, vgg19_like
