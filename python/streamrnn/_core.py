# python/streamrnn/_core.py: the engine, in the build that suits this CPU.
# Part of streamrnn, MIT licence.
"""streamrnn's C++ engine. The package carries it built for several instruction sets (on x86-64:
baseline, AVX2+FMA, AVX-512); this imports the widest that the CPU runs. STREAMRNN_ENGINE set to
"baseline" or "avx2" caps the choice (to measure a build, or to rule one out), and caps the
matrix kernels alike, which every build chooses at run time (STREAMRNN_KERNELS, unless set)."""

import importlib
import os

# Widest first: (the build, the CPU features it needs, as NumPy names them).
_BUILDS = (
    ("avx512", ("AVX512F", "AVX512VL", "AVX512BW", "AVX512DQ", "AVX2", "FMA3", "F16C")),
    ("avx2", ("AVX", "AVX2", "FMA3", "F16C")),
    ("baseline", ()),
)


def _cpu_features() -> dict:
    try:  # where NumPy keeps what it detected; the module moved in NumPy 2.0
        from numpy._core._multiarray_umath import __cpu_features__
    except ImportError:
        try:
            from numpy.core._multiarray_umath import __cpu_features__
        except ImportError:
            return {}
    return __cpu_features__


def _import():
    features = _cpu_features()
    cap = os.environ.get("STREAMRNN_ENGINE", "avx512")
    names = [name for name, _ in _BUILDS]
    if cap in names:  # read by the engine as it loads
        os.environ.setdefault("STREAMRNN_KERNELS", "none" if cap == "baseline" else cap)
    allowed = names[names.index(cap):] if cap in names else names
    for name, needs in _BUILDS:
        if name not in allowed or not all(features.get(feature, False) for feature in needs):
            continue
        try:
            return name, importlib.import_module("._engine" + ("" if name == "baseline" else "_" + name), __package__)
        except ImportError:  # built without it (STREAMRNN_DISPATCH off, or not x86-64)
            continue
    raise ImportError("streamrnn: no build of the engine could be imported")


ENGINE, _engine = _import()
globals().update({name: value for name, value in vars(_engine).items() if not name.startswith("__")})
