// Softmax cross-entropy over rows of logits x (N, K) with integer targets t (N,).
//
// With lse_i = log sum_j exp(x_ij) and label smoothing eps, the target distribution is
// q_ij = (1 - eps) [j == t_i] + eps / K, and the loss of row i is
//   loss_i = sum_j q_ij (lse_i - x_ij) = lse_i - (1 - eps) x_i,t_i - (eps / K) sum_j x_ij.
// Rows whose target equals ignore_index get loss 0 (and gradient 0).  A target outside [0, K)
// that is not ignore_index is never read from memory: its row gets loss NaN and gradient NaN
// (checking on the host would cost a synchronisation per call; the NaN reaches the loss).
// Backward, given the gradient g_i of each row's loss (the caller folds in 1/N for 'mean'):
//   dL/dx_ij = g_i * (softmax_ij - q_ij).
// One block per row; lse is saved for backward so softmax is not recomputed from scratch.  The
// row's sums accumulate in double (shared memory: blockDim.x doubles).
#include "common.cuh"

template <typename T>
__device__ __forceinline__ T quiet_nan() { return T(0) / T(0); }

template <typename T>
__device__ void softmax_xent_forward(const T* x, const long long* target, T* loss, T* lse_out, int K,
                                     T smoothing, long long ignore_index) {
    extern __shared__ __align__(16) unsigned char shared_bytes[];
    double* scratch = reinterpret_cast<double*>(shared_bytes);
    long long row = blockIdx.x;
    const T* x_row = x + row * K;
    double local_max = Limits<double>::neg_inf();
    for (int j = threadIdx.x; j < K; j += blockDim.x) local_max = fmax(local_max, double(x_row[j]));
    double row_max = block_max(local_max, scratch);
    double exp_sum = 0, x_sum = 0;
    for (int j = threadIdx.x; j < K; j += blockDim.x) {
        exp_sum += exp(double(x_row[j]) - row_max);
        x_sum += x_row[j];
    }
    double total_exp = block_sum(exp_sum, scratch);
    double total_x = block_sum(x_sum, scratch);
    if (threadIdx.x == 0) {
        double lse = row_max + log(total_exp);
        long long t = target[row];
        lse_out[row] = T(lse);
        if (t == ignore_index) {
            loss[row] = T(0);
        } else if (t < 0 || t >= K) {
            loss[row] = quiet_nan<T>();
        } else {
            loss[row] = T(lse - (1.0 - smoothing) * x_row[t] - smoothing / K * total_x);
        }
    }
}

template <typename T>
__device__ void softmax_xent_backward(const T* x, const long long* target, const T* lse, const T* g_row,
                                      T* dx, long long total, int K, T smoothing, long long ignore_index) {
    GRID_STRIDE_LOOP(i, total) {
        long long row = i / K;
        int j = i - row * K;
        long long t = target[row];
        if (t == ignore_index) {
            dx[i] = T(0);
            continue;
        }
        if (t < 0 || t >= K) {
            dx[i] = quiet_nan<T>();
            continue;
        }
        T q = smoothing / T(K) + (j == t ? T(1) - smoothing : T(0));
        dx[i] = g_row[row] * (exp(x[i] - lse[row]) - q);
    }
}

#define XENT_INSTANTIATE(T, suffix)                                                                        \
    extern "C" __global__ void softmax_xent_forward_##suffix(const T* x, const long long* target, T* loss,  \
                                                             T* lse, int K, T smoothing, long long ignore_index) { \
        softmax_xent_forward(x, target, loss, lse, K, smoothing, ignore_index);                            \
    }                                                                                                      \
    extern "C" __global__ void softmax_xent_backward_##suffix(const T* x, const long long* target, const T* lse, \
                                                              const T* g_row, T* dx, long long total, int K,   \
                                                              T smoothing, long long ignore_index) {        \
        softmax_xent_backward(x, target, lse, g_row, dx, total, K, smoothing, ignore_index);               \
    }

XENT_INSTANTIATE(float, f32)
XENT_INSTANTIATE(double, f64)
