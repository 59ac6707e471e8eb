"""Powers, exponentials and logarithms beyond exp/log/sqrt (which are in elementwise.py):
exp2, expm1, log2, log10, log1p, rsqrt, and erf, the error function.

Backwards: d 2^x = 2^x ln 2, d (e^x - 1) = e^x, d log2 x = 1/(x ln 2), d log10 x = 1/(x ln 10),
d log(1 + x) = 1/(1 + x), d x^(-1/2) = -x^(-3/2)/2, d erf x = 2/sqrt(pi) e^(-x^2).
"""
import math

import numpy as np

from ..autograd import Function
from ..backend import get_array_module


class Exp2(Function):
    """y = 2^x.   dL/dx = g * y * ln 2."""

    def forward(self, x):
        self.y = get_array_module(x).exp2(x)
        return self.y

    def backward(self, g):
        return g * self.y * math.log(2.0)


class Expm1(Function):
    """y = exp(x) - 1 (exact for small x).   dL/dx = g * (y + 1)."""

    def forward(self, x):
        self.y = get_array_module(x).expm1(x)
        return self.y

    def backward(self, g):
        return g * (self.y + 1)


class Log2(Function):
    """y = log2(x).   dL/dx = g / (x ln 2)."""

    def forward(self, x):
        self.x = x
        return get_array_module(x).log2(x)

    def backward(self, g):
        return g / (self.x * math.log(2.0))


class Log10(Function):
    """y = log10(x).   dL/dx = g / (x ln 10)."""

    def forward(self, x):
        self.x = x
        return get_array_module(x).log10(x)

    def backward(self, g):
        return g / (self.x * math.log(10.0))


class Log1p(Function):
    """y = log(1 + x) (exact for small x).   dL/dx = g / (1 + x)."""

    def forward(self, x):
        self.x = x
        return get_array_module(x).log1p(x)

    def backward(self, g):
        return g / (1 + self.x)


class Rsqrt(Function):
    """y = 1 / sqrt(x).   dL/dx = -g * y^3 / 2."""

    def forward(self, x):
        self.y = 1 / get_array_module(x).sqrt(x)
        return self.y

    def backward(self, g):
        return -0.5 * g * self.y * self.y * self.y


# W. J. Cody's rational approximations of erf and erfc ("Rational Chebyshev approximations for the
# error function", Math. Comp. 23, 1969): numerator and denominator coefficients for three ranges of |x|.
_ERF_SMALL = ((3.16112374387056560e00, 1.13864154151050156e02, 3.77485237685302021e02,
               3.20937758913846947e03, 1.85777706184603153e-1),
              (2.36012909523441209e01, 2.44024637934444173e02, 1.28261652607737228e03, 2.84423683343917062e03))
_ERFC_MIDDLE = ((5.64188496988670089e-1, 8.88314979438837594e00, 6.61191906371416295e01, 2.98635138197400131e02,
                 8.81952221241769090e02, 1.71204761263407058e03, 2.05107837782607147e03, 1.23033935479799725e03,
                 2.15311535474403846e-8),
                (1.57449261107098347e01, 1.17693950891312499e02, 5.37181101862009858e02, 1.62138957456669019e03,
                 3.29079923573345963e03, 4.36261909014324716e03, 3.43936767414372164e03, 1.23033935480374942e03))
_ERFC_LARGE = ((3.05326634961232344e-1, 3.60344899949804439e-1, 1.25781726111229246e-1, 1.60837851487422766e-2,
                6.58749161529837803e-4, 1.63153871373020978e-2),
               (2.56852019228982242e00, 1.87295284992346047e00, 5.27905102951428412e-1, 6.05183413124413191e-2,
                2.33520497626869185e-3))


def _rational(t, coefficients):
    """Cody's rational function of t: the numerator's last coefficient leads, the rest follow in order."""
    numerator, denominator = coefficients
    top, bottom = numerator[-1] * t, t
    for a, b in zip(numerator[:len(denominator) - 1], denominator[:-1]):
        top, bottom = (top + a) * t, (bottom + b) * t
    return (top + numerator[len(denominator) - 1]) / (bottom + denominator[-1])


def erf_array(x):
    """erf of an array, to float64's rounding, with elementwise arithmetic only (NumPy has no erf;
    the same code runs on CuPy). Computed in float64, returned in x's dtype.

    |x| <= 0.46875: erf = x R1(x^2).  Beyond, erfc(|x|) = exp(-x^2) R2(|x|) up to 4 and
    exp(-x^2) (1/sqrt(pi) - R3(1/x^2) / x^2) / |x| after, and erf = 1 - erfc (odd in x).
    exp(-x^2) is exp(-s^2) exp(-(|x| - s)(|x| + s)) with s = |x| rounded down to 1/16, so that
    no rounding error of x^2 is magnified."""
    xp = get_array_module(x)
    y = xp.abs(x.astype(xp.float64))
    with np.errstate(invalid="ignore", over="ignore"):  # inf/inf in the branch an infinite x does not take
        small = y * _rational(y * y, _ERF_SMALL)
    middle = _rational(xp.clip(y, 0.46875, 4.0), _ERFC_MIDDLE)
    far = xp.maximum(y, 4.0)
    large = (1 / math.sqrt(math.pi) - _rational(1 / (far * far), _ERFC_LARGE) / (far * far)) / far
    near = xp.minimum(y, 27.0)  # exp(-27^2) is already 0 in float64
    s = xp.trunc(near * 16) / 16
    erfc = xp.exp(-s * s) * xp.exp(-(near - s) * (near + s)) * xp.where(y <= 4.0, middle, large)
    magnitude = xp.where(y <= 0.46875, small, (0.5 - erfc) + 0.5)
    return (xp.sign(x) * magnitude).astype(x.dtype, copy=False)


class Erf(Function):
    """y = erf(x) = 2/sqrt(pi) * integral of exp(-t^2) from 0 to x.   dL/dx = g * 2/sqrt(pi) * exp(-x^2)."""

    def forward(self, x):
        self.x = x
        return erf_array(x)

    def backward(self, g):
        return g * (2 / math.sqrt(math.pi)) * get_array_module(g).exp(-self.x * self.x)
