"""Writes the tiny PyTorch checkpoints next to this script, the committed test data of
tests/test_serialization.py (which reads them without PyTorch and checks every value).

    python tests/data/torch_checkpoints/make_checkpoints.py      # needs torch; a few KB in all

Every value is a formula of ``expected()`` so the test can recompute it: tensors of each dtype
PyTorch writes (float32/64/16, bfloat16, bool, int8/16/32/64, uint8), a transposed (non-contiguous)
view sharing its storage with another entry, a Parameter, and nested containers with plain values.
"""
import collections
import os

import numpy as np


def expected():
    """The saved object, as NumPy arrays and plain values (bfloat16 values are exact in bfloat16)."""
    weight = (np.arange(24, dtype=np.float32).reshape(2, 3, 2, 2) - 12) / 8
    return {
        "state_dict": collections.OrderedDict([
            ("conv.weight", weight),
            ("conv.weight_t", weight.reshape(2, 12).T),             # a view of conv.weight's storage
            ("bn.running_mean", np.linspace(-1, 1, 3)),               # float64
            ("bn.num_batches_tracked", np.array(7, dtype=np.int64)),  # 0-d
            ("half", np.array([0.5, -2.0, 65504.0], dtype=np.float16)),
            ("bf16", np.array([1.5, -0.09375, 2.0 ** 100], dtype=np.float32)),  # saved as bfloat16 (exact there)
            ("mask", np.array([True, False, True])),
            ("int8", np.array([-128, 0, 127], dtype=np.int8)),
            ("int16", np.array([-32768, 32767], dtype=np.int16)),
            ("int32", np.array([[-(2 ** 31), 2 ** 31 - 1]], dtype=np.int32)),
            ("uint8", np.arange(250, 256, dtype=np.uint8)),
            ("param", np.array([0.25, 0.75], dtype=np.float32)),     # an nn.Parameter
        ]),
        "epoch": 5, "lr": 0.125, "name": "tiny", "history": [1, 2.5, None, True], "pair": (3, "x"),
    }


def to_torch(value, torch, key=""):
    if isinstance(value, dict):
        return type(value)((k, to_torch(v, torch, k)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return type(value)(to_torch(v, torch) for v in value)
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value.copy())
    return value


def main():
    import torch
    folder = os.path.dirname(os.path.abspath(__file__))
    obj = to_torch(expected(), torch)
    state = obj["state_dict"]
    state["conv.weight_t"] = state["conv.weight"].reshape(2, 12).t()  # shares conv.weight's storage
    state["bf16"] = state["bf16"].to(torch.bfloat16)
    state["param"] = torch.nn.Parameter(state["param"])
    torch.save(obj, os.path.join(folder, "tiny.pth"))
    legacy = collections.OrderedDict((k, state[k]) for k in ("conv.weight", "conv.weight_t", "bf16", "mask"))
    torch.save(legacy, os.path.join(folder, "tiny_legacy.pt"), _use_new_zipfile_serialization=False)


if __name__ == "__main__":
    main()
