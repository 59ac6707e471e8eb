"""Checks a backward pass against central finite differences.

For a function f of tensors x_1..x_k, pick a random "upstream gradient" w of
f's output shape and compare, for every input element, the analytic
d(sum(w * f))/dx (one backward pass) with the numerical estimate

    (sum(w * f(x + eps e_i)) - sum(w * f(x - eps e_i))) / (2 eps),

which is exact to O(eps^2) for smooth f.  Run it in float64.
"""
import numpy as np

from .autograd import no_grad
from .tensor import Tensor


def numerical_grads(fn, inputs, weight, eps=1e-6):
    grads = []
    for x in inputs:
        if not (isinstance(x, Tensor) and x.requires_grad):
            grads.append(None)
            continue
        grad = np.zeros(x.shape, dtype=np.float64)
        for i in np.ndindex(x.shape):  # x.array itself, so non-contiguous inputs work too
            original = x.array[i]
            x.array[i] = original + eps
            with no_grad():
                plus = float((fn(*inputs).array * weight).sum())
            x.array[i] = original - eps
            with no_grad():
                minus = float((fn(*inputs).array * weight).sum())
            x.array[i] = original
            grad[i] = (plus - minus) / (2 * eps)
        grads.append(grad)
    return grads


def gradcheck(fn, *inputs, eps=1e-6, atol=1e-6, rtol=1e-5, seed=0):
    """Raises AssertionError if fn's backward disagrees with finite differences; returns True."""
    for x in inputs:
        if isinstance(x, Tensor) and x.requires_grad and x.dtype != np.float64:
            raise TypeError(f"gradcheck needs float64 inputs, got {x.dtype}")
    output = fn(*inputs)
    weight = np.random.default_rng(seed).standard_normal(output.shape)
    for x in inputs:
        if isinstance(x, Tensor):
            x.grad = None
    (output * Tensor(weight)).sum().backward()
    expected = numerical_grads(fn, inputs, weight, eps)
    for index, (x, numeric) in enumerate(zip(inputs, expected)):
        if numeric is None:
            continue
        analytic = np.zeros(x.shape) if x.grad is None else x.grad.array
        if not np.allclose(analytic, numeric, atol=atol, rtol=rtol):
            worst = np.abs(analytic - numeric).max()
            raise AssertionError(
                f"gradient of input {index} (shape {tuple(x.shape)}) differs from finite differences "
                f"by up to {worst:.3g}\nanalytic:\n{analytic}\nnumerical:\n{numeric}"
            )
    return True
