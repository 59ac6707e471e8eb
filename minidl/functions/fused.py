"""Ops that a device backend may run as one: relu(batch_norm(x)), relu(a + b) and relu(batch_norm(x) + r).

Each fused op is, by definition, the composition of two reference ops, and its reference
implementation below is exactly that composition.  Fusing saves passes over memory: the CUDA
backend registers kernels for both, and the CPU backend registers both for float NumPy arrays
(BatchNormReLU for channels-last input, where its batch norm runs on rows:
``backends/cpu/batchnorm.py``; AddReLU in ``backends/cpu/add.py``).  Where no device registered one,
the composition would only hide a faster unfused path (the CPU's BatchNorm on other layouts, say),
so ``batch_norm_relu`` and ``add_relu`` take the fused op only where the device registered a fast
implementation that supports the call (``Function.has_fast_implementation``), and otherwise call
the two ops.  Models opt in by calling these functionals (minidl's ResNet blocks do); their
parameters and state_dict keys do not change.
"""
from ..autograd import Function
from ..backend import get_array_module
from .activation import relu
from .batchnorm import BatchNorm, _array, _check_arguments, batch_norm


class BatchNormReLU(BatchNorm):
    """y = max(batch_norm(x), 0).

    Backward: g' = g where y > 0, else 0, then BatchNorm's backward of g'
    (dL/db = sum g', dL/dw = sum g' * xhat, dL/dx from the closed form).
    """

    def forward(self, x, weight=None, bias=None, running_mean=None, running_var=None, training=False,
                momentum=0.1, eps=1e-5):
        return _relu_in_place(self, super().forward(x, weight, bias, running_mean, running_var, training, momentum,
                                                    eps))

    def backward(self, g):
        return super().backward(_where_positive(self, g))


class AddReLU(Function):
    """y = max(a + b, 0) for a and b of one shape and dtype (a residual block's join).

    dL/da = dL/db = g where y > 0, else 0 (one array, returned for both).
    """

    def forward(self, a, b):
        return _relu_in_place(self, a + b)

    def backward(self, g):
        grad = _where_positive(self, g)
        return grad, grad


class BatchNormAddReLU(BatchNorm):
    """y = max(batch_norm(x) + r, 0): a residual block's last batch norm and its join, inputs (x, weight, bias, r).

    Backward: g' = g where y > 0, else 0; dL/dr = g', and BatchNorm's backward of g' for x, weight and bias.
    """

    def forward(self, x, weight=None, bias=None, residual=None, running_mean=None, running_var=None, training=False,
                momentum=0.1, eps=1e-5):
        y = super().forward(x, weight, bias, running_mean, running_var, training, momentum, eps)
        y += residual
        return _relu_in_place(self, y)

    def backward(self, g):
        g = _where_positive(self, g)
        return (*super().backward(g), g if self.needs_input_grad[3] else None)


def _relu_in_place(fn, y):
    """max(y, 0) in y's memory (a new array of the op's), kept on ``fn`` for its backward."""
    get_array_module(y).maximum(y, 0, out=y)
    if fn.recording:
        fn.y = y
    return y


def _where_positive(fn, g):
    """g where ``fn``'s output is positive, else 0: ReLU's gradient (0 at the kink, as PyTorch's)."""
    return get_array_module(g).where(fn.y > 0, g, 0).astype(g.dtype, copy=False)


def batch_norm_relu(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1,
                    eps=1e-5):
    """``relu(batch_norm(input, ...))``, one fused op where the device has one (arguments as ``batch_norm``)."""
    _check_arguments(input, running_mean, running_var, weight, bias, training, momentum)
    inputs = (input, weight, bias)
    params = dict(running_mean=_array(running_mean), running_var=_array(running_var), training=training,
                  momentum=momentum, eps=eps)
    if not BatchNormReLU.has_fast_implementation(inputs, params):
        return relu(batch_norm(input, running_mean, running_var, weight, bias, training, momentum, eps))
    return BatchNormReLU.apply(*inputs, **params)


def add_relu(a, b):
    """``relu(a + b)``, one fused op where the device has one and a, b share shape and dtype."""
    if a.shape != b.shape or a.dtype != b.dtype or not AddReLU.has_fast_implementation((a, b), {}):
        return relu(a + b)
    return AddReLU.apply(a, b)


def batch_norm_add_relu(input, residual, running_mean, running_var, weight=None, bias=None, training=False,
                        momentum=0.1, eps=1e-5):
    """``relu(batch_norm(input, ...) + residual)``, one fused op where the device has one (arguments as
    ``batch_norm``; ``residual`` of input's shape and dtype)."""
    _check_arguments(input, running_mean, running_var, weight, bias, training, momentum)
    inputs = (input, weight, bias, residual)
    params = dict(running_mean=_array(running_mean), running_var=_array(running_var), training=training,
                  momentum=momentum, eps=eps)
    if residual.shape != input.shape or residual.dtype != input.dtype \
            or not BatchNormAddReLU.has_fast_implementation(inputs, params):
        return add_relu(batch_norm(input, running_mean, running_var, weight, bias, training, momentum, eps), residual)
    return BatchNormAddReLU.apply(*inputs, **params)
