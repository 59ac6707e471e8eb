"""minidl.save / minidl.load: safetensors round trips, PyTorch's own checkpoints read without PyTorch's
unpickler (files the tests write with torch, and tiny committed ones), and hostile files refused with
nothing executed."""
import collections
import io
import os
import pickle
import zipfile

import numpy as np
import pytest

import minidl
from minidl.torch_checkpoint import CheckpointFormatError, UnsafeCheckpointError
from tests.data.torch_checkpoints.make_checkpoints import expected
from tests.helpers import assert_close, torch_or_skip

DATA = os.path.join(os.path.dirname(__file__), "data", "torch_checkpoints")


def as_numpy(value):
    return value.detach().numpy() if isinstance(value, minidl.Tensor) else value


def assert_same_tree(loaded, wanted):
    """``loaded`` (minidl Tensors) holds exactly ``wanted`` (NumPy arrays), dtype for dtype."""
    if isinstance(wanted, np.ndarray):
        assert isinstance(loaded, minidl.Tensor), type(loaded)
        assert loaded.dtype == wanted.dtype and loaded.shape == wanted.shape
        np.testing.assert_array_equal(loaded.detach().numpy(), wanted)
    elif isinstance(wanted, dict):
        assert list(loaded) == list(wanted)
        for key in wanted:
            assert_same_tree(loaded[key], wanted[key])
    elif isinstance(wanted, (list, tuple)):
        assert type(loaded) is type(wanted) and len(loaded) == len(wanted)
        for a, b in zip(loaded, wanted):
            assert_same_tree(a, b)
    else:
        assert loaded == wanted and type(loaded) is type(wanted)


# ---------------------------------------------------------------- committed files (no torch needed)
def test_reads_the_committed_pytorch_checkpoint():
    loaded = minidl.load(os.path.join(DATA, "tiny.pth"))
    assert_same_tree(loaded, expected())
    assert isinstance(loaded["state_dict"]["param"], minidl.nn.Parameter)
    state = loaded["state_dict"]
    state["conv.weight"].array[0, 0, 0, 0] = 42.0  # conv.weight_t views the same storage, as in PyTorch
    assert state["conv.weight_t"].array[0, 0] == 42.0


def test_reads_the_committed_legacy_checkpoint():
    wanted = expected()["state_dict"]
    loaded = minidl.load(os.path.join(DATA, "tiny_legacy.pt"))
    assert_same_tree(loaded, collections.OrderedDict((k, wanted[k]) for k in ("conv.weight", "conv.weight_t", "bf16",
                                                                              "mask")))


# ---------------------------------------------------------------- files written by torch
TORCH_DTYPES = ["float32", "float64", "float16", "bfloat16", "bool", "int8", "int16", "int32", "int64", "uint8",
                "uint16", "complex64"]


@pytest.mark.parametrize("zip_format", [True, False])
def test_torch_save_of_every_dtype_views_and_nesting(tmp_path, zip_format):
    torch = torch_or_skip()
    generator = torch.Generator().manual_seed(0)
    tensors = {}
    for name in TORCH_DTYPES:
        values = torch.randn(3, 4, generator=generator, dtype=torch.float64) * 50
        tensors[name] = values.to(getattr(torch, name))
    base = torch.arange(60.0).reshape(3, 4, 5)
    obj = {"tensors": tensors, "views": [base, base.permute(2, 0, 1), base[1:, ::2, 3], base.expand(2, 3, 4, 5)[1]],
           "scalar": torch.tensor(3.5), "empty": torch.zeros(0, 3), "nested": {"a": ({"b": torch.ones(2)},), "n": 1}}
    path = tmp_path / "ckpt.pt"
    torch.save(obj, path, _use_new_zipfile_serialization=zip_format)
    loaded = minidl.load(path)
    for name, tensor in tensors.items():
        theirs = tensor.float() if name == "bfloat16" else tensor  # minidl widens bfloat16 to float32, exactly
        ours = loaded["tensors"][name]
        assert ours.dtype == np.dtype(str(theirs.dtype).replace("torch.", "")), name
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    for ours, theirs in zip(loaded["views"], obj["views"]):
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    loaded["views"][0].array[2, 2, 3] = -1.0  # every view shares the first one's storage
    assert loaded["views"][1].array[3, 2, 2] == -1.0 and loaded["views"][2].array[1, 1] == -1.0
    assert loaded["scalar"].shape == () and loaded["scalar"].item() == 3.5
    assert loaded["empty"].shape == (0, 3)
    assert loaded["nested"]["n"] == 1 and loaded["nested"]["a"][0]["b"].tolist() == [1.0, 1.0]


def test_torchvision_resnet18_checkpoint_loads_into_the_imagenet_resnet18(tmp_path):
    """E8/E13: torchvision's ResNet-18 (written out in tests/torch_resnets.py with torchvision's names),
    saved by torch.save, loads with strict keys into minidl's stem='imagenet' network and computes the same."""
    torch = torch_or_skip()
    from tests.torch_resnets import TorchBasicBlock, TorchResNet
    torch.manual_seed(0)
    reference = TorchResNet(TorchBasicBlock, [2, 2, 2, 2], num_classes=1000)
    with torch.no_grad():  # non-trivial running statistics, as in trained weights
        for module in reference.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1), module.running_var.uniform_(0.5, 1.5)
                module.num_batches_tracked.fill_(1000)
    path = tmp_path / "resnet18-f37072fd.pth"
    torch.save(reference.state_dict(), path)
    model = minidl.models.resnet18(num_classes=1000, stem="imagenet")
    result = model.load_state_dict(minidl.load(path))
    assert result.missing_keys == [] and result.unexpected_keys == []
    x = np.random.default_rng(0).standard_normal((2, 3, 64, 64)).astype(np.float32)
    with torch.no_grad():
        expected_logits = reference.eval()(torch.from_numpy(x)).numpy()
    with minidl.no_grad():
        logits = model.eval()(minidl.tensor(x))
    assert_close(logits, expected_logits, rtol=1e-4, atol=1e-4, what="resnet18 logits from a .pth")
    assert int(model.bn1.num_batches_tracked.item()) == 1000


# ---------------------------------------------------------------- minidl.save
def test_save_and_load_a_state_dict_a_tensor_and_a_training_tree(tmp_path):
    model = minidl.nn.Sequential(minidl.nn.Conv2d(3, 4, 3), minidl.nn.BatchNorm2d(4))
    minidl.save(model.state_dict(), tmp_path / "model.safetensors")
    loaded = minidl.load(tmp_path / "model.safetensors")
    assert list(loaded) == list(model.state_dict())
    twin = minidl.nn.Sequential(minidl.nn.Conv2d(3, 4, 3), minidl.nn.BatchNorm2d(4))
    twin.load_state_dict(loaded)
    for (key, ours), theirs in zip(twin.state_dict().items(), model.state_dict().values()):
        np.testing.assert_array_equal(ours, theirs, err_msg=key)
    minidl.save(minidl.arange(6).reshape(2, 3), tmp_path / "tensor.pt")
    assert minidl.load(tmp_path / "tensor.pt").tolist() == [[0, 1, 2], [3, 4, 5]]
    optimizer = minidl.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    tree = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": 3, "best": (0.5, "top1")}
    buffer = io.BytesIO()
    minidl.save(tree, buffer)
    buffer.seek(0)
    back = minidl.load(buffer)
    assert back["epoch"] == 3 and back["best"] == (0.5, "top1")
    assert back["optimizer"]["param_groups"][0]["lr"] == 0.1
    assert_same_tree(back["model"], dict(model.state_dict()))
    with pytest.raises(TypeError, match="save a module's state_dict"):
        minidl.save(model, tmp_path / "model.bin")


def test_saved_state_dict_is_a_plain_safetensors_file_pytorch_reads(tmp_path):
    torch = torch_or_skip()
    from safetensors.torch import load_file
    model = minidl.models.resnet20() if hasattr(minidl.models, "resnet20") else minidl.nn.Linear(3, 2)
    minidl.save(model.state_dict(), tmp_path / "m.safetensors")
    theirs = load_file(tmp_path / "m.safetensors")
    assert set(theirs) == set(model.state_dict())
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(theirs[key].numpy(), value)
    from safetensors.torch import save_file  # and a file another tool wrote, bfloat16 included
    save_file({"w": torch.tensor([1.5, -2.0], dtype=torch.bfloat16), "n": torch.arange(3)}, tmp_path / "o.safetensors")
    other = minidl.load(tmp_path / "o.safetensors")
    assert other["w"].dtype == minidl.float32 and other["w"].tolist() == [1.5, -2.0] and other["n"].tolist() == [0, 1, 2]


def test_shape_and_dtype_mismatches_are_refused_clearly(tmp_path):
    minidl.save({"weight": minidl.zeros(3, 4)}, tmp_path / "w.safetensors")
    with pytest.raises(RuntimeError, match=r"size mismatch for weight: copying a param with shape \(3, 4\)"):
        minidl.nn.Linear(4, 2).load_state_dict(minidl.load(tmp_path / "w.safetensors"), strict=False)
    with pytest.raises(TypeError, match="cannot store"):
        minidl.save({"names": np.array(["a", "b"])}, tmp_path / "s.safetensors")
    with pytest.raises(ValueError, match="two tensors would be stored under the name 'a.b'"):
        minidl.save({"a.b": minidl.zeros(1), "a": {"b": minidl.zeros(1)}}, tmp_path / "c.safetensors")


# ---------------------------------------------------------------- hostile files
class RunsCode:
    """Unpickling this would call os.system: the classic malicious pickle."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def torch_like_zip(path, pickle_bytes, members=()):
    """A zip laid out as torch.save's, with ``pickle_bytes`` as its data.pkl."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", pickle_bytes)
        archive.writestr("archive/byteorder", "little")
        for name, data in members:
            archive.writestr(name, data)
    return path


def storage_pickle(size, stride, offset, numel, dtype="FloatStorage"):
    """data.pkl of one tensor, written opcode by opcode as torch does."""
    def tuple_of(values):
        return b"(" + b"".join(b"K" + bytes([v]) if v < 256 else b"J" + v.to_bytes(4, "little") for v in values) + b"t"
    return (b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\n(("
            + b"X\x07\x00\x00\x00storage" + f"ctorch\n{dtype}\n".encode() + b"X\x01\x00\x00\x000X\x03\x00\x00\x00cpu"
            + (b"J" + numel.to_bytes(4, "little")) + b"tQ" + b"J" + offset.to_bytes(4, "little")
            + tuple_of(size) + tuple_of(stride) + b"\x89ccollections\nOrderedDict\n)RtR.")


def test_a_pickle_that_runs_code_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"weight": RunsCode(f"touch {marker}")}, protocol=2)
    for path in (torch_like_zip(tmp_path / "evil.pth", payload), tmp_path / "evil_legacy.pt"):
        if path.suffix == ".pt":  # the legacy layout: the magic number's pickle, then the payload
            path.write_bytes(pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2) + pickle.dumps(1001, protocol=2)
                             + pickle.dumps({}, protocol=2) + payload)
        with pytest.raises(UnsafeCheckpointError, match=r"refusing to load the global posix\.system.*Nothing in the "
                                                         r"file was executed"):
            minidl.load(path, weights_only=False)  # weights_only=False changes nothing: pickles never run
        assert not marker.exists()


@pytest.mark.parametrize("module, name", [("builtins", "eval"), ("numpy.core.multiarray", "_reconstruct"),
                                          ("torch.nn.modules.linear", "Linear"), ("subprocess", "Popen")])
def test_any_other_global_is_refused(tmp_path, module, name):
    payload = b"\x80\x02c" + f"{module}\n{name}\n".encode() + b")R."
    with pytest.raises(UnsafeCheckpointError, match=f"refusing to load the global {module}.{name}"):
        minidl.load(torch_like_zip(tmp_path / "g.pth", payload))


def test_zip_path_traversal_is_refused(tmp_path):
    path = torch_like_zip(tmp_path / "t.pth", pickle.dumps({}, protocol=2), [("../../escape", b"x")])
    with pytest.raises(CheckpointFormatError, match="unsafe path '../../escape'"):
        minidl.load(path)
    assert not (tmp_path.parent / "escape").exists()


def test_inconsistent_storages_and_views_are_refused(tmp_path):
    floats = np.arange(6, dtype=np.float32).tobytes()
    good = torch_like_zip(tmp_path / "ok.pth", storage_pickle((2, 3), (3, 1), 0, 6), [("archive/data/0", floats)])
    assert minidl.load(good).tolist() == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
    cases = {
        "past its storage": storage_pickle((2, 3), (3, 1), 1, 6),             # one element beyond the end
        "holds 24 bytes, but the pickle declares 28": storage_pickle((7,), (1,), 0, 7),
        "beyond the": storage_pickle((60000, 60000), (0, 0), 0, 6),           # a 14 GB view of 6 floats
    }
    for message, payload in cases.items():
        path = torch_like_zip(tmp_path / "bad.pth", payload, [("archive/data/0", floats)])
        with pytest.raises(CheckpointFormatError, match="reaches element" if message == "past its storage" else message):
            minidl.load(path)
    missing = torch_like_zip(tmp_path / "missing.pth", storage_pickle((2,), (1,), 0, 2))
    with pytest.raises(CheckpointFormatError, match="has no member archive/data/0"):
        minidl.load(missing)
    (tmp_path / "junk.bin").write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointFormatError, match="not a checkpoint minidl reads"):
        minidl.load(tmp_path / "junk.bin")
