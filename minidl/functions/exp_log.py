"""Powers, exponentials and logarithms beyond exp/log/sqrt (which are in elementwise.py):
exp2, expm1, log2, log10, log1p, rsqrt, and erf, the error function.

Backwards: d 2^x = 2^x ln 2, d (e^x - 1) = e^x, d log2 x = 1/(x ln 2), d log10 x = 1/(x ln 10),
d log(1 + x) = 1/(1 + x), d x^(-1/2) = -x^(-3/2)/2, d erf x = 2/sqrt(pi) e^(-x^2).
"""
import math

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


def erf_array(x):
    """erf of an array: CuPy's on a GPU; on the CPU, math.erf (correctly rounded to float64) in a
    numba-compiled loop, since NumPy has no erf."""
    xp = get_array_module(x)
    if xp.__name__ == "cupy":
        import cupyx.scipy.special
        return cupyx.scipy.special.erf(x)
    return _erf_cpu(x)


def _erf_cpu(x):
    global _erf_ufunc
    if _erf_ufunc is None:
        import numba

        @numba.vectorize(["float32(float32)", "float64(float64)"], cache=True)
        def erf(value):
            return math.erf(value)

        _erf_ufunc = erf
    if x.dtype.itemsize < 4:  # float16: computed in float32
        return _erf_ufunc(x.astype("float32")).astype(x.dtype)
    return _erf_ufunc(x)


_erf_ufunc = None  # compiled on first use


class Erf(Function):
    """y = erf(x) = 2/sqrt(pi) * integral of exp(-t^2) from 0 to x.   dL/dx = g * 2/sqrt(pi) * exp(-x^2)."""

    def forward(self, x):
        self.x = x
        return erf_array(x)

    def backward(self, g):
        return g * (2 / math.sqrt(math.pi)) * get_array_module(g).exp(-self.x * self.x)
