"""Adam (Kingma & Ba), with the AMSGrad variant and L2 weight decay added to the gradient."""
from ..backend import get_array_module
from .optimizer import Optimizer, _check_betas, _check_nonnegative


def adam_update(param, grad, state, lr, beta1, beta2, eps, weight_decay, amsgrad, maximize, decoupled):
    """One Adam step on ``param`` in place, with PyTorch's formulas (t = the step count after += 1)::

        g = -grad if maximize else grad
        param *= 1 - lr * weight_decay                  (decoupled, AdamW)
        g = g + weight_decay * param                    (otherwise, L2)
        m = m + (1 - beta1) * (g - m)                   (torch's lerp)
        v = beta2 * v + (1 - beta2) * g * g
        v_max = max(v_max, v); use v_max for v          (amsgrad)
        param -= lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)
    """
    xp = get_array_module(param)
    state["step"] += 1
    step = state["step"]
    g = -grad if maximize else grad
    if weight_decay != 0:
        if decoupled:
            param *= 1 - lr * weight_decay
        else:
            g = g + weight_decay * param
    exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
    delta = g - exp_avg
    delta *= 1 - beta1
    exp_avg += delta
    exp_avg_sq *= beta2
    xp.multiply(g, g, out=delta)
    delta *= 1 - beta2
    exp_avg_sq += delta
    if amsgrad:
        xp.maximum(state["max_exp_avg_sq"], exp_avg_sq, out=state["max_exp_avg_sq"])
        exp_avg_sq = state["max_exp_avg_sq"]
    step_size = lr / (1 - beta1 ** step)
    denom = xp.sqrt(exp_avg_sq, out=delta)
    denom /= (1 - beta2 ** step) ** 0.5
    denom += eps
    update = xp.divide(exp_avg, denom, out=denom)
    update *= -step_size
    param += update


class Adam(Optimizer):
    """``Adam(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False, maximize=False)``.

    ``weight_decay`` adds ``weight_decay * param`` to the gradient (L2); see ``AdamW`` for the decoupled
    form.  State per parameter: ``step``, ``exp_avg``, ``exp_avg_sq`` and, with ``amsgrad``,
    ``max_exp_avg_sq``.  ``OneCycleLR``/``CyclicLR`` cycle ``betas[0]`` as the momentum.
    """
    _decoupled_weight_decay = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False, *,
                 maximize=False):
        _check_nonnegative(lr=lr, eps=eps, weight_decay=weight_decay)
        _check_betas(betas)
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                        maximize=maximize)
        super().__init__(params, defaults)

    def _init_state(self, state, p, group):
        xp = get_array_module(p.array)
        state["step"] = 0
        state["exp_avg"] = xp.zeros_like(p.array)
        state["exp_avg_sq"] = xp.zeros_like(p.array)
        if group["amsgrad"]:
            state["max_exp_avg_sq"] = xp.zeros_like(p.array)

    def _update(self, param, grad, state, group):
        # float(): a hyper-parameter read back from a checkpoint may be a NumPy float64, which would upcast
        # float32 arrays; a Python float never does.
        beta1, beta2 = (float(beta) for beta in group["betas"])
        adam_update(param, grad, state, float(group["lr"]), beta1, beta2, float(group["eps"]),
                    float(group["weight_decay"]), bool(group["amsgrad"]), bool(group["maximize"]),
                    self._decoupled_weight_decay)
