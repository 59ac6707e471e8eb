"""The CuPy stand-in refuses what CuPy refuses, counts what makes CuPy wait or copy, offers only
CuPy 14.2's names, and checks every kernel launch against the kernel's C signature."""
from pathlib import Path

import numpy as np
import pytest

import minidl
from minidl.backends.cuda import compile as kernel_compile


def test_offers_only_names_cupy_14_has(standin):
    listed = Path(__file__).parent / "cupy_standin" / "cupy_14_2_names.txt"
    cupy_names = {line.strip() for line in listed.read_text().splitlines() if line and not line.startswith("#")}
    offered = {name for name in vars(standin.cupy) if not name.startswith("_")}
    assert offered <= cupy_names, sorted(offered - cupy_names)
    assert "errstate" not in offered and "errstate" not in cupy_names  # CuPy has only cupyx.errstate


def test_refuses_implicit_conversions_and_host_arrays(standin):
    cupy = standin.cupy
    a = cupy.arange(6, dtype=np.float32).reshape(2, 3)
    with pytest.raises(TypeError, match="Implicit conversion to a NumPy array"):
        np.asarray(a)
    with pytest.raises(TypeError):
        np.exp(a)  # a NumPy ufunc on a device array
    with pytest.raises(TypeError, match="numpy.sum"):
        np.sum(a)  # a NumPy function on a device array
    with pytest.raises(TypeError, match="Unsupported type"):
        a + np.ones(3, dtype=np.float32)  # a host array mixed in
    with pytest.raises(TypeError, match="Unsupported type"):
        np.ones(3, dtype=np.float32) * a
    with pytest.raises(TypeError, match="Wrong arguments"):
        cupy.maximum(a, 0, where=a > 1)
    with pytest.raises(TypeError, match="incorrect type"):
        cupy.ascontiguousarray(np.ones(2))
    assert isinstance(np.float32(2) * a, cupy.ndarray)  # NumPy scalars are fine, as in CuPy
    assert isinstance(a.sum(), cupy.ndarray) and a.sum().ndim == 0  # reductions stay on the device


def test_counts_synchronisations_and_copies_both_ways(standin):
    cupy, counts = standin.cupy, standin.counts
    a = cupy.asarray(np.arange(4.0))  # host -> device
    b = (a * 2).sum()
    assert (counts.host_to_device, counts.syncs, counts.device_to_host) == (1, 0, 0)
    assert float(b) == 12.0 and bool(a[1] > 0) and a.max().item() == 3.0  # three syncs, three copies back
    a.get()
    cupy.cuda.get_current_stream().synchronize()
    assert (counts.syncs, counts.device_to_host) == (5, 4)
    a[cupy.asarray(np.array([0, 1]))] = 5.0  # the index array was copied over
    a[a > 4] = 0.0  # a boolean mask decides the size: the host waits
    assert counts.host_to_device == 2 and counts.syncs == 6
    assert counts.sites[-1][0] == "sync"


def test_integer_indices_wrap_around_as_in_cupy(standin):
    a = standin.cupy.asarray(np.array([0.0, 1.0, 2.0]))
    np.testing.assert_array_equal(a[standin.cupy.asarray(np.array([1, 3, -1]))].get(), [1.0, 0.0, 2.0])


def _kernel(name="im2col_f32"):
    return standin_kernel(kernel_compile.kernel_source("im2col.cu"), name)


def standin_kernel(source, name):
    import cupy
    return cupy.RawModule(code=source).get_function(name)


def test_a_launch_is_checked_against_the_kernel_signature(standin):
    cupy = standin.cupy
    kernel = _kernel()
    x, cols = cupy.zeros((1, 1, 2, 2), dtype=np.float32), cupy.zeros((1, 4), dtype=np.float32)
    ints = [np.int32(v) for v in (1, 1, 2, 2, 1, 1, 2, 2, 1, 1, 0, 0, 1, 1)]
    kernel((1,), (32,), (x, cols, np.int64(4), *ints))
    assert standin.counts.launches["im2col_f32"] == 1
    with pytest.raises(TypeError, match="takes 17 arguments"):
        kernel((1,), (32,), (x, cols, np.int64(4), *ints[:-1]))
    with pytest.raises(TypeError, match="needs a NumPy int32 scalar, got int"):
        kernel((1,), (32,), (x, cols, np.int64(4), 1, *ints[1:]))  # a Python int would travel as 8 bytes
    with pytest.raises(TypeError, match="needs a NumPy int64 scalar, got int32"):
        kernel((1,), (32,), (x, cols, np.int32(4), *ints))
    with pytest.raises(TypeError, match="device array of float64, the kernel reads float32"):
        kernel((1,), (32,), (x.astype(np.float64), cols, np.int64(4), *ints))
    with pytest.raises(TypeError, match="device pointer; got ndarray"):
        kernel((1,), (32,), (np.zeros(4, np.float32), cols, np.int64(4), *ints))  # a host array
    with pytest.raises(ValueError, match="non-contiguous"):
        kernel((1,), (32,), (x, cupy.zeros((4, 2), dtype=np.float32).T, np.int64(4), *ints))
    with pytest.raises(ValueError, match="empty dimension"):
        kernel((0,), (32,), (x, cols, np.int64(4), *ints))
    with pytest.raises(ValueError, match="1025 threads"):
        kernel((1,), (1025,), (x, cols, np.int64(4), *ints))


def test_a_struct_argument_must_have_the_struct_size(standin):
    from minidl.backends.cuda.optim import TENSOR_LISTS
    kernel = standin_kernel(kernel_compile.kernel_source("optimizers.cu"), "sgd_multi_f32")
    struct = np.zeros(1, dtype=TENSOR_LISTS)
    scalars = (np.int64(0), np.float32(0.1), np.float32(0), np.float32(0), np.float32(0), np.int32(0), np.int32(0))
    kernel((1,), (32,), (struct,) + scalars)  # 0 elements: nothing is read
    with pytest.raises(TypeError, match="2320-byte struct"):
        kernel((1,), (32,), (np.zeros(1, dtype=[("address", np.uint64, (5, 48))]),) + scalars)


def test_minidl_tensors_move_to_the_stand_in(standin):
    x = minidl.tensor(np.arange(3.0)).to("cuda")
    assert x.is_cuda and isinstance(x.array, standin.cupy.ndarray) and minidl.cuda.is_available()
    np.testing.assert_array_equal(x.cpu().array, [0.0, 1.0, 2.0])
