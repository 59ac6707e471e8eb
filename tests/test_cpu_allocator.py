"""minidl/backends/cpu/allocator.py: freed activation buffers stay in the heap instead of going back to the kernel."""
import subprocess
import sys
import textwrap

import pytest

from minidl.backends.cpu import allocator as cpu_allocator

# Like a training step: allocates and fills ten 8 MiB arrays (ResNet-20 first-stage activations at batch
# 128), then frees them all; 20 rounds.  Prints the minor page faults per round over the last 10: each
# fault is a page the kernel had to map and zero-fill again because the memory went back to it.
FAULTS_PER_ROUND = textwrap.dedent("""
    import resource, sys
    import numpy as np
    if sys.argv[1] == "minidl":
        import minidl
    def faults():
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for round in range(20):
        if round == 10:
            start = faults()
        activations = [np.ones(2 * 1024 * 1024, dtype=np.float32) for _ in range(10)]
        del activations
    print((faults() - start) / 10)
""")


def faults_per_round(mode, env_value=None):
    env = None
    if env_value is not None:
        import os
        env = dict(os.environ, MINIDL_MALLOC_TUNING=env_value)
    result = subprocess.run([sys.executable, "-c", FAULTS_PER_ROUND, mode], capture_output=True, text=True,
                            check=True, env=env)
    return float(result.stdout)


glibc_only = pytest.mark.skipif(cpu_allocator._glibc() is None, reason="the tuning applies to glibc only")


@glibc_only
def test_import_minidl_keeps_freed_arrays_in_the_heap():
    assert cpu_allocator.configure()
    without, with_minidl = faults_per_round("plain"), faults_per_round("minidl")
    assert without >= 4  # control: plain glibc maps the 8 MiB afresh each round (4 huge pages or 2048 small)
    assert with_minidl < 1


@glibc_only
def test_the_tuning_can_be_switched_off():
    assert faults_per_round("minidl", env_value="0") >= 4
