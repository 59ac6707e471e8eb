"""The Tensor itself: creation, dtypes, attributes, conversions, comparisons, in-place rules,
indexing and repr."""
import numpy as np
import pytest

import minidl


# ---------------------------------------------------------------- creation and dtypes
def test_float_data_becomes_float32_and_ints_int64():
    assert minidl.tensor([1.0, 2.0]).dtype == minidl.float32
    assert minidl.tensor(3.5).dtype == minidl.float32
    assert minidl.tensor([1, 2.5]).dtype == minidl.float32
    assert minidl.tensor([]).dtype == minidl.float32
    assert minidl.tensor([1, 2]).dtype == minidl.int64
    assert minidl.tensor(7).dtype == minidl.int64
    assert minidl.tensor([True, False]).dtype == minidl.bool


def test_numpy_arrays_keep_their_dtype_and_are_copied():
    array = np.array([1.0, 2.0])  # float64
    t = minidl.tensor(array)
    assert t.dtype == minidl.float64
    array[0] = 100.0
    assert t[0].item() == 1.0, "minidl.tensor must copy its input"
    assert minidl.tensor(np.array([1, 2], dtype=np.int32)).dtype == minidl.int32
    assert minidl.tensor(array, dtype=minidl.float32).dtype == minidl.float32
    shared = minidl.from_numpy(array)
    array[1] = -1.0
    assert shared[1].item() == -1.0, "from_numpy shares memory"


def test_set_default_dtype_changes_new_float_tensors():
    minidl.set_default_dtype(minidl.float64)
    assert minidl.get_default_dtype() == minidl.float64
    assert minidl.tensor([1.0]).dtype == minidl.float64
    assert minidl.zeros(2).dtype == minidl.float64
    assert minidl.randn(2).dtype == minidl.float64
    assert minidl.arange(0.0, 1.0, 0.5).dtype == minidl.float64
    assert minidl.tensor([1]).dtype == minidl.int64
    minidl.set_default_dtype(minidl.float32)
    assert minidl.tensor([1.0]).dtype == minidl.float32
    with pytest.raises(TypeError, match="floating"):
        minidl.set_default_dtype(minidl.int64)


def test_factories():
    assert minidl.zeros(2, 3).shape == (2, 3) and minidl.zeros((2, 3)).shape == (2, 3)
    assert minidl.ones(4).numpy().sum() == 4
    assert minidl.full((2,), 1.5).dtype == minidl.float32
    assert minidl.full((2,), 3).dtype == minidl.int64
    assert minidl.arange(5).dtype == minidl.int64
    assert minidl.arange(5).tolist() == [0, 1, 2, 3, 4]
    assert minidl.zeros_like(minidl.tensor([1, 2])).dtype == minidl.int64
    assert minidl.ones_like(minidl.tensor([1.0], dtype=minidl.float64)).dtype == minidl.float64
    assert minidl.zeros(2, requires_grad=True).requires_grad
    assert minidl.randint(0, 10, (3, 4)).shape == (3, 4)
    values = minidl.randint(5, (100,))
    assert values.dtype == minidl.int64 and 0 <= values.numpy().min() and values.numpy().max() < 5


def test_manual_seed_makes_random_tensors_repeatable():
    minidl.manual_seed(3)
    first = minidl.randn(5).numpy().copy(), minidl.rand(5).numpy().copy()
    minidl.manual_seed(3)
    second = minidl.randn(5).numpy(), minidl.rand(5).numpy()
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    assert not np.array_equal(first[0], minidl.randn(5).numpy())


# ---------------------------------------------------------------- attributes and conversions
def test_attributes():
    t = minidl.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    assert isinstance(t.array, np.ndarray)
    assert t.grad is None
    assert t.shape == (2, 3) and t.size() == (2, 3) and t.size(-1) == 3
    assert t.ndim == 2 and t.dim() == 2 and t.numel() == 6 and len(t) == 2
    assert t.dtype == minidl.float32
    assert t.device == minidl.device("cpu") and t.device.type == "cpu" and not t.is_cuda
    assert t.is_leaf and t.grad_fn is None and not t.requires_grad


def test_numpy_item_tolist():
    t = minidl.tensor([[1.5, 2.0]])
    assert isinstance(t.numpy(), np.ndarray) and t.numpy().dtype == np.float32
    assert minidl.tensor([[2.5]]).item() == 2.5
    assert isinstance(minidl.tensor(3).item(), int)
    assert t.tolist() == [[1.5, 2.0]]
    assert float(minidl.tensor(2.0)) == 2.0 and int(minidl.tensor(4)) == 4
    with pytest.raises(ValueError, match="one-element"):
        t.item()
    w = minidl.tensor([1.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="detach"):
        w.numpy()
    np.testing.assert_array_equal(np.asarray(w), [1.0])


def test_detach_shares_data_but_not_the_graph():
    w = minidl.tensor([1.0, 2.0], requires_grad=True)
    y = w * 2
    d = y.detach()
    assert not d.requires_grad and d.is_leaf and d.grad_fn is None
    assert d.array is y.array


def test_requires_grad_rules():
    t = minidl.tensor([1.0])
    assert t.requires_grad_() is t and t.requires_grad
    t.requires_grad_(False)
    assert not t.requires_grad
    with pytest.raises(RuntimeError, match="floating"):
        minidl.tensor([1]).requires_grad_()
    y = minidl.tensor([1.0], requires_grad=True) * 2
    assert y.requires_grad and not y.is_leaf
    with pytest.raises(RuntimeError, match="leaf"):
        y.requires_grad_(False)


def test_to_and_casts():
    t = minidl.tensor([1.7, -2.2])
    assert t.double().dtype == minidl.float64
    assert t.to(minidl.float64).dtype == minidl.float64
    assert t.long().tolist() == [1, -2]
    assert t.to("cpu") is t and t.float() is t
    w = minidl.tensor([1.0, 2.0], requires_grad=True)
    w.double().sum().backward()
    assert w.grad.dtype == minidl.float32


# ---------------------------------------------------------------- dtype of arithmetic
@pytest.mark.parametrize("dtype", [minidl.float32, minidl.float64])
def test_python_scalars_keep_the_tensor_dtype(dtype):
    x = minidl.tensor([1.0, 2.0], dtype=dtype, requires_grad=True)
    results = [x + 1.5, 1.5 + x, x - 2, 2 - x, x * 0.1, 0.1 * x, x / 3.0, 3.0 / x, x ** 2, x ** 0.5, 2.0 ** x,
               -x, x @ x, x.exp(), x.sigmoid(), x.mean(), x.var(), x.clamp(0.5, 1.5), x * np.float64(2.0)]
    assert [r.dtype for r in results] == [dtype] * len(results)
    sum(r.sum() for r in results).backward()
    assert x.grad.dtype == dtype


def test_integer_and_float_tensors_promote_like_torch():
    i = minidl.tensor([1, 2])
    f = minidl.tensor([0.5, 1.5])
    assert (i + f).dtype == minidl.float32 and (f * i).dtype == minidl.float32
    assert (i / 2).dtype == minidl.float32 and (i / i).dtype == minidl.float32
    assert (i * 2).dtype == minidl.int64 and (i + 1).dtype == minidl.int64
    assert (i * 0.5).dtype == minidl.float32
    assert (i ** 0.5).dtype == minidl.float32
    assert (i.mean()).dtype == minidl.float32
    assert (minidl.tensor([True]) + 3).tolist() == [4]
    assert (f.double() + f).dtype == minidl.float64  # float64 wins over float32, as in torch


# ---------------------------------------------------------------- comparisons
def test_comparisons_return_bool_tensors_without_grad():
    x = minidl.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = minidl.tensor([3.0, 2.0, 1.0])
    for result, expected in [(x < y, [True, False, False]), (x <= y, [True, True, False]),
                             (x > 2, [False, False, True]), (x >= 2.0, [False, True, True]),
                             (x == y, [False, True, False]), (x != y, [True, False, True])]:
        assert isinstance(result, minidl.Tensor)
        assert result.dtype == minidl.bool and not result.requires_grad and result.grad_fn is None
        assert result.tolist() == expected
    assert ((x > 1.5).sum()).item() == 2


# ---------------------------------------------------------------- in-place rules
def test_inplace_on_a_leaf_that_requires_grad_raises_outside_no_grad():
    w = minidl.tensor([1.0, 2.0], requires_grad=True)
    for operation in (lambda: w.add_(1), lambda: w.mul_(2), lambda: w.sub_(1), lambda: w.div_(2),
                      lambda: w.__setitem__(0, 5.0), lambda: w.clamp_(0, 1)):
        with pytest.raises(RuntimeError, match="in-place"):
            operation()
    with pytest.raises(RuntimeError, match="in-place"):
        w += 1
    assert w.tolist() == [1.0, 2.0]


def test_inplace_under_no_grad_changes_the_data_and_keeps_dtype():
    w = minidl.tensor([1.0, 2.0], requires_grad=True)
    data = w.array
    with minidl.no_grad():
        w -= 0.5 * minidl.tensor([2.0, 2.0])
        w.add_(minidl.tensor([1.0, 1.0]), alpha=-2)
        w.mul_(2)
        w[0] = 10.0
    assert w.array is data and w.dtype == minidl.float32 and w.requires_grad and w.is_leaf
    assert w.tolist() == [10.0, -2.0]


def test_inplace_on_plain_tensors():
    t = minidl.zeros(3)
    t += 1
    t *= minidl.tensor([1.0, 2.0, 3.0])
    t[1:] = minidl.tensor([5.0, 6.0])
    assert t.tolist() == [1.0, 5.0, 6.0]
    t.zero_()
    assert t.tolist() == [0.0, 0.0, 0.0]
    t.fill_(2.5)
    assert t.tolist() == [2.5, 2.5, 2.5]
    t.copy_(np.array([1.0, 2.0, 3.0]))
    assert t.tolist() == [1.0, 2.0, 3.0] and t.dtype == minidl.float32


def test_augmented_assignment_on_a_graph_tensor_is_recorded():
    """``out += identity`` in a residual block behaves like ``out = out + identity``."""
    x = minidl.tensor([1.0, 2.0], requires_grad=True)
    out = x * 3
    saved = out
    out += x
    assert out is not saved and out.tolist() == [4.0, 8.0] and saved.tolist() == [3.0, 6.0]
    out *= x
    out.sum().backward()
    assert x.grad.tolist() == [8.0 * 1.0, 8.0 * 2.0]  # d/dx (4x * x) = 8x


# ---------------------------------------------------------------- indexing
def test_indexing_forms():
    t = minidl.tensor(np.arange(24.0).reshape(2, 3, 4))
    a = np.arange(24.0).reshape(2, 3, 4)
    cases = [1, -1, (0, 2), (slice(None), 1), (Ellipsis, 2), (None, 0), (slice(None, None, 2), slice(1, None, 2)),
             (0, slice(None, None, -1)), ([1, 0],), (np.array([0, 1, 1]), np.array([2, 0, 1])),
             (a > 10,), (slice(None), a[0, :, 0] > 3)]
    for index in cases:
        np.testing.assert_array_equal(t[index].numpy(), a[index], err_msg=str(index))
    np.testing.assert_array_equal(t[minidl.tensor([1, 0])].numpy(), a[[1, 0]])
    np.testing.assert_array_equal(t[t > 10].numpy(), a[a > 10])
    np.testing.assert_array_equal(t[0, minidl.tensor(2)].numpy(), a[0, 2])
    assert [row.shape for row in t] == [(3, 4), (3, 4)]


def test_boolean_tensor_index_routes_gradients():
    x = minidl.tensor([1.0, -2.0, 3.0, -4.0], requires_grad=True)
    (x[x > 0] * 2).sum().backward()
    assert x.grad.tolist() == [2.0, 0.0, 2.0, 0.0]


def test_max_with_dim_returns_values_and_indices():
    t = minidl.tensor([[1.0, 5.0, 2.0], [7.0, 0.0, 3.0]])
    values, indices = t.max(1)
    assert values.tolist() == [5.0, 7.0] and indices.tolist() == [1, 0] and indices.dtype == minidl.int64
    result = t.min(dim=0, keepdim=True)
    assert result.values.tolist() == [[1.0, 0.0, 2.0]] and result.indices.tolist() == [[0, 1, 0]]
    assert t.max().item() == 7.0 and minidl.max(t).item() == 7.0
    assert t.argmax().item() == 3 and t.argmax(dim=1).tolist() == [1, 0]


def test_shape_methods():
    t = minidl.zeros(2, 1, 3)
    assert t.reshape(3, 2).shape == (3, 2) and t.view(-1).shape == (6,) and t.reshape((6, 1)).shape == (6, 1)
    assert t.squeeze().shape == (2, 3) and t.squeeze(1).shape == (2, 3) and t.squeeze(0).shape == (2, 1, 3)
    assert t.squeeze((0, 1)).shape == (2, 3)
    assert t.unsqueeze(-1).shape == (2, 1, 3, 1) and t.unsqueeze(0).shape == (1, 2, 1, 3)
    assert t.transpose(0, 2).shape == (3, 1, 2) and t.permute(2, 0, 1).shape == (3, 2, 1)
    assert t.flatten().shape == (6,) and t.flatten(1).shape == (2, 3)
    assert t.expand(4, 2, 5, 3).shape == (4, 2, 5, 3) and t.expand(-1, 4, -1).shape == (2, 4, 3)


# ---------------------------------------------------------------- repr
def test_repr():
    assert repr(minidl.tensor([1.0, 2.5])) == "tensor([1. , 2.5])"
    assert repr(minidl.tensor([1, 2])) == "tensor([1, 2])"
    assert "dtype=minidl.float64" in repr(minidl.tensor([1.0], dtype=minidl.float64))
    assert repr(minidl.tensor([1.0], requires_grad=True)) == "tensor([1.], requires_grad=True)"
    assert "grad_fn=<MulBackward>" in repr(minidl.tensor([1.0], requires_grad=True) * 2)


def test_format_uses_the_value_of_zero_dim_tensors():
    loss = minidl.tensor([0.123456, 1.0], requires_grad=True).sum()
    assert f"{loss:.3f}" == "1.123" and f"{minidl.tensor(7):d}" == "7"
    assert f"{minidl.tensor([1.0])}" == "tensor([1.])"


def test_to_accepts_torch_keywords_and_copy():
    t = minidl.tensor([1.0, 2.0])
    assert t.to("cpu", non_blocking=True) is t
    copied = t.to("cpu", copy=True)
    assert copied is not t and copied.array is not t.array and copied.tolist() == t.tolist()


def test_casting_to_an_integer_type_carries_no_gradient():
    w = minidl.tensor([1.5, 2.5], requires_grad=True)
    assert not w.long().requires_grad and not (w > 2).requires_grad and not w.argmax().requires_grad
    assert w.double().requires_grad


def test_like_factories():
    t = minidl.tensor([[1.0, 2.0]], dtype=minidl.float64)
    assert minidl.full_like(t, 3).tolist() == [[3.0, 3.0]] and minidl.full_like(t, 3).dtype == minidl.float64
    assert minidl.rand_like(t).shape == (1, 2) and minidl.empty_like(t).dtype == minidl.float64


def test_dim_out_of_range_raises():
    t = minidl.zeros(2, 3)
    for operation in (lambda: t.unsqueeze(3), lambda: t.unsqueeze(-4), lambda: t.sum(dim=2),
                      lambda: t.mean(dim=(0, -3)), lambda: t.squeeze(2)):
        with pytest.raises(IndexError, match="out of range"):
            operation()


def test_data_is_always_an_array_even_for_full_reductions():
    x = minidl.tensor([[1.0, 2.0], [3.0, 4.0]])
    for result in (x.sum(), x.mean(), x.var(), x[0, 1], x[0] @ x[1], x.argmax(), x.sum() > 1, x.max()):
        assert isinstance(result.array, np.ndarray) and result.shape == ()
        assert isinstance(result.numpy(), np.ndarray)
    total = x.sum()
    total += 1  # in place on a 0-d result
    assert total.item() == 11.0


def test_top5_accuracy_idiom():
    """The usual PyTorch top-k accuracy code runs unchanged."""
    logits = minidl.tensor([[0.1, 0.9, 0.0, 0.5, 0.3, 0.2], [0.8, 0.1, 0.2, 0.3, 0.4, 0.0]])
    target = minidl.tensor([3, 5])
    _, pred = logits.topk(5, 1, True, True)
    pred = pred.t()
    correct = pred.eq(target.view(1, -1).expand_as(pred))
    top1 = correct[:1].reshape(-1).float().sum(0, keepdim=True).mul_(100.0 / 2)
    top5 = correct[:5].reshape(-1).float().sum(0).item()
    assert pred[:, 0].tolist() == [1, 3, 4, 5, 0] and top1.tolist() == [0.0] and top5 == 1.0


def test_data_is_a_detached_tensor_sharing_memory_as_in_pytorch():
    p = minidl.tensor([1.0, 2.0], requires_grad=True)
    d = p.data
    assert isinstance(d, minidl.Tensor) and not d.requires_grad and d.grad_fn is None
    d.mul_(3.0)  # changes p, as p.data.mul_() does in PyTorch
    np.testing.assert_array_equal(p.array, [3.0, 6.0])
    np.testing.assert_array_equal(p.detach().data.numpy(), [3.0, 6.0])
    p.data = minidl.tensor([5.0, 7.0, 9.0])  # replaces the storage, shape included
    assert p.shape == (3,) and p.requires_grad
    with pytest.raises(TypeError, match="Tensor.data must be set to a Tensor"):
        p.data = [1.0]
