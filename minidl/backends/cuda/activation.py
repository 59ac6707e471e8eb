"""The residual join relu(a + b) in one pass on the GPU (kernels/relu.cu), where a model asks for it
(``functions.fused.add_relu``; minidl's ResNet blocks do).

    y = max(a + b, 0)          one read of a and b, one write of y (unfused: two passes and a temporary)
    dL/da = dL/db = g where y > 0, else 0   (from y, which the next layer keeps anyway)
"""
from ...functions.fused import AddReLU
from ..registry import register
from .launch import i64, is_float_array, launch


def add_relu_forward(a, b):
    """kernels/relu.cu add_relu_forward: y = max(a + b, 0) elementwise."""
    import cupy
    a, b = cupy.ascontiguousarray(a), cupy.ascontiguousarray(b)
    y = cupy.empty_like(a)
    launch("relu.cu", "add_relu_forward", (a, b, y, i64(y.size)), y.size, y.dtype)
    return y


def relu_backward(g, y):
    """kernels/relu.cu relu_backward: dx = g where y > 0, else 0."""
    import cupy
    g = cupy.ascontiguousarray(g)
    dx = cupy.empty_like(g)
    launch("relu.cu", "relu_backward", (g, y, dx, i64(dx.size)), dx.size, dx.dtype)
    return dx


@register(AddReLU, "cuda")
class AddReLUCuda(AddReLU):
    """relu(a + b) with the kernels above."""

    @classmethod
    def supports(cls, inputs, params):
        a, b = (getattr(v, "array", v) for v in inputs)
        return is_float_array(a) and getattr(b, "dtype", None) == a.dtype and b.shape == a.shape

    def forward(self, a, b):
        y = add_relu_forward(a, b)
        if self.recording:
            self.y = y
        return y

    def backward(self, g):
        grad = relu_backward(g, self.y)
        return grad, grad
