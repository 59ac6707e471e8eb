"""The fused ops (minidl/functions/fused.py): relu(batch_norm(x)), relu(a + b) and relu(batch_norm(x) + r) as one op
each.

Their reference implementations and the CPU's fused ones against finite differences (float64,
hypothesis-drawn shapes, values kept away from ReLU's kink) and against PyTorch; the functionals take
the fused op only where a device backend registered one that supports the call (the GPU; the CPU for
float arrays, batch norm on channels-last input), and minidl's ResNet blocks fall back to their
modules' own calls when a forward hook watches them.  (tests/test_cpu_backend.py checks the CPU's
fused ops against the reference composition.)
"""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import minidl
from minidl import nn
from minidl.functions.fused import AddReLU, BatchNormAddReLU, BatchNormReLU
from minidl.gradcheck import gradcheck
from minidl.nn import functional as F
from helpers import chosen_implementations, leaf, torch_or_skip

seeds = st.integers(0, 2**16)


def away_from_zero(seed, shape, gap=0.2):
    """Values in [-2, -gap] or [gap, 2]: a finite difference of eps never crosses ReLU's kink."""
    data = np.random.default_rng(seed)
    return data.uniform(gap, 2, shape) * data.choice([-1, 1], shape)


@given(shape=st.tuples(st.integers(1, 3), st.integers(1, 4)), seed=seeds)
def test_add_relu_gradients_match_finite_differences(shape, seed):
    total = away_from_zero(seed, shape)
    a = np.random.default_rng(seed + 1).standard_normal(shape)
    assert gradcheck(lambda x, y: AddReLU.apply(x, y), leaf(a), leaf(total - a))


@given(n=st.integers(2, 4), c=st.integers(1, 3), hw=st.integers(1, 3), training=st.booleans(), seed=seeds)
def test_batch_norm_relu_gradients_match_finite_differences(n, c, hw, training, seed):
    data = np.random.default_rng(seed)
    x, weight, bias = leaf(data.standard_normal((n, c, hw, hw))), leaf(data.uniform(0.5, 2, c)), leaf(data.standard_normal(c))
    mean, var = minidl.tensor(data.standard_normal(c)), minidl.tensor(data.uniform(0.5, 2, c))

    def fn(x, weight, bias):
        return BatchNormReLU.apply(x, weight, bias, running_mean=mean.array.copy(), running_var=var.array.copy(),
                                   training=training, momentum=0.1, eps=1e-5)

    y = fn(x, weight, bias).array
    if np.abs(y[y > 0]).min(initial=1) < 1e-3 or (np.abs(y) < 1e-3).any():  # an output at the kink
        return
    assert gradcheck(fn, x, weight, bias, atol=1e-5)


@given(n=st.integers(2, 4), c=st.integers(1, 3), hw=st.integers(1, 3), training=st.booleans(), seed=seeds)
def test_batch_norm_add_relu_gradients_match_finite_differences(n, c, hw, training, seed):
    data = np.random.default_rng(seed)
    x, weight, bias = leaf(data.standard_normal((n, c, hw, hw))), leaf(data.uniform(0.5, 2, c)), leaf(data.standard_normal(c))
    residual = leaf(data.standard_normal((n, c, hw, hw)))
    mean, var = minidl.tensor(data.standard_normal(c)), minidl.tensor(data.uniform(0.5, 2, c))

    def fn(x, weight, bias, residual):
        return BatchNormAddReLU.apply(x, weight, bias, residual, running_mean=mean.array.copy(),
                                      running_var=var.array.copy(), training=training, momentum=0.1, eps=1e-5)

    normalised = F.batch_norm(x, mean.array.copy(), var.array.copy(), weight, bias, training=training).array
    if (np.abs(normalised + residual.array) < 1e-3).any():  # an output at the kink
        return
    assert gradcheck(fn, x, weight, bias, residual, atol=1e-5)


@given(n=st.integers(2, 3), c=st.integers(1, 19), hw=st.integers(1, 2), training=st.booleans(), seed=seeds)
def test_cpu_batch_norm_add_relu_gradients_match_finite_differences(n, c, hw, training, seed):
    """relu(batch_norm(x) + r) on channels-last x and r: the CPU's BatchNormAddReLUChannelsLast."""
    data = np.random.default_rng(seed)
    x, weight, bias = leaf(data.standard_normal((n, c, hw, hw))), leaf(data.uniform(0.5, 2, c)), leaf(data.standard_normal(c))
    residual = leaf(data.standard_normal((n, c, hw, hw)))
    mean, var = data.standard_normal(c), data.uniform(0.5, 2, c)

    def fn(x, weight, bias, residual):
        x, residual = (t.contiguous(memory_format=minidl.channels_last) for t in (x, residual))
        return F.batch_norm_add_relu(x, residual, mean.copy(), var.copy(), weight, bias, training=training)

    with minidl.backends.reference(False), chosen_implementations() as chosen:
        out = fn(x, weight, bias, residual)
        normalised = F.batch_norm(x, mean.copy(), var.copy(), weight, bias, training=training).array
        if (np.abs(normalised + residual.array) < 1e-3).any():
            return  # an output at the kink: the finite differences would straddle it
        assert gradcheck(fn, x, weight, bias, residual, atol=1e-5)
    assert "BatchNormAddReLUChannelsLast" in {cls.__name__ for cls in chosen}
    assert out.memory_format is minidl.channels_last


@given(n=st.integers(2, 3), c=st.integers(1, 19), hw=st.integers(1, 2), training=st.booleans(), seed=seeds)
def test_cpu_fused_ops_gradients_match_finite_differences(n, c, hw, training, seed):
    """relu(relu(batch_norm(x)) + x) on channels-last x: the CPU's BatchNormReLUChannelsLast and AddReLUThreaded."""
    data = np.random.default_rng(seed)
    x, weight, bias = leaf(data.standard_normal((n, c, hw, hw))), leaf(data.uniform(0.5, 2, c)), leaf(data.standard_normal(c))
    mean, var = data.standard_normal(c), data.uniform(0.5, 2, c)

    def fn(x, weight, bias):
        x = x.contiguous(memory_format=minidl.channels_last)
        return F.add_relu(F.batch_norm_relu(x, mean.copy(), var.copy(), weight, bias, training=training), x)

    with minidl.backends.reference(False), chosen_implementations() as chosen:
        out = fn(x, weight, bias)
        normalised = F.batch_norm(x, mean.copy(), var.copy(), weight, bias, training=training).array
        if (np.abs(normalised) < 1e-3).any() or (np.abs(np.maximum(normalised, 0) + x.array) < 1e-3).any():
            return  # an input of a ReLU at the kink: the finite differences would straddle it
        assert gradcheck(fn, x, weight, bias, atol=1e-5)
    names = {cls.__name__ for cls in chosen}
    assert {"BatchNormReLUChannelsLast", "AddReLUThreaded"} <= names, names
    assert out.memory_format is minidl.channels_last


def test_fused_references_match_torch(rng):
    torch = torch_or_skip()
    x, g = rng.standard_normal((4, 3, 5, 5)), rng.standard_normal((4, 3, 5, 5))
    weight, bias = rng.standard_normal(3), rng.standard_normal(3)
    ours = [leaf(v) for v in (x, weight, bias)]
    theirs = [torch.tensor(v, requires_grad=True) for v in (x, weight, bias)]
    y = BatchNormReLU.apply(*ours, running_mean=None, running_var=None, training=True, momentum=0.1, eps=1e-5)
    ty = torch.relu(torch.nn.functional.batch_norm(theirs[0], None, None, theirs[1], theirs[2], training=True))
    y.backward(minidl.tensor(g))
    ty.backward(torch.tensor(g))
    np.testing.assert_allclose(y.array, ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a.grad.array, b.grad.numpy(), rtol=1e-9, atol=1e-10)
    a, b = leaf(x), leaf(g)
    out = AddReLU.apply(a, b)
    ta, tb = torch.tensor(x, requires_grad=True), torch.tensor(g, requires_grad=True)
    tout = torch.relu(ta + tb)
    out.backward(minidl.tensor(x))
    tout.backward(torch.tensor(x))
    np.testing.assert_allclose(out.array, tout.detach().numpy())
    np.testing.assert_allclose(a.grad.array, ta.grad.numpy())
    np.testing.assert_allclose(b.grad.array, tb.grad.numpy())


def test_batch_norm_add_relu_reference_matches_torch(rng):
    torch = torch_or_skip()
    x, r, g = (rng.standard_normal((4, 3, 5, 5)) for _ in range(3))
    weight, bias = rng.standard_normal(3), rng.standard_normal(3)
    ours = [leaf(v) for v in (x, weight, bias, r)]
    theirs = [torch.tensor(v, requires_grad=True) for v in (x, weight, bias, r)]
    y = BatchNormAddReLU.apply(*ours, running_mean=None, running_var=None, training=True, momentum=0.1, eps=1e-5)
    ty = torch.relu(torch.nn.functional.batch_norm(theirs[0], None, None, theirs[1], theirs[2], training=True)
                    + theirs[3])
    y.backward(minidl.tensor(g))
    ty.backward(torch.tensor(g))
    np.testing.assert_allclose(y.array, ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a.grad.array, b.grad.numpy(), rtol=1e-9, atol=1e-10)


def test_resnet_blocks_fuse_their_last_batch_norm_and_join_on_the_cpu():
    block = minidl.models.resnet.BasicBlock(4, 4)
    x = minidl.randn(2, 4, 5, 5).contiguous(memory_format=minidl.channels_last)
    seen = []
    with minidl.backends.reference(False):
        assert type(block(x).grad_fn).__name__ == "BatchNormAddReLUChannelsLast"
        block.bn2.register_forward_hook(lambda module, args, output: seen.append(output.shape))
        assert type(block(x).grad_fn).__name__ == "AddReLUThreaded" and seen == [(2, 4, 5, 5)]


@pytest.mark.parametrize("momentum", [0.1, None])
def test_batch_norm_module_forward_add_relu_keeps_the_running_statistics_of_forward(momentum):
    fused, plain = nn.BatchNorm2d(3, momentum=momentum), nn.BatchNorm2d(3, momentum=momentum)
    for _ in range(2):
        x, r = minidl.randn(4, 3, 2, 2), minidl.randn(4, 3, 2, 2)
        np.testing.assert_allclose(fused.forward_add_relu(x, r).array, F.relu(plain(x) + r).array, rtol=1e-6,
                                   atol=1e-7)
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        np.testing.assert_allclose(getattr(fused, name).array, getattr(plain, name).array, err_msg=name)


def test_the_functionals_fuse_only_where_a_backend_does(standin, kernels):
    x = minidl.randn(4, 3, 2, 2, requires_grad=True)
    weight, bias = minidl.ones(3, requires_grad=True), minidl.zeros(3, requires_grad=True)
    on_cpu = F.batch_norm_relu(x, None, None, weight, bias, training=True)
    assert type(on_cpu.grad_fn).__name__ == "ReLU"  # NCHW input: two ops, the CPU fuses on channels-last rows
    x_last = x.contiguous(memory_format=minidl.channels_last)
    on_cpu_rows = F.batch_norm_relu(x_last, None, None, weight, bias, training=True)
    assert type(on_cpu_rows.grad_fn).__name__ == "BatchNormReLUChannelsLast"
    assert on_cpu_rows.memory_format is minidl.channels_last
    np.testing.assert_allclose(on_cpu_rows.detach().array, on_cpu.detach().array, rtol=1e-6, atol=1e-7)
    assert type(F.add_relu(x, x).grad_fn).__name__ == "AddReLUThreaded"
    assert type(F.add_relu(x, x.to(minidl.float64)).grad_fn).__name__ == "ReLU"  # dtypes differ: two ops
    with minidl.backends.reference():
        assert type(F.batch_norm_relu(x_last, None, None, weight, bias, training=True).grad_fn).__name__ == "ReLU"
        assert type(F.add_relu(x, x).grad_fn).__name__ == "ReLU"
    xc, wc, bc = x.to("cuda"), weight.to("cuda"), bias.to("cuda")
    on_cuda = F.batch_norm_relu(xc, None, None, wc, bc, training=True)
    assert type(on_cuda.grad_fn).__name__ == "BatchNormReLUCuda" and type(F.add_relu(xc, xc).grad_fn).__name__ == \
        "AddReLUCuda"
    np.testing.assert_allclose(on_cuda.detach().cpu().array, on_cpu.detach().array, rtol=1e-5, atol=1e-6)
    with minidl.backends.reference():
        assert type(F.batch_norm_relu(xc, None, None, wc, bc, training=True).grad_fn).__name__ == "ReLU"


def test_resnet_blocks_use_their_modules_when_a_hook_watches(standin, kernels):
    block = minidl.models.resnet.BasicBlock(4, 4).to("cuda")
    x = minidl.randn(2, 4, 5, 5).to("cuda")
    assert type(block(x).grad_fn).__name__ == "AddReLUCuda"
    seen = []
    block.bn1.register_forward_hook(lambda module, args, output: seen.append(output.shape))
    block.relu.register_forward_hook(lambda module, args, output: seen.append("relu"))
    out = block(x)
    assert seen == [(2, 4, 5, 5), "relu", "relu"] and type(out.grad_fn).__name__ == "ReLU"
    assert list(block.state_dict()) == ["conv1.weight", "bn1.weight", "bn1.bias", "bn1.running_mean",
                                        "bn1.running_var", "bn1.num_batches_tracked", "conv2.weight", "bn2.weight",
                                        "bn2.bias", "bn2.running_mean", "bn2.running_var",
                                        "bn2.num_batches_tracked"]


@pytest.mark.parametrize("momentum", [0.1, None])
def test_batch_norm_module_forward_relu_keeps_the_running_statistics_of_forward(momentum):
    fused, plain = nn.BatchNorm2d(3, momentum=momentum), nn.BatchNorm2d(3, momentum=momentum)
    for _ in range(2):
        x = minidl.randn(4, 3, 2, 2)
        np.testing.assert_allclose(fused.forward_relu(x).array, F.relu(plain(x)).array, rtol=1e-6, atol=1e-7)
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        np.testing.assert_allclose(getattr(fused, name).array, getattr(plain, name).array, err_msg=name)


def test_a_batch_norm_subclass_with_its_own_forward_is_not_fused_away(standin, kernels):
    class Doubled(nn.BatchNorm2d):  # as SyncBatchNorm: its own forward must run
        def forward(self, input):
            return super().forward(input) * 2

    x = minidl.randn(4, 3, 2, 2).to("cuda")
    doubled = Doubled(3).to("cuda")
    np.testing.assert_allclose(doubled.forward_relu(x).cpu().array, F.relu(nn.BatchNorm2d(3).to("cuda")(x) * 2).cpu()
                               .array, rtol=1e-6)


def test_sequential_fuses_a_batch_norm_and_the_relu_after_it():
    torch_order = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(inplace=True),
                                nn.MaxPool2d(2))
    x = minidl.randn(2, 3, 6, 6).contiguous(memory_format=minidl.channels_last)
    features = torch_order[:3](x)
    assert type(features.grad_fn).__name__ == "BatchNormReLUChannelsLast"
    assert torch_order[1].num_batches_tracked.item() == 1
    with minidl.backends.reference():  # no fused op on the device: the modules' own calls
        unfused = torch_order[:3](x)
    assert type(unfused.grad_fn).__name__ == "ReLU"
    np.testing.assert_allclose(features.detach().array, unfused.detach().array, rtol=1e-5, atol=1e-6)
    assert list(torch_order.state_dict()) == ["0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean",
                                              "1.running_var", "1.num_batches_tracked"]


def test_sequential_runs_the_modules_themselves_when_a_hook_watches():
    model = nn.Sequential(nn.BatchNorm2d(4), nn.ReLU(), nn.BatchNorm2d(4), nn.LeakyReLU())
    x = minidl.randn(2, 4, 3, 3).contiguous(memory_format=minidl.channels_last)
    seen = []
    model[1].register_forward_hook(lambda module, args, output: seen.append(float(output.min())))
    out = model(x)
    assert seen == [0.0] and type(out.grad_fn).__name__ == "LeakyReLU"  # LeakyReLU is not ReLU: never fused
    model[1]._forward_hooks.clear()
    assert type(model[:2](x).grad_fn).__name__ == "BatchNormReLUChannelsLast"
