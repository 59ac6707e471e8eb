"""float32 -> bfloat16 on the GPU (kernels/bf16.cu), for the bf16 GEMMs of ``minidl.amp``."""
from .launch import i64, launch


def float_to_bf16_bits(x):
    """kernels/bf16.cu float_to_bf16_bits: the uint16 bit patterns of bfloat16, round to nearest even
    (add 0x7FFF plus the lowest kept bit to the float's bits, keep the top 16; NaN stays NaN)."""
    import cupy
    x = cupy.ascontiguousarray(x, dtype=cupy.float32)
    bits = cupy.empty(x.shape, dtype=cupy.uint16)
    launch("bf16.cu", "float_to_bf16_bits", (x, bits, i64(x.size)), x.size)
    return bits
