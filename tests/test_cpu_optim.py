"""minidl/backends/cpu/optim.py's fused SGD step against optim/sgd.py's reference, to the bit.

Hypothesis draws the hyper-parameters (momentum on or off, dampening, weight decay, Nesterov,
maximize), the parameter shapes, float32 and float64 and the number of threads; a few steps of
``optimizer.step`` with the fast implementation must leave the parameters and momentum buffers with
the reference's exact bits.  The numba kernel must equal its NumPy twin, and parameters the kernel
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


def train(hyper, shapes, dtype, steps, seed, reference):
    data = np.random.default_rng(seed)
    params = [minidl.Tensor._from_array(data.standard_normal(shape).astype(dtype), requires_grad=True)
              for shape in shapes]
    optimizer = minidl.optim.SGD(params, **hyper)
    with minidl.backends.reference(reference):
        for _ in range(steps):
            for p in params:
                p.grad = minidl.Tensor._from_array(data.standard_normal(p.shape).astype(dtype))
            assert registry.choose(minidl.optim.SGD, params, optimizer.param_groups[0]) is \
                (minidl.optim.SGD if reference else cpu_optim.SGDFused)
            optimizer.step()
    buffers = [optimizer.state[p].get("momentum_buffer") for p in params]
    return [p.array for p in params], buffers


@settings(max_examples=40, deadline=None)
@given(hyper=HYPER, shapes=st.lists(st.sampled_from([(3,), (4, 5), (2, 3, 3, 3), (300_001,)]), min_size=1,
                                    max_size=3),
       dtype=st.sampled_from([np.float32, np.float64]), threads=st.sampled_from(["1", "2"]),
       seed=st.integers(0, 2**16))
def test_fused_sgd_step_equals_the_reference_bit_for_bit(hyper, shapes, dtype, threads, seed):
    hyper = legal(hyper)
    with mock.patch.dict(os.environ, MINIDL_NUM_THREADS=threads):  # 300_001 values: split across threads on 2
        fast = train(hyper, shapes, dtype, 3, seed, reference=False)
    plain = train(hyper, shapes, dtype, 3, seed, reference=True)
    for kind, (mine, theirs) in zip(("param", "momentum_buffer"), zip(fast, plain)):
        for a, b in zip(mine, theirs):
            if b is None:
                assert a is None, kind
                continue
            assert a.dtype == b.dtype == dtype
            np.testing.assert_array_equal(a.view(f"u{a.itemsize}"), b.view(f"u{b.itemsize}"), err_msg=kind)


@pytest.mark.parametrize("first_step", [True, False])
def test_the_numba_kernel_equals_its_numpy_twin(first_step):
    pytest.importorskip("numba")
    data = np.random.default_rng(0)
    kernel = cpu_optim._compile()  # numba's, even under MINIDL_DISABLE_NUMBA=1
    p, g, buf = (data.standard_normal(1000).astype(np.float32) for _ in range(3))
    p2, buf2 = p.copy(), buf.copy()
    real = np.float32
    kernel(p, g, buf, real(0.1), real(0.9), real(1 - 0.1), real(5e-4), False, True, first_step)
    cpu_optim.sgd_numpy(p2, g, buf2, 0.1, 0.9, 0.1, 5e-4, False, True, first_step)
    np.testing.assert_array_equal(p, p2)
    np.testing.assert_array_equal(buf, buf2)


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
