"""Smooth activations: gelu, silu, mish, softplus, logsigmoid, selu, celu, softsign.

Each is pointwise, y = f(x), so each backward is dL/dx = g * f'(x); the docstrings give f'.
A forward keeps only what its slope needs (usually x itself).  Where a formula could overflow
(exp of a large number), it is rewritten in a stable form, noted next to it.
"""
import math

from ..autograd import Function
from ..backend import get_array_module
from ..errors import UnsupportedDTypeError
from .exp_log import erf_array as erf

SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
GELU_TANH_CUBIC = 0.044715
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def _sigmoid(xp, x):
    """1 / (1 + exp(-x)) without overflow: exp(min(x, 0)) / (1 + exp(-|x|))."""
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1 / (1 + e), e / (1 + e))


def _softplus(xp, x):
    """log(1 + exp(x)) without overflow: max(x, 0) + log1p(exp(-|x|))."""
    return xp.maximum(x, 0) + xp.log1p(xp.exp(-xp.abs(x)))


class GELU(Function):
    """y = x * Phi(x), Phi the standard normal CDF = (1 + erf(x / sqrt(2))) / 2.

    dy/dx = Phi(x) + x * phi(x), phi(x) = exp(-x^2 / 2) / sqrt(2 pi).
    With approximate='tanh': y = x/2 * (1 + tanh(u)), u = sqrt(2/pi) * (x + 0.044715 x^3), and
    dy/dx = (1 + t)/2 + x/2 * (1 - t^2) * sqrt(2/pi) * (1 + 3 * 0.044715 x^2), t = tanh(u).
    """

    def forward(self, x, approximate="none"):
        xp = get_array_module(x)
        self.x, self.approximate = x, approximate
        if approximate == "tanh":
            self.t = xp.tanh(SQRT_2_OVER_PI * (x + GELU_TANH_CUBIC * x ** 3))
            return 0.5 * x * (1 + self.t)
        return 0.5 * x * (1 + erf(x * (1 / math.sqrt(2.0))))

    def backward(self, g):
        xp = get_array_module(g)
        x = self.x
        if self.approximate == "tanh":
            t = self.t
            du_dx = SQRT_2_OVER_PI * (1 + 3 * GELU_TANH_CUBIC * x * x)
            return g * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * du_dx)
        cdf = 0.5 * (1 + erf(x * (1 / math.sqrt(2.0))))
        pdf = xp.exp(-0.5 * x * x) * (1 / math.sqrt(2 * math.pi))
        return g * (cdf + x * pdf)


class SiLU(Function):
    """y = x * sigmoid(x) (also called swish).   dy/dx = s * (1 + x * (1 - s)), s = sigmoid(x)."""

    def forward(self, x):
        xp = get_array_module(x)
        self.x, self.s = x, _sigmoid(xp, x)
        return x * self.s

    def backward(self, g):
        s = self.s
        return g * (s * (1 + self.x * (1 - s)))


class Mish(Function):
    """y = x * tanh(softplus(x)).

    dy/dx = tanh(sp) + x * sigmoid(x) * (1 - tanh(sp)^2)   (since softplus' = sigmoid).
    """

    def forward(self, x):
        xp = get_array_module(x)
        self.x, self.t = x, xp.tanh(_softplus(xp, x))
        return x * self.t

    def backward(self, g):
        xp = get_array_module(g)
        t = self.t
        return g * (t + self.x * _sigmoid(xp, self.x) * (1 - t * t))


class Softplus(Function):
    """y = log(1 + exp(beta x)) / beta, and y = x where beta x > threshold (PyTorch's linear regime).

    dy/dx = sigmoid(beta x), and 1 in the linear regime.
    """

    def forward(self, x, beta=1.0, threshold=20.0):
        xp = get_array_module(x)
        scaled = x * beta
        self.scaled, self.linear = scaled, scaled > threshold
        return xp.where(self.linear, x, _softplus(xp, scaled) / beta)

    def backward(self, g):
        xp = get_array_module(g)
        return g * xp.where(self.linear, 1, _sigmoid(xp, self.scaled))


class LogSigmoid(Function):
    """y = log(sigmoid(x)) = -softplus(-x) = min(x, 0) - log1p(exp(-|x|)).

    dy/dx = 1 - sigmoid(x) = sigmoid(-x).
    """

    def forward(self, x):
        xp = get_array_module(x)
        self.x = x
        return xp.minimum(x, 0) - xp.log1p(xp.exp(-xp.abs(x)))

    def backward(self, g):
        xp = get_array_module(g)
        return g * _sigmoid(xp, -self.x)


class CELU(Function):
    """y = x if x > 0 else alpha * (exp(x / alpha) - 1).   dy/dx = 1 if x > 0 else exp(x / alpha).

    SELU is scale * CELU with alpha = 1.67326... (CELU with alpha a equals ELU with alpha a when a = 1)."""

    def forward(self, x, alpha=1.0, scale=1.0):
        xp = get_array_module(x)
        self.x, self.alpha, self.scale = x, alpha, scale
        return scale * xp.where(x > 0, x, alpha * xp.expm1(xp.minimum(x, 0) / alpha))  # min: no overflow in the unused branch

    def backward(self, g):
        xp = get_array_module(g)
        return g * (self.scale * xp.where(self.x > 0, 1, xp.exp(xp.minimum(self.x, 0) / self.alpha)))


class SELU(CELU):
    """y = scale * (x if x > 0 else alpha * (exp(x) - 1)), alpha = 1.6733, scale = 1.0507.

    dy/dx = scale if x > 0 else scale * alpha * exp(x)."""

    def forward(self, x):
        xp = get_array_module(x)
        self.x = x
        return SELU_SCALE * xp.where(x > 0, x, SELU_ALPHA * xp.expm1(xp.minimum(x, 0)))

    def backward(self, g):
        xp = get_array_module(g)
        return g * xp.where(self.x > 0, SELU_SCALE, (SELU_SCALE * SELU_ALPHA) * xp.exp(xp.minimum(self.x, 0)))


class Softsign(Function):
    """y = x / (1 + |x|).   dy/dx = 1 / (1 + |x|)^2."""

    def forward(self, x):
        xp = get_array_module(x)
        self.denominator = 1 + xp.abs(x)
        return x / self.denominator

    def backward(self, g):
        return g / (self.denominator * self.denominator)


def _check_floating(name, input):
    if input.dtype.kind != "f":
        raise UnsupportedDTypeError(f"{name}: expected a floating-point input, got {input.dtype} "
                           f"(convert it with .float())")


def gelu(input, approximate="none"):
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    _check_floating("gelu", input)
    return GELU.apply(input, approximate=approximate)


def silu(input, inplace=False):
    _check_floating("silu", input)
    return SiLU.apply(input)


def mish(input, inplace=False):
    _check_floating("mish", input)
    return Mish.apply(input)


def softplus(input, beta=1.0, threshold=20.0):
    _check_floating("softplus", input)
    return Softplus.apply(input, beta=beta, threshold=threshold)


def logsigmoid(input):
    _check_floating("logsigmoid", input)
    return LogSigmoid.apply(input)


def celu(input, alpha=1.0, inplace=False):
    if alpha == 0:
        raise ValueError("celu: alpha must not be 0 (it divides x)")
    _check_floating("celu", input)
    return CELU.apply(input, alpha=alpha)


def selu(input, inplace=False):
    _check_floating("selu", input)
    return SELU.apply(input)


def softsign(input):
    _check_floating("softsign", input)
    return Softsign.apply(input)
