"""minidl.nn.init: PyTorch's formulas, in place, reproducible from minidl.manual_seed.

Tolerances are statistical: for n samples, the sample mean has standard error std/sqrt(n);
the sample std has relative standard error about sqrt(1/(2n)) (normal) or sqrt(0.2/n)
(uniform, whose kurtosis is 1.8); every check allows 6 standard errors.
"""
import math

import numpy as np
import pytest
from hypothesis import given, strategies as st

import minidl
from minidl import nn
from minidl.nn import init

SHAPE = (256, 64, 3, 3)  # n = 147456 samples; fan_in = 576, fan_out = 2304
N = int(np.prod(SHAPE))


def _check_uniform(values, bound):
    assert np.abs(values).max() <= bound
    assert np.abs(values).max() > bound * (1 - 20 / values.size)  # the bound is reached, not a smaller one
    std = bound / math.sqrt(3)
    assert abs(values.mean()) < 6 * std / math.sqrt(values.size)
    assert abs(values.std() / std - 1) < 6 * math.sqrt(0.2 / values.size)


def _check_normal(values, std):
    assert abs(values.mean()) < 6 * std / math.sqrt(values.size)
    assert abs(values.std() / std - 1) < 6 * math.sqrt(0.5 / values.size)
    assert np.abs(values).max() > 3 * std  # tails exist (P(no |x| > 3 std) ~ exp(-400) here)


def _values(tensor):
    return tensor.detach().numpy().astype(np.float64)


def test_calculate_gain_matches_torch():
    torch = pytest.importorskip("torch")
    for name in ("linear", "conv2d", "sigmoid", "tanh", "relu", "selu"):
        assert init.calculate_gain(name) == pytest.approx(torch.nn.init.calculate_gain(name), rel=1e-15)
    for slope in (None, 0.2, 0):
        assert init.calculate_gain("leaky_relu", slope) == pytest.approx(
            torch.nn.init.calculate_gain("leaky_relu", slope), rel=1e-15)
    with pytest.raises(ValueError, match="Unsupported nonlinearity 'gelu'; valid ones are: linear"):
        init.calculate_gain("gelu")


@given(st.lists(st.integers(1, 5), min_size=2, max_size=5))
def test_fans_match_torch(shape):
    torch = pytest.importorskip("torch")
    expected = torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(shape))
    assert init._calculate_fan_in_and_fan_out(minidl.zeros(*shape)) == expected


def test_fans_need_two_dimensions():
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        init._calculate_fan_in_and_fan_out(minidl.zeros(5))
    with pytest.raises(ValueError, match="Mode 'fan_avg' not supported"):
        init.kaiming_normal_(minidl.zeros(3, 3), mode="fan_avg")


@pytest.mark.parametrize("mode, fan", [("fan_in", 576), ("fan_out", 2304)])
@pytest.mark.parametrize("nonlinearity, a, gain", [("relu", 0, math.sqrt(2)), ("leaky_relu", math.sqrt(5), math.sqrt(1 / 3)),
                                                   ("tanh", 0, 5 / 3)])
def test_kaiming(mode, fan, nonlinearity, a, gain):
    weight = minidl.zeros(*SHAPE)
    assert init.kaiming_uniform_(weight, a=a, mode=mode, nonlinearity=nonlinearity) is weight
    _check_uniform(_values(weight), gain * math.sqrt(3 / fan))
    init.kaiming_normal_(weight, a=a, mode=mode, nonlinearity=nonlinearity)
    _check_normal(_values(weight), gain / math.sqrt(fan))


@pytest.mark.parametrize("gain", [1.0, 2.5])
def test_xavier(gain):
    weight = minidl.zeros(*SHAPE)
    assert init.xavier_uniform_(weight, gain=gain) is weight
    _check_uniform(_values(weight), gain * math.sqrt(6 / (576 + 2304)))
    init.xavier_normal_(weight, gain=gain)
    _check_normal(_values(weight), gain * math.sqrt(2 / (576 + 2304)))


def test_uniform_normal_constant():
    tensor = minidl.zeros(N)
    values = _values(init.uniform_(tensor, -0.5, 1.5))
    assert values.min() >= -0.5 and values.max() < 1.5
    _check_uniform(values - 0.5, 1.0)
    values = _values(init.normal_(tensor, mean=2.0, std=0.1))
    _check_normal(values - 2.0, 0.1)
    np.testing.assert_array_equal(_values(init.constant_(tensor, 0.25)), 0.25)
    np.testing.assert_array_equal(_values(init.ones_(tensor)), 1.0)
    np.testing.assert_array_equal(_values(init.zeros_(tensor)), 0.0)


@pytest.mark.parametrize("dtype", [minidl.float32, minidl.float64])
def test_in_place_keeps_dtype_object_and_leaf(dtype):
    param = nn.Parameter(minidl.zeros(8, 4, dtype=dtype))
    array = param.array
    for fill in (init.kaiming_uniform_, init.kaiming_normal_, init.xavier_uniform_, init.xavier_normal_,
                 init.uniform_, init.normal_):
        assert fill(param) is param
        assert param.array is array and param.dtype == dtype
        assert param.is_leaf and param.requires_grad and param.grad is None


def test_draws_follow_manual_seed():
    first = _values(init.kaiming_normal_(minidl.zeros(16, 16)))
    minidl.manual_seed(0)
    again = _values(init.kaiming_normal_(minidl.zeros(16, 16)))
    other = _values(init.kaiming_normal_(minidl.zeros(16, 16)))
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    minidl.manual_seed(5)
    layer_a = nn.Linear(4, 4).weight.detach().numpy()
    minidl.manual_seed(5)
    np.testing.assert_array_equal(nn.Linear(4, 4).weight.detach().numpy(), layer_a)


@pytest.mark.parametrize("mean, std, a, b", [(0.0, 1.0, -2.0, 2.0), (0.0, 0.02, -0.04, 0.04), (1.0, 2.0, 0.5, 6.0)])
def test_trunc_normal_is_the_truncated_normal(mean, std, a, b):
    """Every value inside [a, b]; the sample mean and std those of N(mean, std^2) conditioned on [a, b]."""
    values = init.trunc_normal_(minidl.empty(N, dtype=minidl.float64), mean, std, a, b).numpy()
    alpha, beta = (a - mean) / std, (b - mean) / std
    pdf = lambda x: math.exp(-x * x / 2) / math.sqrt(2 * math.pi)  # noqa: E731
    cdf = lambda x: (1 + math.erf(x / math.sqrt(2))) / 2  # noqa: E731
    mass = cdf(beta) - cdf(alpha)
    expected_mean = mean + std * (pdf(alpha) - pdf(beta)) / mass
    expected_var = std ** 2 * (1 + (alpha * pdf(alpha) - beta * pdf(beta)) / mass - ((pdf(alpha) - pdf(beta)) / mass) ** 2)
    assert values.min() >= a and values.max() <= b
    assert abs(values.mean() - expected_mean) < 6 * math.sqrt(expected_var / N)
    assert abs(values.std() / math.sqrt(expected_var) - 1) < 6 * math.sqrt(1 / (2 * N))
    minidl.manual_seed(3)
    first = init.trunc_normal_(minidl.empty(50), std=0.02).numpy().copy()
    minidl.manual_seed(3)
    assert np.array_equal(first, init.trunc_normal_(minidl.empty(50), std=0.02).numpy())


def test_trunc_normal_refuses_empty_bounds():
    with pytest.raises(ValueError, match="must be below"):
        init.trunc_normal_(minidl.empty(3), a=1.0, b=-1.0)
    with pytest.raises(ValueError, match="almost none"):
        init.trunc_normal_(minidl.empty(3), mean=0.0, std=1.0, a=10.0, b=11.0)
