"""Every example script runs one short epoch on fake data, as CI's smoke test (issue 3).

Each script runs as a user would run it: a subprocess ``python examples/SCRIPT --fake-data --epochs 1 ...``
in a temporary output folder; the test asserts exit code 0 and the run's outputs (history.json, last.npz,
curves.png, or the feature-map PNGs). Also: ``--help`` for every script, ``--resume`` continuing the main
example, loading ``.npz`` ImageNet-form weights with frozen children (E13), and the search script (E11) with
optuna, or its install message without it.
"""
import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples")
SMOKE = ["--fake-data", "--epochs", "1", "--fake-size", "32", "--batch-size", "16", "--no-progress"]
# The costliest networks run one batch of 8 images (the point is that the script runs end to end), to keep
# this file within a few minutes on two CPU cores.
SMALL = ["--fake-size", "8", "--batch-size", "8"]

# script -> extra arguments for the smoke run (appended after SMOKE, so they override it).
TRAINING_SCRIPTS = {
    "train_resnet18_cifar10.py": [],
    "train_resnet20_cifar10.py": ["--shortcut", "zero_pad"],
    "train_resnet50_cifar10.py": SMALL,
    "train_preact_resnet18_cifar10.py": [],
    "train_resnet18_cifar100.py": SMALL,
    "train_resnet110_cifar100.py": SMALL,
    "train_custom_resnet_cifar100.py": [],
    "transfer_resnet18_cifar100.py": ["--image-size", "32"],
    "train_vgg19_cifar10.py": SMALL,
    "train_plaincnn_cifar10.py": [],
    "train_plaincnn_cifar100.py": [],
    "train_configurable_resnet_cifar10.py": ["--combination", "3", "--dropout", "0.2"],
    "train_resnet18_adam_cifar10.py": [],
    "finetune_resnet18_cifar10.py": ["--freeze-children", "6"],
    "train_tiny_cifar10_dropout.py": SMALL + ["--image-size", "40"],
    "train_resnet20_fashion_mnist.py": [],
}
OTHER_SCRIPTS = ["search_configurable_resnet.py", "feature_maps.py", "convert_torchvision_weights.py"]


def run_script(script, *args, timeout=300):
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, os.path.join(EXAMPLES, script), *map(str, args)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def assert_ok(result):
    assert result.returncode == 0, f"exit code {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"


def assert_run_outputs(out, epochs=1):
    for name in ("history.json", "last.npz", "curves.png"):
        assert os.path.isfile(os.path.join(out, name)), f"{name} missing in {out}: {os.listdir(out)}"
    with open(os.path.join(out, "history.json")) as file:
        rows = json.load(file)
    rows = rows["rows"] if isinstance(rows, dict) else rows
    assert [row["epoch"] for row in rows] == list(range(1, epochs + 1))
    assert all(np.isfinite(row["train_loss"]) for row in rows)
    return rows


def test_every_example_is_tested():
    scripts = {name for name in os.listdir(EXAMPLES) if name.endswith(".py")}
    assert scripts == set(TRAINING_SCRIPTS) | set(OTHER_SCRIPTS)


@pytest.mark.parametrize("script", sorted(TRAINING_SCRIPTS) + OTHER_SCRIPTS)
def test_help(script):
    result = run_script(script, "--help", timeout=60)
    assert_ok(result)
    assert "usage:" in result.stdout and "--out" in result.stdout
    if script in TRAINING_SCRIPTS:
        for option in ("--epochs", "--batch-size", "--lr", "--data-dir", "--device", "--resume", "--seed",
                       "--fake-data"):
            assert option in result.stdout, f"{script} --help lacks {option}"


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(TRAINING_SCRIPTS))
def test_training_script_runs_one_epoch(script, tmp_path):
    out = tmp_path / "run"
    result = run_script(script, *SMOKE, *TRAINING_SCRIPTS[script], "--out", out)
    assert_ok(result)
    assert "test: loss" in result.stdout and "top5" in result.stdout
    assert_run_outputs(out)


@pytest.mark.slow
def test_resume_continues_the_main_example(tmp_path):
    out, small = tmp_path / "run", ["--fake-size", "16"]
    assert_ok(run_script("train_resnet18_cifar10.py", *SMOKE, *small, "--out", out))
    first = assert_run_outputs(out, epochs=1)
    assert_ok(run_script("train_resnet18_cifar10.py", *SMOKE, *small, "--epochs", "2", "--resume", "--out", out))
    rows = assert_run_outputs(out, epochs=2)
    assert rows[0] == first[0]  # the first epoch's row survives the resume unchanged


@pytest.mark.slow
def test_dropout_sweep_trains_one_run_per_rate(tmp_path):
    out = tmp_path / "sweep"
    result = run_script("train_tiny_cifar10_dropout.py", *SMOKE, *SMALL, "--image-size", "32", "--sweep",
                        "--out", out)
    assert_ok(result)
    for p in ("0.1", "0.2", "0.3", "0.4"):
        assert_run_outputs(out / f"p{p}")
        assert f"p={p}: " in result.stdout.splitlines()[-1]


@pytest.mark.slow
def test_finetune_loads_npz_weights_and_freezes_all_but_fc(tmp_path):
    """E13's path: an ImageNet-form state dict in .npz, the first 10 children frozen, a new trainable fc."""
    from minidl.models import resnet18
    weights = tmp_path / "resnet18_imagenet.npz"
    np.savez(weights, **resnet18(num_classes=1000, stem="imagenet").state_dict())
    out = tmp_path / "run"
    result = run_script("finetune_resnet18_cifar10.py", *SMOKE, "--weights", weights, "--freeze-children", "10",
                        "--out", out)
    assert_ok(result)
    assert f"loaded ImageNet-pretrained weights from {weights}" in result.stdout
    assert "frozen children: conv1, bn1, relu, maxpool, layer1, layer2, layer3, layer4, avgpool, fc;" in result.stdout
    assert "5,130 of 11,181,642 parameters train" in result.stdout  # only the new Linear(512, 10)
    assert_run_outputs(out)


def test_transfer_explains_a_missing_weights_file(tmp_path):
    result = run_script("transfer_resnet18_cifar100.py", *SMOKE, "--weights", tmp_path / "absent.npz",
                        "--out", tmp_path / "run")
    assert result.returncode != 0
    assert "convert_torchvision_weights.py" in result.stderr


@pytest.mark.slow
def test_feature_maps_saves_a_grid_per_layer(tmp_path):
    out = tmp_path / "maps"
    result = run_script("feature_maps.py", "--fake-data", "--layers", "conv1,layer1.0.conv1,layer4", "--out", out)
    assert_ok(result)
    for name in ("input.png", "feature_maps_conv1.png", "feature_maps_layer1_0_conv1.png", "feature_maps_layer4.png"):
        assert (out / name).stat().st_size > 1000, name
    assert "layer4: 512 maps of 4x4" in result.stdout


@pytest.mark.slow
def test_feature_maps_reads_a_trainer_checkpoint(tmp_path):
    run = tmp_path / "run"
    assert_ok(run_script("train_resnet20_cifar10.py", *SMOKE, "--out", run))
    out = tmp_path / "maps"
    result = run_script("feature_maps.py", "--fake-data", "--model", "resnet20", "--checkpoint", run / "last.npz",
                        "--layers", "conv1,layer3", "--out", out)
    assert_ok(result)
    assert f"weights from {run / 'last.npz'}" in result.stdout
    assert (out / "feature_maps_layer3.png").is_file()


def test_feature_maps_names_unknown_layers(tmp_path):
    result = run_script("feature_maps.py", "--fake-data", "--layers", "conv1,nonexistent", "--out", tmp_path)
    assert result.returncode != 0
    assert "unknown layer(s) ['nonexistent']" in result.stderr and "layer4" in result.stderr


@pytest.mark.slow
def test_search_script(tmp_path):
    out = tmp_path / "search"
    result = run_script("search_configurable_resnet.py", "--fake-data", "--fake-size", "16", "--trials", "2",
                        "--epochs-per-trial", "2", "--combination", "3", "--no-progress", "--out", out)
    if importlib.util.find_spec("optuna") is None:
        assert result.returncode != 0
        assert "pip install optuna" in result.stderr
        return
    assert_ok(result)
    with open(out / "search.json") as file:
        search = json.load(file)
    assert len(search["trials"]) == 2
    for trial in search["trials"]:
        assert 1e-5 <= trial["params"]["lr"] <= 1e-1
        assert trial["params"]["batch_size"] in (16, 64, 128, 256)
        assert trial["params"]["optimizer"] in ("Adam", "SGD", "Adagrad")
    assert search["best"] is not None


def test_convert_weights_explains_missing_torchvision(tmp_path):
    if importlib.util.find_spec("torchvision") is not None:
        pytest.skip("torchvision is installed: converting would download ImageNet weights (no network in tests)")
    result = run_script("convert_torchvision_weights.py", "--out", tmp_path / "w.npz", timeout=60)
    assert result.returncode != 0
    assert "pip install torch torchvision" in result.stderr


@pytest.mark.skipif(importlib.util.find_spec("cupy") is not None, reason="CuPy is installed: the message is for machines without it")
def test_cuda_device_without_cupy_exits_with_one_clear_line(tmp_path):
    result = run_script("train_resnet20_cifar10.py", "--fake-data", "--device", "cuda", "--out", tmp_path)
    assert result.returncode != 0
    assert "--device cuda: minidl needs CuPy" in result.stderr and "pip install minidl[cuda12]" in result.stderr
    assert "Traceback" not in result.stderr
