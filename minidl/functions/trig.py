"""Trigonometric and hyperbolic functions and their inverses, elementwise.

Each backward is the output gradient times the derivative at x (or at y where that is cheaper):
sin' = cos, cos' = -sin, tan' = 1 + tan^2, asin' = 1/sqrt(1 - x^2), acos' = -1/sqrt(1 - x^2),
atan' = 1/(1 + x^2), sinh' = cosh, cosh' = sinh, asinh' = 1/sqrt(x^2 + 1), acosh' = 1/sqrt(x^2 - 1),
atanh' = 1/(1 - x^2). (tanh is in elementwise.py.)
"""
from ..autograd import Function
from ..backend import get_array_module
from .arithmetic import unbroadcast


class Sin(Function):
    """y = sin(x).   dL/dx = g * cos(x)."""

    def forward(self, x):
        self.x = x
        return get_array_module(x).sin(x)

    def backward(self, g):
        return g * get_array_module(g).cos(self.x)


class Cos(Function):
    """y = cos(x).   dL/dx = -g * sin(x)."""

    def forward(self, x):
        self.x = x
        return get_array_module(x).cos(x)

    def backward(self, g):
        return -g * get_array_module(g).sin(self.x)


class Tan(Function):
    """y = tan(x).   dL/dx = g * (1 + y^2)."""

    def forward(self, x):
        self.y = get_array_module(x).tan(x)
        return self.y

    def backward(self, g):
        return g * (1 + self.y * self.y)


class Asin(Function):
    """y = asin(x).   dL/dx = g / sqrt(1 - x^2)."""

    def forward(self, x):
        self.x = x
        return get_array_module(x).arcsin(x)

    def backward(self, g):
        return g / get_array_module(g).sqrt(1 - self.x * self.x)


class Acos(Function):
    """y = acos(x).   dL/dx = -g / sqrt(1 - x^2)."""

    def forward(self, x):
        self.x = x
        return get_array_module(x).arccos(x)

    def backward(self, g):
        return -g / get_array_module(g).sqrt(1 - self.x * self.x)


class Atan(Function):
    """y = atan(x).   dL/dx = g / (1 + x^2)."""

    def forward(self, x):
        self.x = x
        return get_array_module(x).arctan(x)

    def backward(self, g):
        return g / (1 + self.x * self.x)


class Atan2(Function):
    """y = atan2(a, b), the angle of the point (b, a).

    dL/da = g * b / (a^2 + b^2),  dL/db = -g * a / (a^2 + b^2)  (each unbroadcast).
    """

    def forward(self, a, b):
        self.a, self.b = a, b
        return get_array_module(a).arctan2(a, b)

    def backward(self, g):
        scale = g / (self.a * self.a + self.b * self.b)
        grad_a = unbroadcast(scale * self.b, self.a.shape) if self.needs_input_grad[0] else None
        grad_b = unbroadcast(-scale * self.a, self.b.shape) if self.needs_input_grad[1] else None
        return grad_a, grad_b


class Sinh(Function):
    """y = sinh(x).   dL/dx = g * cosh(x)."""

    def forward(self, x):
        self.x = x
        return get_array_module(x).sinh(x)

    def backward(self, g):
        return g * get_array_module(g).cosh(self.x)


class Cosh(Function):
    """y = cosh(x).   dL/dx = g * sinh(x)."""

    def forward(self, x):
        self.x = x
        return get_array_module(x).cosh(x)

    def backward(self, g):
        return g * get_array_module(g).sinh(self.x)


class Asinh(Function):
    """y = asinh(x).   dL/dx = g / sqrt(x^2 + 1)."""

    def forward(self, x):
        self.x = x
        return get_array_module(x).arcsinh(x)

    def backward(self, g):
        return g / get_array_module(g).sqrt(self.x * self.x + 1)


class Acosh(Function):
    """y = acosh(x), x >= 1.   dL/dx = g / sqrt(x^2 - 1)."""

    def forward(self, x):
        self.x = x
        return get_array_module(x).arccosh(x)

    def backward(self, g):
        return g / get_array_module(g).sqrt(self.x * self.x - 1)


class Atanh(Function):
    """y = atanh(x), |x| < 1.   dL/dx = g / (1 - x^2)."""

    def forward(self, x):
        self.x = x
        return get_array_module(x).arctanh(x)

    def backward(self, g):
        return g / (1 - self.x * self.x)
