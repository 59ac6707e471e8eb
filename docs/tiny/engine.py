"""A reverse-mode autograd engine in about a hundred lines, built like minidl's.

Every name here is the name of the same thing in minidl, so a reader can move over:

    Tensor.array, .grad, ._ctx, .requires_grad    minidl/tensor.py      (Tensor)
    Function.apply / forward / backward            minidl/autograd.py    (Function)
    Function.inputs, .needs_input_grad             minidl/autograd.py    (Function.apply)
    topological_order, backward                    minidl/autograd.py
    unbroadcast                                    minidl/functions/arithmetic.py
    Add, Mul, MatMul, ReLU, Sum, Exp, Log          minidl/functions/{arithmetic,activation,reduction,elementwise}.py

What minidl adds is listed in docs/autograd.md ("From the tiny engine to minidl").
"""
import numpy as np


class Tensor:
    """An array, plus the Function that made it (``_ctx``; None for a leaf) and, after backward, ``grad``."""

    def __init__(self, array, requires_grad=False):
        self.array = np.asarray(array, dtype=np.float64)
        self.requires_grad = requires_grad
        self.grad = None  # a NumPy array here; a Tensor in minidl
        self._ctx = None

    @property
    def shape(self):
        return self.array.shape

    def __add__(self, other):
        return Add.apply(self, other)

    def __mul__(self, other):
        return Mul.apply(self, other)

    def __matmul__(self, other):
        return MatMul.apply(self, other)

    __radd__, __rmul__ = __add__, __mul__

    def __neg__(self):
        return self * -1.0

    def __sub__(self, other):
        return self + (-other)

    def relu(self):
        return ReLU.apply(self)

    def exp(self):
        return Exp.apply(self)

    def log(self):
        return Log.apply(self)

    def sum(self, axis=None):
        return Sum.apply(self, axis=axis)

    def backward(self):
        """d(self)/d(leaf) into every leaf's ``.grad``; ``self`` must be a scalar, as in minidl."""
        backward(self, np.ones_like(self.array))

    def __repr__(self):
        return f"Tensor({self.array}{', grad_fn=' + type(self._ctx).__name__ if self._ctx else ''})"


class Function:
    """One differentiable op: ``forward`` maps arrays to an array and saves what ``backward`` needs;
    ``backward`` maps dL/d(output) to one dL/d(input) per input (None where none is needed)."""

    @classmethod
    def apply(cls, *inputs, **params):
        fn = cls()
        arrays = [x.array if isinstance(x, Tensor) else x for x in inputs]
        fn.needs_input_grad = tuple(isinstance(x, Tensor) and x.requires_grad for x in inputs)
        output = Tensor(fn.forward(*arrays, **params))
        if any(fn.needs_input_grad):  # record the graph: output -> fn -> inputs
            output.requires_grad, output._ctx, fn.inputs = True, fn, inputs
        return output


def unbroadcast(grad, shape):
    """Sum ``grad`` over the axes along which an input of ``shape`` was broadcast."""
    while grad.ndim > len(shape):
        grad = grad.sum(axis=0)
    for axis, size in enumerate(shape):
        if size == 1 and grad.shape[axis] != 1:
            grad = grad.sum(axis=axis, keepdims=True)
    return grad


class Add(Function):
    def forward(self, a, b):
        self.shapes = np.shape(a), np.shape(b)
        return a + b

    def backward(self, g):  # d(a+b)/da = d(a+b)/db = 1
        return unbroadcast(g, self.shapes[0]), unbroadcast(g, self.shapes[1])


class Mul(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, g):  # d(ab)/da = b, d(ab)/db = a
        return unbroadcast(g * self.b, np.shape(self.a)), unbroadcast(g * self.a, np.shape(self.b))


class MatMul(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return a @ b

    def backward(self, g):  # Y = AB: dA = G B^T, dB = A^T G
        return g @ self.b.T, self.a.T @ g


class ReLU(Function):
    def forward(self, x):
        self.mask = x > 0
        return x * self.mask

    def backward(self, g):
        return g * self.mask


class Exp(Function):
    def forward(self, x):
        self.y = np.exp(x)
        return self.y

    def backward(self, g):
        return g * self.y


class Log(Function):
    def forward(self, x):
        self.x = x
        return np.log(x)

    def backward(self, g):
        return g / self.x


class Sum(Function):
    def forward(self, x, axis=None):
        self.shape, self.axis = x.shape, axis
        return x.sum(axis=axis, keepdims=axis is not None)

    def backward(self, g):  # every input element contributed once: copy g back over the summed axes
        return np.broadcast_to(g, self.shape).copy()


def topological_order(root_fn):
    """Every Function reachable from ``root_fn``, each listed before the Functions that made its inputs."""
    order, visited = [], set()

    def visit(fn):
        if fn in visited:
            return
        visited.add(fn)
        for tensor in fn.inputs:
            if isinstance(tensor, Tensor) and tensor._ctx is not None:
                visit(tensor._ctx)
        order.append(fn)  # after everything it depends on (post-order) ...

    visit(root_fn)
    return reversed(order)  # ... so reversed: consumers first


def backward(root, grad_output):
    """The chain rule over the graph: each Function's backward runs once, with its output's summed gradient."""
    pending = {root._ctx: grad_output}  # Function -> dL/d(its output), summed over its consumers so far
    for fn in topological_order(root._ctx):
        grad = pending.pop(fn)
        input_grads = fn.backward(grad)
        input_grads = input_grads if isinstance(input_grads, tuple) else (input_grads,)
        for tensor, input_grad, needed in zip(fn.inputs, input_grads, fn.needs_input_grad):
            if not needed:
                continue
            if tensor._ctx is None:  # a leaf: accumulate into .grad
                tensor.grad = input_grad if tensor.grad is None else tensor.grad + input_grad
            else:  # an intermediate result: its creator runs later, with the sum
                pending[tensor._ctx] = pending.get(tensor._ctx, 0) + input_grad
