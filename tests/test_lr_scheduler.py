"""Learning-rate schedulers against torch.optim.lr_scheduler, step by step.

Every scheduler runs beside PyTorch's on an optimizer with two parameter groups (lr 0.1 and
0.05); after every step the learning rates (and, where a schedule cycles it, the momentum or
Adam's beta1) must agree to rtol 1e-12.  The Keras mode of ReduceLROnPlateau is checked against
a reference written here from Keras' source, and on hand-worked cases.
"""
import json
import math

import numpy as np
import pytest
from hypothesis import given, strategies as st

import minidl
import minidl.optim as optim
from minidl.optim import lr_scheduler
from tests.helpers import torch_or_skip


def optimizers(kind="SGD"):
    """The same two-group optimizer in minidl and in PyTorch (no gradients: steps leave params alone)."""
    torch = torch_or_skip()
    ours = [minidl.tensor(np.ones(2), requires_grad=True), minidl.tensor(np.ones(3), requires_grad=True)]
    theirs = [torch.nn.Parameter(torch.ones(2, dtype=torch.float64)),
              torch.nn.Parameter(torch.ones(3, dtype=torch.float64))]
    kwargs = dict(lr=0.1, momentum=0.9) if kind == "SGD" else dict(lr=0.1)

    def groups(params):
        return [{"params": [params[0]]}, {"params": [params[1]], "lr": 0.05}]
    return getattr(optim, kind)(groups(ours), **kwargs), getattr(torch.optim, kind)(groups(theirs), **kwargs)


def momenta(optimizer):
    return [g["betas"][0] if "betas" in g else g["momentum"] for g in optimizer.param_groups]


def assert_lrs(ours, theirs, ours_opt, theirs_opt, what):
    np.testing.assert_allclose(ours.get_last_lr(), theirs.get_last_lr(), rtol=1e-12, atol=1e-15, err_msg=what)
    np.testing.assert_allclose([g["lr"] for g in ours_opt.param_groups], [g["lr"] for g in theirs_opt.param_groups],
                               rtol=1e-12, atol=1e-15, err_msg=what)
    np.testing.assert_allclose(momenta(ours_opt), momenta(theirs_opt), rtol=1e-12, err_msg=what + " (momentum)")


SCHEDULES = {
    "StepLR": lambda L, o: L.StepLR(o, step_size=3, gamma=0.5),
    "MultiStepLR": lambda L, o: L.MultiStepLR(o, milestones=[2, 5, 5, 9], gamma=0.3),
    "ExponentialLR": lambda L, o: L.ExponentialLR(o, gamma=0.93),
    "LambdaLR": lambda L, o: L.LambdaLR(o, lr_lambda=lambda epoch: 1 / (1 + 0.3 * epoch)),
    "LambdaLR per group": lambda L, o: L.LambdaLR(o, lr_lambda=[lambda e: 0.9 ** e, lambda e: 1 + e % 3]),
    "LinearLR warm-up": lambda L, o: L.LinearLR(o, start_factor=0.1, end_factor=1.0, total_iters=7),
    "LinearLR decay": lambda L, o: L.LinearLR(o, start_factor=1.0, end_factor=0.2, total_iters=10),
    "CosineAnnealingLR": lambda L, o: L.CosineAnnealingLR(o, T_max=10),
    "CosineAnnealingLR eta_min": lambda L, o: L.CosineAnnealingLR(o, T_max=7, eta_min=0.01),
    "WarmRestarts": lambda L, o: L.CosineAnnealingWarmRestarts(o, T_0=4),
    "WarmRestarts T_mult=2": lambda L, o: L.CosineAnnealingWarmRestarts(o, T_0=3, T_mult=2, eta_min=0.001),
    "OneCycleLR cos": lambda L, o: L.OneCycleLR(o, max_lr=1.0, total_steps=40),
    "OneCycleLR linear per-group": lambda L, o: L.OneCycleLR(o, max_lr=[1.0, 0.3], epochs=5, steps_per_epoch=8,
                                                             pct_start=0.25, anneal_strategy="linear",
                                                             div_factor=10.0, final_div_factor=100.0),
    "OneCycleLR three_phase": lambda L, o: L.OneCycleLR(o, max_lr=0.5, total_steps=40, three_phase=True,
                                                        base_momentum=0.8, max_momentum=0.97),
    "OneCycleLR no momentum": lambda L, o: L.OneCycleLR(o, max_lr=0.5, total_steps=40, cycle_momentum=False),
    "CyclicLR triangular": lambda L, o: L.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=4),
    "CyclicLR triangular2": lambda L, o: L.CyclicLR(o, base_lr=[0.01, 0.02], max_lr=0.1, step_size_up=3,
                                                    step_size_down=5, mode="triangular2"),
    "CyclicLR exp_range": lambda L, o: L.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=5, mode="exp_range",
                                                  gamma=0.97, base_momentum=0.7, max_momentum=0.95),
    "SequentialLR warm-up + cosine": lambda L, o: L.SequentialLR(
        o, [L.LinearLR(o, start_factor=0.1, total_iters=5), L.CosineAnnealingLR(o, T_max=30)], milestones=[5]),
    "SequentialLR three": lambda L, o: L.SequentialLR(
        o, [L.ExponentialLR(o, gamma=0.9), L.StepLR(o, step_size=2, gamma=0.5),
            L.CosineAnnealingLR(o, T_max=6, eta_min=0.001)], milestones=[4, 11]),
}
STEPS = 40
ADAM_SCHEDULES = ["OneCycleLR cos", "OneCycleLR three_phase", "CyclicLR exp_range", "CosineAnnealingLR"]


def run_both(name, kind="SGD", steps=STEPS):
    torch = torch_or_skip()
    ours_opt, theirs_opt = optimizers(kind)
    ours = SCHEDULES[name](lr_scheduler, ours_opt)
    theirs = SCHEDULES[name](torch.optim.lr_scheduler, theirs_opt)
    assert_lrs(ours, theirs, ours_opt, theirs_opt, f"{name} after construction")
    for step in range(steps):
        ours_opt.step()
        theirs_opt.step()
        ours.step()
        theirs.step()
        assert_lrs(ours, theirs, ours_opt, theirs_opt, f"{name} step {step}")
    return ours, ours_opt


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_scheduler_matches_torch(name):
    ours, opt = run_both(name)
    assert all("initial_lr" in group for group in opt.param_groups)


@pytest.mark.parametrize("name", ADAM_SCHEDULES)
def test_scheduler_with_adam_matches_torch_including_beta1(name):
    run_both(name, kind="Adam")


def test_onecycle_cycles_momentum_the_opposite_way():
    opt, _ = optimizers()
    scheduler = lr_scheduler.OneCycleLR(opt, max_lr=1.0, total_steps=20)
    seen = []
    for _ in range(19):
        opt.step()
        scheduler.step()
        seen.append((opt.param_groups[0]["lr"], opt.param_groups[0]["momentum"]))
    peak = int(np.argmax([lr for lr, _ in seen]))
    assert seen[peak][1] == pytest.approx(0.85)  # momentum at its base when the lr peaks
    assert seen[-1][1] == pytest.approx(0.95) and seen[-1][0] == pytest.approx(0.04 / 1e4)


def test_onecycle_refuses_to_step_past_total_steps():
    torch = torch_or_skip()
    ours_opt, theirs_opt = optimizers()
    ours = lr_scheduler.OneCycleLR(ours_opt, max_lr=1.0, total_steps=5)
    theirs = torch.optim.lr_scheduler.OneCycleLR(theirs_opt, max_lr=1.0, total_steps=5)
    for _ in range(5):
        ours.step()
        theirs.step()
    with pytest.raises(ValueError):
        theirs.step()
    with pytest.raises(ValueError, match="total steps is 5"):
        ours.step()


@given(T_max=st.integers(1, 12), eta_min=st.sampled_from([0.0, 0.003, 0.02]), steps=st.integers(1, 40))
def test_cosine_annealing_matches_torch_for_drawn_settings(T_max, eta_min, steps):
    torch = torch_or_skip()
    ours_opt, theirs_opt = optimizers()
    ours = lr_scheduler.CosineAnnealingLR(ours_opt, T_max=T_max, eta_min=eta_min)
    theirs = torch.optim.lr_scheduler.CosineAnnealingLR(theirs_opt, T_max=T_max, eta_min=eta_min)
    for step in range(steps):
        ours_opt.step()
        theirs_opt.step()
        ours.step()
        theirs.step()
        assert_lrs(ours, theirs, ours_opt, theirs_opt, f"T_max={T_max} step {step}")


@given(T_0=st.integers(1, 6), T_mult=st.integers(1, 3), epoch=st.floats(0, 60))
def test_warm_restarts_with_explicit_fractional_epoch_match_torch(T_0, T_mult, epoch):
    torch = torch_or_skip()
    ours_opt, theirs_opt = optimizers()
    ours = lr_scheduler.CosineAnnealingWarmRestarts(ours_opt, T_0=T_0, T_mult=T_mult, eta_min=0.001)
    theirs = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(theirs_opt, T_0=T_0, T_mult=T_mult, eta_min=0.001)
    ours.step(epoch)
    theirs.step(epoch)
    np.testing.assert_allclose(ours.get_last_lr(), theirs.get_last_lr(), rtol=1e-9, atol=1e-15)


def json_round_trip(state):
    return json.loads(json.dumps(state))


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_state_dict_round_trip_resumes_identically(name):
    straight_opt, _ = optimizers()
    straight = SCHEDULES[name](lr_scheduler, straight_opt)
    for _ in range(30):
        straight_opt.step()
        straight.step()

    first_opt, _ = optimizers()
    first = SCHEDULES[name](lr_scheduler, first_opt)
    for _ in range(13):
        first_opt.step()
        first.step()
    saved_scheduler = json_round_trip(first.state_dict())  # only plain values: no functions, no objects
    saved_optimizer = first_opt.state_dict()

    resumed_opt, _ = optimizers()
    resumed = SCHEDULES[name](lr_scheduler, resumed_opt)
    resumed_opt.load_state_dict(saved_optimizer)
    resumed.load_state_dict(saved_scheduler)
    assert resumed.get_last_lr() == first.get_last_lr()
    for _ in range(17):
        resumed_opt.step()
        resumed.step()
    assert resumed.get_last_lr() == straight.get_last_lr()
    assert momenta(resumed_opt) == momenta(straight_opt)


def test_lambda_lr_state_dict_leaves_the_functions_out():
    opt, _ = optimizers()
    scheduler = lr_scheduler.LambdaLR(opt, lambda epoch: 0.5 ** epoch)
    state = scheduler.state_dict()
    assert state["lr_lambdas"] == [None, None]
    assert not any(callable(value) for value in state.values())


@pytest.mark.parametrize("build, message", [
    (lambda o: lr_scheduler.OneCycleLR(o, max_lr=1.0, total_steps=10, anneal_strategy="cosine"), "'cos', 'linear'"),
    (lambda o: lr_scheduler.CyclicLR(o, 0.01, 0.1, mode="triangle"), "'triangular', 'triangular2', 'exp_range'"),
    (lambda o: lr_scheduler.ReduceLROnPlateau(o, mode="mn"), "'min', 'max'"),
    (lambda o: lr_scheduler.ReduceLROnPlateau(o, threshold_mode="relative"), "'rel', 'abs'"),
    (lambda o: lr_scheduler.ReduceLROnPlateau(o, keras_compatible=True, threshold_mode="rel"), "'abs'"),
    (lambda o: lr_scheduler.OneCycleLR(o, max_lr=1.0), "total_steps"),
    (lambda o: lr_scheduler.SequentialLR(o, [lr_scheduler.StepLR(o, 2)], milestones=[3]), "milestone"),
    (lambda o: lr_scheduler.CosineAnnealingWarmRestarts(o, T_0=0), "T_0"),
    (lambda o: lr_scheduler.ReduceLROnPlateau(o, factor=1.5), "Factor"),
])
def test_unknown_options_are_refused_with_the_valid_ones(build, message):
    opt, _ = optimizers()
    with pytest.raises(ValueError, match=message):
        build(opt)


# ----------------------------------------------------------------------------- ReduceLROnPlateau

def plateau_metrics(seed, n=80):
    """A loss that falls, then sits on a noisy plateau, then falls a little again."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    trend = np.where(t < 20, 2.0 - 0.05 * t, 1.0) - np.where(t > 55, 0.004 * (t - 55), 0.0)
    return list(trend + 0.01 * rng.standard_normal(n))


TORCH_PLATEAU_SETTINGS = [
    dict(),
    dict(patience=3, factor=0.5),
    dict(patience=2, factor=0.5, cooldown=3, min_lr=[1e-3, 4e-3]),
    dict(patience=1, threshold=0.01, threshold_mode="abs", min_lr=0.02),
    dict(mode="max", patience=2, factor=0.3, cooldown=1),
    dict(mode="max", patience=0, threshold=1e-3, threshold_mode="abs", eps=1e-3),
]


@pytest.mark.parametrize("settings", TORCH_PLATEAU_SETTINGS)
@pytest.mark.parametrize("seed", [0, 1])
def test_reduce_on_plateau_matches_torch(settings, seed):
    torch = torch_or_skip()
    ours_opt, theirs_opt = optimizers()
    ours = lr_scheduler.ReduceLROnPlateau(ours_opt, **settings)
    theirs = torch.optim.lr_scheduler.ReduceLROnPlateau(theirs_opt, **settings)
    sign = -1 if settings.get("mode") == "max" else 1
    reductions = 0
    for epoch, metric in enumerate(plateau_metrics(seed)):
        before = ours.get_last_lr()
        ours.step(sign * metric)
        theirs.step(sign * metric)
        reductions += ours.get_last_lr() != before
        assert_lrs(ours, theirs, ours_opt, theirs_opt, f"epoch {epoch}")
        assert ours.num_bad_epochs == theirs.num_bad_epochs and ours.cooldown_counter == theirs.cooldown_counter
    assert reductions > 0  # the sequence really exercises a reduction


def test_torch_mode_needs_patience_plus_one_bad_epochs():
    opt, _ = optimizers()
    scheduler = lr_scheduler.ReduceLROnPlateau(opt, patience=2)
    lrs = []
    for metric in [1.0, 1.0, 1.0, 1.0]:
        scheduler.step(metric)
        lrs.append(scheduler.get_last_lr()[0])
    assert lrs == [0.1, 0.1, 0.1, pytest.approx(0.01)]


class KerasReference:
    """Keras' ReduceLROnPlateau.on_epoch_end (keras/src/callbacks/reduce_lr_on_plateau.py), one lr, mode min/max."""

    def __init__(self, lr, mode="min", factor=0.1, patience=10, min_delta=1e-4, cooldown=0, min_lr=0.0):
        self.lr, self.factor, self.patience, self.cooldown, self.min_lr = lr, factor, patience, cooldown, min_lr
        if mode == "min":
            self.monitor_op, self.best = (lambda a, b: a < b - min_delta), math.inf
        else:
            self.monitor_op, self.best = (lambda a, b: a > b + min_delta), -math.inf
        self.wait = self.cooldown_counter = 0

    def on_epoch_end(self, current):
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self.monitor_op(current, self.best):
            self.best, self.wait = current, 0
        elif not self.cooldown_counter > 0:
            self.wait += 1
            if self.wait >= self.patience:
                if np.float32(self.lr) > np.float32(self.min_lr):
                    self.lr = max(self.lr * self.factor, self.min_lr)
                    self.cooldown_counter, self.wait = self.cooldown, 0


def keras_scheduler(lr=0.1, **settings):
    params = [minidl.tensor(np.ones(2), requires_grad=True)]
    opt = optim.Adam(params, lr=lr)
    return opt, lr_scheduler.ReduceLROnPlateau(opt, keras_compatible=True, **settings)


@given(patience=st.integers(0, 5), factor=st.sampled_from([0.1, 0.5]), cooldown=st.integers(0, 3),
       min_delta=st.sampled_from([0.0, 1e-4, 0.005]), min_lr=st.sampled_from([0.0, 1e-3, 0.004]),
       mode=st.sampled_from(["min", "max"]), seed=st.integers(0, 3))
def test_keras_mode_follows_keras_rule(patience, factor, cooldown, min_delta, min_lr, mode, seed):
    opt, ours = keras_scheduler(mode=mode, factor=factor, patience=patience, threshold=min_delta,
                                cooldown=cooldown, min_lr=min_lr)
    reference = KerasReference(0.1, mode, factor, patience, min_delta, cooldown, min_lr)
    sign = -1 if mode == "max" else 1
    for epoch, metric in enumerate(plateau_metrics(seed, n=60)):
        ours.step(sign * metric)
        reference.on_epoch_end(sign * metric)
        assert opt.param_groups[0]["lr"] == reference.lr, f"epoch {epoch}"
        assert ours.num_bad_epochs == reference.wait and ours.cooldown_counter == reference.cooldown_counter


def keras_lrs(metrics, **settings):
    opt, scheduler = keras_scheduler(**settings)
    lrs = []
    for metric in metrics:
        scheduler.step(metric)
        lrs.append(opt.param_groups[0]["lr"])
    return lrs


def test_keras_mode_reduces_after_exactly_patience_bad_epochs():
    # epoch 1 sets best; epochs 2 and 3 are the two bad epochs; the lr drops at the end of epoch 3
    assert keras_lrs([1.0, 1.0, 1.0], patience=2) == [0.1, 0.1, pytest.approx(0.01)]
    # an improvement in between resets the count
    assert keras_lrs([1.0, 1.0, 0.5, 0.6, 0.6], patience=2) == [0.1, 0.1, 0.1, 0.1, pytest.approx(0.01)]


def test_keras_mode_min_delta_is_absolute():
    # 999.95 is an improvement on 1000 by more than 1e-4 in absolute terms (Keras), though not by 1e-4
    # relative (PyTorch's default), so Keras never reduces here while PyTorch's rule does.
    metrics = [1000.0, 999.95, 999.9, 999.85]
    assert keras_lrs(metrics, patience=1, threshold=1e-4) == [0.1] * 4
    opt, _ = optimizers()
    torch_rule = lr_scheduler.ReduceLROnPlateau(opt, patience=1, threshold=1e-4)
    for metric in metrics:
        torch_rule.step(metric)
    assert torch_rule.get_last_lr()[0] < 0.1
    # and an improvement smaller than min_delta is a bad epoch
    assert keras_lrs([1.0, 0.99], patience=1, threshold=0.05) == [0.1, pytest.approx(0.01)]


def test_keras_mode_floors_at_min_lr_and_cools_down():
    lrs = keras_lrs([1.0] * 8, factor=0.1, patience=1, min_lr=3e-3)
    assert lrs == [0.1, pytest.approx(0.01), 3e-3, 3e-3, 3e-3, 3e-3, 3e-3, 3e-3]
    # Keras' cooldown: the counter is decremented *before* the check, so with cooldown=2 only the first
    # epoch after a reduction is skipped; the second one (counter back at 0) already counts as bad.
    lrs = keras_lrs([1.0] * 7, factor=0.5, patience=1, cooldown=2)
    assert lrs == pytest.approx([0.1, 0.05, 0.05, 0.025, 0.025, 0.0125, 0.0125])
    lrs = keras_lrs([1.0] * 7, factor=0.5, patience=1, cooldown=3)
    assert lrs == pytest.approx([0.1, 0.05, 0.05, 0.05, 0.025, 0.025, 0.025])


def test_e4_recipe_keras_reduce_on_plateau():
    """E4: Adam, ReduceLROnPlateau(factor 0.1, patience 10, min_lr 1e-4) on val loss, in Keras' semantics."""
    metrics = [1.0 - 0.01 * epoch for epoch in range(5)] + [0.96] * 40
    lrs = keras_lrs(metrics, lr=1e-3, factor=0.1, patience=10, min_lr=1e-4)
    assert lrs[13] == 1e-3 and lrs[14] == pytest.approx(1e-4)  # 10 bad epochs: epochs 5..14 (0-based)
    assert lrs[-1] == 1e-4


def test_reduce_on_plateau_state_dict_round_trip():
    metrics = plateau_metrics(3)
    for keras in (False, True):
        straight_opt, _ = optimizers()
        straight = lr_scheduler.ReduceLROnPlateau(straight_opt, patience=2, cooldown=1, keras_compatible=keras)
        for metric in metrics:
            straight.step(metric)
        first_opt, _ = optimizers()
        first = lr_scheduler.ReduceLROnPlateau(first_opt, patience=2, cooldown=1, keras_compatible=keras)
        for metric in metrics[:30]:
            first.step(metric)
        resumed_opt, _ = optimizers()
        resumed = lr_scheduler.ReduceLROnPlateau(resumed_opt, keras_compatible=not keras)
        resumed_opt.load_state_dict(first_opt.state_dict())
        resumed.load_state_dict(json_round_trip(first.state_dict()))
        for metric in metrics[30:]:
            resumed.step(metric)
        assert resumed.get_last_lr() == straight.get_last_lr() and resumed.best == straight.best
