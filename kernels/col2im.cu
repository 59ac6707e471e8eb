// col2im: the adjoint of im2col (the backward of the convolution's unfolding).
//
// col has shape (N, C, KH, KW, OH, OW); x has shape (N, C, H, W) with
//   x[n, c, h, w] = sum of col[n, c, kh, kw, oh, ow] over every (kh, kw, oh, ow) with
//                   oh*SH - PH + kh*DH == h and ow*SW - PW + kw*DW == w.
// Each thread owns one pixel of x and gathers the window entries that read it, so no two
// threads write the same address: no atomics, and the sum is deterministic.
#include "common.cuh"

template <typename T>
__device__ void col2im(const T* col, T* x, long long total, int C, int H, int W, int KH, int KW,
                       int OH, int OW, int SH, int SW, int PH, int PW, int DH, int DW) {
    GRID_STRIDE_LOOP(i, total) {
        long long rest = i;
        int w = rest % W; rest /= W;
        int h = rest % H; rest /= H;
        long long plane = rest;  // n * C + c
        T sum = T(0);
        for (int kh = 0; kh < KH; ++kh) {
            int oh_stride = h + PH - kh * DH;  // = oh * SH when this kernel row reads h
            if (oh_stride < 0 || oh_stride % SH != 0) continue;
            int oh = oh_stride / SH;
            if (oh >= OH) continue;
            for (int kw = 0; kw < KW; ++kw) {
                int ow_stride = w + PW - kw * DW;
                if (ow_stride < 0 || ow_stride % SW != 0) continue;
                int ow = ow_stride / SW;
                if (ow >= OW) continue;
                sum += col[(((plane * KH + kh) * KW + kw) * OH + oh) * OW + ow];
            }
        }
        x[i] = sum;
    }
}

#define COL2IM_ARGS long long total, int C, int H, int W, int KH, int KW, int OH, int OW, \
                    int SH, int SW, int PH, int PW, int DH, int DW
#define COL2IM_PASS total, C, H, W, KH, KW, OH, OW, SH, SW, PH, PW, DH, DW

extern "C" __global__ void col2im_f32(const float* col, float* x, COL2IM_ARGS) { col2im(col, x, COL2IM_PASS); }
extern "C" __global__ void col2im_f64(const double* col, double* x, COL2IM_ARGS) { col2im(col, x, COL2IM_PASS); }
