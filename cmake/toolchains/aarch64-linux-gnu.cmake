# cmake/toolchains/aarch64-linux-gnu.cmake: cross-compiling for 64-bit ARM Linux with Debian's gcc cross toolchain.
# Part of streamrnn, MIT licence.
#
# Needs g++-aarch64-linux-gnu (its libraries live in /usr/aarch64-linux-gnu) and, for ctest,
# qemu-user. Use: cmake -S . -B <dir> -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/aarch64-linux-gnu.cmake
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(_streamrnn_triple aarch64-linux-gnu)
set(CMAKE_C_COMPILER ${_streamrnn_triple}-gcc)
set(CMAKE_CXX_COMPILER ${_streamrnn_triple}-g++)

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
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64;-L;/usr/${_streamrnn_triple})
