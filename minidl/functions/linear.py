"""The fully connected layer as one op: y = x W^T + b."""
from .. import amp
from ..autograd import Function
from ..errors import DTypeError, ShapeError


class Linear(Function):
    """y = x @ W^T + b for x of shape (..., in), W of shape (out, in), b of shape (out,).

    With the leading dims of x and g = dL/dy flattened into rows (x2: (rows, in), g2: (rows, out)):
        dL/dx = g @ W,   dL/dW = g2^T @ x2,   dL/db = sum of g2 over rows.

    Under ``minidl.amp.autocast`` the three products run in bf16/fp16 with float32 accumulation.
    """

    def forward(self, x, weight, bias=None):
        self.compute_dtype = amp.autocast_dtype()
        rows = x.reshape(-1, x.shape[-1]) if x.ndim != 2 else x
        y = amp.matmul(rows, weight.T, self.compute_dtype)  # one 2-D product for any number of leading dims
        if bias is not None:
            y += bias
        if self.recording:
            self.x, self.weight = x, weight
        return y.reshape(*x.shape[:-1], weight.shape[0])

    def backward(self, g):
        x, weight = self.x, self.weight
        g_rows = g.reshape(-1, g.shape[-1])
        grad_x = grad_weight = grad_bias = None
        if self.needs_input_grad[0]:
            grad_x = amp.matmul(g_rows, weight, self.compute_dtype).reshape(x.shape)
        if self.needs_input_grad[1]:
            grad_weight = amp.matmul(g_rows.T, x.reshape(-1, x.shape[-1]), self.compute_dtype)
        if len(self.needs_input_grad) > 2 and self.needs_input_grad[2]:
            grad_bias = g_rows.sum(axis=0)
        return grad_x, grad_weight, grad_bias


def _check_shapes(input, weight, bias):
    if weight.ndim != 2:
        raise ShapeError(f"linear: weight must be 2-D (out_features, in_features), got shape {tuple(weight.shape)}")
    if input.ndim == 0 or input.shape[-1] != weight.shape[1]:
        raise ShapeError(
            f"linear: weight of shape {tuple(weight.shape)} expects input with {weight.shape[1]} features "
            f"in its last dim, got input of shape {tuple(input.shape)}"
        )
    if bias is not None and tuple(bias.shape) != (weight.shape[0],):
        raise ShapeError(f"linear: bias must have shape ({weight.shape[0]},) to match weight of shape "
                         f"{tuple(weight.shape)}, got {tuple(bias.shape)}")
    dtypes = {a.dtype for a in (input, weight, bias) if a is not None}
    if len(dtypes) > 1:
        raise DTypeError(f"linear: input ({input.dtype}), weight ({weight.dtype})"
                        + ("" if bias is None else f" and bias ({bias.dtype})")
                        + " must have the same dtype; convert with .float() or .double()")


def linear(input, weight, bias=None):
    """y = input @ weight^T + bias, for input of shape (..., in_features)."""
    _check_shapes(input, weight, bias)
    if bias is None:
        return Linear.apply(input, weight)
    return Linear.apply(input, weight, bias)
