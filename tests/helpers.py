"""Shared test helpers: float64 tensors from NumPy, an optional PyTorch import, fast against reference."""
import contextlib
from unittest import mock

import numpy as np
import pytest

import minidl
from minidl import autograd


def torch_or_skip():
    """PyTorch for the parity tests, or a skip where it is not installed."""
    return pytest.importorskip("torch")


def leaf(array, requires_grad=True):
    """A float64 leaf tensor holding a copy of ``array``."""
    return minidl.tensor(np.asarray(array, dtype=np.float64), requires_grad=requires_grad)


def assert_close(actual, expected, rtol=1e-10, atol=1e-12, what="value"):
    actual = actual.detach().numpy() if isinstance(actual, minidl.Tensor) else np.asarray(actual)
    expected = expected.detach().numpy() if hasattr(expected, "detach") else np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, err_msg=what)


@contextlib.contextmanager
def chosen_implementations():
    """A list that collects the class ``Function.apply`` ran for every op called inside the block."""
    chosen, choose = [], autograd.choose

    def recording_choose(reference, inputs, params):
        cls = choose(reference, inputs, params)
        chosen.append(cls)
        return cls

    with mock.patch.object(autograd, "choose", recording_choose):
        yield chosen


def fast_and_reference(run, expect=()):
    """(run() with the fast implementations on, run() under ``minidl.backends.reference()``), in one
    process, whatever MINIDL_REFERENCE says.  ``expect``: fast classes the first run must have used
    (so a test cannot pass by comparing the reference with itself)."""
    with minidl.backends.reference(False), chosen_implementations() as chosen:
        fast = run()
    missing = [cls.__name__ for cls in expect if cls not in chosen]
    assert not missing, f"the fast run did not use {missing} (it ran {sorted({c.__name__ for c in chosen})})"
    with minidl.backends.reference(True):
        reference = run()
    return fast, reference
