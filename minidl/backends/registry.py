"""Which implementation of an op runs: the reference one, or a device's faster one.

Every op has one *reference* implementation: a ``Function`` subclass in ``minidl/functions/``,
NCHW, written once against the array module (NumPy or CuPy). A backend may register a faster
``Function`` for the same op on one device type::

    @register(Conv2d, "cpu")
    class Conv2dChannelsLast(Conv2d):
        @classmethod
        def supports(cls, inputs, params):      # the op's inputs (Tensors, arrays, None) and keywords
            return params["groups"] == 1
        def forward(self, x, weight, bias, ...): ...
        def backward(self, g): ...

A fast implementation takes the same inputs and keywords and returns the same results as its
reference (the tests check it against the reference); it may differ in memory layout
(see ``Tensor.memory_format``) and in rounding. ``Function.apply`` asks ``choose`` which class
to run; registration order decides between several that support a call (first wins).

Optimizers use the same table: ``Optimizer.step`` asks ``choose(type(optimizer), params, group)``
for each param group, and a registered subclass (never instantiated) updates the whole group with its
classmethod ``update_group(optimizer, group, params)`` (minidl/backends/cuda/optim.py).

A few plain functions that are not ops have fast twins too, registered the same way with
``register_function`` and looked up with ``choose_function`` (the autograd engine's sum of two
gradients is one: ``minidl.autograd.add_gradients``).

The reference implementation runs everywhere when

* the environment variable ``MINIDL_REFERENCE=1`` is set when minidl is imported, or
* inside ``with minidl.backends.reference():``, or after ``minidl.backends.use_reference(True)``.

This module imports no backend: ``import minidl`` imports ``minidl/backends/cpu`` (and
``minidl/backends/cuda``), which register themselves.
"""
import contextlib
import os

import numpy as np

DEVICE_TYPES = ("cpu", "cuda")

_fast = {}  # reference Function class -> {device type: [fast Function classes, in registration order]}
_fast_functions = {}  # (reference function, device type) -> fast function
_use_reference = os.environ.get("MINIDL_REFERENCE", "0") not in ("", "0")


def register(reference, device_type):
    """Class decorator: the ``Function`` subclass it decorates implements ``reference`` on ``device_type``."""
    _check_device_type(device_type)

    def decorate(fast):
        if not issubclass(fast, reference):
            raise TypeError(f"register: {fast.__name__} must subclass its reference {reference.__name__}")
        if "supports" not in vars(fast):
            raise TypeError(f"register: {fast.__name__} must define the classmethod supports(inputs, params)")
        _fast.setdefault(reference, {}).setdefault(device_type, []).append(fast)
        return fast

    return decorate


def register_function(reference, device_type):
    """Decorator: the function it decorates replaces the plain function ``reference`` on ``device_type``.

    The fast function takes the same arguments, returns the same result and handles every call
    whose arrays live on that device (there is no ``supports``)."""
    _check_device_type(device_type)

    def decorate(fast):
        _fast_functions[reference, device_type] = fast
        return fast

    return decorate


def choose(reference, inputs, params):
    """The class that runs ``reference`` for these inputs: the first registered fast class for
    the inputs' device whose ``supports(inputs, params)`` is true, else ``reference`` itself."""
    by_device = _fast.get(reference)
    if by_device is None or _use_reference:
        return reference
    for fast in by_device.get(device_type_of(inputs), ()):
        if fast.supports(inputs, params):
            return fast
    return reference


def choose_function(reference, arrays):
    """The function that computes ``reference(*arrays)``: the fast twin for the arrays' device, if any."""
    if _use_reference or not _fast_functions:
        return reference
    return _fast_functions.get((reference, device_type_of(arrays)), reference)


def implementations(reference, device_type):
    """The fast classes registered for ``reference`` on ``device_type`` (for tests and docs)."""
    return list(_fast.get(reference, {}).get(device_type, ()))


def registered(device_type):
    """{reference: [fast classes]} of every op with a fast implementation on ``device_type``."""
    return {reference: list(by_device[device_type]) for reference, by_device in _fast.items()
            if by_device.get(device_type)}


def device_type_of(inputs):
    """'cpu' or 'cuda': where the first array among the inputs (Tensors or arrays) lives."""
    for value in inputs:
        array = getattr(value, "array", value)
        if isinstance(array, np.ndarray):
            return "cpu"
        if hasattr(array, "shape") and hasattr(array, "device"):  # a CuPy array (or the test stand-in)
            return "cuda"
    return "cpu"


def using_reference():
    """True while every op runs its reference implementation."""
    return _use_reference


def use_reference(enabled=True):
    """Runs every op's reference implementation from now on (``False`` turns the fast ones back on)."""
    global _use_reference
    _use_reference = bool(enabled)


@contextlib.contextmanager
def reference(enabled=True):
    """``with reference():`` runs the reference implementation of every op inside the block
    (``reference(False)``: the fast ones, even under ``MINIDL_REFERENCE=1``)."""
    previous = _use_reference
    use_reference(enabled)
    try:
        yield
    finally:
        use_reference(previous)


def _check_device_type(device_type):
    if device_type not in DEVICE_TYPES:
        raise ValueError(f"register: device_type must be 'cpu' or 'cuda', got {device_type!r}")
