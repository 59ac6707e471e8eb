// Batch normalisation over (N, H, W) for each channel of an NCHW tensor, training mode.
//
// Notation: M = N*H*W values per channel, mean and var (biased) per channel,
// invstd = 1/sqrt(var + eps), xhat = (x - mean) * invstd, y = gamma * xhat + beta
// (then y = max(y, 0) when the ReLU that follows in the graph is fused in).
//
// Backward (closed form, g' = g masked by y > 0 when ReLU is fused):
//   dbeta  = sum g'            dgamma = sum g' * xhat
//   dx     = gamma * invstd * (g' - dbeta/M - xhat * dgamma/M)
//
// Kernels:
//   bn_stats_*          one block per channel: mean, then var = mean((x - mean)^2) (two passes
//                       over the channel: exact where a one-pass sum of squares cancels badly)
//   bn_apply_*          elementwise y = (x - mean)*invstd*gamma + beta (+ ReLU); also the
//                       inference path with the running statistics
//   bn_backward_reduce_*   one block per channel: dbeta and dgamma
//   bn_backward_apply_*    elementwise dx from the closed form
#include "common.cuh"

// Index of element `i` of channel `c`, i in [0, N*HW): sample n = i / HW, pixel s = i % HW.
__device__ __forceinline__ long long channel_element(long long i, int c, int C, long long HW) {
    long long n = i / HW;
    return (n * C + c) * HW + (i - n * HW);
}

template <typename T>
__device__ void bn_stats(const T* x, T* mean_out, T* var_out, int N, int C, long long HW) {
    extern __shared__ __align__(16) unsigned char shared_bytes[];
    T* scratch = reinterpret_cast<T*>(shared_bytes);
    int c = blockIdx.x;
    long long M = (long long)N * HW;
    T sum = T(0);
    for (long long i = threadIdx.x; i < M; i += blockDim.x) sum += x[channel_element(i, c, C, HW)];
    T mean = block_sum(sum, scratch) / T(M);
    T squares = T(0);
    for (long long i = threadIdx.x; i < M; i += blockDim.x) {
        T d = x[channel_element(i, c, C, HW)] - mean;
        squares += d * d;
    }
    T var = block_sum(squares, scratch) / T(M);
    if (threadIdx.x == 0) {
        mean_out[c] = mean;
        var_out[c] = var;
    }
}

template <typename T>
__device__ void bn_apply(const T* x, const T* mean, const T* invstd, const T* gamma, const T* beta,
                         T* y, long long total, int C, long long HW, int relu) {
    GRID_STRIDE_LOOP(i, total) {
        int c = (i / HW) % C;
        T value = (x[i] - mean[c]) * invstd[c] * gamma[c] + beta[c];
        y[i] = (relu && value < T(0)) ? T(0) : value;
    }
}

// y may be null when relu == 0.
template <typename T>
__device__ void bn_backward_reduce(const T* x, const T* g, const T* y, const T* mean, const T* invstd,
                                   T* dgamma, T* dbeta, int N, int C, long long HW, int relu) {
    extern __shared__ __align__(16) unsigned char shared_bytes[];
    T* scratch = reinterpret_cast<T*>(shared_bytes);
    int c = blockIdx.x;
    long long M = (long long)N * HW;
    T sum_g = T(0), sum_gxhat = T(0);
    for (long long i = threadIdx.x; i < M; i += blockDim.x) {
        long long k = channel_element(i, c, C, HW);
        T gk = (relu && y[k] <= T(0)) ? T(0) : g[k];
        sum_g += gk;
        sum_gxhat += gk * (x[k] - mean[c]);
    }
    T total_g = block_sum(sum_g, scratch);
    T total_gxhat = block_sum(sum_gxhat, scratch) * invstd[c];
    if (threadIdx.x == 0) {
        dbeta[c] = total_g;
        dgamma[c] = total_gxhat;
    }
}

template <typename T>
__device__ void bn_backward_apply(const T* x, const T* g, const T* y, const T* mean, const T* invstd,
                                  const T* gamma, const T* dgamma, const T* dbeta, T* dx,
                                  long long total, int N, int C, long long HW, int relu) {
    T inv_M = T(1) / T((long long)N * HW);
    GRID_STRIDE_LOOP(i, total) {
        int c = (i / HW) % C;
        T gi = (relu && y[i] <= T(0)) ? T(0) : g[i];
        T xhat = (x[i] - mean[c]) * invstd[c];
        dx[i] = gamma[c] * invstd[c] * (gi - dbeta[c] * inv_M - xhat * dgamma[c] * inv_M);
    }
}

#define BN_INSTANTIATE(T, suffix)                                                                       \
    extern "C" __global__ void bn_stats_##suffix(const T* x, T* mean, T* var, int N, int C, long long HW) { \
        bn_stats(x, mean, var, N, C, HW);                                                               \
    }                                                                                                   \
    extern "C" __global__ void bn_apply_##suffix(const T* x, const T* mean, const T* invstd, const T* gamma, \
                                                 const T* beta, T* y, long long total, int C, long long HW,  \
                                                 int relu) {                                            \
        bn_apply(x, mean, invstd, gamma, beta, y, total, C, HW, relu);                                  \
    }                                                                                                   \
    extern "C" __global__ void bn_backward_reduce_##suffix(const T* x, const T* g, const T* y, const T* mean, \
                                                           const T* invstd, T* dgamma, T* dbeta, int N, int C, \
                                                           long long HW, int relu) {                    \
        bn_backward_reduce(x, g, y, mean, invstd, dgamma, dbeta, N, C, HW, relu);                       \
    }                                                                                                   \
    extern "C" __global__ void bn_backward_apply_##suffix(const T* x, const T* g, const T* y, const T* mean, \
                                                          const T* invstd, const T* gamma, const T* dgamma,  \
                                                          const T* dbeta, T* dx, long long total, int N, int C, \
                                                          long long HW, int relu) {                     \
        bn_backward_apply(x, g, y, mean, invstd, gamma, dgamma, dbeta, dx, total, N, C, HW, relu);      \
    }

BN_INSTANTIATE(float, f32)
BN_INSTANTIATE(double, f64)
