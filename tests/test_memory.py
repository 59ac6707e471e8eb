"""Memory: backward frees the graph, graphs hold no reference cycles, and a long training loop
keeps memory flat."""
import gc
import tracemalloc
import weakref

import numpy as np

import minidl


def test_backward_frees_intermediate_functions_and_saved_arrays():
    x = minidl.tensor(np.ones((4, 4)), requires_grad=True)
    hidden = (x * 2).exp()  # Exp saves its output array for backward
    function, array = weakref.ref(hidden.grad_fn), weakref.ref(hidden.array)
    loss = (hidden * 3).sum()
    del hidden
    assert function() is not None and array() is not None, "the graph must hold what backward needs"
    loss.backward()
    assert function() is None, "an intermediate Function outlived backward()"
    assert array() is None, "an array saved for backward outlived backward()"
    assert loss.grad_fn.__dict__ == {"released": True}, "the root function keeps nothing"


def test_retain_graph_keeps_the_graph_until_the_last_backward():
    x = minidl.tensor(np.ones(3), requires_grad=True)
    hidden = x.exp()
    function = weakref.ref(hidden.grad_fn)
    loss = (hidden * 2).sum()
    del hidden
    loss.backward(retain_graph=True)
    assert function() is not None
    loss.backward()
    assert function() is None


def test_an_unused_graph_dies_with_its_output_without_the_cycle_collector():
    gc.disable()
    try:
        x = minidl.tensor(np.ones(3), requires_grad=True)
        hidden = x.tanh()
        function, array = weakref.ref(hidden.grad_fn), weakref.ref(hidden.array)
        loss = (hidden * hidden).sum()
        del hidden, loss
        assert function() is None and array() is None, "the graph has a reference cycle"
    finally:
        gc.enable()


def _mlp_step(x, labels, w1, b1, w2, b2, keep=None):
    """One SGD step of a two-layer MLP with a softmax cross-entropy loss, from core ops only."""
    hidden = (x @ w1 + b1).tanh()
    logits = hidden @ w2 + b2
    shifted = logits - logits.amax(dim=1, keepdim=True)
    log_probs = shifted - shifted.exp().sum(dim=1, keepdim=True).log()
    loss = -log_probs[minidl.arange(len(labels)), labels].mean()
    loss.backward(retain_graph=keep is not None)
    if keep is not None:
        keep.append(loss)
    with minidl.no_grad():
        for p in (w1, b1, w2, b2):
            p -= 0.1 * p.grad
            p.grad = None
    return loss.item()


def _traced_growth(steps, keep=None):
    minidl.manual_seed(0)
    x = minidl.randn(16, 8)
    labels = minidl.randint(0, 4, (16,))
    w1, b1 = minidl.randn(8, 32, requires_grad=True), minidl.zeros(32, requires_grad=True)
    w2, b2 = minidl.randn(32, 4, requires_grad=True), minidl.zeros(4, requires_grad=True)
    losses = []  # the first and the last (a list of every loss would itself grow)
    tracemalloc.start()
    try:
        for step in range(steps):
            loss = _mlp_step(x, labels, w1, b1, w2, b2, keep)
            if step in (0, steps - 1):
                losses.append(loss)
            if step == 99:
                gc.collect()
                baseline = tracemalloc.get_traced_memory()[0]
        gc.collect()
        growth = tracemalloc.get_traced_memory()[0] - baseline
    finally:
        tracemalloc.stop()
    return growth, losses


def test_memory_stays_flat_over_two_thousand_training_steps():
    growth, losses = _traced_growth(2000)
    assert losses[-1] < losses[0], "the loop must actually train"
    # One step's graph holds ~8 KB of saved arrays and objects: 1900 leaked graphs would be ~15 MB.
    assert growth < 100_000, f"memory grew by {growth / 1e6:.2f} MB over 1900 steps"


def test_the_memory_check_detects_graphs_kept_alive():
    """The same measurement with every graph kept (a global list and retain_graph) fails the bound."""
    kept = []
    growth, _ = _traced_growth(200, keep=kept)
    assert growth > 100_000, f"kept graphs grew memory by only {growth} bytes: the check is blind"
