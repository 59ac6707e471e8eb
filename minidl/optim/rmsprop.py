"""RMSprop (Hinton): divide the gradient by a running root-mean-square of recent gradients."""
from ..backend import get_array_module
from .optimizer import Optimizer, _check_nonnegative


def rmsprop_update(param, grad, state, lr, alpha, eps, weight_decay, momentum, centered, maximize):
    """One RMSprop step on ``param`` in place, with PyTorch's formulas::

        g = -grad if maximize else grad
        g = g + weight_decay * param
        v = alpha * v + (1 - alpha) * g * g
        mean = mean + (1 - alpha) * (g - mean)              (centered)
        avg = sqrt(v - mean * mean) if centered else sqrt(v), then avg += eps
        buf = momentum * buf + g / avg; param -= lr * buf   (momentum > 0)
        param -= lr * g / avg                               (otherwise)
    """
    xp = get_array_module(param)
    state["step"] += 1
    g = -grad if maximize else grad
    if weight_decay != 0:
        g = g + weight_decay * param
    square_avg = state["square_avg"]
    square_avg *= alpha
    work = g * g
    work *= 1 - alpha
    square_avg += work
    if centered:
        grad_avg = state["grad_avg"]
        xp.subtract(g, grad_avg, out=work)
        work *= 1 - alpha
        grad_avg += work
        xp.multiply(grad_avg, grad_avg, out=work)
        xp.subtract(square_avg, work, out=work)
        avg = xp.sqrt(work, out=work)
    else:
        avg = xp.sqrt(square_avg, out=work)
    avg += eps
    update = xp.divide(g, avg, out=avg)
    if momentum > 0:
        buf = state["momentum_buffer"]
        buf *= momentum
        buf += update
        update = xp.multiply(buf, -lr, out=update)
    else:
        update *= -lr
    param += update


class RMSprop(Optimizer):
    """``RMSprop(params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False, maximize=False)``.

    State per parameter: ``step``, ``square_avg``, ``momentum_buffer`` (when ``momentum > 0``) and
    ``grad_avg`` (when ``centered``), as in PyTorch.
    """

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False, *,
                 maximize=False):
        _check_nonnegative(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum)
        defaults = dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                        centered=centered, maximize=maximize)
        super().__init__(params, defaults)

    def _init_state(self, state, p, group):
        xp = get_array_module(p.array)
        state["step"] = 0
        state["square_avg"] = xp.zeros_like(p.array)
        if group["momentum"] > 0:
            state["momentum_buffer"] = xp.zeros_like(p.array)
        if group["centered"]:
            state["grad_avg"] = xp.zeros_like(p.array)

    def _update(self, param, grad, state, group):
        # float(): a hyper-parameter read back from a checkpoint may be a NumPy float64, which would upcast
        # float32 arrays; a Python float never does.
        rmsprop_update(param, grad, state, float(group["lr"]), float(group["alpha"]), float(group["eps"]),
                       float(group["weight_decay"]), float(group["momentum"]), bool(group["centered"]),
                       bool(group["maximize"]))
