"""Adding two activation-sized arrays on the CPU with every core: the residual add and the gradient sum.

Where a ResNet block's branch meets its shortcut, forward adds two activations and backward adds
the two gradients that reach the block's input.  NumPy runs each ``a + b`` on one core; here the
leading axis is split across the CPU's threads (``threads.add``).
"""
import numpy as np

from ...autograd import add_gradients
from ...functions.arithmetic import Add
from ...memory_formats import preserve_format
from ..registry import register, register_function
from . import threads


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


@register_function(add_gradients, "cpu")
def add_gradients_threaded(a, b):
    return threads.add(a, b)
