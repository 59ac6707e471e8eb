"""Losses: cross_entropy (fused log-softmax + NLL, class or probability targets), nll_loss, mse_loss,
binary_cross_entropy and binary_cross_entropy_with_logits.

Classification losses take logits or log-probabilities of shape (N, C) -- or (C,), or
(N, C, d1, ...) with the class in dim 1, as PyTorch -- and integer class targets of shape
(N,) (or (), or (N, d1, ...)). Internally the class dim is moved last and every other dim
flattened into rows, so the math below is written for rows i and classes c.
"""
import numpy as np

from ..autograd import Function
from ..backend import get_array_module
from ..errors import ArgumentError, DTypeError, ShapeError
from ..tensor import Tensor
from .activation import log_softmax_array

REDUCTIONS = ("mean", "sum", "none")


class CrossEntropy(Function):
    """Cross entropy of logits z against integer targets t, with PyTorch's class weights w,
    ignore_index and label smoothing eps over C classes. With logp = log_softmax(z):

        q[i, c] = (1 - eps) * w[t_i] * [c == t_i] + (eps / C) * w[c]   (0 for ignored rows)
        loss_i  = -sum_c q[i, c] * logp[i, c]
        mean    = sum_i loss_i / sum_i w[t_i]  (over rows not ignored);  sum = sum_i loss_i

    Since d logp[i, c] / dz[i, k] = [c == k] - softmax[i, k], with s_i = sum_c q[i, c]:

        dL/dz[i, :] = (s_i * softmax[i, :] - q[i, :]) * g_i / D

    which without weights is (softmax - smoothed one-hot) * g / N.
    """

    def forward(self, logits, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
        xp = get_array_module(logits)
        rows, target_rows = _rows(logits, target)
        weight = _same_dtype(weight, logits)
        classes = rows.shape[1]
        logp = log_softmax_array(rows, dim=1)
        kept, safe_target, target_weight = _target_weights(target_rows, weight, ignore_index, logp.dtype, classes)
        picked = xp.take_along_axis(logp, safe_target[:, None], axis=1)[:, 0]
        loss = (-(1 - label_smoothing)) * target_weight * picked
        if label_smoothing > 0:
            smooth = logp.sum(axis=1) if weight is None else logp @ weight
            smooth *= kept
            loss -= (label_smoothing / classes) * smooth
        if self.recording:
            self.logp, self.safe_target, self.target_weight, self.kept = logp, safe_target, target_weight, kept
            self.weight, self.label_smoothing, self.logits_shape = weight, label_smoothing, logits.shape
        return _reduce(loss, reduction, target_weight, target.shape, self)

    def backward(self, g):
        xp = get_array_module(g)
        row_grad = _row_grad(g, self)  # g_i / D for every row
        eps, classes = self.label_smoothing, self.logp.shape[1]
        total_weight = classes if self.weight is None else self.weight.sum()
        weight_sum = (1 - eps) * self.target_weight + (eps / classes) * total_weight * self.kept  # s_i
        grad = xp.exp(self.logp)
        grad *= (weight_sum * row_grad)[:, None]
        if eps > 0:
            class_weight = 1 if self.weight is None else self.weight
            grad -= (eps / classes) * (self.kept * row_grad)[:, None] * class_weight
        # one target per row, so plain fancy indexing touches each (i, t_i) once
        grad[xp.arange(len(grad)), self.safe_target] -= (1 - eps) * self.target_weight * row_grad
        return _unrows(grad, self.logits_shape)


class NLLLoss(Function):
    """Negative log-likelihood of log-probabilities x against integer targets t, class weights w:

        loss_i = -w[t_i] * x[i, t_i]   (0 for ignored rows);   mean = sum_i loss_i / sum_i w[t_i]
        dL/dx[i, c] = -w[t_i] * g_i / D  where c == t_i, else 0.
    """

    def forward(self, log_probs, target, weight=None, ignore_index=-100, reduction="mean"):
        xp = get_array_module(log_probs)
        rows, target_rows = _rows(log_probs, target)
        weight = _same_dtype(weight, log_probs)
        kept, safe_target, target_weight = _target_weights(target_rows, weight, ignore_index, rows.dtype,
                                                           rows.shape[1])
        loss = -target_weight * xp.take_along_axis(rows, safe_target[:, None], axis=1)[:, 0]
        if self.recording:
            self.safe_target, self.target_weight, self.input_shape = safe_target, target_weight, log_probs.shape
            self.rows_shape = rows.shape
        return _reduce(loss, reduction, target_weight, target.shape, self)

    def backward(self, g):
        xp = get_array_module(g)
        grad = xp.zeros(self.rows_shape, dtype=g.dtype)
        grad[xp.arange(len(grad)), self.safe_target] = -self.target_weight * _row_grad(g, self)
        return _unrows(grad, self.input_shape)


class MSELoss(Function):
    """loss = (x - y)^2, reduced by mean (over all n elements), sum or none.

    dL/dx = 2 (x - y) * g / n (mean) or 2 (x - y) * g (sum, none);   dL/dy = -dL/dx.
    """

    def forward(self, x, y, reduction="mean"):
        diff = x - y
        if self.recording:
            self.diff, self.reduction = diff, reduction
        squared = diff * diff
        if reduction == "none":
            return squared
        xp = get_array_module(squared)
        return xp.asarray(squared.mean() if reduction == "mean" else squared.sum())

    def backward(self, g):
        grad = self.diff * (2 * g)
        if self.reduction == "mean":
            grad /= self.diff.size
        grad_y = -grad if self.needs_input_grad[1] else None
        return grad, grad_y


class SoftCrossEntropy(Function):
    """Cross entropy of logits z against class probabilities p (same shape as z), class weights w,
    label smoothing eps over C classes. With logp = log_softmax(z) and q = (1 - eps) p + eps / C:

        loss_i = -sum_c w[c] q[i, c] logp[i, c];   mean = sum_i loss_i / (number of rows)

    dL/dz[i, :] = (softmax[i, :] * sum_c w[c] q[i, c] - w * q[i, :]) * g_i / D
    dL/dp[i, c] = -(1 - eps) * w[c] * logp[i, c] * g_i / D
    """

    def forward(self, logits, probabilities, weight=None, reduction="mean", label_smoothing=0.0):
        rows, _ = _rows(logits, logits[..., 0])
        target_rows, _ = _rows(probabilities, probabilities[..., 0])
        weight = _same_dtype(weight, logits)
        classes = rows.shape[1]
        logp = log_softmax_array(rows, dim=1)
        q = (1 - label_smoothing) * target_rows + label_smoothing / classes
        weighted_q = q if weight is None else q * weight
        loss = -(weighted_q * logp).sum(axis=1)
        self.logp, self.weighted_q, self.weight, self.eps = logp, weighted_q, weight, label_smoothing
        self.logits_shape, self.reduction = logits.shape, reduction
        batch_shape = (logits.shape[0],) + tuple(logits.shape[2:]) if logits.ndim > 1 else ()
        return _reduce_elementwise(loss.reshape(batch_shape), reduction)

    def backward(self, g):
        xp = get_array_module(g)
        row_grad = _elementwise_grad(g, self.reduction, len(self.logp)).reshape(-1)[:, None]
        grad_z = grad_p = None
        if self.needs_input_grad[0]:
            grad_z = xp.exp(self.logp) * self.weighted_q.sum(axis=1, keepdims=True) - self.weighted_q
            grad_z = _unrows(grad_z * row_grad, self.logits_shape)
        if self.needs_input_grad[1]:
            weight = 1 if self.weight is None else self.weight
            grad_p = _unrows(-(1 - self.eps) * weight * self.logp * row_grad, self.logits_shape)
        return grad_z, grad_p


class BinaryCrossEntropy(Function):
    """loss = -w * (t log(x) + (1 - t) log(1 - x)) for probabilities x, each log clamped at -100 (PyTorch).

    dL/dx = w * (x - t) / max(x (1 - x), 1e-12) * g;   dL/dt = -w * (log(x) - log(1 - x)) * g.
    """

    def forward(self, x, t, weight=None, reduction="mean"):
        xp = get_array_module(x)
        with np.errstate(divide="ignore"):  # log(0) = -inf, clamped (NumPy's warning only; CuPy has no errstate)
            log_x, log_1mx = xp.maximum(xp.log(x), -100), xp.maximum(xp.log1p(-x), -100)
        loss = -(t * log_x + (1 - t) * log_1mx)
        if weight is not None:
            loss = loss * weight
        self.x, self.t, self.weight, self.reduction = x, t, weight, reduction
        self.log_x, self.log_1mx = log_x, log_1mx
        return _reduce_elementwise(loss, reduction)

    def backward(self, g):
        xp = get_array_module(g)
        g = _elementwise_grad(g, self.reduction, self.x.size)
        if self.weight is not None:
            g = g * self.weight
        grad_x = grad_t = None
        if self.needs_input_grad[0]:
            grad_x = g * (self.x - self.t) / xp.maximum(self.x * (1 - self.x), 1e-12)
        if self.needs_input_grad[1]:
            grad_t = -g * (self.log_x - self.log_1mx)
        return _broadcast(grad_x, self.x.shape), _broadcast(grad_t, self.t.shape)


class BinaryCrossEntropyWithLogits(Function):
    """BCE of sigmoid(z) against t, computed from the logits z without overflow, with PyTorch's
    pos_weight p (per class, the last dim) and weight w:

        lw = 1 + (p - 1) t;   loss = w * ((1 - t) z + lw * softplus(-z))
        dL/dz = w * ((1 - t) - lw * sigmoid(-z)) * g     (= w * (sigmoid(z) - t) * g without p)
        dL/dt = w * (-z + (p - 1) softplus(-z)) * g
    """

    def forward(self, z, t, weight=None, pos_weight=None, reduction="mean"):
        xp = get_array_module(z)
        softplus_neg = xp.maximum(-z, 0) + xp.log1p(xp.exp(-xp.abs(z)))
        log_weight = 1 if pos_weight is None else 1 + (pos_weight - 1) * t
        loss = (1 - t) * z + log_weight * softplus_neg
        if weight is not None:
            loss = loss * weight
        self.z, self.t, self.weight, self.pos_weight, self.reduction = z, t, weight, pos_weight, reduction
        self.softplus_neg, self.log_weight = softplus_neg, log_weight
        return _reduce_elementwise(loss, reduction)

    def backward(self, g):
        xp = get_array_module(g)
        g = _elementwise_grad(g, self.reduction, self.z.size)
        if self.weight is not None:
            g = g * self.weight
        grad_z = grad_t = None
        if self.needs_input_grad[0]:
            sigmoid_neg = xp.exp(-self.softplus_neg - self.z)  # sigmoid(-z) = exp(-softplus(z)), softplus(z) = softplus(-z) + z
            grad_z = g * ((1 - self.t) - self.log_weight * sigmoid_neg)
        if self.needs_input_grad[1]:
            pos_term = 0 if self.pos_weight is None else (self.pos_weight - 1) * self.softplus_neg
            grad_t = g * (pos_term - self.z)
        return _broadcast(grad_z, self.z.shape), _broadcast(grad_t, self.t.shape)


# --------------------------------------------------------------------------- shared steps
def _reduce_elementwise(loss, reduction):
    """An elementwise loss reduced by mean (over all elements), sum, or kept ('none')."""
    if reduction == "none":
        return loss
    xp = get_array_module(loss)
    return xp.asarray(loss.mean() if reduction == "mean" else loss.sum(), dtype=loss.dtype)


def _elementwise_grad(g, reduction, count):
    """dL/dloss for each element: g / count (mean), g (sum) or g's own entries (none)."""
    return g / count if reduction == "mean" else g


def _broadcast(grad, shape):
    """A gradient of the loss's shape (or a scalar broadcast to it) as an array of ``shape``."""
    if grad is None:
        return None
    xp = get_array_module(grad)
    return xp.ascontiguousarray(xp.broadcast_to(grad, shape))


def _rows(input, target):
    """(N, C, d1, ...) logits -> (N*d1*..., C) rows; targets flattened to match."""
    xp = get_array_module(input)
    if input.ndim == 1:
        return input[None, :], target.reshape(1)
    if input.ndim > 2:
        input = xp.moveaxis(input, 1, -1)
    return input.reshape(-1, input.shape[-1]), target.reshape(-1)


def _unrows(grad, input_shape):
    xp = get_array_module(grad)
    if len(input_shape) == 1:
        return grad[0]
    if len(input_shape) > 2:
        moved = (input_shape[0],) + tuple(input_shape[2:]) + (input_shape[1],)
        return xp.ascontiguousarray(xp.moveaxis(grad.reshape(moved), -1, 1))
    return grad


def _same_dtype(weight, input):
    """Class weights in the input's dtype, so float32 logits never meet float64 weights."""
    return None if weight is None else weight.astype(input.dtype, copy=False)


def _target_weights(target, weight, ignore_index, dtype, classes):
    """Per-row: kept (1 or 0 as dtype), the target with ignored rows set to class 0, and w[t_i] * kept.

    A target outside [0, classes) -- possible only on a GPU, where it is not checked -- reads class 0
    and is kept as NaN, so the loss and its gradient become NaN instead of silently wrong."""
    xp = get_array_module(target)
    ignored = target == ignore_index
    out_of_range = ~ignored & ((target < 0) | (target >= classes))
    kept = xp.where(out_of_range, xp.nan, (~ignored).astype(dtype)).astype(dtype)
    safe_target = xp.where(ignored | out_of_range, 0, target)
    target_weight = kept if weight is None else weight[safe_target] * kept
    return kept, safe_target, target_weight


def _reduce(loss, reduction, target_weight, target_shape, fn):
    """Sum or mean (divided by the total weight of the rows not ignored), or per-row losses."""
    if fn.recording:
        fn.reduction = reduction
    if reduction == "none":
        return loss.reshape(target_shape)
    xp = get_array_module(loss)
    total = loss.sum()
    if reduction == "sum":
        return xp.asarray(total)
    denominator = target_weight.sum()
    if fn.recording:
        fn.denominator = denominator
    return xp.asarray(total / denominator)  # nan when every target is ignored, as in PyTorch


def _row_grad(g, fn):
    """dL/dloss_i for every row: g / D (mean), g (sum), or g's own entries (none)."""
    xp = get_array_module(g)
    rows = len(fn.target_weight)
    if fn.reduction == "none":
        return g.reshape(-1)
    row_grad = xp.broadcast_to(g, (rows,))
    return row_grad / fn.denominator if fn.reduction == "mean" else row_grad


def _array(value):
    return value.array if isinstance(value, Tensor) else value


def _check_classification(name, input, target, weight, reduction, ignore_index):
    xp = get_array_module(target)
    if reduction not in REDUCTIONS:
        raise ValueError(f"{name}: unknown reduction {reduction!r}; valid values are 'mean', 'sum', 'none'")
    if input.ndim == 0:
        raise ValueError(f"{name}: input must have a class dimension, got a 0-d input")
    if target.dtype.kind not in "iu":
        raise DTypeError(f"{name}: expected integer class indices as target (e.g. minidl.int64), got dtype "
                         f"{target.dtype}" + ("; class probabilities (a float target of the input's shape) "
                                              "work with cross_entropy" if name == "nll_loss" else ""))
    classes = input.shape[0] if input.ndim == 1 else input.shape[1]
    expected = () if input.ndim == 1 else (input.shape[0],) + tuple(input.shape[2:])
    if tuple(target.shape) != expected:
        raise ValueError(f"{name}: input of shape {tuple(input.shape)} expects target of shape {expected}, "
                         f"got {tuple(target.shape)}")
    if weight is not None and tuple(weight.shape) != (classes,):
        raise ShapeError(f"{name}: weight must have one entry per class, shape ({classes},), "
                         f"got {tuple(weight.shape)}")
    if xp.__name__ != "numpy":  # a check would wait for the GPU every call: out-of-range rows give NaN instead
        return
    valid = (target == ignore_index) | ((target >= 0) & (target < classes))
    if target.size and not bool(xp.all(valid)):
        bad = target[~valid].reshape(-1)[0]
        raise IndexError(f"{name}: target {int(bad)} is out of bounds for {classes} classes "
                         f"(valid: 0 to {classes - 1}, or ignore_index={ignore_index})")


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    """Cross entropy between logits (N, C) and integer class targets (N,), or class probabilities (N, C)
    (a float target of the input's shape, e.g. mixup's mixed labels), as PyTorch's.

    ``weight`` (C,) rescales each class; rows whose target is ``ignore_index`` count for nothing;
    ``label_smoothing`` eps mixes the one-hot target with the uniform distribution,
    (1 - eps) * onehot + eps / C, using exactly PyTorch's formula (also with weights).
    """
    if not 0.0 <= label_smoothing <= 1.0:
        raise ArgumentError(f"cross_entropy: label_smoothing must be between 0.0 and 1.0, got {label_smoothing}")
    if isinstance(target, Tensor) and target.dtype.kind == "f" and target.shape == input.shape:
        return _cross_entropy_probabilities(input, target, _array(weight), ignore_index, reduction, label_smoothing)
    target, weight = _array(target), _array(weight)
    _check_classification("cross_entropy", input, target, weight, reduction, ignore_index)
    return CrossEntropy.apply(input, target=target, weight=weight, ignore_index=ignore_index,
                              reduction=reduction, label_smoothing=label_smoothing)


def nll_loss(input, target, weight=None, ignore_index=-100, reduction="mean"):
    """Negative log-likelihood of log-probabilities (N, C) (e.g. from log_softmax) and targets (N,)."""
    target, weight = _array(target), _array(weight)
    _check_classification("nll_loss", input, target, weight, reduction, ignore_index)
    return NLLLoss.apply(input, target=target, weight=weight, ignore_index=ignore_index, reduction=reduction)


def mse_loss(input, target, reduction="mean"):
    """Mean squared error. Unlike PyTorch (which warns and broadcasts), differing shapes are an error."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"mse_loss: unknown reduction {reduction!r}; valid values are 'mean', 'sum', 'none'")
    if tuple(input.shape) != tuple(target.shape):
        raise ShapeError(f"mse_loss: input of shape {tuple(input.shape)} and target of shape "
                         f"{tuple(target.shape)} must have the same shape")
    return MSELoss.apply(input, target, reduction=reduction)


def _cross_entropy_probabilities(input, target, weight, ignore_index, reduction, label_smoothing):
    if reduction not in REDUCTIONS:
        raise ValueError(f"cross_entropy: unknown reduction {reduction!r}; valid values are 'mean', 'sum', 'none'")
    if ignore_index != -100:
        raise ArgumentError("cross_entropy: ignore_index is not supported for floating point target")
    classes = input.shape[0] if input.ndim == 1 else input.shape[1]
    if weight is not None and tuple(weight.shape) != (classes,):
        raise ShapeError(f"cross_entropy: weight must have one entry per class, shape ({classes},), "
                         f"got {tuple(weight.shape)}")
    if target.dtype != input.dtype:
        target = target.to(dtype=input.dtype)
    return SoftCrossEntropy.apply(input, target, weight=weight, reduction=reduction, label_smoothing=label_smoothing)


def _check_binary(name, input, target, weight, reduction):
    if reduction not in REDUCTIONS:
        raise ValueError(f"{name}: unknown reduction {reduction!r}; valid values are 'mean', 'sum', 'none'")
    if not isinstance(target, Tensor):
        raise TypeError(f"{name}: target must be a Tensor, got {type(target).__name__}")
    if tuple(target.shape) != tuple(input.shape):
        raise ValueError(f"{name}: target size {tuple(target.shape)} must be the same as input size "
                         f"{tuple(input.shape)}")
    if input.dtype.kind != "f" or target.dtype.kind != "f":
        raise DTypeError(f"{name}: expected floating-point input and target, got {input.dtype} and {target.dtype}")
    if weight is not None:
        try:
            get_array_module(weight).broadcast_shapes(tuple(weight.shape), tuple(input.shape))
        except ValueError:
            raise ShapeError(f"{name}: weight of shape {tuple(weight.shape)} does not broadcast to the input's "
                               f"shape {tuple(input.shape)}") from None


def binary_cross_entropy(input, target, weight=None, reduction="mean"):
    """-w (t log x + (1 - t) log(1 - x)) for probabilities x in [0, 1] (e.g. after sigmoid) and targets t.

    Prefer ``binary_cross_entropy_with_logits`` on the logits: it never takes log(0)."""
    weight = _same_dtype(_array(weight), input)
    _check_binary("binary_cross_entropy", input, target, weight, reduction)
    x = input.array
    if x.size and not bool(get_array_module(x).all((x >= 0) & (x <= 1))):
        raise ArgumentError("binary_cross_entropy: all elements of input should be between 0 and 1 "
                           "(pass probabilities, or use binary_cross_entropy_with_logits on logits)")
    return BinaryCrossEntropy.apply(input, target.to(dtype=input.dtype), weight=weight, reduction=reduction)


def binary_cross_entropy_with_logits(input, target, weight=None, reduction="mean", pos_weight=None):
    """BCE of sigmoid(input) against target, computed stably from the logits; ``pos_weight`` (one per
    class, the last dim) weighs the positive term, ``weight`` every element."""
    weight, pos_weight = _same_dtype(_array(weight), input), _same_dtype(_array(pos_weight), input)
    _check_binary("binary_cross_entropy_with_logits", input, target, weight, reduction)
    if pos_weight is not None and pos_weight.ndim and input.ndim and pos_weight.shape[-1] not in (1, input.shape[-1]):
        raise ShapeError(f"binary_cross_entropy_with_logits: pos_weight of shape {tuple(pos_weight.shape)} must "
                           f"have one entry per class (the input's last dim, {input.shape[-1]})")
    return BinaryCrossEntropyWithLogits.apply(input, target.to(dtype=input.dtype), weight=weight,
                                              pos_weight=pos_weight, reduction=reduction)
