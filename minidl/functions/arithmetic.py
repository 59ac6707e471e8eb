"""Arithmetic with broadcasting: + - * / ** @ and unary minus.

When an input was broadcast in the forward pass (a bias of shape (C,) added to
(N, C)), each of its elements influenced many outputs, so its gradient is the
*sum* of the output gradient over the broadcast axes: ``unbroadcast``.
"""
import numpy as np

from .. import amp
from ..autograd import Function
from ..backend import get_array_module


def unbroadcast(grad, shape):
    """Sum ``grad`` down to ``shape``, undoing NumPy broadcasting."""
    if grad.shape == tuple(shape):
        return grad
    extra_leading = grad.ndim - len(shape)
    axes = tuple(range(extra_leading)) + tuple(
        extra_leading + i for i, size in enumerate(shape) if size == 1 and grad.shape[extra_leading + i] != 1
    )
    return grad.sum(axis=axes, keepdims=True).reshape(shape) if axes else grad.reshape(shape)


def _shape(x):
    return getattr(x, "shape", ())


class Add(Function):
    """y = a + b.   dL/da = unbroadcast(g),  dL/db = unbroadcast(g)."""

    def forward(self, a, b):
        self.shapes = _shape(a), _shape(b)
        return a + b

    def backward(self, g):
        grad_a = unbroadcast(g, self.shapes[0]) if self.needs_input_grad[0] else None
        grad_b = unbroadcast(g, self.shapes[1]) if self.needs_input_grad[1] else None
        return grad_a, grad_b


class Sub(Function):
    """y = a - b.   dL/da = g,  dL/db = -g  (each unbroadcast)."""

    def forward(self, a, b):
        self.shapes = _shape(a), _shape(b)
        return a - b

    def backward(self, g):
        grad_b = -unbroadcast(g, self.shapes[1]) if self.needs_input_grad[1] else None
        return unbroadcast(g, self.shapes[0]), grad_b


class Mul(Function):
    """y = a * b.   dL/da = g * b,  dL/db = g * a  (each unbroadcast)."""

    def forward(self, a, b):
        self.shapes = _shape(a), _shape(b)
        # each gradient needs only the other input: keep just what will be used
        self.a = a if self.needs_input_grad[1] else None
        self.b = b if self.needs_input_grad[0] else None
        return a * b

    def backward(self, g):
        grad_a = unbroadcast(g * self.b, self.shapes[0]) if self.needs_input_grad[0] else None
        grad_b = unbroadcast(g * self.a, self.shapes[1]) if self.needs_input_grad[1] else None
        return grad_a, grad_b


class Div(Function):
    """y = a / b.   dL/da = g / b,  dL/db = -g * a / b**2."""

    def forward(self, a, b):
        self.shapes = _shape(a), _shape(b)
        self.a = a if self.needs_input_grad[1] else None  # only dL/db needs a
        self.b = b
        return a / b

    def backward(self, g):
        grad_a = unbroadcast(g / self.b, self.shapes[0]) if self.needs_input_grad[0] else None
        grad_b = unbroadcast(-g * self.a / (self.b * self.b), self.shapes[1]) if self.needs_input_grad[1] else None
        return grad_a, grad_b


class Neg(Function):
    """y = -x.   dL/dx = -g."""

    def forward(self, x):
        return -x

    def backward(self, g):
        return -g


class Pow(Function):
    """y = a ** b.   dL/da = g * b * a**(b-1),  dL/db = g * y * log(a).

    As in PyTorch, dL/da is 0 where b == 0 (not 0 * inf at a = 0), and dL/db is 0
    where a == 0 and b >= 0 (the limit of y * log(a)).
    """

    def forward(self, a, b):
        self.a, self.b = a, b
        self.y = a ** b
        return self.y

    def backward(self, g):
        xp = get_array_module(g)
        grad_a = grad_b = None
        a, b = xp.asarray(self.a), xp.asarray(self.b)
        if self.needs_input_grad[0]:
            with np.errstate(divide="ignore", invalid="ignore"):  # NumPy's warnings only (CuPy has no errstate)
                local = xp.where(b == 0, 0, b * a ** (b - 1)).astype(g.dtype, copy=False)
            grad_a = unbroadcast(g * local, _shape(self.a))
        if self.needs_input_grad[1]:
            with np.errstate(divide="ignore", invalid="ignore"):  # NumPy's warnings only (CuPy has no errstate)
                local = xp.where((a == 0) & (b >= 0), 0, self.y * xp.log(a)).astype(g.dtype, copy=False)
            grad_b = unbroadcast(g * local, _shape(self.b))
        return grad_a, grad_b


class MatMul(Function):
    """y = a @ b (batched, broadcasting over leading dims).

    dL/da = g @ b^T,  dL/db = a^T @ g, with 1-d operands treated as a row
    (for a) or a column (for b) vector, as in NumPy.  Under ``minidl.amp.autocast``
    the products run in bf16/fp16 with float32 accumulation.
    """

    def forward(self, a, b):
        self.compute_dtype = amp.autocast_dtype()
        self.a_shape, self.b_shape = a.shape, b.shape
        self.a = a if self.needs_input_grad[1] else None  # dL/db needs only a
        self.b = b if self.needs_input_grad[0] else None  # dL/da needs only b
        return amp.matmul(a, b, self.compute_dtype)

    def backward(self, g):
        a_is_vector, b_is_vector = len(self.a_shape) == 1, len(self.b_shape) == 1
        if b_is_vector:  # put back the axes the 1-d operands dropped from the output
            g = g[..., None]
        if a_is_vector:
            g = g[..., None, :]
        grad_a = grad_b = None
        if self.needs_input_grad[0]:
            b = self.b[:, None] if b_is_vector else self.b
            a_matrix_shape = (1,) + self.a_shape if a_is_vector else self.a_shape
            grad_a = unbroadcast(amp.matmul(g, b.swapaxes(-1, -2), self.compute_dtype), a_matrix_shape).reshape(self.a_shape)
        if self.needs_input_grad[1]:
            a = self.a[None, :] if a_is_vector else self.a
            b_matrix_shape = self.b_shape + (1,) if b_is_vector else self.b_shape
            grad_b = unbroadcast(amp.matmul(a.swapaxes(-1, -2), g, self.compute_dtype), b_matrix_shape).reshape(self.b_shape)
        return grad_a, grad_b
