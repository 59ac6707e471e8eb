"""``minidl.nn``: modules (layers with parameters and state) and the functional API.

Layers live in ``minidl/nn/modules/`` (one family per file) and call the stateless ops
of ``minidl.nn.functional``; ``minidl.nn.init`` fills their parameters.
"""
from . import functional, init, utils
from .modules import (CELU, ELU, GELU, SELU, AdaptiveAvgPool2d, AvgPool2d, BatchNorm1d, BatchNorm2d, BCELoss,
                      BCEWithLogitsLoss, Conv1d, Conv2d, ConvTranspose2d, CrossEntropyLoss, Dropout, Dropout2d,
                      Flatten, Hardsigmoid, Hardswish, Hardtanh, Identity, LayerInputError, LeakyReLU, Linear,
                      LogSigmoid, LogSoftmax, MaxPool2d, MaxUnpool2d, Mish, Module, ModuleList, MSELoss, NLLLoss,
                      ReLU, ReLU6, Sequential, Sigmoid, SiLU, Softmax, Softplus, Softsign, SyncBatchNorm, Tanh,
                      Upsample)
from .parameter import Parameter
from . import parallel  # noqa: E402  (DistributedDataParallel; after the modules it wraps)
