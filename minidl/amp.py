"""Mixed precision: ``autocast``, ``GradScaler`` and the TF32 switch.

Autocast
--------
Inside ``with minidl.amp.autocast(dtype="bfloat16"):`` (or ``"float16"``) the GEMMs of
convolutions, ``linear`` and ``matmul`` take their float32 inputs in the low precision and
accumulate and return in float32; parameters stay float32 ("master weights") and every
other op runs in float32 as before.  float64 inputs are never cast (as in PyTorch).

How an op takes part (conv2d, linear, MatMul): in ``forward`` read the active mode once and
keep it for ``backward`` -- backward usually runs after the ``with`` block has closed::

    self.compute_dtype = amp.autocast_dtype()          # None, "bfloat16" or "float16"
    y = amp.matmul(a, b, self.compute_dtype)           # instead of a @ b
    ...
    grad_a = amp.matmul(g, b.T, self.compute_dtype)    # in backward, the same mode

``amp.matmul(a, b, None)`` is exactly ``a @ b``.

How the low precision is computed:

* On a GPU, float16 and bfloat16 GEMMs go to cuBLAS ``cublasGemmEx`` with 16-bit inputs
  (``CUDA_R_16F`` / ``CUDA_R_16BF``), float32 accumulation (``CUBLAS_COMPUTE_32F``) and a
  float32 output: the tensor-core path.  CuPy and NumPy have no bfloat16 dtype, so bfloat16
  operands are held as their uint16 bit patterns, made by the round-to-nearest-even kernel in
  ``kernels/bf16.cu``.  The first operand may carry batch dims (they fold into its rows); a
  second operand with a batch dim larger than 1 takes the emulation below.
* Elsewhere (CPU, batched second operands) it is emulated: each input is rounded to the 16-bit
  format and the GEMM runs in float32.  A product of two bf16 (8-bit significand) or fp16
  (11-bit) numbers is exact in float32 (24 bits), so the result differs from the tensor-core
  one only in the order of the float32 additions.

Tolerance: rounding an input to bf16 changes it by at most 2^-9 relative (half an ulp of an
8-bit significand), fp16 by 2^-12.  A dot product of rounded inputs is off from the float32 one
by at most about 2 * 2^-9 * sum|a_i b_i| (bf16; 2 * 2^-12 for fp16), the bound
tests/test_amp.py checks.  The tests also hold the low-precision GEMMs to rtol 1e-5 of the
exact product of the rounded inputs, and a bf16 ResNet-20 forward to a loss within 5e-3
relative of float32 (measured: 2e-4 for a batch of 32 at initialisation).

GradScaler
----------
Dynamic loss scaling for float16 (whose range underflows small gradients), with
``torch.amp.GradScaler``'s semantics: ``scale(loss)``, ``unscale_(optimizer)``,
``step(optimizer)`` (skipped when a gradient is inf/NaN), ``update()`` (scale * 0.5 after an
overflow; * 2 after ``growth_interval`` clean steps).

TF32
----
``set_tf32(True)`` lets cuBLAS run float32 GEMMs on tensor cores with TF32 inputs (10-bit
mantissa): CuPy's compute type for float32 becomes ``COMPUTE_TYPE_TF32`` (and ``CUPY_TF32=1``
is set for a CuPy imported later).
"""
import contextlib
import math
import os
import threading

import numpy as np

from .backend import cupy_if_imported, get_array_module

_state = threading.local()
_LOW_PRECISION = {"bfloat16": "bfloat16", "bf16": "bfloat16", "float16": "float16", "half": "float16",
                  "fp16": "float16"}
bfloat16 = "bfloat16"  # minidl has no bfloat16 array dtype; autocast takes this name
float16 = np.dtype(np.float16)


def _dtype_name(dtype):
    """'bfloat16' or 'float16' for any spelling (string, np.float16, ml_dtypes.bfloat16, ...)."""
    name = dtype if isinstance(dtype, str) else getattr(dtype, "__name__", None)
    if name is None:
        try:
            name = str(np.dtype(dtype))
        except TypeError:
            name = repr(dtype)
    name = str(name).replace("minidl.", "").replace("torch.", "")
    if name not in _LOW_PRECISION:
        raise ValueError(f"autocast: unknown dtype {dtype!r}; valid choices are 'bfloat16' and 'float16'")
    return _LOW_PRECISION[name]


def autocast_dtype():
    """The active autocast dtype: None (off), 'bfloat16' or 'float16'."""
    return getattr(_state, "dtype", None)


def is_autocast_enabled():
    return autocast_dtype() is not None


class autocast(contextlib.ContextDecorator):
    """``with autocast(dtype="bfloat16"):`` runs GEMMs in bf16 with float32 accumulation.

    Also ``autocast("cuda")`` / ``autocast("cpu", dtype=...)`` as in PyTorch; the default dtype
    follows PyTorch (float16 for "cuda", bfloat16 for "cpu").  Nesting works; an inner
    ``autocast(enabled=False)`` turns it off for its block.
    """

    def __init__(self, device_type="cuda", dtype=None, enabled=True, cache_enabled=None):
        if device_type not in ("cuda", "cpu"):
            if dtype is None:  # autocast("bfloat16"): the dtype given first
                device_type, dtype = "cuda", device_type
            else:
                raise ValueError(f"autocast: unknown device_type {device_type!r}; valid: 'cuda', 'cpu'")
        if dtype is None:
            dtype = "float16" if device_type == "cuda" else "bfloat16"
        self.device_type = device_type
        self.dtype = _dtype_name(dtype)
        self.enabled = bool(enabled)

    def __enter__(self):
        self._previous = autocast_dtype()
        _state.dtype = self.dtype if self.enabled else None
        return self

    def __exit__(self, *exc):
        _state.dtype = self._previous
        return False


# ---------------------------------------------------------------------------------- rounding
def round_to_bfloat16(x):
    """float32 values rounded to the nearest bfloat16 (ties to even), still stored as float32.

    bf16 is float32 with the low 16 mantissa bits dropped: add half of the dropped range
    (0x7FFF, plus 1 when the lowest kept bit is set, which makes ties go to even) to the bits,
    then clear the low 16 bits.  NaN stays NaN; overflow past bf16's max becomes inf.
    """
    xp = get_array_module(x)
    x = xp.ascontiguousarray(x, dtype=xp.float32)
    bits = x.view(xp.uint32)
    lsb = (bits >> 16) & 1
    rounded = ((bits + 0x7FFF + lsb) & 0xFFFF0000).astype(xp.uint32)
    rounded = xp.where(xp.isnan(x), bits | 0x00400000, rounded).astype(xp.uint32)
    return rounded.view(xp.float32)


def round_to_float16(x):
    xp = get_array_module(x)
    return x.astype(xp.float16).astype(xp.float32)


def _round(x, compute_dtype):
    return round_to_bfloat16(x) if compute_dtype == "bfloat16" else round_to_float16(x)


# ---------------------------------------------------------------------------------- GEMM
def matmul(a, b, compute_dtype=None):
    """``a @ b`` in ``compute_dtype`` (None, 'bfloat16' or 'float16') with float32 accumulation.

    Only float32 operands are cast; the result is float32 (the master precision).
    """
    if compute_dtype is None or a.dtype != np.float32 or b.dtype != np.float32:
        return a @ b
    xp = get_array_module(a)
    if xp is not np and a.ndim >= 2 and b.ndim >= 2 and all(d == 1 for d in b.shape[:-2]):
        lead = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
        return _gemm_ex(a, b.reshape(b.shape[-2:]), compute_dtype).reshape(lead + (a.shape[-2], b.shape[-1]))
    return _round(a, compute_dtype) @ _round(b, compute_dtype)


def autocast_matmul(a, b):
    """``matmul`` in the active autocast mode (for ops whose backward needs no GEMM)."""
    return matmul(a, b, autocast_dtype())


_CUDA_R_32F, _CUDA_R_16F, _CUDA_R_16BF = 0, 2, 14
_CUBLAS_COMPUTE_32F = 68
_CUBLAS_GEMM_DEFAULT = -1


def _cublas():
    try:
        from cupy_backends.cuda.libs import cublas
    except ImportError:  # older CuPy
        from cupy.cuda import cublas
    return cublas


def _gemm_ex(a, b, compute_dtype):
    """(..., M, K) @ (K, N) with 16-bit inputs, float32 accumulation and output, via cuBLAS."""
    import cupy
    from .backends.cuda.bf16 import float_to_bf16_bits
    lead, (M, K), N = a.shape[:-2], a.shape[-2:], b.shape[1]
    if b.shape[0] != K:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not line up (K = {K} vs {b.shape[0]})")
    rows = int(np.prod(lead, dtype=np.int64)) * M
    if compute_dtype == "bfloat16":
        a16, b16, kind = float_to_bf16_bits(a.reshape(rows, K)), float_to_bf16_bits(b), _CUDA_R_16BF
    else:
        a16 = cupy.ascontiguousarray(a.reshape(rows, K), dtype=cupy.float16)
        b16, kind = cupy.ascontiguousarray(b, dtype=cupy.float16), _CUDA_R_16F
    out = cupy.empty((rows, N), dtype=cupy.float32)
    one, zero = np.ones(1, dtype=np.float32), np.zeros(1, dtype=np.float32)
    # Row-major C = A B is column-major C^T = B^T A^T: hand cuBLAS B first.
    _cublas().gemmEx(cupy.cuda.device.get_cublas_handle(), 0, 0, N, rows, K, one.ctypes.data,
                     b16.data.ptr, kind, N, a16.data.ptr, kind, K, zero.ctypes.data,
                     out.data.ptr, _CUDA_R_32F, N, _CUBLAS_COMPUTE_32F, _CUBLAS_GEMM_DEFAULT)
    return out.reshape(lead + (M, N))


# ---------------------------------------------------------------------------------- TF32
_tf32 = False


def set_tf32(enabled):
    """Lets float32 GEMMs use TF32 tensor cores (True) or keeps them exact float32 (False)."""
    global _tf32
    _tf32 = bool(enabled)
    os.environ["CUPY_TF32"] = "1" if _tf32 else "0"
    cupy = cupy_if_imported()
    if cupy is not None:
        from cupy._core import _routines_linalg as linalg
        # CuPy's compute-type enum (cupy/_core/_routines_linalg.pxd): DEFAULT = 1, TF32 = 7
        tf32, default = getattr(linalg, "COMPUTE_TYPE_TF32", 7), getattr(linalg, "COMPUTE_TYPE_DEFAULT", 1)
        compute_type = tf32 if _tf32 else default
        linalg.set_compute_type(np.float32, compute_type)


def tf32_enabled():
    return _tf32


# ---------------------------------------------------------------------------------- GradScaler
_READY, _UNSCALED, _STEPPED = "ready", "unscaled", "stepped"


def _found_inf(state):
    """Whether a gradient held inf/NaN: the per-gradient flags ``unscale_`` left on their devices, read
    with one host synchronisation per device (then kept as a bool)."""
    flags = state["found_inf"]
    if isinstance(flags, list):
        by_device = {}
        for flag in flags:
            by_device.setdefault(get_array_module(flag), []).append(flag)
        state["found_inf"] = not all(bool(xp.stack(group).all()) for xp, group in by_device.items())
    return state["found_inf"]


class GradScaler:
    """Dynamic loss scaling, as ``torch.amp.GradScaler``::

        scaler = GradScaler()
        with autocast(dtype="float16"):
            loss = loss_fn(model(x), y)
        scaler.scale(loss).backward()
        scaler.step(optimizer)       # unscales, skips the step if a gradient is inf/NaN
        scaler.update()              # halves the scale after an overflow, doubles it
                                     # after growth_interval overflow-free steps
    """

    def __init__(self, device="cuda", init_scale=2.0**16, growth_factor=2.0, backoff_factor=0.5,
                 growth_interval=2000, enabled=True):
        if growth_factor <= 1.0:
            raise ValueError(f"growth_factor must be > 1, got {growth_factor}")
        if not 0.0 < backoff_factor < 1.0:
            raise ValueError(f"backoff_factor must be in (0, 1), got {backoff_factor}")
        self.device = device
        self._enabled = bool(enabled)
        self._scale = float(np.float32(init_scale))
        self._growth_factor = growth_factor
        self._backoff_factor = backoff_factor
        self._growth_interval = int(growth_interval)
        self._growth_tracker = 0
        self._per_optimizer = {}  # id(optimizer) -> {"stage": ..., "found_inf": bool}

    def is_enabled(self):
        return self._enabled

    def get_scale(self):
        return self._scale if self._enabled else 1.0

    def get_growth_factor(self):
        return self._growth_factor

    def get_backoff_factor(self):
        return self._backoff_factor

    def get_growth_interval(self):
        return self._growth_interval

    def _optimizer_state(self, optimizer):
        return self._per_optimizer.setdefault(id(optimizer), {"stage": _READY, "found_inf": None})

    def scale(self, outputs):
        """``outputs * scale`` (a tensor, or a list/tuple of them)."""
        if not self._enabled:
            return outputs
        if isinstance(outputs, (list, tuple)):
            return type(outputs)(self.scale(output) for output in outputs)
        return outputs * self._scale

    def unscale_(self, optimizer):
        """Divides every gradient of ``optimizer`` by the scale and records whether any is inf/NaN."""
        if not self._enabled:
            return
        state = self._optimizer_state(optimizer)
        if state["stage"] == _UNSCALED:
            raise RuntimeError("unscale_() has already been called on this optimizer since the last update().")
        if state["stage"] == _STEPPED:
            raise RuntimeError("unscale_() is being called after step().")
        inv_scale = float(np.float32(1.0 / self._scale))  # PyTorch: float64 reciprocal, then float32
        finite = []  # per gradient, a 0-d array on its device: read once, when step() needs the answer
        for group in optimizer.param_groups:
            for param in group["params"]:
                if param.grad is None:
                    continue
                grad = param.grad.array
                grad *= grad.dtype.type(inv_scale)  # a scalar argument: nothing is copied to the device
                finite.append(get_array_module(grad).isfinite(grad).all())
        state["found_inf"] = finite or None
        state["stage"] = _UNSCALED

    def step(self, optimizer, *args, **kwargs):
        """Unscales (if not done yet) and runs ``optimizer.step()`` unless a gradient overflowed."""
        if not self._enabled:
            return optimizer.step(*args, **kwargs)
        if "closure" in kwargs:
            raise RuntimeError("Closure use is not currently supported if GradScaler is enabled.")
        state = self._optimizer_state(optimizer)
        if state["stage"] == _STEPPED:
            raise RuntimeError("step() has already been called since the last update().")
        if state["stage"] == _READY:
            self.unscale_(optimizer)
        if state["found_inf"] is None:
            raise AssertionError("No inf checks were recorded for this optimizer.")
        result = None if _found_inf(state) else optimizer.step(*args, **kwargs)
        state["stage"] = _STEPPED
        return result

    def update(self, new_scale=None):
        """Adjusts the scale for the next iteration (or sets it to ``new_scale``)."""
        if not self._enabled:
            return
        if new_scale is not None:
            self._scale = float(np.float32(float(new_scale)))
        else:
            checks = [_found_inf(s) for s in self._per_optimizer.values() if s["found_inf"] is not None]
            if not checks:
                raise AssertionError("No inf checks were recorded prior to update.")
            if any(checks):
                self._scale = float(np.float32(self._scale * self._backoff_factor))
                self._growth_tracker = 0
            else:
                self._growth_tracker += 1
                if self._growth_tracker == self._growth_interval:
                    grown = float(np.float32(self._scale * self._growth_factor))
                    if math.isfinite(grown):
                        self._scale = grown
                    self._growth_tracker = 0
        self._per_optimizer = {}

    def state_dict(self):
        if not self._enabled:
            return {}
        return {"scale": self._scale, "growth_factor": self._growth_factor, "backoff_factor": self._backoff_factor,
                "growth_interval": self._growth_interval, "_growth_tracker": self._growth_tracker}

    def load_state_dict(self, state_dict):
        if not self._enabled:
            return
        if not state_dict:
            raise RuntimeError("The source state dict is empty, possibly because it was saved from a disabled "
                               "instance of GradScaler.")
        self._scale = float(state_dict["scale"])
        self._growth_factor = float(state_dict["growth_factor"])
        self._backoff_factor = float(state_dict["backoff_factor"])
        self._growth_interval = int(state_dict["growth_interval"])
        self._growth_tracker = int(state_dict["_growth_tracker"])
