"""state_dict / load_state_dict: PyTorch's keys and shapes, round trips with torch.nn, clear errors."""
from collections import OrderedDict

import numpy as np
import pytest

import minidl
from minidl import nn
from tests.helpers import torch_or_skip


def conv_bn_relu_linear(lib):
    """The same small network in minidl.nn or torch.nn (the two APIs share these names)."""
    return lib.Sequential(lib.Conv2d(3, 6, 3, padding=1), lib.BatchNorm2d(6), lib.ReLU(), lib.MaxPool2d(2),
                          lib.Flatten(), lib.Linear(6 * 4 * 4, 10))


def nested(lib):
    """Nested Sequentials, an OrderedDict Sequential, a ModuleList, a custom block and BatchNorm1d."""

    class Block(lib.Module):
        def __init__(self, channels):
            super().__init__()
            self.conv1 = lib.Conv2d(channels, channels, 3, padding=1, bias=False)
            self.bn1 = lib.BatchNorm2d(channels)
            self.downsample = lib.Sequential(lib.Conv2d(channels, channels, 1, bias=False), lib.BatchNorm2d(channels))

        def forward(self, x):
            return (self.bn1(self.conv1(x)) + self.downsample(x)).relu()

    class Net(lib.Module):
        def __init__(self):
            super().__init__()
            self.features = lib.Sequential(OrderedDict([
                ("stem", lib.Sequential(lib.Conv2d(3, 4, 3, padding=1), lib.BatchNorm2d(4, momentum=None), lib.ELU())),
                ("layer1", lib.Sequential(Block(4), Block(4))),
                ("pool", lib.AdaptiveAvgPool2d(1)),
            ]))
            self.heads = lib.ModuleList([lib.Linear(4, 8), lib.BatchNorm1d(8), lib.Linear(8, 3)])

        def forward(self, x):
            x = self.features(x).flatten(1)
            for head in self.heads:
                x = head(x)
            return x

    return Net()


def as_torch(state):
    import torch
    return OrderedDict((key, torch.from_numpy(np.array(value))) for key, value in state.items())


@pytest.mark.parametrize("build", [conv_bn_relu_linear, nested])
def test_keys_shapes_and_dtypes_equal_torch(build):
    torch = torch_or_skip()
    ours, theirs = build(nn).state_dict(), build(torch.nn).state_dict()
    assert list(ours) == list(theirs)
    for key, value in ours.items():
        assert isinstance(value, np.ndarray)
        assert value.shape == tuple(theirs[key].shape), key
        assert str(value.dtype) == str(theirs[key].dtype).replace("torch.", ""), key


def _forward_torch(model, x):
    import torch
    return model(torch.from_numpy(x)).detach().numpy()


@pytest.mark.parametrize("build, shape", [(conv_bn_relu_linear, (4, 3, 8, 8)), (nested, (4, 3, 6, 6))])
def test_weights_copied_both_ways_give_identical_outputs(build, shape):
    torch = torch_or_skip()
    x = np.random.default_rng(3).standard_normal(shape)

    # minidl -> torch, after a training step moved minidl's running statistics off their defaults
    ours = build(nn).double()
    ours(minidl.tensor(x))
    theirs = build(torch.nn).double()
    theirs.load_state_dict(as_torch(ours.state_dict()))
    ours.eval(), theirs.eval()
    np.testing.assert_allclose(ours(minidl.tensor(x)).detach().numpy(), _forward_torch(theirs, x), rtol=1e-10, atol=1e-12)

    # torch -> minidl, with torch tensors given directly, in training mode (batch statistics)
    theirs = build(torch.nn).double().train()
    theirs(torch.from_numpy(x))
    ours = build(nn).double().train()
    ours.load_state_dict(theirs.state_dict())
    np.testing.assert_allclose(ours(minidl.tensor(x)).detach().numpy(), _forward_torch(theirs, x), rtol=1e-10, atol=1e-12)
    for key, value in ours.state_dict().items():  # running statistics were updated identically
        np.testing.assert_allclose(value, theirs.state_dict()[key].numpy(), rtol=1e-10, atol=1e-12, err_msg=key)


def test_state_dict_holds_cpu_copies_and_load_copies_in_place():
    model = conv_bn_relu_linear(nn)
    state = model.state_dict()
    state["0.weight"][...] = 7.0
    assert not np.any(model[0].weight.detach().numpy() == 7.0)  # a copy, not a view

    weight = model[0].weight
    optimizer_view = weight.array
    model.load_state_dict(state)
    assert model[0].weight is weight and weight.array is optimizer_view  # same objects, new values
    np.testing.assert_array_equal(weight.detach().numpy(), 7.0)

    kept = model.state_dict(keep_vars=True)
    assert kept["0.weight"] is weight


def test_loading_casts_to_the_model_dtype_and_keeps_integer_counters():
    source = conv_bn_relu_linear(nn)
    source(minidl.randn(2, 3, 8, 8))
    target = conv_bn_relu_linear(nn).to(minidl.float64)
    assert target[1].num_batches_tracked.dtype == minidl.int64
    target.load_state_dict(source.state_dict())
    assert target[0].weight.dtype == minidl.float64
    assert target[1].num_batches_tracked.dtype == minidl.int64 and int(target[1].num_batches_tracked.item()) == 1
    np.testing.assert_allclose(target[0].weight.detach().numpy(), source[0].weight.detach().numpy())


def test_non_persistent_buffers_and_none_entries_are_left_out():
    layer = nn.BatchNorm2d(3, affine=False, track_running_stats=False)
    assert list(layer.state_dict()) == []
    layer = nn.Linear(2, 2, bias=False)
    layer.register_buffer("cache", minidl.zeros(2), persistent=False)
    assert list(layer.state_dict()) == ["weight"]
    assert [name for name, _ in layer.named_buffers()] == ["cache"]


def test_wrong_keys_and_shapes_are_named_in_one_error():
    model = conv_bn_relu_linear(nn)
    state = model.state_dict()
    state["5.weights"] = state.pop("5.weight")  # a typo
    state["0.bias"] = np.zeros(7, dtype=np.float32)  # a wrong shape
    before = model[0].bias.detach().numpy().copy()
    with pytest.raises(RuntimeError) as error:
        model.load_state_dict(state)
    message = str(error.value)
    assert "Error(s) in loading state_dict for Sequential" in message
    assert 'Missing key(s) in state_dict: "5.weight"' in message
    assert 'Unexpected key(s) in state_dict: "5.weights" (did you mean "5.weight"?)' in message
    assert "size mismatch for 0.bias: copying a param with shape (7,) from checkpoint, " \
           "the shape in current model is (6,)" in message
    np.testing.assert_array_equal(model[0].bias.detach().numpy(), before)  # nothing was loaded


def test_non_strict_loading_reports_keys_but_shape_mismatches_still_fail():
    model = conv_bn_relu_linear(nn)
    state = model.state_dict()
    del state["1.num_batches_tracked"]
    state["extra.weight"] = np.ones(3)
    state["0.weight"] = np.full((6, 3, 3, 3), 0.5)
    result = model.load_state_dict(state, strict=False)
    assert result.missing_keys == ["1.num_batches_tracked"] and result.unexpected_keys == ["extra.weight"]
    assert result == (["1.num_batches_tracked"], ["extra.weight"])
    np.testing.assert_array_equal(model[0].weight.detach().numpy(), 0.5)
    state["5.bias"] = np.zeros((10, 1))
    with pytest.raises(RuntimeError, match=r"size mismatch for 5.bias: .*shape \(10, 1\).*shape in current model is \(10,\)"):
        model.load_state_dict(state, strict=False)
    assert model.load_state_dict(model.state_dict()) == ([], [])
