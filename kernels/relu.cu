// The residual join of a ResNet block, relu(a + b), in one pass, and the ReLU gradient from the output.
//
//   add_relu_forward:  y = max(a + b, 0)
//   relu_backward:     dx = g where y > 0, else 0 (the gradient of both a and b in relu(a + b))
//
// Unfused, the forward reads a and b, writes a + b, reads it back and writes y; fused it writes y once.
// Backward reads y (which the next layer keeps anyway) instead of a separate boolean mask.
#include "common.cuh"

template <typename T>
__device__ void add_relu_forward(const T* a, const T* b, T* y, long long total) {
    GRID_STRIDE_LOOP(i, total) {
        T sum = a[i] + b[i];
        y[i] = sum > T(0) ? sum : T(0);
    }
}

template <typename T>
__device__ void relu_backward(const T* g, const T* y, T* dx, long long total) {
    GRID_STRIDE_LOOP(i, total) dx[i] = y[i] > T(0) ? g[i] : T(0);
}

#define RELU_INSTANTIATE(T, suffix)                                                                          \
    extern "C" __global__ void add_relu_forward_##suffix(const T* a, const T* b, T* y, long long total) {      \
        add_relu_forward(a, b, y, total);                                                                    \
    }                                                                                                        \
    extern "C" __global__ void relu_backward_##suffix(const T* g, const T* y, T* dx, long long total) {        \
        relu_backward(g, y, dx, total);                                                                      \
    }

RELU_INSTANTIATE(float, f32)
RELU_INSTANTIATE(double, f64)
