"""Module bookkeeping: registration, traversal, modes, freezing, hooks, devices/dtypes, repr, summary."""
from collections import OrderedDict

import numpy as np
import pytest

import minidl
from minidl import nn


class Block(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(channels)
        self.register_buffer("scratch", minidl.zeros(1), persistent=False)

    def forward(self, x):
        return self.bn(self.conv(x)).relu() + x


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.blocks = nn.Sequential(Block(4), Block(4))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(4, 5)
        self.dropout = nn.Dropout(0.5)

    def forward(self, x):
        x = self.pool(self.blocks(self.stem(x)))
        return self.fc(self.dropout(self.flatten(x)))


def test_assignment_registers_parameters_buffers_and_modules():
    net = Net()
    assert list(net._modules) == ["stem", "blocks", "pool", "flatten", "fc", "dropout"]
    assert [name for name, _ in net.named_parameters()] == [
        "stem.weight", "stem.bias", "blocks.0.conv.weight", "blocks.0.bn.weight", "blocks.0.bn.bias",
        "blocks.1.conv.weight", "blocks.1.bn.weight", "blocks.1.bn.bias", "fc.weight", "fc.bias"]
    assert [name for name, _ in net.named_buffers()] == [
        "blocks.0.scratch", "blocks.0.bn.running_mean", "blocks.0.bn.running_var", "blocks.0.bn.num_batches_tracked",
        "blocks.1.scratch", "blocks.1.bn.running_mean", "blocks.1.bn.running_var", "blocks.1.bn.num_batches_tracked"]
    assert [name for name, _ in net.named_children()] == list(net._modules)
    assert [name for name, _ in net.named_modules()][:5] == ["", "stem", "blocks", "blocks.0", "blocks.0.conv"]
    assert len(list(net.modules())) == 13
    assert all(isinstance(p, nn.Parameter) and p.requires_grad and p.is_leaf for p in net.parameters())
    assert len(list(net.parameters(recurse=False))) == 0
    assert net.fc.weight is net._modules["fc"]._parameters["weight"]


def test_reassigning_and_deleting_attributes():
    layer = nn.Linear(2, 3)
    with pytest.raises(TypeError, match="cannot assign 'Tensor' as parameter 'weight'"):
        layer.weight = minidl.zeros(3, 2)
    layer.bias = None
    assert [name for name, _ in layer.named_parameters()] == ["weight"]
    layer.extra = nn.Parameter(minidl.zeros(1))
    assert "extra" in dict(layer.named_parameters())
    del layer.extra
    assert "extra" not in dict(layer.named_parameters())
    with pytest.raises(AttributeError, match="'Linear' object has no attribute 'nothing'"):
        layer.nothing
    with pytest.raises(KeyError, match="can't be empty or contain"):
        layer.register_buffer("a.b", minidl.zeros(1))
    with pytest.raises(TypeError, match="minidl.Tensor or None expected"):
        layer.register_buffer("stats", np.zeros(1))


def test_shared_parameters_are_listed_once():
    shared = nn.Linear(3, 3)
    model = nn.Sequential(shared, nn.ReLU(), shared)
    assert [name for name, _ in model.named_parameters()] == ["0.weight", "0.bias"]
    assert len(list(model.modules())) == 3  # Sequential, Linear once, ReLU
    assert model.num_parameters() == 12
    assert list(model.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]  # as PyTorch


def test_forward_without_definition_explains():
    with pytest.raises(NotImplementedError, match="missing the required \"forward\""):
        nn.Module()(minidl.zeros(1))


def test_train_eval_flags_every_submodule():
    net = Net()
    assert net.training and all(m.training for m in net.modules())
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())
    with pytest.raises(ValueError, match="boolean"):
        net.train("no")


def test_train_eval_switch_dropout_and_batchnorm():
    net = Net()
    x = minidl.randn(4, 3, 6, 6)
    net.eval()
    first, second = net(x).detach().numpy(), net(x).detach().numpy()
    np.testing.assert_array_equal(first, second)  # eval: deterministic, running stats untouched
    assert int(net.blocks[0].bn.num_batches_tracked.item()) == 0
    net.train()
    with minidl.no_grad():
        third = net(x).detach().numpy()
    assert int(net.blocks[0].bn.num_batches_tracked.item()) == 1
    assert not np.allclose(third, first)  # batch statistics and dropout change the output
    dropout = nn.Dropout(0.5)
    ones = minidl.ones(1000)
    assert set(np.unique(dropout(ones).detach().numpy())) == {0.0, 2.0}
    np.testing.assert_array_equal(dropout.eval()(ones).detach().numpy(), ones.detach().numpy())


def test_zero_grad_and_freezing():
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    net(minidl.randn(5, 3)).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not p.grad.detach().numpy().any() for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())

    net[0].requires_grad_(False)
    net(minidl.randn(5, 3)).sum().backward()
    assert net[0].weight.grad is None and net[0].bias.grad is None
    assert net[2].weight.grad is not None
    assert net.num_parameters(trainable_only=True) == 10 and net.num_parameters() == 26


def test_forward_hooks_capture_and_replace_outputs():
    net = Net().eval()
    captured = {}
    handle = net.blocks[1].register_forward_hook(lambda module, args, output: captured.update(act=output))
    x = minidl.randn(2, 3, 5, 5)
    net(x)
    assert captured["act"].shape == (2, 4, 5, 5)
    expected = net.blocks[1](net.blocks[0](net.stem(x)))
    np.testing.assert_allclose(captured["act"].detach().numpy(), expected.detach().numpy())
    handle.remove()
    captured.clear()
    net(x)
    assert captured == {}

    zero_fc = net.fc.register_forward_hook(lambda module, args, output: output * 0)
    assert not net(x).detach().numpy().any()
    zero_fc.remove()
    assert net(x).detach().numpy().any()

    seen_shapes = []
    pre = net.fc.register_forward_pre_hook(lambda module, args: seen_shapes.append(args[0].shape))
    net(x)
    pre.remove()
    assert seen_shapes == [(2, 4)]
    doubled = net.fc.register_forward_pre_hook(lambda module, args: args[0] * 2)
    with_hook = net.fc(minidl.ones(1, 4)).detach().numpy()
    doubled.remove()
    np.testing.assert_allclose(with_hook, net.fc(minidl.ones(1, 4) * 2).detach().numpy(), rtol=1e-6)


def test_to_double_casts_in_place_and_keeps_integer_buffers():
    net = Net()
    weight = net.stem.weight
    net(minidl.randn(2, 3, 4, 4)).sum().backward()
    assert net.double() is net
    assert net.stem.weight is weight  # the same Parameter: an optimizer built before still holds it
    assert weight.dtype == minidl.float64 and weight.grad.dtype == minidl.float64
    assert net.blocks[0].bn.running_var.dtype == minidl.float64
    assert net.blocks[0].bn.num_batches_tracked.dtype == minidl.int64
    assert net(minidl.randn(2, 3, 4, 4, dtype=minidl.float64)).dtype == minidl.float64
    net.to(minidl.float32)
    assert {p.dtype for p in net.parameters()} == {np.dtype(np.float32)}
    assert net.blocks[0].bn.num_batches_tracked.dtype == minidl.int64
    net.to("cpu", dtype=minidl.float64)
    assert weight.dtype == minidl.float64 and weight.device == minidl.device("cpu")
    net.float().cpu()
    assert weight.dtype == minidl.float32
    with pytest.raises(TypeError, match="floating-point"):
        net.to(minidl.int64)


def test_apply_visits_children_before_parent():
    net = Net()
    visited = []
    net.apply(lambda module: visited.append(type(module).__name__))
    assert visited[-1] == "Net" and visited.index("Block") > visited.index("BatchNorm2d")

    def zero_linears(module):
        if isinstance(module, nn.Linear):
            nn.init.zeros_(module.weight)
    net.apply(zero_linears)
    assert not net.fc.weight.detach().numpy().any()


def test_containers_index_slice_iterate():
    layers = [nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 3)]
    seq = nn.Sequential(*layers)
    assert len(seq) == 3 and list(seq) == layers and seq[-1] is layers[2]
    assert isinstance(seq[1:], nn.Sequential) and list(seq[1:]) == layers[1:]
    assert list(seq[1:]._modules) == ["1", "2"]  # slices keep names, as in PyTorch
    with pytest.raises(IndexError, match="out of range"):
        seq[3]
    named = nn.Sequential(OrderedDict([("fc", layers[0]), ("act", layers[1])]))
    assert named.fc is layers[0] and list(named._modules) == ["fc", "act"]
    assert list(named.state_dict()) == ["fc.weight", "fc.bias"]
    x = minidl.randn(4, 2)
    np.testing.assert_allclose(seq(x).detach().numpy(), layers[2](layers[1](layers[0](x))).detach().numpy())
    seq.append(nn.Tanh())
    assert len(seq) == 4 and isinstance(seq[3], nn.Tanh)

    blocks = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
    blocks.append(nn.Linear(2, 1))
    assert len(blocks) == 4 and blocks[-1].out_features == 1
    assert [name for name, _ in blocks.named_parameters()][-2:] == ["3.weight", "3.bias"]
    blocks.insert(0, nn.Identity())
    assert isinstance(blocks[0], nn.Identity) and len(blocks) == 5 and blocks[4].out_features == 1
    del blocks[0]
    assert list(blocks._modules) == ["0", "1", "2", "3"]


def test_repr_is_nested_like_pytorch():
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(inplace=True),
                          nn.Sequential(nn.Flatten(), nn.Linear(16, 10)))
    assert repr(model) == """Sequential(
  (0): Conv2d(3, 16, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), bias=False)
  (1): BatchNorm2d(16, eps=1e-05, momentum=0.1, affine=True, bias=True, track_running_stats=True)
  (2): ReLU(inplace=True)
  (3): Sequential(
    (0): Flatten(start_dim=1, end_dim=-1)
    (1): Linear(in_features=16, out_features=10, bias=True)
  )
)"""
    assert repr(nn.Parameter(minidl.tensor([1.0, 2.0]))) == "Parameter containing:\ntensor([1., 2.], requires_grad=True)"


def test_repr_matches_torch_for_every_layer():
    torch = pytest.importorskip("torch")
    pairs = [
        (nn.Conv2d(3, 8, 5, stride=2, padding=2, dilation=1, groups=1), torch.nn.Conv2d(3, 8, 5, stride=2, padding=2)),
        (nn.Conv2d(4, 8, 3, dilation=2, groups=2, bias=False), torch.nn.Conv2d(4, 8, 3, dilation=2, groups=2, bias=False)),
        (nn.Linear(3, 4, bias=False), torch.nn.Linear(3, 4, bias=False)),
        (nn.BatchNorm1d(5, momentum=None, affine=False), torch.nn.BatchNorm1d(5, momentum=None, affine=False)),
        (nn.LeakyReLU(0.2), torch.nn.LeakyReLU(0.2)), (nn.ELU(), torch.nn.ELU()), (nn.ReLU(), torch.nn.ReLU()),
        (nn.Softmax(dim=1), torch.nn.Softmax(dim=1)), (nn.LogSoftmax(1), torch.nn.LogSoftmax(1)),
        (nn.MaxPool2d(3, 2, 1), torch.nn.MaxPool2d(3, 2, 1)), (nn.AvgPool2d(2), torch.nn.AvgPool2d(2)),
        (nn.AdaptiveAvgPool2d((1, 1)), torch.nn.AdaptiveAvgPool2d((1, 1))), (nn.Dropout(0.3), torch.nn.Dropout(0.3)),
        (nn.Dropout2d(), torch.nn.Dropout2d()), (nn.Flatten(), torch.nn.Flatten()), (nn.Identity(), torch.nn.Identity()),
        (nn.CrossEntropyLoss(), torch.nn.CrossEntropyLoss()), (nn.Sigmoid(), torch.nn.Sigmoid()),
    ]
    for ours, theirs in pairs:
        assert repr(ours) == repr(theirs)


def test_summary_lists_leaf_layers_and_totals(capsys):
    net = Net()
    net.fc.requires_grad_(False)
    before = net.state_dict()
    text = net.summary((3, 8, 8))
    printed = capsys.readouterr().out
    assert text in printed
    lines = text.splitlines()
    row = next(line for line in lines if line.startswith("blocks.0.conv "))
    assert "Conv2d" in row and "(None, 4, 8, 8)" in row and row.split()[-1] == "144"
    row = next(line for line in lines if line.startswith("fc "))
    assert "(None, 5)" in row and row.split()[-1] == "25"
    assert f"Total params: {net.num_parameters():,}" in lines
    assert net.num_parameters() == 112 + 2 * (144 + 8) + 25
    assert "Trainable params: 416" in lines and "Non-trainable params: 25" in lines
    assert net.training  # summary restores the mode and leaves running statistics alone
    for key, value in net.state_dict().items():
        np.testing.assert_array_equal(value, before[key])
    assert net.summary((3, 8, 8), print_fn=None) == text
