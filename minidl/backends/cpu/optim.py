"""SGD's and Adam's steps on the CPU in one pass per parameter: the fast twins of ``optim/sgd.py``'s
``sgd_update`` and ``optim/adam.py``'s ``adam_update``.

The reference update is NumPy, one whole-array operation at a time::

    d = grad + weight_decay * param          (two passes and two temporaries)
    buf *= momentum; buf += (1 - dampening) * d
    param -= lr * d

about eight passes over memory per parameter, each reading or writing a full array: for ResNet-18's
11 million parameters, ~20 ms a step.  The numba kernel below reads param, grad and buf once and writes
param and buf once, element by element, with the same operations in the same order and in the
parameter's dtype (the hyper-parameters rounded to it first, as NumPy does with a Python float), so
the result is the reference's to the bit.  Adam (and AdamW, AMSGrad) the same way: its reference makes
about fourteen passes over param, grad and its two or three moment arrays, the kernel one.  Large parameters are split across the CPU's threads
(``threads.for_ranges``: each range updates its own elements).

``Optimizer.step`` asks the registry for a fast implementation of its class per param group
(``backends/registry.py``); the class registered here updates the whole group, parameter by
parameter.  It runs for NumPy float32/float64 parameters and gradients of one dtype, contiguous,
with numba available; otherwise the reference runs.  (The GPU's version: backends/cuda/optim.py.)
"""
import functools

import numpy as np

from ...optim.adam import Adam, adam_update
from ...optim.adamw import AdamW
from ...optim.sgd import SGD, sgd_update
from ..registry import register
from .kernels import compiled_or_twins
from .threads import for_ranges


def sgd_numpy(param, grad, buf, lr, momentum, dampening, weight_decay, nesterov, maximize, first_step):
    """The NumPy twin: ``optim/sgd.py``'s ``sgd_update`` on flat arrays, buf updated in place."""
    state = {} if first_step else {"momentum_buffer": buf}
    sgd_update(param, grad, state, float(lr), float(momentum), float(dampening), float(weight_decay), nesterov,
               maximize)
    if first_step and momentum != 0:
        buf[...] = state["momentum_buffer"]


def adam_numpy(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, step, lr, beta1, beta2, eps, weight_decay,
               amsgrad, maximize, decoupled):
    """The NumPy twin: ``optim/adam.py``'s ``adam_update`` at step ``step`` (already counted), moments in place."""
    state = dict(step=step - 1, exp_avg=exp_avg, exp_avg_sq=exp_avg_sq, max_exp_avg_sq=max_exp_avg_sq)
    adam_update(param, grad, state, lr, beta1, beta2, eps, weight_decay, amsgrad, maximize, decoupled)


def _compile():
    import numba

    # nogil: ranges of one parameter run in parallel threads.  error_model="numpy": a float division follows IEEE
    # (inf, NaN) as NumPy does instead of testing for a zero divisor, which lets LLVM vectorise the loops.
    jit = numba.njit(nogil=True, cache=True, error_model="numpy")

    @jit
    def sgd(param, grad, buf, lr, momentum, one_minus_dampening, weight_decay, nesterov, maximize, first_step):
        for i in range(param.shape[0]):
            d = -grad[i] if maximize else grad[i]
            if weight_decay != 0:
                d = d + weight_decay * param[i]
            if momentum != 0:
                b = d if first_step else momentum * buf[i] + one_minus_dampening * d
                buf[i] = b
                d = d + momentum * b if nesterov else b
            param[i] = param[i] - lr * d

    @jit
    def adam(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, shrink, weight_decay, one_minus_beta1, beta2,
             one_minus_beta2, bias_correction2_sqrt, eps, minus_step_size, amsgrad, maximize, decoupled):
        for i in range(param.shape[0]):
            g = -grad[i] if maximize else grad[i]
            p = param[i]
            if weight_decay != 0:
                if decoupled:
                    p = p * shrink
                else:
                    g = g + weight_decay * p
            m = exp_avg[i] + (g - exp_avg[i]) * one_minus_beta1
            v = exp_avg_sq[i] * beta2 + (g * g) * one_minus_beta2
            exp_avg[i], exp_avg_sq[i] = m, v
            if amsgrad:
                largest = max_exp_avg_sq[i]
                if not (largest >= v or largest != largest):  # np.maximum: the larger, NaN if either is NaN
                    largest = v
                max_exp_avg_sq[i] = largest
                v = largest
            denom = np.sqrt(v) / bias_correction2_sqrt + eps
            param[i] = p + (m / denom) * minus_step_size

    return dict(sgd=sgd, adam=adam)


def numpy_kernels():
    return dict(sgd=sgd_numpy, adam=adam_numpy)


@functools.cache  # compiled, or loaded from numba's cache, once: on first use
def kernels():
    """The numba kernels by name, or the NumPy twins without numba (MINIDL_DISABLE_NUMBA=1)."""
    return compiled_or_twins(_compile, numpy_kernels)


def sgd_step(param, grad, buf, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False, maximize=False,
             first_step=False):
    """One SGD step of a C-contiguous NumPy parameter, in place: param and (with momentum) buf; on the
    ``first_step`` buf is written as d, as the reference's ``g.copy()``.  Scalars are rounded to the
    parameter's dtype before use, as NumPy rounds a Python float in ``weight_decay * param``."""
    kernel, real = kernels()["sgd"], param.dtype.type
    flat = [a.reshape(-1) for a in (param, grad, buf if momentum != 0 else param)]
    if kernel is sgd_numpy:
        hyper = (lr, momentum, dampening, weight_decay)
    else:  # (1 - dampening) is rounded once from the Python float, as NumPy does in ``(1 - dampening) * g``
        hyper = (real(lr), real(momentum), real(1 - dampening), real(weight_decay))

    def elements(first, stop):
        kernel(*(a[first:stop] for a in flat), *hyper, nesterov, maximize, first_step)

    for_ranges(elements, flat[0].size, 5 * flat[0].size)


def adam_step(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, step, lr, beta1=0.9, beta2=0.999, eps=1e-8,
              weight_decay=0.0, amsgrad=False, maximize=False, decoupled=False):
    """One Adam (``decoupled``: AdamW) step of a C-contiguous NumPy parameter at step ``step`` (counted from 1),
    in place: param and its moments.  Every scalar the reference computes in Python (1 - beta1, the bias
    corrections, the step size) is computed the same way here and rounded once to the parameter's dtype."""
    kernel, real = kernels()["adam"], param.dtype.type
    arrays = (param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq if amsgrad else exp_avg_sq)
    flat = [a.reshape(-1) for a in arrays]
    if kernel is adam_numpy:
        extra = (step, lr, beta1, beta2, eps, weight_decay, amsgrad, maximize, decoupled)
    else:
        step_size = lr / (1 - beta1 ** step)
        extra = (real(1 - lr * weight_decay), real(weight_decay), real(1 - beta1), real(beta2), real(1 - beta2),
                 real((1 - beta2 ** step) ** 0.5), real(eps), real(-step_size), amsgrad, maximize, decoupled)

    def elements(first, stop):
        kernel(*(a[first:stop] for a in flat), *extra)

    for_ranges(elements, flat[0].size, 7 * flat[0].size)


def _is_plain(array, dtype):
    return isinstance(array, np.ndarray) and array.dtype == dtype and array.flags.c_contiguous


def _plain_group(params):
    """Every parameter and gradient a C-contiguous NumPy array of one float dtype: what the kernels take."""
    dtype = params[0].array.dtype
    return dtype in (np.float32, np.float64) and all(_is_plain(p.array, dtype) and _is_plain(p.grad.array, dtype)
                                                     for p in params)


@register(SGD, "cpu")
class SGDFused(SGD):
    """SGD's step for a whole param group, one fused pass per parameter (never instantiated)."""

    @classmethod
    def supports(cls, params, group):
        return _plain_group(params)

    @classmethod
    def update_group(cls, optimizer, group, params):
        hyper = dict(lr=float(group["lr"]), momentum=float(group["momentum"]), dampening=float(group["dampening"]),
                     weight_decay=float(group["weight_decay"]), nesterov=bool(group["nesterov"]),
                     maximize=bool(group["maximize"]))
        for p in params:
            state = optimizer.state[p]
            buf = state.get("momentum_buffer")
            first_step = hyper["momentum"] != 0 and buf is None
            if first_step:
                buf = state["momentum_buffer"] = np.empty_like(p.array)
            if buf is not None and not _is_plain(buf, p.array.dtype):  # e.g. a buffer loaded in another dtype
                sgd_update(p.array, p.grad.array, state, **hyper)
                continue
            sgd_step(p.array, p.grad.array, buf, first_step=first_step, **hyper)


class _AdamGroup:
    """Adam's and AdamW's step for a whole param group (``optimizer._decoupled_weight_decay`` tells them apart)."""

    @classmethod
    def update_group(cls, optimizer, group, params):
        beta1, beta2 = (float(beta) for beta in group["betas"])
        hyper = dict(lr=float(group["lr"]), beta1=beta1, beta2=beta2, eps=float(group["eps"]),
                     weight_decay=float(group["weight_decay"]), amsgrad=bool(group["amsgrad"]),
                     maximize=bool(group["maximize"]), decoupled=optimizer._decoupled_weight_decay)
        for p in params:
            state = optimizer.state[p]
            moments = [state["exp_avg"], state["exp_avg_sq"]] + ([state["max_exp_avg_sq"]] if hyper["amsgrad"] else [])
            if not all(_is_plain(m, p.array.dtype) for m in moments):  # e.g. moments loaded in another dtype
                adam_update(p.array, p.grad.array, state, **hyper)
                continue
            state["step"] += 1
            adam_step(p.array, p.grad.array, state["exp_avg"], state["exp_avg_sq"], state.get("max_exp_avg_sq"),
                      state["step"], **hyper)


@register(Adam, "cpu")
class AdamFused(_AdamGroup, Adam):
    """Adam's step for a whole param group, one fused pass per parameter (never instantiated)."""

    @classmethod
    def supports(cls, params, group):
        return _plain_group(params)


@register(AdamW, "cpu")
class AdamWFused(_AdamGroup, AdamW):
    """AdamW's step for a whole param group, one fused pass per parameter (never instantiated)."""

    @classmethod
    def supports(cls, params, group):
        return _plain_group(params)
