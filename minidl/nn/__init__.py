"""``minidl.nn``: modules (layers with parameters and state) and the functional API.

Layers live in ``minidl/nn/modules/`` (one family per file) and call the stateless ops
of ``minidl.nn.functional``; ``minidl.nn.init`` fills their parameters.
"""
from . import functional, init, utils
from .modules import (ELU, AdaptiveAvgPool2d, AvgPool2d, BatchNorm1d, BatchNorm2d, Conv2d, CrossEntropyLoss, Dropout,
                      Dropout2d, Flatten, Identity, LayerInputError, LeakyReLU, Linear, LogSoftmax, MaxPool2d, Module,
                      ModuleList, MSELoss, NLLLoss, ReLU, Sequential, Sigmoid, Softmax, SyncBatchNorm, Tanh)
from .parameter import Parameter
from . import parallel  # noqa: E402  (DistributedDataParallel; after the modules it wraps)
