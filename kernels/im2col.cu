// im2col for NCHW convolution.
//
// x has shape (N, C, H, W); col has shape (N, C, KH, KW, OH, OW) with
//   col[n, c, kh, kw, oh, ow] = x[n, c, oh*SH - PH + kh*DH, ow*SW - PW + kw*DW]
// and 0 where that position falls in the padding.  A convolution is then one GEMM of
// the weights (O, C*KH*KW) with col viewed as (N, C*KH*KW, OH*OW).
// One thread writes one element of col (consecutive threads write consecutive ow: the
// writes coalesce).
#include "common.cuh"

template <typename T>
__device__ void im2col(const T* x, T* col, long long total, int C, int H, int W, int KH, int KW,
                       int OH, int OW, int SH, int SW, int PH, int PW, int DH, int DW) {
    GRID_STRIDE_LOOP(i, total) {
        long long rest = i;
        int ow = rest % OW; rest /= OW;
        int oh = rest % OH; rest /= OH;
        int kw = rest % KW; rest /= KW;
        int kh = rest % KH; rest /= KH;
        long long plane = rest;  // n * C + c
        int h = oh * SH - PH + kh * DH;
        int w = ow * SW - PW + kw * DW;
        bool inside = h >= 0 && h < H && w >= 0 && w < W;
        col[i] = inside ? x[(plane * H + h) * W + w] : T(0);
    }
}

#define IM2COL_ARGS long long total, int C, int H, int W, int KH, int KW, int OH, int OW, \
                    int SH, int SW, int PH, int PW, int DH, int DW
#define IM2COL_PASS total, C, H, W, KH, KW, OH, OW, SH, SW, PH, PW, DH, DW

extern "C" __global__ void im2col_f32(const float* x, float* col, IM2COL_ARGS) { im2col(x, col, IM2COL_PASS); }
extern "C" __global__ void im2col_f64(const double* x, double* col, IM2COL_ARGS) { im2col(x, col, IM2COL_PASS); }
