"""The model registry: every network minidl can rebuild from a name and its constructor's arguments.

A constructor registered with ``@register_model("resnet20")`` stamps what it built with its
*architecture*, ``{"name": "resnet20", "kwargs": {"num_classes": 10, "shortcut": "zero_pad"}}``
(the arguments as given, when they are plain JSON values). The trainer stores that record in
every checkpoint, so a checkpoint says which network it belongs to::

    model = minidl.models.from_checkpoint("runs/train_resnet20_cifar10/last.npz")   # built and loaded

``build(architecture)`` makes the network again from a record; ``architecture_of(model)``
reads one. A model that was changed after it was built (a new classifier, a dropout in
front of it) is re-stamped by the code that changed it with ``set_architecture``, naming a
constructor that builds the changed form directly. The experiments' own networks
(``minidl.experiments``) register themselves in the same registry.
"""
import functools
import inspect
import json
import os

__all__ = ["register_model", "architecture_of", "set_architecture", "build", "describe", "from_checkpoint",
           "list_models", "get_model", "ArchitectureMismatch", "MODELS"]

MODELS = {}
ATTRIBUTE = "_minidl_architecture"


class ArchitectureMismatch(ValueError):
    """A checkpoint was written by another network than the one asked for."""


def register_model(name):
    """Decorator: registers a constructor under ``name`` and stamps its models with their architecture."""
    def decorate(constructor):
        signature = inspect.signature(constructor)

        @functools.wraps(constructor)
        def build_and_stamp(*args, **kwargs):
            model = constructor(*args, **kwargs)
            set_architecture(model, name, **_as_keywords(signature, args, kwargs))
            return model
        if name in MODELS and MODELS[name].__wrapped__ is not constructor:
            raise ValueError(f"a model named {name!r} is already registered")
        MODELS[name] = build_and_stamp
        return build_and_stamp
    return decorate


def _as_keywords(signature, args, kwargs):
    """The call's arguments by name (positional ones named after their parameters)."""
    bound = signature.bind(*args, **kwargs)
    named = {}
    for key, value in bound.arguments.items():
        if signature.parameters[key].kind is inspect.Parameter.VAR_KEYWORD:
            named.update(value)
        else:
            named[key] = value
    return named


def _plain(value):
    """``value`` as a JSON value (tuples become lists), or raises TypeError."""
    return json.loads(json.dumps(value))


def set_architecture(model, name, **kwargs):
    """Records that ``model`` is what ``build({"name": name, "kwargs": kwargs})`` makes (if the
    arguments are plain values; otherwise records nothing, and checkpoints will not name it)."""
    try:
        record = {"name": name, "kwargs": _plain(kwargs)}
    except (TypeError, ValueError):
        record = None
    object.__setattr__(model, ATTRIBUTE, record)
    return model


def architecture_of(model):
    """The record ``{"name": ..., "kwargs": {...}}`` of a registered model, or None."""
    return getattr(model, ATTRIBUTE, None)


def describe(architecture):
    """``resnet20(num_classes=10, shortcut='zero_pad')``."""
    if not architecture:
        return "an unnamed network"
    arguments = ", ".join(f"{key}={value!r}" for key, value in sorted(architecture["kwargs"].items()))
    return f"{architecture['name']}({arguments})"


def _registered(name):
    if name not in MODELS:
        from .. import experiments  # noqa: F401  (registers the experiments' networks)
    return MODELS.get(name)


def list_models():
    """The names ``get_model``/``build`` accept (the library's and the experiments' networks)."""
    _registered("")
    return sorted(MODELS)


def get_model(name, **kwargs):
    """Builds the model called ``name`` (e.g. ``get_model("resnet20", num_classes=10, shortcut="zero_pad")``)."""
    key = name.lower() if isinstance(name, str) else name
    constructor = _registered(key)
    if constructor is None:
        raise ValueError(f"unknown model {name!r}; valid names: {', '.join(list_models())}")
    return constructor(**kwargs)


def build(architecture):
    """The network an architecture record describes, freshly initialised."""
    if not isinstance(architecture, dict) or not isinstance(architecture.get("name"), str) \
            or not isinstance(architecture.get("kwargs"), dict):
        raise ValueError(f"not an architecture record ({{'name': str, 'kwargs': dict}}): {architecture!r}")
    return get_model(architecture["name"], **architecture["kwargs"])


def from_checkpoint(checkpoint, name=None, **kwargs):
    """The model a trainer checkpoint (a path or a loaded tree) holds, built from its record and loaded.

    ``name``/``kwargs`` may say what the caller expects; if the checkpoint records another
    network, ``ArchitectureMismatch`` says both (one message, not a list of size errors). A
    checkpoint without a record (older runs) needs ``name``.
    """
    from ..train.checkpoint import load_checkpoint
    label = checkpoint if isinstance(checkpoint, (str, os.PathLike)) else "the checkpoint"
    state = load_checkpoint(checkpoint) if isinstance(checkpoint, (str, os.PathLike)) else checkpoint
    if not isinstance(state, dict) or "model" not in state:
        raise ValueError(f"{label} is not a trainer checkpoint (it has no 'model' entry)")
    recorded = state.get("architecture")
    if recorded is not None and name is not None:
        wanted = {"name": name, "kwargs": _plain(kwargs)}
        differs = recorded["name"] != name or any(recorded["kwargs"].get(k) != v for k, v in wanted["kwargs"].items())
        if differs:
            raise ArchitectureMismatch(f"{label} holds {describe(recorded)}, not {describe(wanted)}; leave the "
                                       "model unspecified to use the checkpoint's")
    if recorded is None:
        if name is None:
            raise ValueError(f"{label} does not record its network (written before minidl stored architectures); "
                             f"name it, e.g. from_checkpoint(path, 'resnet20', num_classes=10)")
        recorded = {"name": name, "kwargs": _plain(kwargs)}
    model = build(recorded)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as error:
        raise ArchitectureMismatch(f"{label}'s weights do not fit {describe(recorded)}: "
                                   f"{str(error).splitlines()[1].strip() if len(str(error).splitlines()) > 1 else error}"
                                   ) from None
    return model
