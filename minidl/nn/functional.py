"""``minidl.nn.functional``: the stateless ops networks are built from, as in PyTorch.

Each name here is defined next to its forward/backward pair in ``minidl/functions/``:
convolution in ``conv.py``, ``conv1d.py`` and ``conv_transpose.py``, pooling in ``pooling.py`` and
``unpooling.py``, resizing in ``interpolate.py``, batch norm in ``batchnorm.py``,
dropout in ``dropout.py``, activations in ``activation.py``, ``smooth_activation.py`` and
``piecewise_activation.py``, losses in ``loss.py``, ``linear`` in ``linear.py``, ``normalize`` in
``normalize.py`` and ``pad`` in ``padding.py``; ``batch_norm_relu``, ``add_relu`` and ``batch_norm_add_relu``
(relu(batch_norm(x)), relu(a + b) and relu(batch_norm(x) + r), fused into one op where a device backend can)
in ``fused.py``.
"""
from ..functions.activation import elu, leaky_relu, log_softmax, relu, sigmoid, softmax, tanh
from ..functions.batchnorm import batch_norm
from ..functions.conv import conv2d
from ..functions.conv1d import conv1d
from ..functions.conv_transpose import conv_transpose2d
from ..functions.dropout import dropout, dropout2d
from ..functions.fused import add_relu, batch_norm_add_relu, batch_norm_relu
from ..functions.indexing import one_hot as one_hot_array
from ..functions.interpolate import interpolate
from ..functions.linear import linear
from ..functions.loss import (binary_cross_entropy, binary_cross_entropy_with_logits, cross_entropy, mse_loss,
                              nll_loss)
from ..functions.normalize import normalize
from ..functions.padding import pad
from ..functions.piecewise_activation import hardsigmoid, hardswish, hardtanh, relu6
from ..functions.pooling import adaptive_avg_pool2d, avg_pool2d, max_pool2d
from ..functions.smooth_activation import celu, gelu, logsigmoid, mish, selu, silu, softplus, softsign
from ..functions.unpooling import max_unpool2d


def flatten(input, start_dim=0, end_dim=-1):
    return input.flatten(start_dim, end_dim)


def one_hot(tensor, num_classes=-1):
    """int64 tensor of shape (*tensor.shape, num_classes) with a 1 at each class index (num_classes=-1:
    the largest index + 1)."""
    from ..tensor import Tensor
    return Tensor._from_array(one_hot_array(tensor.array, num_classes))
