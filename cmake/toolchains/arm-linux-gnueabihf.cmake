# cmake/toolchains/arm-linux-gnueabihf.cmake: cross-compiling for 32-bit ARM Linux (Debian armhf) with Debian's gcc cross toolchain.
# Part of streamrnn, MIT licence.
#
# Needs g++-arm-linux-gnueabihf (its libraries live in /usr/arm-linux-gnueabihf) and, for ctest,
# qemu-user. Use: cmake -S . -B <dir> -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/arm-linux-gnueabihf.cmake
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR armv7l)

set(_streamrnn_triple arm-linux-gnueabihf)
set(CMAKE_C_COMPILER ${_streamrnn_triple}-gcc)
set(CMAKE_CXX_COMPILER ${_streamrnn_triple}-g++)

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

# Libraries and headers for the target come from the cross sysroot only, never the host's.
set(CMAKE_FIND_ROOT_PATH /usr/${_streamrnn_triple})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
# Package configs may also come from the host: Eigen3 (/usr/share/eigen3/cmake) and doctest
# (/usr/lib/cmake/doctest) are header-only, so the host's packages serve every target, and the
# sysroot has none. Host packages of compiled code are not picked up by mistake: Debian keeps
# them under /usr/lib/<host triple>/cmake, which a search for this target does not visit.
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)

# ctest (and any other run of a target program) goes through qemu, which takes the target's
# dynamic loader and libraries from the cross sysroot.
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-arm;-L;/usr/${_streamrnn_triple})
