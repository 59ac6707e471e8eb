"""The training loop: exact resume, NaN guard, early stopping, schedulers, outputs on disk,
learning a generated pattern, and a few ResNet steps equal to PyTorch's."""
import json
import os

import numpy as np
import pytest

import minidl
import minidl.nn as nn
import minidl.nn.functional as F
from minidl import optim
from minidl.data import ArrayDataset, DataLoader, transforms as T
from minidl.train import Trainer, TrainingDiverged, load_checkpoint

from helpers import torch_or_skip


def pattern_data(n, seed, size=8):
    """Images whose class is where a bright 3x3 square sits (4 quadrants) on noise: learnable, not linear-trivial."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 90, size=(n, 1, size, size)).astype(np.uint8)
    labels = rng.integers(0, 4, size=n)
    half = size // 2
    for i, label in enumerate(labels):
        top = (label // 2) * half + rng.integers(0, half - 2)
        left = (label % 2) * half + rng.integers(0, half - 2)
        images[i, 0, top:top + 3, left:left + 3] = 255
    return ArrayDataset(images, labels)


def small_cnn(dropout=0.25):
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        nn.Flatten(), nn.Dropout(dropout), nn.Linear(16, 4))


def make_run(out_dir, seed=0, lr=0.05, scheduler="cosine", epochs=4, model_fn=small_cnn):
    """A model, optimizer, scheduler and loaders that depend only on ``seed``."""
    minidl.manual_seed(seed)
    model = model_fn()
    optimizer = optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=1e-4)
    schedulers = {
        "cosine": lambda: optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs),
        "onecycle": lambda: optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=epochs * 4),
        "plateau": lambda: optim.lr_scheduler.ReduceLROnPlateau(optimizer, patience=0, factor=0.5),
    }
    train = DataLoader(pattern_data(64, seed=1), batch_size=16, shuffle=True, seed=seed,
                       transform=T.RandomHorizontalFlip())
    val = DataLoader(pattern_data(32, seed=2), batch_size=16)
    trainer = Trainer(model, optimizer, scheduler=schedulers[scheduler](), out_dir=out_dir, progress=False)
    return trainer, train, val


def weights(trainer):
    return {k: v.copy() for k, v in trainer.model.state_dict().items()}


@pytest.mark.parametrize("scheduler", ["cosine", "onecycle", "plateau"])
def test_two_epochs_straight_equal_one_plus_resume_plus_one_bit_for_bit(tmp_path, scheduler):
    straight, train, val = make_run(tmp_path / "straight", scheduler=scheduler)
    straight.fit(train, epochs=2, val_loader=val)

    first, train, val = make_run(tmp_path / "split", scheduler=scheduler)
    first.fit(train, epochs=1, val_loader=val)
    minidl.manual_seed(12345)  # a resumed process starts with other random state
    resumed, train, val = make_run(tmp_path / "split", seed=0, scheduler=scheduler)
    minidl.manual_seed(999)
    resumed.fit(train, epochs=2, val_loader=val, resume=True)

    expected, actual = weights(straight), weights(resumed)
    assert expected.keys() == actual.keys()
    for name in expected:
        np.testing.assert_array_equal(actual[name], expected[name], err_msg=name)
    assert resumed.epoch == 2 and len(resumed.history.rows) == 2
    assert resumed.optimizer.param_groups[0]["lr"] == straight.optimizer.param_groups[0]["lr"]
    assert resumed.history.rows[1]["train_loss"] == straight.history.rows[1]["train_loss"]


def test_outputs_on_disk(tmp_path):
    trainer, train, val = make_run(tmp_path)
    trainer.fit(train, epochs=2, val_loader=val)
    for name in ("last.npz", "best.npz", "history.json", "history.csv", "curves.png"):
        assert (tmp_path / name).is_file(), name
    rows = json.loads((tmp_path / "history.json").read_text())
    assert [row["epoch"] for row in rows] == [1, 2]
    assert {"train_loss", "train_top1", "val_loss", "val_top1", "lr"} <= rows[0].keys()
    assert "val_top5" not in rows[0]  # 4 classes: a top-5 would be 100% by construction, so it is not reported
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert load_checkpoint(tmp_path / "last.npz")["epoch"] == 2


def test_nan_loss_stops_with_message_and_keeps_last_good_checkpoint(tmp_path):
    trainer, train, val = make_run(tmp_path)
    trainer.fit(train, epochs=1, val_loader=val)
    good = load_checkpoint(tmp_path / "last.npz")
    with minidl.no_grad():
        trainer.model[0].weight.array[...] = np.nan  # what a too-high learning rate ends in
    with pytest.raises(TrainingDiverged, match=r"loss became nan at epoch 2, batch 1.*last good checkpoint"):
        trainer.fit(train, epochs=3, val_loader=val)
    kept = load_checkpoint(tmp_path / "last.npz")
    assert kept["epoch"] == 1
    np.testing.assert_array_equal(kept["model"]["0.weight"], good["model"]["0.weight"])
    assert np.isfinite(kept["model"]["0.weight"]).all()


def test_early_stopping_stops_after_patience_epochs_without_improvement(tmp_path):
    linear = lambda: nn.Sequential(nn.Flatten(), nn.Linear(64, 4))  # no BatchNorm statistics that could move
    trainer, train, val = make_run(tmp_path, lr=0.0, model_fn=linear)  # nothing changes: validation never improves
    trainer.early_stopping_patience = 2
    trainer.fit(train, epochs=10, val_loader=val)
    assert len(trainer.history.rows) == 3  # the first epoch sets the best, two more without improvement


def test_per_batch_scheduler_steps_every_batch(tmp_path):
    trainer, train, val = make_run(None, scheduler="onecycle", epochs=4)
    assert trainer.scheduler_interval == "step"
    trainer.fit(train, epochs=1)
    assert trainer.scheduler.last_epoch == len(train)


def test_unknown_scheduler_interval_lists_valid_values():
    with pytest.raises(ValueError, match="'step' and 'epoch'"):
        Trainer(small_cnn(), optim.SGD(small_cnn().parameters(), lr=0.1), scheduler_interval="batch")


def test_learns_a_generated_pattern_far_above_chance():
    """Where the bright square sits decides the class: a small CNN learns it (chance is 25%)."""
    minidl.manual_seed(0)
    model = small_cnn(dropout=0.0)
    optimizer = optim.Adam(model.parameters(), lr=0.01)
    trainer = Trainer(model, optimizer, progress=False)
    trainer.fit(DataLoader(pattern_data(512, seed=3), batch_size=32, shuffle=True, seed=0), epochs=6)
    test = trainer.evaluate(DataLoader(pattern_data(256, seed=4), batch_size=64))
    assert test["test_top1"] > 0.9, test  # reaches about 0.99


FASHION = "/usr/share/datasets/fashion-mnist"


@pytest.mark.skipif(not os.path.isdir(FASHION), reason="Debian's dataset-fashion-mnist is not installed")
def test_real_fashion_mnist_subset_trains_far_above_chance(tmp_path):
    """About a minute on 2 cores: 6,000 real training images, 2 epochs -> about 80% test accuracy (chance 10%)."""
    from minidl.data import FashionMNIST, random_subset
    minidl.manual_seed(0)
    train_set = random_subset(FashionMNIST(str(tmp_path), train=True), 6000, seed=0)
    test_set = random_subset(FashionMNIST(str(tmp_path), train=False), 2000, seed=0)
    model = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 7 * 7, 10))
    trainer = Trainer(model, optim.Adam(model.parameters(), lr=2e-3), progress=False)
    trainer.fit(DataLoader(train_set, batch_size=64, shuffle=True, seed=0), epochs=2)
    test = trainer.evaluate(DataLoader(test_set, batch_size=500))
    assert test["test_top1"] > 0.75, test
    assert test["test_top5"] > 0.97, test


def test_a_few_resnet20_training_steps_equal_pytorch():
    """Three SGD steps (momentum, weight decay) of ResNet-20 from identical weights and batches, float64."""
    torch = torch_or_skip()
    from torch_resnets import TorchCifarResNet, to_torch_state
    minidl.manual_seed(0)
    model = minidl.models.resnet20(num_classes=10).double()
    reference = TorchCifarResNet(3, num_classes=10, shortcut="projection").double()
    reference.load_state_dict(to_torch_state(model.state_dict()))
    ours = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=True)
    theirs = torch.optim.SGD(reference.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=True)
    rng = np.random.default_rng(0)
    for step in range(3):
        images, labels = rng.standard_normal((6, 3, 32, 32)), rng.integers(0, 10, 6)
        loss = F.cross_entropy(model(minidl.tensor(images)), minidl.tensor(labels))
        ours.zero_grad()
        loss.backward()
        ours.step()
        torch_loss = torch.nn.functional.cross_entropy(reference(torch.tensor(images)), torch.tensor(labels))
        theirs.zero_grad()
        torch_loss.backward()
        theirs.step()
        assert loss.item() == pytest.approx(torch_loss.item(), rel=1e-10), f"step {step}"
    torch_state = reference.state_dict()
    for name, value in model.state_dict().items():
        np.testing.assert_allclose(value, torch_state[name].numpy(), rtol=1e-9, atol=1e-11, err_msg=name)
