"""``minidl.Size``: a tensor's shape, a tuple of ints that prints as PyTorch's ``torch.Size``."""
import numbers


class Size(tuple):
    """``x.shape`` and ``x.size()``: a plain tuple of ints (equal to one; slices, sums and repeats
    stay Sizes) that prints as ``minidl.Size([2, 10])``."""

    def __new__(cls, sizes=()):
        return super().__new__(cls, (int(s) for s in sizes))

    def __repr__(self):
        return f"minidl.Size({list(self)})"

    __str__ = __repr__

    def __getitem__(self, index):
        item = super().__getitem__(index)
        return Size(item) if isinstance(index, slice) else item

    def __add__(self, other):
        return _size_if_ints(tuple(self) + tuple(other))

    def __radd__(self, other):
        return _size_if_ints(tuple(other) + tuple(self))

    def __mul__(self, count):
        return Size(tuple(self) * count)

    __rmul__ = __mul__

    def numel(self):
        """The number of elements a tensor of this shape holds."""
        count = 1
        for size in self:
            count *= size
        return count


def _size_if_ints(items):
    """A Size when every item is an int, else the plain tuple (``(None,) + x.shape[1:]`` in a summary)."""
    return Size(items) if all(isinstance(i, numbers.Integral) for i in items) else items
