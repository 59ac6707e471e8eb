"""Stochastic gradient descent with momentum, dampening, Nesterov momentum and weight decay."""
from .optimizer import Optimizer, _check_nonnegative


def sgd_update(param, grad, state, lr, momentum, dampening, weight_decay, nesterov, maximize):
    """One SGD step on ``param`` in place, with PyTorch's formulas::

        g = -grad if maximize else grad
        g = g + weight_decay * param
        buf = g                                         (first step, no dampening)
        buf = momentum * buf + (1 - dampening) * g      (later steps)
        g = g + momentum * buf if nesterov else buf
        param -= lr * g
    """
    g = -grad if maximize else grad
    if weight_decay != 0:
        g = g + weight_decay * param
    if momentum != 0:
        buf = state.get("momentum_buffer")
        if buf is None:
            buf = state["momentum_buffer"] = g.copy()
        else:
            buf *= momentum
            buf += (1 - dampening) * g
        g = g + momentum * buf if nesterov else buf
    param -= lr * g


class SGD(Optimizer):
    """``SGD(params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False, maximize=False)``.

    State per parameter: ``momentum_buffer`` (only when ``momentum != 0``), as in PyTorch.
    """

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False, *,
                 maximize=False):
        _check_nonnegative(lr=lr, momentum=momentum, weight_decay=weight_decay)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum > 0 and zero dampening")
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                        nesterov=nesterov, maximize=maximize)
        super().__init__(params, defaults)

    def _init_state(self, state, p, group):
        pass  # the momentum buffer is created from the first gradient

    def _update(self, param, grad, state, group):
        # float(): a hyper-parameter read back from a checkpoint may be a NumPy float64, which would upcast
        # float32 arrays; a Python float never does.
        sgd_update(param, grad, state, float(group["lr"]), float(group["momentum"]), float(group["dampening"]),
                   float(group["weight_decay"]), bool(group["nesterov"]), bool(group["maximize"]))
