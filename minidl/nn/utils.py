"""``minidl.nn.utils``: gradient clipping."""
import math

from ..backend import get_array_module


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False):
    """Scales all gradients together so their joint ``norm_type``-norm is at most ``max_norm``.

    Returns the total norm before clipping, as a 0-d tensor (as PyTorch does).
    """
    from ..tensor import Tensor
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    grads = [p.grad.array for p in parameters if p.grad is not None]
    if not grads:
        return Tensor(0.0)
    xp = get_array_module(grads[0])
    norm_type = float(norm_type)
    # each gradient's norm in its own dtype (as PyTorch), then the norm of those norms: one host sync
    if math.isinf(norm_type):
        norms = xp.stack([xp.abs(g).max() for g in grads])
        total = float(norms.max())
    else:
        norms = xp.stack([xp.linalg.norm(g.ravel(), norm_type) for g in grads])
        total = float(xp.linalg.norm(norms, norm_type))
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(f"the total norm of order {norm_type} of the gradients is non-finite ({total})")
    scale = max_norm / (total + 1e-6)
    if scale < 1:
        for g in grads:
            g *= g.dtype.type(scale)
    return Tensor._from_array(xp.asarray(total, dtype=grads[0].dtype))
