"""Differentiable functions: each file holds forward/backward pairs for one family of ops.

The core files (arithmetic, elementwise, reduction, shape) back the Tensor's operators;
the rest (conv, pooling, batchnorm, dropout, activation, loss, linear) back
``minidl.nn.functional``.
"""
