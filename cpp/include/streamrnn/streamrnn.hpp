// cpp/include/streamrnn/streamrnn.hpp: the one header a C++ user includes.
// Part of streamrnn, MIT licence.
#pragma once

// In dependency order:
#include "config.hpp"      // version, STREAMRNN_REALTIME, the shape legend
#include "types.hpp"       // row-major Eigen aliases, SeqView
#include "errors.hpp"      // ArgumentError, FormatError, FileError
#include "spec.hpp"        // ModelSpec: kind, sizes, options
#include "cell.hpp"        // CellWeights and the step every cell shares
#include "rnn_cell.hpp"    // Elman RNN step
#include "lstm_cell.hpp"   // LSTM step (with projection)
#include "gru_cell.hpp"    // GRU step (reset-after and reset-before)
#include "optim.hpp"       // ParameterBlock, clip_grad_norm, SGD, Adam(W)
#include "trainable.hpp"   // Trainable: named weights and their gradients
#include "model.hpp"       // Model: weights, whole-sequence forward and BPTT
#include "stream.hpp"      // Stream: state and buffers for live streams
#include "blocks.hpp"      // Linear, Embedding, Dropout, cross_entropy, mse_loss
#include "model_file.hpp"  // save_model / load_model (safetensors)
