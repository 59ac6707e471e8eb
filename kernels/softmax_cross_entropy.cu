// Softmax cross-entropy over rows of logits x (N, K) with integer targets t (N,).
//
// With lse_i = log sum_j exp(x_ij) and label smoothing eps, the target distribution is
// q_ij = (1 - eps) [j == t_i] + eps / K, and the loss of row i is
//   loss_i = sum_j q_ij (lse_i - x_ij) = lse_i - (1 - eps) x_i,t_i - (eps / K) sum_j x_ij.
// Rows whose target equals ignore_index get loss 0 (and gradient 0).
// Backward, given the gradient g_i of each row's loss (the caller folds in 1/N for 'mean'):
//   dL/dx_ij = g_i * (softmax_ij - q_ij).
// One block per row; lse is saved for backward so softmax is not recomputed from scratch.
#include "common.cuh"

template <typename T>
__device__ void softmax_xent_forward(const T* x, const long long* target, T* loss, T* lse_out, int K,
                                     T smoothing, long long ignore_index) {
    extern __shared__ __align__(16) unsigned char shared_bytes[];
    T* scratch = reinterpret_cast<T*>(shared_bytes);
    long long row = blockIdx.x;
    const T* x_row = x + row * K;
    T local_max = Limits<T>::neg_inf();
    for (int j = threadIdx.x; j < K; j += blockDim.x) local_max = fmax(local_max, x_row[j]);
    T row_max = block_max(local_max, scratch);
    T exp_sum = T(0), x_sum = T(0);
    for (int j = threadIdx.x; j < K; j += blockDim.x) {
        exp_sum += exp(x_row[j] - row_max);
        x_sum += x_row[j];
    }
    T total_exp = block_sum(exp_sum, scratch);
    T total_x = block_sum(x_sum, scratch);
    if (threadIdx.x == 0) {
        T lse = row_max + log(total_exp);
        long long t = target[row];
        lse_out[row] = lse;
        if (t == ignore_index) {
            loss[row] = T(0);
        } else {
            loss[row] = lse - (T(1) - smoothing) * x_row[t] - smoothing / T(K) * total_x;
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
