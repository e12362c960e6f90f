# bench/embedded.py: binary sizes and the C example's step time, per target and build option.
# Part of streamrnn, MIT licence.
"""Reads CMake build folders of the C++ library (STREAMRNN_PYTHON=OFF, examples built: see
README, "Embedding streamrnn") and prints, per folder: the target, the embedded options it was
built with, the size of libstreamrnn.a stripped of what a static library does not need, the size
of the stripped C example (examples/embedded/stream.c, linked statically with the library, libc
shared), and the C example's time per step on a small model (2-layer LSTM, H = 16, P = 8; median
of 5 runs of 300 steps). Folders of cross builds run the example under qemu-user: those times are
emulated, for trend only.

    python bench/embedded.py BUILD_DIR [BUILD_DIR ...]
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "tests" / "data" / "embedded" / "lstm_proj.safetensors"
INPUT = ROOT / "tests" / "data" / "embedded" / "input.f32"
OPTIONS = ("STREAMRNN_EXCEPTIONS", "STREAMRNN_RTTI", "STREAMRNN_THREADS")


def cache(build: Path) -> dict[str, str]:
    entries = {}
    for line in (build / "CMakeCache.txt").read_text().splitlines():
        match = re.match(r"([A-Za-z_0-9]+):[A-Z_]+=(.*)", line)
        if match:
            entries[match.group(1)] = match.group(2)
    return entries


def target_of(build: Path) -> str:
    """The compiler's target triple, e.g. aarch64-linux-gnu. The compiler is read from what CMake
    recorded of it, since a toolchain file's choice is not in the cache."""
    recorded = next(build.glob("CMakeFiles/*/CMakeCXXCompiler.cmake")).read_text()
    compiler = re.search(r'set\(CMAKE_CXX_COMPILER "([^"]+)"\)', recorded).group(1)
    out = subprocess.run([compiler, "-dumpmachine"], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def emulator_for(target: str) -> list[str]:
    """qemu-user for a foreign target, with the cross sysroot for its shared libraries."""
    for prefix, qemu in (("aarch64", "qemu-aarch64"), ("arm", "qemu-arm")):
        if target.startswith(prefix):
            return [qemu, "-L", f"/usr/{target}"]
    return []


def stripped_size(strip: str, path: Path, *flags: str) -> int:
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / path.name
        shutil.copy(path, copy)
        subprocess.run([strip, *flags, str(copy)], check=True)
        return copy.stat().st_size


def step_ns(command: list[str]) -> float:
    times = []
    for _ in range(5):
        out = subprocess.run(command, capture_output=True, text=True, check=True)
        times.append(float(re.search(r"([0-9.]+) ns per step", out.stderr).group(1)))
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("builds", nargs="+", type=Path, help="CMake build folders")
    args = parser.parse_args()

    print("Embedded builds: stripped sizes, and the C example's time per step (LSTM 2 x 16, P = 8, batch 1)")
    print(f"{'target':<22}{'build type':<12}{'options off':<28}{'libstreamrnn.a':>15}{'stream_c':>11}{'ns/step':>10}  note")
    for build in args.builds:
        entries = cache(build)
        target = target_of(build)
        strip = entries.get("CMAKE_STRIP") or "strip"
        off = [name.removeprefix("STREAMRNN_").lower() for name in OPTIONS if entries.get(name, "ON") == "OFF"]
        library = stripped_size(strip, build / "cpp" / "libstreamrnn.a", "--strip-unneeded")
        example = build / "examples" / "embedded" / "stream_c"
        emulator = emulator_for(target) if "x86_64" not in target else []
        ns = step_ns([*emulator, str(example), "-t", str(MODEL), str(INPUT)])
        print(f"{target:<22}{entries.get('CMAKE_BUILD_TYPE', '-'):<12}{', '.join(off) or '-':<28}{library / 1024:>11.0f} KiB{stripped_size(strip, example) / 1024:>7.0f} KiB"
              f"{ns:>10.0f}  {'emulated (' + emulator[0] + '), trend only' if emulator else 'native'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
