"""``Tensor.register_post_accumulate_grad_hook``: the engine hook DistributedDataParallel starts its
all-reduce from. Checked against PyTorch's hook of the same name: it runs once per backward, when the
leaf's ``.grad`` already holds every contribution of that backward, and before the backward ends."""
import numpy as np
import pytest

import minidl
from tests.helpers import torch_or_skip


def _graph(lib, w_first, w_last, x):
    """A leaf used three times (w_first) and one used once near the output (w_last)."""
    h = (x * w_first).tanh() + x * w_first
    return ((h * w_first) @ w_last).sum()


def _run(lib, tensor):
    rng = np.random.default_rng(0)
    x = tensor(rng.standard_normal((4, 3)))
    w_first = tensor(rng.standard_normal((4, 3)), requires_grad=True)
    w_last = tensor(rng.standard_normal((3, 2)), requires_grad=True)
    seen = []
    for name, leaf in (("first", w_first), ("last", w_last)):
        leaf.register_post_accumulate_grad_hook(
            lambda t, name=name: seen.append((name, np.array(t.grad.detach().numpy(), copy=True))))
    loss = _graph(lib, w_first, w_last, x)
    loss.backward()
    return seen, {"first": w_first.grad.numpy(), "last": w_last.grad.numpy()}


def test_hook_runs_once_with_the_whole_gradient_in_pytorchs_order():
    torch = torch_or_skip()
    ours, our_grads = _run(minidl, lambda a, **kw: minidl.tensor(a, dtype=minidl.float64, **kw))
    theirs, _ = _run(torch, lambda a, **kw: torch.tensor(a, dtype=torch.float64, **kw))
    assert [name for name, _ in ours] == [name for name, _ in theirs] == ["last", "first"]
    for (name, grad_at_hook), (_, torch_grad) in zip(ours, theirs):
        np.testing.assert_allclose(grad_at_hook, torch_grad, rtol=1e-12, err_msg=name)
        np.testing.assert_array_equal(grad_at_hook, our_grads[name])  # nothing was added after the hook


def test_hook_runs_while_backward_goes_on():
    x = minidl.randn(5, 3)
    w_out = minidl.randn(3, 1, requires_grad=True)
    w_in = minidl.randn(3, 3, requires_grad=True)
    log = []
    w_out.register_post_accumulate_grad_hook(lambda t: log.append(("hook", w_in.grad is None)))
    ((x @ w_in).relu() @ w_out).sum().backward()
    assert log == [("hook", True)]  # w_out's hook ran before w_in had its gradient


def test_hook_accumulates_across_backwards_and_can_be_removed():
    w = minidl.tensor([1.0, 2.0], requires_grad=True)
    grads = []
    handle = w.register_post_accumulate_grad_hook(lambda t: grads.append(t.grad.numpy().copy()))
    (w * w).sum().backward()
    (w * 3).sum().backward()
    handle.remove()
    (w * 3).sum().backward()
    np.testing.assert_array_equal(grads, [[2.0, 4.0], [5.0, 7.0]])


def test_no_hook_without_gradient_and_leaf_root():
    a = minidl.tensor([1.0], requires_grad=True)
    b = minidl.tensor([1.0], requires_grad=True)
    calls = []
    b.register_post_accumulate_grad_hook(lambda t: calls.append("b"))
    a.register_post_accumulate_grad_hook(lambda t: calls.append("a"))
    (a * b.detach()).sum().backward()
    a.backward(minidl.tensor([1.0]))  # a leaf as the root of backward
    assert calls == ["a", "a"]


def test_non_leaf_is_refused():
    y = minidl.tensor([1.0], requires_grad=True) * 2
    with pytest.raises(RuntimeError, match="non-leaf"):
        y.register_post_accumulate_grad_hook(lambda t: None)
