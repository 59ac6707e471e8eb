"""Shared test helpers: float64 tensors from NumPy, and an optional PyTorch import."""
import numpy as np
import pytest

import minidl


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
