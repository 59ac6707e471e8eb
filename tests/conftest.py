import numpy as np
import pytest
from hypothesis import settings

import minidl

settings.register_profile("ci", max_examples=15, deadline=None, derandomize=True)
settings.load_profile("ci")


@pytest.fixture(autouse=True)
def _fresh_state():
    """Every test starts from the same seed and default dtype."""
    minidl.manual_seed(0)
    minidl.set_default_dtype(minidl.float32)
    yield
    minidl.set_default_dtype(minidl.float32)


def _gpu_available():
    try:
        import cupy
        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


def pytest_collection_modifyitems(config, items):
    if _gpu_available():
        return
    skip = pytest.mark.skip(reason="no CUDA GPU with CuPy on this machine")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def standin():
    """The strict CuPy stand-in (tests/cupy_standin) installed as ``cupy`` for one test."""
    from tests.cupy_standin import StandIn
    with StandIn() as stand_in:
        yield stand_in


@pytest.fixture(params=["standin", pytest.param("gpu", marks=pytest.mark.gpu)])
def device_env(request):
    """The CUDA device to test on: the stand-in (CI; the value is its counter of syncs and copies), or the
    real GPU (None)."""
    if request.param == "standin":
        yield request.getfixturevalue("standin")
    else:
        yield None


@pytest.fixture
def kernels():
    """The device backends' fast ops, even in CI's second run under MINIDL_REFERENCE=1: for tests whose
    subject is a kernel (the rest follow the run's mode, so that run covers the generic GPU path)."""
    from minidl import backends
    with backends.reference(False):
        yield


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
