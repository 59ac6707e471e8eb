"""Every CUDA kernel in kernels/ compiles (runs in CI without a GPU; needs only nvcc).

Two forms are compiled: the file as it is in the repository (nvcc resolves the quoted
includes next to it), and the self-contained text that minidl.cuda.compile hands to NVRTC
at run time (includes pasted in), so neither can break unnoticed.
"""
import re
import shutil
import subprocess

import pytest

from minidl.cuda import compile as kernel_compile

NVCC = shutil.which("nvcc")
pytestmark = pytest.mark.skipif(NVCC is None, reason="nvcc is not installed")
KERNEL_FILES = kernel_compile.kernel_files()
EXPECTED_KERNELS = {  # file -> extern "C" kernels minidl.cuda.ops launches by name
    "im2col.cu": ["im2col_f32", "im2col_f64"],
    "col2im.cu": ["col2im_f32", "col2im_f64"],
    "batchnorm.cu": ["bn_stats_partial_f32", "bn_stats_finalize_f64", "bn_apply_f32", "bn_backward_partial_f32",
                     "bn_backward_finalize_f32", "bn_backward_apply_f64"],
    "maxpool.cu": ["maxpool_forward_f32", "maxpool_backward_f64"],
    "softmax_cross_entropy.cu": ["softmax_xent_forward_f32", "softmax_xent_backward_f64"],
    "dropout.cu": ["dropout_mask", "dropout_forward_f32", "dropout_apply_f64"],
    "optimizers.cu": ["sgd_multi_f32", "adam_multi_f64"],
    "bf16.cu": ["float_to_bf16_bits"],
}


def _nvcc_ptx(source_path, output_path):
    command = [NVCC, "-std=c++17", "-arch=sm_90", "--ptx", str(source_path), "-o", str(output_path)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stderr}"
    return output_path.read_text()


def test_every_expected_kernel_file_exists():
    assert set(EXPECTED_KERNELS) <= set(KERNEL_FILES)


@pytest.mark.parametrize("name", KERNEL_FILES)
def test_kernel_file_compiles_with_nvcc(name, tmp_path):
    ptx = _nvcc_ptx(kernel_compile.kernels_dir() / name, tmp_path / (name + ".ptx"))
    for kernel in EXPECTED_KERNELS.get(name, []):
        assert re.search(rf"\.entry\s+{kernel}\s*\(", ptx), f"{name}: no kernel named {kernel} in the PTX"


@pytest.mark.parametrize("name", KERNEL_FILES)
def test_runtime_source_is_self_contained(name, tmp_path):
    source = kernel_compile.kernel_source(name)
    assert not re.search(r"^\s*#include", source, re.MULTILINE), "NVRTC has no include path for local headers"
    path = tmp_path / name
    path.write_text(source)
    _nvcc_ptx(path, tmp_path / (name + ".ptx"))
