"""The scalar math the compiled kernels share: tanh, the logistic sigmoid, a fused multiply-add.

- ``tanh_approx``: float32, Eigen's rational approximation (it vectorises; a few ulp
  from the true tanh; LLVM has no vector tanh here); float64, the C library's tanh.
- ``sigmoid_approx``: σ(x) = (1 + tanh(x/2)) / 2, as ``activations.sigmoid``.
- ``fma``: a * b + c rounded once.

Compiled only (numba present); :mod:`bptt.functional.fast._fused` holds the kernels
that use them and their NumPy twins.
"""

from __future__ import annotations

import math

import numpy as np

from bptt.functional.fast._jit import numba

if numba is not None:
    from llvmlite import ir
    from numba.core import types
    from numba.extending import intrinsic

    def tanh_approx(x):  # pragma: no cover - the overload below replaces it
        return math.tanh(x)

    @numba.extending.overload(
        tanh_approx, jit_options={"error_model": "numpy", "fastmath": {"contract"}}
    )
    def tanh_approx_impl(x):
        """float32: Eigen's rational tanh (vectorises; a few ulp); float64: libm."""
        if x == numba.float32:
            a1, a3, a5 = (
                np.float32(4.89352455891786e-03),
                np.float32(6.37261928875436e-04),
                np.float32(1.48572235717979e-05),
            )
            a7, a9 = np.float32(5.12229709037114e-08), np.float32(-8.60467152213735e-11)
            a11, a13 = np.float32(2.00018790482477e-13), np.float32(-2.76076847742355e-16)
            b0, b2 = np.float32(4.89352518554385e-03), np.float32(2.26843463243900e-03)
            b4, b6 = np.float32(1.18534705686654e-04), np.float32(1.19825839466702e-06)
            clamp = np.float32(7.90531110763549805)

            def tanh32(x):
                y = min(max(x, -clamp), clamp)
                y2 = y * y
                p = ((((((a13 * y2 + a11) * y2 + a9) * y2 + a7) * y2 + a5) * y2 + a3) * y2 + a1) * y
                q = ((b6 * y2 + b4) * y2 + b2) * y2 + b0
                return p / q

            return tanh32
        return lambda x: math.tanh(x)

    @intrinsic
    def fma(typingctx, a, b, c):
        """a * b + c rounded once (LLVM's fma). Written out where an expression has two
        products and a sum: left to the compiler, which product it fuses may differ from
        one compiled copy of a loop to another, and a unit's numbers with it."""
        if not (a == b == c and isinstance(a, types.Float)):
            return None
        sig = a(a, b, c)

        def codegen(context, builder, signature, args):
            ty = context.get_value_type(signature.return_type)
            fnty = ir.FunctionType(ty, [ty, ty, ty])
            name = "llvm.fma.f32" if ty == ir.FloatType() else "llvm.fma.f64"
            fn = builder.module.declare_intrinsic(name, fnty=fnty)
            return builder.call(fn, args)

        return sig, codegen

    def sigmoid_approx(x):  # pragma: no cover - the overload below replaces it
        return 0.5 + 0.5 * math.tanh(0.5 * x)

    @numba.extending.overload(
        sigmoid_approx, jit_options={"error_model": "numpy", "fastmath": {"contract"}}
    )
    def sigmoid_approx_impl(x):
        """σ(x) = (1 + tanh(x/2)) / 2, constants in x's dtype so float32 stays float32."""
        half = np.float32(0.5) if x == numba.float32 else 0.5
        return lambda x: half + half * tanh_approx(half * x)
