"""Layers: PyTorch's default initialisations, forward/backward equal to torch.nn in float64,
and input errors that name the layer and both shapes."""
import math

import numpy as np
import pytest

import minidl
from minidl import nn
from tests.helpers import torch_or_skip


def values(tensor):
    return tensor.detach().numpy()


# ---------------------------------------------------------------- default initialisation
@pytest.mark.parametrize("make, fan_in", [(lambda: nn.Conv2d(32, 64, 3), 288), (lambda: nn.Conv2d(32, 64, 3, groups=4), 72),
                                          (lambda: nn.Linear(300, 400), 300)])
def test_default_init_is_pytorchs(make, fan_in):
    layer = make()
    bound = 1 / math.sqrt(fan_in)  # kaiming_uniform(a=sqrt(5)): gain sqrt(1/3) * sqrt(3 / fan_in)
    weight, bias = values(layer.weight).astype(np.float64), values(layer.bias).astype(np.float64)
    assert np.abs(weight).max() <= bound and np.abs(weight).max() > bound * (1 - 20 / weight.size)
    assert abs(weight.std() / (bound / math.sqrt(3)) - 1) < 6 * math.sqrt(0.2 / weight.size)
    assert abs(weight.mean()) < 6 * bound / math.sqrt(3 * weight.size)
    assert np.abs(bias).max() <= bound and np.abs(bias).max() > bound * (1 - 20 / bias.size)
    assert layer.weight.dtype == minidl.float32


def test_batchnorm_starts_at_identity_statistics():
    bn = nn.BatchNorm2d(5)
    np.testing.assert_array_equal(values(bn.weight), 1)
    np.testing.assert_array_equal(values(bn.bias), 0)
    np.testing.assert_array_equal(bn.running_mean.numpy(), 0)
    np.testing.assert_array_equal(bn.running_var.numpy(), 1)
    assert bn.num_batches_tracked.dtype == minidl.int64 and bn.num_batches_tracked.shape == ()
    assert not bn.running_mean.requires_grad


def test_dtype_and_default_dtype_reach_parameters():
    assert nn.Linear(2, 3, dtype=minidl.float64).weight.dtype == minidl.float64
    minidl.set_default_dtype(minidl.float64)
    conv, bn = nn.Conv2d(1, 2, 3), nn.BatchNorm1d(3)
    assert conv.weight.dtype == conv.bias.dtype == bn.running_var.dtype == minidl.float64
    assert bn.num_batches_tracked.dtype == minidl.int64


# ---------------------------------------------------------------- equality with torch.nn
def _copy_into_torch(ours, theirs):
    import torch
    theirs.load_state_dict({key: torch.from_numpy(value) for key, value in ours.state_dict().items()})


def _compare(ours, theirs, shape, seed=0, train=True, grads=True):
    """Same weights, same float64 input: outputs, input and parameter gradients and state agree."""
    import torch
    ours.double().train(train)
    theirs.double().train(train)
    _copy_into_torch(ours, theirs)
    x = np.random.default_rng(seed).standard_normal(shape)
    x_ours, x_theirs = minidl.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    y_ours, y_theirs = ours(x_ours), theirs(x_theirs)
    np.testing.assert_allclose(values(y_ours), y_theirs.detach().numpy(), rtol=1e-10, atol=1e-12)
    if grads:
        g = np.random.default_rng(seed + 1).standard_normal(y_theirs.shape)
        y_ours.backward(g)
        y_theirs.backward(torch.from_numpy(g))
        np.testing.assert_allclose(values(x_ours.grad), x_theirs.grad.numpy(), rtol=1e-9, atol=1e-11)
        for (name, p_ours), (_, p_theirs) in zip(ours.named_parameters(), theirs.named_parameters()):
            np.testing.assert_allclose(values(p_ours.grad), p_theirs.grad.numpy(), rtol=1e-9, atol=1e-11, err_msg=name)
    for key, value in theirs.state_dict().items():
        np.testing.assert_allclose(ours.state_dict()[key], value.numpy(), rtol=1e-12, atol=1e-14, err_msg=key)


@pytest.mark.parametrize("kwargs, shape", [
    (dict(in_channels=3, out_channels=4, kernel_size=3), (2, 3, 7, 6)),
    (dict(in_channels=3, out_channels=5, kernel_size=(3, 2), stride=(2, 1), padding=(1, 2), bias=False), (2, 3, 8, 5)),
    (dict(in_channels=4, out_channels=6, kernel_size=3, dilation=2, groups=2, padding="same"), (1, 4, 9, 9)),
    (dict(in_channels=2, out_channels=2, kernel_size=1, padding="valid"), (3, 2, 4, 4)),
])
def test_conv2d_equals_torch(kwargs, shape):
    torch = torch_or_skip()
    _compare(nn.Conv2d(**kwargs), torch.nn.Conv2d(**kwargs), shape)


@pytest.mark.parametrize("bias, shape", [(True, (5, 4)), (False, (2, 3, 4))])
def test_linear_equals_torch(bias, shape):
    torch = torch_or_skip()
    _compare(nn.Linear(4, 3, bias=bias), torch.nn.Linear(4, 3, bias=bias), shape)


@pytest.mark.parametrize("kind, shape", [("BatchNorm2d", (4, 3, 5, 5)), ("BatchNorm1d", (6, 3)), ("BatchNorm1d", (4, 3, 5))])
@pytest.mark.parametrize("options", [dict(), dict(momentum=None), dict(affine=False), dict(track_running_stats=False),
                                     dict(momentum=0.3, eps=1e-3)])
def test_batchnorm_equals_torch_over_steps(kind, shape, options):
    torch = torch_or_skip()
    ours, theirs = getattr(nn, kind)(3, **options), getattr(torch.nn, kind)(3, **options)
    for step in range(3):  # running statistics and num_batches_tracked evolve alike
        _compare(ours, theirs, shape, seed=step, train=True, grads=step == 0)
    _compare(ours, theirs, shape, seed=9, train=False)


@pytest.mark.parametrize("make", [
    lambda nn: nn.ReLU(), lambda nn: nn.LeakyReLU(0.2), lambda nn: nn.ELU(alpha=0.7), lambda nn: nn.Sigmoid(),
    lambda nn: nn.Tanh(), lambda nn: nn.Softmax(dim=1), lambda nn: nn.LogSoftmax(dim=-1), lambda nn: nn.Softmax(),
    lambda nn: nn.MaxPool2d(2), lambda nn: nn.MaxPool2d(3, stride=2, padding=1), lambda nn: nn.AvgPool2d(2, stride=1),
    lambda nn: nn.AvgPool2d(3, 2, 1, count_include_pad=False), lambda nn: nn.AdaptiveAvgPool2d(1),
    lambda nn: nn.MaxPool2d(3, stride=2, dilation=2, ceil_mode=True), lambda nn: nn.AvgPool2d(3, 2, ceil_mode=True),
    lambda nn: nn.AvgPool2d(2, divisor_override=3),
    lambda nn: nn.AdaptiveAvgPool2d((2, 3)), lambda nn: nn.Flatten(), lambda nn: nn.Identity(7, unused=True),
])
@pytest.mark.filterwarnings("ignore:Implicit dimension choice")
def test_parameter_free_layers_equal_torch(make):
    torch = torch_or_skip()
    _compare(make(nn), make(torch.nn), (2, 3, 6, 6))


@pytest.mark.parametrize("make, target_kind", [
    (lambda nn: nn.CrossEntropyLoss(), "class"), (lambda nn: nn.CrossEntropyLoss(label_smoothing=0.1), "class"),
    (lambda nn: nn.CrossEntropyLoss(reduction="sum", ignore_index=1), "class"), (lambda nn: nn.NLLLoss(), "class"),
    (lambda nn: nn.NLLLoss(reduction="none"), "class"), (lambda nn: nn.MSELoss(), "same"),
    (lambda nn: nn.MSELoss(reduction="sum"), "same"),
])
def test_losses_equal_torch(make, target_kind):
    torch = torch_or_skip()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 4))
    target = rng.integers(0, 4, size=6) if target_kind == "class" else rng.standard_normal((6, 4))
    x_ours, x_theirs = minidl.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    loss_ours = make(nn)(x_ours, minidl.tensor(target))
    loss_theirs = make(torch.nn)(x_theirs, torch.from_numpy(target))
    np.testing.assert_allclose(values(loss_ours), loss_theirs.detach().numpy(), rtol=1e-10, atol=1e-12)
    loss_ours.sum().backward()
    loss_theirs.sum().backward()
    np.testing.assert_allclose(values(x_ours.grad), x_theirs.grad.numpy(), rtol=1e-9, atol=1e-12)


def test_weighted_cross_entropy_equals_torch_and_weight_follows_to():
    torch = torch_or_skip()
    rng = np.random.default_rng(1)
    x, target, weight = rng.standard_normal((8, 3)), rng.integers(0, 3, size=8), rng.uniform(0.5, 2, size=3)
    ours = nn.CrossEntropyLoss(weight=minidl.tensor(weight, dtype=minidl.float32)).double()
    assert ours.weight.dtype == minidl.float64 and list(ours.state_dict()) == ["weight"]
    theirs = torch.nn.CrossEntropyLoss(weight=torch.from_numpy(weight))
    np.testing.assert_allclose(values(ours(minidl.tensor(x), minidl.tensor(target))),
                               theirs(torch.from_numpy(x), torch.from_numpy(target)).numpy(), rtol=1e-7)


def test_dropout_modes():
    x = minidl.ones(200, 50, 4, 4)
    dropped = values(nn.Dropout2d(0.25)(x))
    per_channel = dropped.reshape(200 * 50, 16)
    assert np.all((per_channel == 0).all(1) | (per_channel == 1 / 0.75).all(1))  # whole channels
    assert abs((per_channel[:, 0] == 0).mean() - 0.25) < 6 * math.sqrt(0.25 * 0.75 / 10000)
    dropped = values(nn.Dropout(0.25)(x))
    assert abs((dropped == 0).mean() - 0.25) < 6 * math.sqrt(0.25 * 0.75 / dropped.size)
    np.testing.assert_array_equal(values(nn.Dropout(0.25).eval()(x)), 1.0)
    np.testing.assert_array_equal(values(nn.Dropout2d(0.25).eval()(x)), 1.0)
    np.testing.assert_array_equal(values(nn.Dropout(0.0)(x)), 1.0)


# ---------------------------------------------------------------- bad input and bad options
def test_conv2d_names_expected_and_actual_channels():
    conv = nn.Conv2d(3, 16, 3, padding=1, bias=False)
    with pytest.raises(RuntimeError) as error:
        conv(minidl.zeros(8, 4, 32, 32))
    assert str(error.value) == ("Conv2d(3, 16, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), bias=False): "
                                "expected input with 3 channels (shape (N, 3, H, W)), got (8, 4, 32, 32)")
    with pytest.raises(ValueError, match=r"Conv2d\(3, 16.*expected 4-D input of shape \(N, 3, H, W\), "
                                         r"got 2-D input of shape \(8, 3\)"):
        conv(minidl.zeros(8, 3))


def test_linear_names_expected_in_features():
    with pytest.raises(RuntimeError, match=r"^Linear\(in_features=64, out_features=10, bias=True\): expected input "
                                           r"with 64 in-features \(shape \(\*, 64\)\), got \(8, 32\)$"):
        nn.Linear(64, 10)(minidl.zeros(8, 32))


def test_batchnorm_names_channels_and_rank():
    with pytest.raises(RuntimeError, match=r"^BatchNorm2d\(16, .*\): expected input with 16 channels "
                                           r"\(shape \(N, 16, H, W\)\), got \(2, 8, 4, 4\)$"):
        nn.BatchNorm2d(16)(minidl.zeros(2, 8, 4, 4))
    with pytest.raises(RuntimeError, match=r"expected 4-D input of shape \(N, 16, H, W\), got 2-D input of shape \(2, 16\)"):
        nn.BatchNorm2d(16)(minidl.zeros(2, 16))
    with pytest.raises(RuntimeError, match=r"BatchNorm1d\(4, .*expected 2-D or 3-D input .*got 4-D input"):
        nn.BatchNorm1d(4)(minidl.zeros(2, 4, 3, 3))


def test_errors_inside_a_network_name_the_layer_by_its_path():
    block = nn.Sequential()
    block.conv1 = nn.Conv2d(16, 16, 3, padding=1, bias=False)
    model = nn.Sequential()
    model.stem = nn.Conv2d(3, 8, 3, padding=1)  # 8 channels where layer1 expects 16
    model.layer1 = nn.Sequential(block)
    with pytest.raises(RuntimeError, match=r"^layer1\.0\.conv1 \(Conv2d\(16, 16, kernel_size=\(3, 3\).*\): "
                                           r"expected input with 16 channels \(shape \(N, 16, H, W\)\), got \(2, 8, 5, 5\)$"):
        model(minidl.zeros(2, 3, 5, 5))
    with pytest.raises(RuntimeError, match=r"^conv1 \(Conv2d"):
        block(minidl.zeros(1, 2, 3, 3))  # named from where the call started


def test_bad_options_list_the_valid_ones():
    with pytest.raises(ValueError, match="valid values are: 'none', 'mean', 'sum'"):
        nn.CrossEntropyLoss(reduction="avg")
    with pytest.raises(ValueError, match="between 0 and 1, but got 1.5"):
        nn.Dropout(1.5)
    with pytest.raises(ValueError, match="valid modes: zeros"):
        nn.Conv2d(1, 1, 3, padding_mode="reflect")
    with pytest.raises(ValueError, match="'valid' and 'same'"):
        nn.Conv2d(1, 1, 3, padding="full")
    with pytest.raises(ValueError, match="divisible by groups"):
        nn.Conv2d(3, 4, 3, groups=2)
