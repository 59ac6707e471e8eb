"""Adding two activation-sized arrays on the CPU with every core: the residual add, the gradient sum,
and the residual join relu(a + b).

Where a ResNet block's branch meets its shortcut, forward adds two activations and backward adds
the two gradients that reach the block's input.  NumPy runs each ``a + b`` on one core; here the
leading axis is split across the CPU's threads (``threads.add``).  minidl's blocks ask for the join
and the ReLU after it as one op (``functions/fused.py``'s AddReLU): one numba pass writes
max(a + b, 0) and the mask a + b > 0, and backward masks g in one pass (``kernels.add_relu``,
``kernels.relu_grad``).
"""
import numpy as np

from ...autograd import add_gradients
from ...functions.arithmetic import Add
from ...functions.fused import AddReLU
from ...memory_formats import preserve_format
from ..registry import register, register_function
from . import kernels, threads


@register(Add, "cpu")
class AddThreaded(Add):
    """a + b for two arrays of one shape and dtype (no broadcasting, so no gradient to sum down)."""

    output_memory_format = preserve_format  # threads.add writes the sum in a's memory order

    @classmethod
    def supports(cls, inputs, params):
        a, b = (getattr(value, "array", value) for value in inputs)
        return (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.shape == b.shape
                and a.dtype == b.dtype)

    def forward(self, a, b):
        self.shapes = a.shape, b.shape
        return threads.add(a, b)


@register(AddReLU, "cpu")
class AddReLUThreaded(AddReLU):
    """The same y = max(a + b, 0) and gradients as AddReLU, each in one threaded pass, for float
    arrays of one shape and dtype."""

    output_memory_format = preserve_format  # y is written in a's memory order

    @classmethod
    def supports(cls, inputs, params):
        a, b = (getattr(value, "array", value) for value in inputs)
        return (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.shape == b.shape
                and a.dtype == b.dtype and a.dtype in (np.float32, np.float64))

    def forward(self, a, b):
        fused = kernels.add_relu(a, b)
        if fused is None:  # a and b lie in memory differently: add into a's order, then the ReLU pass
            fused = kernels.relu(threads.add(a, b))
        y, positive = fused
        if self.recording:
            self.positive = positive
        return y

    def backward(self, g):
        grad = kernels.relu_grad(g, self.positive)  # None when g and the mask lie in memory differently
        if grad is None:
            grad = np.where(self.positive, g, 0).astype(g.dtype, copy=False)
        return grad, grad


@register_function(add_gradients, "cpu")
def add_gradients_threaded(a, b):
    return threads.add(a, b)
