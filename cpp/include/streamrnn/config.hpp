// cpp/include/streamrnn/config.hpp: version, the real-time marker and the shape legend.
// Part of streamrnn, MIT licence.
#pragma once

/*
 * Shape legend, used in every header of streamrnn:
 *   T  time steps            B  batch (independent streams)
 *   I  input features        H  hidden units
 *   P  projection size (LSTM proj_size; P = H without projection), H_out = P
 *   G  fused gate rows: H for RNN, 4H for LSTM (i, f, g, o), 3H for GRU (r, z, n)
 *   L  layers                D  directions (2 when bidirectional, else 1)
 * Every matrix is row-major (the rightmost index is fastest), as NumPy and PyTorch store it, so
 * buffers from Python map without copies. A sequence is a set of rows addressed by (t, b); see
 * SeqView in types.hpp for the two layouts, time-major (T, B, F) and batch-first (B, T, F).
 */

#define STREAMRNN_VERSION_MAJOR 0
#define STREAMRNN_VERSION_MINOR 1
#define STREAMRNN_VERSION_PATCH 0

/// 1 when the compiler has exceptions on (no -fno-exceptions): errors are thrown; else see raise().
#if defined(__cpp_exceptions) || defined(__EXCEPTIONS) || defined(_CPPUNWIND)
#define STREAMRNN_HAS_EXCEPTIONS 1
#else
#define STREAMRNN_HAS_EXCEPTIONS 0
#endif

/// 0 in builds without threads (STREAMRNN_THREADS=OFF): a whole-sequence call then runs on the
/// calling thread whatever its `threads` argument.
#ifndef STREAMRNN_THREADS
#define STREAMRNN_THREADS 1
#endif

/// Marks functions that a real-time thread may call: no heap allocation, no lock, no throw.
#if defined(__clang__) && defined(__has_cpp_attribute)
#if __has_cpp_attribute(clang::nonblocking)
#define STREAMRNN_REALTIME [[clang::nonblocking]]
#endif
#endif
#ifndef STREAMRNN_REALTIME
#define STREAMRNN_REALTIME
#endif
