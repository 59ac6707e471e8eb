"""The autograd engine: accumulation, backward(gradient), graph freeing, no_grad, detach,
shared subexpressions, deep graphs, retain_grad and custom Functions."""
import numpy as np
import pytest

import minidl
from minidl.autograd import Function


def leaf(values, dtype=minidl.float64):
    return minidl.tensor(values, dtype=dtype, requires_grad=True)


def test_gradients_accumulate_across_backward_calls():
    x = leaf([1.0, 2.0])
    (x * x).sum().backward()
    assert x.grad.tolist() == [2.0, 4.0]
    (x * 3).sum().backward()
    assert x.grad.tolist() == [5.0, 7.0]
    x.grad = None
    (x * 3).sum().backward()
    assert x.grad.tolist() == [3.0, 3.0]


def test_grad_is_a_fresh_tensor_of_the_leaf_dtype():
    x = leaf([1.0, 2.0], dtype=minidl.float32)
    y = x + 0
    y.backward(minidl.tensor([1.0, 1.0], dtype=minidl.float64))
    assert isinstance(x.grad, minidl.Tensor) and x.grad.dtype == minidl.float32 and not x.grad.requires_grad
    upstream = minidl.tensor([2.0, 3.0])
    z = x * 1
    x.grad = None
    z.backward(upstream)
    x.grad.array[0] = 100.0
    assert upstream.tolist() == [2.0, 3.0], "x.grad must not alias the caller's gradient"


def test_backward_with_a_gradient_for_non_scalar_outputs():
    x = leaf([[1.0, 2.0], [3.0, 4.0]])
    y = x * x
    y.backward(minidl.tensor([[1.0, 0.0], [2.0, -1.0]]))
    assert x.grad.tolist() == [[2.0, 0.0], [12.0, -8.0]]
    z = x * 2
    z.backward(np.ones((2, 2)))  # an array works too
    assert x.grad.tolist() == [[4.0, 2.0], [14.0, -6.0]]


def test_backward_on_non_scalar_without_gradient_explains_itself():
    y = leaf([1.0, 2.0]) * 2
    with pytest.raises(RuntimeError, match=r"only for scalar outputs.*shape \(2,\).*backward\(gradient\)"):
        y.backward()
    with pytest.raises(RuntimeError, match="shape"):
        y.backward(minidl.ones(3))


def test_backward_on_tensor_without_grad_raises():
    with pytest.raises(RuntimeError, match="does not require grad"):
        minidl.tensor([1.0]).sum().backward()


def test_second_backward_through_a_freed_graph_raises():
    x = leaf([1.0, 2.0])
    loss = (x.exp() * 2).sum()
    loss.backward()
    with pytest.raises(RuntimeError, match="second time.*retain_graph=True"):
        loss.backward()


def test_retain_graph_allows_a_second_backward():
    x = leaf([1.0, 2.0])
    loss = (x.exp() * 2).sum()
    loss.backward(retain_graph=True)
    first = x.grad.numpy().copy()
    loss.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * first)
    np.testing.assert_allclose(first, 2 * np.exp([1.0, 2.0]))


def test_no_grad_records_nothing():
    x = leaf([1.0, 2.0])
    with minidl.no_grad():
        y = (x * 2).exp().sum()
    assert not y.requires_grad and y.grad_fn is None and y.is_leaf
    with pytest.raises(RuntimeError):
        y.backward()
    assert minidl.is_grad_enabled()

    @minidl.no_grad()
    def recursive(n):
        return x * 2 if n == 0 else recursive(n - 1)

    assert not recursive(3).requires_grad
    assert minidl.is_grad_enabled(), "a decorated recursive call must restore grad mode"
    with minidl.no_grad():
        with minidl.enable_grad():
            assert (x * 2).requires_grad
        assert not (x * 2).requires_grad
    with minidl.set_grad_enabled(False):
        assert not (x * 2).requires_grad
    assert (x * 2).requires_grad


def test_detach_stops_gradients():
    x = leaf([1.0, 2.0])
    y = x * 3
    z = (y.detach() * y).sum()  # d/dx = 3 * y.detach() (the detached factor is a constant)
    z.backward()
    assert x.grad.tolist() == [9.0, 18.0]


def test_diamond_graph_sums_gradients_of_shared_subexpressions():
    x = leaf([1.0, 2.0, 3.0])
    shared = x * x            # used by two branches
    left = shared.exp()
    right = shared * 3
    loss = (left + right + shared).sum()
    loss.backward()
    expected = (np.exp(np.array([1.0, 4.0, 9.0])) + 3 + 1) * 2 * np.array([1.0, 2.0, 3.0])
    np.testing.assert_allclose(x.grad.numpy(), expected, rtol=1e-13)
    y = leaf([2.0])
    (y * y * y).sum().backward()  # one leaf used twice in the same op and again later
    assert y.grad.tolist() == [12.0]


def test_topological_order_and_no_recursion_limit_on_deep_chains():
    x = leaf([1.0])
    y = x
    for _ in range(5000):
        y = y * 1.0001 + 0.0
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [1.0001 ** 5000], rtol=1e-10)
    # a deep graph that is dropped without backward frees without hitting the recursion limit
    z = x
    for _ in range(20000):
        z = z + 1.0
    del z


def test_each_function_runs_backward_once_with_the_summed_gradient():
    calls = []

    class Recorder(Function):
        def forward(self, x):
            return x.copy()

        def backward(self, g):
            calls.append(g.copy())
            return g

    x = leaf([1.0, 2.0])
    shared = Recorder.apply(x)
    (shared * 2 + shared * 3 + shared).sum().backward()
    assert len(calls) == 1 and calls[0].tolist() == [6.0, 6.0]
    assert x.grad.tolist() == [6.0, 6.0]


def test_retain_grad_keeps_gradients_of_non_leaves():
    x = leaf([1.0, 2.0])
    hidden = x * 2
    hidden.retain_grad()
    out = hidden * hidden
    out.retain_grad()
    loss = out.sum()
    loss.backward()
    assert hidden.grad.tolist() == [4.0, 8.0]
    assert out.grad.tolist() == [1.0, 1.0]
    assert x.grad.tolist() == [8.0, 16.0]
    other = x * 5
    other.backward(minidl.tensor([1.0, 1.0], dtype=minidl.float64))
    assert other.grad is None, "non-leaves keep no .grad unless retain_grad() was called"


def test_backward_on_a_leaf_sets_its_gradient():
    x = leaf([3.0])
    x.backward()
    assert x.grad.tolist() == [1.0]


def test_inputs_that_do_not_require_grad_get_no_gradient():
    x = leaf([1.0, 2.0])
    c = minidl.tensor([3.0, 4.0], dtype=minidl.float64)
    (x * c).sum().backward()
    assert c.grad is None and x.grad.tolist() == [3.0, 4.0]


def test_custom_function_with_params_and_none_gradients():
    class ScaleFirst(Function):
        """y = a * scale (b is only read).  dL/da = g * scale, nothing for b."""

        def forward(self, a, b, scale=1.0):
            self.scale = scale
            return a * scale + 0 * b

        def backward(self, g):
            return g * self.scale, None

    a, b = leaf([1.0, 2.0]), leaf([5.0, 6.0])
    y = ScaleFirst.apply(a, b, scale=3.0)
    assert y.grad_fn is not None and "ScaleFirst" in repr(y.grad_fn)
    y.sum().backward()
    assert a.grad.tolist() == [3.0, 3.0] and b.grad is None


def test_wrong_gradient_shape_from_a_function_is_reported():
    class Broken(Function):
        def forward(self, x):
            return x.sum()

        def backward(self, g):
            return g  # should be broadcast to x's shape

    with pytest.raises(RuntimeError, match=r"Broken\.backward returned a gradient of shape \(\) .* \(3,\)"):
        Broken.apply(leaf([1.0, 2.0, 3.0])).backward()


def test_integer_inputs_flow_through_without_gradients():
    x = leaf([[1.0, 2.0], [3.0, 4.0]])
    index = minidl.tensor([1, 0])
    (x[index] * 2).sum().backward()
    assert x.grad.tolist() == [[2.0, 2.0], [2.0, 2.0]]


def test_too_few_gradients_from_a_function_are_reported():
    class Forgetful(Function):
        def forward(self, a, b):
            return a * b

        def backward(self, g):
            return g  # forgot the gradient of b

    with pytest.raises(RuntimeError, match=r"Forgetful\.backward returned 1 gradients for 2 inputs"):
        Forgetful.apply(leaf([1.0]), leaf([2.0])).sum().backward()


def test_set_grad_enabled_as_a_call_and_as_a_context():
    minidl.set_grad_enabled(False)
    try:
        assert not minidl.is_grad_enabled()
    finally:
        minidl.set_grad_enabled(True)
    with minidl.set_grad_enabled(False):
        assert not minidl.is_grad_enabled()
    assert minidl.is_grad_enabled()


def test_inplace_change_of_a_saved_input_before_backward_raises():
    w = leaf([1.0, 2.0])
    x = minidl.tensor([3.0, 4.0], dtype=minidl.float64)
    loss = (w * x).sum()  # Mul saved x's array for dL/dw
    x.mul_(10)
    with pytest.raises(RuntimeError, match=r"modified by an in-place operation: input 1 of Mul"):
        loss.backward()
    loss = (w * x).sum()
    with minidl.no_grad():
        w -= 0.5  # an SGD step before backward: Mul needs w for dL/dx... and x does not need grad
    loss.backward()  # nothing that backward reads changed: fine
    assert w.grad.tolist() == [30.0, 40.0]
    y = w + x  # Add saves no inputs: changing them in place is harmless, as in PyTorch
    x[0] = 0.0
    y.sum().backward()
    assert w.grad.tolist() == [31.0, 41.0]


class Pending:
    """A stand-in for a gradient still being computed: ``result()`` logs when it is asked for."""

    def __init__(self, value, log):
        self.value, self.log = value, log

    def result(self):
        self.log.append("result")
        return self.value


def scale_by(factor, later, log):
    """A Function y = factor * x whose backward logs itself and returns dL/dx now or as a LaterGradient."""
    from minidl.autograd import LaterGradient

    class Scale(Function):
        def forward(self, x):
            return x * factor

        def backward(self, g):
            log.append(f"backward {factor}")
            grad = g * factor
            return LaterGradient(grad.shape, grad.dtype, Pending(grad, log)) if later else grad

    return Scale


def test_a_later_gradient_is_added_after_the_graph_in_the_order_the_gradients_came():
    # 2**53 + 3 rounds to 2**53 + 4, 3 - 2**53 is exact: the sum of these three depends on the order of the adds
    factors = (3.0, 2.0**53, -2.0**53)
    expected_log = []
    w = leaf([1.0])
    sum(scale_by(f, False, expected_log).apply(w) for f in factors).sum().backward()
    expected = w.grad.array.copy()
    for deferred in range(3):
        log = []
        w = leaf([1.0])
        sum(scale_by(f, i == deferred, log).apply(w) for i, f in enumerate(factors)).sum().backward()
        np.testing.assert_array_equal(w.grad.array, expected)
        assert log == expected_log + ["result"]  # asked for once, after every backward ran
    assert expected.tolist() != [sum(sorted(factors))]  # the order matters for these values


def test_a_later_gradient_for_a_tensor_with_a_graph_is_taken_at_once():
    log = []
    w = leaf([2.0])
    hidden = w * 5.0
    scale_by(3.0, True, log).apply(hidden).sum().backward()
    assert w.grad.tolist() == [15.0]
    assert log == ["backward 3.0", "result"]


def test_a_later_gradient_for_a_leaf_with_hooks_is_taken_at_once():
    log = []
    w = leaf([2.0])
    w.register_post_accumulate_grad_hook(lambda tensor: log.append(f"hook {tensor.grad.tolist()}"))
    (scale_by(3.0, True, log).apply(w) + scale_by(4.0, False, log).apply(w)).sum().backward()
    assert w.grad.tolist() == [7.0]
    assert log.index("result") < log.index("hook [7.0]") and log.count("result") == 1
