"""Data types: minidl's dtypes are NumPy's, so ``tensor.dtype == minidl.float32`` and
``tensor.numpy().dtype`` agree.  Float data defaults to float32, as in PyTorch."""
import numpy as np

float16 = half = np.dtype("float16")
float32 = float = np.dtype("float32")
float64 = double = np.dtype("float64")
int32 = int = np.dtype("int32")
int64 = long = np.dtype("int64")
uint8 = np.dtype("uint8")
bool = np.dtype("bool")

_default_float = float32


def get_default_dtype():
    return _default_float


def set_default_dtype(dtype):
    """Sets the dtype that float data (Python floats, lists, new parameters) becomes."""
    global _default_float
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise TypeError(f"only floating-point types can be the default, got {dtype}")
    _default_float = dtype


def is_floating(dtype):
    return np.dtype(dtype).kind == "f"
