// im2col for NCHW convolution, in the layout of minidl/functions/conv.py:
//
//   cols[(c, kh, kw), (n, oh, ow)] = x[n, c, oh*SH - PT + kh*DH, ow*SW - PL + kw*DW]
//
// with 0 where that position falls in the padding (PT = top, PL = left padding; the
// bottom/right padding only decides OH and OW, which the caller passes in).  cols has shape
// (C*KH*KW, N*OH*OW), so the convolution is one GEMM, W (OC, C*KH*KW) @ cols.
// One thread writes one element of cols (consecutive threads write consecutive ow: the
// writes coalesce).
#include "common.cuh"

template <typename T>
__device__ void im2col(const T* x, T* cols, long long total, int N, int C, int H, int W, int KH, int KW,
                       int OH, int OW, int SH, int SW, int PT, int PL, int DH, int DW) {
    GRID_STRIDE_LOOP(i, total) {
        long long rest = i;
        int ow = rest % OW; rest /= OW;
        int oh = rest % OH; rest /= OH;
        int n = rest % N; rest /= N;
        int kw = rest % KW; rest /= KW;
        int kh = rest % KH; rest /= KH;
        long long c = rest;
        int h = oh * SH - PT + kh * DH;
        int w = ow * SW - PL + kw * DW;
        bool inside = h >= 0 && h < H && w >= 0 && w < W;
        cols[i] = inside ? x[(((long long)n * C + c) * H + h) * W + w] : T(0);
    }
}

#define IM2COL_ARGS long long total, int N, int C, int H, int W, int KH, int KW, int OH, int OW, \
                    int SH, int SW, int PT, int PL, int DH, int DW
#define IM2COL_PASS total, N, C, H, W, KH, KW, OH, OW, SH, SW, PT, PL, DH, DW

extern "C" __global__ void im2col_f32(const float* x, float* cols, IM2COL_ARGS) { im2col(x, cols, IM2COL_PASS); }
extern "C" __global__ void im2col_f64(const double* x, double* cols, IM2COL_ARGS) { im2col(x, cols, IM2COL_PASS); }
