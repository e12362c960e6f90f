// cpp/include/streamrnn/model_file.hpp: save and load a Model as one safetensors file.
// Part of streamrnn, MIT licence.
#pragma once

#include "errors.hpp"
#include "model.hpp"
#include "sequential.hpp"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace streamrnn {

/*
 * A model file is a safetensors file (https://huggingface.co/docs/safetensors), so Python's
 * `safetensors` reads and writes it:
 *   8 bytes   N, the header length, a little-endian uint64
 *   N bytes   a JSON object, padded with spaces to a multiple of 8 bytes:
 *               "<tensor name>": {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}
 *               for every tensor of Model::tensors() (PyTorch's state_dict names), offsets in
 *               bytes from the start of the data, and
 *               "__metadata__": {"format": "streamrnn", "format_version": "1", "mode": "LSTM",
 *                                "input_size": "4", ..., "dropout": "0.1"}
 *               with every ModelSpec field as a string ("true"/"false" for flags). A model
 *               with ONNX's cell options is format_version "2", which adds "peepholes",
 *               "input_forget", "clip" and "activations" ("HardSigmoid:0.2:0.5,Tanh,Tanh": each
 *               function with the alpha and beta it takes); version 1 files lack them.
 *               Version 3 adds "learn_initial_state" and tensors initial_h and initial_c: the
 *               initial state, learned (a parameter) or set and kept fixed (beside them).
 *   the data  little-endian float32 on every host, tensors in state_dict order.
 * A loader accepts tensors in any order and gaps between them, as other writers leave.
 */

/// A tensor of a safetensors file: its name, shape and float32 values.
struct NamedTensor {
    std::string name;
    std::vector<long long> shape;
    std::vector<float> values;
};

/// A safetensors file of float32 tensors and string metadata, in file order: what a model file
/// is, and what composite models (an embedding, a recurrent stack and a head) are saved as.
struct TensorFile {
    bool has_metadata = false;
    std::vector<std::pair<std::string, std::string>> metadata;
    std::vector<NamedTensor> tensors;
};

/// The bytes of a tensor file; values.size() must be the product of each shape.
std::vector<std::uint8_t> save_tensor_file_bytes(const TensorFile& file);
/// Writes a tensor file; throws FileError (with errno) when `path` cannot be written.
void save_tensor_file(const TensorFile& file, const std::string& path);
/// Reads a tensor file with every check of load_model but those of a model's architecture:
/// FormatError for anything truncated or corrupt, or a dtype other than F32.
TensorFile read_tensor_file(const void* data, std::size_t size);
/// Reads a tensor file; FileError when it cannot be read, FormatError as above.
TensorFile read_tensor_file(const std::string& path);

/// The readers above, reporting errors as a Status (FormatError or FileError's kind and message)
/// instead of raising them: for builds without exceptions and for the C API. On failure the
/// output is left as it was.
Status try_read_tensor_file(const void* data, std::size_t size, TensorFile& file);
Status try_read_tensor_file(const std::string& path, TensorFile& file);

/// The bytes of a model file.
std::vector<std::uint8_t> save_model_bytes(const Model& model);

/// Writes a model file; throws FileError (with errno) when `path` cannot be opened or written.
void save_model(const Model& model, const std::string& path);

/// Reads a model file from memory. Throws FormatError ("model file: ...") for anything truncated,
/// corrupt, of another format version, or whose tensors do not match its architecture.
Model load_model(const void* data, std::size_t size);

/// Reads a model file; throws FileError (with errno; ENOENT when it does not exist) when it cannot
/// be read, and FormatError as above.
Model load_model(const std::string& path);

/// load_model reporting errors as a Status instead of raising them (see try_read_tensor_file);
/// `model` holds the model on success.
Status try_load_model(const void* data, std::size_t size, std::optional<Model>& model);
Status try_load_model(const std::string& path, std::optional<Model>& model);

/// A Sequential as a model file: the tensors of block k under "k.<name>" (torch.nn.Sequential's
/// state_dict names), the blocks in its metadata ("model": "Sequential", "blocks": their count,
/// "k.type": "Linear" or a function's or a recurrent layer's name, and each block's fields under
/// "k."), and `metadata` (the user's, such as a sample rate) under "meta.<key>".
std::vector<std::uint8_t> save_sequential_bytes(const Sequential& model,
                                                const std::vector<std::pair<std::string, std::string>>& metadata);
void save_sequential(const Sequential& model, const std::vector<std::pair<std::string, std::string>>& metadata,
                     const std::string& path);

/// What a model file holds: a recurrent model, or a Sequential and its user metadata.
struct LoadedModel {
    std::shared_ptr<Model> model;
    std::shared_ptr<Sequential> sequential;
    std::vector<std::pair<std::string, std::string>> metadata;
};
/// Reads either kind of model file; FormatError and FileError as load_model.
LoadedModel load_any_model(const void* data, std::size_t size);
LoadedModel load_any_model(const std::string& path);
/// The same, reporting errors as a Status (for the C API).
Status try_load_any_model(const void* data, std::size_t size, LoadedModel& model);
Status try_load_any_model(const std::string& path, LoadedModel& model);

/// The architecture as a model file's metadata names it, one "key=value" per field of the spec
/// joined by ';' ("mode=LSTM;input_size=80;..."): the same text on every host, for what must name
/// a model (a pool's snapshots).
std::string architecture_text(const ModelSpec& spec);

}  // namespace streamrnn
