"""minidl/backends/cpu/optim.py's fused SGD, Adam and AdamW steps against optim/'s references, to the bit.

Hypothesis draws the hyper-parameters (SGD: momentum on or off, dampening, weight decay, Nesterov,
maximize; Adam/AdamW: betas, eps, weight decay, AMSGrad, maximize), the parameter shapes, float32 and
float64 and the number of threads; a few steps of ``optimizer.step`` with the fast implementation
must leave the parameters and the optimizer's state with the reference's exact bits.  The numba kernel must equal its NumPy twin, and parameters the kernel
cannot take (a non-contiguous gradient) must run the reference.
"""
import os
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import minidl
from minidl.backends import registry
from minidl.backends.cpu import optim as cpu_optim
from minidl.optim.sgd import sgd_update

HYPER = st.fixed_dictionaries(dict(
    lr=st.sampled_from([0.1, 0.03, 1e-3]), momentum=st.sampled_from([0.0, 0.9, 0.5]),
    dampening=st.sampled_from([0.0, 0.1]), weight_decay=st.sampled_from([0.0, 5e-4, 0.01]),
    nesterov=st.booleans(), maximize=st.booleans()))


def legal(hyper):
    """Nesterov needs momentum and no dampening (SGD raises otherwise)."""
    return dict(hyper, nesterov=hyper["nesterov"] and hyper["momentum"] > 0 and hyper["dampening"] == 0)


FUSED = {minidl.optim.SGD: cpu_optim.SGDFused, minidl.optim.Adam: cpu_optim.AdamFused,
         minidl.optim.AdamW: cpu_optim.AdamWFused}
STATE = {minidl.optim.SGD: ["momentum_buffer"], minidl.optim.Adam: ["exp_avg", "exp_avg_sq", "max_exp_avg_sq"],
         minidl.optim.AdamW: ["exp_avg", "exp_avg_sq", "max_exp_avg_sq"]}


def train(kind, hyper, shapes, dtype, steps, seed, reference):
    """(params, [each state array of each param]) after ``steps`` steps of optimizer ``kind``."""
    data = np.random.default_rng(seed)
    params = [minidl.Tensor._from_array(data.standard_normal(shape).astype(dtype), requires_grad=True)
              for shape in shapes]
    optimizer = kind(params, **hyper)
    with minidl.backends.reference(reference):
        for _ in range(steps):
            for p in params:
                p.grad = minidl.Tensor._from_array(data.standard_normal(p.shape).astype(dtype))
            assert registry.choose(kind, params, optimizer.param_groups[0]) is (kind if reference else FUSED[kind])
            optimizer.step()
    states = [optimizer.state[p].get(name) for p in params for name in STATE[kind]]
    return [p.array for p in params], states


def assert_same_bits(fast, plain, dtype):
    for kind, (mine, theirs) in zip(("param", "state"), zip(fast, plain)):
        for a, b in zip(mine, theirs):
            if b is None:
                assert a is None, kind
                continue
            assert a.dtype == b.dtype == dtype
            np.testing.assert_array_equal(a.view(f"u{a.itemsize}"), b.view(f"u{b.itemsize}"), err_msg=kind)


SHAPES = st.lists(st.sampled_from([(3,), (4, 5), (2, 3, 3, 3), (300_001,)]), min_size=1, max_size=3)
ADAM_HYPER = st.fixed_dictionaries(dict(
    lr=st.sampled_from([1e-3, 0.01]), betas=st.sampled_from([(0.9, 0.999), (0.8, 0.99)]),
    eps=st.sampled_from([1e-8, 1e-7]), weight_decay=st.sampled_from([0.0, 1e-2]), amsgrad=st.booleans(),
    maximize=st.booleans()))


@settings(max_examples=30, deadline=None)
@given(kind=st.sampled_from([minidl.optim.Adam, minidl.optim.AdamW]), hyper=ADAM_HYPER, shapes=SHAPES,
       dtype=st.sampled_from([np.float32, np.float64]), threads=st.sampled_from(["1", "2"]),
       seed=st.integers(0, 2**16))
def test_fused_adam_and_adamw_steps_equal_the_reference_bit_for_bit(kind, hyper, shapes, dtype, threads, seed):
    with mock.patch.dict(os.environ, MINIDL_NUM_THREADS=threads):
        fast = train(kind, hyper, shapes, dtype, 3, seed, reference=False)
    assert_same_bits(fast, train(kind, hyper, shapes, dtype, 3, seed, reference=True), dtype)


@settings(max_examples=40, deadline=None)
@given(hyper=HYPER, shapes=SHAPES, dtype=st.sampled_from([np.float32, np.float64]),
       threads=st.sampled_from(["1", "2"]), seed=st.integers(0, 2**16))
def test_fused_sgd_step_equals_the_reference_bit_for_bit(hyper, shapes, dtype, threads, seed):
    hyper = legal(hyper)
    with mock.patch.dict(os.environ, MINIDL_NUM_THREADS=threads):  # 300_001 values: split across threads on 2
        fast = train(minidl.optim.SGD, hyper, shapes, dtype, 3, seed, reference=False)
    assert_same_bits(fast, train(minidl.optim.SGD, hyper, shapes, dtype, 3, seed, reference=True), dtype)


@pytest.mark.parametrize("first_step", [True, False])
def test_the_numba_kernel_equals_its_numpy_twin(first_step):
    pytest.importorskip("numba")
    data = np.random.default_rng(0)
    kernel = cpu_optim._compile()["sgd"]  # numba's, even under MINIDL_DISABLE_NUMBA=1
    p, g, buf = (data.standard_normal(1000).astype(np.float32) for _ in range(3))
    p2, buf2 = p.copy(), buf.copy()
    real = np.float32
    kernel(p, g, buf, real(0.1), real(0.9), real(1 - 0.1), real(5e-4), False, True, first_step)
    cpu_optim.sgd_numpy(p2, g, buf2, 0.1, 0.9, 0.1, 5e-4, False, True, first_step)
    np.testing.assert_array_equal(p, p2)
    np.testing.assert_array_equal(buf, buf2)


@pytest.mark.parametrize("amsgrad", [False, True])
def test_the_numba_adam_kernel_equals_its_numpy_twin(amsgrad):
    pytest.importorskip("numba")
    data = np.random.default_rng(2)
    p, g, m, v, vmax = (data.standard_normal(1000).astype(np.float32) for _ in range(5))
    v, vmax = v * v, vmax * vmax
    copies = [a.copy() for a in (p, m, v, vmax)]
    real, step, lr, beta1, beta2 = np.float32, 3, 0.01, 0.9, 0.999
    cpu_optim._compile()["adam"](p, g, m, v, vmax, real(1 - lr * 0.01), real(0.01), real(1 - beta1), real(beta2),
                                 real(1 - beta2), real((1 - beta2 ** step) ** 0.5), real(1e-8),
                                 real(-lr / (1 - beta1 ** step)), amsgrad, False, True)
    cpu_optim.adam_numpy(copies[0], g, copies[1], copies[2], copies[3], step, lr, beta1, beta2, 1e-8, 0.01, amsgrad,
                         False, True)
    for mine, theirs in zip((p, m, v, vmax), copies):
        np.testing.assert_array_equal(mine, theirs)


def test_a_parameter_the_kernel_cannot_take_runs_the_reference():
    param = minidl.Tensor._from_array(np.ones((4, 3), dtype=np.float32), requires_grad=True)
    param.grad = minidl.Tensor._from_array(np.ones((3, 4), dtype=np.float32).T)  # not C-contiguous
    optimizer = minidl.optim.SGD([param], lr=0.5, momentum=0.9)
    assert registry.choose(minidl.optim.SGD, [param], optimizer.param_groups[0]) is minidl.optim.SGD
    optimizer.step()
    np.testing.assert_array_equal(param.array, np.full((4, 3), 0.5, dtype=np.float32))


def test_the_twin_is_the_reference_update():
    data = np.random.default_rng(1)
    p, g = data.standard_normal(10), data.standard_normal(10)
    expected, state = p.copy(), {}
    sgd_update(expected, g, state, 0.1, 0.9, 0.0, 1e-3, True, False)
    buf = np.empty_like(p)
    cpu_optim.sgd_numpy(p, g, buf, 0.1, 0.9, 0.0, 1e-3, True, False, True)
    np.testing.assert_array_equal(p, expected)
    np.testing.assert_array_equal(buf, state["momentum_buffer"])


@pytest.mark.parametrize("kind", [minidl.optim.Adam, minidl.optim.SGD])
def test_a_nan_gradient_spreads_as_in_the_reference(kind):
    """A NaN in a gradient reaches the same parameters and state in both paths (AMSGrad's maximum included)."""
    hyper = dict(lr=0.01, amsgrad=True) if kind is minidl.optim.Adam else dict(lr=0.01, momentum=0.9)
    runs = []
    for reference in (False, True):
        param = minidl.Tensor._from_array(np.ones(4, dtype=np.float32), requires_grad=True)
        optimizer = kind([param], **hyper)
        with minidl.backends.reference(reference):
            for grad in ([1.0, np.nan, 2.0, 3.0], [1.0, 1.0, 1.0, 1.0]):
                param.grad = minidl.Tensor._from_array(np.array(grad, dtype=np.float32))
                optimizer.step()
        runs.append([param.array] + [a for a in optimizer.state[param].values() if isinstance(a, np.ndarray)])
    for mine, theirs in zip(*runs):
        np.testing.assert_array_equal(mine, theirs)  # NaN where the reference has NaN
    assert np.isnan(runs[0][0][1]) and not np.isnan(runs[0][0][0])
