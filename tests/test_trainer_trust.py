"""A run one can trust (issue 11): divergence caught from the loss, the gradients and the weights, checkpoints
that are always finite, honest top-k, NaN data named, all-or-nothing resume, extended schedules, atomic files,
stale temporaries removed, bounded checkpoint reads, a safe data cache, and a clean Ctrl-C."""
import json
import os
import signal
import zipfile

import numpy as np
import pytest

import minidl
import minidl.nn as nn
from minidl import optim
from minidl.data import ArrayDataset, DataLoader
from minidl.data.dataset import CacheError, _save_cache, cached_arrays, check_image_arrays
from minidl.train import Trainer, TrainingDiverged, load_checkpoint, save_checkpoint, topk_correct
from minidl.train.checkpoint import CheckpointError, remove_stale_temporaries
from minidl.train.history import History
from minidl.train.trainer import TrainingInterrupted


def noise_data(n, seed, classes=4):
    rng = np.random.default_rng(seed)
    return ArrayDataset(rng.integers(0, 255, (n, 1, 8, 8)).astype(np.uint8), rng.integers(0, classes, n))


def tiny_model(batchnorm=True, classes=4):
    layers = [nn.Conv2d(1, 8, 3, padding=1)] + ([nn.BatchNorm2d(8)] if batchnorm else [])
    return nn.Sequential(*layers, nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, classes))


def tiny_run(out_dir, lr=0.05, optimizer="sgd", epochs=2, batchnorm=True, seed=0):
    minidl.manual_seed(seed)
    model = tiny_model(batchnorm)
    opt = (optim.SGD(model.parameters(), lr=lr, momentum=0.9) if optimizer == "sgd"
           else optim.Adam(model.parameters(), lr=lr))
    scheduler = optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    trainer = Trainer(model, opt, scheduler=scheduler, out_dir=out_dir, progress=False)
    train = DataLoader(noise_data(64, 1), batch_size=16, shuffle=True, seed=seed)
    val = DataLoader(noise_data(32, 2), batch_size=16)
    return trainer, train, val


def weights(model):
    return {k: np.array(v, copy=True) for k, v in model.state_dict().items()}


def all_finite(checkpoint):
    arrays = list(checkpoint["model"].values())
    arrays += [v for state in checkpoint["optimizer"]["state"].values() for v in state.values()]
    return all(np.isfinite(np.asarray(v)).all() for v in arrays if np.asarray(v).dtype.kind == "f")


# ------------------------------------------------------------------ top-k
def test_nan_logits_are_never_correct():
    nan = minidl.tensor(np.full((4, 10), np.nan, dtype=np.float32))
    assert topk_correct(nan, minidl.tensor(np.array([0, 1, 2, 3])), (1, 5)) == {1: 0, 5: 0}
    logits = np.zeros((2, 10), dtype=np.float32)
    logits[:, 3] = 5.0
    logits[1, 7] = np.nan  # a NaN ranks above the target, as torch.topk sorts it
    assert topk_correct(minidl.tensor(logits), minidl.tensor(np.array([3, 3])), (1, 2)) == {1: 1, 2: 2}


def test_topk_above_the_number_of_classes_is_refused():
    with pytest.raises(ValueError, match=r"k=\[5\] is outside \[1, 3\]"):
        topk_correct(minidl.tensor(np.zeros((2, 3), dtype=np.float32)), minidl.tensor(np.array([0, 1])), (5,))
    minidl.manual_seed(0)
    model = tiny_model(classes=3)
    trainer = Trainer(model, optim.SGD(model.parameters(), lr=0.01), topk=(1, 5), progress=False)
    with pytest.raises(ValueError, match="more than the model's 3 classes"):
        trainer.evaluate(DataLoader(noise_data(8, 0, classes=3), batch_size=8))


# ------------------------------------------------------------------ divergence
def test_huge_learning_rate_stops_before_a_non_finite_checkpoint(tmp_path):
    """lr 1000 with BatchNorm: the loss stays finite (1e24) while the weights overflow; before the fix the run
    finished and last.npz held Inf."""
    trainer, train, val = tiny_run(tmp_path, lr=1000.0, epochs=3)
    with pytest.raises(TrainingDiverged, match="NaN/Inf|norm became|loss became") as info:
        trainer.fit(train, epochs=3, val_loader=val)
    assert "last good checkpoint" in str(info.value)
    for name in ("last.npz", "best.npz"):
        if (tmp_path / name).exists():
            assert all_finite(load_checkpoint(tmp_path / name)), name


def test_infinite_learning_rate_is_refused_before_training(tmp_path):
    trainer, train, val = tiny_run(tmp_path, lr=float("inf"))
    with pytest.raises(ValueError, match="learning rate inf"):
        trainer.fit(train, epochs=1)
    assert not (tmp_path / "last.npz").exists()


def test_divergence_message_names_the_checkpoint_that_is_really_finite(tmp_path):
    trainer, train, val = tiny_run(tmp_path)
    trainer.fit(train, epochs=1, val_loader=val)
    with minidl.no_grad():
        trainer.model[0].weight.array[0, 0, 0, 0] = np.inf
    with pytest.raises(TrainingDiverged, match=r"after epoch 1\) is kept"):
        trainer.fit(train, epochs=2, val_loader=val)
    kept = load_checkpoint(tmp_path / "last.npz")
    assert kept["epoch"] == 1 and all_finite(kept)


def test_nan_in_validation_data_is_named_and_the_lr_is_not_cut(tmp_path):
    trainer, train, _ = tiny_run(tmp_path)
    bad = noise_data(32, 2)
    images = bad.images.astype(np.float32) / 255
    images[20, 0, 3, 3] = np.nan
    val = DataLoader(ArrayDataset(images, bad.targets), batch_size=16)
    lr = trainer.optimizer.param_groups[0]["lr"]
    with pytest.raises(ValueError, match="val batch 2: 1 input values are NaN/Inf"):
        trainer.fit(train, epochs=2, val_loader=val)
    assert trainer.optimizer.param_groups[0]["lr"] <= lr and trainer.history.rows == []


# ------------------------------------------------------------------ resume: all or nothing
def damaged(tmp_path, change):
    trainer, train, val = tiny_run(tmp_path / "run")
    trainer.fit(train, epochs=1, val_loader=val)
    state = load_checkpoint(tmp_path / "run" / "last.npz")
    change(state)
    save_checkpoint(state, tmp_path / "run" / "last.npz")
    return tmp_path / "run"


@pytest.mark.parametrize("change, message", [
    (lambda s: s.pop("epoch"), "missing epoch"),
    (lambda s: s.update(epoch="abc"), "epoch is 'abc'"),
    (lambda s: s["optimizer"]["state"][0].update(momentum_buffer=np.zeros((3, 3))), "has shape \\(3, 3\\)"),
    (lambda s: s["model"].update({"0.weight": np.zeros((2, 2), dtype=np.float32)}), "0.weight has shape"),
    (lambda s: s["model"].pop("1.running_mean"), "1 entries missing"),
    (lambda s: s.update(rng={"bit_generator": "nonsense"}), "rng is not"),
    (lambda s: s["model"]["0.bias"].__setitem__(0, np.nan), "NaN/Inf"),
])
def test_a_damaged_checkpoint_loads_nothing(tmp_path, change, message):
    run = damaged(tmp_path, change)
    trainer, train, val = tiny_run(run, seed=5)  # a fresh process would start with other weights
    before, rng = weights(trainer.model), minidl.random.get_rng_state()
    with pytest.raises(CheckpointError, match=message):
        trainer.fit(train, epochs=2, val_loader=val, resume=True)
    after = weights(trainer.model)
    assert all(np.array_equal(before[k], after[k]) for k in before) and trainer.epoch == 0
    assert trainer.optimizer.state_dict()["state"] == {} and minidl.random.get_rng_state() == rng


def test_an_sgd_checkpoint_does_not_load_into_adam(tmp_path):
    trainer, train, val = tiny_run(tmp_path)
    trainer.fit(train, epochs=1, val_loader=val)
    adam, train, val = tiny_run(tmp_path, optimizer="adam", lr=1e-3)
    with pytest.raises(CheckpointError, match="optimizer is SGD, this run's is Adam"):
        adam.fit(train, epochs=2, val_loader=val, resume=True)
    assert adam.epoch == 0


def test_resume_without_a_checkpoint_and_rerun_into_a_used_folder(tmp_path):
    trainer, train, val = tiny_run(tmp_path)
    with pytest.raises(FileNotFoundError, match="no checkpoint to resume from"):
        trainer.fit(train, epochs=1, resume=True)
    trainer.fit(train, epochs=1)
    again, train, val = tiny_run(tmp_path)
    with pytest.raises(FileExistsError, match="already holds a run"):
        again.fit(train, epochs=1)
    again.fit(train, epochs=1, overwrite=True)


def test_extending_a_run_continues_on_the_longer_schedule(tmp_path, capsys):
    """--epochs 1 then --epochs 2 --resume: epoch 2 used to run at lr 0 (the checkpoint's T_max=1)."""
    straight, train, val = tiny_run(tmp_path / "straight", epochs=2)
    straight.fit(train, epochs=2, val_loader=val)
    short, train, val = tiny_run(tmp_path / "split", epochs=1)
    short.fit(train, epochs=1, val_loader=val)
    extended, train, val = tiny_run(tmp_path / "split", epochs=2, seed=0)
    extended.fit(train, epochs=2, val_loader=val, resume=True)
    assert "T_max 1 -> 2" in capsys.readouterr().out
    assert extended.history.rows[1]["lr"] == straight.history.rows[1]["lr"] == pytest.approx(0.025)
    expected, actual = weights(straight.model), weights(extended.model)
    for name in expected:
        np.testing.assert_array_equal(actual[name], expected[name], err_msg=name)


# ------------------------------------------------------------------ files: atomic, no stale temporaries, bounded
def test_history_and_curves_survive_a_failed_rewrite(tmp_path, monkeypatch):
    history = History([{"epoch": 1, "train_loss": 1.0}])
    history.save(tmp_path)
    history.plot(tmp_path / "curves.png")
    old = {name: (tmp_path / name).read_bytes() for name in ("history.json", "history.csv", "curves.png")}
    history.append({"epoch": 2, "train_loss": 0.5})

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr("csv.DictWriter.writerows", full_disk)
    with pytest.raises(OSError):
        history.save(tmp_path)

    def dies_midway(self, file, **kwargs):
        file.write(b"\x89PNG half")
        raise KeyboardInterrupt
    monkeypatch.setattr("matplotlib.figure.Figure.savefig", dies_midway)
    with pytest.raises(KeyboardInterrupt):
        history.plot(tmp_path / "curves.png")
    assert (tmp_path / "history.csv").read_bytes() == old["history.csv"]
    assert (tmp_path / "curves.png").read_bytes() == old["curves.png"]
    assert json.loads((tmp_path / "history.json").read_text())[-1]["epoch"] == 2  # written before the CSV failed
    assert sorted(os.listdir(tmp_path)) == ["curves.png", "history.csv", "history.json"]


def test_stale_temporaries_of_dead_runs_are_removed_at_start(tmp_path):
    dead, mine = tmp_path / ".minidl-tmp-999999999-abc.npz", tmp_path / f".minidl-tmp-{os.getpid()}-x.npz"
    user = tmp_path / "notes.tmp"
    for path in (dead, mine, user):
        path.write_bytes(b"x" * 100)
    assert remove_stale_temporaries(tmp_path) == [str(dead)]
    assert mine.exists() and user.exists() and not dead.exists()


def test_a_checkpoint_that_expands_beyond_its_model_is_not_read(tmp_path):
    trainer, train, val = tiny_run(tmp_path)
    trainer.fit(train, epochs=1)
    bomb = tmp_path / "last.npz"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        header = np.lib.format.header_data_from_array_1_0(np.zeros(1, dtype=np.float32))
        header["shape"] = (64 << 20,)  # 256 MB of zeros compress to a few hundred kB
        with archive.open("a0.npy", "w", force_zip64=True) as member:
            np.lib.format.write_array_header_1_0(member, header)
            chunk = bytes(1 << 20)
            for _ in range(256):
                member.write(chunk)
    assert bomb.stat().st_size < 2 << 20
    resumed, train, val = tiny_run(tmp_path)
    with pytest.raises(CheckpointError, match="expand to more than"):
        resumed.fit(train, epochs=2, resume=True)


# ------------------------------------------------------------------ the data cache
def test_a_tampered_cache_is_ignored_and_decoded_again(tmp_path):
    path = str(tmp_path / "cache.npz")
    good = {"images": np.zeros((4, 1, 28, 28), np.uint8), "labels": np.arange(4, dtype=np.int64)}
    check = lambda arrays: check_image_arrays(arrays, (1, 28, 28), 10)
    cached_arrays(path, lambda: good, check)
    with np.load(path) as cache:
        tampered = {name: cache[name] for name in cache.files}
    tampered["labels"] = np.full(4, 255, dtype=np.int64)
    np.savez(path, **tampered)  # labels 255 under the old digest
    with pytest.warns(UserWarning, match="do not match their SHA-256"):
        arrays = cached_arrays(path, lambda: good, check)
    np.testing.assert_array_equal(arrays["labels"], good["labels"])
    with pytest.raises(CacheError, match=r"labels must lie in \[0, 10\)"):
        check({**good, "labels": np.full(4, 255, dtype=np.int64)})


def test_the_cache_temporary_never_follows_a_planted_symlink(tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("precious")
    data = tmp_path / "data"
    data.mkdir()
    path = data / "cifar-10-train.npz"
    os.symlink(outside, f"{path}.tmp-{os.getpid()}.npz")  # the old, predictable temporary name
    _save_cache(str(path), images=np.zeros((1, 3, 32, 32), np.uint8), labels=np.zeros(1, np.int64))
    assert outside.read_text() == "precious"
    assert path.is_file() and not path.is_symlink()


# ------------------------------------------------------------------ Ctrl-C
@pytest.fixture
def ctrl_c_raises():
    """Python's own SIGINT handler, as in a terminal: a process started in the background by a shell without
    job control inherits SIGINT ignored, and no Ctrl-C would reach the trainer."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_ctrl_c_while_writing_the_curves_finishes_them_then_stops(tmp_path, monkeypatch, ctrl_c_raises):
    trainer, train, val = tiny_run(tmp_path)
    real_plot = History.plot

    def interrupted_plot(self, path, title=None):
        os.kill(os.getpid(), signal.SIGINT)  # arrives in the middle of writing the outputs
        real_plot(self, path, title)
    monkeypatch.setattr(History, "plot", interrupted_plot)
    with pytest.raises(TrainingInterrupted) as info:
        trainer.fit(train, epochs=3, val_loader=val)
    assert f"the last checkpoint is {tmp_path / 'last.npz'} (after epoch 1)" in str(info.value)
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert load_checkpoint(tmp_path / "last.npz")["epoch"] == 1
    assert [row["epoch"] for row in json.loads((tmp_path / "history.json").read_text())] == [1]
