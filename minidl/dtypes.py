"""Data types: minidl's dtypes are NumPy's, so ``tensor.dtype == minidl.float32`` and
``tensor.numpy().dtype`` agree.  Float data defaults to float32, as in PyTorch."""
import numpy as np

float16 = half = np.dtype("float16")
float32 = float = np.dtype("float32")
float64 = double = np.dtype("float64")
int8 = np.dtype("int8")
int16 = short = np.dtype("int16")
int32 = int = np.dtype("int32")
int64 = long = np.dtype("int64")
uint8 = np.dtype("uint8")
uint16, uint32, uint64 = np.dtype("uint16"), np.dtype("uint32"), np.dtype("uint64")
bool = np.dtype("bool")
# PyTorch's bfloat16 has no NumPy dtype: minidl.amp emulates it for matmul and convolution only.

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
