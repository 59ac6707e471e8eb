// Shared helpers for minidl's CUDA kernels.  Every kernels/*.cu includes this file
// textually through `#include "common.cuh"`; minidl/cuda/compile.py inlines it before
// handing the source to NVRTC, so no include path is needed at run time.
#pragma once

// Grid-stride loop: every kernel is correct for any grid size, so launch sizes are a
// performance choice only (and sizes that are not multiples of the block size work).
#define GRID_STRIDE_LOOP(i, n)                                                   \
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (n); \
         i += (long long)blockDim.x * gridDim.x)

template <typename T> struct Limits;
template <> struct Limits<float> {
    __device__ static float neg_inf() { return __int_as_float(0xff800000); }
};
template <> struct Limits<double> {
    __device__ static double neg_inf() { return __longlong_as_double(0xfff0000000000000LL); }
};

// Sum of `value` over the block (blockDim.x a power of two, at most 1024).  The result
// is valid in thread 0.  `scratch` must hold blockDim.x elements of shared memory.
template <typename T>
__device__ T block_sum(T value, T* scratch) {
    scratch[threadIdx.x] = value;
    __syncthreads();
    for (unsigned int half = blockDim.x / 2; half > 0; half >>= 1) {
        if (threadIdx.x < half) scratch[threadIdx.x] += scratch[threadIdx.x + half];
        __syncthreads();
    }
    T total = scratch[0];
    __syncthreads();  // scratch may be reused right after
    return total;
}

template <typename T>
__device__ T block_max(T value, T* scratch) {
    scratch[threadIdx.x] = value;
    __syncthreads();
    for (unsigned int half = blockDim.x / 2; half > 0; half >>= 1) {
        if (threadIdx.x < half) scratch[threadIdx.x] = fmax(scratch[threadIdx.x], scratch[threadIdx.x + half]);
        __syncthreads();
    }
    T total = scratch[0];
    __syncthreads();
    return total;
}
