# python/streamrnn/_core.py: the engine, in the build that suits this CPU.
# Part of streamrnn, MIT licence.
"""streamrnn's C++ engine. Where the package carries an AVX2+FMA build and the CPU has those
instructions, that build; otherwise the baseline one. STREAMRNN_ENGINE=baseline forces the
baseline (to measure it, or to rule it out)."""

import os


def _cpu_has_avx2_fma() -> bool:
    try:  # NumPy knows the CPU's features; where it moved its module in 2.0
        from numpy._core._multiarray_umath import __cpu_features__ as features
    except ImportError:
        try:
            from numpy.core._multiarray_umath import __cpu_features__ as features
        except ImportError:
            return False
    return all(features.get(name, False) for name in ("AVX", "AVX2", "FMA3", "F16C"))


ENGINE = "baseline"
if os.environ.get("STREAMRNN_ENGINE", "") != "baseline" and _cpu_has_avx2_fma():
    try:
        from ._engine_avx2 import *  # noqa: F401,F403
        from ._engine_avx2 import __doc__ as _engine_doc  # noqa: F401

        ENGINE = "avx2"
    except ImportError:  # built without it (STREAMRNN_DISPATCH off, or not x86-64)
        pass
if ENGINE == "baseline":
    from ._engine import *  # noqa: F401,F403
