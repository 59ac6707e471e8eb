"""The math ops of PyTorch's docs: every differentiable one against finite differences (float64,
hypothesis-drawn shapes) and against PyTorch (forward and gradients, float64); the others (rounding,
bitwise, comparisons, integer division) against PyTorch's values and dtypes.

Each case is one line ``name: (fn(lib, *inputs), (low, high))``, run with ``lib = minidl`` for the
gradient check and with both libraries for the parity check. The ranges keep inputs inside each
op's domain and away from the points where it is not differentiable.
"""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

import minidl
from minidl.gradcheck import gradcheck
from tests.helpers import leaf, torch_or_skip
from tests.test_ops_torch import compare_with_torch, distinct_values, values

seeds = st.integers(0, 2**32 - 1)
small_shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4)
nonempty_shapes = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4)
broadcast_pairs = hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=3)


def away_from_integers(x, margin=0.1):
    """x moved off the integers (the jumps of floor, fmod, ...) so finite differences see a flat or linear piece."""
    fraction = x - np.floor(x)
    return np.where(fraction < margin, x + margin, np.where(fraction > 1 - margin, x - margin, x))


unary = {
    "sin": (lambda lib, x: x.sin(), (-3, 3)),
    "cos": (lambda lib, x: lib.cos(x), (-3, 3)),
    "tan": (lambda lib, x: x.tan(), (-1.2, 1.2)),
    "asin": (lambda lib, x: x.asin(), (-0.9, 0.9)),
    "acos": (lambda lib, x: lib.acos(x), (-0.9, 0.9)),
    "atan": (lambda lib, x: x.atan(), (-3, 3)),
    "sinh": (lambda lib, x: x.sinh(), (-2, 2)),
    "cosh": (lambda lib, x: lib.cosh(x), (-2, 2)),
    "asinh": (lambda lib, x: x.asinh(), (-3, 3)),
    "acosh": (lambda lib, x: x.acosh(), (1.2, 4)),
    "atanh": (lambda lib, x: lib.atanh(x), (-0.9, 0.9)),
    "exp2": (lambda lib, x: x.exp2(), (-2, 2)),
    "expm1": (lambda lib, x: lib.expm1(x), (-2, 2)),
    "log2": (lambda lib, x: x.log2(), (0.2, 3)),
    "log10": (lambda lib, x: lib.log10(x), (0.2, 3)),
    "log1p": (lambda lib, x: x.log1p(), (-0.5, 3)),
    "rsqrt": (lambda lib, x: x.rsqrt(), (0.2, 3)),
    "erf": (lambda lib, x: lib.erf(x), (-2.5, 2.5)),
    "frac": (lambda lib, x: x.frac(), (-3, 3)),
    "square": (lambda lib, x: lib.square(x), (-2, 2)),
    "reciprocal": (lambda lib, x: x.reciprocal(), (0.3, 2)),
    "floor": (lambda lib, x: x.floor() + x, (-3, 3)),  # + x: a nonzero gradient alongside the zero one
    "ceil": (lambda lib, x: lib.ceil(x) * x, (-3, 3)),
    "round": (lambda lib, x: x.round() + x, (-3, 3)),
    "round_decimals": (lambda lib, x: x.round(decimals=1) + x, (-3, 3)),
    "trunc": (lambda lib, x: lib.trunc(x) * x, (-3, 3)),
    "sign": (lambda lib, x: x.sign() * x, (-3, 3)),
}

binary = {
    "maximum": (lambda lib, a, b: lib.maximum(a, b), (-2, 2)),
    "minimum": (lambda lib, a, b: a.minimum(b), (-2, 2)),
    "max_binary": (lambda lib, a, b: lib.max(a, b), (-2, 2)),
    "fmod": (lambda lib, a, b: lib.fmod(a, b), (0.5, 3)),
    "remainder": (lambda lib, a, b: a.remainder(b), (0.5, 3)),
    "mod_operator": (lambda lib, a, b: a % (-b), (0.5, 3)),
    "copysign": (lambda lib, a, b: lib.copysign(a, b), (-2, 2)),
    "atan2": (lambda lib, a, b: lib.atan2(a, b), (-2, 2)),
}


def unary_input(name, seed, shape):
    low, high = unary[name][1]
    x = values(seed, shape, low, high)
    if name.startswith(("floor", "ceil", "round", "trunc", "frac")):
        x = away_from_integers(2 * x) / 2  # also off the halves, where round jumps
    if name == "sign":
        x = np.where(np.abs(x) < 0.1, 0.5, x)
    return x


def binary_inputs(name, seed, shapes):
    low, high = binary[name][1]
    a, b = values(seed, shapes[0], low, high), values(seed + 1, shapes[1], low, high)
    if name in ("maximum", "minimum", "max_binary"):  # a is 0 or 0.05 mod 0.1, b 0.025 or 0.075: never equal
        a, b = distinct_values(seed, shapes[0]), distinct_values(seed + 1, shapes[1]) + 0.025
    if name in ("fmod", "remainder", "mod_operator"):
        # a = odd/16 and b = odd/4, so a / b = odd / (4 * odd) is never within 1/52 of an integer (a jump)
        a = np.round(values(seed, shapes[0], -4, 4) * 8) / 8 + 1 / 16
        b = np.round(b * 2) / 2 + 0.25
    if name == "copysign":
        a, b = np.where(np.abs(a) < 0.1, 0.5, a), np.where(np.abs(b) < 0.1, -0.5, b)
    return a, b


# ---------------------------------------------------------------- finite differences
@pytest.mark.parametrize("name", unary)
@settings(max_examples=8)
@given(shape=small_shapes, seed=seeds)
def test_unary_gradcheck(name, shape, seed):
    assert gradcheck(lambda x: unary[name][0](minidl, x), leaf(unary_input(name, seed, shape)))


@pytest.mark.parametrize("name", binary)
@settings(max_examples=8)
@given(shapes=broadcast_pairs, seed=seeds)
def test_binary_gradcheck(name, shapes, seed):
    a, b = binary_inputs(name, seed, shapes.input_shapes)
    assert gradcheck(lambda a, b: binary[name][0](minidl, a, b), leaf(a), leaf(b))


# ---------------------------------------------------------------- PyTorch parity
@pytest.mark.parametrize("name", unary)
@settings(max_examples=8)
@given(shape=small_shapes, seed=seeds)
def test_unary_matches_torch(name, shape, seed):
    compare_with_torch(unary[name][0], unary_input(name, seed, shape), seed=seed)


@pytest.mark.parametrize("name", binary)
@settings(max_examples=8)
@given(shapes=broadcast_pairs, seed=seeds)
def test_binary_matches_torch(name, shapes, seed):
    compare_with_torch(binary[name][0], *binary_inputs(name, seed, shapes.input_shapes), seed=seed)


def test_maximum_splits_the_gradient_at_ties_as_torch():
    compare_with_torch(lambda lib, a, b: lib.maximum(a, b) + lib.minimum(a, b) * 2,
                       np.array([1.0, 2.0, 3.0]), np.array([1.0, 1.0, 4.0]))


def test_copysign_at_zero_as_torch():
    compare_with_torch(lambda lib, a, b: lib.copysign(a, b), np.array([0.0, -1.0, 2.0]), np.array([-1.0, 1.0, -0.0]))


# ---------------------------------------------------------------- reductions and scans
@st.composite
def shape_and_dim(draw, shapes=nonempty_shapes):
    shape = draw(shapes)
    return shape, draw(st.integers(-len(shape), len(shape) - 1)), draw(st.booleans())


reductions = {
    "prod": lambda lib, x, dim, keepdim: x.prod(dim, keepdim=keepdim),
    "prod_all": lambda lib, x, dim, keepdim: lib.prod(x),
    "logsumexp": lambda lib, x, dim, keepdim: x.logsumexp(dim, keepdim=keepdim),
    "logsumexp_dims": lambda lib, x, dim, keepdim: lib.logsumexp(x, dim=(dim, 0) if dim % x.ndim else 0),
    "amin": lambda lib, x, dim, keepdim: x.amin(dim=dim, keepdim=keepdim),
    "cumsum": lambda lib, x, dim, keepdim: x.cumsum(dim),
    "cumprod": lambda lib, x, dim, keepdim: lib.cumprod(x, dim=dim),
    "cummax": lambda lib, x, dim, keepdim: x.cummax(dim).values,
    "cummin": lambda lib, x, dim, keepdim: lib.cummin(x, dim)[0],
    "std_mean": lambda lib, x, dim, keepdim: lib.std_mean(x, dim=dim, keepdim=keepdim)[0] * 2
    + lib.std_mean(x, dim=dim, keepdim=keepdim)[1],
    "var_mean": lambda lib, x, dim, keepdim: lib.var_mean(x, dim, unbiased=False, keepdim=keepdim)[0]
    - lib.var_mean(x, dim, unbiased=False, keepdim=keepdim)[1],
    "sum_axis_keepdims": lambda lib, x, dim, keepdim: x.sum(axis=dim, keepdims=keepdim),
}


def reduction_input(name, seed, shape, dim):
    x = distinct_values(seed, shape)  # no ties: cummax/amin are differentiable
    if name.startswith(("std", "var")) and shape[dim] < 2:
        x = None
    return x


@pytest.mark.parametrize("name", reductions)
@settings(max_examples=8)
@given(case=shape_and_dim(), seed=seeds)
def test_reduction_gradcheck(name, case, seed):
    shape, dim, keepdim = case
    x = reduction_input(name, seed, shape, dim)
    if x is not None:
        assert gradcheck(lambda x: reductions[name](minidl, x, dim, keepdim), leaf(x))


@pytest.mark.parametrize("name", reductions)
@settings(max_examples=8)
@given(case=shape_and_dim(), seed=seeds)
def test_reduction_matches_torch(name, case, seed):
    shape, dim, keepdim = case
    x = reduction_input(name, seed, shape, dim)
    if x is not None:
        compare_with_torch(lambda lib, x: reductions[name](lib, x, dim, keepdim), x, seed=seed)


@pytest.mark.parametrize("fn", [lambda lib, x: x.prod(), lambda lib, x: x.prod(1), lambda lib, x: x.cumprod(1)])
def test_prod_and_cumprod_gradients_with_zeros_as_torch(fn):
    x = np.array([[2.0, 0.0, 3.0, 0.0, 5.0], [1.5, 0.0, 2.0, 4.0, -1.0], [1.0, 2.0, 3.0, 4.0, 5.0]])
    compare_with_torch(fn, x)
    compare_with_torch(fn, np.where(x == 0, 0.5, x))  # and without a zero in the row that had one


def test_cummax_indices_and_ties_as_torch():
    torch = torch_or_skip()
    x = np.array([[1.0, 1.0, 0.0, 1.0, 3.0, 3.0], [2.0, np.nan, 3.0, np.nan, 0.0, 1.0]])
    for op in ("cummax", "cummin"):
        ours, theirs = getattr(minidl.tensor(x), op)(1), getattr(torch.tensor(x), op)(1)
        np.testing.assert_array_equal(ours.values.numpy(), theirs.values.numpy())
        np.testing.assert_array_equal(ours.indices.numpy(), theirs.indices.numpy())


def test_logsumexp_of_infinities_as_torch():
    torch = torch_or_skip()
    x = np.array([[-np.inf, -np.inf], [np.inf, 1.0], [1000.0, 1000.0]])
    np.testing.assert_array_equal(minidl.tensor(x).logsumexp(1).numpy(), torch.tensor(x).logsumexp(1).numpy())


# ---------------------------------------------------------------- no gradient: values and dtypes
def _both(fn, *arrays):
    torch = torch_or_skip()
    ours = fn(minidl, *[minidl.tensor(a) for a in arrays])
    theirs = fn(torch, *[torch.tensor(a) for a in arrays])
    ours, theirs = (ours if isinstance(ours, tuple) else (ours,)), (theirs if isinstance(theirs, tuple) else (theirs,))
    for o, t in zip(ours, theirs):
        if isinstance(t, bool):
            assert o == t
            continue
        assert str(o.dtype) == str(t.dtype).replace("torch.", ""), (o.dtype, t.dtype)
        if o.dtype.kind == "f":  # float32 transcendental functions may differ in the last bit
            np.testing.assert_allclose(o.numpy(), t.numpy(), rtol=1e-6)
        else:
            np.testing.assert_array_equal(o.numpy(), t.numpy())


integers = np.array([[7, -7, 0, 5], [-3, 12, 9, -1]])
divisors = np.array([2, -3, 4, 5])
flags = np.array([[True, False, True, True], [False, False, True, False]])
integer_ops = {
    "floor_divide": lambda lib, a, b: a // b,
    "div_floor": lambda lib, a, b: lib.div(a, b, rounding_mode="floor"),
    "div_trunc": lambda lib, a, b: a.div(b, rounding_mode="trunc"),
    "remainder": lambda lib, a, b: a % b,
    "fmod": lambda lib, a, b: lib.fmod(a, b),
    "scalar_remainder": lambda lib, a, b: a % 3,
    "rfloordiv": lambda lib, a, b: 100 // b,
    "and": lambda lib, a, b: a & b,
    "or": lambda lib, a, b: lib.bitwise_or(a, b),
    "xor": lambda lib, a, b: a ^ 6,
    "not": lambda lib, a, b: ~a,
    "left_shift": lambda lib, a, b: a.abs() << 2,
    "right_shift": lambda lib, a, b: lib.bitwise_right_shift(a, 1),
    "sign": lambda lib, a, b: a.sign(),
    "floor_of_int": lambda lib, a, b: a.floor(),
    "maximum": lambda lib, a, b: lib.maximum(a, b),
    "prod": lambda lib, a, b: a.prod(1),
    "cumsum": lambda lib, a, b: a.cumsum(0),
    "cumprod": lambda lib, a, b: a.cumprod(dim=1),
    "cummax": lambda lib, a, b: a.cummax(1),
    "isclose": lambda lib, a, b: lib.isclose(a, b * 0 + 7),
    "any": lambda lib, a, b: a.any(1),
    "all": lambda lib, a, b: lib.all(a),
    "count_nonzero": lambda lib, a, b: lib.count_nonzero(a, dim=0),
    "equal": lambda lib, a, b: lib.equal(a, a),
    "int_sigmoid": lambda lib, a, b: a.sigmoid(),
    "int_sin": lambda lib, a, b: lib.sin(a),
}


@pytest.mark.parametrize("name", integer_ops)
def test_integer_ops_match_torch(name):
    _both(integer_ops[name], integers, divisors)


bool_ops = {
    "and": lambda lib, a: a & a.flip(1),
    "or": lambda lib, a: a | True,
    "xor": lambda lib, a: lib.logical_xor(a, a.flip(0)),
    "not": lambda lib, a: ~a,
    "logical_not": lambda lib, a: lib.logical_not(a),
    "any_all": lambda lib, a: (a.any(0), a.all(1)),
    "sum": lambda lib, a: a.sum(1),
    "cumsum": lambda lib, a: a.cumsum(1),
    "min_max": lambda lib, a: (a.min(), a.max()),
}


@pytest.mark.parametrize("name", bool_ops)
def test_bool_ops_match_torch(name):
    _both(bool_ops[name], flags)


def test_float_division_with_rounding_modes_match_torch():
    a, b = np.array([-3.5, 3.5, 7.0, -7.25]), np.array([2.0, -2.0, 2.0, 0.5])
    for mode in ("floor", "trunc"):
        compare_with_torch(lambda lib, a, b: lib.div(a, b, rounding_mode=mode) + a, a, b)
    torch = torch_or_skip()  # // has no derivative in PyTorch: values only
    np.testing.assert_array_equal((minidl.tensor(a) // minidl.tensor(b)).numpy(), (torch.tensor(a) // torch.tensor(b)).numpy())


def test_bitwise_ops_refuse_floats_as_torch():
    with pytest.raises(NotImplementedError, match="bitwise_and"):
        minidl.ones(2) & minidl.ones(2)
    with pytest.raises(TypeError, match="invert|bitwise_not"):
        ~minidl.ones(2)
    with pytest.raises(RuntimeError, match="left_shift"):
        minidl.ones(2) << 1


def test_integer_division_by_zero_raises():
    with pytest.raises(ZeroDivisionError):
        minidl.tensor([1]) // minidl.tensor([0])
    with pytest.raises(ZeroDivisionError):
        minidl.tensor([1]) % 0


@pytest.mark.parametrize("name", ["sin_", "floor_", "clip_", "exp_", "pow_", "fmod_", "sigmoid_", "cumsum_"])
def test_inplace_variants_write_the_result(name):
    args = {"clip_": (-0.5, 0.5), "pow_": (2,), "fmod_": (0.7,), "cumsum_": (0,)}.get(name, ())
    x = minidl.tensor(values(0, (3, 4)))
    expected = getattr(x, name[:-1])(*args)
    assert getattr(x, name)(*args) is x
    np.testing.assert_array_equal(x.numpy(), expected.numpy())


def test_inplace_variant_refuses_a_result_it_cannot_hold():
    with pytest.raises(RuntimeError, match="can't be cast"):
        minidl.tensor([1, 2]).sigmoid_()


def test_random_fills_draw_from_minidls_generator():
    minidl.manual_seed(3)
    first = minidl.empty(1000).bernoulli_(0.3).numpy().copy()
    minidl.manual_seed(3)
    assert np.array_equal(first, minidl.empty(1000).bernoulli_(0.3).numpy())
    assert set(np.unique(first)) == {0.0, 1.0} and 0.2 < first.mean() < 0.4
    probabilities = minidl.tensor([0.0, 1.0, 0.0, 1.0])
    assert minidl.bernoulli(probabilities).tolist() == [0.0, 1.0, 0.0, 1.0]
    x = minidl.empty(2000, dtype=minidl.float64).normal_(1.0, 2.0).numpy()
    assert abs(x.mean() - 1.0) < 0.2 and abs(x.std() - 2.0) < 0.2
    u = minidl.empty(2000).uniform_(-1.0, 3.0).numpy()
    assert u.min() >= -1.0 and u.max() < 3.0 and abs(u.mean() - 1.0) < 0.2
