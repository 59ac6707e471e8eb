"""linear: finite-difference gradients, PyTorch parity (float64), leading dims, dtypes and errors."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import minidl
from minidl.functions.linear import linear
from minidl.gradcheck import gradcheck
from tests.helpers import assert_close, leaf, torch_or_skip

leading_shapes = st.lists(st.integers(1, 3), min_size=0, max_size=2).map(tuple)
features = st.integers(1, 4)
seeds = st.integers(0, 2**16)


def random_inputs(leading, in_features, out_features, seed):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(leading + (in_features,)), rng.standard_normal((out_features, in_features)),
            rng.standard_normal(out_features))


@given(leading=leading_shapes, in_features=features, out_features=features, with_bias=st.booleans(), seed=seeds)
def test_gradcheck(leading, in_features, out_features, with_bias, seed):
    x, w, b = random_inputs(leading, in_features, out_features, seed)
    inputs = [leaf(x), leaf(w)] + ([leaf(b)] if with_bias else [])
    assert gradcheck(linear, *inputs)


@given(leading=leading_shapes, in_features=features, out_features=features, with_bias=st.booleans(), seed=seeds)
def test_matches_torch(leading, in_features, out_features, with_bias, seed):
    torch = torch_or_skip()
    x, w, b = random_inputs(leading, in_features, out_features, seed)
    ours = [leaf(x), leaf(w), leaf(b) if with_bias else None]
    theirs = [torch.tensor(a, requires_grad=True) for a in (x, w, b)]
    if not with_bias:
        theirs[2] = None
    ours_y, torch_y = linear(*ours), torch.nn.functional.linear(*theirs)
    g = np.random.default_rng(seed + 1).standard_normal(torch_y.shape)
    (ours_y * minidl.tensor(g)).sum().backward()
    (torch_y * torch.tensor(g)).sum().backward()
    assert_close(ours_y, torch_y.detach().numpy(), what="forward")
    for name, a, t in zip(("input", "weight", "bias"), ours, theirs):
        if a is not None:
            assert_close(a.grad, t.grad.numpy(), what=f"gradient of {name}")


def test_gradients_by_the_formulas():
    # dx = g @ W, dW = g^T x (summed over all leading dims), db = sum of g
    rng = np.random.default_rng(0)
    x, w, b, g = rng.standard_normal((2, 3, 4)), rng.standard_normal((5, 4)), rng.standard_normal(5), \
        rng.standard_normal((2, 3, 5))
    xs, ws, bs = leaf(x), leaf(w), leaf(b)
    y = linear(xs, ws, bs)
    assert_close(y, x @ w.T + b)
    (y * minidl.tensor(g)).sum().backward()
    assert_close(xs.grad, g @ w)
    assert_close(ws.grad, np.einsum("abo,abi->oi", g, x))
    assert_close(bs.grad, g.sum(axis=(0, 1)))


def test_no_grad_for_input_that_does_not_need_it():
    x = minidl.tensor(np.ones((2, 3)), dtype=minidl.float64)
    w = leaf(np.ones((4, 3)))
    linear(x, w).sum().backward()
    assert x.grad is None and w.grad is not None


def test_float32_stays_float32():
    x = minidl.randn(8, 3, requires_grad=True)
    w, b = minidl.randn(2, 3, requires_grad=True), minidl.randn(2, requires_grad=True)
    y = linear(x, w, b)
    y.sum().backward()
    assert y.dtype == np.float32
    assert {x.grad.dtype, w.grad.dtype, b.grad.dtype} == {np.dtype(np.float32)}


def test_wrong_feature_count_names_the_shapes():
    with pytest.raises(ValueError) as error:
        linear(minidl.zeros(8, 32), minidl.zeros(10, 64))
    assert str(error.value) == ("linear: weight of shape (10, 64) expects input with 64 features in its last dim, "
                                "got input of shape (8, 32)")


def test_wrong_bias_and_dtype_errors():
    with pytest.raises(ValueError, match=r"bias must have shape \(10,\).*got \(3,\)"):
        linear(minidl.zeros(8, 64), minidl.zeros(10, 64), minidl.zeros(3))
    with pytest.raises(TypeError, match="same dtype"):
        linear(minidl.zeros(8, 64, dtype=minidl.float64), minidl.zeros(10, 64))
