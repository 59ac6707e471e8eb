"""``minidl.experiments``: what is particular to the experiments of ``docs/experiments.md``.

The example scripts (``examples/``) state each experiment's recipe; the parts more than one of them needs,
and the networks only an experiment uses, live here, each module named after its experiment:

- ``resnet_n``: the Keras report's ``ResNet_N`` (E1-E6): E4/E5's pre-activation ResNet-18 and the
  report's ResNet-20/50/110 (``report_resnet(depth)``);
- ``e7``: E7's custom CIFAR-100 ResNet (its printout's layout, or its text's);
- ``e9``: E9/E10's plain CNN;
- ``e11``: E11's configurable ResNet and its 8 combinations;
- ``recipes``: the reports' training recipes (the Keras report's Adam + plateau + L2, E9's Keras data
  pipeline, E8/E13's ImageNet-pretrained ResNet-18).

Every network here is built from the library's layers and blocks (``minidl.models.BasicBlock``) and is
registered with ``minidl.models.get_model``, so its checkpoints rebuild it (``minidl.models.from_checkpoint``).
"""
from .e7 import E7ResNet, e7_resnet
from .e9 import PlainCNN, plain_cnn
from .e11 import (E11_CONFIGS, E11_PARAMS, E11_REPORTED_PARAMS, ConfigurableResNet, configurable_resnet,
                  e11_resnet)
from .resnet_n import REPORT_LAYERS, PreActResNet, preact_resnet18, report_resnet
