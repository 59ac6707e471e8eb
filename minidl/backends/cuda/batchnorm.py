"""BatchNorm on the GPU (kernels/batchnorm.cu), with the ReLU after it fused in where a model asks
(``functions.fused.batch_norm_relu``).

Per channel c over its M = N*H*W values (the reference, functions/batchnorm.py, has the same maths):

    training: mean, var (biased) of the batch; running stats updated on the device
    eval:     mean, var = the running statistics
    y = (x - mean) * invstd * w + b,  invstd = 1 / sqrt(var + eps);  y = max(y, 0) when fused
    backward: g' = g (masked by y > 0 when fused); dbeta = sum g', dgamma = sum g' * xhat,
              dx = w * invstd * (g' - dbeta/M - xhat * dgamma/M)   (training)
              dx = w * invstd * g'                                  (eval)

The statistics are two-pass per chunk and merged with Chan et al.'s formula, so a large mean does
not cancel the variance; every per-channel sum accumulates in double, so its accuracy does not
depend on the launch shape.  Nothing here reads a value back to the host.
"""
import numpy as np

from ...functions.batchnorm import BatchNorm
from ...functions.fused import BatchNormReLU
from ..registry import register
from .launch import THREADS, i32, i64, is_float_array, launch, real

CHUNK = 2048  # at least this many values per (channel, chunk) block of the reductions
MAX_BLOCKS = 1024  # enough (channel, chunk) blocks to fill a large GPU several times over


def _shapes(x):
    n, c = x.shape[:2]
    return n, c, int(np.prod(x.shape[2:], dtype=np.int64))


def _chunks(m, channels):
    """How many chunks each channel's m values are cut into for the per-channel reductions."""
    return max(1, min(-(-m // CHUNK), -(-MAX_BLOCKS // channels)))


def _affine(weight, bias, channels, dtype):
    import cupy
    weight = cupy.ones(channels, dtype=dtype) if weight is None else weight
    bias = cupy.zeros(channels, dtype=dtype) if bias is None else bias
    return weight, bias


def batch_stats(x):
    """kernels/batchnorm.cu bn_stats_partial + bn_stats_finalize: per-channel mean and biased var of
    x (N, C, ...), each chunk two-pass, the chunks merged by Chan et al.'s formula (sums in double)."""
    import cupy
    n, c, hw = _shapes(x)
    chunks = _chunks(n * hw, c)
    partial_mean, partial_m2 = cupy.empty(c * chunks, dtype=cupy.float64), cupy.empty(c * chunks, dtype=cupy.float64)
    mean, var = cupy.empty(c, dtype=x.dtype), cupy.empty(c, dtype=x.dtype)
    launch("batchnorm.cu", "bn_stats_partial", (x, partial_mean, partial_m2, i32(n), i32(c), i64(hw), i32(chunks)),
           x.size, x.dtype, blocks=c * chunks, shared_mem=THREADS * 8)
    launch("batchnorm.cu", "bn_stats_finalize",
           (partial_mean, partial_m2, mean, var, i32(n), i32(c), i64(hw), i32(chunks)), c, x.dtype)
    return mean, var


def normalize(x, mean, invstd, weight, bias, relu):
    """kernels/batchnorm.cu bn_apply: y = (x - mean) * invstd * w + b per channel, then max(y, 0) if relu."""
    import cupy
    _, c, hw = _shapes(x)
    y = cupy.empty_like(x)
    launch("batchnorm.cu", "bn_apply", (x, mean, invstd, weight, bias, y, i64(x.size), i32(c), i64(hw), i32(relu)),
           x.size, x.dtype)
    return y


def batch_norm_backward(g, x, y, mean, invstd, weight, relu, training):
    """kernels/batchnorm.cu bn_backward_partial/finalize/apply: (dx, dweight, dbias) from the closed form
    above; ``y`` (the output) is read only to mask g when relu is fused."""
    import cupy
    n, c, hw = _shapes(x)
    chunks = _chunks(n * hw, c)
    y = x if y is None else y
    partial_g, partial_gx = cupy.empty(c * chunks, dtype=cupy.float64), cupy.empty(c * chunks, dtype=cupy.float64)
    dweight, dbias = cupy.empty(c, dtype=x.dtype), cupy.empty(c, dtype=x.dtype)
    launch("batchnorm.cu", "bn_backward_partial",
           (x, g, y, mean, partial_g, partial_gx, i32(n), i32(c), i64(hw), i32(relu), i32(chunks)),
           x.size, x.dtype, blocks=c * chunks, shared_mem=THREADS * 8)
    launch("batchnorm.cu", "bn_backward_finalize", (partial_g, partial_gx, invstd, dweight, dbias, i32(c), i32(chunks)),
           c, x.dtype)
    dx = cupy.empty_like(x)
    launch("batchnorm.cu", "bn_backward_apply",
           (x, g, y, mean, invstd, weight, dweight, dbias, dx, i64(x.size), i32(n), i32(c), i64(hw), i32(relu),
            i32(training)), x.size, x.dtype)
    return dx, dweight, dbias


def _supported(inputs, params):
    """x float32/float64 with at least (N, C), and every per-channel vector of its dtype."""
    x = getattr(inputs[0], "array", inputs[0])
    others = [getattr(v, "array", v) for v in inputs[1:3]] + [params.get("running_mean"), params.get("running_var")]
    return is_float_array(x) and x.ndim >= 2 and all(v is None or v.dtype == x.dtype for v in others)


@register(BatchNorm, "cuda")
class BatchNormCuda(BatchNorm):
    """BatchNorm with the kernels of kernels/batchnorm.cu (see the module docstring)."""

    relu = False  # BatchNormReLUCuda fuses the ReLU that follows

    @classmethod
    def supports(cls, inputs, params):
        return _supported(inputs, params)

    def forward(self, x, weight=None, bias=None, running_mean=None, running_var=None, training=False,
                momentum=0.1, eps=1e-5):
        import cupy
        x = cupy.ascontiguousarray(x)
        weight_or_ones, bias_or_zeros = _affine(weight, bias, x.shape[1], x.dtype)
        if training:
            mean, var = batch_stats(x)
            if running_mean is not None:
                m = x.size // x.shape[1]
                running_mean *= 1 - momentum
                running_mean += momentum * mean
                running_var *= 1 - momentum
                running_var += (momentum * m / (m - 1)) * var  # the unbiased batch variance, as PyTorch
        else:  # a copy: backward must not see later in-place updates of the running mean
            mean, var = running_mean.copy(), running_var
        invstd = cupy.reciprocal(cupy.sqrt(var + real(eps, x.dtype)))
        y = normalize(x, mean, invstd, weight_or_ones, bias_or_zeros, self.relu)
        if self.recording:
            self.x, self.mean, self.invstd, self.weight, self.training = x, mean, invstd, weight_or_ones, training
            self.y = y if self.relu else None
        return y

    def backward(self, g):
        import cupy
        dx, dweight, dbias = batch_norm_backward(cupy.ascontiguousarray(g), self.x, self.y, self.mean, self.invstd,
                                                 self.weight, self.relu, self.training)
        need_x, need_weight, need_bias = self.needs_input_grad
        return dx if need_x else None, dweight if need_weight else None, dbias if need_bias else None


@register(BatchNormReLU, "cuda")
class BatchNormReLUCuda(BatchNormCuda, BatchNormReLU):
    """relu(batch_norm(x)) in the same kernels: bn_apply clamps, the backward kernels mask g by y > 0."""

    relu = True

    @classmethod
    def supports(cls, inputs, params):
        return _supported(inputs, params)
