"""``minidl.nn.parallel``: data-parallel training over the processes of ``minidl.distributed``."""
from .distributed import DistributedDataParallel

__all__ = ["DistributedDataParallel"]
