// Fused multi-tensor optimizer updates: one launch updates up to MAX_TENSORS parameters.
//
// The tensors travel in a struct passed by value, as a kernel parameter (like PyTorch's
// multi_tensor_apply): no pointer table is copied to the device, so a step needs no host-to-device
// transfer even though the gradients are new arrays every step.  `address[list][t]` is the device
// address of tensor t of each list (0: params, 1: grads, then the optimizer's state: SGD's momentum
// buffers; Adam's exp_avg, exp_avg_sq and, with amsgrad, max_exp_avg_sq); `start[t]` is the running
// sum of the sizes (start[0] = 0, start[count] = total).  Global element e belongs to tensor t with
// start[t] <= e < start[t+1] (found by binary search), at position e - start[t] inside it.  Each
// element is updated by exactly one thread.  At most 4 KiB of kernel parameters: 48 tensors of 5
// lists take 2,320 bytes.
//
// SGD, exactly torch.optim.SGD (no maximize):
//   d = g + wd * p
//   buf = d                                  on the first step (first_step != 0)
//   buf = momentum * buf + (1 - dampening) * d  afterwards          (only when momentum != 0)
//   d = d + momentum * buf  (nesterov)   or   d = buf
//   p = p - lr * d
// Adam / AdamW, exactly torch.optim.Adam / AdamW (step t counted from 1):
//   Adam:  g = g + wd * p          AdamW: p = p * (1 - lr * wd)
//   m = b1 m + (1 - b1) g;   v = b2 v + (1 - b2) g^2;   (amsgrad: vmax = max(vmax, v), use vmax)
//   p = p - (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
#include "common.cuh"

#define MAX_TENSORS 48
#define MAX_LISTS 5

struct TensorLists {
    unsigned long long address[MAX_LISTS][MAX_TENSORS];
    long long start[MAX_TENSORS + 1];
    int count;
};

__device__ __forceinline__ int tensor_of(const TensorLists& lists, long long e) {
    int lo = 0, hi = lists.count - 1;
    while (lo < hi) {  // the last t with start[t] <= e
        int mid = (lo + hi + 1) / 2;
        if (lists.start[mid] <= e) lo = mid; else hi = mid - 1;
    }
    return lo;
}

template <typename T>
__device__ __forceinline__ T* tensor(const TensorLists& lists, int list, int t) {
    return reinterpret_cast<T*>(lists.address[list][t]);
}

template <typename T>
__device__ void sgd_multi(const TensorLists& lists, long long total, T lr, T momentum, T dampening,
                          T weight_decay, int nesterov, int first_step) {
    GRID_STRIDE_LOOP(e, total) {
        int t = tensor_of(lists, e);
        long long k = e - lists.start[t];
        T* p = tensor<T>(lists, 0, t);
        T d = tensor<T>(lists, 1, t)[k] + weight_decay * p[k];
        if (momentum != T(0)) {
            T* buf = tensor<T>(lists, 2, t);
            T b = first_step ? d : momentum * buf[k] + (T(1) - dampening) * d;
            buf[k] = b;
            d = nesterov ? d + momentum * b : b;
        }
        p[k] -= lr * d;
    }
}

// amsgrad == 0: list 4 (max_exp_avg_sq) is not read.
template <typename T>
__device__ void adam_multi(const TensorLists& lists, long long total, T lr, T beta1, T beta2, T eps,
                           T weight_decay, int decoupled, int amsgrad, T bias_correction1,
                           T bias_correction2_sqrt) {
    GRID_STRIDE_LOOP(e, total) {
        int t = tensor_of(lists, e);
        long long k = e - lists.start[t];
        T* p = tensor<T>(lists, 0, t);
        T* m = tensor<T>(lists, 2, t);
        T* v = tensor<T>(lists, 3, t);
        T g = tensor<T>(lists, 1, t)[k];
        T pk = p[k];
        if (decoupled) pk *= T(1) - lr * weight_decay;
        else g += weight_decay * pk;
        T mk = beta1 * m[k] + (T(1) - beta1) * g;
        T vk = beta2 * v[k] + (T(1) - beta2) * g * g;
        m[k] = mk;
        v[k] = vk;
        if (amsgrad) {
            T* vmax = tensor<T>(lists, 4, t);
            vk = fmax(vmax[k], vk);
            vmax[k] = vk;
        }
        T denom = sqrt(vk) / bias_correction2_sqrt + eps;
        p[k] = pk - (lr / bias_correction1) * mk / denom;
    }
}

#define OPT_INSTANTIATE(T, suffix)                                                                          \
    extern "C" __global__ void sgd_multi_##suffix(const TensorLists lists, long long total, T lr, T momentum,  \
                                                  T dampening, T weight_decay, int nesterov, int first_step) { \
        sgd_multi<T>(lists, total, lr, momentum, dampening, weight_decay, nesterov, first_step);              \
    }                                                                                                           \
    extern "C" __global__ void adam_multi_##suffix(const TensorLists lists, long long total, T lr, T beta1,    \
                                                   T beta2, T eps, T weight_decay, int decoupled, int amsgrad, \
                                                   T bias_correction1, T bias_correction2_sqrt) {             \
        adam_multi<T>(lists, total, lr, beta1, beta2, eps, weight_decay, decoupled, amsgrad, bias_correction1, \
                      bias_correction2_sqrt);                                                                   \
    }

OPT_INSTANTIATE(float, f32)
OPT_INSTANTIATE(double, f64)
