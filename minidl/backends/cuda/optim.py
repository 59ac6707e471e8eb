"""Fused multi-tensor SGD, Adam and AdamW on the GPU (kernels/optimizers.cu).

``Optimizer.step`` asks the registry for a fast implementation of its class for each param group
(``choose(type(optimizer), params, group)``).  The classes registered here are never instantiated:
their ``update_group(optimizer, group, params)`` updates every parameter of the group at once, in
place of the per-tensor loop, with exactly the per-tensor arithmetic (optim/sgd.py, optim/adam.py).

The parameters, gradients and state tensors of up to ``MAX_TENSORS`` parameters travel by value in
one kernel argument (the ``TensorLists`` struct of optimizers.cu), so a step makes no host-to-device
copy even though every step's gradients are new arrays; hyper-parameters are scalar arguments.
"""
import math

import numpy as np

from ...optim.adam import Adam
from ...optim.adamw import AdamW
from ...optim.sgd import SGD
from ..registry import register
from .launch import i32, i64, is_float_array, launch, real

MAX_TENSORS, MAX_LISTS = 48, 5  # as in kernels/optimizers.cu
TENSOR_LISTS = np.dtype([("address", np.uint64, (MAX_LISTS, MAX_TENSORS)), ("start", np.int64, (MAX_TENSORS + 1,)),
                         ("count", np.int32)], align=True)  # struct TensorLists, laid out as the C compiler does


def tensor_lists(*lists):
    """(struct, total elements) for kernels/optimizers.cu: ``lists[k][t]`` is tensor t of list k (None for a
    list the kernel does not read).  One NumPy record, passed by value as a kernel argument."""
    count = len(lists[0])
    struct = np.zeros(1, dtype=TENSOR_LISTS)
    for k, arrays in enumerate(lists):
        if arrays is not None:
            struct["address"][0, k, :count] = [a.data.ptr for a in arrays]
    struct["start"][0, 1:count + 1] = np.cumsum([a.size for a in lists[0]])
    struct["count"] = count
    return struct, int(struct["start"][0, count])


def _chunks(count):
    return [slice(first, min(first + MAX_TENSORS, count)) for first in range(0, count, MAX_TENSORS)]


def _check(name, dtype, *lists):
    count = len(lists[0])
    for arrays in lists:
        if arrays is None:
            continue
        if len(arrays) != count:
            raise ValueError(f"{name}: every list must hold one array per parameter ({count}), got {len(arrays)}")
        for a in arrays:
            if a.dtype != dtype or not a.flags.c_contiguous:
                raise ValueError(f"{name}: every array must be C-contiguous {dtype}, got {a.dtype} "
                                 f"(contiguous: {a.flags.c_contiguous}); group parameters by dtype")


def sgd_update_multi(params, grads, bufs, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
    """kernels/optimizers.cu sgd_multi: torch.optim.SGD's update of every (param, grad, momentum buffer), in
    place, MAX_TENSORS tensors per launch.  With momentum, ``bufs=None`` is the first step: the buffers are
    made (buf = d) and returned; otherwise ``bufs`` is returned as given."""
    import cupy
    if not params:
        return bufs
    dtype = params[0].dtype
    first_step = momentum != 0 and bufs is None
    if first_step:
        bufs = [cupy.empty_like(p) for p in params]
    _check("sgd_update_multi", dtype, params, grads, bufs if momentum else None)
    for part in _chunks(len(params)):
        struct, total = tensor_lists(params[part], grads[part], bufs[part] if momentum else None)
        launch("optimizers.cu", "sgd_multi",
               (struct, i64(total), real(lr, dtype), real(momentum, dtype), real(dampening, dtype),
                real(weight_decay, dtype), i32(bool(nesterov)), i32(first_step)), total, dtype)
    return bufs


def adam_update_multi(params, grads, exp_avgs, exp_avg_sqs, step, lr, beta1=0.9, beta2=0.999, eps=1e-8,
                      weight_decay=0.0, decoupled=False, max_exp_avg_sqs=None):
    """kernels/optimizers.cu adam_multi: torch.optim.Adam (``decoupled=False``) / AdamW update of every
    parameter at step ``step`` (counted from 1), in place, MAX_TENSORS tensors per launch; with
    ``max_exp_avg_sqs``, AMSGrad."""
    if not params:
        return
    dtype = params[0].dtype
    _check("adam_update_multi", dtype, params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs)
    amsgrad = max_exp_avg_sqs is not None
    for part in _chunks(len(params)):
        struct, total = tensor_lists(params[part], grads[part], exp_avgs[part], exp_avg_sqs[part],
                                     max_exp_avg_sqs[part] if amsgrad else None)
        launch("optimizers.cu", "adam_multi",
               (struct, i64(total), real(lr, dtype), real(beta1, dtype), real(beta2, dtype), real(eps, dtype),
                real(weight_decay, dtype), i32(bool(decoupled)), i32(amsgrad), real(1 - beta1 ** step, dtype),
                real(math.sqrt(1 - beta2 ** step), dtype)), total, dtype)


def _fusable(params, group):
    """All on the GPU in one float dtype, contiguous, gradients alike, and not ``maximize``."""
    dtype = params[0].array.dtype
    return (not group.get("maximize", False) and dtype in (np.float32, np.float64)
            and all(is_float_array(p.array) and p.array.dtype == dtype and p.array.flags.c_contiguous
                    and p.grad.array.dtype == dtype and p.grad.array.flags.c_contiguous and p.device.type == "cuda"
                    for p in params))


@register(SGD, "cuda")
class SGDCuda(SGD):
    """SGD's step for a whole param group in one launch per MAX_TENSORS parameters."""

    @classmethod
    def supports(cls, params, group):
        return _fusable(params, group)

    @classmethod
    def update_group(cls, optimizer, group, params):
        hyper = dict(lr=float(group["lr"]), momentum=float(group["momentum"]), dampening=float(group["dampening"]),
                     weight_decay=float(group["weight_decay"]), nesterov=bool(group["nesterov"]))
        states = [optimizer.state[p] for p in params]
        if not hyper["momentum"]:
            sgd_update_multi([p.array for p in params], [p.grad.array for p in params], None, **hyper)
            return
        parts = {first: [(p, s) for p, s in zip(params, states) if ("momentum_buffer" not in s) == first]
                 for first in (True, False)}  # parameters whose buffer is yet to be made (buf = d), and the rest
        for first, chosen in parts.items():
            if not chosen:
                continue
            bufs = sgd_update_multi([p.array for p, _ in chosen], [p.grad.array for p, _ in chosen],
                                    None if first else [s["momentum_buffer"] for _, s in chosen], **hyper)
            for (_, state), buf in zip(chosen, bufs):
                state["momentum_buffer"] = buf


class _AdamGroup:
    """Adam's and AdamW's step for a whole param group (``optimizer._decoupled_weight_decay`` tells them apart)."""

    @classmethod
    def update_group(cls, optimizer, group, params):
        beta1, beta2 = (float(beta) for beta in group["betas"])
        by_step = {}  # parameters added to the group later have taken fewer steps
        for p in params:
            state = optimizer.state[p]
            state["step"] += 1
            by_step.setdefault(state["step"], []).append((p, state))
        for step, chosen in by_step.items():
            states = [s for _, s in chosen]
            adam_update_multi([p.array for p, _ in chosen], [p.grad.array for p, _ in chosen],
                              [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states], step,
                              float(group["lr"]), beta1, beta2, float(group["eps"]), float(group["weight_decay"]),
                              optimizer._decoupled_weight_decay,
                              [s["max_exp_avg_sq"] for s in states] if group["amsgrad"] else None)


@register(Adam, "cuda")
class AdamCuda(_AdamGroup, Adam):
    """Adam's step for a whole param group."""

    @classmethod
    def supports(cls, params, group):
        return _fusable(params, group)


@register(AdamW, "cuda")
class AdamWCuda(_AdamGroup, AdamW):
    """AdamW's step for a whole param group."""

    @classmethod
    def supports(cls, params, group):
        return _fusable(params, group)
