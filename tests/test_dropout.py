"""dropout and dropout2d: statistics of the mask, exact scaling, seeding, gradients, identity cases, errors."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import minidl
from minidl.functions.dropout import dropout, dropout2d
from minidl.gradcheck import gradcheck
from tests.helpers import assert_close, leaf


def positive_input(shape):
    """Values in [1, 2): an output element is zero exactly when dropout zeroed it."""
    return leaf(1 + np.random.default_rng(0).random(shape))


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_fraction_zeroed_is_p_within_binomial_tolerance(p):
    n = 200_000
    y = dropout(positive_input(n), p=p).detach().numpy()
    zeroed = np.mean(y == 0)
    binomial_std = np.sqrt(p * (1 - p) / n)
    assert abs(zeroed - p) < 5 * binomial_std, f"zeroed {zeroed:.4f}, expected {p} +- {5 * binomial_std:.4f}"


@given(p=st.floats(0.05, 0.95), shape=st.lists(st.integers(1, 5), min_size=1, max_size=3).map(tuple))
def test_kept_values_are_scaled_exactly(p, shape):
    x = positive_input(shape)
    y = dropout(x, p=p).detach().numpy()
    kept = y != 0
    np.testing.assert_array_equal(y[kept], x.detach().numpy()[kept] * (1 / (1 - p)))


def test_expected_value_is_preserved():
    x = positive_input(100_000)
    y = dropout(x, p=0.3).detach().numpy()
    # mean of x * Bernoulli(0.7) / 0.7; the std of one output is at most 2 * sqrt(0.3 / 0.7)
    tolerance = 5 * 2 * np.sqrt(0.3 / 0.7) / np.sqrt(x.numel())
    assert abs(y.mean() - x.detach().numpy().mean()) < tolerance


def test_same_seed_gives_same_mask_and_different_calls_differ():
    x = positive_input((50, 20))
    minidl.manual_seed(123)
    first = dropout(x, p=0.5).detach().numpy()
    second = dropout(x, p=0.5).detach().numpy()
    minidl.manual_seed(123)
    again = dropout(x, p=0.5).detach().numpy()
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first == 0, second == 0)


@pytest.mark.parametrize("op", [dropout, dropout2d])
def test_gradient_is_the_same_scaled_mask(op):
    x = positive_input((4, 6, 3, 3))
    y = op(x, p=0.4)
    g = np.random.default_rng(1).standard_normal(x.shape)
    (y * minidl.tensor(g)).sum().backward()
    scaled_mask = y.detach().numpy() / x.detach().numpy()  # 0 or 1 / (1 - p), exactly the mask used
    assert set(np.unique(np.round(scaled_mask, 12))) <= {0.0, round(1 / 0.6, 12)}
    assert_close(x.grad, g * scaled_mask)


@pytest.mark.parametrize("op", [dropout, dropout2d])
@given(seed=st.integers(0, 2**16), p=st.floats(0.1, 0.9))
def test_gradcheck_with_a_fixed_mask(op, seed, p):
    x = leaf(np.random.default_rng(seed).standard_normal((2, 3, 2, 2)))

    def fn(t):
        minidl.manual_seed(seed)  # the same mask on every finite-difference evaluation
        return op(t, p=p)

    assert gradcheck(fn, x)


@pytest.mark.parametrize("shape", [(8, 16, 5, 5), (16, 5, 5)])
def test_dropout2d_zeroes_whole_channels(shape):
    x = positive_input(shape)
    y = dropout2d(x, p=0.5).detach().numpy()
    per_channel = y.reshape(-1, shape[-2] * shape[-1])
    zeroed = (per_channel == 0).all(axis=1)
    kept = (per_channel != 0).all(axis=1)
    assert np.all(zeroed | kept), "a channel was partly zeroed"
    channels = per_channel.shape[0]
    assert abs(zeroed.mean() - 0.5) < 5 * np.sqrt(0.25 / channels)
    np.testing.assert_array_equal(per_channel[kept], x.detach().numpy().reshape(per_channel.shape)[kept] * 2.0)


@pytest.mark.parametrize("op", [dropout, dropout2d])
def test_identity_when_not_training_or_p_zero(op):
    x = positive_input((2, 3, 4, 4))
    assert op(x, p=0.5, training=False) is x
    assert op(x, p=0.0) is x


@pytest.mark.parametrize("op", [dropout, dropout2d])
def test_p_one_gives_zeros_and_zero_gradient(op):
    x = positive_input((2, 3, 4, 4))
    y = op(x, p=1.0)
    y.sum().backward()
    assert not y.detach().numpy().any()
    assert not x.grad.numpy().any()


def test_float32_stays_float32():
    x = minidl.randn(4, 3, 2, 2, requires_grad=True)
    for op in (dropout, dropout2d):
        x.grad = None
        y = op(x, p=0.3)
        y.sum().backward()
        assert y.dtype == np.float32 and x.grad.dtype == np.float32


@pytest.mark.parametrize("op", [dropout, dropout2d])
@pytest.mark.parametrize("p", [-0.1, 1.5])
def test_p_outside_unit_interval_is_an_error(op, p):
    with pytest.raises(ValueError, match=f"between 0 and 1, but got {p}"):
        op(minidl.zeros(2, 3, 4, 4), p=p)


def test_dropout2d_rejects_other_ranks():
    with pytest.raises(ValueError, match=r"\(N, C, H, W\) or \(C, H, W\), got shape \(2, 3\)"):
        dropout2d(minidl.zeros(2, 3))
