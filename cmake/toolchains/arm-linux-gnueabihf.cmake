# cmake/toolchains/arm-linux-gnueabihf.cmake: cross-compiling for 32-bit ARM Linux (Debian armhf) with Debian's gcc cross toolchain.
# Part of streamrnn, MIT licence.
#
# Needs g++-arm-linux-gnueabihf (its libraries live in /usr/arm-linux-gnueabihf) and, for ctest,
# qemu-user. Use: cmake -S . -B <dir> -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/arm-linux-gnueabihf.cmake
set(CMAKE_SYSTEM_PROCESSOR armv7l)
set(_streamrnn_triple arm-linux-gnueabihf)
set(_streamrnn_qemu qemu-arm)

# No -march / -mfpu of our own: the compiler's default is Debian's armhf baseline (ARMv7-A,
# VFPv3-D16, hard-float ABI, Thumb-2), which every armhf machine runs. NEON (-mfpu=neon) is left
# off on purpose: the baseline does not promise it (some ARMv7 cores lack it), so a NEON build
# could die with SIGILL on a valid armhf machine; and ARMv7 NEON's float arithmetic flushes
# denormals to zero, so its results could differ from the scalar VFP path and from other targets.
# Someone building for a known NEON board can add -mfpu=neon to CMAKE_CXX_FLAGS themselves.
# -Wno-psabi: GCC notes, at every std::vector<ModelSpec> insert, that passing such arguments
# changed in GCC 7.1. That matters only when linking code built by GCC 6 or older, which no
# Debian armhf toolchain of today does; the notes would bury real warnings.
set(CMAKE_CXX_FLAGS_INIT -Wno-psabi)

include(${CMAKE_CURRENT_LIST_DIR}/debian-cross.cmake)
