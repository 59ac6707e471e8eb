"""Adagrad (Duchi et al.): per-coordinate step sizes from the running sum of squared gradients."""
from ..backend import get_array_module
from .optimizer import Optimizer, _check_nonnegative


def adagrad_update(param, grad, state, lr, lr_decay, weight_decay, eps, maximize):
    """One Adagrad step on ``param`` in place, with PyTorch's formulas (t = step count after += 1)::

        g = -grad if maximize else grad
        g = g + weight_decay * param
        sum += g * g
        param -= lr / (1 + (t - 1) * lr_decay) * g / (sqrt(sum) + eps)
    """
    xp = get_array_module(param)
    state["step"] += 1
    g = -grad if maximize else grad
    if weight_decay != 0:
        g = g + weight_decay * param
    clr = lr / (1 + (state["step"] - 1) * lr_decay)
    square = g * g
    state["sum"] += square
    std = xp.sqrt(state["sum"], out=square)
    std += eps
    update = xp.divide(g, std, out=std)
    update *= -clr
    param += update


class Adagrad(Optimizer):
    """``Adagrad(params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0, eps=1e-10, maximize=False)``.

    State per parameter: ``step`` and ``sum`` (starting at ``initial_accumulator_value``), created when
    the optimizer is built, as in PyTorch.
    """

    def __init__(self, params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0, eps=1e-10, *,
                 maximize=False):
        _check_nonnegative(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                           initial_accumulator_value=initial_accumulator_value, eps=eps)
        defaults = dict(lr=lr, lr_decay=lr_decay, eps=eps, weight_decay=weight_decay,
                        initial_accumulator_value=initial_accumulator_value, maximize=maximize)
        super().__init__(params, defaults)
        for group in self.param_groups:
            for p in group["params"]:
                self._init_state(self.state[p], p, group)

    def _init_state(self, state, p, group):
        xp = get_array_module(p.array)
        state["step"] = 0
        state["sum"] = xp.full_like(p.array, group["initial_accumulator_value"])

    def _update(self, param, grad, state, group):
        # float(): a hyper-parameter read back from a checkpoint may be a NumPy float64, which would upcast
        # float32 arrays; a Python float never does.
        adagrad_update(param, grad, state, float(group["lr"]), float(group["lr_decay"]),
                       float(group["weight_decay"]), float(group["eps"]), bool(group["maximize"]))
