"""Every CUDA kernel in kernels/ compiles with nvcc for Hopper (runs in CI without a GPU; needs only nvcc).

Two forms are compiled: the file as it is in the repository (nvcc resolves the quoted includes
next to it), and the self-contained text that minidl.backends.cuda.compile hands to NVRTC at run
time (includes pasted in), so neither can break unnoticed.  Every ``extern "C"`` kernel of a file
must appear in the PTX; tests/test_cuda_backend.py checks that each one is launched by an op.
"""
import re
import shutil
import subprocess

import pytest

from minidl.backends.cuda import compile as kernel_compile
from tests.kernel_emulator import kernel_signatures

NVCC = shutil.which("nvcc")
pytestmark = pytest.mark.skipif(NVCC is None, reason="nvcc is not installed")
KERNEL_FILES = kernel_compile.kernel_files()


def _nvcc_ptx(source_path, output_path):
    command = [NVCC, "-std=c++17", "-arch=sm_90", "--ptx", str(source_path), "-o", str(output_path)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stderr}"
    assert "warning" not in result.stderr.lower(), result.stderr
    return output_path.read_text()


def test_the_kernel_files_are_the_ones_the_backend_uses():
    assert KERNEL_FILES == ["batchnorm.cu", "bf16.cu", "col2im.cu", "dropout.cu", "im2col.cu", "maxpool.cu",
                            "optimizers.cu", "relu.cu", "softmax_cross_entropy.cu"]


@pytest.mark.parametrize("name", KERNEL_FILES)
def test_kernel_file_compiles_with_nvcc(name, tmp_path):
    ptx = _nvcc_ptx(kernel_compile.kernels_dir() / name, tmp_path / (name + ".ptx"))
    kernels = kernel_signatures(kernel_compile.kernel_source(name))
    assert kernels, f"{name} defines no extern \"C\" kernel"
    for kernel in kernels:
        assert re.search(rf"\.entry\s+{kernel}\s*\(", ptx), f"{name}: no kernel named {kernel} in the PTX"


@pytest.mark.parametrize("name", KERNEL_FILES)
def test_runtime_source_is_self_contained(name, tmp_path):
    source = kernel_compile.kernel_source(name)
    assert not re.search(r"^\s*#include", source, re.MULTILINE), "NVRTC has no include path for local headers"
    path = tmp_path / name
    path.write_text(source)
    _nvcc_ptx(path, tmp_path / (name + ".ptx"))
