"""A whole ResNet-20 against PyTorch in float64: from identical weights, the training-mode loss, every parameter's
gradient, the updated BatchNorm running statistics, and the eval-mode output must agree to float64 rounding."""
import numpy as np
import pytest

import minidl
import minidl.nn.functional as F
from minidl.models import resnet20

from helpers import assert_close, torch_or_skip

BATCH = 8


def build_pair(shortcut, seed):
    """A float64 minidl ResNet-20 and its PyTorch twin holding the same weights (minidl's init, copied over)."""
    torch = torch_or_skip()
    from torch_resnets import TorchCifarResNet, to_torch_state
    minidl.manual_seed(seed)
    model = resnet20(num_classes=10, shortcut=shortcut).double()
    reference = TorchCifarResNet(3, num_classes=10, shortcut=shortcut).double()
    reference.load_state_dict(to_torch_state(model.state_dict()), strict=True)
    return torch, model, reference


def random_batch(seed):
    rng = np.random.default_rng(seed)
    images = rng.standard_normal((BATCH, 3, 32, 32))
    labels = rng.integers(0, 10, size=BATCH)
    return images, labels


@pytest.mark.parametrize("shortcut, seed", [("projection", 0), ("zero_pad", 1)])
def test_resnet20_forward_backward_and_running_stats_equal_torch(shortcut, seed):
    torch, model, reference = build_pair(shortcut, seed)
    images, labels = random_batch(seed + 100)
    assert set(model.state_dict()) == set(reference.state_dict())

    model.train()
    reference.train()
    loss = F.cross_entropy(model(minidl.tensor(images)), minidl.tensor(labels))
    loss.backward()
    torch_loss = torch.nn.functional.cross_entropy(reference(torch.from_numpy(images)), torch.from_numpy(labels))
    torch_loss.backward()

    assert loss.dtype == np.float64
    assert_close(loss, torch_loss, rtol=1e-10, what="loss")

    torch_params = dict(reference.named_parameters())
    names = [name for name, _ in model.named_parameters()]
    assert names == list(torch_params), "parameter names or order differ from PyTorch's"
    for name, param in model.named_parameters():
        assert param.grad is not None, f"no gradient reached {name}"
        assert_close(param.grad, torch_params[name].grad, rtol=1e-9, atol=1e-12, what=f"grad of {name}")

    torch_state = reference.state_dict()
    for name, value in model.state_dict().items():
        if name.endswith(("running_mean", "running_var")):
            assert_close(value, torch_state[name], rtol=1e-10, atol=1e-14, what=name)
        elif name.endswith("num_batches_tracked"):
            assert int(value) == int(torch_state[name]) == 1, name

    model.eval()
    reference.eval()
    eval_images, _ = random_batch(seed + 200)
    with minidl.no_grad():
        out = model(minidl.tensor(eval_images))
    with torch.no_grad():
        torch_out = reference(torch.from_numpy(eval_images))
    assert_close(out, torch_out, rtol=1e-9, atol=1e-12, what="eval-mode logits")


def test_resnet20_weights_loaded_from_torch_give_torch_outputs():
    """The other direction: PyTorch's own init loaded into minidl by state dict (as pretrained weights are)."""
    torch = torch_or_skip()
    from torch_resnets import TorchCifarResNet, to_numpy_state
    torch.manual_seed(3)
    reference = TorchCifarResNet(3, num_classes=10).double().eval()
    model = resnet20(num_classes=10).double().eval()
    model.load_state_dict(to_numpy_state(reference.state_dict()))
    images, _ = random_batch(7)
    with minidl.no_grad():
        out = model(minidl.tensor(images))
    with torch.no_grad():
        torch_out = reference(torch.from_numpy(images))
    assert_close(out, torch_out, rtol=1e-9, atol=1e-12, what="logits with torch-initialised weights")


@pytest.mark.parametrize("depth, stem, side", [(18, "imagenet", 64), (50, "cifar", 16)])
def test_torchvision_resnets_forward_backward_equal_torch(depth, stem, side):
    """The BasicBlock/Bottleneck ResNets with either stem, one training-mode step in float64 on small images
    (large enough that layer4's BatchNorm normalises 16 values per channel: over 2 it is ill-conditioned)."""
    torch = torch_or_skip()
    from torch_resnets import TorchBasicBlock, TorchBottleneck, TorchResNet, to_torch_state
    from minidl.models import resnet18, resnet50
    minidl.manual_seed(depth)
    model = {18: resnet18, 50: resnet50}[depth](num_classes=10, stem=stem).double()
    block, layers = {18: (TorchBasicBlock, [2, 2, 2, 2]), 50: (TorchBottleneck, [3, 4, 6, 3])}[depth]
    reference = TorchResNet(block, layers, num_classes=10, stem=stem).double()
    reference.load_state_dict(to_torch_state(model.state_dict()))
    rng = np.random.default_rng(depth)
    images, labels = rng.standard_normal((4, 3, side, side)), rng.integers(0, 10, size=4)

    loss = F.cross_entropy(model(minidl.tensor(images)), minidl.tensor(labels))
    loss.backward()
    torch_loss = torch.nn.functional.cross_entropy(reference(torch.from_numpy(images)), torch.from_numpy(labels))
    torch_loss.backward()
    assert_close(loss, torch_loss, rtol=1e-10, what="loss")
    torch_params = dict(reference.named_parameters())
    for name, param in model.named_parameters():
        assert_close(param.grad, torch_params[name].grad, rtol=1e-9, atol=1e-12, what=f"grad of {name}")
    torch_state = reference.state_dict()
    for name, value in model.state_dict().items():
        if name.endswith(("running_mean", "running_var")):
            assert_close(value, torch_state[name], rtol=1e-10, atol=1e-14, what=name)
