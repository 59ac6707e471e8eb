"""The wrong results, crashes and error classes of issue 10, each checked against PyTorch's answer.

Every test here failed before its fix. Errors are checked for PyTorch's class (``RuntimeError`` where
PyTorch raises it) and, where minidl used to raise another class, for that class too: minidl's
errors derive from both (see ``minidl/errors.py``).
"""
import sys

import numpy as np
import pytest

import minidl
import minidl.nn.functional as F
from minidl.errors import ArgumentError, DTypeError, IndexRangeError, ShapeError, UnsupportedDTypeError
from tests.helpers import leaf


# ---------------------------------------------------------------- wrong results
@pytest.mark.parametrize("dtype, low", [(minidl.int32, -2**31), (minidl.int64, -2**63), (minidl.int8, -128)])
def test_min_of_integers_at_the_type_minimum(dtype, low):
    x = minidl.tensor([5, low, 3], dtype=dtype)
    assert x.min().item() == low and x.min().dtype == dtype
    assert x.min(0).values.item() == low and x.min(0).indices.item() == 1


def test_min_of_uint8_and_bool():
    assert minidl.tensor([7, 0, 3], dtype=minidl.uint8).min().item() == 0
    assert minidl.tensor([7, 2, 3], dtype=minidl.uint8).min(dim=0).values.item() == 2
    flags = minidl.tensor([True, False, True])
    assert flags.min().item() is False and flags.max().item() is True
    assert flags.min(0).indices.item() == 1


def test_advanced_indexing_applies_ints_first_as_pytorch():
    x = minidl.randn(2, 3, 12, 5, 4)
    d = minidl.tensor([[0, 1, 2], [1, 1, 0]])
    assert x[1, :, 3:11:2, d, 0:2].shape == (3, 4, 2, 3, 2)  # NumPy's rules give (2, 3, 3, 4, 2)
    np.testing.assert_array_equal(x[1, :, 3:11:2, d, 0:2].numpy(), x.numpy()[1][:, 3:11:2, d.numpy(), 0:2])
    assert x[minidl.tensor(1), :, 3:11:2, d].shape == (3, 4, 2, 3, 4)  # a 0-d index tensor is an int


def test_advanced_indexing_gradient_and_assignment_follow_the_same_rule():
    x = leaf(np.arange(2 * 3 * 4, dtype=float).reshape(2, 3, 4))
    d = minidl.tensor([0, 0, 2])
    y = x[1, :, d]
    assert y.shape == (3, 3)
    y.sum().backward()
    expected = np.zeros((2, 3, 4))
    np.add.at(expected[1], (slice(None), [0, 0, 2]), 1.0)
    np.testing.assert_array_equal(x.grad.numpy(), expected)
    z = minidl.zeros(2, 3, 4)
    z[1, :, minidl.tensor([0, 2])] = minidl.ones(3, 2)
    assert z.sum().item() == 6 and z[1, :, 0].sum().item() == 3


def test_where_with_two_python_scalars():
    condition = minidl.tensor([True, False])
    ints = minidl.where(condition, 4, 2)
    assert ints.tolist() == [4, 2] and ints.dtype == minidl.int64
    floats = minidl.where(condition, 4.0, 2)
    assert floats.tolist() == [4.0, 2.0] and floats.dtype == minidl.float32


def test_softmax_of_a_0d_tensor():
    x = minidl.tensor(2.0, requires_grad=True)
    assert x.softmax(0).item() == 1.0 and F.log_softmax(x, -1).item() == 0.0
    x.softmax(-1).backward()
    assert x.grad.item() == 0.0


def test_view_as_another_dtype():
    x = minidl.tensor([1.0, -2.0, 0.5, 3.0])
    bits = x.view(minidl.int32)
    assert bits.dtype == minidl.int32 and bits.tolist() == x.numpy().view(np.int32).tolist()
    assert x.view(minidl.int16).shape == (8,) and x.view(minidl.float64).shape == (2,)
    with pytest.raises(RuntimeError, match="view"):
        minidl.ones(3).view(minidl.float64)


@pytest.mark.parametrize("correction", [3, 4, 7])
def test_var_and_std_with_correction_at_least_n_are_inf(correction):
    x = minidl.tensor([1.0, 2.0, 4.0])
    with np.errstate(all="raise"):  # no warning escapes either
        assert x.var(correction=correction).item() == np.inf
        assert x.std(correction=correction).item() == np.inf
    assert np.isnan(minidl.ones(3).var(correction=3).item())  # 0 / 0, as in PyTorch


def test_clip_with_no_bounds_raises():
    with pytest.raises(RuntimeError, match="at least one of 'min' or 'max'"):
        minidl.randn(3).clip(None, None)
    with pytest.raises(ValueError):
        minidl.randn(3).clamp()


@pytest.mark.parametrize("op", ["sigmoid", "exp", "log", "sqrt", "tanh"])
def test_float_ops_on_integers_promote_to_float(op):
    x = minidl.tensor([1, 2, 3])
    y = getattr(x, op)()
    assert y.dtype == minidl.float32
    np.testing.assert_allclose(y.numpy(), getattr(minidl.tensor([1.0, 2.0, 3.0]), op)().numpy())


@pytest.mark.parametrize("other", [None, "a", {}, object()])
def test_arithmetic_with_a_non_number_raises_type_error(other):
    with pytest.raises(TypeError, match="unsupported operand"):
        minidl.ones(2) + other
    with pytest.raises(TypeError):
        other * minidl.ones(2)


def test_flatten_with_start_after_end_raises():
    with pytest.raises(RuntimeError, match="start_dim cannot come after end_dim"):
        minidl.zeros(2, 3, 4).flatten(2, 1)
    with pytest.raises(IndexError, match="Dimension out of range"):
        minidl.zeros(2, 3).flatten(0, 2)


def test_cat_with_a_dim_out_of_range_raises():
    with pytest.raises(IndexError, match=r"Dimension out of range \(expected to be in range of \[-2, 1\], but got 5\)"):
        minidl.cat([minidl.zeros(2, 2), minidl.zeros(2, 2)], dim=5)
    with pytest.raises(RuntimeError, match="Expected size 2 but got size 3 for tensor number 1"):
        minidl.cat([minidl.zeros(2, 2), minidl.zeros(2, 3)], dim=0)
    with pytest.raises(ValueError, match="non-empty"):
        minidl.cat([])


@pytest.mark.parametrize("data, error", [(object(), RuntimeError), ("abc", TypeError), (None, RuntimeError),
                                         ({1: 2}, RuntimeError), ([None, 1], RuntimeError)])
def test_tensor_refuses_what_is_not_numbers(data, error):
    with pytest.raises(error):
        minidl.tensor(data)


def test_tensor_refuses_arrays_of_strings_and_objects():
    with pytest.raises(TypeError, match="can't convert"):
        minidl.tensor(np.array(["a", "b"]))
    with pytest.raises(TypeError, match="can't convert"):
        minidl.tensor(np.array([None, 1], dtype=object))


def test_adaptive_avg_pool2d_refuses_integers():
    with pytest.raises(NotImplementedError, match="adaptive_avg_pool2d.*int64"):
        F.adaptive_avg_pool2d(minidl.ones(1, 1, 4, 4, dtype=minidl.int64), 3)


def test_adaptive_avg_pool2d_keeps_a_nan_in_its_windows():
    x = np.zeros((1, 1, 5, 7))
    x[0, 0, 0, 0] = np.nan
    y = F.adaptive_avg_pool2d(minidl.tensor(x), (3, 3)).numpy()
    assert np.isnan(y[0, 0, 0, 0]) and np.isnan(y).sum() == 1  # only the window holding it


def test_utils_data_is_importable_as_in_pytorch():
    import minidl.utils.data
    from minidl.utils.data import DataLoader, Dataset
    assert DataLoader is minidl.data.DataLoader and Dataset is minidl.data.Dataset
    assert "minidl.utils.data" in sys.modules


def test_size_prints_as_pytorch_and_is_a_tuple():
    x = minidl.zeros(2, 10)
    assert repr(x.shape) == "minidl.Size([2, 10])" and str(x.size()) == "minidl.Size([2, 10])"
    assert x.shape == (2, 10) and isinstance(x.shape, tuple) and isinstance(x.shape, minidl.Size)
    assert isinstance(x.shape[1:], minidl.Size) and x.shape[-1] == 10 and x.shape.numel() == 20
    assert minidl.Size([2, 3]) + (4,) == (2, 3, 4) and (None,) + x.shape[1:] == (None, 10)


def test_autograd_variable_is_the_legacy_alias():
    from minidl.autograd import Variable
    x = minidl.ones(3)
    v = Variable(x, requires_grad=True)
    assert isinstance(x, Variable) and v.requires_grad and not x.requires_grad
    (v * 2).sum().backward()
    assert v.grad.tolist() == [2.0, 2.0, 2.0]
    assert v.data.numpy().tolist() == [1.0, 1.0, 1.0]


# ---------------------------------------------------------------- errors of PyTorch's class
def _raises(expected_classes, fn, match):
    with pytest.raises(expected_classes[0], match=match) as info:
        fn()
    assert all(isinstance(info.value, cls) for cls in expected_classes), type(info.value).__mro__


@pytest.mark.parametrize("name, fn, classes, match", [
    ("permute length", lambda: minidl.zeros(2, 3).permute(0), (RuntimeError, ValueError), "permute"),
    ("permute duplicate", lambda: minidl.zeros(2, 3).permute(0, 0), (RuntimeError,), "duplicate dims"),
    ("permute range", lambda: minidl.zeros(2, 3).permute(0, 5), (IndexError,), "Dimension out of range"),
    ("reshape two -1", lambda: minidl.zeros(2, 3).reshape(-1, -1), (RuntimeError, ValueError),
     "only one dimension can be inferred"),
    ("reshape size", lambda: minidl.zeros(2, 3).view(4, 2), (RuntimeError,), r"shape '\[4, 2\]' is invalid for input of size 6"),
    ("matmul", lambda: minidl.zeros(2, 3) @ minidl.zeros(4, 5), (RuntimeError, ValueError), r"\(2x3 and 4x5\)"),
    ("matmul 0-d", lambda: minidl.tensor(1.0) @ minidl.zeros(4, 5), (RuntimeError,), "at least 1D"),
    ("conv too small", lambda: F.conv2d(minidl.zeros(1, 1, 2, 2), minidl.zeros(1, 1, 3, 3)),
     (RuntimeError, ValueError), r"too small for kernel \(3, 3\)"),
    ("conv channels", lambda: F.conv2d(minidl.zeros(1, 2, 5, 5), minidl.zeros(1, 1, 3, 3)),
     (RuntimeError, ValueError), "expects input with 1 channels"),
    ("conv dtype", lambda: F.conv2d(minidl.zeros(1, 1, 5, 5), minidl.zeros(1, 1, 3, 3, dtype=minidl.float64)),
     (RuntimeError, TypeError), "float32 but weight is float64"),
    ("topk", lambda: minidl.zeros(3).topk(4), (RuntimeError, IndexError), "k out of range"),
    ("broadcast", lambda: minidl.zeros(2, 3) + minidl.zeros(4), (RuntimeError, ValueError),
     r"size of tensor a \(3\) must match the size of tensor b \(4\) at non-singleton dimension 1"),
    ("expand", lambda: minidl.zeros(2, 3).expand(4, 4), (RuntimeError,), r"Expand.*\(2, 3\)"),
    ("item", lambda: minidl.zeros(2).item(), (RuntimeError, ValueError), "2 elements cannot be converted"),
    ("linear", lambda: F.linear(minidl.zeros(2, 3), minidl.zeros(4, 5)), (RuntimeError, ValueError), "features"),
    ("max_pool too small", lambda: F.max_pool2d(minidl.zeros(1, 1, 2, 2), 3), (RuntimeError,), "too small"),
    ("stack", lambda: minidl.stack([minidl.zeros(2), minidl.zeros(3)]), (RuntimeError,), "equal size"),
    ("transpose", lambda: minidl.zeros(2, 3).transpose(0, 5), (IndexError,), "Dimension out of range"),
    ("size", lambda: minidl.zeros(2, 3).size(2), (IndexError,), "Dimension out of range"),
])
def test_errors_have_pytorchs_class(name, fn, classes, match):
    _raises(classes, fn, match)


def test_error_classes_derive_from_both():
    assert issubclass(ShapeError, RuntimeError) and issubclass(ShapeError, ValueError)
    assert issubclass(ArgumentError, RuntimeError) and issubclass(ArgumentError, ValueError)
    assert issubclass(IndexRangeError, RuntimeError) and issubclass(IndexRangeError, IndexError)
    assert issubclass(DTypeError, RuntimeError) and issubclass(DTypeError, TypeError)
    assert issubclass(UnsupportedDTypeError, NotImplementedError) and issubclass(UnsupportedDTypeError, TypeError)
