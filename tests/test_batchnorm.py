"""batch_norm: finite-difference gradients, PyTorch parity (outputs, gradients, running statistics),
momentum=None as a cumulative average, eval mode, float32 and errors."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import minidl
from minidl.functions.batchnorm import batch_norm
from minidl.gradcheck import gradcheck
from tests.helpers import assert_close, leaf, torch_or_skip

seeds = st.integers(0, 2**16)


@st.composite
def input_shapes(draw):
    """(N, C), (N, C, L) or (N, C, H, W), at least two values per channel."""
    n, c = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    spatial = draw(st.sampled_from([(), (3,), (1, 2), (2, 2), (2, 3)]))
    if n == 1 and not spatial:
        n = 2
    return (n, c) + spatial


def random_case(shape, seed):
    rng = np.random.default_rng(seed)
    channels = shape[1]
    return dict(x=rng.standard_normal(shape) * 2 + 1, weight=rng.standard_normal(channels),
                bias=rng.standard_normal(channels), mean=rng.standard_normal(channels),
                var=rng.random(channels) + 0.5, g=rng.standard_normal(shape))


@given(shape=input_shapes(), training=st.booleans(), affine=st.booleans(), seed=seeds)
def test_gradcheck(shape, training, affine, seed):
    case = random_case(shape, seed)
    running = (None, None) if training else (minidl.tensor(case["mean"]), minidl.tensor(case["var"]))
    params = [leaf(case["weight"]), leaf(case["bias"])] if affine else []

    def fn(x, *weight_and_bias):
        return batch_norm(x, *running, *weight_and_bias, training=training, eps=1e-3)

    assert gradcheck(fn, leaf(case["x"]), *params)


def run_both(torch, case, training, affine, momentum=0.1, eps=1e-5):
    """One forward+backward of ours and PyTorch's on the same data; returns both sets of tensors."""
    ours = dict(x=leaf(case["x"]), mean=minidl.tensor(case["mean"]), var=minidl.tensor(case["var"]),
                weight=leaf(case["weight"]) if affine else None, bias=leaf(case["bias"]) if affine else None)
    theirs = dict(x=torch.tensor(case["x"], requires_grad=True), mean=torch.tensor(case["mean"]),
                  var=torch.tensor(case["var"]),
                  weight=torch.tensor(case["weight"], requires_grad=True) if affine else None,
                  bias=torch.tensor(case["bias"], requires_grad=True) if affine else None)
    y = batch_norm(ours["x"], ours["mean"], ours["var"], ours["weight"], ours["bias"], training, momentum, eps)
    ty = torch.nn.functional.batch_norm(theirs["x"], theirs["mean"], theirs["var"], theirs["weight"],
                                        theirs["bias"], training, momentum, eps)
    (y * minidl.tensor(case["g"])).sum().backward()
    (ty * torch.tensor(case["g"])).sum().backward()
    return y, ty, ours, theirs


@given(shape=input_shapes(), training=st.booleans(), affine=st.booleans(), seed=seeds,
       momentum=st.floats(0.0, 1.0))
def test_matches_torch(shape, training, affine, seed, momentum):
    torch = torch_or_skip()
    y, ty, ours, theirs = run_both(torch, random_case(shape, seed), training, affine, momentum)
    assert_close(y, ty.detach().numpy(), what="output")
    assert_close(ours["x"].grad, theirs["x"].grad.numpy(), rtol=1e-9, atol=1e-11, what="input gradient")
    if affine:
        assert_close(ours["weight"].grad, theirs["weight"].grad.numpy(), what="weight gradient")
        assert_close(ours["bias"].grad, theirs["bias"].grad.numpy(), what="bias gradient")
    assert_close(ours["mean"], theirs["mean"].numpy(), what="running_mean")
    assert_close(ours["var"], theirs["var"].numpy(), what="running_var")


def test_running_stats_after_several_training_calls_then_eval():
    torch = torch_or_skip()
    rng = np.random.default_rng(7)
    ours_mean, ours_var = minidl.zeros(4, dtype=minidl.float64), minidl.ones(4, dtype=minidl.float64)
    torch_mean, torch_var = torch.zeros(4, dtype=torch.float64), torch.ones(4, dtype=torch.float64)
    for _ in range(5):
        x = rng.standard_normal((6, 4, 3, 3)) * 3 + 2
        batch_norm(leaf(x), ours_mean, ours_var, training=True, momentum=0.3)
        torch.nn.functional.batch_norm(torch.tensor(x), torch_mean, torch_var, training=True, momentum=0.3)
    assert_close(ours_mean, torch_mean.numpy(), what="running_mean")
    assert_close(ours_var, torch_var.numpy(), what="running_var")
    assert not np.allclose(ours_var.numpy(), 1.0)  # the stats really moved

    x = rng.standard_normal((2, 4, 3, 3))
    ours_y = batch_norm(leaf(x), ours_mean, ours_var, training=False)
    torch_y = torch.nn.functional.batch_norm(torch.tensor(x), torch_mean, torch_var, training=False)
    assert_close(ours_y, torch_y.numpy(), what="eval output")
    assert_close(ours_mean, torch_mean.numpy(), what="running_mean unchanged by eval")


def test_running_var_uses_unbiased_batch_variance():
    x = np.random.default_rng(1).standard_normal((5, 2))
    mean, var = minidl.zeros(2, dtype=minidl.float64), minidl.zeros(2, dtype=minidl.float64)
    batch_norm(leaf(x), mean, var, training=True, momentum=1.0)
    assert_close(mean, x.mean(axis=0))
    assert_close(var, x.var(axis=0, ddof=1))


def test_momentum_none_is_a_cumulative_average_when_caller_passes_one_over_count():
    torch = torch_or_skip()
    module = torch.nn.BatchNorm2d(3, momentum=None, affine=False).double()
    mean, var = minidl.zeros(3, dtype=minidl.float64), minidl.ones(3, dtype=minidl.float64)
    rng = np.random.default_rng(3)
    batches = [rng.standard_normal((4, 3, 2, 2)) + i for i in range(4)]
    for count, x in enumerate(batches, start=1):
        module(torch.tensor(x))
        batch_norm(leaf(x), mean, var, training=True, momentum=1.0 / count)
    assert_close(mean, module.running_mean.numpy(), what="running_mean")
    assert_close(var, module.running_var.numpy(), what="running_var")
    # a cumulative average: the running mean is the plain mean of the batch means
    assert_close(mean, np.mean([x.mean(axis=(0, 2, 3)) for x in batches], axis=0))


def test_momentum_none_is_accepted_where_nothing_is_updated_and_explained_otherwise():
    x = minidl.randn(4, 3)
    mean, var = minidl.zeros(3), minidl.ones(3)
    batch_norm(x, mean, var, training=False, momentum=None)
    batch_norm(x, None, None, training=True, momentum=None)
    with pytest.raises(ValueError, match="momentum=1/num_batches_tracked"):
        batch_norm(x, mean, var, training=True, momentum=None)


def test_training_without_running_stats_normalises_each_channel():
    x = leaf(np.random.default_rng(2).standard_normal((8, 3, 2, 2)) * 5 + 3)
    y = batch_norm(x, None, None, training=True).detach().numpy()
    assert_close(y.mean(axis=(0, 2, 3)), np.zeros(3), atol=1e-12)
    assert_close(y.var(axis=(0, 2, 3)), np.ones(3), rtol=1e-5)  # var / (var + eps), var ~ 25


def test_float32_stays_float32_and_matches_float64():
    rng = np.random.default_rng(4)
    x64 = rng.standard_normal((16, 4, 5, 5)) * 2 + 1
    outputs = {}
    for dtype in (minidl.float32, minidl.float64):
        x = minidl.tensor(x64, dtype=dtype, requires_grad=True)
        w, b = minidl.ones(4, dtype=dtype, requires_grad=True), minidl.zeros(4, dtype=dtype, requires_grad=True)
        mean, var = minidl.zeros(4, dtype=dtype), minidl.ones(4, dtype=dtype)
        y = batch_norm(x, mean, var, w, b, training=True)
        (y * y).sum().backward()
        for t in (y, x.grad, w.grad, b.grad, mean, var):
            assert t.dtype == dtype
        outputs[dtype] = (y.detach().numpy(), x.grad.numpy(), mean.numpy(), var.numpy())
    for low, high in zip(outputs[minidl.float32], outputs[minidl.float64]):
        np.testing.assert_allclose(low, high, rtol=1e-4, atol=1e-4)


def test_no_gradient_work_for_frozen_parameters():
    x = leaf(np.random.default_rng(5).standard_normal((4, 2)))
    w = minidl.tensor(np.ones(2), dtype=minidl.float64)
    batch_norm(x, None, None, w, None, training=True).sum().backward()
    assert x.grad is not None and w.grad is None


@pytest.mark.parametrize("which", ["running_mean", "running_var", "weight", "bias"])
def test_channel_mismatch_names_expected_and_actual(which):
    arguments = dict(running_mean=minidl.zeros(16), running_var=minidl.ones(16), weight=minidl.ones(16),
                     bias=minidl.zeros(16))
    arguments[which] = minidl.zeros(32)
    with pytest.raises(ValueError, match=rf"expected {which} of shape \(16,\) .*16 channels, got shape \(32,\)"):
        batch_norm(minidl.zeros(2, 16, 4, 4), training=True, **arguments)


def test_other_errors():
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        batch_norm(minidl.zeros(1, 3), None, None, training=True)
    with pytest.raises(ValueError, match="needs running_mean and running_var"):
        batch_norm(minidl.zeros(2, 3), None, None, training=False)
    with pytest.raises(ValueError, match=r"\(N, C\), \(N, C, L\) or \(N, C, H, W\)"):
        batch_norm(minidl.zeros(3), None, None, training=True)
