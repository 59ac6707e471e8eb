"""Side by side: a broad table of calls run through minidl and through PyTorch.

Each row is one expression ``lambda lib: ...`` written against PyTorch's API. Both libraries run it;
the results must agree in value, shape and dtype -- or, where PyTorch raises, minidl must raise an
exception of PyTorch's class (minidl's errors also derive from the class minidl raised before, see
``minidl/errors.py``). Values are compared exactly for integers and bools, to 1e-6 for floats.

Add a row when you add an op or fix a difference: it is the quickest check that ``import minidl as
torch`` behaves as PyTorch.
"""
import numpy as np
import pytest

import minidl
from tests.helpers import torch_or_skip

A = np.array([[0.5, -1.25, 2.0], [3.5, 0.0, -2.75]])      # (2, 3) float
B = np.array([[1.5, 2.0, -0.5], [0.25, -3.0, 1.0]])       # (2, 3) float
V = np.array([3.0, -1.0, 2.5, 0.0, -4.0, 1.0])            # (6,)
I = np.array([[7, -7, 0], [5, 12, -1]])                   # (2, 3) int64
D = np.array([2, -3, 4])                                  # (3,) int64 divisors
M = np.array([[True, False, True], [False, True, True]])  # (2, 3) bool
X4 = np.arange(2 * 3 * 4 * 5, dtype=float).reshape(2, 3, 4, 5) / 7 - 4


def t(lib, array, dtype=None):
    return lib.tensor(array) if dtype is None else lib.tensor(array, dtype=getattr(lib, dtype))


rows = {
    # ------------------------------------------------------------ creation and dtypes
    "tensor_float": lambda lib: lib.tensor([1.0, 2.0]),
    "tensor_int": lambda lib: lib.tensor([1, 2]),
    "tensor_bool": lambda lib: lib.tensor([True, False]),
    "tensor_nested": lambda lib: lib.tensor([[1, 2], [3, 4]], dtype=lib.float64),
    "tensor_object": lambda lib: lib.tensor(object()),
    "tensor_str": lambda lib: lib.tensor("abc"),
    "tensor_none": lambda lib: lib.tensor(None),
    "tensor_dict": lambda lib: lib.tensor({1: 2}),
    "tensor_ragged": lambda lib: lib.tensor([[1, 2], [3]]),
    "dtype_names": lambda lib: [lib.tensor([1], dtype=d) for d in (lib.int8, lib.int16, lib.short, lib.int,
                                                                    lib.long, lib.uint8, lib.half, lib.double)],
    "conversions": lambda lib: (t(lib, A).half(), t(lib, A).short(), t(lib, A).char(), t(lib, A).abs().byte(),
                                t(lib, A).long(), t(lib, I).float(), t(lib, I).is_floating_point()),
    "zeros_ones_full": lambda lib: (lib.zeros(2, 3), lib.ones((2,), dtype=lib.int64), lib.full((2,), 7)),
    "arange": lambda lib: (lib.arange(5), lib.arange(1, 2, 0.25), lib.arange(0, 10, 3, dtype=lib.float64)),
    "eye": lambda lib: lib.eye(3, 2),
    "linspace": lambda lib: lib.linspace(-1, 1, 5),
    "size_repr": lambda lib: repr(lib.zeros(2, 10).shape).replace("torch", "minidl"),
    "size_numel": lambda lib: lib.zeros(2, 5).size().numel(),
    "size_dim": lambda lib: lib.zeros(2, 5).size(-1),
    "size_dim_out_of_range": lambda lib: lib.zeros(2, 5).size(2),
    "variable": lambda lib: __import__(lib.__name__ + ".autograd", fromlist=["Variable"]).Variable(lib.ones(2)) * 2,
    "utils_data": lambda lib: __import__(lib.__name__ + ".utils.data", fromlist=["DataLoader"]).DataLoader.__name__,
    # ------------------------------------------------------------ arithmetic and promotion
    "add_int_float": lambda lib: t(lib, I) + t(lib, A),
    "add_scalar_keeps_int": lambda lib: t(lib, I) + 2,
    "int_plus_float_scalar": lambda lib: t(lib, I) * 1.5,
    "int_truediv": lambda lib: t(lib, I) / 2,
    "int_floordiv": lambda lib: t(lib, I) // t(lib, D),
    "int_remainder": lambda lib: t(lib, I) % t(lib, D),
    "float_remainder": lambda lib: t(lib, A) % t(lib, B),
    "fmod": lambda lib: lib.fmod(t(lib, A), t(lib, B)),
    "div_trunc": lambda lib: lib.div(t(lib, A), t(lib, B), rounding_mode="trunc"),
    "div_floor_int": lambda lib: t(lib, I).div(t(lib, D), rounding_mode="floor"),
    "div_bad_mode": lambda lib: t(lib, A).div(t(lib, B), rounding_mode="round"),
    "rpow": lambda lib: 2 ** t(lib, A),
    "add_none": lambda lib: t(lib, A) + None,
    "add_str": lambda lib: t(lib, A) + "a",
    "broadcast_mismatch": lambda lib: t(lib, A) + t(lib, V),
    "matmul": lambda lib: t(lib, A) @ t(lib, B).T,
    "matmul_mismatch": lambda lib: t(lib, A) @ t(lib, B),
    "matmul_0d": lambda lib: lib.tensor(2.0) @ t(lib, A),
    "bool_add": lambda lib: t(lib, M) + t(lib, M),
    "bitwise_and_int": lambda lib: t(lib, I) & 6,
    "bitwise_or_bool": lambda lib: t(lib, M) | ~t(lib, M),
    "xor_int": lambda lib: lib.bitwise_xor(t(lib, I), t(lib, D)),
    "shifts": lambda lib: (t(lib, I).abs() << 2, t(lib, I) >> 1),
    "bitwise_float": lambda lib: t(lib, A) & t(lib, B),
    "invert_float": lambda lib: ~t(lib, A),
    "shift_float": lambda lib: t(lib, A) << 1,
    "maximum": lambda lib: lib.maximum(t(lib, A), t(lib, B)),
    "minimum_int": lambda lib: lib.minimum(t(lib, I), t(lib, D)),
    "max_binary": lambda lib: lib.max(t(lib, A), t(lib, B)),
    "copysign": lambda lib: lib.copysign(t(lib, A), t(lib, B)),
    "atan2": lambda lib: lib.atan2(t(lib, A), t(lib, B)),
    "isclose": lambda lib: lib.isclose(t(lib, A), t(lib, A) + 1e-9),
    "allclose": lambda lib: lib.allclose(t(lib, A), t(lib, A) * (1 + 1e-7)),
    "where_tensors": lambda lib: lib.where(t(lib, M), t(lib, A), t(lib, B)),
    "where_scalars": lambda lib: lib.where(t(lib, M), 4, 2),
    "where_float_scalars": lambda lib: lib.where(t(lib, M), 4.0, 2),
    "where_scalar_other": lambda lib: lib.where(t(lib, M), t(lib, A), 0.0),
    "where_condition_only": lambda lib: lib.where(t(lib, M)),
    # ------------------------------------------------------------ elementwise math
    "sigmoid_int": lambda lib: t(lib, I).sigmoid(),
    "exp_int": lambda lib: lib.exp(t(lib, D)),
    "sqrt_int": lambda lib: t(lib, I).abs().sqrt(),
    "trig": lambda lib: (t(lib, A).sin(), t(lib, A).cos(), t(lib, A).tan(), t(lib, A).atan()),
    "inverse_trig": lambda lib: (lib.asin(t(lib, A) / 4), lib.acos(t(lib, A) / 4), lib.atanh(t(lib, A) / 4)),
    "hyperbolic": lambda lib: (lib.sinh(t(lib, A)), lib.cosh(t(lib, A)), lib.asinh(t(lib, A)), lib.acosh(t(lib, A).abs() + 1)),
    "exp_log_family": lambda lib: (t(lib, A).exp2(), t(lib, A).expm1(), t(lib, A).abs().log2(), lib.log10(t(lib, A).abs() + 1),
                                   lib.log1p(t(lib, A).abs()), lib.rsqrt(t(lib, A).abs() + 0.5)),
    "erf": lambda lib: lib.erf(t(lib, A)),
    "rounding": lambda lib: (t(lib, A).floor(), t(lib, A).ceil(), t(lib, A).round(), t(lib, A).trunc(), t(lib, A).frac()),
    "round_decimals": lambda lib: lib.round(t(lib, A) / 3, decimals=2),
    "round_int": lambda lib: t(lib, I).round(),
    "sign": lambda lib: (t(lib, A).sign(), t(lib, I).sign(), lib.sign(t(lib, M))),
    "clamp": lambda lib: (t(lib, A).clamp(-1, 1), t(lib, A).clip(min=0.0), t(lib, I).clamp(max=3)),
    "clip_none": lambda lib: t(lib, A).clip(None, None),
    "abs_neg_int": lambda lib: (t(lib, I).abs(), -t(lib, I)),
    "inplace_chain": lambda lib: t(lib, A).clone().mul_(2).add_(1).floor_().clamp_(-2, 2),
    "inplace_int_sigmoid": lambda lib: t(lib, I).sigmoid_(),
    "square_reciprocal": lambda lib: (lib.square(t(lib, A)), (t(lib, A) + 5).reciprocal()),
    # ------------------------------------------------------------ reductions
    "sum_int32": lambda lib: t(lib, I, "int32").sum(),
    "sum_bool": lambda lib: t(lib, M).sum(0),
    "sum_axis_keepdims": lambda lib: t(lib, A).sum(axis=1, keepdims=True),
    "sum_dtype": lambda lib: t(lib, I).sum(dtype=lib.float64),
    "sum_dim_out_of_range": lambda lib: t(lib, A).sum(2),
    "mean_dims": lambda lib: lib.mean(t(lib, X4), dim=(1, -1), keepdim=True),
    "min_int32_extreme": lambda lib: lib.tensor([5, -2**31, 3], dtype=lib.int32).min(),
    "min_uint8": lambda lib: lib.tensor([7, 0, 3], dtype=lib.uint8).min(),
    "min_bool": lambda lib: (t(lib, M).min(), t(lib, M).max()),
    "max_dim": lambda lib: t(lib, A).max(1),
    "min_dim_int": lambda lib: t(lib, I).min(dim=0, keepdim=True),
    "amax_amin": lambda lib: (t(lib, A).amax(0), lib.amin(t(lib, A), 1)),
    "argmax_argmin": lambda lib: (t(lib, A).argmax(), t(lib, A).argmin(1)),
    "var_std": lambda lib: (t(lib, A).var(), t(lib, A).std(1, unbiased=False), t(lib, A).var(0, correction=0)),
    "var_correction_n": lambda lib: t(lib, V).var(correction=6),
    "std_correction_too_big": lambda lib: t(lib, V).std(correction=9),
    "var_one_element": lambda lib: lib.tensor([2.0]).var(),
    "std_mean_var_mean": lambda lib: (lib.std_mean(t(lib, A), dim=1), lib.var_mean(t(lib, A), 0)),
    "prod": lambda lib: (t(lib, A).prod(), t(lib, A).prod(1), t(lib, I).prod(0)),
    "logsumexp": lambda lib: (lib.logsumexp(t(lib, A), 1), t(lib, A).logsumexp(dim=(0, 1))),
    "any_all": lambda lib: (t(lib, A).any(), t(lib, M).all(1), lib.any(t(lib, I) > 10)),
    "count_nonzero": lambda lib: lib.count_nonzero(t(lib, I)),
    "cumsum_cumprod": lambda lib: (t(lib, A).cumsum(1), t(lib, A).cumprod(0), t(lib, I, "int32").cumsum(0)),
    "cummax_cummin": lambda lib: (t(lib, V).cummax(0), t(lib, V).cummin(0)),
    "topk": lambda lib: t(lib, V).topk(3),
    "topk_smallest": lambda lib: t(lib, A).topk(2, dim=1, largest=False),
    "topk_too_many": lambda lib: t(lib, V).topk(7),
    "sort": lambda lib: (t(lib, V).sort(), t(lib, A).sort(0, descending=True)),
    "argsort": lambda lib: t(lib, V).argsort(descending=True),
    # ------------------------------------------------------------ shapes
    "reshape_two_unknown": lambda lib: t(lib, A).reshape(-1, -1),
    "reshape_bad_size": lambda lib: t(lib, A).reshape(4, 2),
    "view_dtype": lambda lib: t(lib, A, "float32").view(lib.int32),
    "view_dtype_narrower": lambda lib: t(lib, A, "float32").view(lib.int16).shape,
    "view_as": lambda lib: t(lib, V).view_as(t(lib, A)),
    "flatten": lambda lib: (t(lib, X4).flatten(1).shape, t(lib, X4).flatten(1, 2).shape, lib.flatten(t(lib, X4), 2).shape),
    "flatten_backwards": lambda lib: t(lib, X4).flatten(2, 1),
    "flatten_0d": lambda lib: lib.tensor(3.0).flatten(),
    "permute": lambda lib: t(lib, X4).permute(3, 0, 2, 1).shape,
    "permute_wrong_length": lambda lib: t(lib, X4).permute(0, 1),
    "permute_duplicate": lambda lib: t(lib, X4).permute(0, 1, 1, 2),
    "permute_out_of_range": lambda lib: t(lib, X4).permute(0, 1, 2, 7),
    "transpose_out_of_range": lambda lib: t(lib, A).transpose(0, 2),
    "squeeze_unsqueeze": lambda lib: (t(lib, A).unsqueeze(1).shape, t(lib, A)[None].squeeze(0).shape),
    "unsqueeze_out_of_range": lambda lib: t(lib, A).unsqueeze(4),
    "expand_mismatch": lambda lib: t(lib, A).expand(4, 4),
    "cat": lambda lib: lib.cat([t(lib, A), t(lib, B)], dim=-1),
    "cat_dim_out_of_range": lambda lib: lib.cat([t(lib, A), t(lib, B)], dim=5),
    "cat_size_mismatch": lambda lib: lib.cat([t(lib, A), t(lib, V)[None]], dim=0),
    "cat_empty": lambda lib: lib.cat([]),
    "stack_mismatch": lambda lib: lib.stack([t(lib, A), t(lib, V)]),
    "split_chunk": lambda lib: (t(lib, V).split(4), t(lib, V).chunk(4), t(lib, A).split([1, 2], dim=1)),
    "unbind_narrow_select": lambda lib: (t(lib, A).unbind(1), t(lib, A).narrow(1, 1, 2), t(lib, A).select(0, -1)),
    "flip_roll": lambda lib: (t(lib, A).flip(0, 1), t(lib, A).roll(1, 1), lib.roll(t(lib, A), -2)),
    "tril_triu": lambda lib: (t(lib, X4).tril(1), t(lib, A).triu(-1)),
    "repeat_tile": lambda lib: (t(lib, A).repeat(2, 1, 2), lib.tile(t(lib, V), (2,))),
    "unfold": lambda lib: t(lib, V).unfold(0, 3, 2),
    "diagonal": lambda lib: (t(lib, X4).diagonal(1, 2, 3), lib.diag(t(lib, V)), t(lib, A).diag(1)),
    "meshgrid": lambda lib: lib.meshgrid(t(lib, V)[:2], t(lib, A)[0], indexing="xy"),
    "meshgrid_dtypes": lambda lib: lib.meshgrid(t(lib, V)[:2], t(lib, D), indexing="xy"),
    "einsum": lambda lib: (lib.einsum("ij,kj->ik", t(lib, A), t(lib, B)), lib.einsum("ii->i", t(lib, A)[:, :2])),
    # ------------------------------------------------------------ indexing
    "index_int_tensor": lambda lib: t(lib, X4)[1, :, 1:4:2, lib.tensor([[0, 1, 2], [1, 1, 0]]), 0:2],
    "index_0d_tensor": lambda lib: t(lib, X4)[lib.tensor(1), :, lib.tensor([0, 2])],
    "index_two_arrays_apart": lambda lib: t(lib, X4)[:, lib.tensor([0, 1]), :, lib.tensor([1, 3])],
    "index_mask": lambda lib: t(lib, A)[t(lib, M)],
    "index_list": lambda lib: t(lib, A)[[1, 0, 1]],
    "index_none_ellipsis": lambda lib: t(lib, X4)[None, ..., 1].shape,
    "index_out_of_range": lambda lib: t(lib, A)[2],
    "index_tensor_out_of_range": lambda lib: t(lib, A)[lib.tensor([0, 5])],
    "too_many_indices": lambda lib: t(lib, A)[0, 0, 0],
    "gather": lambda lib: t(lib, A).gather(1, lib.tensor([[2, 0], [1, 1]])),
    "gather_out_of_range": lambda lib: t(lib, A).gather(1, lib.tensor([[3]])),
    "scatter": lambda lib: t(lib, A).scatter(1, lib.tensor([[2], [0]]), t(lib, B)),
    "scatter_value": lambda lib: t(lib, I).scatter(0, lib.tensor([[1, 0, 1]]), -5),
    "scatter_add": lambda lib: lib.zeros(2, 3, dtype=lib.float64).scatter_add(1, lib.tensor([[0, 0, 2], [1, 1, 1]]), t(lib, A)),
    "scatter_reduce": lambda lib: t(lib, V).scatter_reduce(0, lib.tensor([0, 0, 5, 5, 1, 1]), t(lib, V) * 2, "amax",
                                                           include_self=False),
    "index_select": lambda lib: t(lib, A).index_select(1, lib.tensor([2, 2, 0])),
    "take_along_dim": lambda lib: lib.take_along_dim(t(lib, A), t(lib, A).argsort(1), dim=1),
    "masked_fill": lambda lib: t(lib, A).masked_fill(t(lib, M), -1.0),
    "masked_fill_broadcast": lambda lib: t(lib, A).masked_fill(t(lib, M)[0], 9.0),
    "inplace_indexing": lambda lib: t(lib, A).masked_fill_(t(lib, M), 0.5).scatter_(1, lib.tensor([[0], [2]]), -1.0)
    .tril_().index_put_((lib.tensor([1]), lib.tensor([0])), lib.tensor(8.0, dtype=lib.float64), accumulate=True),
    "masked_select": lambda lib: lib.masked_select(t(lib, A), t(lib, M)),
    "nonzero": lambda lib: (t(lib, I).nonzero(), t(lib, I).nonzero(as_tuple=True)),
    "one_hot": lambda lib: lib.nn.functional.one_hot(lib.tensor([2, 0, 1]), 4),
    # ------------------------------------------------------------ nn.functional pieces of the issue
    "softmax_0d": lambda lib: lib.tensor(2.0).softmax(0),
    "log_softmax_0d": lambda lib: lib.nn.functional.log_softmax(lib.tensor(2.0), -1),
    "softmax_dim_out_of_range": lambda lib: t(lib, A).softmax(2),
    "adaptive_pool_nan_local": lambda lib: lib.nn.functional.adaptive_avg_pool2d(
        lib.tensor(np.where(np.arange(35).reshape(1, 1, 5, 7) == 0, np.nan, 1.0)), (3, 3)),
    "adaptive_pool_int": lambda lib: lib.nn.functional.adaptive_avg_pool2d(lib.ones(1, 1, 4, 4, dtype=lib.int64), 3),
    "conv_too_small": lambda lib: lib.nn.functional.conv2d(lib.zeros(1, 1, 2, 2), lib.zeros(1, 1, 3, 3)),
    "conv_channels": lambda lib: lib.nn.functional.conv2d(lib.zeros(1, 2, 5, 5), lib.zeros(1, 1, 3, 3)),
    "conv_dtype": lambda lib: lib.nn.functional.conv2d(lib.zeros(1, 1, 5, 5), lib.zeros(1, 1, 3, 3, dtype=lib.float64)),
    "linear_mismatch": lambda lib: lib.nn.functional.linear(lib.zeros(2, 3), lib.zeros(4, 5)),
    "max_pool_too_small": lambda lib: lib.nn.functional.max_pool2d(lib.zeros(1, 1, 2, 2), 3),
    "item_of_many": lambda lib: lib.zeros(2).item(),
    "requires_grad_int": lambda lib: lib.tensor([1]).requires_grad_(),
}


def _flatten(result):
    """A list of (kind, value) leaves: tensors as (dtype name, array), Sizes as tuples, other values as they are."""
    if type(result).__name__ == "Size":
        return [("size", tuple(result))]
    if hasattr(result, "detach"):
        return [("tensor", (str(result.dtype).replace("torch.", ""), result.detach().cpu().numpy()))]
    if isinstance(result, (tuple, list)):  # also (values, indices) results
        return [leaf for item in result for leaf in _flatten(item)]
    return [("value", result)]


def _assert_same(ours, theirs, name):
    ours, theirs = _flatten(ours), _flatten(theirs)
    assert len(ours) == len(theirs), f"{name}: {len(ours)} results, PyTorch gives {len(theirs)}"
    for (kind, o), (their_kind, t) in zip(ours, theirs):
        assert kind == their_kind, f"{name}: a {kind} where PyTorch gives a {their_kind}"
        if kind != "tensor":
            assert o == t, f"{name}: {o!r} != {t!r}"
            continue
        (o_dtype, o_array), (t_dtype, t_array) = o, t
        assert o_dtype == t_dtype, f"{name}: dtype {o_dtype}, PyTorch {t_dtype}"
        assert o_array.shape == t_array.shape, f"{name}: shape {o_array.shape}, PyTorch {t_array.shape}"
        if o_array.dtype.kind == "f":
            np.testing.assert_allclose(o_array, t_array, rtol=1e-6, atol=1e-7, err_msg=name)
        else:
            np.testing.assert_array_equal(o_array, t_array, err_msg=name)


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("name", rows)
def test_same_result_or_same_error_as_torch(name):
    torch = torch_or_skip()
    try:
        expected = rows[name](torch)
    except Exception as error:  # PyTorch raises: minidl must raise the same class
        with pytest.raises(type(error)):
            rows[name](minidl)
        return
    _assert_same(rows[name](minidl), expected, name)


@pytest.mark.filterwarnings("ignore")
def test_the_table_covers_errors_and_values():
    torch = torch_or_skip()
    raising = 0
    for row in rows.values():
        try:
            row(torch)
        except Exception:
            raising += 1
    assert 30 <= raising <= len(rows) - 100  # both halves of the check are exercised
