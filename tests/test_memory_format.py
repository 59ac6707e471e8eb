"""Tensor.memory_format: channels-last memory as a declared property of a tensor (docs/backends.md).

The op that makes a tensor declares its layout; the CPU's fast ops choose their path from that tag,
never from strides, and keep it flowing through a ResNet; reference ops are correct for any strides.
"""
import copy
import pickle

import numpy as np
import pytest

import minidl
from minidl.backends.cpu.activation import ReLUFused
from minidl.backends.cpu.add import AddThreaded
from minidl.backends.cpu.batchnorm import BatchNormChannelsLast
from minidl.backends.cpu.conv import Conv2dChannelsLast
from minidl.backends.cpu.pooling import AdaptiveAvgPool2dChannelsLast
from minidl.functions.activation import ReLU
from minidl.functions.arithmetic import Add
from minidl.functions.batchnorm import BatchNorm
from minidl.functions.conv import Conv2d
from tests.helpers import chosen_implementations

F = minidl.nn.functional
CL, CONTIGUOUS = minidl.channels_last, minidl.contiguous_format


def nhwc_array(shape, seed=0):
    """float64 values of ``shape`` (N, C, H, W) stored (N, H, W, C)."""
    values = np.random.default_rng(seed).standard_normal(shape)
    return np.ascontiguousarray(values.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)


def test_tensors_made_from_data_are_contiguous_and_the_formats_have_pytorch_names():
    x = minidl.randn(2, 3, 4, 5)
    assert x.memory_format is CONTIGUOUS and x.is_contiguous() and not x.is_contiguous(memory_format=CL)
    assert repr(CL) == "minidl.channels_last" and isinstance(CL, minidl.memory_format)
    assert copy.deepcopy(CL) is CL and pickle.loads(pickle.dumps(CL)) is CL


def test_contiguous_in_channels_last_copies_once_tags_and_passes_the_gradient():
    x = minidl.randn(2, 3, 4, 5, requires_grad=True)
    y = x.contiguous(memory_format=CL)
    assert y.memory_format is CL and y.is_contiguous(memory_format=CL) and not y.is_contiguous()
    np.testing.assert_array_equal(y.array, x.array)
    assert y.contiguous(memory_format=CL) is y  # already so: no copy
    upstream = np.random.default_rng(1).standard_normal(x.shape)
    (y.contiguous() * minidl.tensor(upstream)).sum().backward()
    np.testing.assert_allclose(x.grad.array, upstream, rtol=1e-6)
    back = y.contiguous()
    assert back.memory_format is CONTIGUOUS and back.array.flags.c_contiguous


def test_a_tensor_tagged_contiguous_but_stored_nhwc_is_made_contiguous():
    x = minidl.Tensor._from_array(nhwc_array((2, 3, 4, 5)))  # e.g. a reference op's output of NHWC input
    assert x.memory_format is CONTIGUOUS and not x.is_contiguous()
    assert x.contiguous().array.flags.c_contiguous


def test_to_clone_detach_and_data_keep_the_layout():
    x = minidl.randn(2, 3, 4, 5, dtype=minidl.float64).to(memory_format=CL)
    for y in (x.to(minidl.float32), x.clone(), x.detach(), x.data, x.to("cpu", copy=True)):
        assert y.memory_format is CL and y.is_contiguous(memory_format=CL), y
    assert x.to(memory_format=CONTIGUOUS).memory_format is CONTIGUOUS
    assert x.to(memory_format=minidl.preserve_format) is x


def test_bad_memory_formats_raise_pytorchs_errors():
    with pytest.raises(RuntimeError, match="required rank 4 tensor to use channels_last format"):
        minidl.randn(3, 4).contiguous(memory_format=CL)
    with pytest.raises(TypeError, match="memory_format must be"):
        minidl.randn(3, 4).contiguous(memory_format="channels_last")
    with pytest.raises(RuntimeError, match="preserve memory format is unsupported"):
        minidl.randn(3, 4).contiguous(memory_format=minidl.preserve_format)


def test_module_to_channels_last_stores_the_4d_parameters_so_and_computes_the_same():
    minidl.manual_seed(0)
    model = minidl.nn.Sequential(minidl.nn.Conv2d(3, 4, 3), minidl.nn.BatchNorm2d(4), minidl.nn.Flatten(),
                                 minidl.nn.Linear(4 * 3 * 3, 2))
    x = minidl.randn(2, 3, 5, 5)
    before = model(x).array
    assert model.to(memory_format=CL) is model
    conv_weight, linear_weight = model[0].weight, model[3].weight
    assert conv_weight.memory_format is CL and conv_weight.is_contiguous(memory_format=CL)
    assert linear_weight.memory_format is CONTIGUOUS and model[1].running_mean.memory_format is CONTIGUOUS
    np.testing.assert_allclose(model(x).array, before, rtol=1e-5, atol=1e-6)
    model.to(memory_format=CONTIGUOUS)
    assert conv_weight.memory_format is CONTIGUOUS and conv_weight.array.flags.c_contiguous


def test_the_fast_path_flows_through_a_resnet_and_every_channels_last_tag_is_true():
    model = minidl.models.get_model("resnet20", num_classes=10).train()
    tagged = []
    for module in model.modules():
        module.register_forward_hook(lambda module, inputs, output: tagged.append(output)
                                     if isinstance(output, minidl.Tensor) and output.memory_format is CL else None)
    x = minidl.randn(4, 3, 16, 16)
    with minidl.backends.reference(False), chosen_implementations() as chosen:
        F.cross_entropy(model(x), minidl.randint(0, 10, (4,))).backward()
    ran = {cls: chosen.count(cls) for cls in set(chosen)}
    assert ran.get(Conv2d, 0) == ran.get(BatchNorm, 0) == ran.get(ReLU, 0) == ran.get(Add, 0) == 0, ran
    assert ran[Conv2dChannelsLast] == ran[BatchNormChannelsLast] == 21  # 19 + 2 projection shortcuts
    assert ran[AddThreaded] == 9 and ran[ReLUFused] == 19  # 9 blocks: 2 ReLUs each, and the stem's
    assert ran[AdaptiveAvgPool2dChannelsLast] == 1
    assert len(tagged) >= 21 + 21 + 19
    assert all(t.is_contiguous(memory_format=CL) for t in tagged)


def test_under_the_reference_everything_is_contiguous():
    x, w = minidl.randn(2, 3, 6, 6), minidl.randn(4, 3, 3, 3)
    with minidl.backends.reference():
        y = F.relu(F.conv2d(x, w, padding=1))
    assert y.memory_format is CONTIGUOUS and y.is_contiguous()


def test_the_tag_decides_the_path_not_the_strides():
    data = nhwc_array((2, 3, 4, 5))
    untagged = minidl.Tensor._from_array(data)
    tagged = minidl.Tensor._from_array(data, memory_format=CL)
    lying = minidl.Tensor._from_array(np.ascontiguousarray(data), memory_format=CL)  # tagged, stored NCHW
    results = []
    with minidl.backends.reference(False):
        for x in (untagged, tagged, lying):
            with chosen_implementations() as chosen:
                results.append(F.batch_norm(x, None, None, training=True).array)
            assert chosen == ([BatchNorm] if x is untagged else [BatchNormChannelsLast])
    for result in results[1:]:  # the fast path is correct whatever the strides, only slower when they lie
        np.testing.assert_allclose(result, results[0], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("op", ["conv2d", "batch_norm", "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d"])
def test_reference_ops_are_correct_for_any_strides(op):
    data = nhwc_array((2, 3, 6, 6), seed=3)
    wide = np.zeros((2, 3, 6, 12))
    wide[..., ::2] = data
    layouts = {"nchw": np.ascontiguousarray(data), "nhwc": data, "fortran": np.asfortranarray(data),
               "strided view": wide[..., ::2]}
    calls = {"conv2d": lambda x: F.conv2d(x, minidl.ones(2, 3, 3, 3, dtype=minidl.float64), padding=1),
             "batch_norm": lambda x: F.batch_norm(x, None, None, training=True),
             "max_pool2d": lambda x: F.max_pool2d(x, 3, 2, 1), "avg_pool2d": lambda x: F.avg_pool2d(x, 2),
             "adaptive_avg_pool2d": lambda x: F.adaptive_avg_pool2d(x, (2, 3))}
    results = {}
    with minidl.backends.reference():
        for name, array in layouts.items():
            x = minidl.Tensor._from_array(array, requires_grad=True)
            y = calls[op](x)
            upstream = np.random.default_rng(4).standard_normal(y.shape)
            (y * minidl.tensor(upstream)).sum().backward()
            results[name] = (y.array, x.grad.array)
    for name, (y, grad) in results.items():
        np.testing.assert_allclose(y, results["nchw"][0], rtol=1e-10, atol=1e-12, err_msg=name)
        np.testing.assert_allclose(grad, results["nchw"][1], rtol=1e-10, atol=1e-12, err_msg=name)
