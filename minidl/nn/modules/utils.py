"""Small helpers the layers share."""
from ... import creation


def _pair(value):
    """``3`` -> ``(3, 3)``; a pair stays a pair (as torch.nn.modules.utils._pair)."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"expected an int or a pair of ints, got {value!r}")
        return tuple(value)
    return (value, value)


def _empty_parameter(shape, dtype, device):
    """A new Parameter of ``shape`` (filled by the layer's ``reset_parameters``)."""
    from ..parameter import Parameter
    return Parameter(creation.empty(shape, dtype=dtype, device=device))

