// Fused multi-tensor optimizer updates: one launch updates every parameter of a group.
//
// The tensors are passed as tables of device pointers (unsigned long long) plus `offsets`,
// the running sum of their sizes (offsets[0] = 0, offsets[n] = total).  Global element e
// belongs to tensor t with offsets[t] <= e < offsets[t+1] (found by binary search), at
// position e - offsets[t] inside it.  Each element is updated by exactly one thread.
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

__device__ __forceinline__ int tensor_of(const long long* offsets, int n_tensors, long long e) {
    int lo = 0, hi = n_tensors - 1;
    while (lo < hi) {  // the last t with offsets[t] <= e
        int mid = (lo + hi + 1) / 2;
        if (offsets[mid] <= e) lo = mid; else hi = mid - 1;
    }
    return lo;
}

template <typename T>
__device__ void sgd_multi(const unsigned long long* params, const unsigned long long* grads,
                          const unsigned long long* bufs, const long long* offsets, int n_tensors, long long total,
                          T lr, T momentum, T dampening, T weight_decay, int nesterov, int first_step) {
    GRID_STRIDE_LOOP(e, total) {
        int t = tensor_of(offsets, n_tensors, e);
        long long k = e - offsets[t];
        T* p = reinterpret_cast<T*>(params[t]);
        const T* g = reinterpret_cast<const T*>(grads[t]);
        T d = g[k] + weight_decay * p[k];
        if (momentum != T(0)) {
            T* buf = reinterpret_cast<T*>(bufs[t]);
            T b = first_step ? d : momentum * buf[k] + (T(1) - dampening) * d;
            buf[k] = b;
            d = nesterov ? d + momentum * b : b;
        }
        p[k] -= lr * d;
    }
}

// vmaxs may be 0 (a null table) when amsgrad is off.
template <typename T>
__device__ void adam_multi(const unsigned long long* params, const unsigned long long* grads,
                           const unsigned long long* ms, const unsigned long long* vs,
                           const unsigned long long* vmaxs, const long long* offsets, int n_tensors, long long total,
                           T lr, T beta1, T beta2, T eps, T weight_decay, int decoupled, T bias_correction1,
                           T bias_correction2_sqrt) {
    GRID_STRIDE_LOOP(e, total) {
        int t = tensor_of(offsets, n_tensors, e);
        long long k = e - offsets[t];
        T* p = reinterpret_cast<T*>(params[t]);
        T* m = reinterpret_cast<T*>(ms[t]);
        T* v = reinterpret_cast<T*>(vs[t]);
        T g = reinterpret_cast<const T*>(grads[t])[k];
        T pk = p[k];
        if (decoupled) pk *= T(1) - lr * weight_decay;
        else g += weight_decay * pk;
        T mk = beta1 * m[k] + (T(1) - beta1) * g;
        T vk = beta2 * v[k] + (T(1) - beta2) * g * g;
        m[k] = mk;
        v[k] = vk;
        if (vmaxs != 0) {
            T* vmax = reinterpret_cast<T*>(vmaxs[t]);
            vk = fmax(vmax[k], vk);
            vmax[k] = vk;
        }
        T denom = sqrt(vk) / bias_correction2_sqrt + eps;
        p[k] = pk - (lr / bias_correction1) * mk / denom;
    }
}

#define OPT_INSTANTIATE(T, suffix)                                                                          \
    extern "C" __global__ void sgd_multi_##suffix(const unsigned long long* params, const unsigned long long* grads, \
                                                  const unsigned long long* bufs, const long long* offsets,     \
                                                  int n_tensors, long long total, T lr, T momentum, T dampening, \
                                                  T weight_decay, int nesterov, int first_step) {               \
        sgd_multi<T>(params, grads, bufs, offsets, n_tensors, total, lr, momentum, dampening, weight_decay,    \
                     nesterov, first_step);                                                                     \
    }                                                                                                           \
    extern "C" __global__ void adam_multi_##suffix(const unsigned long long* params, const unsigned long long* grads, \
                                                   const unsigned long long* ms, const unsigned long long* vs,  \
                                                   const unsigned long long* vmaxs, const long long* offsets,   \
                                                   int n_tensors, long long total, T lr, T beta1, T beta2, T eps, \
                                                   T weight_decay, int decoupled, T bias_correction1,          \
                                                   T bias_correction2_sqrt) {                                  \
        adam_multi<T>(params, grads, ms, vs, vmaxs, offsets, n_tensors, total, lr, beta1, beta2, eps,          \
                      weight_decay, decoupled, bias_correction1, bias_correction2_sqrt);                       \
    }

OPT_INSTANTIATE(float, f32)
OPT_INSTANTIATE(double, f64)
