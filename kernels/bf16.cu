// float32 -> bfloat16 conversion with round-to-nearest-even, as the bit pattern (uint16):
// bf16 keeps float32's sign and 8-bit exponent and the top 7 mantissa bits, so rounding is
// adding 0x7FFF plus the lowest kept bit to the float's bits and dropping the low 16 bits.
// NaN stays a (quiet) NaN.  The bf16 GEMM of minidl.amp hands these to cuBLAS (CUDA_R_16BF)
// with float32 accumulation and float32 output.
#include "common.cuh"

extern "C" __global__ void float_to_bf16_bits(const float* x, unsigned short* out, long long total) {
    GRID_STRIDE_LOOP(i, total) {
        unsigned int bits = __float_as_uint(x[i]);
        if ((bits & 0x7fffffffu) > 0x7f800000u) {
            out[i] = (unsigned short)((bits >> 16) | 0x0040u);
        } else {
            unsigned int lsb = (bits >> 16) & 1u;
            out[i] = (unsigned short)((bits + 0x7fffu + lsb) >> 16);
        }
    }
}
