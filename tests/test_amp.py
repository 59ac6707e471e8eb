"""minidl.amp on the CPU: bf16 rounding, autocast state and GEMMs, GradScaler against PyTorch."""
import numpy as np
import pytest

import minidl
from minidl import amp
from tests.helpers import torch_or_skip


def _special_floats():
    values = [0.0, -0.0, 1.0, 1 + 2**-8, 1 + 3 * 2**-8, 1 + 2**-8 + 2**-20, -(1 + 2**-8), 3.3895e38, 3.4e38,
              np.inf, -np.inf, 1e-40, -1e-45, 65504.0, 2.0**-126]
    return np.array(values, dtype=np.float32)


def test_round_to_bfloat16_matches_torch_casts(rng):
    torch = torch_or_skip()
    x = np.concatenate([_special_floats(), (rng.standard_normal(5000) * 10.0 ** rng.integers(-30, 30, 5000))
                        .astype(np.float32)])
    ours = amp.round_to_bfloat16(x)
    theirs = torch.from_numpy(x).bfloat16().float().numpy()
    assert ours.dtype == np.float32
    np.testing.assert_array_equal(ours.view(np.uint32), theirs.view(np.uint32))


def test_round_to_bfloat16_keeps_nan_and_ties_to_even():
    rounded = amp.round_to_bfloat16(np.array([np.nan, 1 + 2**-8, 1 + 3 * 2**-8], dtype=np.float32))
    assert np.isnan(rounded[0])
    assert rounded[1] == 1.0 and rounded[2] == 1 + 2**-6  # both ties: to the even neighbour


def test_autocast_state_nests_and_restores():
    assert amp.autocast_dtype() is None
    with amp.autocast(dtype="bfloat16"):
        assert amp.autocast_dtype() == "bfloat16"
        with amp.autocast(enabled=False):
            assert amp.autocast_dtype() is None
        with amp.autocast("cuda", dtype=np.float16):
            assert amp.autocast_dtype() == "float16"
        assert amp.autocast_dtype() == "bfloat16"
    assert amp.autocast_dtype() is None
    with amp.autocast("cpu"):
        assert amp.autocast_dtype() == "bfloat16"  # PyTorch's default for the CPU
    assert minidl.amp is amp


def test_autocast_works_as_decorator_and_rejects_unknown_dtypes():
    @amp.autocast(dtype=amp.bfloat16)
    def inside():
        return amp.autocast_dtype()

    assert inside() == "bfloat16" and amp.autocast_dtype() is None
    for wrong in ("float8", np.float32, 5):
        with pytest.raises(ValueError, match="valid choices are 'bfloat16' and 'float16'"):
            amp.autocast(dtype=wrong)


@pytest.mark.parametrize("compute_dtype, rounding", [("bfloat16", "bfloat16"), ("float16", "float16")])
def test_low_precision_matmul_is_rounded_inputs_with_float32_accumulation(rng, compute_dtype, rounding):
    torch = torch_or_skip()
    a = rng.standard_normal((37, 70)).astype(np.float32)
    b = rng.standard_normal((70, 19)).astype(np.float32)
    ours = amp.matmul(a, b, compute_dtype)
    torch_dtype = torch.bfloat16 if rounding == "bfloat16" else torch.float16
    a16, b16 = (torch.from_numpy(v).to(torch_dtype).double() for v in (a, b))
    exact = (a16 @ b16).numpy()  # products of 16-bit inputs, summed exactly
    assert ours.dtype == np.float32
    np.testing.assert_allclose(ours, exact, rtol=1e-5, atol=1e-5)
    # and the documented distance from the float32 product
    magnitude = np.abs(a) @ np.abs(b)
    bound = 2 * (2.0**-9 if compute_dtype == "bfloat16" else 2.0**-12) * magnitude + 1e-5
    assert np.all(np.abs(ours - a @ b) <= bound)
    assert not np.array_equal(ours, a @ b)  # it really ran in low precision


def test_matmul_without_autocast_or_in_float64_is_plain():
    a = np.linspace(0, 1, 12).reshape(3, 4)
    b = np.linspace(-1, 1, 8).reshape(4, 2)
    np.testing.assert_array_equal(amp.matmul(a, b, "bfloat16"), a @ b)  # float64 is never cast
    np.testing.assert_array_equal(amp.matmul(a.astype(np.float32), b.astype(np.float32), None),
                                  a.astype(np.float32) @ b.astype(np.float32))


def test_set_tf32_records_the_mode_without_importing_cupy():
    import sys
    had_cupy = "cupy" in sys.modules
    try:
        amp.set_tf32(True)
        assert amp.tf32_enabled()
        import os
        assert os.environ["CUPY_TF32"] == "1"
    finally:
        amp.set_tf32(False)
    assert not amp.tf32_enabled()
    assert ("cupy" in sys.modules) == had_cupy


class _Optimizer:
    """The part of an optimizer GradScaler uses: param_groups and step()."""

    def __init__(self, params):
        self.param_groups = [{"params": params}]
        self.steps = 0

    def step(self):
        self.steps += 1


def _set_grads(params, grads):
    for p, g in zip(params, grads):
        p.grad = minidl.Tensor._from_array(g.copy())


def test_grad_scaler_follows_torch_through_overflows_and_growth(rng):
    torch = torch_or_skip()
    ours = amp.GradScaler(init_scale=1024.0, growth_interval=3)
    theirs = torch.amp.GradScaler("cpu", init_scale=1024.0, growth_interval=3)
    params = [minidl.zeros(4), minidl.zeros(2, 3)]
    torch_params = [torch.zeros(4, requires_grad=True), torch.zeros(2, 3, requires_grad=True)]
    optimizer = _Optimizer(params)
    torch_optimizer = torch.optim.SGD(torch_params, lr=1.0)
    overflow_steps = {1, 2, 7}
    for step in range(12):
        grads = [rng.standard_normal(p.shape).astype(np.float32) * 1000 for p in params]
        if step in overflow_steps:
            grads[step % 2].reshape(-1)[0] = np.inf if step != 2 else np.nan
        _set_grads(params, grads)
        for p, g in zip(torch_params, grads):
            p.grad = torch.from_numpy(g.copy())
        before = [p.detach().clone() for p in torch_params]
        steps_before = optimizer.steps
        loss = float(rng.standard_normal())
        scaled = ours.scale(minidl.tensor(loss)).item()
        assert scaled == theirs.scale(torch.tensor(loss)).item()
        ours.unscale_(optimizer)
        theirs.unscale_(torch_optimizer)
        for p, tp in zip(params, torch_params):  # gradients unscaled identically
            np.testing.assert_array_equal(p.grad.array, tp.grad.numpy())
        ours.step(optimizer)
        theirs.step(torch_optimizer)
        torch_stepped = any(not torch.equal(b, p.detach()) for b, p in zip(before, torch_params))
        assert (optimizer.steps > steps_before) == torch_stepped == (step not in overflow_steps)
        ours.update()
        theirs.update()
        assert ours.get_scale() == theirs.get_scale(), f"step {step}"
    assert ours.state_dict()["_growth_tracker"] == theirs.state_dict()["_growth_tracker"]


def test_grad_scaler_scale_update_rules_and_misuse():
    scaler = amp.GradScaler(init_scale=8.0, growth_interval=2)
    loss = minidl.tensor(3.0)
    assert scaler.scale(loss).item() == 24.0
    param = minidl.zeros(1)
    optimizer = _Optimizer([param])
    for expected_scale, grad in [(8.0, 1.0), (16.0, 1.0), (8.0, np.inf), (8.0, 2.0), (16.0, 2.0)]:
        _set_grads([param], [np.array([grad], dtype=np.float32)])
        scaler.step(optimizer)
        with pytest.raises(RuntimeError, match="already been called"):
            scaler.step(optimizer)
        scaler.update()
        assert scaler.get_scale() == expected_scale
    assert optimizer.steps == 4
    _set_grads([param], [np.array([1.0], dtype=np.float32)])
    scaler.unscale_(optimizer)
    with pytest.raises(RuntimeError, match="unscale_"):
        scaler.unscale_(optimizer)
    restored = amp.GradScaler()
    restored.load_state_dict(scaler.state_dict())
    assert restored.get_scale() == scaler.get_scale()
    disabled = amp.GradScaler(enabled=False)
    assert disabled.scale(loss) is loss and disabled.get_scale() == 1.0


def test_conv2d_under_bf16_autocast_multiplies_bf16_rounded_operands():
    """Inside autocast, conv2d equals a float32 conv of the bf16-rounded input and weight (float32 sums)."""
    import minidl.nn.functional as F
    from minidl import amp
    rng = np.random.default_rng(0)
    x = minidl.tensor(rng.standard_normal((2, 3, 9, 9)).astype(np.float32), requires_grad=True)
    w = minidl.tensor(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), requires_grad=True)
    with amp.autocast(dtype="bfloat16"):
        y = F.conv2d(x, w, padding=1)
    rounded = F.conv2d(minidl.tensor(amp.round_to_bfloat16(x.array)), minidl.tensor(amp.round_to_bfloat16(w.array)),
                       padding=1)
    exact = F.conv2d(x.detach(), w.detach(), padding=1)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.detach().numpy(), rounded.numpy(), rtol=1e-5, atol=1e-5)
    assert np.abs(y.detach().numpy() - exact.numpy()).max() > 1e-3  # bf16 really was used
    y.sum().backward()
    assert x.grad.dtype == np.float32 and w.grad.dtype == np.float32
