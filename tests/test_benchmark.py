"""benchmarks/train_step.py runs end to end on the CPU (tiny batch): both frameworks train the same
network from the same weights, so their first losses agree, and every timing mode reports."""
import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("torch")
SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "train_step.py"


@pytest.fixture(autouse=True)
def restore_thread_settings(monkeypatch):
    """main() sets these (os.environ.setdefault, torch.set_num_threads) for the BLAS libraries; keep them
    from leaking into the tests that run after this file."""
    import torch
    torch_threads = torch.get_num_threads()
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "MINIDL_NUM_THREADS"):
        monkeypatch.setenv(name, "1")
    yield
    torch.set_num_threads(torch_threads)


def load_benchmark():
    spec = importlib.util.spec_from_file_location("train_step", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("mode", [[], ["--blocks", "2"], ["--interleave"]])
def test_benchmark_compares_the_same_network_in_both_frameworks(mode, capsys):
    result = load_benchmark().main(["--model", "resnet20", "--device", "cpu", "--batch-size", "4", "--steps", "2",
                                    "--warmup", "1", "--threads", "1", "--compare", "torch"] + mode)
    assert result["minidl_first_loss"] == pytest.approx(result["torch_first_loss"], rel=1e-5)
    assert result["ratio"] == pytest.approx(result["minidl_img_per_s"] / result["torch_img_per_s"])
    assert result["blocks"] == (2 if "--blocks" in mode else 1)
    assert ("interleaved_ratio_median" in result) == ("--interleave" in mode)
    assert "minidl / PyTorch" in capsys.readouterr().out


def test_profile_lists_the_convolutions_forward_and_backward():
    result = load_benchmark().main(["--model", "resnet20", "--batch-size", "2", "--steps", "1", "--warmup", "0",
                                    "--threads", "1", "--compare", "none", "--profile", "--profile-steps", "1"])
    calls = {"forward": 0, "backward": 0}
    for row in result["profile"]:  # rows are named by the class that ran: Conv2d or the CPU's Conv2dChannelsLast
        if row["op"].startswith("Conv2d"):
            calls[row["phase"]] += row["calls_per_step"]
    assert calls["forward"] == calls["backward"] == 21  # ResNet-20: 19 + 2 shortcuts


def test_blocks_need_the_comparison():
    with pytest.raises(SystemExit):
        load_benchmark().parse_args(["--blocks", "2", "--compare", "none"])


def test_the_gpu_benchmark_runs_kernels_against_the_reference_on_the_cupy_stand_in(standin):
    """What benchmarks/gpu_check.sh runs on a GPU, dry-run on the stand-in (no timing meaning): the kernel
    path and the generic path both train, and both per-op profiles name their ops."""
    result = load_benchmark().main(["--model", "resnet20", "--device", "cuda", "--batch-size", "2", "--image-size", "8",
                                    "--steps", "2", "--warmup", "0", "--threads", "1", "--compare", "none",
                                    "--against-reference", "--profile", "--profile-steps", "1"])
    assert result["gpu"].startswith("CuPy stand-in") and result["kernels_speedup"] > 0
    kernel_ops = {row["op"] for row in result["profile"]}
    reference_ops = {row["op"] for row in result["reference_profile"]}
    assert {"Conv2dCuda", "BatchNormReLUCuda", "AddReLUCuda", "CrossEntropyCuda"} <= kernel_ops
    assert {"Conv2d", "BatchNorm", "ReLU", "CrossEntropy"} <= reference_ops and not any("Cuda" in op for op in
                                                                                          reference_ops)
