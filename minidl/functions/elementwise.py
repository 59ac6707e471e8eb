"""Elementwise math: exp, log, sqrt, tanh, sigmoid, abs, clamp, where.

Each output element depends on one input element, so every backward is the
output gradient times the local derivative f'(x), computed elementwise.
"""
from ..autograd import Function
from ..backend import get_array_module
from .arithmetic import unbroadcast


class Exp(Function):
    """y = exp(x).   dL/dx = g * y."""

    def forward(self, x):
        self.y = get_array_module(x).exp(x)
        return self.y

    def backward(self, g):
        return g * self.y


class Log(Function):
    """y = log(x).   dL/dx = g / x."""

    def forward(self, x):
        self.x = x
        return get_array_module(x).log(x)

    def backward(self, g):
        return g / self.x


class Sqrt(Function):
    """y = sqrt(x).   dL/dx = g / (2 y)."""

    def forward(self, x):
        self.y = get_array_module(x).sqrt(x)
        return self.y

    def backward(self, g):
        return g / (2 * self.y)


class Tanh(Function):
    """y = tanh(x).   dL/dx = g * (1 - y^2)."""

    def forward(self, x):
        self.y = get_array_module(x).tanh(x)
        return self.y

    def backward(self, g):
        return g * (1 - self.y * self.y)


class Sigmoid(Function):
    """y = 1 / (1 + exp(-x)).   dL/dx = g * y * (1 - y)."""

    def forward(self, x):
        xp = get_array_module(x)
        # e = exp(-|x|) is in (0, 1]: no overflow, and for x < 0 the form e / (1 + e) keeps full
        # relative precision where 1 / (1 + exp(-x)) or (tanh(x/2) + 1) / 2 would cancel to 0
        e = xp.exp(-abs(x))
        self.y = xp.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)
        return self.y

    def backward(self, g):
        return g * self.y * (1 - self.y)


class Abs(Function):
    """y = |x|.   dL/dx = g * sign(x)  (0 at x = 0, as PyTorch)."""

    def forward(self, x):
        self.x = x
        return abs(x)

    def backward(self, g):
        return g * get_array_module(g).sign(self.x)


class Clamp(Function):
    """y = min(max(x, lo), hi).   dL/dx = g where lo <= x <= hi, else 0."""

    def forward(self, x, min=None, max=None):
        xp = get_array_module(x)
        self.inside = xp.ones(x.shape, dtype=bool)
        y = x
        if min is not None:
            self.inside &= x >= min
            y = xp.maximum(y, xp.asarray(min, dtype=x.dtype))
        if max is not None:
            self.inside &= x <= max
            y = xp.minimum(y, xp.asarray(max, dtype=x.dtype))
        return y if y is not x else x.copy()

    def backward(self, g):
        return g * self.inside


class Where(Function):
    """y = a where condition else b (broadcasting all three).

    dL/da = g where condition, 0 elsewhere;  dL/db = g where not condition, 0 elsewhere
    (each unbroadcast to its input's shape).
    """

    def forward(self, a, b, condition=None):
        self.condition, self.shapes = condition, (a.shape, b.shape)
        return get_array_module(a).where(condition, a, b)

    def backward(self, g):
        xp = get_array_module(g)
        zero = xp.zeros((), dtype=g.dtype)
        grad_a = unbroadcast(xp.where(self.condition, g, zero), self.shapes[0]) if self.needs_input_grad[0] else None
        grad_b = unbroadcast(xp.where(self.condition, zero, g), self.shapes[1]) if self.needs_input_grad[1] else None
        return grad_a, grad_b
