"""The CPU's fast implementations (NumPy + numba), each registered against the reference op it replaces.

One file, one idea:

    conv.py        Conv2d in channels-last memory; ``strategy`` picks the kernels per layer
    direct_conv.py the direct SIMD convolution kernels (float32): geometry, scratch copies, threads
    conv_codegen.py  writes (and caches) those kernels' register-tiled micro-kernels
    simd.py        the explicit LLVM vector type and intrinsics the micro-kernels are written with
    conv_gemm.py   the chunked im2col and row-shifted GEMMs of the other convolutions
    batchnorm.py   BatchNorm on the (N*H*W, C) rows of a channels-last input (and with the ReLU after it fused)
    activation.py  ReLU and its gradient in one pass each
    add.py         the residual add, relu(a + b) in one pass, and the engine's gradient sum, split across threads
    pooling.py     max pooling and adaptive average pooling of channels-last inputs, channels-last gradients
    pool_kernels.py  the numba kernels (with NumPy twins) of max pooling: one pass forward, one gathering backward
    kernels.py     the numba kernels (with NumPy twins) of BatchNorm, ReLU and their fusions
    optim.py       SGD, Adam and AdamW steps in one fused pass per parameter (numba, bit-identical to optim/)
    threads.py     splitting one op's batch across the CPU's cores
    allocator.py   glibc keeps freed activations in the heap (set once at ``import minidl``)

``import minidl`` imports this package, which registers every class below and tunes the allocator.
"""
from . import activation, add, allocator, batchnorm, conv, optim, pool_kernels, pooling

allocator.configure()

__all__ = ["activation", "add", "allocator", "batchnorm", "conv", "optim", "pool_kernels", "pooling"]
