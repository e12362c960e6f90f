// cpp/include/streamrnn/streamrnn.hpp: the one header a C++ user includes.
// Part of streamrnn, MIT licence.
#pragma once

// In dependency order:
#include "config.hpp"      // version, STREAMRNN_REALTIME, the shape legend
#include "types.hpp"       // Index, Buffer
#include "errors.hpp"      // ArgumentError, FormatError, FileError, ConcurrencyError
#include "spec.hpp"        // ModelSpec: kind, sizes, options
#include "trainable.hpp"   // Trainable: named weights, published version by version, and gradients
#include "optim.hpp"       // ParameterBlock, clip_grad_norm, SGD, Adam(W)
#include "model.hpp"       // Model: weights, whole-sequence forward and BPTT
#include "stream.hpp"      // Stream: state and buffers for live streams
#include "chunked.hpp"     // forward_chunked: a bidirectional model in chunks with a look-ahead (LC-BLSTM)
#include "pool.hpp"        // Pool: many live streams in slots, any of them stepped as one batch
#include "batcher.hpp"     // Batcher: frames from many threads stepped in batches (not without threads)
#include "blocks.hpp"      // Linear, Embedding, Dropout, cross_entropy, mse_loss
#include "model_file.hpp"  // save_model / load_model (safetensors)
// cuda.hpp, the CUDA backend, is included on its own: it comes with the streamrnn_cuda library.
