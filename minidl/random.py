"""The global random state: parameter initialisation, dropout masks, shuffling and
augmentation all draw from one NumPy ``Generator``, so ``manual_seed(n)`` makes a run
repeatable, and ``get_rng_state``/``set_rng_state`` let a checkpoint resume it exactly.

On a GPU, dropout draws from a counter-based stream instead (Philox4x32-10, kernels/dropout.cu):
a key fixed by ``manual_seed`` and, per device, the next unused counter.  A kernel that needs
``count`` numbers takes ``philox_counter(device, count)`` -- two integers passed as kernel
arguments, so no generator is built and nothing is copied per call -- and the counter is part
of ``get_rng_state``, so a resumed run continues the GPU stream too.
"""
import copy

import numpy as np

_generator = np.random.default_rng(0)
_philox = {"seed": 0, "offsets": {}}  # the GPU kernels' Philox key, and the next counter per device id
_device_generators = {}  # device id -> CuPy generator of the generic (reference) GPU code, built once


def manual_seed(seed):
    """Re-seeds minidl's generator and the GPU's Philox stream (and, as PyTorch does, returns the generator)."""
    global _generator
    _generator = np.random.default_rng(int(seed))
    _philox["seed"], _philox["offsets"] = int(seed) % 2**64, {}
    _device_generators.clear()
    return _generator


def seed(seed_value):
    return manual_seed(seed_value)


def generator():
    """The generator every random op in minidl draws from."""
    return _generator


def philox_counter(device_id, count):
    """(key, first counter) for a kernel drawing ``count`` numbers on GPU ``device_id``, and reserves them:
    the device's counter moves on by ``count`` rounded up to 4 (one Philox call makes four numbers)."""
    offset = _philox["offsets"].get(device_id, 0)
    _philox["offsets"][device_id] = offset + -(-int(count) // 4) * 4
    return _philox["seed"], offset


def get_rng_state():
    """A JSON-serialisable snapshot: the generator's state, plus the GPU Philox stream under "cuda_philox"."""
    state = copy.deepcopy(_generator.bit_generator.state)
    state["cuda_philox"] = {"seed": _philox["seed"],
                            "offsets": {str(device): offset for device, offset in _philox["offsets"].items()}}
    return state


def set_rng_state(state):
    state = copy.deepcopy(state)
    philox = state.pop("cuda_philox", None)
    _generator.bit_generator.state = state
    if philox is not None:
        _philox["seed"] = int(philox["seed"])
        _philox["offsets"] = {int(device): int(offset) for device, offset in philox["offsets"].items()}


def uniform(shape, xp=np, dtype=np.float32):
    """Uniform [0, 1) samples of ``shape`` as an ``xp`` array, drawn from minidl's generator.

    On a GPU a CuPy generator draws on the device: one per device, seeded from minidl's generator
    when first used after ``manual_seed`` (building one per call would allocate and initialise a
    cuRAND state per thread every time).  Only the generic GPU code uses it (the dropout kernels
    draw from the Philox stream above); its state is not part of ``get_rng_state``, so a run
    resumed under ``minidl.backends.reference()`` on a GPU draws other masks than the uninterrupted one.
    """
    if xp is np:
        return _generator.random(shape, dtype=np.dtype(dtype))
    device = xp.cuda.Device().id
    device_generator = _device_generators.get(device)
    if device_generator is None:
        device_generator = _device_generators[device] = xp.random.default_rng(int(_generator.integers(2**63)))
    return device_generator.random(shape, dtype=dtype)
