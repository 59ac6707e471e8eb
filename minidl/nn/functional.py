"""``minidl.nn.functional``: the stateless ops networks are built from, as in PyTorch.

Each name here is defined next to its forward/backward pair in ``minidl/functions/``:
convolution in ``conv.py``, pooling in ``pooling.py``, batch norm in ``batchnorm.py``,
dropout in ``dropout.py``, activations in ``activation.py``, losses in ``loss.py``,
``linear`` in ``linear.py`` and ``pad`` in ``shape.py``.
"""
from ..functions.activation import elu, leaky_relu, log_softmax, relu, sigmoid, softmax, tanh
from ..functions.batchnorm import batch_norm
from ..functions.conv import conv2d
from ..functions.dropout import dropout, dropout2d
from ..functions.indexing import one_hot as one_hot_array
from ..functions.linear import linear
from ..functions.loss import cross_entropy, mse_loss, nll_loss
from ..functions.pooling import adaptive_avg_pool2d, avg_pool2d, max_pool2d
from ..functions.shape import Pad


def pad(input, pad, mode="constant", value=0.0):
    """Pads with a constant; ``pad`` = (left, right, top, bottom, ...) from the last dim back."""
    if mode != "constant":
        raise ValueError(f"unknown padding mode {mode!r}; minidl supports: 'constant'")
    return Pad.apply(input, pad=tuple(pad), value=value)


def flatten(input, start_dim=0, end_dim=-1):
    return input.flatten(start_dim, end_dim)


def one_hot(tensor, num_classes=-1):
    """int64 tensor of shape (*tensor.shape, num_classes) with a 1 at each class index (num_classes=-1:
    the largest index + 1)."""
    from ..tensor import Tensor
    return Tensor._from_array(one_hot_array(tensor.array, num_classes))
