"""Resuming a run: check a checkpoint against the trainer *before* anything is loaded.

A resume either loads the whole checkpoint or changes nothing. ``check_checkpoint`` lists
every way a checkpoint cannot belong to this trainer (missing entries, wrong types, another
model or optimizer, state of the wrong shape, non-finite numbers) and raises one
``CheckpointError`` naming them all; the trainer then loads, and if loading still fails,
restores the state it had (``snapshot``/``restore``).

A run may be *extended*: ``--epochs 1`` then ``--epochs 2 --resume``. Its scheduler was
built for the new horizon (``CosineAnnealingLR(T_max=2)``) but the checkpoint holds the old
one (``T_max=1``), under which epoch 2 would run at lr 0. ``schedule_changes`` finds such
differences; the trainer keeps the new horizon, takes the step counters from the checkpoint
and sets the learning rate the new schedule gives at that step (its closed form), and says
so. A scheduler with no closed form (``ReduceLROnPlateau``'s lr is history, not a formula)
is not extended: its state is loaded as saved.
"""
import copy
import math
import numbers

import numpy as np

from .. import random as minidl_random
from .checkpoint import CheckpointError

REQUIRED = ("model", "optimizer", "scheduler", "epoch", "rng", "history", "best_val_top1", "best_val_loss",
            "epochs_without_improvement")

# What fixes a schedule's shape, per scheduler class (the rest of its state is counters).
HORIZON_KEYS = {
    "CosineAnnealingLR": ("T_max", "eta_min"),
    "OneCycleLR": ("total_steps", "_schedule_phases", "anneal_strategy"),
    "MultiStepLR": ("milestones", "gamma"),
    "StepLR": ("step_size", "gamma"),
    "ExponentialLR": ("gamma",),
    "LinearLR": ("start_factor", "end_factor", "total_iters"),
    "CosineAnnealingWarmRestarts": ("T_0", "T_mult", "eta_min"),
    "CyclicLR": ("total_size", "step_ratio", "max_lrs", "mode", "gamma"),
}
# Schedulers whose get_lr() is already a closed form of last_epoch (no recursion on the current lr).
CLOSED_FORM_GET_LR = ("OneCycleLR", "LambdaLR", "CyclicLR", "CosineAnnealingWarmRestarts")


def array_problems(name, value, shape=None):
    """Why ``value`` cannot be the array ``name`` (of ``shape`` when given): a list of sentences."""
    if not hasattr(value, "shape") or not hasattr(value, "dtype"):
        return [f"{name} is a {type(value).__name__}, not an array"]
    problems = []
    if shape is not None and tuple(value.shape) != tuple(shape):
        problems.append(f"{name} has shape {tuple(value.shape)}, the model's is {tuple(shape)}")
    if value.dtype.kind == "f" and not np.isfinite(value).all():
        problems.append(f"{name} holds {int((~np.isfinite(value)).sum())} NaN/Inf values")
    return problems


def _nonfinite(value):
    array = np.asarray(value)
    return array.dtype.kind in "fc" and not np.isfinite(array).all()


def nonfinite_entries(state):
    """Names of the model entries (parameters, buffers), optimizer states and learning rates of a
    trainer's ``state_dict()`` that hold NaN or Inf: a checkpoint is good only if there are none."""
    bad = [name for name, value in state["model"].items() if _nonfinite(value)]
    for index, entries in state["optimizer"]["state"].items():
        bad += [f"optimizer state {key} of parameter {index}" for key, value in entries.items() if _nonfinite(value)]
    for number, group in enumerate(state["optimizer"]["param_groups"]):
        if _nonfinite(group["lr"]):
            bad.append(f"the learning rate of parameter group {number} ({group['lr']})")
    return bad


def check_checkpoint(trainer, state, path, train_loader=None, epochs=None):
    """Raises ``CheckpointError`` listing every reason ``state`` cannot resume ``trainer``; returns the
    schedule changes (``schedule_changes``) the resume will apply."""
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: not a trainer checkpoint (its content is a {type(state).__name__})")
    missing = [key for key in REQUIRED if key not in state]
    if missing:
        raise CheckpointError(f"{path}: not a complete trainer checkpoint; missing {', '.join(missing)}. "
                              "Nothing was loaded.")
    problems = []
    problems += _model_problems(trainer, state)
    problems += _optimizer_problems(trainer, state["optimizer"], state.get("optimizer_class"))
    problems += _scheduler_problems(trainer.scheduler, state["scheduler"], state.get("scheduler_class"))
    problems += _counter_problems(state)
    if train_loader is not None and state.get("train_loader") is not None:
        loader_state = state["train_loader"]
        if not (isinstance(loader_state, dict) and all(_is_int(loader_state.get(k)) for k in ("seed", "epoch"))):
            problems.append(f"train_loader state {loader_state!r} is not {{'seed': int, 'epoch': int}}")
    changes = []
    if not problems and trainer.scheduler is not None:
        changes = schedule_changes(trainer.scheduler, state["scheduler"])
        if changes and lr_at_step(trainer.scheduler) is None:
            problems.append(f"the schedule changed ({describe_changes(changes)}) but "
                            f"{type(trainer.scheduler).__name__} has no closed form to continue on the new one; "
                            "resume with the options of the original run")
    if problems:
        raise CheckpointError(f"{path} cannot resume this run (nothing was loaded):\n  - " + "\n  - ".join(problems))
    return changes


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _model_problems(trainer, state):
    saved, own = state["model"], trainer.model.state_dict()
    if not isinstance(saved, dict):
        return [f"model entry is a {type(saved).__name__}, not a state dict"]
    ours, theirs = getattr(trainer.model, "_minidl_architecture", None), state.get("architecture")
    if ours is not None and theirs is not None and ours != theirs:
        from ..models.registry import describe
        return [f"the checkpoint holds {describe(theirs)}, this run builds {describe(ours)}"]
    problems = []
    missing, unexpected = [k for k in own if k not in saved], [k for k in saved if k not in own]
    if missing or unexpected:
        problems.append(f"the model's state does not match: {len(missing)} entries missing "
                        f"({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}), {len(unexpected)} unexpected "
                        f"({', '.join(unexpected[:3])}{', ...' if len(unexpected) > 3 else ''}); "
                        f"is it a checkpoint of another network?")
        return problems
    for key, value in own.items():
        problems += array_problems(f"model entry {key}", saved[key], np.shape(value))
    return problems


def _optimizer_problems(trainer, saved, saved_class):
    optimizer = trainer.optimizer
    name = type(optimizer).__name__
    if saved_class is not None and saved_class != name:
        return [f"the checkpoint's optimizer is {saved_class}, this run's is {name}"]
    if not isinstance(saved, dict) or not isinstance(saved.get("param_groups"), list) \
            or not isinstance(saved.get("state"), dict):
        return ["optimizer entry is not an optimizer state dict ({'state': ..., 'param_groups': [...]})"]
    groups = saved["param_groups"]
    if len(groups) != len(optimizer.param_groups):
        return [f"the checkpoint's optimizer has {len(groups)} parameter groups, this run's has "
                f"{len(optimizer.param_groups)}"]
    problems, params = [], []
    for number, (group, theirs) in enumerate(zip(optimizer.param_groups, groups)):
        if not isinstance(theirs, dict) or not isinstance(theirs.get("params"), list):
            problems.append(f"optimizer parameter group {number} is malformed")
            continue
        absent = sorted(set(optimizer.defaults) - set(theirs))
        if absent:
            problems.append(f"optimizer parameter group {number} lacks {', '.join(absent)}: was it saved by "
                            f"another optimizer than {name}?")
        if len(theirs["params"]) != len(group["params"]):
            problems.append(f"optimizer parameter group {number} has {len(theirs['params'])} parameters, this "
                            f"run's has {len(group['params'])}")
        lr = theirs.get("lr")
        if not isinstance(lr, numbers.Real) or not math.isfinite(lr) or lr < 0:
            problems.append(f"optimizer parameter group {number} has learning rate {lr!r}")
        params += list(zip(theirs["params"], group["params"]))
    if problems:
        return problems
    param_of = dict(params)
    for index, entries in saved["state"].items():
        if index not in param_of:
            problems.append(f"optimizer state for parameter {index!r}, which no group lists")
            continue
        shape = tuple(param_of[index].shape)
        for key, value in (entries or {}).items():
            if hasattr(value, "shape") and np.ndim(value) > 0:
                problems += array_problems(f"optimizer state {key} of parameter {index}", value, shape)
            elif not isinstance(value, numbers.Real) and not hasattr(value, "dtype"):
                problems.append(f"optimizer state {key} of parameter {index} is a {type(value).__name__}")
    return problems


def _scheduler_problems(scheduler, saved, saved_class):
    if scheduler is None:
        return [] if saved is None else [f"the checkpoint has a {saved_class or 'learning-rate'} scheduler, this run "
                                         "has none"]
    name = type(scheduler).__name__
    if saved is None:
        return [f"this run has a {name} scheduler, the checkpoint none"]
    if saved_class is not None and saved_class != name:
        return [f"the checkpoint's scheduler is {saved_class}, this run's is {name}"]
    if not isinstance(saved, dict) or not _is_int(saved.get("last_epoch", 0)):
        return ["scheduler entry is not a scheduler state dict"]
    return []


def _counter_problems(state):
    problems = []
    if not _is_int(state["epoch"]) or state["epoch"] < 0:
        problems.append(f"epoch is {state['epoch']!r}, not a count of epochs")
    if not isinstance(state["history"], list) or not all(isinstance(row, dict) for row in state["history"]):
        problems.append("history is not a list of rows")
    if not _is_int(state["epochs_without_improvement"]) or state["epochs_without_improvement"] < 0:
        problems.append(f"epochs_without_improvement is {state['epochs_without_improvement']!r}")
    for key in ("best_val_top1", "best_val_loss"):
        if state[key] is not None and not isinstance(state[key], numbers.Real):
            problems.append(f"{key} is {state[key]!r}, not a number")
    try:
        np.random.default_rng().bit_generator.state = copy.deepcopy(state["rng"])
    except (TypeError, ValueError, KeyError) as error:
        problems.append(f"rng is not a random-generator state ({error})")
    return problems


# ---------------------------------------------------------------------- extending a schedule
def schedule_changes(scheduler, saved):
    """``[(key, saved value, new value)]`` for the horizon keys where ``saved`` differs from ``scheduler``."""
    keys = HORIZON_KEYS.get(type(scheduler).__name__, ())
    fresh = scheduler.state_dict()
    return [(key, saved.get(key), fresh.get(key)) for key in keys
            if key in fresh and _plain(saved.get(key)) != _plain(fresh.get(key))]


def _plain(value):
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def describe_changes(changes):
    return ", ".join(f"{key} {old!r} -> {new!r}" for key, old, new in changes if not key.startswith("_"))


def lr_at_step(scheduler):
    """The learning rates ``scheduler``'s own formula gives at its ``last_epoch`` (None if it has none)."""
    if hasattr(scheduler, "_closed_form_lr"):
        return scheduler._closed_form_lr()
    if type(scheduler).__name__ in CLOSED_FORM_GET_LR:
        return scheduler.get_lr()
    return None


def load_extended_schedule(scheduler, saved, changes):
    """Loads ``saved``'s counters into ``scheduler`` but keeps its new horizon; sets the lr of that step."""
    fresh = scheduler.state_dict()
    scheduler.load_state_dict(saved)
    scheduler.load_state_dict({key: fresh[key] for key, _, _ in changes})
    for group, lr in zip(scheduler.optimizer.param_groups, lr_at_step(scheduler)):
        group["lr"] = lr
    scheduler._last_lr = [group["lr"] for group in scheduler.optimizer.param_groups]


# ---------------------------------------------------------------------- all or nothing
def snapshot(trainer, train_loader=None):
    """Copies of everything a resume overwrites."""
    return {"model": {k: np.array(v, copy=True) for k, v in trainer.model.state_dict().items()},
            "optimizer": copy.deepcopy(trainer.optimizer.state_dict()),
            "scheduler": copy.deepcopy(trainer.scheduler.state_dict()) if trainer.scheduler is not None else None,
            "lrs": [dict(group) for group in trainer.optimizer.param_groups],
            "fields": {k: copy.deepcopy(getattr(trainer, k)) for k in ("epoch", "history", "best_val_top1",
                                                                      "best_val_loss", "epochs_without_improvement")},
            "rng": minidl_random.get_rng_state(),
            "loader": train_loader.state_dict() if train_loader is not None and hasattr(train_loader, "state_dict")
            else None}


def restore(trainer, saved, train_loader=None):
    trainer.model.load_state_dict(saved["model"])
    trainer.optimizer.load_state_dict(saved["optimizer"])
    for group, old in zip(trainer.optimizer.param_groups, saved["lrs"]):
        group.update({k: v for k, v in old.items() if k != "params"})
    if trainer.scheduler is not None:
        trainer.scheduler.load_state_dict(saved["scheduler"])
    for key, value in saved["fields"].items():
        setattr(trainer, key, value)
    minidl_random.set_rng_state(saved["rng"])
    if saved["loader"] is not None:
        train_loader.load_state_dict(saved["loader"])
