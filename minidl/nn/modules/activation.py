"""Activation layers.  ``inplace=`` is accepted for PyTorch compatibility and ignored:
minidl's activations always return a new tensor."""
from .. import functional as F
from .module import Module


class ReLU(Module):
    """max(x, 0)."""

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = inplace

    def forward(self, input):
        return F.relu(input)

    def extra_repr(self):
        return "inplace=True" if self.inplace else ""


class LeakyReLU(Module):
    """x if x > 0 else negative_slope * x."""

    def __init__(self, negative_slope=0.01, inplace=False):
        super().__init__()
        self.negative_slope, self.inplace = negative_slope, inplace

    def forward(self, input):
        return F.leaky_relu(input, self.negative_slope)

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}" + (", inplace=True" if self.inplace else "")


class ELU(Module):
    """x if x > 0 else alpha * (exp(x) - 1)."""

    def __init__(self, alpha=1.0, inplace=False):
        super().__init__()
        self.alpha, self.inplace = alpha, inplace

    def forward(self, input):
        return F.elu(input, self.alpha)

    def extra_repr(self):
        return f"alpha={self.alpha}" + (", inplace=True" if self.inplace else "")


class Sigmoid(Module):
    """1 / (1 + exp(-x))."""

    def forward(self, input):
        return input.sigmoid()


class Tanh(Module):
    """(exp(x) - exp(-x)) / (exp(x) + exp(-x))."""

    def forward(self, input):
        return input.tanh()


def _implicit_dim(ndim):
    """PyTorch's legacy choice when ``dim`` is not given: 0 for 0-, 1- and 3-D input, else 1."""
    return 0 if ndim in (0, 1, 3) else 1


class Softmax(Module):
    """exp(x) / sum(exp(x)) along ``dim``."""

    def __init__(self, dim=None):
        super().__init__()
        self.dim = dim

    def forward(self, input):
        return F.softmax(input, self.dim if self.dim is not None else _implicit_dim(input.ndim))

    def extra_repr(self):
        return f"dim={self.dim}"


class LogSoftmax(Module):
    """x - log(sum(exp(x))) along ``dim``."""

    def __init__(self, dim=None):
        super().__init__()
        self.dim = dim

    def forward(self, input):
        return F.log_softmax(input, self.dim if self.dim is not None else _implicit_dim(input.ndim))

    def extra_repr(self):
        return f"dim={self.dim}"


class _Pointwise(Module):
    """A parameter-free activation that calls ``F.<function>`` with its settings."""

    function = None  # the name in minidl.nn.functional
    settings = ()    # attribute names passed on as keywords

    def forward(self, input):
        return getattr(F, self.function)(input, **{name: getattr(self, name) for name in self.settings})

    def extra_repr(self):
        parts = [f"{name}={getattr(self, name)!r}" for name in self.settings]
        return ", ".join(parts + (["inplace=True"] if getattr(self, "inplace", False) else []))


class GELU(_Pointwise):
    """x * Phi(x) (Phi the normal CDF); approximate='tanh' uses the tanh formula."""
    function, settings = "gelu", ("approximate",)

    def __init__(self, approximate="none"):
        super().__init__()
        self.approximate = approximate


class SiLU(_Pointwise):
    """x * sigmoid(x) (swish)."""
    function = "silu"

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = inplace


class Mish(SiLU):
    """x * tanh(softplus(x))."""
    function = "mish"


class Hardswish(SiLU):
    """x * relu6(x + 3) / 6."""
    function = "hardswish"


class Hardsigmoid(SiLU):
    """relu6(x + 3) / 6."""
    function = "hardsigmoid"


class ReLU6(SiLU):
    """min(max(x, 0), 6)."""
    function = "relu6"


class SELU(SiLU):
    """scale * elu(x, alpha) with the self-normalising constants."""
    function = "selu"


class Softplus(_Pointwise):
    """log(1 + exp(beta x)) / beta (x itself where beta x > threshold)."""
    function, settings = "softplus", ("beta", "threshold")

    def __init__(self, beta=1.0, threshold=20.0):
        super().__init__()
        self.beta, self.threshold = beta, threshold


class Hardtanh(_Pointwise):
    """clip(x, min_val, max_val)."""
    function, settings = "hardtanh", ("min_val", "max_val")

    def __init__(self, min_val=-1.0, max_val=1.0, inplace=False):
        super().__init__()
        if min_val > max_val:
            raise ValueError(f"Hardtanh: min_val ({min_val}) cannot be greater than max_val ({max_val})")
        self.min_val, self.max_val, self.inplace = min_val, max_val, inplace


class CELU(_Pointwise):
    """x if x > 0 else alpha * (exp(x / alpha) - 1)."""
    function, settings = "celu", ("alpha",)

    def __init__(self, alpha=1.0, inplace=False):
        super().__init__()
        self.alpha, self.inplace = alpha, inplace


class LogSigmoid(_Pointwise):
    """log(sigmoid(x))."""
    function = "logsigmoid"


class Softsign(_Pointwise):
    """x / (1 + |x|)."""
    function = "softsign"
