"""examples/gradient_flow.py (docs/degradation.md): a small real run on Fashion-MNIST, and its networks.

The run trains plain and residual networks of depths 8 and 14 for 32 steps each on 512 real images and checks
what the docs rely on: the figures and results.json are written, every probe has one finite, positive
gradient norm per convolution for both measures, both families have exactly the same parameters, and every
network learned (test accuracy far above the 10% of chance).
"""
import importlib.util
import json
import math
import os

import pytest

import minidl
from minidl.data import mnist
from minidl.models import resnet20

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_example():
    spec = importlib.util.spec_from_file_location("gradient_flow", os.path.join(ROOT, "examples", "gradient_flow.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_residual_family_is_minidls_resnet_and_the_plain_one_has_the_same_parameters():
    gradient_flow = load_example()
    residual = gradient_flow.build("resnet", 20, 16, seed=0)
    plain = gradient_flow.build("plain", 20, 16, seed=0)
    reference = resnet20(num_classes=10, shortcut="zero_pad", in_channels=1)
    shapes = lambda model: {k: tuple(v.shape) for k, v in model.state_dict().items()}  # noqa: E731
    assert shapes(residual) == shapes(reference) == shapes(plain)
    assert len(gradient_flow.main_path_convs(plain)) == 19  # the stem and 2 per block: depth - 1
    # the same seed gives the same initial weights in both families
    assert all((a.detach().numpy() == b.detach().numpy()).all() for a, b in zip(residual.parameters(), plain.parameters()))
    x = minidl.randn(2, 1, 28, 28)
    assert not (residual(x).detach().numpy() == plain(x).detach().numpy()).all()  # but not the same function


def test_bad_depths_are_refused_with_the_valid_form():
    gradient_flow = load_example()
    with pytest.raises(SystemExit):
        gradient_flow.parse_args(["--depths", "21"])


@pytest.mark.skipif(not os.path.isdir(mnist.DEBIAN_FASHION_MNIST),
                    reason="Debian's dataset-fashion-mnist is not installed (CI installs it)")
def test_a_small_real_run_writes_figures_and_per_layer_gradient_norms(tmp_path):
    gradient_flow = load_example()
    out = tmp_path / "run"
    gradient_flow.main(["--depths", "8,14", "--width", "8", "--subset", "512", "--epochs", "2", "--batch-size", "32",
                        "--test-size", "500", "--probe-every", "8", "--seed", "1", "--data-dir", str(tmp_path / "data"),
                        "--out", str(out)])
    for figure in ("curves.png", "grad_norms.png"):
        with open(out / figure, "rb") as file:
            data = file.read()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000, figure
    with open(out / "results.json") as file:
        records = json.load(file)["records"]
    assert [(r["family"], r["depth"]) for r in records] == [("plain", 8), ("resnet", 8), ("plain", 14), ("resnet", 14)]
    for record in records:
        assert record["steps"] == 32 and len(record["loss"]) == 32
        assert [p["step"] for p in record["probes"]] == [0, 8, 16, 24, 31]
        for probe in record["probes"]:
            for key in ("activation_grad", "weight_grad"):
                assert len(probe[key]) == record["depth"] - 1 == len(record["layers"])
                assert all(math.isfinite(v) and v > 0 for v in probe[key]), (record["family"], key, probe[key])
        assert record["test_acc"][-1] > 0.25, record["test_acc"]  # chance is 0.10
    for depth in (8, 14):
        plain, residual = (r for r in records if r["depth"] == depth)
        assert plain["parameters"] == residual["parameters"]
