# cmake/toolchains/debian-cross.cmake: what the Debian cross toolchain files share; each sets
# CMAKE_SYSTEM_PROCESSOR, _streamrnn_triple (the GNU triple) and _streamrnn_qemu, then includes it.
# Part of streamrnn, MIT licence.
set(CMAKE_SYSTEM_NAME Linux)
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
set(CMAKE_CROSSCOMPILING_EMULATOR ${_streamrnn_qemu};-L;/usr/${_streamrnn_triple})
