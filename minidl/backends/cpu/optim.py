"""SGD's step on the CPU in one pass per parameter: the fast twin of ``optim/sgd.py``'s ``sgd_update``.

The reference update is NumPy, one whole-array operation at a time::

    d = grad + weight_decay * param          (two passes and two temporaries)
    buf *= momentum; buf += (1 - dampening) * d
    param -= lr * d

about eight passes over memory per parameter, each reading or writing a full array: for ResNet-18's
11 million parameters, ~20 ms a step.  The numba kernel below reads param, grad and buf once and writes
param and buf once, element by element, with the same operations in the same order and in the
parameter's dtype (the hyper-parameters rounded to it first, as NumPy does with a Python float), so
the result is the reference's to the bit.  Large parameters are split across the CPU's threads
(``threads.for_ranges``: each range updates its own elements).

``Optimizer.step`` asks the registry for a fast implementation of its class per param group
(``backends/registry.py``); the class registered here updates the whole group, parameter by
parameter.  It runs for NumPy float32/float64 parameters and gradients of one dtype, contiguous,
with numba available; otherwise the reference runs.  (The GPU's version: backends/cuda/optim.py.)
"""
import os

import numpy as np

from ...optim.sgd import SGD, sgd_update
from ..registry import register
from .threads import for_ranges

_kernel = None


def sgd_numpy(param, grad, buf, lr, momentum, dampening, weight_decay, nesterov, maximize, first_step):
    """The NumPy twin: ``optim/sgd.py``'s ``sgd_update`` on flat arrays, buf updated in place."""
    state = {} if first_step else {"momentum_buffer": buf}
    sgd_update(param, grad, state, float(lr), float(momentum), float(dampening), float(weight_decay), nesterov,
               maximize)
    if first_step and momentum != 0:
        buf[...] = state["momentum_buffer"]


def _compile():
    import numba

    @numba.njit(nogil=True, cache=True)  # nogil: ranges of one parameter run in parallel threads
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

    return sgd


def sgd_kernel():
    """The numba kernel, or the NumPy twin without numba (MINIDL_DISABLE_NUMBA=1)."""
    global _kernel
    if _kernel is None:
        _kernel = sgd_numpy
        if os.environ.get("MINIDL_DISABLE_NUMBA", "") not in ("1", "true"):
            try:
                _kernel = _compile()
            except ImportError:
                pass
    return _kernel


def sgd_step(param, grad, buf, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False, maximize=False,
             first_step=False):
    """One SGD step of a C-contiguous NumPy parameter, in place: param and (with momentum) buf; on the
    ``first_step`` buf is written as d, as the reference's ``g.copy()``.  Scalars are rounded to the
    parameter's dtype before use, as NumPy rounds a Python float in ``weight_decay * param``."""
    kernel, real = sgd_kernel(), param.dtype.type
    flat = [a.reshape(-1) for a in (param, grad, buf if momentum != 0 else param)]
    if kernel is sgd_numpy:
        hyper = (lr, momentum, dampening, weight_decay)
    else:  # (1 - dampening) is rounded once from the Python float, as NumPy does in ``(1 - dampening) * g``
        hyper = (real(lr), real(momentum), real(1 - dampening), real(weight_decay))

    def elements(first, stop):
        kernel(*(a[first:stop] for a in flat), *hyper, nesterov, maximize, first_step)

    for_ranges(elements, flat[0].size, 5 * flat[0].size)


def _is_plain(array, dtype):
    return isinstance(array, np.ndarray) and array.dtype == dtype and array.flags.c_contiguous


@register(SGD, "cpu")
class SGDFused(SGD):
    """SGD's step for a whole param group, one fused pass per parameter (never instantiated)."""

    @classmethod
    def supports(cls, params, group):
        dtype = params[0].array.dtype
        if dtype not in (np.float32, np.float64):
            return False
        return all(_is_plain(p.array, dtype) and _is_plain(p.grad.array, dtype) for p in params)

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
