"""``Module.summary``: a Keras-like table of a network's layers, found by running it once.

Forward hooks on every leaf module record, in call order, the shape each layer
produced; one forward pass of a zero batch (in eval mode, without a graph, so no
running statistics change) fills the table.
"""
from ... import autograd, creation, dtypes
from ...tensor import Tensor


def _shape_of(output):
    """The output's shape with the batch dimension shown as None, as Keras prints it."""
    if isinstance(output, Tensor):
        return str((None,) + tuple(output.shape[1:])) if output.ndim else "()"
    if isinstance(output, (tuple, list)):
        return ", ".join(_shape_of(item) for item in output)
    return type(output).__name__


def _record_rows(model, batch):
    """(name, type, output shape, own parameter count) per leaf-layer call, in call order."""
    names = {id(module): name for name, module in model.named_modules()}
    leaves = [module for module in model.modules() if not module._modules]
    counted, rows = set(), []

    def hook(module, args, output):
        first_call = id(module) not in counted  # a layer used twice owns its parameters once
        counted.add(id(module))
        count = sum(p.numel() for p in module.parameters(recurse=False)) if first_call else 0
        rows.append((names[id(module)] or type(module).__name__, type(module).__name__, _shape_of(output), count))

    handles = [module.register_forward_hook(hook) for module in leaves]
    was_training = model.training
    try:
        model.eval()
        with autograd.no_grad():
            model(batch)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return rows


def summarize(model, input_shape, batch_size=2, dtype=None, device=None):
    """The summary table as text; ``input_shape`` excludes the batch dimension."""
    input_shape = (input_shape,) if isinstance(input_shape, int) else tuple(input_shape)
    first = next(model.parameters(), None)
    if dtype is None:
        dtype = first.dtype if first is not None else dtypes.get_default_dtype()
    if device is None and first is not None:
        device = first.device
    batch = creation.zeros((batch_size,) + input_shape, dtype=dtype, device=device)
    rows = _record_rows(model, batch)
    headers = ("Layer (name)", "Type", "Output shape", "Param #")
    table = [headers] + [(name, kind, shape, f"{count:,}") for name, kind, shape, count in rows]
    widths = [max(len(row[i]) for row in table) for i in range(4)]

    def line(row):  # text columns left-aligned, the count right-aligned
        cells = [cell.ljust(width) for cell, width in zip(row[:3], widths)]
        return "  ".join(cells + [row[3].rjust(widths[3])])

    rule = "=" * len(line(headers))
    total = model.num_parameters()
    trainable = model.num_parameters(trainable_only=True)
    lines = [f"{type(model).__name__} on input {(None,) + input_shape}", rule, line(headers), rule]
    lines += [line(row) for row in table[1:]]
    lines += [rule, f"Total params: {total:,}", f"Trainable params: {trainable:,}",
              f"Non-trainable params: {total - trainable:,}", rule]
    return "\n".join(lines)
