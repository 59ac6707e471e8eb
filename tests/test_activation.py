"""Activations: finite-difference gradients, PyTorch parity (float64), stability, dtypes and errors."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import minidl
from minidl.functions.activation import elu, leaky_relu, log_softmax, relu, sigmoid, softmax, tanh
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
    check_against_torch(torch, lambda t: ours(t), lambda t: theirs(torch.nn.functional, t), x, seed)


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


def check_against_torch(torch, ours, theirs, x, seed):
    g = np.random.default_rng(seed + 1).standard_normal(x.shape)
    ours_x, torch_x = leaf(x), torch.tensor(x, requires_grad=True)
    ours_y, torch_y = ours(ours_x), theirs(torch_x)
    (ours_y * minidl.tensor(g)).sum().backward()
    (torch_y * torch.tensor(g)).sum().backward()
    assert_close(ours_y, torch_y.detach().numpy(), what="forward")
    assert_close(ours_x.grad, torch_x.grad.numpy(), what="gradient")


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
                                lambda x: softmax(x, -1), lambda x: log_softmax(x, -1)])
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
