"""Every example script runs one short epoch on fake data, as CI's smoke test (issue 3).

Each script runs as a user would run it: a subprocess ``python examples/SCRIPT --fake-data --epochs 1 ...``
in a temporary output folder; the test asserts exit code 0 and the run's outputs (history.json, last.npz,
curves.png, or the feature-map PNGs). Also: ``--help`` for every script (every option explained, with its
default), no example importing another, the README's walk-through run as written (train, Ctrl-C, resume,
extend, evaluate, feature maps), the one-line messages for what goes wrong, and loading torchvision's
ImageNet-form ResNet-18 .pth as torch.save writes it, with frozen children (E13). The Ray Tune search (E11) is tested in test_search.py.
"""
import ast
import importlib.util
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time

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
OTHER_SCRIPTS = ["search_configurable_resnet.py", "feature_maps.py", "evaluate.py",
                 "gradient_flow.py"]  # gradient_flow.py runs for real in tests/test_gradient_flow.py


def script_env():
    return dict(os.environ, MPLBACKEND="Agg", PYTHONUNBUFFERED="1",
                PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))


def run_script(script, *args, timeout=300, cwd=ROOT):
    return subprocess.run([sys.executable, os.path.join(EXAMPLES, script), *map(str, args)], cwd=cwd,
                          env=script_env(), capture_output=True, text=True, timeout=timeout)


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


def options_without_help(help_text):
    """The options whose --help entry has no explanation with a default (argparse's "(default: ...)")."""
    body = help_text.split("options:", 1)[1]
    entries = re.split(r"\n  (?=-)", "\n" + body)
    missing = []
    for entry in entries:
        names = re.findall(r"--[a-z0-9-]+", entry.split("  ")[0] if entry.strip() else "")
        if not names or names[0] == "--help":
            continue
        if "(default:" not in entry and "required" not in entry.lower():
            missing.append(names[0])
    return missing


@pytest.mark.parametrize("script", sorted(TRAINING_SCRIPTS) + OTHER_SCRIPTS)
def test_help(script):
    result = run_script(script, "--help", timeout=60)
    assert_ok(result)
    assert "usage:" in result.stdout and ("--out" in result.stdout or "--checkpoint" in result.stdout)
    assert options_without_help(result.stdout) == [], f"{script}: options without help text and default"
    if script in TRAINING_SCRIPTS:
        for option in ("--epochs", "--batch-size", "--lr", "--data-dir", "--device", "--resume", "--overwrite",
                       "--seed", "--fake-data"):
            assert option in result.stdout, f"{script} --help lacks {option}"


def test_the_help_check_sees_an_option_without_help():
    text = "usage: x\n\noptions:\n  -h, --help  show this help\n  --depth DEPTH\n  --lr LR  rate (default: 0.1)\n"
    assert options_without_help(text) == ["--depth"]


def test_no_example_imports_another():
    scripts = {name[:-3] for name in os.listdir(EXAMPLES) if name.endswith(".py")}
    for name in sorted(scripts):
        with open(os.path.join(EXAMPLES, name + ".py")) as file:
            tree = ast.parse(file.read())
        imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                    for alias in node.names}
        imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                     if isinstance(node, ast.ImportFrom) and node.module}
        assert not imported & scripts, f"{name}.py imports the example(s) {sorted(imported & scripts)}"


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(TRAINING_SCRIPTS))
def test_training_script_runs_one_epoch(script, tmp_path):
    out = tmp_path / "run"
    result = run_script(script, *SMOKE, *TRAINING_SCRIPTS[script], "--out", out)
    assert_ok(result)
    assert "test: loss" in result.stdout and "top5" in result.stdout
    rows = assert_run_outputs(out)
    assert {"test_top1", "test_top5"} <= rows[-1].keys()  # the test result is saved, not only printed


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
def test_finetune_loads_a_pytorch_pth_and_freezes_all_but_fc(tmp_path):
    """E13's path: torchvision's ResNet-18 state dict as torch.save writes it (.pth), loaded with no
    conversion; the first 10 children frozen, a new trainable fc."""
    torch = pytest.importorskip("torch")
    from tests.torch_resnets import TorchBasicBlock, TorchResNet
    weights = tmp_path / "resnet18-f37072fd.pth"
    torch.save(TorchResNet(TorchBasicBlock, [2, 2, 2, 2], num_classes=1000).state_dict(), weights)
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
    assert "no weights file at" in result.stderr and "resnet18-f37072fd.pth" in result.stderr


@pytest.mark.slow
def test_feature_maps_saves_a_grid_per_layer(tmp_path):
    out = tmp_path / "maps"
    result = run_script("feature_maps.py", "--fake-data", "--layers", "conv1,layer1.0.conv1,layer4", "--out", out)
    assert_ok(result)
    for name in ("input.png", "feature_maps_conv1.png", "feature_maps_layer1_0_conv1.png", "feature_maps_layer4.png"):
        assert (out / name).stat().st_size > 1000, name
    assert "layer4: 512 maps of 4x4" in result.stdout


def test_feature_maps_names_unknown_layers(tmp_path):
    result = run_script("feature_maps.py", "--fake-data", "--layers", "conv1,nonexistent", "--out", tmp_path)
    assert result.returncode != 0
    assert "unknown layer(s) ['nonexistent']" in result.stderr and "layer4" in result.stderr


@pytest.mark.skipif(importlib.util.find_spec("cupy") is not None, reason="CuPy is installed: the message is for machines without it")
def test_cuda_device_without_cupy_exits_with_one_clear_line(tmp_path):
    result = run_script("train_resnet20_cifar10.py", "--fake-data", "--device", "cuda", "--out", tmp_path)
    assert result.returncode != 0
    assert "--device cuda: minidl needs CuPy" in result.stderr and "pip install minidl[cuda12]" in result.stderr
    assert "Traceback" not in result.stderr


# ---------------------------------------------------------------------------- one clear line for each mistake
def test_resume_without_a_checkpoint_is_one_line(tmp_path):
    result = run_script("train_resnet20_cifar10.py", *SMOKE, "--resume", "--out", tmp_path / "none")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "--resume: no checkpoint to resume from at" in result.stderr


def test_a_second_run_into_the_same_out_is_refused_not_overwritten(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "last.npz").write_bytes(b"an earlier run's checkpoint")
    before = (out / "last.npz").read_bytes()
    result = run_script("train_plaincnn_cifar10.py", *SMOKE, "--out", out)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"--out {out} already holds a run" in result.stderr and "--resume" in result.stderr
    assert (out / "last.npz").read_bytes() == before


def test_feature_maps_without_data_and_with_an_unusable_device_say_so_in_one_line(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "cifar-10-python.tar.gz").write_bytes(b"not used")
    script = ("import sys, urllib.error, urllib.request, runpy\n"
              "def offline(*args, **kwargs):\n    raise urllib.error.URLError('no network in tests')\n"
              "urllib.request.urlopen = offline\n"
              "sys.argv = ['feature_maps.py', '--data-dir', %r, '--out', %r]\n"
              "runpy.run_path(%r, run_name='__main__')\n")
    result = subprocess.run([sys.executable, "-c", script % (str(empty), str(tmp_path / "maps"),
                                                            os.path.join(EXAMPLES, "feature_maps.py"))],
                            cwd=ROOT, env=script_env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "--data-dir" in result.stderr and "root=" not in result.stderr
    assert "only the binary version (cifar-10-binary.tar.gz), not the python version" in result.stderr
    assert "cifar-10-python.tar.gz is in --data-dir but cannot be used" in result.stderr
    if importlib.util.find_spec("cupy") is None:
        result = run_script("feature_maps.py", "--fake-data", "--device", "cuda", "--out", tmp_path / "maps")
        assert result.returncode == 1 and "Traceback" not in result.stderr
        assert "--device cuda: minidl needs CuPy" in result.stderr


# ---------------------------------------------------------------------------- the README's walk-through
def walkthrough_commands():
    """The commands of examples/README.md's walk-through block, as written."""
    with open(os.path.join(EXAMPLES, "README.md")) as file:
        text = file.read()
    block = text.split("<!-- walkthrough -->", 1)[1].split("```", 2)[1]
    commands = []
    for line in block.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            commands.append(shlex.split(line))
    return commands


@pytest.mark.slow
def test_the_readme_walkthrough_works_as_written(tmp_path):
    """train, Ctrl-C during epoch 2, resume, extend, evaluate, feature maps: each command of the README block,
    run in a fresh folder (the README's paths are relative to it)."""
    os.symlink(EXAMPLES, tmp_path / "examples")
    commands = walkthrough_commands()
    assert [c[1] for c in commands] == ["examples/train_resnet20_cifar10.py"] * 3 + \
        ["examples/evaluate.py", "examples/feature_maps.py"]
    run = tmp_path / "runs" / "walkthrough"
    train, resume, extend, evaluate, maps = [[sys.executable] + c[1:] for c in commands]

    # 1. train; press Ctrl-C during epoch 2
    # SIG_DFL in the child, so Python installs its Ctrl-C handler even when this test runs in a background job
    # (whose shell hands SIGINT down ignored)
    process = subprocess.Popen(train, cwd=tmp_path, env=script_env(), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 240
    while not (run / "history.json").exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stdout + stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr
    assert "the last checkpoint is runs/walkthrough/last.npz (after epoch 1)" in stderr
    assert "To continue: python examples/train_resnet20_cifar10.py" in stderr and "--resume" in stderr
    assert (run / "curves.png").stat().st_size > 1000

    # 2. resume: epochs 2 and 3; 3. extend to 4 epochs
    for command, epochs in ((resume, 3), (extend, 4)):
        result = subprocess.run(command, cwd=tmp_path, env=script_env(), capture_output=True, text=True, timeout=300)
        assert_ok(result)
        rows = assert_run_outputs(run, epochs=epochs)
    assert "on a longer or changed schedule" in result.stdout
    assert {"test_top1", "test_top5"} <= rows[-1].keys()

    # 4. evaluate the checkpoint, 5. its feature maps: the network comes from the checkpoint
    result = subprocess.run(evaluate, cwd=tmp_path, env=script_env(), capture_output=True, text=True, timeout=120)
    assert_ok(result)
    assert "resnet20(num_classes=10, shortcut='zero_pad')" in result.stdout
    assert f"top1 {100 * rows[-1]['test_top1']:.2f}%" in result.stdout  # the run's own test result
    result = subprocess.run(maps, cwd=tmp_path, env=script_env(), capture_output=True, text=True, timeout=120)
    assert_ok(result)
    for name in re.findall(r"-> (\S+\.png)", result.stdout):
        assert (tmp_path / name).stat().st_size > 1000


def test_the_e15_command_reads_a_file_its_training_script_writes():
    with open(os.path.join(EXAMPLES, "README.md")) as file:
        text = file.read()
    for match in re.finditer(r"python examples/(train_\S+)\.py[^\n]*\n\s*python examples/feature_maps\.py[^\n]*"
                             r"--checkpoint runs/(\S+?)/(\w+)\.npz", text):
        script, folder, name = match.groups()
        assert folder == script and name == "last", match.group(0)  # best.npz needs a validation split
