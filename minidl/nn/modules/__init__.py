"""The layers of ``minidl.nn``, one family per file."""
from .activation import ELU, LeakyReLU, LogSoftmax, ReLU, Sigmoid, Softmax, Tanh
from .batchnorm import BatchNorm1d, BatchNorm2d
from .container import ModuleList, Sequential
from .conv import Conv2d
from .dropout import Dropout, Dropout2d
from .linear import Flatten, Identity, Linear
from .loss import CrossEntropyLoss, MSELoss, NLLLoss
from .module import LayerInputError, Module
from .pooling import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d
from .sync_batchnorm import SyncBatchNorm
