"""Losses: cross_entropy (fused log-softmax + NLL), nll_loss and mse_loss.

Classification losses take logits or log-probabilities of shape (N, C) -- or (C,), or
(N, C, d1, ...) with the class in dim 1, as PyTorch -- and integer class targets of shape
(N,) (or (), or (N, d1, ...)). Internally the class dim is moved last and every other dim
flattened into rows, so the math below is written for rows i and classes c.
"""
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
        kept, safe_target, target_weight = _target_weights(target_rows, weight, ignore_index, logp.dtype)
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
        kept, safe_target, target_weight = _target_weights(target_rows, weight, ignore_index, rows.dtype)
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


# --------------------------------------------------------------------------- shared steps
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


def _target_weights(target, weight, ignore_index, dtype):
    """Per-row: kept (1 or 0 as dtype), the target with ignored rows set to class 0, and w[t_i] * kept."""
    xp = get_array_module(target)
    ignored = target == ignore_index
    kept = (~ignored).astype(dtype)
    safe_target = xp.where(ignored, 0, target)
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
                        f"{target.dtype}; minidl does not support class-probability targets")
    classes = input.shape[0] if input.ndim == 1 else input.shape[1]
    expected = () if input.ndim == 1 else (input.shape[0],) + tuple(input.shape[2:])
    if tuple(target.shape) != expected:
        raise ValueError(f"{name}: input of shape {tuple(input.shape)} expects target of shape {expected}, "
                         f"got {tuple(target.shape)}")
    if weight is not None and tuple(weight.shape) != (classes,):
        raise ShapeError(f"{name}: weight must have one entry per class, shape ({classes},), "
                         f"got {tuple(weight.shape)}")
    valid = (target == ignore_index) | ((target >= 0) & (target < classes))
    if target.size and not bool(xp.all(valid)):
        bad = target[~valid].reshape(-1)[0]
        raise IndexError(f"{name}: target {int(bad)} is out of bounds for {classes} classes "
                         f"(valid: 0 to {classes - 1}, or ignore_index={ignore_index})")


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    """Cross entropy between logits (N, C) and integer class targets (N,), as PyTorch's.

    ``weight`` (C,) rescales each class; rows whose target is ``ignore_index`` count for nothing;
    ``label_smoothing`` eps mixes the one-hot target with the uniform distribution,
    (1 - eps) * onehot + eps / C, using exactly PyTorch's formula (also with weights).
    """
    target, weight = _array(target), _array(weight)
    _check_classification("cross_entropy", input, target, weight, reduction, ignore_index)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ArgumentError(f"cross_entropy: label_smoothing must be between 0.0 and 1.0, got {label_smoothing}")
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
