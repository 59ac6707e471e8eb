"""minidl.models: parameter counts, output shapes, torchvision's state-dict names, options and errors."""
import numpy as np
import pytest

import minidl
import minidl.nn as nn
from minidl import models
from minidl import experiments
from minidl.experiments import E11_CONFIGS, E11_PARAMS, E11_REPORTED_PARAMS
from minidl.models import ZeroPadShortcut, get_model

from helpers import assert_close, torch_or_skip


def count(model):
    return sum(int(p.array.size) for p in model.parameters())


# Counts published elsewhere (torchvision, He et al., the public CIFAR recipes, E11's table) or counted by hand.
KNOWN_COUNTS = [
    ("resnet18", {}, 11_173_962),                        # CIFAR ResNet-18, 10 classes
    ("resnet50", {}, 23_520_842),                        # CIFAR ResNet-50, 10 classes
    ("resnet18", {"stem": "imagenet", "num_classes": 1000}, 11_689_512),  # torchvision resnet18
    ("resnet34", {"stem": "imagenet", "num_classes": 1000}, 21_797_672),  # torchvision resnet34
    ("resnet50", {"stem": "imagenet", "num_classes": 1000}, 25_557_032),  # torchvision resnet50
    ("resnet20", {"shortcut": "zero_pad"}, 269_722),     # He et al.'s "0.27M"
    ("resnet20", {"shortcut": "projection"}, 272_474),   # + 2 x (1x1 conv + BN): 16*32+64 + 32*64+128
    ("resnet110", {"shortcut": "zero_pad"}, 1_727_962),  # He et al.'s "1.7M"
    ("vgg16", {}, 14_728_266),
    ("vgg19", {}, 20_040_522),
    ("vgg19_like", {}, 20_040_522 + 2 * (512 * 512 + 512)),
    ("plain_cnn", {}, 2_234_026),                        # by hand: 2,174,176 conv/BN + 1,049,600 + 10,250
    ("e7_resnet", {"layout": "text"}, 4_035_364),        # by hand from E7's layer list (fc 256 -> 100)
    ("e7_resnet", {}, 4_035_364 + 768 * 100 - 64 * 65),  # its printout: fc 1024 -> 100, layer2 unstrided
    ("report_resnet", {"depth": 20}, None),              # checked against its name below
]


@pytest.mark.parametrize("name, kwargs, expected", KNOWN_COUNTS)
def test_parameter_counts(name, kwargs, expected):
    model = get_model(name, **kwargs)
    if expected is not None:
        assert count(model) == expected


@pytest.mark.parametrize("combination", sorted(E11_CONFIGS))
def test_e11_counts(combination):
    model = experiments.e11_resnet(combination)
    assert count(model) == E11_PARAMS[combination]
    if combination in (3, 5, 6):
        assert count(model) == E11_REPORTED_PARAMS[combination]


def test_resnet110_projection_count_is_zero_pad_plus_two_projections():
    projections = (16 * 32 + 2 * 32) + (32 * 64 + 2 * 64)
    assert count(models.resnet110()) == count(models.resnet110(shortcut="zero_pad")) + projections


@pytest.mark.parametrize("name", models.list_models())
def test_every_model_maps_a_cifar_batch_to_logits(name):
    minidl.manual_seed(0)
    model = get_model(name, num_classes=7)
    out = model(minidl.randn(2, 3, 32, 32))
    assert out.shape == (2, 7)
    assert out.dtype == np.float32
    assert np.all(np.isfinite(out.detach().numpy()))


def test_model_backward_reaches_every_parameter():
    model = models.resnet20(num_classes=10, shortcut="zero_pad")
    loss = nn.functional.cross_entropy(model(minidl.randn(2, 3, 32, 32)), minidl.tensor([1, 7]))
    loss.backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and param.grad.shape == param.shape, name


def torch_reference(depth, stem, num_classes):
    torch_or_skip()
    from torch_resnets import TorchBasicBlock, TorchBottleneck, TorchResNet
    block, layers = {18: (TorchBasicBlock, [2, 2, 2, 2]), 50: (TorchBottleneck, [3, 4, 6, 3])}[depth]
    return TorchResNet(block, layers, num_classes=num_classes, stem=stem)


@pytest.mark.parametrize("depth, stem", [(18, "cifar"), (18, "imagenet"), (50, "cifar")])
def test_state_dict_names_and_shapes_are_torchvisions(depth, stem):
    reference = torch_reference(depth, stem, num_classes=10)
    model = {18: models.resnet18, 50: models.resnet50}[depth](num_classes=10, stem=stem)
    ours = model.state_dict()
    theirs = reference.state_dict()
    assert list(ours) == list(theirs)
    for key, value in ours.items():
        assert tuple(value.shape) == tuple(theirs[key].shape), key
    assert [name for name, _ in model.named_children()] == [name for name, _ in reference.named_children()]


def test_imagenet_stem_runs_torchvision_weights_like_torchvision():
    """E8/E13: weights of torchvision's resnet18 load by state dict and give torchvision's outputs."""
    torch = torch_or_skip()
    from torch_resnets import to_numpy_state
    torch.manual_seed(0)
    reference = torch_reference(18, "imagenet", num_classes=1000).double().eval()
    with torch.no_grad():  # non-trivial running statistics, as pretrained weights have
        for m in reference.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    model = models.resnet18(num_classes=1000, stem="imagenet").double().eval()
    model.load_state_dict(to_numpy_state(reference.state_dict()))
    images = np.random.default_rng(0).standard_normal((1, 3, 64, 64))
    with minidl.no_grad():
        out = model(minidl.tensor(images))
    with torch.no_grad():
        expected = reference(torch.from_numpy(images))
    assert out.shape == (1, 1000)
    assert_close(out, expected, rtol=1e-9, atol=1e-12, what="resnet18 imagenet-stem logits")


def test_imagenet_stem_layout():
    model = models.resnet18(stem="imagenet")
    assert model.conv1.weight.shape == (64, 3, 7, 7)
    assert isinstance(model.maxpool, nn.MaxPool2d)
    cifar = models.resnet18()
    assert cifar.conv1.weight.shape == (64, 3, 3, 3)
    assert isinstance(cifar.maxpool, nn.Identity)


def test_zero_init_residual_zeroes_last_bn_of_each_block():
    basic = models.resnet18(zero_init_residual=True)
    assert all(np.all(block.bn2.weight.detach().numpy() == 0) for layer in
               (basic.layer1, basic.layer2, basic.layer3, basic.layer4) for block in layer)
    assert np.all(basic.bn1.weight.detach().numpy() == 1)
    bottleneck = models.resnet50(zero_init_residual=True)
    assert all(np.all(block.bn3.weight.detach().numpy() == 0) for block in bottleneck.layer3)
    assert not np.all(models.resnet18().layer1[0].bn2.weight.detach().numpy() == 0)


def test_zero_pad_shortcut_subsamples_and_pads_channels():
    x = minidl.tensor(np.arange(2 * 4 * 6 * 6, dtype=np.float64).reshape(2, 4, 6, 6), requires_grad=True)
    out = ZeroPadShortcut(4, 8, stride=2)(x)
    assert out.shape == (2, 8, 3, 3)
    expected = np.zeros((2, 8, 3, 3))
    expected[:, 2:6] = x.detach().numpy()[:, :, ::2, ::2]
    np.testing.assert_array_equal(out.detach().numpy(), expected)
    out.sum().backward()
    grad = np.zeros((2, 4, 6, 6))
    grad[:, :, ::2, ::2] = 1.0
    np.testing.assert_array_equal(x.grad.numpy(), grad)


def test_resnet20_shortcut_modules():
    projection = models.resnet20()
    assert projection.layer1[0].downsample is None
    assert isinstance(projection.layer2[0].downsample, nn.Sequential)
    assert projection.layer2[0].downsample[0].weight.shape == (32, 16, 1, 1)
    zero_pad = models.resnet20(shortcut="zero_pad")
    assert isinstance(zero_pad.layer3[0].downsample, ZeroPadShortcut)
    assert len(list(zero_pad.layer3[0].downsample.parameters())) == 0


def test_preact_resnet_structure_and_dropout():
    model = experiments.preact_resnet18()
    for layer in (model.layer1, model.layer2, model.layer3, model.layer4):
        assert layer[0].downsample is not None  # the report's conv block, also in stage 1 at stride 1
        assert layer[1].downsample is None
        assert isinstance(layer[1].dropout, nn.Dropout) and isinstance(layer[1].dropout2d, nn.Dropout2d)
    assert isinstance(model.layer1[1].elu, nn.ELU)
    assert model.dropout.p == 0.3 and model.fc.in_features == 512
    x = minidl.randn(2, 3, 32, 32)
    model.eval()
    with minidl.no_grad():
        np.testing.assert_array_equal(model(x).numpy(), model(x).numpy())
    model.train()
    with minidl.no_grad():
        assert not np.array_equal(model(x).numpy(), model(x).numpy())


def test_plain_cnn_block_order():
    block = experiments.plain_cnn().features[0]
    kinds = [type(m).__name__ for m in block]
    assert kinds == ["Conv2d", "ReLU", "BatchNorm2d", "Conv2d", "ReLU", "BatchNorm2d", "MaxPool2d", "Dropout"]
    assert [b[-1].p for b in experiments.plain_cnn().features] == [0.25, 0.35, 0.45, 0.35]


def test_e7_resnet_layouts_printout_and_text():
    printout, text = experiments.e7_resnet(), experiments.e7_resnet(layout="text")
    assert printout.fc.in_features == 1024 and text.fc.in_features == 256  # the printout's Linear(1024, 100)
    assert isinstance(printout.dropout, nn.Dropout2d) and printout.dropout.p == 0.2
    assert type(text.dropout) is nn.Dropout and text.dropout.p == 0.3
    for model in (printout, text):
        assert model.fc.out_features == 100
        assert isinstance(model.layer1[0], models.BasicBlock)  # the library's block, not a copy of it
        assert model.layer1[0].downsample is None and model.layer1[0].conv1.bias is not None
        assert model.layer4[0].downsample.stride in (2, (2, 2))
        assert model.layer4[1].downsample is None
        assert model(minidl.randn(2, 3, 32, 32)).shape == (2, 100)
    assert printout.layer2[0].downsample is None and text.layer2[0].downsample is not None


@pytest.mark.parametrize("depth, layers", [(18, [2, 2, 2, 2]), (20, [3, 3, 3]), (50, [6, 6, 6, 6]), (110, [18, 18, 18])])
def test_report_resnet_depth_is_the_reports_name(depth, layers):
    """The report's code names ResNet_N(layers) "ResNet-" + str(2 * sum(layers) + 2)."""
    model = experiments.report_resnet(depth=depth)
    blocks = sum(len(getattr(model, f"layer{i + 1}")) for i in range(model.layers))
    assert [len(getattr(model, f"layer{i + 1}")) for i in range(model.layers)] == layers
    assert 2 * blocks + 2 == depth
    with pytest.raises(ValueError, match="ResNet-20"):
        experiments.report_resnet(depth=18, layers=[3, 3, 3])


def test_configurable_resnet_kernels_and_pool():
    model = experiments.configurable_resnet([1, 1, 1], c1=16, conv_kernel=[3, 5, 3], skip_kernel=3, pool_kernel=4)
    assert isinstance(model.layer2[0], models.BasicBlock)
    assert model.layer2[0].conv1.weight.shape == (32, 16, 5, 5)
    assert model.layer2[0].downsample[0].weight.shape == (32, 16, 3, 3)
    assert model.fc.in_features == 64 * 2 * 2  # 8x8 final map, 4x4 pool
    assert model(minidl.randn(2, 3, 32, 32)).shape == (2, 10)
    with pytest.raises(ValueError, match="conv_kernel"):
        experiments.configurable_resnet([1, 1], conv_kernel=[3, 3, 3])
    with pytest.raises(ValueError, match="odd"):
        experiments.configurable_resnet([1, 1], skip_kernel=2)
    with pytest.raises(ValueError, match="pool_kernel"):
        experiments.configurable_resnet([1, 1, 1], pool_kernel=16)


def test_get_model_unknown_name_lists_valid_names():
    with pytest.raises(ValueError) as info:
        get_model("resnet21")
    message = str(info.value)
    assert "resnet21" in message
    for name in ("resnet18", "resnet20", "vgg16", "plain_cnn", "e11_resnet"):
        assert name in message


def test_get_model_passes_options():
    assert count(get_model("ResNet20", shortcut="zero_pad")) == 269_722
    assert get_model("vgg11", num_classes=100).classifier.out_features == 100


@pytest.mark.parametrize("build, match", [
    (lambda: models.resnet18(stem="tiny"), "cifar, imagenet"),
    (lambda: models.resnet20(shortcut="B"), "projection, zero_pad"),
    (lambda: experiments.e11_resnet(9), r"\[1, 2, 3, 4, 5, 6, 7, 8\]"),
])
def test_bad_options_list_the_valid_ones(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_models_follow_the_default_dtype():
    minidl.set_default_dtype(minidl.float64)
    model = experiments.preact_resnet18()
    assert {p.dtype for p in model.parameters()} == {np.dtype(np.float64)}
    assert model(minidl.randn(2, 3, 32, 32)).dtype == np.float64
