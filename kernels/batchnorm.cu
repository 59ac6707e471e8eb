// Batch normalisation over (N, H, W) for each channel of an NCHW tensor (training, and eval-mode backward).
//
// Notation: M = N*H*W values per channel, mean and var (biased) per channel,
// invstd = 1/sqrt(var + eps), xhat = (x - mean) * invstd, y = gamma * xhat + beta
// (then y = max(y, 0) when the ReLU that follows in the graph is fused in).
//
// Backward (closed form, g' = g masked by y > 0 when ReLU is fused):
//   dbeta  = sum g'            dgamma = sum g' * xhat
//   dx     = gamma * invstd * (g' - dbeta/M - xhat * dgamma/M)     (training: batch statistics)
//   dx     = gamma * invstd * g'                                   (eval: the running statistics are constants)
//
// Every sum over a channel's values accumulates in double (the chunk sums travel as double too):
// the kernels only move memory, so the wider adds cost nothing measurable, and the result no longer
// depends on how many values each thread adds up in sequence (the launch shape).  A float32 sum of
// gradients that cancel would otherwise lose digits in proportion to the chunk length.
//
// Kernels (each channel's M values are cut into `slices` chunks, one block per (channel,
// chunk), so that even a layer with few channels fills the GPU):
//   bn_stats_partial_*     per chunk: its mean and M2 = sum (x - chunk mean)^2 (two passes over
//                          the chunk, which is small enough to stay in cache)
//   bn_stats_finalize_*    per channel: merges the chunks (Chan et al.'s pairwise update) into
//                          mean and biased var; exact where one-pass sums of squares cancel
//   bn_apply_*             elementwise y = (x - mean)*invstd*gamma + beta (+ ReLU); also the
//                          inference path with the running statistics
//   bn_backward_partial_*  per chunk: sum g' and sum g' * (x - mean)
//   bn_backward_finalize_* per channel: dbeta and dgamma from the chunk sums
//   bn_backward_apply_*    elementwise dx from the closed form (training) or g' * gamma * invstd (eval)
#include "common.cuh"

// Index of element `i` of channel `c`, i in [0, N*HW): sample n = i / HW, pixel s = i % HW.
__device__ __forceinline__ long long channel_element(long long i, int c, int C, long long HW) {
    long long n = i / HW;
    return (n * C + c) * HW + (i - n * HW);
}

// The chunk [begin, end) of channel c's M values that block (c, slice) owns.
__device__ __forceinline__ void chunk_bounds(long long M, int slices, int slice, long long* begin, long long* end) {
    long long size = (M + slices - 1) / slices;
    *begin = size * slice;
    *end = *begin + size < M ? *begin + size : M;
}

// Shared memory: blockDim.x doubles.
template <typename T>
__device__ void bn_stats_partial(const T* x, double* partial_mean, double* partial_m2, int N, int C, long long HW,
                                 int slices) {
    extern __shared__ __align__(16) unsigned char shared_bytes[];
    double* scratch = reinterpret_cast<double*>(shared_bytes);
    int c = blockIdx.x / slices, slice = blockIdx.x % slices;
    long long begin, end;
    chunk_bounds((long long)N * HW, slices, slice, &begin, &end);
    double sum = 0;
    for (long long i = begin + threadIdx.x; i < end; i += blockDim.x) sum += x[channel_element(i, c, C, HW)];
    long long count = end > begin ? end - begin : 0;
    double total = block_sum(sum, scratch);
    double mean = count > 0 ? total / double(count) : 0.0;
    double squares = 0;
    for (long long i = begin + threadIdx.x; i < end; i += blockDim.x) {
        double d = x[channel_element(i, c, C, HW)] - mean;
        squares += d * d;
    }
    double m2 = block_sum(squares, scratch);
    if (threadIdx.x == 0) {
        partial_mean[blockIdx.x] = mean;
        partial_m2[blockIdx.x] = m2;
    }
}

// Chan et al.: merging (n_a, mean_a, M2_a) with (n_b, mean_b, M2_b) gives
//   n = n_a + n_b,  mean = mean_a + d n_b / n,  M2 = M2_a + M2_b + d^2 n_a n_b / n,  d = mean_b - mean_a.
template <typename T>
__device__ void bn_stats_finalize(const double* partial_mean, const double* partial_m2, T* mean_out, T* var_out,
                                  int N, int C, long long HW, int slices) {
    long long M = (long long)N * HW;
    GRID_STRIDE_LOOP(c, C) {
        double n = 0, mean = 0, m2 = 0;
        for (int slice = 0; slice < slices; ++slice) {
            long long begin, end;
            chunk_bounds(M, slices, slice, &begin, &end);
            if (end <= begin) continue;
            double n_b = double(end - begin), mean_b = partial_mean[c * slices + slice];
            double total = n + n_b, d = mean_b - mean;
            mean += d * n_b / total;
            m2 += partial_m2[c * slices + slice] + d * d * n * n_b / total;
            n = total;
        }
        mean_out[c] = T(mean);
        var_out[c] = T(m2 / double(M));
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

// y is read only when relu != 0.  Shared memory: blockDim.x doubles.
template <typename T>
__device__ void bn_backward_partial(const T* x, const T* g, const T* y, const T* mean, double* partial_g,
                                    double* partial_gx, int N, int C, long long HW, int relu, int slices) {
    extern __shared__ __align__(16) unsigned char shared_bytes[];
    double* scratch = reinterpret_cast<double*>(shared_bytes);
    int c = blockIdx.x / slices, slice = blockIdx.x % slices;
    long long begin, end;
    chunk_bounds((long long)N * HW, slices, slice, &begin, &end);
    double sum_g = 0, sum_gx = 0, mean_c = mean[c];
    for (long long i = begin + threadIdx.x; i < end; i += blockDim.x) {
        long long k = channel_element(i, c, C, HW);
        double gk = (relu && y[k] <= T(0)) ? 0.0 : double(g[k]);
        sum_g += gk;
        sum_gx += gk * (double(x[k]) - mean_c);
    }
    double total_g = block_sum(sum_g, scratch);
    double total_gx = block_sum(sum_gx, scratch);
    if (threadIdx.x == 0) {
        partial_g[blockIdx.x] = total_g;
        partial_gx[blockIdx.x] = total_gx;
    }
}

template <typename T>
__device__ void bn_backward_finalize(const double* partial_g, const double* partial_gx, const T* invstd, T* dgamma,
                                     T* dbeta, int C, int slices) {
    GRID_STRIDE_LOOP(c, C) {
        double sum_g = 0, sum_gx = 0;
        for (int slice = 0; slice < slices; ++slice) {
            sum_g += partial_g[c * slices + slice];
            sum_gx += partial_gx[c * slices + slice];
        }
        dbeta[c] = T(sum_g);
        dgamma[c] = T(sum_gx * double(invstd[c]));  // sum g' * xhat
    }
}

template <typename T>
__device__ void bn_backward_apply(const T* x, const T* g, const T* y, const T* mean, const T* invstd,
                                  const T* gamma, const T* dgamma, const T* dbeta, T* dx,
                                  long long total, int N, int C, long long HW, int relu, int training) {
    T inv_M = training ? T(1) / T((long long)N * HW) : T(0);  // eval: the two batch-statistics terms vanish
    GRID_STRIDE_LOOP(i, total) {
        int c = (i / HW) % C;
        T gi = (relu && y[i] <= T(0)) ? T(0) : g[i];
        T xhat = (x[i] - mean[c]) * invstd[c];
        dx[i] = gamma[c] * invstd[c] * (gi - dbeta[c] * inv_M - xhat * dgamma[c] * inv_M);
    }
}

#define BN_INSTANTIATE(T, suffix)                                                                         \
    extern "C" __global__ void bn_stats_partial_##suffix(const T* x, double* partial_mean, double* partial_m2,    \
                                                         int N, int C, long long HW, int slices) {               \
        bn_stats_partial(x, partial_mean, partial_m2, N, C, HW, slices);                                      \
    }                                                                                                         \
    extern "C" __global__ void bn_stats_finalize_##suffix(const double* partial_mean, const double* partial_m2,  \
                                                          T* mean, T* var, int N, int C, long long HW,           \
                                                          int slices) {                                          \
        bn_stats_finalize(partial_mean, partial_m2, mean, var, N, C, HW, slices);                              \
    }                                                                                                         \
    extern "C" __global__ void bn_apply_##suffix(const T* x, const T* mean, const T* invstd, const T* gamma,    \
                                                 const T* beta, T* y, long long total, int C, long long HW,    \
                                                 int relu) {                                                  \
        bn_apply(x, mean, invstd, gamma, beta, y, total, C, HW, relu);                                        \
    }                                                                                                         \
    extern "C" __global__ void bn_backward_partial_##suffix(const T* x, const T* g, const T* y, const T* mean,  \
                                                            double* partial_g, double* partial_gx, int N, int C, \
                                                            long long HW, int relu, int slices) {             \
        bn_backward_partial(x, g, y, mean, partial_g, partial_gx, N, C, HW, relu, slices);                    \
    }                                                                                                         \
    extern "C" __global__ void bn_backward_finalize_##suffix(const double* partial_g, const double* partial_gx, \
                                                             const T* invstd, T* dgamma, T* dbeta, int C,     \
                                                             int slices) {                                    \
        bn_backward_finalize(partial_g, partial_gx, invstd, dgamma, dbeta, C, slices);                        \
    }                                                                                                         \
    extern "C" __global__ void bn_backward_apply_##suffix(const T* x, const T* g, const T* y, const T* mean,    \
                                                          const T* invstd, const T* gamma, const T* dgamma,    \
                                                          const T* dbeta, T* dx, long long total, int N, int C, \
                                                          long long HW, int relu, int training) {             \
        bn_backward_apply(x, g, y, mean, invstd, gamma, dgamma, dbeta, dx, total, N, C, HW, relu, training);  \
    }

BN_INSTANTIATE(float, f32)
BN_INSTANTIATE(double, f64)
