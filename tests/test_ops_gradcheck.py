"""Every core op's backward against central finite differences, in float64.

Hypothesis draws the shapes (broadcasting ones included), dims and indices; the values come from a
NumPy generator seeded by hypothesis, kept away from the points where an op is not differentiable
(ties for max, 0 for abs, the edges for clamp, non-positive numbers for log/sqrt/pow).
"""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

import minidl
from minidl.functions.shape import Pad
from minidl.gradcheck import gradcheck
from tests.helpers import leaf

small_shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4)
nonempty_shapes = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4)
seeds = st.integers(0, 2**32 - 1)


def values(seed, shape, low=-2.0, high=2.0):
    return np.random.default_rng(seed).uniform(low, high, size=shape)


def distinct_values(seed, shape):
    """Values with no ties, at least 0.05 apart, in a random order."""
    size = int(np.prod(shape))
    return np.random.default_rng(seed).permutation(np.arange(size) * 0.1 - size * 0.05).reshape(shape)


def dim_strategy(ndim):
    """An int dim (possibly negative) or a tuple of distinct dims, or None."""
    if ndim == 0:
        return st.none()
    single = st.integers(-ndim, ndim - 1)
    several = st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True).map(
        lambda dims: tuple(d - ndim if i % 2 else d for i, d in enumerate(dims)))
    return st.one_of(st.none(), single, several)


# ---------------------------------------------------------------- binary arithmetic with broadcasting
binary_ops = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
    "pow": lambda a, b: a ** b,
}


@pytest.mark.parametrize("name", binary_ops)
@settings(max_examples=30)
@given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=3), seed=seeds)
def test_binary_ops_with_broadcasting(name, shapes, seed):
    a_shape, b_shape = shapes.input_shapes
    positive = name in ("div", "pow")  # keep b away from 0 for div, a > 0 for pow
    a = leaf(values(seed, a_shape, 0.5, 2.0) if positive else values(seed, a_shape))
    b = leaf(values(seed + 1, b_shape, 0.5, 2.0) if positive else values(seed + 1, b_shape))
    assert gradcheck(binary_ops[name], a, b)


@pytest.mark.parametrize("scalar", [2.5, -1.5, 3])
@given(shape=small_shapes, seed=seeds)
def test_ops_with_python_scalars(scalar, shape, seed):
    x = leaf(values(seed, shape, 0.5, 2.0))
    assert gradcheck(lambda x: (scalar - x) * scalar / x + scalar / x + x ** scalar + abs(scalar) ** x, x)


# ---------------------------------------------------------------- matmul
matmul_shape_pairs = st.sampled_from([
    ((3,), (3,)),            # dot
    ((3,), (3, 2)),          # vector @ matrix
    ((2, 3), (3,)),          # matrix @ vector
    ((2, 3), (3, 4)),
    ((5, 2, 3), (5, 3, 4)),  # batched
    ((5, 2, 3), (3, 4)),     # batch dims broadcast
    ((2, 3), (4, 3, 2)),
    ((4, 1, 2, 3), (5, 3, 2)),
    ((3,), (4, 3, 2)),
    ((4, 2, 3), (3,)),
])


@settings(max_examples=30)
@given(shapes=matmul_shape_pairs, seed=seeds)
def test_matmul(shapes, seed):
    a, b = leaf(values(seed, shapes[0])), leaf(values(seed + 1, shapes[1]))
    assert gradcheck(lambda a, b: a @ b, a, b)


@given(n=st.integers(1, 4), m=st.integers(1, 4), k=st.integers(1, 4), seed=seeds)
def test_matmul_drawn_sizes(n, m, k, seed):
    a, b = leaf(values(seed, (n, k))), leaf(values(seed + 1, (k, m)))
    assert gradcheck(lambda a, b: a @ b, a, b)


# ---------------------------------------------------------------- elementwise
unary_ops = {
    "neg": (lambda x: -x, (-2, 2)),
    "exp": (lambda x: x.exp(), (-2, 2)),
    "log": (lambda x: x.log(), (0.2, 3)),
    "sqrt": (lambda x: x.sqrt(), (0.2, 3)),
    "tanh": (lambda x: x.tanh(), (-3, 3)),
    "sigmoid": (lambda x: x.sigmoid(), (-4, 4)),
    "minidl.exp": (lambda x: minidl.exp(x), (-2, 2)),
}


@pytest.mark.parametrize("name", unary_ops)
@given(shape=small_shapes, seed=seeds)
def test_unary_ops(name, shape, seed):
    fn, (low, high) = unary_ops[name]
    assert gradcheck(fn, leaf(values(seed, shape, low, high)))


@given(shape=small_shapes, seed=seeds)
def test_abs_away_from_zero(shape, seed):
    magnitudes = values(seed, shape, 0.1, 2.0)
    signs = np.where(values(seed + 1, shape) > 0, 1.0, -1.0)
    assert gradcheck(lambda x: x.abs(), leaf(magnitudes * signs))


@given(shape=small_shapes, seed=seeds, bounds=st.sampled_from([(-0.5, 0.5), (None, 0.3), (-0.3, None)]))
def test_clamp_away_from_edges(shape, seed, bounds):
    low, high = bounds
    x = values(seed, shape, -1, 1)
    for edge in (low, high):
        if edge is not None:
            x = np.where(np.abs(x - edge) < 0.05, edge + 0.1, x)  # finite differences need a margin
    assert gradcheck(lambda x: x.clamp(low, high), leaf(x))


# ---------------------------------------------------------------- reductions
@st.composite
def shape_and_dim(draw):
    shape = draw(nonempty_shapes)
    return shape, draw(dim_strategy(len(shape))), draw(st.booleans())


@pytest.mark.parametrize("name", ["sum", "mean", "var", "var_biased", "amax"])
@settings(max_examples=30)
@given(case=shape_and_dim(), seed=seeds)
def test_reductions(name, case, seed):
    shape, dim, keepdim = case
    if name == "var":
        fn = lambda x: x.var(dim=dim, keepdim=keepdim)
        count = np.prod([shape[d] for d in np.atleast_1d(dim if dim is not None else range(len(shape)))])
        if count < 2:
            return  # n - 1 = 0: the unbiased variance is nan, checked in test_var_of_one_element_is_nan
    elif name == "var_biased":
        fn = lambda x: x.var(dim=dim, unbiased=False, keepdim=keepdim)
    else:
        fn = lambda x: getattr(x, name)(dim=dim, keepdim=keepdim)
    assert gradcheck(fn, leaf(distinct_values(seed, shape)))


def test_var_of_one_element_is_nan():
    assert np.isnan(leaf([[1.0]]).var(dim=1).item())


@given(shape=nonempty_shapes, seed=seeds, keepdim=st.booleans(), data=st.data())
def test_max_and_min_along_dim_values(shape, seed, keepdim, data):
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    x = leaf(distinct_values(seed, shape))
    assert gradcheck(lambda x: x.max(dim, keepdim=keepdim)[0], x)
    assert gradcheck(lambda x: x.min(dim=dim, keepdim=keepdim).values, x)


@given(shape=small_shapes, seed=seeds)
def test_full_max_and_min(shape, seed):
    x = leaf(distinct_values(seed, shape))
    assert gradcheck(lambda x: x.max() * x.min(), x)


def test_full_max_shares_the_gradient_between_ties():
    x = leaf([1.0, 3.0, 3.0, 2.0])
    x.max().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0, 0.5, 0.5, 0])


# ---------------------------------------------------------------- shape ops
@given(shape=nonempty_shapes, seed=seeds, data=st.data())
def test_reshape_view_flatten(shape, seed, data):
    x = leaf(values(seed, shape))
    size = int(np.prod(shape))
    start = data.draw(st.integers(-len(shape), len(shape) - 1))
    end = data.draw(st.integers(-len(shape), len(shape) - 1))
    assert gradcheck(lambda x: x.reshape(size, 1) * x.view(-1)[:, None], x)
    if start % len(shape) <= end % len(shape):
        assert gradcheck(lambda x: x.flatten(start, end) ** 2, x)


@given(shape=hnp.array_shapes(min_dims=2, max_dims=4, max_side=3), seed=seeds, data=st.data())
def test_transpose_and_permute(shape, seed, data):
    ndim = len(shape)
    dims = data.draw(st.permutations(range(ndim)))
    d0, d1 = data.draw(st.integers(-ndim, ndim - 1)), data.draw(st.integers(-ndim, ndim - 1))
    x = leaf(values(seed, shape))
    weight = minidl.tensor(values(seed + 1, shape), dtype=minidl.float64)
    assert gradcheck(lambda x: x.permute(*dims) * weight.permute(dims), x)
    assert gradcheck(lambda x: x.transpose(d0, d1).exp(), x)
    assert gradcheck(lambda x: x.T * 2, x)


@given(shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=1, max_side=2), seed=seeds, data=st.data())
def test_squeeze_unsqueeze(shape, seed, data):
    x = leaf(values(seed, shape))
    ndim = len(shape)
    assert gradcheck(lambda x: x.squeeze() * 3, x)
    if ndim:
        dim = data.draw(st.integers(-ndim, ndim - 1))
        assert gradcheck(lambda x: x.squeeze(dim) * 3, x)
    new = data.draw(st.integers(-ndim - 1, ndim))
    assert gradcheck(lambda x: x.unsqueeze(new).exp(), x)


@given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=1, min_dims=1, max_dims=3, max_side=3), seed=seeds)
def test_expand(shapes, seed):
    (shape,), target = shapes.input_shapes, shapes.result_shape
    x = leaf(values(seed, shape))
    weight = minidl.tensor(values(seed + 1, target), dtype=minidl.float64)
    assert gradcheck(lambda x: x.expand(*target) * weight, x)
    assert gradcheck(lambda x: x.expand_as(weight) * weight, x)


@st.composite
def basic_indices(draw, shape):
    """A tuple of ints, slices (with steps, negative ones too), None and at most one Ellipsis."""
    parts = []
    for size in shape:
        kind = draw(st.sampled_from(["int", "slice", "slice", "none"]))
        if kind == "int":
            parts.append(draw(st.integers(-size, size - 1)))
        elif kind == "slice":
            start = draw(st.one_of(st.none(), st.integers(-size, size)))
            stop = draw(st.one_of(st.none(), st.integers(-size, size)))
            step = draw(st.sampled_from([None, 1, 2, -1, -2]))
            parts.append(slice(start, stop, step))
        else:
            parts.append(None)
            parts.append(slice(None))
    if parts and draw(st.booleans()):
        cut = draw(st.integers(0, len(parts) - 1))
        parts = parts[:cut] + [Ellipsis]  # the Ellipsis stands for the remaining dims
    return tuple(parts)


@settings(max_examples=30)
@given(shape=nonempty_shapes, seed=seeds, data=st.data())
def test_getitem_basic(shape, seed, data):
    index = data.draw(basic_indices(shape))
    x = leaf(values(seed, shape))
    assert x[index].shape == x.array[index].shape
    assert gradcheck(lambda x: x[index] * 2, x)


@settings(max_examples=30)
@given(shape=nonempty_shapes, seed=seeds, data=st.data())
def test_getitem_integer_arrays_with_repeats(shape, seed, data):
    picks = data.draw(st.lists(st.integers(-shape[0], shape[0] - 1), min_size=1, max_size=6))
    x = leaf(values(seed, shape))
    as_tensor = minidl.tensor(picks)
    assert gradcheck(lambda x: x[as_tensor] * 2, x)
    assert gradcheck(lambda x: x[picks].exp(), x)  # a Python list of ints
    if len(shape) >= 2:
        columns = data.draw(st.lists(st.integers(0, shape[1] - 1), min_size=len(picks), max_size=len(picks)))
        assert gradcheck(lambda x: x[as_tensor, minidl.tensor(columns)] ** 2, x)
        assert gradcheck(lambda x: x[:, columns[0], ...] * 3, x)


def test_getitem_repeated_index_adds_gradients():
    x = leaf([1.0, 2.0, 3.0])
    x[minidl.tensor([0, 0, 2, 0])].sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 0.0, 1.0])


@settings(max_examples=30)
@given(shape=nonempty_shapes, seed=seeds)
def test_getitem_boolean_mask(shape, seed):
    x = leaf(values(seed, shape))
    mask = minidl.tensor(values(seed + 1, shape) > 0)
    assert gradcheck(lambda x: x[mask] * 2, x)
    assert gradcheck(lambda x: x[x.detach() > 0.5].exp(), x)
    row_mask = values(seed + 2, shape[:1]) > 0
    assert gradcheck(lambda x: x[row_mask] * 3, x)  # a NumPy mask over the first dim


@given(shapes=st.lists(st.integers(1, 3), min_size=1, max_size=4),
       rest=hnp.array_shapes(min_dims=0, max_dims=2, max_side=3),
       seed=seeds, data=st.data())
def test_cat(shapes, rest, seed, data):
    position = data.draw(st.integers(0, len(rest)))
    tensors = []
    for i, size in enumerate(shapes):
        shape = rest[:position] + (size,) + rest[position:]
        tensors.append(leaf(values(seed + i, shape)))
    dim = data.draw(st.sampled_from([position, position - len(rest) - 1]))
    assert gradcheck(lambda *xs: minidl.cat(xs, dim=dim) ** 2, *tensors)


@given(count=st.integers(1, 4), shape=small_shapes, seed=seeds, data=st.data())
def test_stack(count, shape, seed, data):
    dim = data.draw(st.integers(-len(shape) - 1, len(shape)))
    tensors = [leaf(values(seed + i, shape)) for i in range(count)]
    assert gradcheck(lambda *xs: minidl.stack(xs, dim=dim) ** 2, *tensors)


@given(shape=nonempty_shapes, seed=seeds, data=st.data())
def test_pad(shape, seed, data):
    dims = data.draw(st.integers(1, len(shape)))
    pad = data.draw(st.lists(st.integers(0, 2), min_size=2 * dims, max_size=2 * dims))
    value = data.draw(st.sampled_from([0.0, 1.5]))
    x = leaf(values(seed, shape))
    expected_shape = list(shape)
    for i in range(dims):
        expected_shape[-1 - i] += pad[2 * i] + pad[2 * i + 1]
    assert Pad.apply(x, pad=tuple(pad), value=value).shape == tuple(expected_shape)
    assert gradcheck(lambda x: Pad.apply(x, pad=tuple(pad), value=value) ** 2, x)


def test_functional_pad_is_the_core_pad():
    F = pytest.importorskip("minidl.nn.functional", exc_type=ImportError)
    x = leaf(np.arange(6.0).reshape(2, 3))
    y = F.pad(x, (1, 2, 0, 1), value=-1.0)
    np.testing.assert_array_equal(y.detach().numpy(), np.pad(np.arange(6.0).reshape(2, 3), ((0, 1), (1, 2)),
                                                                constant_values=-1.0))
    assert gradcheck(lambda x: F.pad(x, (1, 1)) ** 2, x)


# ---------------------------------------------------------------- a composite
@given(seed=seeds)
def test_composite_mlp_with_shared_subexpressions(seed):
    x = leaf(values(seed, (4, 3)))
    w = leaf(values(seed + 1, (3, 5)))
    b = leaf(values(seed + 2, (5,)))

    def net(x, w, b):
        h = (x @ w + b).tanh()
        return (h * h.sigmoid()).mean(dim=0) - h.sum(dim=1, keepdim=True).var()

    assert gradcheck(net, x, w, b)


@settings(max_examples=30)
@given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=3, min_dims=0, max_dims=3, max_side=3), seed=seeds)
def test_where(shapes, seed):
    a_shape, b_shape, condition_shape = shapes.input_shapes
    condition = minidl.tensor(values(seed + 2, condition_shape) > 0)
    a, b = leaf(values(seed, a_shape)), leaf(values(seed + 1, b_shape))
    assert gradcheck(lambda a, b: minidl.where(condition, a, b) * 2, a, b)
    assert gradcheck(lambda a: a.where(condition, 0.5) ** 2, a)


def test_gradcheck_detects_a_wrong_backward():
    class WrongSquare(minidl.autograd.Function):
        def forward(self, x):
            self.x = x
            return x * x

        def backward(self, g):
            return g * self.x  # should be 2 * g * x

    with pytest.raises(AssertionError, match="differs from finite differences"):
        gradcheck(lambda x: WrongSquare.apply(x), leaf([1.0, -2.0]))


def test_gradcheck_perturbs_non_contiguous_inputs():
    x = minidl.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    x.array = x.array.T  # a transposed view: reshape(-1) of it would be a copy
    assert not x.array.flags.c_contiguous
    assert gradcheck(lambda x: (x * x).sum(dim=0), x)


def test_gradcheck_requires_float64():
    with pytest.raises(TypeError, match="float64"):
        gradcheck(lambda x: x * 2, minidl.tensor([1.0], requires_grad=True))
