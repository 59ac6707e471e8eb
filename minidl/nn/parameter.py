"""``Parameter``: a tensor that a ``Module`` learns.

Assigning a Parameter to a module attribute registers it, so ``parameters()`` and
``state_dict()`` find it.  It is a leaf that requires a gradient by default.
"""
from ..tensor import Tensor, _to_array


class Parameter(Tensor):
    def __init__(self, data=None, requires_grad=True):
        # A Parameter wraps the array of the tensor it is given (no copy, as in PyTorch)
        # but is always a fresh leaf: it never carries the graph that made ``data``.
        array = data.array if isinstance(data, Tensor) else _to_array([] if data is None else data)
        super().__init__(array, requires_grad=requires_grad)
        self.array = array

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()
