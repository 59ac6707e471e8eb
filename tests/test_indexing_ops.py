"""The shape and indexing ops of PyTorch's docs: each differentiable one against finite differences
(float64, hypothesis-drawn shapes) and against PyTorch (forward and gradients, float64); the others
(indices, masks, sorting order, creation) against PyTorch's values and dtypes.

Each case is one line ``name: fn(lib, x, case)``, where ``case`` holds what hypothesis drew for it
(a dim, an index array, sizes); the same line runs the gradient check and the parity check.
"""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

import minidl
import minidl.nn.functional as F
from minidl.gradcheck import gradcheck
from tests.helpers import leaf, torch_or_skip
from tests.test_ops_torch import compare_with_torch, distinct_values, values

seeds = st.integers(0, 2**32 - 1)
shapes = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4)
matrix_shapes = hnp.array_shapes(min_dims=2, max_dims=3, min_side=1, max_side=4)


@st.composite
def cases(draw, shape_strategy=shapes):
    """A shape, a dim, and index material drawn for it."""
    shape = draw(shape_strategy)
    ndim = len(shape)
    dim = draw(st.integers(-ndim, ndim - 1))
    size = shape[dim]
    rng = np.random.default_rng(draw(seeds))
    index_shape = tuple(draw(st.integers(1, s)) if d != dim % ndim else draw(st.integers(1, 5))
                        for d, s in enumerate(shape))
    return {
        "shape": shape, "dim": dim,
        "index": rng.integers(0, size, size=index_shape),  # gather's index: at most x's size off dim
        "picks": rng.integers(0, size, size=draw(st.integers(1, 5))),
        "mask": rng.random(shape) > 0.5,
        "shift": draw(st.integers(-5, 5)),
        "repeats": tuple(draw(st.integers(1, 3)) for _ in range(ndim + draw(st.integers(0, 1)))),
        "window": (draw(st.integers(1, size)), draw(st.integers(1, 3))),
        "diagonal": draw(st.integers(-2, 2)),
        "src_extra": draw(st.integers(0, 1)),
        "reduce": draw(st.sampled_from(["sum", "prod", "mean", "amax", "amin"])),
        "include_self": draw(st.booleans()),
        "descending": draw(st.booleans()),
        "k": draw(st.integers(0, size)),
    }


def _scatter_index(case):
    """An index whose positions are all different along dim (scatter's written value is then defined)."""
    shape, dim = case["shape"], case["dim"] % len(case["shape"])
    rng = np.random.default_rng(int(case["index"].sum()))
    count = min(case["index"].shape[dim], shape[dim])
    rows = [rng.permutation(shape[dim])[:count] for _ in range(int(np.prod(case["index"].shape)) // case["index"].shape[dim])]
    index = np.stack(rows, axis=-1).reshape((count,) + tuple(s for d, s in enumerate(case["index"].shape) if d != dim))
    return np.moveaxis(index, 0, dim)


def _src(lib, case, index):
    grown = tuple(s + case["src_extra"] for s in index.shape)  # src may be larger than index
    return lib.tensor(values(7, grown) * 3, dtype=lib.float64)


def _size_one_off_dim(case):
    """gather's index cut to size 1 in every dim but ``dim`` (it then broadcasts against x)."""
    index, dim = case["index"], case["dim"] % case["index"].ndim
    return index[tuple(slice(None) if d == dim else slice(0, 1) for d in range(index.ndim))]


def _square(x):
    """The largest square matrix made of x's first elements."""
    k = int(np.sqrt(x.numel()))
    return x.reshape(-1)[:k * k].reshape(k, k)


def _t(lib, array):
    return lib.tensor(array)


ops = {
    "gather": lambda lib, x, c: x.gather(c["dim"], _t(lib, c["index"])),
    "take_along_dim": lambda lib, x, c: lib.take_along_dim(x, _t(lib, _size_one_off_dim(c)), dim=c["dim"]),
    "scatter": lambda lib, x, c: x.scatter(c["dim"], _t(lib, _scatter_index(c)), _src(lib, c, _scatter_index(c))) * x,
    "scatter_value": lambda lib, x, c: x.scatter(c["dim"], _t(lib, _scatter_index(c)), -2.0),
    "scatter_add": lambda lib, x, c: x.scatter_add(c["dim"], _t(lib, c["index"]), _src(lib, c, c["index"])) * x,
    "scatter_reduce": lambda lib, x, c: x.scatter_reduce(c["dim"], _t(lib, c["index"]), _src(lib, c, c["index"]),
                                                         c["reduce"], include_self=c["include_self"]),
    "index_select": lambda lib, x, c: x.index_select(c["dim"], _t(lib, c["picks"])),
    "masked_fill": lambda lib, x, c: x.masked_fill(_t(lib, c["mask"]), 0.5) * x,
    "masked_fill_row": lambda lib, x, c: x.masked_fill(_t(lib, c["mask"][..., :1]), -1.0),
    "masked_select": lambda lib, x, c: x.masked_select(_t(lib, c["mask"])) * 2,
    "flip": lambda lib, x, c: x.flip(c["dim"]) * x,
    "flip_dims": lambda lib, x, c: lib.flip(x, tuple(range(x.ndim))),
    "roll": lambda lib, x, c: x.roll(c["shift"], c["dim"]) * x,
    "roll_flat": lambda lib, x, c: lib.roll(x, c["shift"]),
    "repeat": lambda lib, x, c: x.repeat(*c["repeats"]) ** 2,
    "tile": lambda lib, x, c: lib.tile(x, c["repeats"][1:]) ** 2,
    "unfold": lambda lib, x, c: x.unfold(c["dim"], *c["window"]) ** 2,
    "sort": lambda lib, x, c: x.sort(c["dim"], descending=c["descending"]).values ** 2,
    "topk": lambda lib, x, c: x.topk(c["k"], c["dim"], largest=c["descending"]).values * 3,
    "split": lambda lib, x, c: lib.cat([p * (i + 1) for i, p in enumerate(x.split(2, c["dim"]))], c["dim"]),
    "chunk": lambda lib, x, c: lib.cat([p * (i + 1) for i, p in enumerate(x.chunk(3, c["dim"]))], c["dim"]),
    "unbind": lambda lib, x, c: lib.stack([p * (i + 1) for i, p in enumerate(x.unbind(c["dim"]))]),
    "narrow": lambda lib, x, c: x.narrow(c["dim"], 0, 1) * 2,
    "index_picks": lambda lib, x, c: x[(slice(None),) * (c["dim"] % x.ndim) + (_t(lib, c["picks"]),)] ** 2,
}

matrix_ops = {
    "tril": lambda lib, x, c: x.tril(c["diagonal"]) * 2,
    "triu": lambda lib, x, c: lib.triu(x, c["diagonal"]) * 2,
    "diagonal": lambda lib, x, c: x.diagonal(c["diagonal"], -1, 0) * 2,
    "diagonal_last": lambda lib, x, c: lib.diagonal(x, offset=c["diagonal"], dim1=-2, dim2=-1) ** 2,
    "diag": lambda lib, x, c: lib.diag(x[0] if x.ndim == 3 else x, c["diagonal"]) * 2,
    "diag_1d": lambda lib, x, c: lib.diag(x.reshape(-1)[:3], c["diagonal"]) * 2,
    "einsum_matmul": lambda lib, x, c: lib.einsum("...ij,...kj->...ik", x, x * 2),
    "einsum_trace": lambda lib, x, c: lib.einsum("ii", _square(x)) + lib.einsum("ii->i", _square(x)).sum(),
    "einsum_sum_out": lambda lib, x, c: lib.einsum("ij->j", x.reshape(-1, x.shape[-1])),
    "einsum_outer": lambda lib, x, c: lib.einsum("i,j->ij", x.reshape(-1), x.reshape(-1)[:2]),
}


@pytest.mark.parametrize("name", ops)
@settings(max_examples=8)
@given(case=cases(), seed=seeds)
def test_gradcheck(name, case, seed):
    assert gradcheck(lambda x: ops[name](minidl, x, case), leaf(distinct_values(seed, case["shape"])))


@pytest.mark.parametrize("name", ops)
@settings(max_examples=8)
@given(case=cases(), seed=seeds)
def test_matches_torch(name, case, seed):
    compare_with_torch(lambda lib, x: ops[name](lib, x, case), distinct_values(seed, case["shape"]), seed=seed)


@pytest.mark.parametrize("name", matrix_ops)
@settings(max_examples=8)
@given(case=cases(matrix_shapes), seed=seeds)
def test_matrix_gradcheck(name, case, seed):
    assert gradcheck(lambda x: matrix_ops[name](minidl, x, case), leaf(values(seed, case["shape"])))


@pytest.mark.parametrize("name", matrix_ops)
@settings(max_examples=8)
@given(case=cases(matrix_shapes), seed=seeds)
def test_matrix_matches_torch(name, case, seed):
    compare_with_torch(lambda lib, x: matrix_ops[name](lib, x, case), values(seed, case["shape"]), seed=seed)


def test_scatter_reduce_every_mode_with_repeats_as_torch():
    x, src = np.array([1.0, 2.0, 3.0, 4.0]), np.array([5.0, 6.0, 2.0, 0.0, 3.0])
    for reduce in ("sum", "prod", "mean", "amax", "amin"):
        for include_self in (True, False):
            compare_with_torch(lambda lib, x, s: x.scatter_reduce(0, lib.tensor([0, 0, 2, 3, 3]), s, reduce,
                                                                  include_self=include_self), x, src)


# ---------------------------------------------------------------- PyTorch's advanced-indexing rule
@st.composite
def mixed_indices(draw):
    """x's shape and an index mixing ints, slices, None and index arrays (the case where NumPy's rule
    and PyTorch's differ: an int beside an index array)."""
    shape = draw(hnp.array_shapes(min_dims=2, max_dims=5, min_side=1, max_side=4))
    parts = []
    for size in shape:
        kind = draw(st.sampled_from(["int", "slice", "array", "array", "none"]))
        if kind == "int":
            parts.append(draw(st.integers(-size, size - 1)))
        elif kind == "slice":
            parts.append(slice(draw(st.integers(0, size)), None, draw(st.integers(1, 2))))
        elif kind == "array":
            parts.append(draw(hnp.arrays(np.int64, draw(st.sampled_from([(2,), (3,), (2, 1)])),
                                         elements=st.integers(0, size - 1))))
        else:
            parts += [None, slice(None)]
    return shape, tuple(parts)


@settings(max_examples=40)
@given(case=mixed_indices(), seed=seeds)
def test_advanced_indexing_follows_torch(case, seed):
    shape, index = case
    arrays = [p for p in index if isinstance(p, np.ndarray)]
    if arrays:  # index arrays must broadcast together
        try:
            np.broadcast_shapes(*[a.shape for a in arrays])
        except ValueError:
            return

    def fn(lib, x):
        return x[tuple(lib.tensor(p) if isinstance(p, np.ndarray) else p for p in index)] * 2

    compare_with_torch(fn, values(seed, shape), seed=seed)


def test_setitem_follows_torch():
    torch = torch_or_skip()
    for lib in (minidl, torch):
        x = lib.zeros(2, 3, 4, dtype=lib.float64)
        x[1, :, lib.tensor([0, 3])] = lib.ones(3, 2, dtype=lib.float64) * 5
        x[0, lib.tensor([2]), 1:] = 7.0
        if lib is minidl:
            ours = x.numpy()
    np.testing.assert_array_equal(ours, x.numpy())


# ---------------------------------------------------------------- values, indices and dtypes
def _same(ours, theirs):
    ours = ours if isinstance(ours, (tuple, list)) else (ours,)
    theirs = theirs if isinstance(theirs, (tuple, list)) else (theirs,)
    assert len(ours) == len(theirs)
    for o, t in zip(ours, theirs):
        assert str(o.dtype) == str(t.dtype).replace("torch.", ""), (o.dtype, t.dtype)
        np.testing.assert_allclose(o.numpy(), t.numpy(), rtol=1e-6)


x_ties = np.array([[3.0, 1.0, np.nan, 1.0, 3.0, 2.0], [0.5, 0.5, -1.0, 2.0, 2.0, 0.5]])
value_ops = {
    "sort_stable": lambda lib, x: x.sort(stable=True),
    "sort_descending_stable": lambda lib, x: lib.sort(x, dim=1, descending=True, stable=True),
    "argsort": lambda lib, x: x.argsort(dim=0, stable=True),
    "argsort_descending": lambda lib, x: lib.argsort(x, descending=True, stable=True),
    "nonzero": lambda lib, x: (x > 1).nonzero(),
    "nonzero_tuple": lambda lib, x: lib.nonzero(x > 1, as_tuple=True),
    "argwhere": lambda lib, x: lib.argwhere(x < 1),
    "where_one_arg": lambda lib, x: lib.where(x > 1),
    "one_hot": lambda lib, x: lib.nn.functional.one_hot(lib.tensor([0, 2, 1, 4])),
    "one_hot_classes": lambda lib, x: lib.nn.functional.one_hot(lib.tensor([[0], [2]]), num_classes=5),
    "eye": lambda lib, x: (lib.eye(3), lib.eye(2, 4, dtype=lib.float64), lib.eye(3, dtype=lib.int64)),
    "linspace": lambda lib, x: (lib.linspace(0, 1, 5), lib.linspace(-2, 10, 7, dtype=lib.int64),
                                lib.linspace(3, 3, 1), lib.linspace(0.5, 2.5, steps=3, dtype=lib.float64)),
    "logspace": lambda lib, x: lib.logspace(0, 2, 3),
    "meshgrid_ij": lambda lib, x: lib.meshgrid(lib.tensor([1, 2, 3]), lib.tensor([4, 5]), indexing="ij"),
    "meshgrid_xy": lambda lib, x: lib.meshgrid(lib.tensor([1.0, 2.0, 3.0]), lib.tensor([4.0, 5.0]), indexing="xy"),
    "masked_select": lambda lib, x: x.masked_select(x > 0.5),
    "gather_int": lambda lib, x: lib.tensor([[1, 2], [3, 4]]).gather(1, lib.tensor([[1, 1], [0, 1]])),
    "scatter_int": lambda lib, x: lib.tensor([1, 2, 3]).scatter(0, lib.tensor([2]), 9),
    "scatter_add_reduce": lambda lib, x: lib.zeros(3).scatter(0, lib.tensor([0, 0, 1]), lib.ones(3), reduce="add"),
    "repeat_int": lambda lib, x: lib.tensor([1, 2]).repeat(2, 2),
    "flip_int": lambda lib, x: lib.tensor([[1, 2], [3, 4]]).fliplr(),
    "tril_int": lambda lib, x: lib.ones(3, 3, dtype=lib.int64).triu(1),
    "unfold_int": lambda lib, x: lib.arange(7).unfold(0, 3, 2),
    "index_select_int": lambda lib, x: lib.arange(5).index_select(0, lib.tensor([4, 0, 4])),
    "chunk_uneven": lambda lib, x: lib.arange(5).chunk(3),
    "split_sizes": lambda lib, x: lib.arange(6).split([1, 5]),
}


@pytest.mark.filterwarnings("ignore:The reduce argument")
@pytest.mark.parametrize("name", value_ops)
def test_values_and_dtypes_match_torch(name):
    torch = torch_or_skip()
    _same(value_ops[name](minidl, minidl.tensor(x_ties)), value_ops[name](torch, torch.tensor(x_ties)))


def test_meshgrid_passes_gradients_as_torch():
    compare_with_torch(lambda lib, a, b: lib.meshgrid(a, b, indexing="ij")[0] * lib.meshgrid(a, b, indexing="ij")[1],
                       np.array([1.0, 2.0, 3.0]), np.array([-1.0, 0.5]))


def test_index_errors_as_torch():
    x = minidl.zeros(3, 4)
    with pytest.raises(RuntimeError, match="out of bounds"):
        x.gather(0, minidl.tensor([[5]]))
    with pytest.raises(IndexError):
        x.gather(0, minidl.tensor([[-1]]))  # no wrapping of negatives, as PyTorch
    with pytest.raises(RuntimeError, match="same number of dimensions"):
        x.gather(0, minidl.tensor([1]))
    with pytest.raises(RuntimeError, match="reduce argument"):
        x.scatter_reduce(0, minidl.tensor([[0]]), minidl.ones(1, 1), "max")
    with pytest.raises(RuntimeError, match="boolean masks"):
        x.masked_fill(minidl.ones(3, 4), 1.0)
    with pytest.raises(RuntimeError, match="maximum size"):
        x.unfold(1, 5, 1)
    with pytest.raises(RuntimeError, match="smaller than number of dimensions"):
        x.repeat(2)
    with pytest.raises(RuntimeError, match="at least 2 dimensions"):
        minidl.zeros(3).tril()
    with pytest.raises(RuntimeError, match="cannot be identical"):
        x.diagonal(0, 1, 1)
    with pytest.raises(RuntimeError, match="sum exactly"):
        x.split([1, 1], 0)
    with pytest.raises(RuntimeError, match="Class values|class values"):
        F.one_hot(minidl.tensor([3]), 2)
