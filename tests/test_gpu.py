"""What only a real GPU can show (``pytest -m gpu``; skipped without CuPy and a GPU), and what a user
without one is told.

The op-by-op, kernel and training tests run on a GPU too: tests/test_cuda_ops.py and
tests/test_cuda_backend.py parametrize over the CuPy stand-in and ``gpu``.  Here: NVRTC compiles
every kernel file; cuBLAS's bf16/fp16 GEMMs match their emulation; a warm training step makes no
host synchronisation (CuPy's own detector, ``cupyx.allow_synchronize(False)``); ten float64 SGD
steps follow the CPU; memory stays flat over many steps; TF32 reaches CuPy's GEMMs.
"""
import copy
import subprocess
import sys

import numpy as np
import pytest

import minidl
from minidl import amp, optim
from minidl.backends.cuda import compile as kernel_compile
from minidl.nn import functional as F

gpu = pytest.mark.gpu


# ====================================================================== without a GPU
def test_to_cuda_without_cupy_says_what_to_install(monkeypatch):
    from minidl import backend
    monkeypatch.setattr(backend, "_cupy", None)
    monkeypatch.setattr(backend, "_cupy_error", ModuleNotFoundError("No module named 'cupy'"))
    x = minidl.ones(3)
    with pytest.raises(RuntimeError) as error:
        x.to("cuda")
    message = str(error.value)
    assert "CuPy" in message and "pip install minidl[cuda12]" in message and "cupy-cuda13x" in message
    with pytest.raises(RuntimeError, match="pip install minidl"):
        minidl.nn.Linear(2, 2).to("cuda")
    assert minidl.cuda.is_available() is False and minidl.cuda.device_count() == 0
    assert minidl.cuda.memory_allocated() == 0


def test_importing_minidl_and_its_cuda_backend_does_not_import_cupy():
    code = ("import sys, minidl, minidl.cuda, minidl.amp, minidl.backends.cuda, minidl.optim; "
            "print('cupy' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


# ====================================================================== on a GPU
@gpu
@pytest.mark.parametrize("name", kernel_compile.kernel_files())
def test_nvrtc_compiles_every_kernel_file(name):
    module = kernel_compile.get_module(name)
    assert module is kernel_compile.get_module(name)  # compiled once per device


@gpu
def test_low_precision_gemms_on_gpu_match_the_emulation(rng):
    import cupy
    a = rng.standard_normal((2, 37, 70)).astype(np.float32)
    b = rng.standard_normal((70, 19)).astype(np.float32)
    for compute_dtype in ("bfloat16", "float16"):
        on_gpu = amp.matmul(cupy.asarray(a), cupy.asarray(b), compute_dtype)  # cuBLAS GemmEx
        assert on_gpu.dtype == np.float32 and on_gpu.shape == (2, 37, 19)
        np.testing.assert_allclose(on_gpu.get(), amp.matmul(a, b, compute_dtype), rtol=1e-5, atol=1e-4)


@gpu
def test_tf32_switch_reaches_cupys_gemms():
    from cupy._core import _routines_linalg as linalg
    try:
        amp.set_tf32(True)
        assert linalg.get_compute_type(np.float32) == linalg.COMPUTE_TYPE_TF32
    finally:
        amp.set_tf32(False)
    assert linalg.get_compute_type(np.float32) != linalg.COMPUTE_TYPE_TF32


def _resnet(name, batch, device="cuda", dtype=np.float32, seed=0):
    minidl.manual_seed(seed)
    model = minidl.models.get_model(name, num_classes=10).to(dtype=dtype).to(device)
    data = np.random.default_rng(seed)
    x = minidl.tensor(data.standard_normal((batch, 3, 32, 32)).astype(dtype)).to(device)
    y = minidl.tensor(data.integers(0, 10, batch)).to(device)
    return model, x, y


def _sgd_step(model, optimizer, x, y):
    optimizer.zero_grad()
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    optimizer.step()
    return loss


@gpu
def test_a_warm_resnet18_step_never_waits_for_the_gpu():
    import cupyx
    model, x, y = _resnet("resnet18", 32)
    optimizer = optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    for _ in range(2):
        _sgd_step(model, optimizer, x, y)
    with cupyx.allow_synchronize(False):  # CuPy raises DeviceSynchronized at any host wait
        loss = _sgd_step(model, optimizer, x, y)
    assert np.isfinite(loss.item())


@gpu
def test_ten_float64_sgd_steps_on_gpu_follow_the_cpu():
    """float64: the kernels and the CPU differ by rounding only (~1e-16 per op), far below any ReLU kink."""
    amp.set_tf32(False)
    cpu_model, x_cpu, y_cpu = _resnet("resnet20", 16, "cpu", np.float64)
    gpu_model = copy.deepcopy(cpu_model).to("cuda")
    losses = {}
    for model, x, y, device in ((cpu_model, x_cpu, y_cpu, "cpu"), (gpu_model, x_cpu.to("cuda"), y_cpu.to("cuda"),
                                                                   "cuda")):
        optimizer = optim.SGD(model.parameters(), lr=0.02, momentum=0.9, weight_decay=5e-4)
        losses[device] = [float(_sgd_step(model, optimizer, x, y).item()) for _ in range(10)]
    np.testing.assert_allclose(losses["cuda"], losses["cpu"], rtol=1e-9)
    assert losses["cpu"][-1] < 0.5 * losses["cpu"][0]  # it really trained
    for p_cpu, p_gpu in zip(cpu_model.parameters(), gpu_model.parameters()):
        np.testing.assert_allclose(p_gpu.detach().cpu().array, p_cpu.array, rtol=1e-8, atol=1e-10)


@gpu
def test_gpu_memory_stays_flat_over_many_steps():
    model, x, y = _resnet("resnet20", 8)
    optimizer = optim.SGD(model.parameters(), lr=0.02, momentum=0.9)
    for _ in range(3):
        _sgd_step(model, optimizer, x, y)
    minidl.cuda.synchronize()
    settled = minidl.cuda.memory_allocated()
    for _ in range(60):
        _sgd_step(model, optimizer, x, y)
    minidl.cuda.synchronize()
    grown = minidl.cuda.memory_allocated() - settled
    assert grown <= 1 << 20, f"memory in use grew by {grown} bytes over 60 steps"
