"""Reverse-mode automatic differentiation.

The whole engine is two ideas:

* A ``Function`` is one differentiable operation.  ``forward`` maps input
  arrays to an output array and keeps (on ``self``) only what ``backward``
  will need; ``backward`` maps the gradient of the loss with respect to the
  output, ``dL/dy``, to the gradients with respect to each input, ``dL/dx_i``.
  ``Function.apply`` runs ``forward`` and, when a gradient is wanted, records
  the function as the output tensor's creator (``tensor._ctx``).

* ``backward(root)`` walks that record from the root back to the leaves in
  topological order (every function after all functions that consumed its
  output), calls each ``backward`` once with the summed gradient of its
  output, and accumulates the gradients of leaf tensors into ``.grad``.
  Afterwards each function frees what it saved, so the graph of one training
  step dies with the step.
"""
import contextlib
import threading

from .backends.registry import choose, choose_function
from .memory_formats import contiguous_format, preserve_format

_state = threading.local()


def is_grad_enabled():
    return getattr(_state, "grad_enabled", True)


class _GradMode(contextlib.ContextDecorator):
    mode = True

    def _recreate_cm(self):
        return type(self)()  # a fresh one per decorated call, so recursion restores correctly

    def __enter__(self):
        self.previous = is_grad_enabled()
        _state.grad_enabled = self.mode

    def __exit__(self, *exc):
        _state.grad_enabled = self.previous
        return False


class no_grad(_GradMode):
    """Context manager (or decorator) in which no graph is recorded."""
    mode = False


class enable_grad(_GradMode):
    """Context manager (or decorator) that turns recording back on inside ``no_grad``."""
    mode = True


class set_grad_enabled(_GradMode):
    """Turns recording on or off: a plain call, or ``with set_grad_enabled(training):``
    which restores the previous mode on exit."""

    def __init__(self, mode):
        self.previous, self.mode = is_grad_enabled(), bool(mode)
        _state.grad_enabled = self.mode

    def _recreate_cm(self):
        return self

    def __enter__(self):
        _state.grad_enabled = self.mode  # already set by __init__; set again for a reused object


class Function:
    """Base class of every differentiable operation.

    Subclasses implement ``forward(self, *arrays, **params) -> array`` and
    ``backward(self, grad_output) -> grad or tuple of grads`` (one per
    positional input; ``None`` where an input needs no gradient).  Positional
    inputs may be Tensors, arrays, numbers or ``None``; keyword arguments are
    plain parameters (stride, padding, ...).  ``backward`` must not change
    ``grad_output`` in place: the engine may hand one array to several inputs.
    """

    inputs = None  # the input Tensors (set before forward runs), kept so backward can walk to them
    # How forward's result is stored, copied to the output's Tensor.memory_format: contiguous_format,
    # channels_last, or preserve_format (like the first input Tensor).  A forward may set it on self.
    output_memory_format = contiguous_format
    released = False

    @classmethod
    def apply(cls, *inputs, **params):
        from .tensor import Tensor

        fn = choose(cls, inputs, params)()  # the reference op, or a device's faster twin (backends/)
        arrays = [x.array if isinstance(x, Tensor) else x for x in inputs]
        fn.needs_input_grad = tuple(isinstance(x, Tensor) and x.requires_grad for x in inputs)
        record = is_grad_enabled() and any(fn.needs_input_grad)
        fn.recording = record  # a forward may skip saving buffers when nothing will be recorded
        fn.inputs = inputs  # forward may look at what made an input (the CPU batch norm: its convolution's sums)
        try:
            if _profiler is None:
                output_array = fn.forward(*arrays, **params)
            else:
                with _profiler.timing(fn.name, "forward", arrays):
                    output_array = fn.forward(*arrays, **params)
        except ValueError as error:  # NumPy's complaint about shapes: PyTorch raises RuntimeError
            if isinstance(error, (RuntimeError, IndexError)):
                raise
            raise _shape_error(fn, arrays, error) from error
        record = record and output_array.dtype.kind == "f"  # integer outputs (indices, casts) carry no gradient
        output = Tensor._from_array(output_array, requires_grad=record)
        if fn.output_memory_format is not contiguous_format:
            output._memory_format = _output_memory_format(fn.output_memory_format, inputs)
        if record:
            fn.input_versions = tuple(getattr(x, "_version", None) for x in inputs)
            output._ctx = fn
        return output

    @classmethod
    def has_fast_implementation(cls, inputs, params):
        """Whether a device backend registered a faster implementation of this op that would run for
        these inputs (backends/registry.py); fused ops (functions/fused.py) run only where one does."""
        return choose(cls, inputs, params) is not cls

    def forward(self, *arrays, **params):
        raise NotImplementedError

    def backward(self, grad_output):
        raise NotImplementedError

    def release(self):
        """Drop everything saved for backward (and the links to the inputs)."""
        self.__dict__.clear()
        self.released = True

    @property
    def name(self):
        return type(self).__name__

    def __repr__(self):
        return f"<{self.name}Backward>"


def _shape_error(fn, arrays, error):
    """A ValueError from inside a forward (NumPy's "operands could not be broadcast", "cannot
    reshape") as the ShapeError PyTorch's class calls for, naming the op and its input shapes."""
    from .errors import ShapeError, broadcast_mismatch
    shapes = [tuple(a.shape) for a in arrays if hasattr(a, "shape")]
    mismatch = broadcast_mismatch(*shapes) if len(shapes) == 2 and "broadcast" in str(error) else None
    listed = ", ".join(map(str, shapes))
    return ShapeError(f"{fn.name}: {mismatch or error} (inputs of shape {listed})")


def _output_memory_format(declared, inputs):
    if declared is preserve_format:
        return next((x.memory_format for x in inputs if hasattr(x, "memory_format")), contiguous_format)
    return declared


def topological_order(root_fn):
    """Functions reachable from ``root_fn``, each before every function it consumed."""
    postorder, visited = [], set()
    stack = [(root_fn, False)]
    while stack:
        fn, children_done = stack.pop()
        if children_done:
            postorder.append(fn)
            continue
        if fn in visited:
            continue
        if fn.released:
            raise RuntimeError(
                "Trying to backward through the graph a second time: its saved values were freed "
                "by the first backward(). Call backward(retain_graph=True) the first time if you "
                "need to backward twice."
            )
        visited.add(fn)
        stack.append((fn, True))
        for tensor in fn.inputs:
            parent = getattr(tensor, "_ctx", None)
            if parent is not None and parent not in visited:
                stack.append((parent, False))
    return reversed(postorder)


def _as_tuple(grads):
    return grads if isinstance(grads, tuple) else (grads,)


class LaterGradient:
    """A gradient that is still being computed, on other cores (the CPU convolution's weight gradient: nothing else
    in backward reads it).  ``shape`` and ``dtype`` are known now, ``result()`` waits for the array.

    backward() adds it to a leaf's ``.grad`` after the rest of the graph, so the other cores compute it while the
    calling thread goes on; any other tensor (one with a graph, or a leaf with hooks) takes the array at once.
    The gradients of a leaf are added in the order they came, as without it."""

    def __init__(self, shape, dtype, pending):
        self.shape, self.dtype, self.pending = tuple(shape), dtype, pending

    def result(self):
        return self.pending.result()


def backward(root, grad_output, retain_graph=False):
    """Accumulate d(root)/d(leaf) * grad_output into the ``.grad`` of every leaf."""
    from .tensor import Tensor

    pending = {root._ctx: grad_output}  # function -> gradient of its output, summed so far
    order = list(topological_order(root._ctx))
    hooked_uses = _hooked_leaf_uses(order)  # leaves with post-accumulate-grad hooks: uses left
    accumulated = set()  # ids of hooked leaves that received a gradient in this backward
    later, later_leaves = [], set()  # (leaf, gradient) to add at the end, in order; the ids of those leaves
    for fn in order:
        grad = pending.pop(fn, None)
        if grad is None:  # every consumer's backward returned None for this output
            if hooked_uses:
                _count_down_uses(fn, hooked_uses, accumulated)
            if not retain_graph:
                fn.release()
            continue
        _check_saved_inputs_unchanged(fn)
        if _profiler is None:
            input_grads = _as_tuple(fn.backward(grad))
        else:
            with _profiler.timing(fn.name, "backward", (grad,)):
                input_grads = _as_tuple(fn.backward(grad))
        if len(input_grads) < len(fn.inputs) and any(fn.needs_input_grad[len(input_grads):]):
            raise RuntimeError(f"{fn.name}.backward returned {len(input_grads)} gradients for "
                               f"{len(fn.inputs)} inputs; return one per input (None where there is none)")
        for tensor, input_grad, needed in zip(fn.inputs, input_grads, fn.needs_input_grad):
            if not needed or input_grad is None:
                continue
            if input_grad.shape != tensor.shape:
                raise RuntimeError(
                    f"{fn.name}.backward returned a gradient of shape {input_grad.shape} for an "
                    f"input of shape {tuple(tensor.shape)}"
                )
            if isinstance(input_grad, LaterGradient) and (tensor._ctx is not None or tensor._retains_grad
                                                          or id(tensor) in hooked_uses):
                input_grad = input_grad.result()
            if input_grad.dtype != tensor.dtype:  # e.g. a float64 constant met a float32 input
                input_grad = input_grad.result().astype(tensor.dtype) if isinstance(input_grad, LaterGradient) \
                    else input_grad.astype(tensor.dtype)
            if isinstance(input_grad, LaterGradient) or id(tensor) in later_leaves:
                later.append((tensor, input_grad))
                later_leaves.add(id(tensor))
            elif tensor._ctx is None or tensor._retains_grad:
                _accumulate_into_grad(tensor, input_grad, Tensor)
                if id(tensor) in hooked_uses:
                    accumulated.add(id(tensor))
            if tensor._ctx is not None:
                previous = pending.get(tensor._ctx)
                pending[tensor._ctx] = input_grad if previous is None else _sum_gradients(previous, input_grad)
        if hooked_uses:
            _count_down_uses(fn, hooked_uses, accumulated)
        if not retain_graph:
            fn.release()
    for tensor, grad in later:
        _accumulate_into_grad(tensor, grad.result() if isinstance(grad, LaterGradient) else grad, Tensor)


def _hooked_leaf_uses(order):
    """{id(leaf): how many inputs of the functions in ``order`` it is} for the leaves that have
    post-accumulate-grad hooks (``Tensor.register_post_accumulate_grad_hook``)."""
    uses = {}
    for fn in order:
        for tensor, needed in zip(fn.inputs, fn.needs_input_grad):
            if needed and tensor._ctx is None and tensor._post_accumulate_grad_hooks:
                uses[id(tensor)] = uses.get(id(tensor), 0) + 1
    return uses


def _count_down_uses(fn, uses, accumulated):
    """``fn``'s backward is done: a hooked leaf whose last use this was holds its whole gradient
    of this backward, so its hooks run now (while the engine goes on with the rest of the graph)."""
    for tensor, needed in zip(fn.inputs, fn.needs_input_grad):
        if needed and id(tensor) in uses:
            uses[id(tensor)] -= 1
            if uses[id(tensor)] == 0 and id(tensor) in accumulated:
                run_post_accumulate_grad_hooks(tensor)


def run_post_accumulate_grad_hooks(tensor):
    for hook in list(tensor._post_accumulate_grad_hooks.values()):
        hook(tensor)


def add_gradients(a, b):
    """a + b, a new array (either may be shared with another branch): the gradient of a tensor that
    several ops consumed.  Where a residual branch meets its shortcut these are activation-sized; a
    backend may register a faster twin (``registry.register_function``)."""
    return a + b


def _sum_gradients(a, b):
    return choose_function(add_gradients, (a, b))(a, b)


def _check_saved_inputs_unchanged(fn):
    """Raises if an input array that ``fn`` saved for backward was changed in place since forward
    (its gradient would silently use the new values)."""
    for index, (tensor, version) in enumerate(zip(fn.inputs, fn.input_versions)):
        if version is None or tensor._version == version:
            continue
        if any(saved is tensor.array for saved in vars(fn).values()):
            raise RuntimeError(
                f"one of the tensors needed for gradient computation has been modified by an in-place "
                f"operation: input {index} of {fn.name} (shape {tuple(tensor.shape)}) changed after the forward "
                "pass. Do the in-place change after backward(), or use an out-of-place op (x = x * 2)."
            )


def _accumulate_into_grad(tensor, grad, Tensor):
    # A fresh array, never an in-place add: `grad` may be shared with other branches,
    # and optimizers or clip_grad_norm_ may later change .grad in place.
    if tensor.grad is None:
        tensor.grad = Tensor._from_array(grad.copy())
    else:
        tensor.grad = Tensor._from_array(tensor.grad.array + grad)


class _VariableMeta(type):
    def __instancecheck__(cls, instance):
        from .tensor import Tensor
        return isinstance(instance, Tensor)


class Variable(metaclass=_VariableMeta):
    """PyTorch's legacy ``Variable``: since PyTorch 0.4 every Tensor is one. ``Variable(x)`` is a
    tensor sharing x's data (``requires_grad`` as given), and ``isinstance(x, Variable)`` holds for
    every Tensor, so old code (``from torch.autograd import Variable``) runs unchanged."""

    def __new__(cls, data, requires_grad=False, volatile=False):
        from .tensor import Tensor
        tensor = Tensor._from_array(data.array if isinstance(data, Tensor) else Tensor(data).array)
        return tensor.requires_grad_(requires_grad) if requires_grad else tensor


_profiler = None  # the active Profiler, if any


class Profiler:
    """Times every Function's forward and backward, by op type (``with Profiler() as p``).

    On a GPU the device is synchronised around each op so that the time is the op's own;
    that slows the step, so profile separately from the throughput measurement.
    """

    def __init__(self):
        self.totals = {}  # (op name, "forward" | "backward") -> [seconds, calls]

    def __enter__(self):
        global _profiler
        self._previous, _profiler = _profiler, self
        return self

    def __exit__(self, *exc):
        global _profiler
        _profiler = self._previous
        return False

    @contextlib.contextmanager
    def timing(self, name, phase, arrays):
        import time

        from .backend import get_array_module
        synchronize = _synchronizer(arrays, get_array_module)
        synchronize()
        start = time.perf_counter()
        yield
        synchronize()
        entry = self.totals.setdefault((name, phase), [0.0, 0])
        entry[0] += time.perf_counter() - start
        entry[1] += 1

    def table(self, steps=1):
        """Rows of (op, phase, milliseconds per step, calls per step), slowest first."""
        rows = [(name, phase, 1000 * seconds / steps, calls / steps)
                for (name, phase), (seconds, calls) in self.totals.items()]
        return sorted(rows, key=lambda row: -row[2])

    def report(self, steps=1):
        rows = self.table(steps)
        total = sum(row[2] for row in rows) or 1.0
        width = max([24] + [len(row[0]) + 2 for row in rows])  # the op's name, then at least two spaces
        lines = [f"{'op':<{width}}{'phase':<10}{'ms/step':>10}{'calls':>8}{'share':>8}"]
        lines += [f"{name:<{width}}{phase:<10}{ms:>10.2f}{calls:>8.0f}{ms / total:>8.1%}"
                  for name, phase, ms, calls in rows]
        lines.append(f"{'total (ops only)':<{width + 10}}{total:>10.2f}")
        return "\n".join(lines)


def _synchronizer(arrays, get_array_module):
    for array in arrays:
        xp = get_array_module(array) if array is not None and hasattr(array, "shape") else None
        if xp is not None and xp.__name__ == "cupy":
            return xp.cuda.get_current_stream().synchronize
    return lambda: None
