"""The global random state: parameter initialisation, dropout masks, shuffling and
augmentation all draw from one NumPy ``Generator``, so ``manual_seed(n)`` makes a run
repeatable, and ``get_rng_state``/``set_rng_state`` let a checkpoint resume it exactly."""
import copy

import numpy as np

_generator = np.random.default_rng(0)


def manual_seed(seed):
    """Re-seeds minidl's generator (and, as PyTorch does, returns it)."""
    global _generator
    _generator = np.random.default_rng(int(seed))
    return _generator


def seed(seed_value):
    return manual_seed(seed_value)


def generator():
    """The generator every random op in minidl draws from."""
    return _generator


def get_rng_state():
    """A JSON-serialisable snapshot of the generator's state."""
    return copy.deepcopy(_generator.bit_generator.state)


def set_rng_state(state):
    _generator.bit_generator.state = copy.deepcopy(state)


def uniform(shape, xp=np, dtype=np.float32):
    """Uniform [0, 1) samples of ``shape`` as an ``xp`` array, drawn from minidl's generator.

    On a GPU a CuPy generator seeded from minidl's generator draws on the device, so
    ``manual_seed`` controls GPU dropout masks too without copying masks from the host.
    """
    if xp is np:
        return _generator.random(shape, dtype=np.dtype(dtype))
    device_generator = xp.random.default_rng(int(_generator.integers(2**63)))
    return device_generator.random(shape, dtype=dtype)
