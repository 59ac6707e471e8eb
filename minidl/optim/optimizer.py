"""The ``Optimizer`` base class: parameter groups, per-parameter state, ``step`` and checkpoints.

An optimizer holds ``param_groups``, a list of dicts, each with ``'params'`` (a list of
tensors) and that group's hyper-parameters (``'lr'``, ``'weight_decay'``, ...; any left out
are filled in from ``defaults``).  ``state[p]`` is a dict of arrays and numbers that the
update rule keeps for parameter ``p`` (momentum buffers, running averages, step counts).

A subclass writes two methods:

- ``_init_state(state, p, group)`` fills the empty state dict of ``p`` before its first step;
- ``_update(param, grad, state, group)`` changes the array ``param`` in place from the array
  ``grad``.  Each subclass keeps the arithmetic in one module-level function.

A device backend may update a whole param group at once instead (minidl/backends/cuda/optim.py
fuses SGD, Adam and AdamW on the GPU): ``step`` asks ``backends.registry.choose`` for a fast
implementation of the optimizer's class and calls its ``update_group(optimizer, group, params)``.

``state_dict()`` follows PyTorch's layout, with NumPy arrays (so a trainer can write it to
``.npz``)::

    {'state': {0: {'step': 3, 'exp_avg': ndarray, ...}, 1: {...}},
     'param_groups': [{'lr': 0.1, ..., 'params': [0, 1]}, ...]}

Parameters are numbered in the order they appear across the groups.
"""
from collections import defaultdict

import numpy as np

from ..autograd import enable_grad
from ..backend import device_of, move_array
from ..backends.registry import choose


class _RequiredParameter:
    """Marks a hyper-parameter that has no default and must be given."""

    def __repr__(self):
        return "<required parameter>"


required = _RequiredParameter()


class Optimizer:
    def __init__(self, params, defaults):
        from ..tensor import Tensor
        self.defaults = dict(defaults)
        self.state = defaultdict(dict)
        self.param_groups = []
        if isinstance(params, Tensor):
            raise TypeError("params argument given to the optimizer should be an iterable of Tensors "
                            "or dicts, but got a Tensor")
        groups = list(params)
        if len(groups) == 0:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def add_param_group(self, param_group):
        """Adds a group of parameters with its own hyper-parameters (others taken from ``defaults``)."""
        from ..tensor import Tensor
        if not isinstance(param_group, dict):
            raise TypeError(f"a param group must be a dict, got {type(param_group).__name__}")
        group = dict(param_group)
        params = group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, set):
            raise TypeError("optimizer parameters need to be organized in ordered collections, but the "
                            "ordering of tensors in sets will change between runs; please use a list")
        group["params"] = list(params)
        for p in group["params"]:
            if not isinstance(p, Tensor):
                raise TypeError(f"optimizer can only optimize Tensors, but one of the params is {type(p).__name__}")
            if not p.is_leaf:
                raise ValueError("can't optimize a non-leaf Tensor")
        for name, default in self.defaults.items():
            if default is required and name not in group:
                raise ValueError(f"parameter group didn't specify a value of required optimization "
                                 f"parameter {name}")
            group.setdefault(name, default)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if len({id(p) for p in group["params"]}) != len(group["params"]):
            raise ValueError("a parameter group contains the same parameter twice")
        if any(id(p) in seen for p in group["params"]):
            raise ValueError("some parameters appear in more than one parameter group")
        self.param_groups.append(group)

    def zero_grad(self, set_to_none=True):
        """Clears every parameter's gradient: ``grad = None`` (default) or zeros in place."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    p.grad.array[...] = 0

    def step(self, closure=None):
        """Updates every parameter that has a gradient; returns ``closure()``'s loss if given."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            for p in params:
                if not self.state[p]:
                    self._init_state(self.state[p], p, group)
            if not params:
                continue
            fused = choose(type(self), params, group)  # a device backend's update of the whole group, if any
            if fused is not type(self):
                fused.update_group(self, group, params)
                continue
            for p in params:
                self._update(p.array, p.grad.array, self.state[p], group)
        return loss

    def _init_state(self, state, p, group):
        raise NotImplementedError

    def _update(self, param, grad, state, group):
        raise NotImplementedError

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self):
        """PyTorch's layout with parameters replaced by their index and arrays copied to NumPy."""
        index_of = {}
        groups = []
        for group in self.param_groups:
            for p in group["params"]:
                index_of.setdefault(id(p), len(index_of))
            saved = {name: value for name, value in group.items() if name != "params"}
            saved["params"] = [index_of[id(p)] for p in group["params"]]
            groups.append(saved)
        state = {}
        for group in self.param_groups:
            for p in group["params"]:
                if p in self.state and self.state[p]:
                    state[index_of[id(p)]] = {name: _to_numpy(value) for name, value in self.state[p].items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Restores hyper-parameters and state; arrays go to each parameter's device and dtype."""
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"loaded state dict has {len(saved_groups)} parameter groups, but the optimizer "
                             f"has {len(self.param_groups)}")
        for number, (group, saved) in enumerate(zip(self.param_groups, saved_groups)):
            if len(group["params"]) != len(saved["params"]):
                raise ValueError(f"loaded state dict's parameter group {number} has {len(saved['params'])} "
                                 f"parameters, but the optimizer's group has {len(group['params'])}")
        param_of = {}
        for group, saved in zip(self.param_groups, saved_groups):
            param_of.update(zip(saved["params"], group["params"]))
        self.state = defaultdict(dict)
        for index, saved_state in state_dict["state"].items():
            p = param_of[int(index)]
            self.state[p] = {name: _to_param(value, p, name) for name, value in saved_state.items()}
        for group, saved in zip(self.param_groups, saved_groups):
            group.update({name: value for name, value in saved.items() if name != "params"})

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for number, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {number}")
            lines += [f"    {name}: {value}" for name, value in sorted(group.items()) if name != "params"]
        return "\n".join(lines + [")"])


def _to_numpy(value):
    """A NumPy copy of an array (from either device); numbers pass through."""
    if hasattr(value, "dtype") and hasattr(value, "shape") and not isinstance(value, np.generic):
        return np.array(move_array(value, "cpu"), copy=True)
    return value


def _to_param(value, p, name):
    """A saved state value moved onto ``p``'s device (a copy); floating arrays take ``p``'s dtype as in PyTorch."""
    if name == "step":
        return int(value)  # an .npz round trip turns numbers into 0-d arrays
    if not (hasattr(value, "dtype") and hasattr(value, "shape")):
        return value
    array = move_array(value, device_of(p.array))
    dtype = p.array.dtype if array.dtype.kind == "f" else array.dtype
    return array.astype(dtype, copy=True)


def _check_nonnegative(**values):
    for name, value in values.items():
        if not value >= 0:
            raise ValueError(f"Invalid {name} value: {value} (must be >= 0)")


def _check_betas(betas):
    if len(betas) != 2:
        raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
    for index, beta in enumerate(betas):
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"Invalid beta parameter at index {index}: {beta} (must be in [0, 1))")
