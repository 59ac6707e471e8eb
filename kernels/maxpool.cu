// 2-d max pooling over NCHW, with the argmax kept for backward (as PyTorch's indices:
// the flat position h*W + w inside the input plane).
//
// Forward: one thread per output; positions in the padding never win (they count as -inf).
// Ties go to the first position in row-major window order; NaN propagates, as in PyTorch.
// Backward: dL/dx[h, w] = sum of g[oh, ow] over the windows whose argmax is (h, w).  Each
// thread owns one input pixel and gathers from the windows that contain it, so there are
// no atomics even when windows overlap (kernel > stride), and the sum is deterministic.
#include "common.cuh"

template <typename T>
__device__ void maxpool_forward(const T* x, T* y, long long* argmax, long long total, int H, int W,
                                int OH, int OW, int KH, int KW, int SH, int SW, int PH, int PW, int DH, int DW) {
    GRID_STRIDE_LOOP(i, total) {
        int ow = i % OW;
        int oh = (i / OW) % OH;
        long long plane = i / ((long long)OW * OH);
        const T* x_plane = x + plane * H * W;
        T best = Limits<T>::neg_inf();
        long long best_at = -1;
        for (int kh = 0; kh < KH; ++kh) {
            int h = oh * SH - PH + kh * DH;
            if (h < 0 || h >= H) continue;
            for (int kw = 0; kw < KW; ++kw) {
                int w = ow * SW - PW + kw * DW;
                if (w < 0 || w >= W) continue;
                T value = x_plane[h * W + w];
                if (best_at < 0 || value > best || value != value) {
                    best = value;
                    best_at = (long long)h * W + w;
                    if (value != value) { kh = KH; break; }  // NaN wins for good
                }
            }
        }
        y[i] = best;
        argmax[i] = best_at;
    }
}

template <typename T>
__device__ void maxpool_backward(const T* g, const long long* argmax, T* dx, long long total, int H, int W,
                                 int OH, int OW, int KH, int KW, int SH, int SW, int PH, int PW, int DH, int DW) {
    GRID_STRIDE_LOOP(i, total) {
        int w = i % W;
        int h = (i / W) % H;
        long long plane = i / ((long long)W * H);
        long long here = (long long)h * W + w;
        T sum = T(0);
        for (int kh = 0; kh < KH; ++kh) {
            int oh_stride = h + PH - kh * DH;
            if (oh_stride < 0 || oh_stride % SH != 0) continue;
            int oh = oh_stride / SH;
            if (oh >= OH) continue;
            for (int kw = 0; kw < KW; ++kw) {
                int ow_stride = w + PW - kw * DW;
                if (ow_stride < 0 || ow_stride % SW != 0) continue;
                int ow = ow_stride / SW;
                if (ow >= OW) continue;
                long long out = (plane * OH + oh) * OW + ow;
                if (argmax[out] == here) sum += g[out];
            }
        }
        dx[i] = sum;
    }
}

#define POOL_ARGS long long total, int H, int W, int OH, int OW, int KH, int KW, int SH, int SW, \
                  int PH, int PW, int DH, int DW
#define POOL_PASS total, H, W, OH, OW, KH, KW, SH, SW, PH, PW, DH, DW

extern "C" __global__ void maxpool_forward_f32(const float* x, float* y, long long* argmax, POOL_ARGS) {
    maxpool_forward(x, y, argmax, POOL_PASS);
}
extern "C" __global__ void maxpool_forward_f64(const double* x, double* y, long long* argmax, POOL_ARGS) {
    maxpool_forward(x, y, argmax, POOL_PASS);
}
extern "C" __global__ void maxpool_backward_f32(const float* g, const long long* argmax, float* dx, POOL_ARGS) {
    maxpool_backward(g, argmax, dx, POOL_PASS);
}
extern "C" __global__ void maxpool_backward_f64(const double* g, const long long* argmax, double* dx, POOL_ARGS) {
    maxpool_backward(g, argmax, dx, POOL_PASS);
}
