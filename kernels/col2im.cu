// col2im: the adjoint of im2col (the backward of the convolution's unfolding), in the
// layout of minidl/functions/conv.py.  cols is (C*KH*KW, N*OH*OW); dx is (N, C, H, W) with
//
//   dx[n, c, h, w] = sum of cols[(c, kh, kw), (n, oh, ow)] over every (kh, kw, oh, ow) with
//                    oh*SH - PT + kh*DH == h  and  ow*SW - PL + kw*DW == w.
//
// Each thread owns one pixel of dx and gathers the entries that read it, so no two threads
// write the same address: no atomics, and the sum is deterministic.
#include "common.cuh"

template <typename T>
__device__ void col2im(const T* cols, T* dx, long long total, int N, int C, int H, int W, int KH, int KW,
                       int OH, int OW, int SH, int SW, int PT, int PL, int DH, int DW) {
    long long columns = (long long)N * OH * OW;
    GRID_STRIDE_LOOP(i, total) {
        long long rest = i;
        int w = rest % W; rest /= W;
        int h = rest % H; rest /= H;
        int c = rest % C; rest /= C;
        long long n = rest;
        T sum = T(0);
        for (int kh = 0; kh < KH; ++kh) {
            int oh_stride = h + PT - kh * DH;  // = oh * SH when kernel row kh reads row h
            if (oh_stride < 0 || oh_stride % SH != 0) continue;
            int oh = oh_stride / SH;
            if (oh >= OH) continue;
            for (int kw = 0; kw < KW; ++kw) {
                int ow_stride = w + PL - kw * DW;
                if (ow_stride < 0 || ow_stride % SW != 0) continue;
                int ow = ow_stride / SW;
                if (ow >= OW) continue;
                long long row = ((long long)c * KH + kh) * KW + kw;
                sum += cols[row * columns + (n * OH + oh) * OW + ow];
            }
        }
        dx[i] = sum;
    }
}

#define COL2IM_ARGS long long total, int N, int C, int H, int W, int KH, int KW, int OH, int OW, \
                    int SH, int SW, int PT, int PL, int DH, int DW
#define COL2IM_PASS total, N, C, H, W, KH, KW, OH, OW, SH, SW, PT, PL, DH, DW

extern "C" __global__ void col2im_f32(const float* cols, float* dx, COL2IM_ARGS) { col2im(cols, dx, COL2IM_PASS); }
extern "C" __global__ void col2im_f64(const double* cols, double* dx, COL2IM_ARGS) { col2im(cols, dx, COL2IM_PASS); }
