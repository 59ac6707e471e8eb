"""Optimizers against torch.optim, step by step, in float64: parameters and state after every step.

Each run builds the same parameters in minidl and in PyTorch, feeds both the same random
gradients for 10 steps and compares the parameters and every state entry after each step
(rtol 1e-10). Hyper-parameters are drawn by hypothesis, so the options are also checked on
values the tests did not pick by hand.
"""
import io
import json

import numpy as np
import pytest
from hypothesis import given, strategies as st

import minidl
import minidl.optim as optim
from minidl.nn.utils import clip_grad_norm_
from tests.helpers import torch_or_skip

SHAPES = [(3, 4), (4,), (2, 3, 2)]
STEPS = 10


def make_params(seed, shapes=SHAPES, dtype=np.float64):
    torch = torch_or_skip()
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(shape).astype(dtype) for shape in shapes]
    ours = [minidl.tensor(a.copy(), requires_grad=True) for a in arrays]
    theirs = [torch.nn.Parameter(torch.tensor(a.copy())) for a in arrays]
    return ours, theirs


def set_grads(ours, theirs, rng):
    torch = torch_or_skip()
    for p, q in zip(ours, theirs):
        g = rng.standard_normal(p.shape).astype(p.dtype)
        p.grad = minidl.Tensor._from_array(g.copy())
        q.grad = torch.tensor(g.copy())


def assert_same_state(ours, theirs, params, tparams, rtol, what):
    for index, (p, q) in enumerate(zip(params, tparams)):
        mine, reference = ours.state[p], theirs.state[q]
        expected_keys = {k for k, v in reference.items() if v is not None}
        assert set(mine) == expected_keys, f"{what}: param {index} state keys {set(mine)} != {expected_keys}"
        for key, value in reference.items():
            if key == "step":
                assert mine[key] == float(value), f"{what}: step {mine[key]} != {float(value)}"
            else:
                np.testing.assert_allclose(mine[key], value.detach().numpy(), rtol=rtol, atol=1e-14,
                                           err_msg=f"{what}: state {key!r} of param {index}")


def run_against_torch(ours_cls, theirs_cls, kwargs, seed=0, groups=None, steps=STEPS, rtol=1e-10,
                      dtype=np.float64):
    """Steps both optimizers ``steps`` times on identical gradients, comparing after every step."""
    params, tparams = make_params(seed, dtype=dtype)
    if groups is None:
        ours, theirs = ours_cls(params, **kwargs), theirs_cls(tparams, foreach=False, **kwargs)
    else:
        ours = ours_cls([dict(g, params=[params[i] for i in g["params"]]) for g in groups], **kwargs)
        theirs = theirs_cls([dict(g, params=[tparams[i] for i in g["params"]]) for g in groups], foreach=False,
                            **kwargs)
    rng = np.random.default_rng(seed + 1)
    for step in range(steps):
        set_grads(params, tparams, rng)
        ours.step()
        theirs.step()
        for index, (p, q) in enumerate(zip(params, tparams)):
            assert p.dtype == dtype, f"step {step}: param {index} became {p.dtype}"
            np.testing.assert_allclose(p.array, q.detach().numpy(), rtol=rtol, atol=1e-14,
                                       err_msg=f"step {step}: param {index}")
        assert_same_state(ours, theirs, params, tparams, rtol, f"step {step}")
    return ours, params


def torch_cls(name):
    return getattr(torch_or_skip().optim, name)


lrs = st.sampled_from([1e-3, 0.01, 0.1, 0.5])


@given(lr=lrs, momentum=st.sampled_from([0.0, 0.5, 0.9]), dampening=st.sampled_from([0.0, 0.3]),
       nesterov=st.booleans(), weight_decay=st.sampled_from([0.0, 5e-4, 0.1]), maximize=st.booleans())
def test_sgd_matches_torch(lr, momentum, dampening, nesterov, weight_decay, maximize):
    if nesterov and (momentum == 0 or dampening != 0):
        dampening, momentum = 0.0, 0.9
    run_against_torch(optim.SGD, torch_cls("SGD"), dict(lr=lr, momentum=momentum, dampening=dampening,
                                                         nesterov=nesterov, weight_decay=weight_decay,
                                                         maximize=maximize))


def test_sgd_first_step_uses_undampened_gradient():
    params, _ = make_params(0, shapes=[(2,)])
    p = params[0]
    before = p.array.copy()
    opt = optim.SGD(params, lr=1.0, momentum=0.9, dampening=0.5)
    p.grad = minidl.tensor(np.array([1.0, -2.0]))
    opt.step()
    np.testing.assert_allclose(opt.state[p]["momentum_buffer"], [1.0, -2.0])  # buf = grad, no (1 - dampening)
    np.testing.assert_allclose(p.array, before - [1.0, -2.0])
    opt.step()  # buf = 0.9 * buf + 0.5 * grad
    np.testing.assert_allclose(opt.state[p]["momentum_buffer"], [1.4, -2.8])


@given(lr=lrs, beta1=st.sampled_from([0.0, 0.5, 0.9]), beta2=st.sampled_from([0.9, 0.999]),
       eps=st.sampled_from([1e-8, 1e-3]), weight_decay=st.sampled_from([0.0, 0.01, 0.3]),
       amsgrad=st.booleans(), maximize=st.booleans())
def test_adam_matches_torch(lr, beta1, beta2, eps, weight_decay, amsgrad, maximize):
    run_against_torch(optim.Adam, torch_cls("Adam"), dict(lr=lr, betas=(beta1, beta2), eps=eps,
                                                           weight_decay=weight_decay, amsgrad=amsgrad,
                                                           maximize=maximize))


@given(lr=lrs, weight_decay=st.sampled_from([0.0, 0.01, 0.3]), amsgrad=st.booleans(), maximize=st.booleans())
def test_adamw_matches_torch(lr, weight_decay, amsgrad, maximize):
    run_against_torch(optim.AdamW, torch_cls("AdamW"), dict(lr=lr, weight_decay=weight_decay, amsgrad=amsgrad,
                                                             maximize=maximize))


def test_adamw_default_weight_decay_is_torchs():
    params, _ = make_params(0)
    assert optim.AdamW(params).param_groups[0]["weight_decay"] == torch_cls("AdamW")(
        [torch_or_skip().nn.Parameter(torch_or_skip().zeros(1))]).param_groups[0]["weight_decay"]


@given(lr=lrs, lr_decay=st.sampled_from([0.0, 0.1]), weight_decay=st.sampled_from([0.0, 0.05]),
       initial_accumulator_value=st.sampled_from([0.0, 0.1]), eps=st.sampled_from([1e-10, 1e-2]),
       maximize=st.booleans())
def test_adagrad_matches_torch(lr, lr_decay, weight_decay, initial_accumulator_value, eps, maximize):
    run_against_torch(optim.Adagrad, torch_cls("Adagrad"),
                      dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay, eps=eps, maximize=maximize,
                           initial_accumulator_value=initial_accumulator_value))


@given(lr=lrs, alpha=st.sampled_from([0.9, 0.99]), eps=st.sampled_from([1e-8, 1e-2]),
       weight_decay=st.sampled_from([0.0, 0.05]), momentum=st.sampled_from([0.0, 0.9]), centered=st.booleans(),
       maximize=st.booleans())
def test_rmsprop_matches_torch(lr, alpha, eps, weight_decay, momentum, centered, maximize):
    run_against_torch(optim.RMSprop, torch_cls("RMSprop"),
                      dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                           centered=centered, maximize=maximize))


GROUPS = [{"params": [0, 2], "weight_decay": 5e-4}, {"params": [1], "weight_decay": 0.0, "lr": 0.02}]


@pytest.mark.parametrize("name, kwargs", [
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True)),
    ("Adam", dict(lr=0.01, amsgrad=True)),
    ("AdamW", dict(lr=0.01)),
    ("Adagrad", dict(lr=0.1, initial_accumulator_value=0.1)),
    ("RMSprop", dict(lr=0.01, momentum=0.5, centered=True)),
])
def test_param_groups_with_their_own_lr_and_decay_match_torch(name, kwargs):
    ours, params = run_against_torch(getattr(optim, name), torch_cls(name), dict(kwargs),
                                     groups=GROUPS)
    assert ours.param_groups[1]["lr"] == 0.02 and ours.param_groups[0]["lr"] == kwargs["lr"]
    assert ours.param_groups[1]["weight_decay"] == 0.0 and ours.param_groups[0]["weight_decay"] == 5e-4


def npz_round_trip(state_dict):
    """Writes the state's arrays to .npz and the groups to JSON and reads them back, as a checkpoint does."""
    arrays = {f"{index}/{key}": value for index, state in state_dict["state"].items()
              for key, value in state.items()}
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    buffer.seek(0)
    loaded = np.load(buffer)
    state = {}
    for name in loaded.files:
        index, key = name.split("/")
        state.setdefault(int(index), {})[key] = loaded[name]
    return {"state": state, "param_groups": json.loads(json.dumps(state_dict["param_groups"]))}


@pytest.mark.parametrize("name, kwargs", [
    ("SGD", dict(lr=0.1, momentum=0.9, weight_decay=5e-4)),
    ("Adam", dict(lr=0.01, amsgrad=True)),
    ("AdamW", dict(lr=0.01)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.01)),
    ("RMSprop", dict(lr=0.01, momentum=0.5, centered=True)),
])
def test_state_dict_round_trip_resumes_identically(name, kwargs):
    cls = getattr(optim, name)
    rng_grads = np.random.default_rng(7)
    grads = [[rng_grads.standard_normal(s) for s in SHAPES] for _ in range(8)]

    def train(params, opt, steps):
        for step_grads in steps:
            for p, g in zip(params, step_grads):
                p.grad = minidl.tensor(g)
            opt.step()

    straight, _ = make_params(3)
    opt = cls([{"params": straight[:2]}, {"params": straight[2:], "lr": 0.05}], **kwargs)
    train(straight, opt, grads)

    first, _ = make_params(3)
    opt = cls([{"params": first[:2]}, {"params": first[2:], "lr": 0.05}], **kwargs)
    train(first, opt, grads[:4])
    saved = npz_round_trip(opt.state_dict())
    assert all(isinstance(v, (np.ndarray, int, float)) for s in saved["state"].values() for v in s.values())
    assert [g["params"] for g in saved["param_groups"]] == [[0, 1], [2]]

    resumed = [minidl.tensor(p.array.copy(), requires_grad=True) for p in first]
    fresh = cls([{"params": resumed[:2]}, {"params": resumed[2:], "lr": 0.7}], **kwargs)
    fresh.load_state_dict(saved)
    assert fresh.param_groups[1]["lr"] == 0.05  # hyper-parameters come from the checkpoint
    train(resumed, fresh, grads[4:])
    for a, b in zip(straight, resumed):
        np.testing.assert_array_equal(a.array, b.array)


def test_state_dict_is_a_copy_and_uses_torch_layout():
    params, tparams = make_params(0)
    opt = optim.Adam(params, lr=0.1)
    topt = torch_cls("Adam")(tparams, lr=0.1)
    set_grads(params, tparams, np.random.default_rng(0))
    opt.step()
    topt.step()
    ours, theirs = opt.state_dict(), topt.state_dict()
    assert set(ours["state"]) == set(theirs["state"]) == {0, 1, 2}
    assert set(ours["state"][0]) == set(theirs["state"][0])
    assert ours["param_groups"][0]["params"] == theirs["param_groups"][0]["params"]
    for key in ("lr", "betas", "eps", "weight_decay", "amsgrad", "maximize"):
        assert ours["param_groups"][0][key] == theirs["param_groups"][0][key]
    saved = ours["state"][0]["exp_avg"].copy()
    opt.step()
    np.testing.assert_array_equal(ours["state"][0]["exp_avg"], saved)


def test_float32_stays_float32_and_tracks_torch():
    for name, kwargs in [("SGD", dict(lr=0.1, momentum=0.9, weight_decay=1e-4)), ("Adam", dict(lr=0.01)),
                         ("AdamW", dict(lr=0.01)), ("Adagrad", dict(lr=0.1)),
                         ("RMSprop", dict(lr=0.01, centered=True, momentum=0.9))]:
        opt, params = run_against_torch(getattr(optim, name), torch_cls(name), dict(kwargs),
                                        dtype=np.float32, rtol=2e-5, steps=5)
        for state in opt.state.values():
            for key, value in state.items():
                assert key == "step" or value.dtype == np.float32, f"{name}: state {key} is {value.dtype}"


def test_zero_grad_and_closure():
    params, _ = make_params(0)
    opt = optim.SGD(params, lr=0.1)
    for p in params:
        p.grad = minidl.tensor(np.ones(p.shape))
    opt.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not p.grad.array.any() for p in params)
    opt.zero_grad()
    assert all(p.grad is None for p in params)
    before = [p.array.copy() for p in params]

    def closure():
        opt.zero_grad()
        loss = sum((p * p).sum() for p in params)
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert np.isclose(float(loss), sum(float((b * b).sum()) for b in before))
    for p, b in zip(params, before):
        np.testing.assert_allclose(p.array, b - 0.1 * 2 * b)


def test_add_param_group_fills_defaults_and_refuses_duplicates():
    params, _ = make_params(0)
    opt = optim.SGD(params[:2], lr=0.1, momentum=0.9)
    opt.add_param_group({"params": params[2], "lr": 0.01})
    assert opt.param_groups[1]["momentum"] == 0.9 and opt.param_groups[1]["lr"] == 0.01
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": [params[0]]})


@pytest.mark.parametrize("build, message", [
    (lambda p: optim.SGD(p, lr=-1.0), "lr"),
    (lambda p: optim.SGD(p, lr=0.1, nesterov=True), "Nesterov"),
    (lambda p: optim.Adam(p, betas=(1.0, 0.999)), "beta"),
    (lambda p: optim.Adagrad(p, lr_decay=-0.1), "lr_decay"),
    (lambda p: optim.RMSprop(p, alpha=-0.5), "alpha"),
    (lambda p: optim.SGD([], lr=0.1), "empty"),
])
def test_bad_hyper_parameters_are_refused(build, message):
    params, _ = make_params(0)
    with pytest.raises(ValueError, match=message):
        build(params)


def test_load_state_dict_checks_group_sizes():
    params, _ = make_params(0)
    saved = optim.SGD(params, lr=0.1).state_dict()
    with pytest.raises(ValueError, match="parameter group 0 has 3 parameters"):
        optim.SGD(params[:2], lr=0.1).load_state_dict(saved)


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, float("inf")])
@pytest.mark.parametrize("max_norm", [0.5, 1e3])
def test_clip_grad_norm_matches_torch(norm_type, max_norm):
    torch = torch_or_skip()
    params, tparams = make_params(5)
    set_grads(params, tparams, np.random.default_rng(6))
    total = clip_grad_norm_(params, max_norm, norm_type=norm_type)
    expected = torch.nn.utils.clip_grad_norm_(tparams, max_norm, norm_type=norm_type)
    np.testing.assert_allclose(float(total), float(expected), rtol=1e-12)
    for p, q in zip(params, tparams):
        np.testing.assert_allclose(p.grad.array, q.grad.numpy(), rtol=1e-12, atol=1e-15)
    if max_norm < 1:  # the clipped gradients really were scaled down to max_norm
        grads = np.concatenate([p.grad.array.ravel() for p in params])
        assert np.isclose(np.linalg.norm(grads, ord=norm_type), max_norm, rtol=1e-5)


def test_a_parameter_without_gradient_is_left_alone():
    params, _ = make_params(0)
    before = params[1].array.copy()
    opt = optim.Adam(params, lr=0.1)
    params[0].grad = minidl.tensor(np.ones(params[0].shape))
    opt.step()
    np.testing.assert_array_equal(params[1].array, before)
    assert params[1] not in opt.state or not opt.state[params[1]]
