"""Activations: finite-difference gradients, PyTorch parity (float64), stability, dtypes and errors."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import minidl
from minidl import nn
from minidl.functions.activation import elu, leaky_relu, log_softmax, relu, sigmoid, softmax, tanh
from minidl.nn import functional as F
from minidl.gradcheck import gradcheck
from tests.helpers import assert_close, leaf, torch_or_skip

shapes = st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple)
seeds = st.integers(0, 2**16)


def away_from_zero(shape, seed):
    """Random values with |x| >= 0.1, so finite differences never straddle a kink at 0."""
    x = np.random.default_rng(seed).standard_normal(shape)
    return np.where(np.abs(x) < 0.1, np.sign(x + 1e-12) * 0.1 + x, x)


POINTWISE = {
    "relu": (relu, lambda F, x: F.relu(x)),
    "leaky_relu": (lambda x: leaky_relu(x, 0.2), lambda F, x: F.leaky_relu(x, 0.2)),
    "elu": (lambda x: elu(x, alpha=0.7), lambda F, x: F.elu(x, alpha=0.7)),
    "sigmoid": (sigmoid, lambda F, x: F.sigmoid(x)),
    "tanh": (tanh, lambda F, x: F.tanh(x)),
    "gelu": (F.gelu, lambda F, x: F.gelu(x)),
    "gelu_tanh": (lambda x: F.gelu(x, approximate="tanh"), lambda F, x: F.gelu(x, approximate="tanh")),
    "silu": (F.silu, lambda F, x: F.silu(x)),
    "mish": (F.mish, lambda F, x: F.mish(x)),
    "softplus": (lambda x: F.softplus(x, beta=2.0, threshold=3.0), lambda F, x: F.softplus(x, beta=2.0, threshold=3.0)),
    "logsigmoid": (F.logsigmoid, lambda F, x: F.logsigmoid(x)),
    "selu": (F.selu, lambda F, x: F.selu(x)),
    "celu": (lambda x: F.celu(x, alpha=0.5), lambda F, x: F.celu(x, alpha=0.5)),  # torch rounds 1/alpha to float32 in backward
    "softsign": (F.softsign, lambda F, x: F.softsign(x)),
    "hardtanh": (lambda x: F.hardtanh(x, -1.5, 0.5), lambda F, x: F.hardtanh(x, -1.5, 0.5)),
    "relu6": (lambda x: F.relu6(x * 4), lambda F, x: F.relu6(x * 4)),
    "hardsigmoid": (lambda x: F.hardsigmoid(x * 3), lambda F, x: F.hardsigmoid(x * 3)),
    "hardswish": (lambda x: F.hardswish(x * 3), lambda F, x: F.hardswish(x * 3)),
}


@pytest.mark.parametrize("name", sorted(POINTWISE))
@given(shape=shapes, seed=seeds)
def test_pointwise_gradcheck(name, shape, seed):
    op = POINTWISE[name][0]
    assert gradcheck(op, leaf(away_from_zero(shape, seed)))


@pytest.mark.parametrize("name", sorted(POINTWISE))
@given(shape=shapes, seed=seeds)
def test_pointwise_matches_torch(name, shape, seed):
    torch = torch_or_skip()
    ours, theirs = POINTWISE[name]
    x = np.random.default_rng(seed).standard_normal(shape) * 3
    x.reshape(-1)[0] = 0.0  # PyTorch's choice of slope at the kink must match too
    check_against_torch(torch, lambda t: ours(t), lambda t: theirs(torch.nn.functional, t), x, seed,
                        gradient_rtol=TORCH_GRADIENT_RTOL.get(name, 1e-10))


# PyTorch's hardsigmoid backward multiplies by 1/6 rounded to float32 (a relative error of 3e-8), also in float64
TORCH_GRADIENT_RTOL = {"hardsigmoid": 1e-7}


@pytest.mark.parametrize("op", [softmax, log_softmax])
@given(shape=shapes, seed=seeds, data=st.data())
def test_softmax_gradcheck(op, shape, seed, data):
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    x = leaf(np.random.default_rng(seed).standard_normal(shape))
    assert gradcheck(lambda t: op(t, dim), x)


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@given(shape=shapes, seed=seeds, data=st.data())
def test_softmax_matches_torch(name, shape, seed, data):
    torch = torch_or_skip()
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    ours = {"softmax": softmax, "log_softmax": log_softmax}[name]
    x = np.random.default_rng(seed).standard_normal(shape) * 5
    check_against_torch(torch, lambda t: ours(t, dim), lambda t: getattr(torch.nn.functional, name)(t, dim), x, seed)


def check_against_torch(torch, ours, theirs, x, seed, gradient_rtol=1e-10):
    g = np.random.default_rng(seed + 1).standard_normal(x.shape)
    ours_x, torch_x = leaf(x), torch.tensor(x, requires_grad=True)
    ours_y, torch_y = ours(ours_x), theirs(torch_x)
    (ours_y * minidl.tensor(g)).sum().backward()
    (torch_y * torch.tensor(g)).sum().backward()
    assert_close(ours_y, torch_y.detach().numpy(), what="forward")
    assert_close(ours_x.grad, torch_x.grad.numpy(), rtol=gradient_rtol, what="gradient")


def test_softmax_is_stable_for_huge_logits():
    x = minidl.tensor([[1000.0, 1000.0, -1000.0], [-1e30, 0.0, 1e30]], dtype=minidl.float64)
    assert_close(softmax(x, 1), [[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])
    assert_close(log_softmax(x, 1)[0], [np.log(0.5), np.log(0.5), -2000 - np.log(2)])
    assert np.isfinite(log_softmax(x, 1).detach().numpy()).all()


def test_softmax_backward_formula_on_a_small_case():
    # dx = y * (g - sum(g * y)) with y = softmax(x): check one row by hand
    x = leaf([[0.0, np.log(3.0)]])  # softmax = [1/4, 3/4]
    y = softmax(x, 1)
    (y * minidl.tensor(np.array([[1.0, 0.0]]))).sum().backward()
    dot = 0.25
    assert_close(x.grad, [[0.25 * (1 - dot), 0.75 * (0 - dot)]])


@pytest.mark.parametrize("op", [relu, lambda x: leaky_relu(x), elu, sigmoid, tanh,
                                lambda x: softmax(x, -1), lambda x: log_softmax(x, -1)]
                         + [POINTWISE[name][0] for name in sorted(POINTWISE)])
def test_float32_stays_float32(op):
    x = minidl.tensor(np.random.default_rng(0).standard_normal((3, 4)), dtype=minidl.float32, requires_grad=True)
    y = op(x)
    y.sum().backward()
    assert y.dtype == np.float32 and x.grad.dtype == np.float32


def test_relu_gradient_is_zero_at_and_below_zero():
    x = leaf([-2.0, 0.0, 3.0])
    relu(x).sum().backward()
    assert_close(x.grad, [0.0, 0.0, 1.0])


def test_tensor_methods_use_these_ops():
    x = leaf([[1.0, -2.0, 3.0]])
    assert_close(x.relu(), [[1.0, 0.0, 3.0]])
    assert_close(x.softmax(1), softmax(x, 1))


@pytest.mark.parametrize("op", [softmax, log_softmax])
def test_dim_errors(op):
    x = minidl.zeros(2, 3)
    with pytest.raises(IndexError, match=r"dim 2 is out of range for an input of shape \(2, 3\)"):
        op(x, 2)
    with pytest.raises(TypeError, match="pass the dimension"):
        op(x, None)


@pytest.mark.parametrize("x, slopes", [
    ([-1.5, 0.5, -1.0, 0.0], [0.0, 0.0, 1.0, 1.0]),  # hardtanh(-1.5, 0.5): no slope at either end
])
def test_hardtanh_has_no_slope_at_its_ends(x, slopes):
    x = leaf(x)
    F.hardtanh(x, -1.5, 0.5).sum().backward()
    assert_close(x.grad, slopes)


def test_joins_and_huge_inputs_match_torch():
    """The piecewise ops at their joins, and the smooth ones where exp would overflow."""
    torch = torch_or_skip()
    x = np.array([-1000.0, -40.0, -6.0, -3.0, -1.0, 0.0, 1.0, 3.0, 6.0, 40.0, 1000.0])
    for name in sorted(POINTWISE):
        ours, theirs = POINTWISE[name]
        check_against_torch(torch, lambda t: ours(t), lambda t: theirs(torch.nn.functional, t), x, 0,
                            gradient_rtol=TORCH_GRADIENT_RTOL.get(name, 1e-10))


MODULES = [(nn.GELU(), "GELU(approximate='none')"), (nn.GELU("tanh"), None), (nn.SiLU(), "SiLU()"), (nn.Mish(), None),
           (nn.Softplus(beta=2, threshold=5), "Softplus(beta=2, threshold=5)"), (nn.LogSigmoid(), None),
           (nn.SELU(), None), (nn.CELU(0.5), "CELU(alpha=0.5)"), (nn.Softsign(), None),
           (nn.Hardtanh(-2.0, 2.0), "Hardtanh(min_val=-2.0, max_val=2.0)"), (nn.ReLU6(inplace=True), "ReLU6(inplace=True)"),
           (nn.Hardsigmoid(), None), (nn.Hardswish(), None)]


@pytest.mark.parametrize("module, text", MODULES, ids=[type(m).__name__ for m, _ in MODULES])
def test_modules_match_torch_modules(module, text):
    torch = torch_or_skip()
    x = np.random.default_rng(0).standard_normal((2, 3, 4)) * 4
    theirs = eval("torch.nn." + repr(module).replace("minidl.", ""))  # the same layer, built from our repr
    assert_close(module(leaf(x)), theirs(torch.tensor(x)).numpy())
    if text is not None:
        assert repr(module) == text


@pytest.mark.parametrize("op", [F.gelu, F.silu, F.softplus, F.hardswish, F.selu])
def test_integer_input_is_refused(op):
    with pytest.raises(RuntimeError, match="floating-point"):
        op(minidl.tensor([1, 2]))
