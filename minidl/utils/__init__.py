"""``minidl.utils``: where PyTorch code looks for ``torch.utils.data`` (``DataLoader``, ``Dataset``,
``TensorDataset``, ``Subset``, ``random_split``). minidl's data code lives in ``minidl.data``;
``minidl.utils.data`` is the same module under PyTorch's name."""
import sys

from .. import data

sys.modules[__name__ + ".data"] = data  # `import minidl.utils.data` and `from minidl.utils.data import X`

__all__ = ["data"]
