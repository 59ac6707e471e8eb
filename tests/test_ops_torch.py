"""Every core op, forward and backward, against PyTorch CPU in float64 on hypothesis-drawn inputs.

Each case is one function ``fn(lib, *inputs)`` written once and run with ``lib = minidl`` and
``lib = torch``: the outputs must agree, and so must the input gradients after a backward pass
with the same random upstream gradient.
"""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

import minidl
from minidl.functions.shape import Pad
from tests.helpers import assert_close, torch_or_skip

RTOL, ATOL = 1e-12, 1e-13
seeds = st.integers(0, 2**32 - 1)
small_shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4)
nonempty_shapes = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4)


def values(seed, shape, low=-2.0, high=2.0):
    return np.random.default_rng(seed).uniform(low, high, size=shape)


def distinct_values(seed, shape):
    size = int(np.prod(shape))
    return np.random.default_rng(seed).permutation(np.arange(size) * 0.1 - size * 0.05).reshape(shape)


def compare_with_torch(fn, *arrays, seed=0):
    """Runs ``fn(lib, *leaves)`` in minidl and torch; compares outputs and input gradients."""
    torch = torch_or_skip()
    ours = [minidl.tensor(a, dtype=minidl.float64, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays]
    out, expected = fn(minidl, *ours), fn(torch, *theirs)
    assert out.dtype == minidl.float64
    assert_close(out, expected, rtol=RTOL, atol=ATOL, what="forward")
    upstream = np.random.default_rng(seed).standard_normal(tuple(expected.shape))
    out.backward(minidl.tensor(upstream, dtype=minidl.float64))
    expected.backward(torch.tensor(upstream))
    for i, (x, t) in enumerate(zip(ours, theirs)):
        expected_grad = t.grad if t.grad is not None else torch.zeros_like(t)
        actual_grad = x.grad if x.grad is not None else minidl.zeros(x.shape, dtype=minidl.float64)
        assert actual_grad.dtype == minidl.float64
        assert_close(actual_grad, expected_grad, rtol=RTOL, atol=ATOL, what=f"gradient of input {i}")


# ---------------------------------------------------------------- arithmetic
binary_ops = {
    "add": lambda lib, a, b: a + b,
    "sub": lambda lib, a, b: a - b,
    "mul": lambda lib, a, b: a * b,
    "div": lambda lib, a, b: a / b,
    "pow": lambda lib, a, b: a ** b,
    "chain": lambda lib, a, b: (a * 2.5 - b) / (b + 3) + 1.5 / a - (-a) ** 2,
}


@pytest.mark.parametrize("name", binary_ops)
@settings(max_examples=25)
@given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, max_side=3), seed=seeds)
def test_binary_ops(name, shapes, seed):
    a_shape, b_shape = shapes.input_shapes
    a, b = values(seed, a_shape, 0.5, 2.0), values(seed + 1, b_shape, 0.5, 2.0)
    compare_with_torch(binary_ops[name], a, b, seed=seed)


@given(shape=small_shapes, seed=seeds, exponent=st.sampled_from([2, 3, 0.5, -1.5, 0]))
def test_pow_with_constant_exponents(shape, seed, exponent):
    compare_with_torch(lambda lib, x: x ** exponent + 2 ** x, values(seed, shape, 0.5, 2.0), seed=seed)


def test_pow_at_zero_matches_torch():
    compare_with_torch(lambda lib, x: x ** 2 + x ** 0 + x ** 1, np.array([0.0, 1.0, -2.0]))
    compare_with_torch(lambda lib, x, e: x.detach() ** e, np.array([0.0, 1.5]), np.array([2.0, 3.0]))


@settings(max_examples=25)
@given(shapes=st.sampled_from([((3,), (3,)), ((3,), (3, 2)), ((2, 3), (3,)), ((2, 3), (3, 4)),
                               ((5, 2, 3), (5, 3, 4)), ((5, 2, 3), (3, 4)), ((2, 3), (4, 3, 2)),
                               ((4, 1, 2, 3), (5, 3, 2)), ((3,), (4, 3, 2)), ((4, 2, 3), (3,))]), seed=seeds)
def test_matmul(shapes, seed):
    compare_with_torch(lambda lib, a, b: a @ b, values(seed, shapes[0]), values(seed + 1, shapes[1]), seed=seed)


# ---------------------------------------------------------------- elementwise
unary_ops = {
    "neg": (lambda lib, x: -x, (-2, 2)),
    "exp": (lambda lib, x: x.exp(), (-2, 2)),
    "log": (lambda lib, x: x.log(), (0.2, 3)),
    "sqrt": (lambda lib, x: x.sqrt(), (0.2, 3)),
    "tanh": (lambda lib, x: x.tanh(), (-3, 3)),
    "sigmoid": (lambda lib, x: x.sigmoid(), (-30, 30)),
    "abs": (lambda lib, x: x.abs(), (-2, 2)),
    "clamp": (lambda lib, x: x.clamp(-0.5, 0.7), (-2, 2)),
    "clamp_min": (lambda lib, x: x.clamp(min=0.1), (-2, 2)),
    "clamp_max": (lambda lib, x: x.clamp(max=-0.1), (-2, 2)),
    "functions": (lambda lib, x: lib.exp(x) + lib.tanh(x) * lib.sigmoid(x), (-2, 2)),
}


@pytest.mark.parametrize("name", unary_ops)
@given(shape=small_shapes, seed=seeds)
def test_unary_ops(name, shape, seed):
    fn, (low, high) = unary_ops[name]
    compare_with_torch(fn, values(seed, shape, low, high), seed=seed)


def test_abs_at_zero_has_zero_gradient_like_torch():
    compare_with_torch(lambda lib, x: x.abs(), np.array([0.0, -1.0, 2.0]))


# ---------------------------------------------------------------- reductions
@st.composite
def shape_and_dim(draw):
    shape = draw(nonempty_shapes)
    ndim = len(shape)
    dim = draw(st.one_of(
        st.none(),
        st.integers(-ndim, ndim - 1),
        st.lists(st.integers(-ndim, ndim - 1), min_size=1, max_size=ndim,
                 unique_by=lambda d: d % ndim).map(tuple)))
    return shape, dim, draw(st.booleans())


reductions = {
    "sum": lambda lib, x, dim, keepdim: x.sum(dim=dim, keepdim=keepdim) if dim is not None else x.sum(),
    "mean": lambda lib, x, dim, keepdim: x.mean(dim=dim, keepdim=keepdim) if dim is not None else x.mean(),
    "var": lambda lib, x, dim, keepdim: x.var(dim=dim, keepdim=keepdim) if dim is not None else x.var(),
    "var_biased": lambda lib, x, dim, keepdim: x.var(dim=dim, unbiased=False, keepdim=keepdim),
    "std": lambda lib, x, dim, keepdim: x.std(dim=dim, keepdim=keepdim) if dim is not None else x.std(),
    "amax": lambda lib, x, dim, keepdim: x.amax(dim=dim, keepdim=keepdim) if dim is not None else x.amax(),
}


@pytest.mark.parametrize("name", reductions)
@settings(max_examples=25)
@given(case=shape_and_dim(), seed=seeds)
def test_reductions(name, case, seed):
    shape, dim, keepdim = case
    dims = range(len(shape)) if dim is None else np.atleast_1d(dim)
    if name in ("var", "std") and np.prod([shape[d] for d in dims]) < 2:
        return  # n - 1 = 0 divides by zero (nan in both)
    compare_with_torch(lambda lib, x: reductions[name](lib, x, dim, keepdim), distinct_values(seed, shape),
                       seed=seed)


@given(shape=nonempty_shapes, seed=seeds, keepdim=st.booleans(), data=st.data())
def test_max_min_along_dim(shape, seed, keepdim, data):
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    x = distinct_values(seed, shape)
    compare_with_torch(lambda lib, x: x.max(dim, keepdim=keepdim).values * x.min(dim=dim, keepdim=keepdim)[0],
                       x, seed=seed)
    torch = torch_or_skip()
    ours, theirs = minidl.tensor(x).max(dim, keepdim), torch.tensor(x).max(dim, keepdim)
    np.testing.assert_array_equal(ours.indices.numpy(), theirs.indices.numpy())
    np.testing.assert_array_equal(minidl.tensor(x).argmin(dim, keepdim).numpy(), torch.tensor(x).argmin(dim, keepdim))


@given(shape=small_shapes, seed=seeds)
def test_full_max_min(shape, seed):
    compare_with_torch(lambda lib, x: x.max() - 2 * x.min(), distinct_values(seed, shape), seed=seed)


def test_full_max_with_ties_matches_torch():
    compare_with_torch(lambda lib, x: x.max(), np.array([[1.0, 3.0], [3.0, 0.0]]))
    compare_with_torch(lambda lib, x: x.amax(dim=1), np.array([[1.0, 1.0, 0.0], [3.0, 2.0, 3.0]]))


# ---------------------------------------------------------------- shape ops
@given(shape=hnp.array_shapes(min_dims=1, max_dims=4, max_side=3), seed=seeds, data=st.data())
def test_shape_ops(shape, seed, data):
    ndim = len(shape)
    dims = tuple(data.draw(st.permutations(range(ndim))))
    d0, d1 = data.draw(st.integers(-ndim, ndim - 1)), data.draw(st.integers(-ndim, ndim - 1))
    start = data.draw(st.integers(0, ndim - 1))
    end = data.draw(st.integers(start, ndim - 1))
    new_dim = data.draw(st.integers(-ndim - 1, ndim))
    squeeze_dim = data.draw(st.integers(-ndim, ndim - 1))
    x = values(seed, shape)
    compare_with_torch(lambda lib, x: x.reshape(-1, 1).view(1, -1) * 2, x, seed=seed)
    compare_with_torch(lambda lib, x: x.permute(*dims).exp(), x, seed=seed)
    compare_with_torch(lambda lib, x: x.transpose(d0, d1) ** 2, x, seed=seed)
    compare_with_torch(lambda lib, x: x.flatten(start, end) * 3, x, seed=seed)
    compare_with_torch(lambda lib, x: x.unsqueeze(new_dim).squeeze(squeeze_dim).squeeze() * 3, x, seed=seed)


@given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=1, min_dims=1, max_dims=3, max_side=3), seed=seeds)
def test_expand(shapes, seed):
    target = shapes.result_shape
    compare_with_torch(lambda lib, x: x.expand(*target) ** 2, values(seed, shapes.input_shapes[0]), seed=seed)


@st.composite
def index_for(draw, shape):
    parts = []
    for size in shape:
        kind = draw(st.sampled_from(["int", "slice", "none"]))
        if kind == "int":
            parts.append(draw(st.integers(-size, size - 1)))
        elif kind == "slice":
            parts.append(slice(draw(st.one_of(st.none(), st.integers(-size, size))),
                               draw(st.one_of(st.none(), st.integers(-size, size))),
                               draw(st.sampled_from([None, 1, 2, 3]))))  # torch has no negative steps
        else:
            parts += [None, slice(None)]
    if parts and draw(st.booleans()):
        parts = [Ellipsis] + parts[draw(st.integers(1, len(parts))):]
    return tuple(parts)


@settings(max_examples=30)
@given(shape=nonempty_shapes, seed=seeds, data=st.data())
def test_getitem(shape, seed, data):
    x = values(seed, shape)
    index = data.draw(index_for(shape))
    compare_with_torch(lambda lib, x: x[index] * 2, x, seed=seed)
    picks = data.draw(st.lists(st.integers(-shape[0], shape[0] - 1), min_size=1, max_size=6))
    compare_with_torch(lambda lib, x: x[lib.tensor(picks)] ** 2, x, seed=seed)
    mask = values(seed + 1, shape) > 0
    compare_with_torch(lambda lib, x: x[lib.tensor(mask)].exp(), x, seed=seed)
    compare_with_torch(lambda lib, x: x[lib.tensor(mask[(slice(None),) + (0,) * (len(shape) - 1)])] * 3, x,
                       seed=seed)
    if len(shape) >= 2:
        columns = data.draw(st.lists(st.integers(0, shape[1] - 1), min_size=len(picks), max_size=len(picks)))
        compare_with_torch(lambda lib, x: x[lib.tensor(picks), lib.tensor(columns)] * 2, x, seed=seed)
        compare_with_torch(lambda lib, x: x[:, lib.tensor(columns)] * 2, x, seed=seed)


@given(sizes=st.lists(st.integers(1, 3), min_size=1, max_size=4),
       rest=hnp.array_shapes(min_dims=0, max_dims=2, max_side=3),
       seed=seeds, data=st.data())
def test_cat_and_stack(sizes, rest, seed, data):
    position = data.draw(st.integers(0, len(rest)))
    arrays = [values(seed + i, rest[:position] + (size,) + rest[position:]) for i, size in enumerate(sizes)]
    dim = data.draw(st.sampled_from([position, position - len(rest) - 1]))
    compare_with_torch(lambda lib, *xs: lib.cat(xs, dim=dim) ** 2, *arrays, seed=seed)
    same = [values(seed + i, rest) for i in range(len(sizes))]
    stack_dim = data.draw(st.integers(-len(rest) - 1, len(rest)))
    compare_with_torch(lambda lib, *xs: lib.stack(xs, dim=stack_dim) ** 2, *same, seed=seed)


@given(shape=nonempty_shapes, seed=seeds, data=st.data())
def test_pad(shape, seed, data):
    torch = torch_or_skip()
    dims = data.draw(st.integers(1, len(shape)))
    pad = tuple(data.draw(st.lists(st.integers(0, 2), min_size=2 * dims, max_size=2 * dims)))
    value = data.draw(st.sampled_from([0.0, -1.5]))

    def padded(lib, x):
        if lib is torch:
            return torch.nn.functional.pad(x, pad, value=value) ** 2
        return Pad.apply(x, pad=pad, value=value) ** 2

    compare_with_torch(padded, values(seed, shape), seed=seed)


# ---------------------------------------------------------------- a small network
@given(seed=seeds)
def test_mlp_loss_and_gradients(seed):
    def net(lib, x, w1, b1, w2):
        h = (x @ w1 + b1).tanh()
        logits = h @ w2
        shifted = logits - logits.amax(dim=1, keepdim=True)
        log_probs = shifted - shifted.exp().sum(dim=1, keepdim=True).log()
        return -log_probs[lib.arange(4), lib.tensor([0, 2, 1, 2])].mean() + 0.01 * (w1 ** 2).sum()

    compare_with_torch(net, values(seed, (4, 3)), values(seed + 1, (3, 5)), values(seed + 2, (5,)),
                       values(seed + 3, (5, 3)), seed=seed)


@given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=3, min_dims=0, max_dims=3, max_side=3), seed=seeds)
def test_where(shapes, seed):
    a_shape, b_shape, condition_shape = shapes.input_shapes
    condition = values(seed + 2, condition_shape) > 0
    compare_with_torch(lambda lib, a, b: lib.where(lib.tensor(condition), a, b) * 2,
                       values(seed, a_shape), values(seed + 1, b_shape), seed=seed)


def test_method_forms_of_operators():
    compare_with_torch(lambda lib, a, b: a.add(b, alpha=2).sub(b).mul(a).div(b.add(3)).pow(2).neg()
                       + a.matmul(b), np.array([1.0, 2.0]), np.array([0.5, -1.5]))
