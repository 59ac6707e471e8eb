"""cross_entropy, nll_loss, mse_loss: finite-difference gradients, PyTorch parity (float64) over
reductions, class weights, ignore_index and label smoothing, float32, and errors."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import minidl
from minidl.functions.activation import log_softmax
from minidl.functions.loss import cross_entropy, mse_loss, nll_loss
from minidl.gradcheck import gradcheck
from tests.helpers import assert_close, leaf, torch_or_skip

seeds = st.integers(0, 2**16)
reductions = st.sampled_from(["mean", "sum", "none"])


@st.composite
def classification_cases(draw):
    """Logits of shape (N, C), (C,) or (N, C, d), integer targets with some ignored, optional weights."""
    layout = draw(st.sampled_from(["rows", "single", "spatial"]))
    n, c = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    shape, target_shape = {"rows": ((n, c), (n,)), "single": ((c,), ()),
                           "spatial": ((n, c, 2), (n, 2))}[layout]
    rng = np.random.default_rng(draw(seeds))
    target = rng.integers(0, c, target_shape)
    if target.size > 1 and draw(st.booleans()):
        target.reshape(-1)[0] = -100  # an ignored row, but never all of them
    weight = rng.random(c) + 0.5 if draw(st.booleans()) else None
    return dict(logits=rng.standard_normal(shape) * 2, target=target, weight=weight)


def ours_and_torch(torch, name, case, **options):
    ours_x = leaf(case["logits"])
    torch_x = torch.tensor(case["logits"], requires_grad=True)
    weight = case["weight"]
    if name == "cross_entropy":
        ours_y = cross_entropy(ours_x, minidl.tensor(case["target"]),
                               None if weight is None else minidl.tensor(weight), **options)
        torch_y = torch.nn.functional.cross_entropy(torch_x, torch.tensor(case["target"]),
                                                    None if weight is None else torch.tensor(weight), **options)
    else:
        class_dim = 0 if case["logits"].ndim == 1 else 1
        ours_y = nll_loss(log_softmax(ours_x, class_dim), minidl.tensor(case["target"]),
                          None if weight is None else minidl.tensor(weight), **options)
        torch_y = torch.nn.functional.nll_loss(torch.log_softmax(torch_x, class_dim), torch.tensor(case["target"]),
                                               None if weight is None else torch.tensor(weight), **options)
    g = np.random.default_rng(0).standard_normal(torch_y.shape)
    (ours_y * minidl.tensor(g)).sum().backward()
    (torch_y * torch.tensor(g)).sum().backward()
    assert_close(ours_y, torch_y.detach().numpy(), what=f"{name} value")
    assert_close(ours_x.grad, torch_x.grad.numpy(), what=f"{name} gradient")


@given(case=classification_cases(), reduction=reductions, smoothing=st.sampled_from([0.0, 0.1, 0.45, 1.0]))
def test_cross_entropy_matches_torch(case, reduction, smoothing):
    ours_and_torch(torch_or_skip(), "cross_entropy", case, reduction=reduction, label_smoothing=smoothing)


@given(case=classification_cases(), reduction=reductions)
def test_nll_loss_matches_torch(case, reduction):
    ours_and_torch(torch_or_skip(), "nll_loss", case, reduction=reduction)


@given(case=classification_cases(), reduction=reductions, smoothing=st.floats(0.0, 1.0))
def test_cross_entropy_gradcheck(case, reduction, smoothing):
    weight = None if case["weight"] is None else minidl.tensor(case["weight"])
    target = minidl.tensor(case["target"])
    assert gradcheck(lambda x: cross_entropy(x, target, weight, reduction=reduction, label_smoothing=smoothing),
                     leaf(case["logits"]))


@given(case=classification_cases(), reduction=reductions)
def test_nll_loss_gradcheck(case, reduction):
    weight = None if case["weight"] is None else minidl.tensor(case["weight"])
    target = minidl.tensor(case["target"])
    assert gradcheck(lambda x: nll_loss(x, target, weight, reduction=reduction), leaf(case["logits"]))


def test_cross_entropy_gradient_is_softmax_minus_smoothed_onehot_over_n():
    rng = np.random.default_rng(1)
    logits, target, eps = rng.standard_normal((5, 4)), np.array([0, 3, 1, 1, 2]), 0.2
    x = leaf(logits)
    cross_entropy(x, minidl.tensor(target), label_smoothing=eps).backward()
    softmax = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    smoothed = (1 - eps) * np.eye(4)[target] + eps / 4
    assert_close(x.grad, (softmax - smoothed) / 5)


def test_ignored_rows_get_no_loss_and_no_gradient():
    x = leaf(np.random.default_rng(2).standard_normal((3, 4)))
    target = minidl.tensor([1, -100, 2])
    per_row = cross_entropy(x, target, reduction="none", label_smoothing=0.1)
    assert per_row.detach().numpy()[1] == 0.0
    cross_entropy(x, target, label_smoothing=0.1).backward()
    assert not x.grad.numpy()[1].any() and x.grad.numpy()[0].any()


def test_cross_entropy_is_stable_for_huge_logits():
    x = minidl.tensor([[1e4, 0.0, -1e4]], dtype=minidl.float64)
    assert_close(cross_entropy(x, minidl.tensor([0])), 0.0)
    assert_close(cross_entropy(x, minidl.tensor([1])), 1e4)


def test_float32_stays_float32():
    x = minidl.randn(6, 5, requires_grad=True)
    float64_weight = minidl.ones(5, dtype=minidl.float64)
    for loss in (cross_entropy(x, minidl.tensor([0, 1, 2, 3, 4, 0]), float64_weight, label_smoothing=0.1),
                 nll_loss(x, minidl.tensor([0, 1, 2, 3, 4, 0]), float64_weight),
                 nll_loss(x, minidl.tensor([0, 1, 2, 3, 4, 0])), mse_loss(x, minidl.zeros(6, 5))):
        x.grad = None
        loss.backward()
        assert loss.dtype == np.float32 and x.grad.dtype == np.float32


@given(shape=st.lists(st.integers(1, 4), min_size=0, max_size=3).map(tuple), reduction=reductions, seed=seeds)
def test_mse_loss_gradcheck_and_torch(shape, reduction, seed):
    rng = np.random.default_rng(seed)
    x, y = rng.standard_normal(shape), rng.standard_normal(shape)
    assert gradcheck(lambda a, b: mse_loss(a, b, reduction), leaf(x), leaf(y))
    torch = torch_or_skip()
    ours_x, ours_y = leaf(x), leaf(y)
    torch_x, torch_y = torch.tensor(x, requires_grad=True), torch.tensor(y, requires_grad=True)
    ours, theirs = mse_loss(ours_x, ours_y, reduction), torch.nn.functional.mse_loss(torch_x, torch_y,
                                                                                      reduction=reduction)
    g = rng.standard_normal(theirs.shape)
    (ours * minidl.tensor(g)).sum().backward()
    (theirs * torch.tensor(g)).sum().backward()
    assert_close(ours, theirs.detach().numpy())
    assert_close(ours_x.grad, torch_x.grad.numpy())
    assert_close(ours_y.grad, torch_y.grad.numpy())


@pytest.mark.parametrize("loss", [cross_entropy, nll_loss])
def test_classification_errors(loss):
    x = minidl.zeros(3, 10)
    name = loss.__name__
    with pytest.raises(ValueError, match=f"{name}: unknown reduction 'avg'; valid values are 'mean', 'sum', 'none'"):
        loss(x, minidl.tensor([0, 1, 2]), reduction="avg")
    with pytest.raises(IndexError, match=f"{name}: target 12 is out of bounds for 10 classes"):
        loss(x, minidl.tensor([0, 12, 2]))
    with pytest.raises(IndexError, match="target -1 is out of bounds"):
        loss(x, minidl.tensor([0, -1, 2]))
    with pytest.raises(ValueError, match=r"expects target of shape \(3,\), got \(4,\)"):
        loss(x, minidl.tensor([0, 1, 2, 3]))
    with pytest.raises(TypeError, match="integer class indices"):
        loss(x, minidl.tensor([0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match=r"one entry per class, shape \(10,\), got \(3,\)"):
        loss(x, minidl.tensor([0, 1, 2]), weight=minidl.ones(3))


def test_other_loss_errors():
    with pytest.raises(ValueError, match="label_smoothing must be between 0.0 and 1.0"):
        cross_entropy(minidl.zeros(3, 10), minidl.tensor([0, 1, 2]), label_smoothing=1.5)
    with pytest.raises(ValueError, match=r"input of shape \(3, 1\) and target of shape \(3,\)"):
        mse_loss(minidl.zeros(3, 1), minidl.zeros(3))
    with pytest.raises(ValueError, match="unknown reduction 'total'"):
        mse_loss(minidl.zeros(3), minidl.zeros(3), reduction="total")


# ---------------------------------------------------------------- binary and probability-target losses
@st.composite
def binary_cases(draw):
    """Probabilities/logits x and soft targets t of one drawn shape; optional weight and pos_weight."""
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=3)))
    rng = np.random.default_rng(draw(seeds))
    weight = rng.random(shape[-1:]) + 0.5 if draw(st.booleans()) else None
    pos_weight = rng.random(shape[-1:]) * 3 if draw(st.booleans()) else None
    return dict(x=rng.uniform(0.05, 0.95, shape), z=rng.standard_normal(shape) * 3, t=rng.random(shape),
                weight=weight, pos_weight=pos_weight)


def _optional(lib, array):
    return None if array is None else lib.tensor(array)


# name -> (fn(F, lib, x, t, case, reduction), which case entry is x); each loss differentiated in x and t
BINARY_LOSSES = {
    "binary_cross_entropy": (lambda F, lib, x, t, case, r: F.binary_cross_entropy(
        x, t, _optional(lib, case["weight"]), reduction=r), "x"),
    "binary_cross_entropy_with_logits": (lambda F, lib, x, t, case, r: F.binary_cross_entropy_with_logits(
        x, t, _optional(lib, case["weight"]), reduction=r, pos_weight=_optional(lib, case["pos_weight"])), "z"),
    "cross_entropy_probabilities": (lambda F, lib, x, t, case, r: F.cross_entropy(
        x, t / t.sum(dim=min(x.ndim - 1, 1), keepdim=True), _optional(lib, case["weight"] if x.ndim < 3 else None),
        reduction=r, label_smoothing=0.2), "z"),  # classes along dim 1 (dim 0 of a 1-D input); weight one per class
}


@pytest.mark.parametrize("name", BINARY_LOSSES)
@given(case=binary_cases(), reduction=reductions)
def test_binary_losses_gradcheck(name, case, reduction):
    fn, input_name = BINARY_LOSSES[name]
    F = minidl.nn.functional
    assert gradcheck(lambda x, t: fn(F, minidl, x, t, case, reduction), leaf(case[input_name]), leaf(case["t"]))


@pytest.mark.parametrize("name", BINARY_LOSSES)
@given(case=binary_cases(), reduction=reductions)
def test_binary_losses_match_torch(name, case, reduction):
    torch = torch_or_skip()
    fn, input_name = BINARY_LOSSES[name]
    ours_x, ours_t = leaf(case[input_name]), leaf(case["t"])
    torch_x, torch_t = (torch.tensor(case[k], requires_grad=True) for k in (input_name, "t"))
    ours_y = fn(minidl.nn.functional, minidl, ours_x, ours_t, case, reduction)
    torch_y = fn(torch.nn.functional, torch, torch_x, torch_t, case, reduction)
    g = np.random.default_rng(0).standard_normal(torch_y.shape)
    (ours_y * minidl.tensor(g)).sum().backward()
    (torch_y * torch.tensor(g)).sum().backward()
    assert_close(ours_y, torch_y.detach().numpy(), what=f"{name} value")
    assert_close(ours_x.grad, torch_x.grad.numpy(), what=f"{name} input gradient")
    assert_close(ours_t.grad, torch_t.grad.numpy(), what=f"{name} target gradient")


def test_binary_losses_are_stable_at_the_extremes():
    torch = torch_or_skip()
    z = np.array([-1000.0, -30.0, 0.0, 30.0, 1000.0])
    t = np.array([1.0, 0.0, 0.5, 1.0, 0.0])
    ours = minidl.nn.functional.binary_cross_entropy_with_logits(leaf(z), leaf(t), reduction="none")
    theirs = torch.nn.functional.binary_cross_entropy_with_logits(torch.tensor(z), torch.tensor(t), reduction="none")
    assert_close(ours, theirs.numpy())
    x = np.array([0.0, 1.0, 0.5])  # log(0) is clamped at -100, as in PyTorch
    ours = minidl.nn.functional.binary_cross_entropy(leaf(x), leaf([1.0, 0.0, 0.5]), reduction="none")
    assert_close(ours, [100.0, 100.0, np.log(2)])


def test_binary_loss_modules_and_errors():
    F = minidl.nn.functional
    x, t = minidl.tensor([[0.2, 0.9]]), minidl.tensor([[0.0, 1.0]])
    assert_close(minidl.nn.BCELoss(reduction="sum")(x, t), F.binary_cross_entropy(x, t, reduction="sum"))
    pos_weight = minidl.tensor([2.0, 3.0])
    assert_close(minidl.nn.BCEWithLogitsLoss(pos_weight=pos_weight)(x, t),
                 F.binary_cross_entropy_with_logits(x, t, pos_weight=pos_weight))
    with pytest.raises(ValueError, match=r"target size \(1, 1\) must be the same as input size \(1, 2\)"):
        F.binary_cross_entropy_with_logits(x, minidl.tensor([[1.0]]))
    with pytest.raises(RuntimeError, match="between 0 and 1"):
        F.binary_cross_entropy(x * 2, t)
    with pytest.raises(ValueError, match="unknown reduction"):
        F.binary_cross_entropy(x, t, reduction="avg")
    with pytest.raises(RuntimeError, match="ignore_index is not supported for floating point target"):
        F.cross_entropy(x, t, ignore_index=0)
    with pytest.raises(TypeError, match="expected integer class indices"):
        F.cross_entropy(x, minidl.tensor([[0.5, 0.25, 0.25]]))  # neither class indices nor the input's shape
