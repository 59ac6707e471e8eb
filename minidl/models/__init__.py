"""``minidl.models``: the networks of the CIFAR experiments (see ``shared/EXPERIMENTS.md``).

- ``resnet18/34/50`` (``resnet.py``): torchvision's ResNets, CIFAR stem by default, ``stem="imagenet"`` for
  pretrained torchvision weights (E2-E3, E6, E8, E12-E14).
- ``resnet20/32/44/56/110`` (``resnet_cifar.py``): He et al.'s CIFAR ResNets (E2, E6).
- ``vgg11/13/16/19`` and ``vgg19_like`` (``vgg.py``): VGG with BatchNorm for 32x32 images (E1).
- ``plain_cnn`` (``plain_cnn.py``): E9/E10's plain CNN.
- ``cifar100_resnet`` (``cifar100_resnet.py``): E7's custom CIFAR-100 ResNet.
- ``preact_resnet18`` (``preact_resnet.py``): E4/E5's pre-activation ResNet-18 with ELU and dropout.
- ``configurable_resnet`` / ``e11_resnet`` (``configurable_resnet.py``): E11's configurable ResNet.

``get_model(name, **kwargs)`` builds any of them by name (``num_classes=...`` and the model's own options).
"""
from .cifar100_resnet import Cifar100ResNet, cifar100_resnet
from .configurable_resnet import (E11_CONFIGS, E11_PARAMS, E11_REPORTED_PARAMS, ConfigurableResNet,
                                  configurable_resnet, e11_resnet)
from .plain_cnn import PlainCNN, plain_cnn
from .preact_resnet import PreActResNet, preact_resnet18
from .resnet import BasicBlock, Bottleneck, ResNet, resnet18, resnet34, resnet50
from .resnet_cifar import CifarResNet, ZeroPadShortcut, resnet20, resnet32, resnet44, resnet56, resnet110
from .vgg import VGG, vgg11, vgg13, vgg16, vgg19, vgg19_like

MODELS = {
    "resnet18": resnet18, "resnet34": resnet34, "resnet50": resnet50,
    "resnet20": resnet20, "resnet32": resnet32, "resnet44": resnet44, "resnet56": resnet56,
    "resnet110": resnet110,
    "vgg11": vgg11, "vgg13": vgg13, "vgg16": vgg16, "vgg19": vgg19, "vgg19_like": vgg19_like,
    "plain_cnn": plain_cnn,
    "cifar100_resnet": cifar100_resnet,
    "preact_resnet18": preact_resnet18,
    "configurable_resnet": configurable_resnet, "e11_resnet": e11_resnet,
}


def list_models():
    """The names ``get_model`` accepts."""
    return sorted(MODELS)


def get_model(name, **kwargs):
    """Builds the model called ``name`` (e.g. ``get_model("resnet20", num_classes=10, shortcut="zero_pad")``)."""
    key = name.lower() if isinstance(name, str) else name
    if key not in MODELS:
        raise ValueError(f"unknown model {name!r}; valid names: {', '.join(list_models())}")
    return MODELS[key](**kwargs)
