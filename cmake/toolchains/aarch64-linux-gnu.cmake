# cmake/toolchains/aarch64-linux-gnu.cmake: cross-compiling for 64-bit ARM Linux with Debian's gcc cross toolchain.
# Part of streamrnn, MIT licence.
#
# Needs g++-aarch64-linux-gnu (its libraries live in /usr/aarch64-linux-gnu) and, for ctest,
# qemu-user. Use: cmake -S . -B <dir> -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/aarch64-linux-gnu.cmake
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(_streamrnn_triple aarch64-linux-gnu)
set(_streamrnn_qemu qemu-aarch64)
include(${CMAKE_CURRENT_LIST_DIR}/debian-cross.cmake)
