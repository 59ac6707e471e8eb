"""AdamW (Loshchilov & Hutter): Adam with weight decay decoupled from the gradient."""
from .adam import Adam


class AdamW(Adam):
    """``AdamW(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, maximize=False)``.

    As ``Adam``, except that weight decay shrinks the parameter directly before the Adam step,
    ``param *= 1 - lr * weight_decay``, instead of adding ``weight_decay * param`` to the gradient.
    """
    _decoupled_weight_decay = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, *,
                 maximize=False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                         maximize=maximize)
