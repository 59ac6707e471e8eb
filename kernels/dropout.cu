// Dropout masks from a counter-based random number generator (Philox4x32-10, Salmon et
// al. 2011, the generator cuRAND and PyTorch use).  Element i of a mask is a pure function
// of (seed, offset + i): no generator state lives on the device, any thread can make any
// element, and the Python reference in minidl/cuda/ops.py reproduces the mask bit for bit.
//
// keep_i = u_i >= p with u_i uniform in [0, 1) from the top 24 bits of one Philox word;
// y_i = x_i * keep_i / (1 - p).   Backward: dx_i = g_i * keep_i / (1 - p).
// Counter for group k of four elements: (k_lo, k_hi, 0, 0) with k = (offset + i) / 4;
// key: (seed_lo, seed_hi).  Word (offset + i) % 4 of the output goes to element i.
#include "common.cuh"

struct Philox4 { unsigned int v[4]; };

__device__ __forceinline__ Philox4 philox4x32_10(unsigned int c0, unsigned int c1, unsigned int c2,
                                                 unsigned int c3, unsigned int k0, unsigned int k1) {
    const unsigned int M0 = 0xD2511F53u, M1 = 0xCD9E8D57u;
    const unsigned int W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
    for (int round = 0; round < 10; ++round) {
        unsigned int hi0 = __umulhi(M0, c0), lo0 = M0 * c0;
        unsigned int hi1 = __umulhi(M1, c2), lo1 = M1 * c2;
        unsigned int n0 = hi1 ^ c1 ^ k0, n1 = lo1, n2 = hi0 ^ c3 ^ k1, n3 = lo0;
        c0 = n0; c1 = n1; c2 = n2; c3 = n3;
        k0 += W0; k1 += W1;
    }
    Philox4 out = {{c0, c1, c2, c3}};
    return out;
}

__device__ __forceinline__ float uniform_at(unsigned long long position, unsigned long long seed) {
    unsigned long long group = position >> 2;
    Philox4 r = philox4x32_10((unsigned int)group, (unsigned int)(group >> 32), 0u, 0u,
                              (unsigned int)seed, (unsigned int)(seed >> 32));
    return (r.v[position & 3] >> 8) * (1.0f / 16777216.0f);
}

extern "C" __global__ void dropout_mask(unsigned char* keep, long long total, float p,
                                        unsigned long long seed, unsigned long long offset) {
    GRID_STRIDE_LOOP(i, total) keep[i] = uniform_at(offset + (unsigned long long)i, seed) >= p;
}

// y = x * keep * scale: the forward (keep from dropout_mask) and, with g for x, the backward.
template <typename T>
__device__ void dropout_apply(const T* x, const unsigned char* keep, T* y, long long total, T scale) {
    GRID_STRIDE_LOOP(i, total) y[i] = keep[i] ? x[i] * scale : T(0);
}

// Mask and output in one pass, for the forward.
template <typename T>
__device__ void dropout_forward(const T* x, unsigned char* keep, T* y, long long total, float p, T scale,
                                unsigned long long seed, unsigned long long offset) {
    GRID_STRIDE_LOOP(i, total) {
        unsigned char k = uniform_at(offset + (unsigned long long)i, seed) >= p;
        keep[i] = k;
        y[i] = k ? x[i] * scale : T(0);
    }
}

extern "C" __global__ void dropout_apply_f32(const float* x, const unsigned char* keep, float* y, long long total,
                                             float scale) { dropout_apply(x, keep, y, total, scale); }
extern "C" __global__ void dropout_apply_f64(const double* x, const unsigned char* keep, double* y, long long total,
                                             double scale) { dropout_apply(x, keep, y, total, scale); }
extern "C" __global__ void dropout_forward_f32(const float* x, unsigned char* keep, float* y, long long total,
                                               float p, float scale, unsigned long long seed,
                                               unsigned long long offset) {
    dropout_forward(x, keep, y, total, p, scale, seed, offset);
}
extern "C" __global__ void dropout_forward_f64(const double* x, unsigned char* keep, double* y, long long total,
                                               float p, double scale, unsigned long long seed,
                                               unsigned long long offset) {
    dropout_forward(x, keep, y, total, p, scale, seed, offset);
}
