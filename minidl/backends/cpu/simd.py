"""An explicit SIMD vector type for numba: ``<W x float>`` registers and the handful of operations a
convolution micro-kernel needs.

numba compiles plain loops to scalar code here: it keeps LLVM's SLP vectoriser off, and its loop
vectoriser turns a short reduction loop into spilled accumulators.  A micro-kernel written with an
explicit vector type compiles, under numba's default settings, to exactly the instructions it names:

    acc = fma(splat_at(x, i), load(w, j), acc)    # vbroadcastss + vfmadd231ps (AVX2), or one
                                                  # vfmadd231ps zmm, zmm, [mem]{1to16} (AVX-512)

``lanes(W)`` returns a namespace of numba intrinsics for vectors of W float32 lanes (W = 4, 8 or 16):

    zeros()                 a vector of zeros
    load(a, i)              a[i:i+W] of a 1-D contiguous float32 array (no bounds check)
    load_first(a, i, n)     a[i:i+n] in the first n lanes, zeros after (n <= W; for channel tails)
    splat_at(a, i)          a[i] in every lane (a broadcast from memory)
    store(a, i, v)          a[i:i+W] = v (no bounds check)
    store_first(a, i, v, n) a[i:i+min(n, W)] = v's first lanes (nothing when n <= 0)
    fma(a, b, c)            a * b + c in each lane, one rounding (llvm.fma)
    add(a, b), mul(a, b)    per lane
    lane(v, k)              lane k of v, a float32
    copy(dst, d, src, s)    dst[d:d+W] = src[s:s+W]

and, for sums that must not lose float32's bits, vectors of W float64 lanes (two or four registers):

    widen(v)                v's lanes as float64 (exact)
    wide_zeros(), wide_add(a, b), wide_fma(a, b, c), wide_lane(v, k)   as above, in float64

The vector width of the machine is chosen once, at import, from what LLVM reports for the host
(``HOST_WIDTH``): 16 where the CPU has AVX-512F, 8 with AVX2 (or AVX), else 4 (SSE, NEON).  The
environment variable ``MINIDL_SIMD_WIDTH`` (4, 8 or 16) forces one; any width compiles on any CPU
(LLVM splits a vector wider than the machine's registers into several), so both variants can be
compiled, run and tested on one machine.

This module imports numba and llvmlite: minidl imports it on the first convolution that uses it,
not at ``import minidl``.
"""
import os

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, models, register_model

WIDTHS = (4, 8, 16)


def host_width():
    """The float32 lanes of the host's widest vector registers that LLVM will use: 16, 8 or 4."""
    forced = os.environ.get("MINIDL_SIMD_WIDTH", "")
    if forced:
        if forced not in ("4", "8", "16"):
            raise ValueError(f"MINIDL_SIMD_WIDTH must be 4, 8 or 16, got {forced!r}")
        return int(forced)
    import llvmlite.binding as llvm
    features = llvm.get_host_cpu_features()
    if features.get("avx512f"):
        return 16
    if features.get("avx2") or features.get("avx"):
        return 8
    return 4


HOST_WIDTH = host_width()


class Float32Vector(types.Type):
    """numba's type for an LLVM ``<width x float>`` value (lives in one or more vector registers)."""

    def __init__(self, width):
        self.width = width
        super().__init__(name=f"float32x{width}")


class Float64Vector(types.Type):
    """numba's type for an LLVM ``<width x double>`` value: a Float32Vector widened, for exact running sums."""

    def __init__(self, width):
        self.width = width
        super().__init__(name=f"float64x{width}")


@register_model(Float32Vector)
class _Float32VectorModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, ir.VectorType(ir.FloatType(), fe_type.width))


@register_model(Float64Vector)
class _Float64VectorModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, ir.VectorType(ir.DoubleType(), fe_type.width))


_FLAT_FLOAT32 = types.Array(types.float32, 1, "C")
_I32 = ir.IntType(32)


def _check_array(name, array):
    if array != _FLAT_FLOAT32:
        raise TypeError(f"simd.{name}: expected a 1-D C-contiguous float32 array, got {array}")


def _element_pointer(context, builder, array_type, array, index):
    """Pointer to array[index] (index an integer of any width; no wraparound, no bounds check)."""
    data = context.make_array(array_type)(context, builder, array).data
    return builder.gep(data, [index])


def _vector_pointer(builder, pointer, vector_type):
    return builder.bitcast(pointer, vector_type.as_pointer())


def _splat(builder, scalar, vector_type):
    one = builder.insert_element(ir.Constant(vector_type, ir.Undefined), scalar, ir.Constant(_I32, 0))
    mask = ir.Constant(ir.VectorType(_I32, vector_type.count), [0] * vector_type.count)
    return builder.shuffle_vector(one, ir.Constant(vector_type, ir.Undefined), mask)


class Lanes:
    """The intrinsics for one vector width (see the module docstring); build with ``lanes(width)``."""

    def __init__(self, width):
        if width not in WIDTHS:
            raise ValueError(f"simd.lanes: width must be one of {WIDTHS}, got {width!r}")
        self.width = width
        self.type = Float32Vector(width)
        llvm_vector = ir.VectorType(ir.FloatType(), width)
        vec = self.type

        @intrinsic
        def load(typingctx, array, index):
            _check_array("load", array)

            def codegen(context, builder, sig, args):
                pointer = _element_pointer(context, builder, sig.args[0], args[0], args[1])
                return builder.load(_vector_pointer(builder, pointer, llvm_vector), align=4)
            return vec(array, index), codegen

        @intrinsic
        def splat_at(typingctx, array, index):
            _check_array("splat_at", array)

            def codegen(context, builder, sig, args):
                pointer = _element_pointer(context, builder, sig.args[0], args[0], args[1])
                return _splat(builder, builder.load(pointer, align=4), llvm_vector)
            return vec(array, index), codegen

        @intrinsic
        def store(typingctx, array, index, value):
            _check_array("store", array)

            def codegen(context, builder, sig, args):
                pointer = _element_pointer(context, builder, sig.args[0], args[0], args[1])
                builder.store(args[2], _vector_pointer(builder, pointer, llvm_vector), align=4)
                return context.get_dummy_value()
            return types.none(array, index, vec), codegen

        @intrinsic
        def with_lane(typingctx, value, k, scalar):
            def codegen(context, builder, sig, args):
                index = builder.trunc(args[1], _I32) if args[1].type.width > 32 else args[1]
                scalar_value = context.cast(builder, args[2], sig.args[2], types.float32)
                return builder.insert_element(args[0], scalar_value, index)
            return vec(vec, k, scalar), codegen

        self.load, self.splat_at, self.store, self.with_lane = load, splat_at, store, with_lane
        self.zeros, self.lane, self.add, self.mul, self.fma = _arithmetic(vec, llvm_vector, types.float32)
        self.load_first, self.store_first = _partial_load(self), _partial_store(self)

        @intrinsic
        def copy(typingctx, dst, d, src, s):
            """dst[d:d+W] = src[s:s+W]: one vector load and store."""
            _check_array("copy", dst)
            _check_array("copy", src)

            def codegen(context, builder, sig, args):
                source = _element_pointer(context, builder, sig.args[2], args[2], args[3])
                value = builder.load(_vector_pointer(builder, source, llvm_vector), align=4)
                target = _element_pointer(context, builder, sig.args[0], args[0], args[1])
                builder.store(value, _vector_pointer(builder, target, llvm_vector), align=4)
                return context.get_dummy_value()
            return types.none(dst, d, src, s), codegen
        self.copy = copy
        self._wide_intrinsics()

    def _wide_intrinsics(self):
        """widen and the float64 twins of zeros, add, fma and lane (see the module docstring)."""
        wide = Float64Vector(self.width)
        llvm_wide = ir.VectorType(ir.DoubleType(), self.width)

        @intrinsic
        def widen(typingctx, value):
            def codegen(context, builder, sig, args):
                return builder.fpext(args[0], llvm_wide)
            return wide(self.type), codegen

        self.widen = widen
        self.wide_zeros, self.wide_lane, self.wide_add, _, self.wide_fma = _arithmetic(wide, llvm_wide, types.float64)


def _arithmetic(vec, llvm_vector, scalar):
    """zeros(), lane(v, k), add(a, b), mul(a, b) and fma(a, b, c) for the numba vector type ``vec`` (LLVM's
    ``llvm_vector``, lanes of ``scalar``)."""
    suffix = f"v{llvm_vector.count}f{64 if scalar == types.float64 else 32}"

    @intrinsic
    def zeros(typingctx):
        def codegen(context, builder, sig, args):
            return ir.Constant(llvm_vector, [0.0] * llvm_vector.count)
        return vec(), codegen

    @intrinsic
    def lane(typingctx, value, k):
        def codegen(context, builder, sig, args):
            index = builder.trunc(args[1], _I32) if args[1].type.width > 32 else args[1]
            return builder.extract_element(args[0], index)
        return scalar(vec, k), codegen

    def binary(name, emit):
        @intrinsic
        def op(typingctx, a, b):
            def codegen(context, builder, sig, args):
                return emit(builder, *args)
            return vec(vec, vec), codegen
        op.__name__ = name
        return op

    @intrinsic
    def fma(typingctx, a, b, c):
        def codegen(context, builder, sig, args):
            function = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(llvm_vector, [llvm_vector] * 3), f"llvm.fma.{suffix}")
            return builder.call(function, args)
        return vec(vec, vec, vec), codegen

    return (zeros, lane, binary("add", lambda builder, a, b: builder.fadd(a, b)),
            binary("mul", lambda builder, a, b: builder.fmul(a, b)), fma)


def _partial_load(v):
    """load_first(a, i, n): lanes 0..n-1 from a[i:i+n], zeros after; plain numba over the intrinsics."""
    from numba import njit
    width, zeros, with_lane, load = v.width, v.zeros, v.with_lane, v.load

    @njit(inline="always")
    def load_first(a, i, n):
        if n >= width:
            return load(a, i)
        out = zeros()
        for k in range(n):
            out = with_lane(out, k, a[i + k])
        return out
    return load_first


def _partial_store(v):
    """store_first(a, i, value, n): a[i:i+n] = the first n lanes (all of them when n >= width)."""
    from numba import njit
    width, store, lane = v.width, v.store, v.lane

    @njit(inline="always")
    def store_first(a, i, value, n):
        if n >= width:
            store(a, i, value)
        else:
            for k in range(n):
                a[i + k] = lane(value, k)
    return store_first


_lanes = {}


def lanes(width=None):
    """The intrinsics for vectors of ``width`` float32 lanes (default: the host's, ``HOST_WIDTH``)."""
    width = HOST_WIDTH if width is None else width
    if width not in _lanes:
        _lanes[width] = Lanes(width)
    return _lanes[width]


def float32_flat(array):
    """``array`` as the 1-D float32 view the intrinsics take (it must be C-contiguous)."""
    if array.dtype != np.float32 or not array.flags.c_contiguous:
        raise TypeError(f"simd: expected a C-contiguous float32 array, got {array.dtype} "
                        f"(contiguous: {array.flags.c_contiguous})")
    return array.reshape(-1)
