"""Softmax cross-entropy on the GPU (kernels/softmax_cross_entropy.cu), for (N, K) logits without
class weights (label smoothing and ignore_index included; other calls take the reference).

Per row i with lse_i = log sum_j exp(x_ij) and the smoothed target q_ij = (1 - eps) [j == t_i] + eps/K:
    loss_i = lse_i - (1 - eps) x_i,t_i - (eps/K) sum_j x_ij      (0 where t_i == ignore_index)
    dL/dx_ij = g_i * (softmax_ij - q_ij),  g_i = g / (rows kept) for 'mean', g for 'sum', g_i for 'none'
A target outside [0, K) (other than ignore_index) gives that row a NaN loss and gradient: checking
on the host would wait for the device every call.  The mean divides by the number of kept rows,
counted on the device.
"""
from ...functions.loss import CrossEntropy
from ..registry import register
from .launch import THREADS, i32, i64, is_float_array, launch, real


def _row_threads(classes):
    """Threads per row: a power of two between 32 and THREADS (block_sum/block_max need a power of two)."""
    return min(THREADS, max(32, 1 << (int(classes) - 1).bit_length()))


def softmax_cross_entropy_forward(logits, target, label_smoothing, ignore_index):
    """kernels/softmax_cross_entropy.cu softmax_xent_forward: (loss per row, logsumexp per row), one block a row."""
    import cupy
    logits, target = cupy.ascontiguousarray(logits), cupy.ascontiguousarray(target, dtype=cupy.int64)
    rows, classes = logits.shape
    loss, lse = cupy.empty(rows, dtype=logits.dtype), cupy.empty(rows, dtype=logits.dtype)
    threads = _row_threads(classes)
    launch("softmax_cross_entropy.cu", "softmax_xent_forward",
           (logits, target, loss, lse, i32(classes), real(label_smoothing, logits.dtype), i64(ignore_index)),
           rows, logits.dtype, blocks=rows, threads=threads, shared_mem=threads * 8)
    return loss, lse


def softmax_cross_entropy_backward(logits, target, lse, row_grad, label_smoothing, ignore_index):
    """kernels/softmax_cross_entropy.cu softmax_xent_backward: dx = row_grad[:, None] * (softmax - q)."""
    import cupy
    logits, target = cupy.ascontiguousarray(logits), cupy.ascontiguousarray(target, dtype=cupy.int64)
    row_grad = cupy.ascontiguousarray(cupy.broadcast_to(row_grad.astype(logits.dtype, copy=False), lse.shape))
    dx = cupy.empty_like(logits)
    launch("softmax_cross_entropy.cu", "softmax_xent_backward",
           (logits, target, lse, row_grad, dx, i64(dx.size), i32(logits.shape[1]),
            real(label_smoothing, logits.dtype), i64(ignore_index)), dx.size, logits.dtype)
    return dx


@register(CrossEntropy, "cuda")
class CrossEntropyCuda(CrossEntropy):
    """cross_entropy of (N, K) logits with the kernels above (see the module docstring)."""

    @classmethod
    def supports(cls, inputs, params):
        logits = getattr(inputs[0], "array", inputs[0])
        return is_float_array(logits) and logits.ndim == 2 and params.get("weight") is None

    def forward(self, logits, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
        loss, lse = softmax_cross_entropy_forward(logits, target, label_smoothing, ignore_index)
        if self.recording:
            self.logits, self.target, self.lse = logits, target, lse
            self.ignore_index, self.label_smoothing, self.reduction = ignore_index, label_smoothing, reduction
        if reduction == "none":
            return loss
        total = loss.sum()
        if reduction == "sum":
            return total
        kept = (target != ignore_index).sum().astype(logits.dtype)
        if self.recording:
            self.kept = kept
        return total / kept  # nan when every row is ignored, as in PyTorch

    def backward(self, g):
        row_grad = g / self.kept if self.reduction == "mean" else g
        return softmax_cross_entropy_backward(self.logits, self.target, self.lse, row_grad, self.label_smoothing,
                                              self.ignore_index)
