"""The backend seam (minidl/backends/registry.py): which implementation runs, and the reference switch.

Also the rule that keeps the reference ops readable: no module in minidl/functions/ imports numba,
threads, a backend or CUDA code.
"""
import ast
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import minidl
from minidl.autograd import Function
from minidl.backends import registry

FUNCTIONS = pathlib.Path(minidl.__file__).parent / "functions"
FORBIDDEN_IN_FUNCTIONS = ("numba", "threading", "concurrent", "multiprocessing", "cupy", "backends", "cuda")


def imported_names(path, package="minidl.functions"):
    """Every module name a file of ``package`` imports (relative imports resolved)."""
    parents = package.split(".")
    names = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(parents[:len(parents) + 1 - node.level]) if node.level else ""
            module = ".".join(part for part in (base, node.module or "") if part)
            names += [module] + [f"{module}.{alias.name}" for alias in node.names]
    return names


def forbidden_imports(path):
    return sorted({name for name in imported_names(path)
                   if any(part in FORBIDDEN_IN_FUNCTIONS for part in name.split("."))})


def test_reference_ops_import_no_numba_threads_backend_or_cuda():
    modules = sorted(FUNCTIONS.glob("*.py"))
    assert len(modules) >= 10
    offenders = {path.name: forbidden_imports(path) for path in modules if forbidden_imports(path)}
    assert not offenders, f"minidl/functions/ must hold only the reference ops: {offenders}"


def test_the_import_check_catches_each_kind_of_forbidden_import(tmp_path):
    source = tmp_path / "op.py"
    for line in ("import numba", "from concurrent.futures import ThreadPoolExecutor", "import threading",
                 "from ..backends.cpu import kernels", "from ..backends import registry", "from .. import cuda",
                 "from ..cuda import ops", "import cupy"):
        source.write_text(f"import numpy as np\n{line}\n")
        assert forbidden_imports(source), line
    source.write_text("from ..autograd import Function\nfrom ..backend import get_array_module\nfrom . import conv\n")
    assert forbidden_imports(source) == []


def test_the_engine_imports_no_backend():
    autograd = pathlib.Path(minidl.__file__).parent / "autograd.py"
    names = set(imported_names(autograd, package="minidl"))
    assert "minidl.backends.registry" in names  # the seam itself
    assert not [name for name in names if name.startswith(("minidl.backends.cpu", "minidl.backends.cuda",
                                                            "minidl.cuda", "minidl.functions", "numba"))]


# ---------------------------------------------------------------- registry
class Double(Function):
    """y = 2x (a toy reference op for the registry tests)."""

    def forward(self, x):
        return x * 2

    def backward(self, g):
        return g * 2


@pytest.fixture
def registered_double():
    """A fast Double for CPU arrays with more than 3 values, removed again after the test."""
    @registry.register(Double, "cpu")
    class DoubleFast(Double):
        @classmethod
        def supports(cls, inputs, params):
            return inputs[0].array.size > 3

        def forward(self, x):
            return x + x

    yield DoubleFast
    del registry._fast[Double]


def test_choose_returns_the_first_fast_class_that_supports_the_call(registered_double):
    with registry.reference(False):
        assert registry.choose(Double, (minidl.ones(4),), {}) is registered_double
        assert registry.choose(Double, (minidl.ones(3),), {}) is Double  # not supported: the reference
        assert type(Double.apply(minidl.ones(4, requires_grad=True)).grad_fn) is registered_double
    assert registry.implementations(Double, "cpu") == [registered_double]
    assert registry.implementations(Double, "cuda") == []


def test_reference_forces_the_reference_and_restores_the_previous_choice(registered_double):
    x = minidl.ones(4)
    with registry.reference(False):
        with minidl.backends.reference():
            assert registry.using_reference()
            assert registry.choose(Double, (x,), {}) is Double
        assert not registry.using_reference()
        assert registry.choose(Double, (x,), {}) is registered_double
        minidl.backends.use_reference(True)
        try:
            assert registry.choose(Double, (x,), {}) is Double
        finally:
            minidl.backends.use_reference(False)
        assert registry.choose(Double, (x,), {}) is registered_double


def test_register_refuses_a_class_that_is_not_a_twin_of_its_reference():
    with pytest.raises(TypeError, match="must subclass its reference Double"):
        registry.register(Double, "cpu")(type("Other", (Function,), {"supports": classmethod(lambda c, i, p: 1)}))
    with pytest.raises(TypeError, match="supports"):
        registry.register(Double, "cpu")(type("NoSupports", (Double,), {}))
    with pytest.raises(ValueError, match="'cpu' or 'cuda'"):
        registry.register(Double, "tpu")
    assert Double not in registry._fast


def test_register_function_replaces_a_plain_function_on_its_device():
    def reference_sum(a, b):
        return a + b

    @registry.register_function(reference_sum, "cpu")
    def fast_sum(a, b):
        return np.add(a, b)

    try:
        with registry.reference(False):
            assert registry.choose_function(reference_sum, (np.zeros(2), np.zeros(2))) is fast_sum
        with registry.reference(True):
            assert registry.choose_function(reference_sum, (np.zeros(2), np.zeros(2))) is reference_sum
    finally:
        del registry._fast_functions[reference_sum, "cpu"]


def test_every_registered_class_subclasses_its_reference_and_says_what_it_supports():
    for device_type in registry.DEVICE_TYPES:
        for reference, classes in registry.registered(device_type).items():
            for fast in classes:
                assert issubclass(fast, reference) and "supports" in vars(fast)
                assert fast.__module__.startswith(f"minidl.backends.{device_type}."), fast


def test_minidl_reference_environment_variable_forces_the_reference_at_import():
    code = ("import minidl\n"
            "from minidl.functions.conv import Conv2d\n"
            "x, w = minidl.randn(1, 3, 5, 5), minidl.randn(2, 3, 3, 3)\n"
            "print(minidl.backends.using_reference(), type(minidl.nn.functional.conv2d(x, w.requires_grad_()).grad_fn)"
            ".__name__)")
    env = dict(os.environ, PYTHONPATH=str(pathlib.Path(minidl.__file__).parent.parent))
    for value, expected in (("1", "True Conv2d"), ("0", "False Conv2dChannelsLast")):
        result = subprocess.run([sys.executable, "-c", code], env=dict(env, MINIDL_REFERENCE=value),
                                capture_output=True, text=True, check=True)
        assert result.stdout.split() == expected.split()
