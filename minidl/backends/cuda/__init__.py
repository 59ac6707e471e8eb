"""The CUDA backend: minidl's own kernels (``kernels/*.cu``) behind the ops that CUDA tensors run.

Importing this package registers, with ``backends.registry``, a fast twin of each hot op for
CUDA tensors; every other op (and every op under ``minidl.backends.reference()``) runs its generic
CuPy reference from ``minidl/functions/``.  Nothing here imports CuPy until a kernel runs.

==============  =====================================  ===========================================
module          registers                              kernels (kernels/*.cu)
==============  =====================================  ===========================================
conv.py         Conv2d                                 im2col.cu, col2im.cu (+ cuBLAS GEMMs)
batchnorm.py    BatchNorm, BatchNormReLU               batchnorm.cu
pooling.py      MaxPool2d                              maxpool.cu
loss.py         CrossEntropy (no class weights)        softmax_cross_entropy.cu
dropout.py      Dropout (dropout, dropout2d)           dropout.cu (Philox4x32-10)
activation.py   AddReLU (a residual join)              relu.cu
optim.py        SGD, Adam, AdamW (update_group)        optimizers.cu
bf16.py         -- (amp's bf16 GEMM operands)          bf16.cu
==============  =====================================  ===========================================

``compile.py`` loads a ``.cu`` file with ``cupy.RawModule`` once per device; ``launch.py`` sizes the
grid and types the scalar arguments.  Each Python wrapper of a kernel names its ``.cu`` file and the
maths it computes; the Function subclasses keep the reference's inputs, outputs and semantics.
"""
from . import activation, batchnorm, conv, dropout, loss, optim, pooling  # noqa: F401  (registration)
