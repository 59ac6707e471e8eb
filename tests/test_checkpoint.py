"""Checkpoints: exact round trips of nested state, atomic writes, no pickle."""
import os

import numpy as np
import pytest

from minidl.train import checkpoint
from minidl.train.checkpoint import load_checkpoint, save_checkpoint


def sample_tree(rng):
    return {
        "model": {"conv1.weight": rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
                  "bn1.num_batches_tracked": np.array(7, dtype=np.int64)},
        "optimizer": {"state": {0: {"momentum_buffer": rng.standard_normal(5)}, 1: {"step": 3}},
                      "param_groups": [{"lr": 0.1, "params": [0, 1], "nesterov": False, "betas": [0.9, 0.999]}]},
        "scheduler": None,
        "epoch": 3,
        "rng": {"bit_generator": "PCG64", "state": {"state": 2**127 + 12345, "inc": 99}},
        "history": [{"epoch": 1, "val_loss": float("inf")}],
    }


def test_round_trip_keeps_values_types_and_integer_keys(tmp_path, rng):
    tree = sample_tree(rng)
    save_checkpoint(tree, tmp_path / "c.npz")
    loaded = load_checkpoint(tmp_path / "c.npz")
    assert set(loaded["optimizer"]["state"]) == {0, 1}  # integer keys survive
    np.testing.assert_array_equal(loaded["model"]["conv1.weight"], tree["model"]["conv1.weight"])
    assert loaded["model"]["conv1.weight"].dtype == np.float32
    assert loaded["model"]["bn1.num_batches_tracked"].dtype == np.int64
    np.testing.assert_array_equal(loaded["optimizer"]["state"][0]["momentum_buffer"],
                                  tree["optimizer"]["state"][0]["momentum_buffer"])
    assert loaded["rng"]["state"]["state"] == 2**127 + 12345
    assert loaded["scheduler"] is None and loaded["epoch"] == 3
    assert loaded["history"][0]["val_loss"] == float("inf")


def test_file_holds_no_pickled_objects(tmp_path, rng):
    save_checkpoint(sample_tree(rng), tmp_path / "c.npz")
    with np.load(tmp_path / "c.npz", allow_pickle=False) as archive:
        for name in archive.files:
            assert archive[name].dtype != object


def test_interrupted_write_leaves_previous_checkpoint_loadable(tmp_path, rng, monkeypatch):
    path = tmp_path / "last.npz"
    first = sample_tree(rng)
    save_checkpoint(first, path)

    def savez_that_dies(file, **arrays):
        file.write(b"PK\x03\x04 half a zip file")
        raise KeyboardInterrupt("killed while writing")

    monkeypatch.setattr(checkpoint.np, "savez", savez_that_dies)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(sample_tree(np.random.default_rng(9)), path)
    monkeypatch.undo()
    loaded = load_checkpoint(path)
    np.testing.assert_array_equal(loaded["model"]["conv1.weight"], first["model"]["conv1.weight"])
    assert [f for f in os.listdir(tmp_path) if f != "last.npz"] == []  # no temporary left behind


def test_unsupported_value_is_refused_with_its_type(tmp_path):
    with pytest.raises(TypeError, match="set"):
        save_checkpoint({"bad": {1, 2}}, tmp_path / "c.npz")
