"""``Module``: the base class of every layer and network.

A module keeps three ordered registries, filled by plain attribute assignment:
``_parameters`` (learned tensors), ``_buffers`` (state that is saved but not learned,
such as BatchNorm's running statistics) and ``_modules`` (sub-modules).  Everything
else (``parameters()``, ``state_dict()``, ``to()``, ``train()``, ``repr``) walks
these registries recursively, so a network is a tree of modules whose leaves are
tensors.
"""
import difflib
import itertools
from collections import OrderedDict, namedtuple

import numpy as np

from ... import dtypes
from ...backend import device as Device, move_array
from ...memory_formats import as_memory_format, check as check_memory_format, contiguous_format, preserve_format
from ...tensor import Tensor
from ..parameter import Parameter


class LayerInputError(RuntimeError, ValueError):
    """An input a layer cannot take (wrong rank or size), naming the layer.

    It is both a RuntimeError (what PyTorch raises) and a ValueError.  Each enclosing
    module that the error passes through renames the layer by its path from there
    (``layer1.0.conv1``), so the message names the layer as the outermost model sees it.
    """

    def __init__(self, module, detail):
        self.module, self.detail = module, detail
        super().__init__(f"{module._one_line_repr()}: {detail}")

    def name_within(self, root):
        for name, module in root.named_modules():
            if module is self.module and name:
                self.args = (f"{name} ({self.module._one_line_repr()}): {self.detail}",)
                return


class RemovableHandle:
    """Returned by ``register_*_hook``: ``handle.remove()`` unregisters the hook."""

    _ids = itertools.count()

    def __init__(self, hooks):
        self.hooks, self.id = hooks, next(RemovableHandle._ids)

    def remove(self):
        self.hooks.pop(self.id, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()


_IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


def _addindent(text, spaces):
    lines = text.split("\n")
    return lines[0] if len(lines) == 1 else "\n".join([lines[0]] + [" " * spaces + line for line in lines[1:]])


def _check_name(module, name, kind):
    if not isinstance(name, str):
        raise TypeError(f"{kind} name should be a string, got {type(name).__name__}")
    if name == "" or "." in name:
        raise KeyError(f"{kind} name can't be empty or contain '.', got {name!r}")
    if "_parameters" not in module.__dict__:
        raise AttributeError(f"cannot assign {kind} before Module.__init__() call")


def _as_numpy(value, key):
    """A state-dict value (minidl Tensor, NumPy array, torch tensor, number) as a NumPy array."""
    if isinstance(value, Tensor):
        return np.asarray(move_array(value.array, "cpu"))
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor
        return value.detach().cpu().numpy()
    try:
        return np.asarray(value)
    except Exception as error:
        raise TypeError(f"state_dict value for {key!r} is a {type(value).__name__}, not an array") from error


class Module:
    """Base class for all layers: subclass it, create layers in ``__init__``, and write ``forward``."""

    def __init__(self):
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent_buffers", set())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_forward_hooks", OrderedDict())
        object.__setattr__(self, "_forward_pre_hooks", OrderedDict())

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f'Module [{type(self).__name__}] is missing the required "forward" function')

    # ------------------------------------------------------------------ calling
    def __call__(self, *args, **kwargs):
        for hook in list(self._forward_pre_hooks.values()):
            replacement = hook(self, args)
            if replacement is not None:
                args = replacement if isinstance(replacement, tuple) else (replacement,)
        try:
            output = self.forward(*args, **kwargs)
        except LayerInputError as error:
            if error.module is not self:
                error.name_within(self)
            raise
        for hook in list(self._forward_hooks.values()):
            replacement = hook(self, args, output)
            if replacement is not None:
                output = replacement
        return output

    def register_forward_pre_hook(self, hook):
        """``hook(module, args)`` runs before ``forward``; it may return replacement args."""
        handle = RemovableHandle(self._forward_pre_hooks)
        self._forward_pre_hooks[handle.id] = hook
        return handle

    def register_forward_hook(self, hook):
        """``hook(module, args, output)`` runs after ``forward``; it may return a replacement output."""
        handle = RemovableHandle(self._forward_hooks)
        self._forward_hooks[handle.id] = hook
        return handle

    def _input_error(self, detail):
        """The error a layer raises for an input it cannot take."""
        return LayerInputError(self, detail)

    # ------------------------------------------------------------------ registration
    def __setattr__(self, name, value):
        params, buffers, modules = (self.__dict__.get(k) for k in ("_parameters", "_buffers", "_modules"))
        if isinstance(value, Parameter):
            _check_name(self, name, "parameter")
            self._forget(name)
            params[name] = value
        elif isinstance(value, Module):
            _check_name(self, name, "module")
            self._forget(name)
            modules[name] = value
        elif params is not None and name in params:
            if value is not None:
                raise TypeError(f"cannot assign '{type(value).__name__}' as parameter '{name}' "
                                "(minidl.nn.Parameter or None expected)")
            params[name] = None
        elif modules is not None and name in modules:
            if value is not None:
                raise TypeError(f"cannot assign '{type(value).__name__}' as child module '{name}' "
                                "(minidl.nn.Module or None expected)")
            modules[name] = None
        elif buffers is not None and name in buffers:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"cannot assign '{type(value).__name__}' as buffer '{name}' "
                                "(minidl.Tensor or None expected)")
            buffers[name] = value
        else:
            object.__setattr__(self, name, value)

    def _forget(self, name):
        """Removes ``name`` from every registry and the instance dict, before re-registering it."""
        self.__dict__.pop(name, None)
        for registry in (self._parameters, self._buffers, self._modules):
            registry.pop(name, None)
        self._non_persistent_buffers.discard(name)

    def __getattr__(self, name):
        # Called only when normal lookup fails: the name may be a registered tensor or module.
        for registry in ("_parameters", "_buffers", "_modules"):
            entries = self.__dict__.get(registry)
            if entries is not None and name in entries:
                return entries[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name):
        for registry in (self._parameters, self._buffers, self._modules):
            if name in registry:
                del registry[name]
                self._non_persistent_buffers.discard(name)
                return
        object.__delattr__(self, name)

    def __dir__(self):
        return sorted(set(super().__dir__()) | set(self._parameters) | set(self._buffers) | set(self._modules))

    def register_parameter(self, name, param):
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"cannot assign '{type(param).__name__}' as parameter '{name}' "
                            "(minidl.nn.Parameter or None expected)")
        _check_name(self, name, "parameter")
        if hasattr(self, name) and name not in self._parameters:
            raise KeyError(f"attribute '{name}' already exists")
        self._parameters[name] = param

    def register_buffer(self, name, tensor, persistent=True):
        """Registers state that is not learned; ``persistent=False`` keeps it out of ``state_dict``."""
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"cannot assign '{type(tensor).__name__}' as buffer '{name}' "
                            "(minidl.Tensor or None expected)")
        _check_name(self, name, "buffer")
        if hasattr(self, name) and name not in self._buffers:
            raise KeyError(f"attribute '{name}' already exists")
        self._buffers[name] = tensor
        if persistent:
            self._non_persistent_buffers.discard(name)
        else:
            self._non_persistent_buffers.add(name)

    def add_module(self, name, module):
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(module).__name__} is not a Module subclass")
        _check_name(self, name, "module")
        if hasattr(self, name) and name not in self._modules:
            raise KeyError(f"attribute '{name}' already exists")
        self._modules[name] = module

    register_module = add_module

    def get_submodule(self, target):
        module = self
        for part in target.split(".") if target else []:
            if part not in module._modules:
                raise AttributeError(f"{module._one_line_repr()} has no submodule '{part}' (looking for '{target}')")
            module = module._modules[part]
        return module

    # ------------------------------------------------------------------ traversal
    def named_modules(self, memo=None, prefix="", remove_duplicate=True):
        """(dotted name, module) for this module and every descendant, each module once."""
        memo = set() if memo is None else memo
        if remove_duplicate:
            if id(self) in memo:
                return
            memo.add(id(self))
        yield prefix, self
        for name, module in self._modules.items():
            if module is not None:
                yield from module.named_modules(memo, prefix + ("." if prefix else "") + name, remove_duplicate)

    def modules(self):
        for _, module in self.named_modules():
            yield module

    def named_children(self):
        seen = set()
        for name, module in self._modules.items():
            if module is not None and id(module) not in seen:
                seen.add(id(module))
                yield name, module

    def children(self):
        for _, module in self.named_children():
            yield module

    def _named_members(self, registry, prefix, recurse, remove_duplicate=True):
        seen = set()
        modules = self.named_modules(prefix=prefix) if recurse else [(prefix, self)]
        for module_prefix, module in modules:
            for name, tensor in getattr(module, registry).items():
                if tensor is None or (remove_duplicate and id(tensor) in seen):
                    continue
                seen.add(id(tensor))
                yield module_prefix + ("." if module_prefix else "") + name, tensor

    def named_parameters(self, prefix="", recurse=True, remove_duplicate=True):
        """(dotted name, parameter) pairs; a parameter shared by two layers appears once."""
        yield from self._named_members("_parameters", prefix, recurse, remove_duplicate)

    def parameters(self, recurse=True):
        for _, param in self.named_parameters(recurse=recurse):
            yield param

    def named_buffers(self, prefix="", recurse=True, remove_duplicate=True):
        yield from self._named_members("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse=True):
        for _, buffer in self.named_buffers(recurse=recurse):
            yield buffer

    def num_parameters(self, trainable_only=False):
        """How many numbers the model learns (each shared parameter counted once)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def apply(self, fn):
        """Calls ``fn(module)`` on every descendant, children first, then on ``self``."""
        for module in self.children():
            module.apply(fn)
        fn(self)
        return self

    # ------------------------------------------------------------------ modes and gradients
    def train(self, mode=True):
        if not isinstance(mode, bool):
            raise ValueError(f"training mode is expected to be boolean, got {mode!r}")
        object.__setattr__(self, "training", mode)
        for module in self.children():  # through each child's train(), so subclasses can override it
            module.train(mode)
        return self

    def eval(self):
        return self.train(False)

    def requires_grad_(self, requires_grad=True):
        """Sets ``requires_grad`` on every parameter: ``requires_grad_(False)`` freezes the module."""
        for param in self.parameters():
            param.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none=True):
        for param in self.parameters():
            if param.grad is None:
                continue
            if set_to_none:
                param.grad = None
            else:
                param.grad.array[...] = 0

    # ------------------------------------------------------------------ devices and dtypes
    def _apply_to_arrays(self, convert, memory_format=None):
        """Replaces the array of every parameter, gradient and buffer by ``convert(array)``, and
        stores the 4-D parameters and buffers in ``memory_format`` (None: each as it was).

        The Tensor objects stay the same, so an optimizer built before ``to()`` still
        holds the module's parameters (PyTorch's semantics).
        """
        seen = set()
        for module in self.modules():
            for tensor in itertools.chain(module._parameters.values(), module._buffers.values()):
                if tensor is None or id(tensor) in seen:
                    continue
                seen.add(id(tensor))
                layout = memory_format if memory_format is not None and tensor.ndim == 4 else tensor.memory_format
                array = convert(tensor.array)
                if layout is not contiguous_format or memory_format is not None:
                    array = as_memory_format(array, layout)  # a channels_last tensor stays stored so
                tensor.array, tensor._memory_format = array, layout
                if tensor.grad is not None:
                    tensor.grad.array = convert(tensor.grad.array)
        return self

    def to(self, *args, device=None, dtype=None, memory_format=None):
        """``to(device)``, ``to(dtype)``, ``to(device, dtype)`` or ``to(tensor)``; in place, returns self.

        A dtype applies to floating-point parameters and buffers only: integer buffers
        such as BatchNorm's ``num_batches_tracked`` keep their dtype.  ``memory_format``
        (``minidl.channels_last`` or ``minidl.contiguous_format``) applies to the 4-D ones only, as
        in PyTorch; minidl's CPU convolution is fast whatever its weight's layout.
        """
        for arg in args:
            if isinstance(arg, Tensor):
                device, dtype = arg.device, arg.dtype
            elif isinstance(arg, Device) or (isinstance(arg, str) and arg.split(":")[0] in ("cpu", "cuda")):
                device = arg
            else:
                dtype = arg
        if dtype is not None:
            dtype = np.dtype(dtype)
            if not dtypes.is_floating(dtype):
                raise TypeError(f"Module.to only accepts floating-point dtypes, got {dtype}")
        target = Device(device) if device is not None else None
        if memory_format is not None and check_memory_format(memory_format, "Module.to") is preserve_format:
            memory_format = None

        def convert(array):
            if dtype is not None and dtypes.is_floating(array.dtype):
                array = array.astype(dtype, copy=False)
            return move_array(array, target) if target is not None else array
        return self._apply_to_arrays(convert, memory_format)

    def cpu(self):
        return self.to("cpu")

    def cuda(self, device=None):
        return self.to(device if isinstance(device, (str, Device)) else Device("cuda", device))

    def float(self):
        return self.to(dtype=dtypes.float32)

    def double(self):
        return self.to(dtype=dtypes.float64)

    # ------------------------------------------------------------------ saving and loading
    def _state_items(self, prefix=""):
        """(key, tensor) in PyTorch's state_dict order: each module's parameters, then its
        persistent buffers, then its children's entries, depth first."""
        for name, param in self._parameters.items():
            if param is not None:
                yield prefix + name, param
        for name, buffer in self._buffers.items():
            if buffer is not None and name not in self._non_persistent_buffers:
                yield prefix + name, buffer
        for name, module in self._modules.items():
            if module is not None:
                yield from module._state_items(prefix + name + ".")

    def state_dict(self, prefix="", keep_vars=False):
        """An OrderedDict of NumPy arrays (copies, on the CPU) under PyTorch's keys.

        ``keep_vars=True`` gives the module's own Tensors instead of copies.
        """
        if keep_vars:
            return OrderedDict(self._state_items(prefix))
        return OrderedDict((key, np.array(move_array(tensor.array, "cpu"), copy=True))
                           for key, tensor in self._state_items(prefix))

    def load_state_dict(self, state_dict, strict=True):
        """Copies arrays into the parameters and buffers in place.

        Raises one RuntimeError listing every shape mismatch (always) and every missing or
        unexpected key (when ``strict``); returns ``(missing_keys, unexpected_keys)``.
        """
        own = OrderedDict(self._state_items())
        missing = [key for key in own if key not in state_dict]
        unexpected = [key for key in state_dict if key not in own]
        arrays, mismatches = {}, []
        for key, tensor in own.items():
            if key not in state_dict:
                continue
            array = _as_numpy(state_dict[key], key)
            if array.shape != tensor.shape:
                mismatches.append(f"size mismatch for {key}: copying a param with shape {array.shape} from "
                                  f"checkpoint, the shape in current model is {tuple(tensor.shape)}.")
            arrays[key] = array
        errors = mismatches
        if strict:
            errors = self._key_errors(missing, unexpected, own) + mismatches
        if errors:
            raise RuntimeError(f"Error(s) in loading state_dict for {type(self).__name__}:\n\t" + "\n\t".join(errors))
        for key, array in arrays.items():
            tensor = own[key]
            tensor.array[...] = move_array(array.astype(tensor.dtype, copy=False), tensor.device)
        return _IncompatibleKeys(missing, unexpected)

    @staticmethod
    def _key_errors(missing, unexpected, own):
        errors = []
        if missing:
            errors.append("Missing key(s) in state_dict: " + ", ".join(f'"{k}"' for k in missing) + ".")
        if unexpected:
            described = []
            for key in unexpected:
                close = difflib.get_close_matches(key, missing or list(own), n=1)
                described.append(f'"{key}"' + (f' (did you mean "{close[0]}"?)' if close else ""))
            errors.append("Unexpected key(s) in state_dict: " + ", ".join(described) + ".")
        return errors

    # ------------------------------------------------------------------ printing
    def extra_repr(self):
        """The layer's settings, shown inside its repr; layers override this."""
        return ""

    def _get_name(self):
        return type(self).__name__

    def _one_line_repr(self):
        return f"{self._get_name()}({self.extra_repr()})"

    def __repr__(self):
        extra_lines = self.extra_repr().split("\n") if self.extra_repr() else []
        child_lines = [f"({name}): " + _addindent(repr(module), 2) for name, module in self._modules.items()]
        lines = extra_lines + child_lines
        body = ""
        if len(extra_lines) == 1 and not child_lines:
            body = extra_lines[0]
        elif lines:
            body = "\n  " + "\n  ".join(lines) + "\n"
        return f"{self._get_name()}({body})"

    def summary(self, input_shape, batch_size=2, dtype=None, device=None, print_fn=print):
        """Prints and returns a table of every leaf layer's output shape and parameter count.

        ``input_shape`` is one sample's shape, without the batch dimension (e.g. ``(3, 32, 32)``).
        """
        from .summary import summarize
        text = summarize(self, input_shape, batch_size=batch_size, dtype=dtype, device=device)
        if print_fn is not None:
            print_fn(text)
        return text
